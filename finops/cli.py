"""The `finops` command: thin wrappers over the library, with friendly output.

Every command takes ``--warehouse PATH`` (else ``$FINOPS_WAREHOUSE``, else
``data/warehouse.duckdb``). Errors print one line and a hint and exit 1; ``--debug`` shows
the traceback.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from finops.exceptions import FinopsError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

OUTPUT_FORMATS = ("table", "csv", "json")


def warehouse_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--warehouse",
        "warehouse_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="FINOPS_WAREHOUSE",
        default=None,
        help="DuckDB warehouse file [env FINOPS_WAREHOUSE; default data/warehouse.duckdb]",
    )(func)


def config_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="FINOPS_CONFIG",
        default=None,
        help="finops.toml with department mappings [env FINOPS_CONFIG; default ./finops.toml]",
    )(func)


def format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(OUTPUT_FORMATS),
        default="table",
        show_default=True,
        help="How to print the result.",
    )(func)


def _warehouse(path: Path | None):
    from finops.warehouse import Warehouse

    return Warehouse(path)


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


# -- ingest -----------------------------------------------------------------------------


@cli.group()
def ingest() -> None:
    """Load billing exports and usage logs into the warehouse."""


@ingest.command("focus")
@click.argument("paths", nargs=-1, required=True)
@warehouse_option
def ingest_focus(paths: tuple[str, ...], warehouse_path: Path | None) -> None:
    """Load FOCUS 1.0–1.3 files (CSV, .csv.gz, Parquet): files, directories or globs.

    Each (billing account, billing period) found in the files replaces what the warehouse
    held for it, so loading the same files again, or a restated month, never double counts.
    Load all files of one billing period in the same call.

    \b
    Example:
      finops ingest focus 'exports/focus/2026-0[789]/*.parquet'
    """
    from connectors import focus

    wh = _warehouse(warehouse_path)
    with _progress() as callback:
        report = focus.ingest(wh, list(paths), progress=callback)
    _print_ingest(report, wh)


def _print_ingest(report: Any, wh: Any, *, title: str | None = None) -> None:
    r = report.result
    console.print(
        f"{title + ': ' if title else ''}[bold]{r.rows_read:,}[/] rows read, [green]{r.rows_loaded:,} loaded[/], "
        + (f"[red]{r.rows_quarantined:,} quarantined[/]" if r.rows_quarantined else "0 quarantined")
        + f" from {len(report.files)} file{'s' if len(report.files) != 1 else ''} (batch {r.batch_id})"
    )
    if r.rows_replaced:
        console.print(f"  replaced {r.rows_replaced:,} rows previously loaded for the same billing periods")
    for file in report.files:
        if file.ignored_columns:
            shown = ", ".join(file.ignored_columns[:6]) + (" …" if len(file.ignored_columns) > 6 else "")
            console.print(f"  {file.path.name}: ignored non-FOCUS columns {shown}", style="dim")
    if report.period_totals.height:
        table = Table(title="Loaded, by billing period", title_justify="left")
        table.add_column("billing period")
        table.add_column("rows", justify="right")
        table.add_column("BilledCost", justify="right")
        table.add_column("EffectiveCost", justify="right")
        for row in report.period_totals.iter_rows(named=True):
            table.add_row(row["billing_period"], f"{row['rows']:,}", _money(row["billed_cost"]), _money(row["effective_cost"]))
        console.print(table)
    if r.rows_quarantined:
        console.print(f"[red]Quarantined rows[/] (first {min(r.rows_quarantined, report.quarantine_sample.height)}):")
        for row in report.quarantine_sample.iter_rows(named=True):
            console.print(f"  {row['file']} row {row['row_number']}: {row['reason']}", markup=False)
        console.print(f"  all of them: finops quarantine --batch {r.batch_id}", style="dim")
    console.print(f"Warehouse: {wh.path}")


# -- demo -------------------------------------------------------------------------------


@cli.command()
@click.option("--seed", type=int, default=None, help="Random seed of the sample company (default: its fixed seed).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/sample"),
    show_default=True,
    help="Where the sample company's exports are written.",
)
@click.option("--fresh", is_flag=True, help="Delete the warehouse file first.")
@warehouse_option
def demo(seed: int | None, out_dir: Path, fresh: bool, warehouse_path: Path | None) -> None:
    """Generate the sample company's exports and load them into the warehouse.

    The company has six departments and 18 months of AI spend on AWS, Google Cloud, Azure,
    OpenAI and Anthropic, ending 2026-09-30, with one month restated after close. Its
    finops.toml is the one at the top of the repository.
    """
    from connectors import focus
    from finops import sample_company

    wh = _warehouse(warehouse_path)
    if fresh and wh.path.exists():
        wh.path.unlink()
        Path(str(wh.path) + ".wal").unlink(missing_ok=True)
    started = time.monotonic()
    with console.status("generating the sample company …"):
        company = sample_company.generate(out_dir, **({"seed": seed} if seed is not None else {}))
    console.print(f"Generated {sum(len(d.files) for d in company.deliveries)} export files in {out_dir}")
    with _progress() as callback:
        for delivery in company.deliveries:
            report = focus.ingest(wh, delivery.files, progress=callback)
            r = report.result
            replaced = f", replaced {r.rows_replaced:,}" if r.rows_replaced else ""
            console.print(f"  {delivery.label}: {r.rows_loaded:,} rows loaded{replaced}")
    totals = wh.query(
        "SELECT ProviderName AS provider, count(*) AS rows, sum(BilledCost) AS billed, sum(EffectiveCost) AS effective"
        " FROM charges GROUP BY ALL ORDER BY effective DESC"
    )
    _print_frame(totals, "table", title="The sample company's spend, all periods")
    console.print(f"Warehouse: {wh.path}  ({time.monotonic() - started:.1f}s)")
    console.print("Next: finops report quarterly --quarter 2026Q3")


# -- query ------------------------------------------------------------------------------


@cli.command()
@click.argument("sql")
@format_option
@warehouse_option
def query(sql: str, output_format: str, warehouse_path: Path | None) -> None:
    """Run read-only SQL on the warehouse.

    \b
    Example:
      finops query "SELECT ProviderName, sum(EffectiveCost) FROM charges GROUP BY ALL"
    """
    frame = _warehouse(warehouse_path).query(sql)
    _print_frame(frame, output_format)


@cli.command()
@click.option("--limit", type=int, default=20, show_default=True)
@format_option
@warehouse_option
def batches(limit: int, output_format: str, warehouse_path: Path | None) -> None:
    """List the most recent loads: source, status and row counts."""
    frame = _warehouse(warehouse_path).query(
        "SELECT batch_id, source_kind, status, rows_read, rows_loaded, rows_quarantined, rows_replaced,"
        " len(files) AS files, started_at, round(epoch(ended_at - started_at), 1) AS seconds, message"
        " FROM ingest_batches ORDER BY batch_id DESC LIMIT ?",
        [limit],
    )
    _print_frame(frame, output_format)


@cli.command()
@click.option("--batch", "batch_id", type=int, default=None, help="One batch (default: every batch).")
@click.option("--limit", type=int, default=100, show_default=True)
@format_option
@warehouse_option
def quarantine(batch_id: int | None, limit: int, output_format: str, warehouse_path: Path | None) -> None:
    """Show rows that could not be loaded, with file, row, column and reason."""
    frame = _warehouse(warehouse_path).query(
        "SELECT batch_id, file, row_number, column_name, reason, raw_row FROM quarantine"
        " WHERE ? IS NULL OR batch_id = ? ORDER BY batch_id DESC, file, row_number LIMIT ?",
        [batch_id, batch_id, limit],
    )
    _print_frame(frame, output_format)


@cli.command()
@warehouse_option
def migrate(warehouse_path: Path | None) -> None:
    """Upgrade the warehouse's schema to this version of finops."""
    wh = _warehouse(warehouse_path)
    version = wh.migrate()
    console.print(f"{wh.path}: schema version {version}")


# -- report -----------------------------------------------------------------------------


@cli.group()
def report() -> None:
    """Render the reports a CFO reads (self-contained HTML)."""


@report.command("quarterly")
@click.option("--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
)
@warehouse_option
@config_option
def report_quarterly(quarter: str | None, out_dir: Path, warehouse_path: Path | None, config_path: Path | None) -> None:
    """Render the quarterly review to OUT/quarterly-review-QUARTER.html."""
    from finops import report as reporting
    from finops.config import load_config, resolve_path
    from finops.periods import Quarter, latest_complete_quarter

    wh = _warehouse(warehouse_path)
    config_file = resolve_path(config_path)
    load_config(config_file)  # fail here, with the line, rather than inside the notebook
    chosen = Quarter.parse(quarter) if quarter else latest_complete_quarter(wh)
    console.print(f"Rendering the {chosen} quarterly review from {wh.path} …")
    html = reporting.render_quarterly(
        str(chosen),
        warehouse=wh.path.resolve(),
        config=config_file.resolve() if config_file.exists() else None,
        out_dir=out_dir,
    )
    console.print(f"Quarterly review: [bold]{html}[/]")


# -- output helpers ---------------------------------------------------------------------


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _print_frame(frame: pl.DataFrame, output_format: str, *, title: str | None = None) -> None:
    if output_format == "csv":
        sys.stdout.write(frame.write_csv())
        return
    if output_format == "json":
        rows = frame.to_dicts()
        sys.stdout.write(json.dumps(rows, default=_json_default, indent=2) + "\n")
        return
    table = Table(title=title, title_justify="left")
    for name, dtype in frame.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    if frame.height == 0:
        console.print("(no rows)", style="dim")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,.2f}" if value == value.quantize(Decimal("0.0000000001")) else str(value)
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: JSON numbers would go through float
    return str(value)


class _progress:
    """A rich progress bar fed by a connector's progress(description, completed, total) calls."""

    def __enter__(self) -> Callable[[str, int, int], None]:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        )
        self._progress.__enter__()
        self._task = self._progress.add_task("loading", total=None)

        def update(description: str, completed: int, total: int) -> None:
            self._progress.update(self._task, description=description, completed=completed, total=total)

        return update

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)


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


if __name__ == "__main__":
    main()
