"""The `finops` command: thin wrappers over the library, with friendly output.

Every command takes ``--warehouse PATH`` (else ``$FINOPS_WAREHOUSE``, else
``data/warehouse.duckdb``). Errors print one line and a hint and exit 1; ``--debug`` shows
the traceback.

This module holds the root group, its ``--debug`` flag and :func:`main` (error handling). The commands
live in one module per group and are registered here, in the order of :data:`COMMANDS`:

    finops.cli.options             shared options (--warehouse, --config, --format), parsing text at the edge
    finops.cli.output              consoles, tables / CSV / JSON of a frame, the progress bar
    finops.cli.ingest_commands     finops ingest …
    finops.cli.demo_command        finops demo
    finops.cli.warehouse_commands  query, batches, quarantine, prices, migrate
    finops.cli.analysis_commands   chargeback, forecast, budgets, anomalies, unit-costs, savings, reconcile
    finops.cli.report_commands     finops report …, finops run

Every name the single-module CLI had (commands, options, helpers such as ``_load_delivery``) stays
importable from here. (The modules are not named after their commands: ``finops.cli.demo`` would be
shadowed by the ``demo`` command re-exported here.)
"""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from finops.cli.analysis_commands import (
    anomalies,
    budgets_command,
    chargeback_command,
    forecast_command,
    reconcile,
    savings,
    unit_costs,
)
from finops.cli.demo_command import DEMO_LOCK_TIMEOUT, _demo, _load_delivery, _load_gateway, demo
from finops.cli.export_commands import export, export_parquet
from finops.cli.ingest_commands import (
    _display_path,
    _parse_overlap,
    _print_ingest,
    _print_model_api_ingest,
    _print_trace_files,
    _print_trace_ingest,
    google_api_options,
    ingest,
    ingest_anthropic,
    ingest_aws_cur,
    ingest_azure,
    ingest_focus,
    ingest_gcp_bigquery,
    ingest_gcp_catalog,
    ingest_gcp_export,
    ingest_langfuse,
    ingest_litellm,
    ingest_openai,
    ingest_otel,
    ingest_prices,
    model_api_options,
)
from finops.cli.options import (
    OUTPUT_FORMATS,
    _basis,
    _period,
    _quarter,
    _say_waiting,
    _warehouse,
    config_option,
    format_option,
    warehouse_option,
)
from finops.cli.output import _cell, _json_default, _money, _print_frame, _progress, console, err_console
from finops.cli.report_commands import report, report_departments, report_quarterly, run_command
from finops.cli.warehouse_commands import batches, migrate, prices, quarantine, query
from finops.exceptions import FinopsError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="ai-finops-workbench")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """AI FinOps workbench: what AI costs, who spends it, and what next quarter will cost.

    \b
    Start with the sample company:
      finops demo                               build data/warehouse.duckdb
      finops report quarterly --quarter 2026Q3  render reports/quarterly-review-2026Q3.html
    """
    ctx.obj = {"debug": debug}


COMMANDS: tuple[click.Command, ...] = (
    ingest,
    demo,
    query,
    batches,
    quarantine,
    prices,
    reconcile,
    migrate,
    chargeback_command,
    forecast_command,
    budgets_command,
    anomalies,
    unit_costs,
    savings,
    report,
    run_command,
    export,
)
"""The root group's commands, in the order they are registered (`finops --help` sorts them by name)."""

for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning finops errors into one clear line and exit 1."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except FinopsError as exc:
        if debug:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        if exc.hint:
            err_console.print(f"[dim]hint: {escape(exc.hint)}[/]")
        sys.exit(1)
    except Exception as exc:  # an error we did not map: still one line unless --debug
        if debug:
            raise
        err_console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))}")
        err_console.print("[dim]hint: run again with --debug for the traceback, and please report it[/]")
        sys.exit(2)


__all__ = [  # every name the single-module CLI had
    "COMMANDS",
    "DEMO_LOCK_TIMEOUT",
    "OUTPUT_FORMATS",
    "_basis",
    "_cell",
    "_demo",
    "_display_path",
    "_json_default",
    "_load_delivery",
    "_load_gateway",
    "_money",
    "_parse_overlap",
    "_period",
    "_print_frame",
    "_print_ingest",
    "_print_model_api_ingest",
    "_print_trace_files",
    "_print_trace_ingest",
    "_progress",
    "_quarter",
    "_say_waiting",
    "_warehouse",
    "anomalies",
    "batches",
    "budgets_command",
    "chargeback_command",
    "cli",
    "config_option",
    "console",
    "demo",
    "err_console",
    "export",
    "export_parquet",
    "forecast_command",
    "format_option",
    "google_api_options",
    "ingest",
    "ingest_anthropic",
    "ingest_aws_cur",
    "ingest_azure",
    "ingest_focus",
    "ingest_gcp_bigquery",
    "ingest_gcp_catalog",
    "ingest_gcp_export",
    "ingest_langfuse",
    "ingest_litellm",
    "ingest_openai",
    "ingest_otel",
    "ingest_prices",
    "main",
    "migrate",
    "model_api_options",
    "prices",
    "quarantine",
    "query",
    "reconcile",
    "report",
    "report_departments",
    "report_quarterly",
    "run_command",
    "savings",
    "unit_costs",
    "warehouse_option",
]  # fmt: skip
