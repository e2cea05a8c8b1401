"""`finops export …`: the warehouse in formats other engines read."""

from __future__ import annotations

import time
from pathlib import Path

import click
import polars as pl

from finops.cli.options import _warehouse, warehouse_option
from finops.cli.output import _print_frame, _progress, console
from finops.warehouse.export import EXPORTED_TABLES


@click.group()
def export() -> None:
    """Write the warehouse out for other engines (Spark, Athena, BigQuery, DuckDB)."""


@export.command("parquet")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(list(EXPORTED_TABLES)),
    help="Only this table (repeat for more) [default: all].",
)
@warehouse_option
def export_parquet(out_dir: Path, tables: tuple[str, ...], warehouse_path: Path | None) -> None:
    """Write the warehouse's tables to OUT_DIR as a Hive-partitioned Parquet dataset.

    charges and its daily rollup charges_daily are partitioned by x_Source and billing month
    (x_Source=aws-cur/billing_month=2026-07/), llm_requests and llm_requests_daily by month
    (month=2026-07/); the small tables are one file each. Money stays
    DECIMAL. The new export replaces the old one only when complete. This is what
    engine = "spark" reads (spark_data in finops.toml).

    \b
    Examples:
      finops export parquet data/export
      finops export parquet /mnt/lake/finops --table charges --table llm_requests
    """
    from finops.warehouse.export import export_parquet as exporting

    wh = _warehouse(warehouse_path)
    started = time.monotonic()
    with _progress() as progress:
        written = exporting(
            wh, out_dir, tables=list(tables) or None, progress=lambda name, done, total: progress(name, done, total)
        )
    frame = pl.DataFrame(
        {
            "table": [t.table for t in written],
            "rows": [t.rows for t in written],
            "partitions": [t.partitions for t in written],
            "partitioned_by": [", ".join(t.partition_by) for t in written],
        }
    )
    _print_frame(frame, "table", title=f"{wh.path} → {Path(out_dir).resolve()}/ ({time.monotonic() - started:.1f}s)")
    console.print(f'Next: set engine = "spark" and spark_data = "{out_dir}" in finops.toml, or read it with Spark:')
    console.print(f'  spark.read.parquet("{Path(out_dir).resolve() / "charges"}")', markup=False)
