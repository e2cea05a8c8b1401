"""The warehouse as a Hive-partitioned Parquet dataset that Spark, Athena, BigQuery or DuckDB read.

``finops export parquet DIR`` writes one folder per table::

    DIR/charges/x_Source=aws-cur/billing_month=2026-07/data_0.parquet
    DIR/llm_requests/month=2026-07/data_0.parquet
    DIR/prices/data_0.parquet
    DIR/_finops_export.json          what was written: tables, rows, partitions, the last batch

Why this shape: the two big tables are partitioned the way analyses filter them (a billing month,
a source), so a reader that prunes partitions reads one month of one source, and a restated month
is one folder. The partition columns (``billing_month``, ``month``) are added; every warehouse
column stays in the files with its type (DECIMAL stays DECIMAL, so money stays exact).

The export is written next to DIR and swapped in when complete, so a reader (or the Spark engine,
:mod:`finops.warehouse.engine`) never sees half an export.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from finops.exceptions import WarehouseError

__all__ = [
    "EXPORTED_TABLES",
    "EXPORT_MANIFEST",
    "ROLLUP_OF",
    "ExportedTable",
    "export_parquet",
    "partition_columns",
    "read_manifest",
]

EXPORT_MANIFEST = "_finops_export.json"

# Table -> (extra partition columns as SQL, PARTITION_BY columns). Tables the analyses read; the
# connectors' own bookkeeping (source_state) and native duplicates (azure_export_lines) stay home.
EXPORTED_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "charges": ("strftime(BillingPeriodStart, '%Y-%m') AS billing_month", ("x_Source", "billing_month")),
    "charges_daily": ("strftime(BillingPeriodStart, '%Y-%m') AS billing_month", ("x_Source", "billing_month")),
    "llm_requests": ("strftime(period_start, '%Y-%m') AS month", ("month",)),
    "llm_requests_daily": ("strftime(period_start, '%Y-%m') AS month", ("month",)),
    "prices": ("", ()),
    "sku_prices": ("", ()),
    "billing_projects": ("", ()),
    "ingest_batches": ("", ()),
    "quarantine": ("", ()),
}


ROLLUP_OF: dict[str, str] = {"charges_daily": "charges", "llm_requests_daily": "llm_requests"}
"""Each daily rollup and the table it sums: a rollup is read only beside its own table. The
analyses read the rollups by these names (charges first), from here."""


def partition_columns(table: str) -> tuple[str, ...]:
    """The columns an export adds to ``table`` for its folders (``billing_month``, ``month``), not the warehouse's."""
    return tuple(c for c in EXPORTED_TABLES.get(table, ("", ()))[1] if c in ("billing_month", "month"))


@dataclasses.dataclass(frozen=True)
class ExportedTable:
    """One table of an export: where, how many rows, how many partition folders."""

    table: str
    path: Path
    rows: int
    partitions: int
    partition_by: tuple[str, ...]


def export_parquet(
    wh,
    out_dir: str | Path,
    *,
    tables: Sequence[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[ExportedTable]:
    """Write the warehouse's tables under ``out_dir`` as Hive-partitioned Parquet; replace what was there.

    ``tables`` limits the export (default: every table in :data:`EXPORTED_TABLES`). ``progress`` is
    called as ``progress(table, done, total)`` after each table. Returns one :class:`ExportedTable`
    per table, also written to ``out_dir/_finops_export.json``.
    """
    names = list(tables) if tables else list(EXPORTED_TABLES)
    unknown = [name for name in names if name not in EXPORTED_TABLES]
    if unknown:
        raise WarehouseError(
            f"cannot export {', '.join(unknown)}: not a warehouse table the export knows",
            hint=f"choose from {', '.join(EXPORTED_TABLES)}",
        )
    target = Path(out_dir).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise WarehouseError(f"cannot export to {target}: it is a file, not a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / EXPORT_MANIFEST).exists():
        raise WarehouseError(
            f"cannot export to {target}: the folder has files that are not a finops export",
            hint="choose an empty or new folder; an earlier export there (with _finops_export.json) is replaced",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()

    written: list[ExportedTable] = []
    try:
        with wh.reader() as con:
            last_batch = con.execute("SELECT max(batch_id) FROM ingest_batches").fetchone()[0]
            for done, name in enumerate(names, start=1):
                extra, partition_by = EXPORTED_TABLES[name]
                select = f"SELECT *{', ' + extra if extra else ''} FROM {name}"
                rows = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                folder = staging / name
                if partition_by:
                    # An empty table still gets its folder and one file, so readers find its schema.
                    if rows:
                        con.execute(
                            f"COPY ({select}) TO '{sql_path(folder)}' "
                            f"(FORMAT parquet, PARTITION_BY ({', '.join(partition_by)}), COMPRESSION zstd)"
                        )
                        partitions = _count_partitions(folder, len(partition_by))
                    else:
                        folder.mkdir()
                        _copy_one_file(con, f"SELECT * FROM {name}", folder)
                        partitions = 0
                else:
                    folder.mkdir()
                    _copy_one_file(con, select, folder)
                    partitions = 0
                written.append(ExportedTable(name, target / name, rows, partitions, partition_by))
                if progress is not None:
                    progress(name, done, len(names))
        manifest = {
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "warehouse": str(wh.path),
            "last_batch_id": last_batch,
            "tables": {
                t.table: {"rows": t.rows, "partitions": t.partitions, "partition_by": list(t.partition_by)}
                for t in written
            },
        }
        (staging / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def read_manifest(out_dir: str | Path) -> dict | None:
    """The manifest an export wrote, or None when ``out_dir`` holds no finops export."""
    path = Path(out_dir).expanduser() / EXPORT_MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _copy_one_file(con, select: str, folder: Path) -> None:
    con.execute(f"COPY ({select}) TO '{sql_path(folder / 'data_0.parquet')}' (FORMAT parquet, COMPRESSION zstd)")


def _count_partitions(folder: Path, depth: int) -> int:
    pattern = "/".join(["*"] * depth)
    return sum(1 for p in folder.glob(pattern) if p.is_dir())


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with two renames, so the old export stays whole until the new one is."""
    if target.exists():
        retired = target.with_name(f".{target.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(target)


def sql_path(path: Path) -> str:
    """``path`` for a single-quoted SQL literal."""
    return str(path).replace("'", "''")
