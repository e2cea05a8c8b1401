"""How commands print: the shared consoles, tables/CSV/JSON of a frame, money cells and the progress bar.

One place for output so every command formats a frame, a Decimal or a load's progress the same way
(exact money in JSON as strings, cents in tables, the bar on stderr only on a terminal).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Not on a terminal (a scheduled run's log, a pipe) rich would wrap tables at 80 columns and cut
# their cells to "suc…"; a log is read later, so it gets the whole row unless COLUMNS says otherwise.
_LOG_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
console = Console(highlight=False, soft_wrap=True, width=_LOG_WIDTH)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _print_frame(
    frame: pl.DataFrame, output_format: str, *, title: str | None = None, digits: Mapping[str, int | None] | None = None
) -> None:
    """Print ``frame`` as a table (amounts in cents), CSV or JSON (every digit).

    ``digits``: table columns shown with that many decimals instead of cents (None: every
    significant digit), e.g. unit costs and per-token prices; they stay right-aligned.
    """
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
    places = [(digits or {}).get(name, -1) for name in frame.columns]  # -1: the shared format
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) if n == -1 else _digits(v, n) for v, n in zip(row, places, strict=True)))
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
    if isinstance(value, datetime):  # to the second: a load's start, not its microseconds
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _digits(value: Any, places: int | None) -> str:
    if value is None:
        return ""
    if places is None:
        return f"{Decimal(value).normalize():f}"
    return f"{value:,.{places}f}"


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
