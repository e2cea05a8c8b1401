"""Commands that look into the warehouse itself: query, batches, quarantine, prices, migrate."""

from __future__ import annotations

from pathlib import Path

import click

from finops.cli.options import _warehouse, format_option, warehouse_option
from finops.cli.output import _print_frame, _progress, console


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
@click.option("--model", default=None, help="Only models whose name contains this text.")
@format_option
@warehouse_option
def prices(model: str | None, output_format: str, warehouse_path: Path | None) -> None:
    """List token prices in USD per 1M tokens (load them with `finops ingest prices`).

    \b
    Example:
      finops prices --model claude
    """
    from connectors import pricing

    frame = pricing.list_prices(_warehouse(warehouse_path), model)
    every_digit = dict.fromkeys(pricing.PRICE_COLUMNS)  # the shared table format rounds to cents
    _print_frame(frame, output_format, title="Prices, USD per 1M tokens", digits=every_digit)


@click.command()
@click.option(
    "--rewrite-file",
    is_flag=True,
    help="Also rewrite the file in this finops's DuckDB storage format, without the space deleted rows left"
    " (a checked copy, then swapped in; needs room for a second copy).",
)
@warehouse_option
def migrate(rewrite_file: bool, warehouse_path: Path | None) -> None:
    """Upgrade the warehouse's schema (and, with --rewrite-file, its file format) to this version of finops.

    \b
    Examples:
      finops migrate
      finops migrate --rewrite-file     # a warehouse made by an older finops; stop scheduled loads first
    """
    from finops.warehouse import STORAGE_VERSION
    from finops.warehouse.rewrite import rewrite_file as rewriting
    from finops.warehouse.rewrite import storage_format

    wh = _warehouse(warehouse_path)
    version = wh.migrate()
    console.print(f"{wh.path}: schema version {version}")
    if rewrite_file:
        with _progress() as progress:
            done = rewriting(wh, progress)
        console.print(
            f"rewrote {done.path}: storage format {done.format_before} → {done.format_after},"
            f" {done.bytes_before / 1e6:,.1f} MB → {done.bytes_after / 1e6:,.1f} MB;"
            f" {len(done.rows)} tables, {sum(done.rows.values()):,} rows, each table checked row for row"
        )
        return
    with wh.reader() as con:
        current = storage_format(con)
    if _version(current) < _version(STORAGE_VERSION):
        console.print(
            f"Its file is in DuckDB's {current} storage format; `finops migrate --rewrite-file` rewrites it in"
            f" {STORAGE_VERSION}+, which loads write about a third faster."
        )


def _version(name: str) -> tuple[int, ...]:
    """(1, 4, 0) for 'v1.4.0+'; (999,) for a name that is not a version ('unknown'), which gets no hint."""
    parts = name.strip("v+").split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (999,)
