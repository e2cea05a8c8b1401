"""Options shared by many commands, and parsing their text into typed values once, at the edge.

--warehouse, --config and --format; the warehouse a command opens (saying so while it waits for a
lock); --quarter into a Quarter, --basis, and --quarter/--start/--end into one [start, end) period.
Analyses below the CLI only ever see the parsed values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from finops.cli.output import err_console
from finops.periods import Quarter

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


def _warehouse(path: Path | None, *, lock_timeout: float | None = None):
    from finops.warehouse import Warehouse

    return Warehouse(path, lock_timeout=lock_timeout, on_wait=_say_waiting)


def _say_waiting(why: str) -> None:
    """One line when a command pauses for a lock another process holds, so a wait never looks like a hang."""
    err_console.print(f"waiting: {escape(why)}", style="yellow")  # stderr: `--format csv > file` stays clean


def engine_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--engine",
        type=click.Choice(["duckdb", "spark"]),
        envvar="FINOPS_ENGINE",
        default=None,
        help="Run the analyses on duckdb (the warehouse file) or spark (the `finops export parquet` folder, "
        "spark_remote) [env FINOPS_ENGINE; default: finops.toml's engine, else duckdb]",
    )(func)


def _engine(warehouse_path: Path | None, config: Any, engine: str | None):
    """The engine the analyses run on: --engine, else finops.toml's ``engine`` (finops.warehouse.engine)."""
    from finops.warehouse.engine import open_engine

    return open_engine(config, warehouse_path, engine=engine, on_wait=_say_waiting)


def _quarter(wh: Any, text: str | None, *, default: Callable[[Any], Quarter] | None = None) -> Quarter:
    """``--quarter`` as a Quarter; without it, ``default(wh)``: the last complete quarter in the warehouse
    unless the command plans ahead (forecast, budgets). The one place a command's default quarter is decided:
    analyses take the Quarter."""
    from finops.analyses.quarters import latest_complete_quarter

    if text:
        return Quarter.parse(text)
    return (default or latest_complete_quarter)(wh)


def _basis(config: Any, text: str | None) -> str:
    """``--basis``, else finops.toml's ``[allocation] basis`` (itself ``effective`` by default)."""
    return text or config.basis


def _period(wh: Any, quarter: str | None, start: Any, end: Any) -> tuple[Any, Any, str]:
    """[start, end) from --start/--end, else --quarter, else the last complete quarter."""
    if (start is None) != (end is None):
        raise click.UsageError("give both --start and --end, or neither")
    if start is not None:
        if quarter:
            raise click.UsageError("give --quarter or --start/--end, not both")
        return start.date(), end.date(), f"{start:%Y-%m-%d} … {end:%Y-%m-%d}"
    chosen = _quarter(wh, quarter)
    return chosen.start, chosen.end, str(chosen)
