"""FOCUS files (1.0, 1.1, 1.2, 1.3; CSV, .csv.gz, Parquet) into the `charges` table.

How a load goes:

1. ``inspect`` looks at every file first, without touching the warehouse: it matches column
   names case-insensitively to FOCUS names and refuses a file that lacks a column every FOCUS
   version has, naming the missing columns. Nothing is written for a refused load.
2. Each file is read as-is into a staging table. CSV columns are read as text, so a bad value
   is a bad *row* (quarantined with its reason) and never a failed load; lines DuckDB cannot
   parse at all (too many columns, broken quotes) are quarantined too, with their line.
3. Typed columns are computed in SQL: money and quantities as DECIMAL, periods as UTC
   TIMESTAMP, Tags from a JSON object (Azure's brace-less form too) to a string map. The text
   ``NULL`` and empty strings are NULL; columns a version lacks are NULL.
4. The warehouse replaces every (source, billing account, billing period) partition present in
   the files in one transaction, so loading the same delivery twice, or a restated month,
   never double counts. Files of one billing period should be loaded together, in one call:
   a later load of the same period replaces it whole, as a provider's newest delivery does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import polars as pl

from connectors.files import (
    CsvDialect,
    FileFormat,
    detect_format,
    expand,
    money_from_text,
    sql_literal,
    verify_gzip,
)
from connectors.staging import (
    FileColumns,
    StagedRows,
    checksums,
    describe_columns,
    errors_quarantine_sql,
    first_line,
    no_progress,
    side_by_side,
    stage_files_side_by_side,
    stage_rows_apart,
)
from finops.exceptions import NotFocusError
from finops.warehouse import (
    FOCUS_COLUMNS,
    MONEY,
    PARTITION_COLUMNS,
    LoadBatch,
    LoadResult,
    Warehouse,
)

SOURCE_KIND = "focus"

REQUIRED_COLUMNS = (
    "BilledCost",
    "EffectiveCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
)
"""Columns of every FOCUS version from 1.0 on: a file without them is not FOCUS."""

NOT_NULL_COLUMNS = (
    "BilledCost",
    "EffectiveCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
)
"""Columns FOCUS requires a value in: a row without one cannot be charged back or partitioned."""

FOCUS_1_0_COLUMNS = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription",
    "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory",
    "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
    "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingQuantity", "PricingUnit",
    "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceCategory", "ServiceName", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags",
)  # fmt: skip
ADDED_IN = {
    "1.1": ("CapacityReservationId", "CapacityReservationStatus", "CommitmentDiscountQuantity",
            "CommitmentDiscountUnit", "ServiceSubcategory", "SkuMeter", "SkuPriceDetails"),
    "1.2": ("BillingAccountType", "InvoiceId", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
            "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "SubAccountType"),
    "1.3": ("AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId", "AllocatedResourceName",
            "AllocatedTags", "ContractApplied", "HostProviderName", "ServiceProviderName"),
}  # fmt: skip
"""The columns each FOCUS version added: a file's version is the newest whose columns it has."""

# FOCUS 1.3 renamed ProviderName; older readers of our warehouse still ask for ProviderName.
FALLBACKS = {"ProviderName": "ServiceProviderName", "PublisherName": "HostProviderName"}

ProgressCallback = Callable[[str, int, int], None]
"""progress(description, completed, total): called as files are read."""


@dataclasses.dataclass(frozen=True)
class FocusFile:
    """A file checked to be FOCUS: where each FOCUS column is in it, and its types."""

    path: Path
    format: FileFormat
    compression: str | None
    version: str  # "1.0" … "1.3", judged by the columns present
    columns: dict[str, str]  # FOCUS name → the file's own spelling
    types: dict[str, str]  # the file's spelling → DuckDB type
    ignored_columns: tuple[str, ...]  # columns that are not FOCUS 1.0–1.3 (e.g. x_…)
    csv_dialect: CsvDialect | None = None  # CSV: as sniffed when inspected, so the stage does not sniff again


@dataclasses.dataclass(frozen=True)
class IngestReport:
    """What a FOCUS load did, for the CLI to print and tests to check."""

    result: LoadResult
    files: list[FocusFile]
    period_totals: pl.DataFrame  # billing_period, rows, billed_cost, effective_cost
    quarantine_sample: pl.DataFrame  # the first quarantined rows: file, row_number, column_name, reason


def inspect(paths: Sequence[Path]) -> list[FocusFile]:
    """Check that each file is readable FOCUS; raise before anything is written.

    The files are looked at side by side, one per core: a gzip CSV is read in one thread, and
    both the gzip check and DuckDB's sniffing of its header read the whole file (72 monthly
    15k-line parts: 10.7 s one after another). The first bad file, in the order given, is raised.
    """
    with Warehouse.scratch() as con:
        return list(side_by_side(con, paths, _inspect_file))


def _inspect_file(con: duckdb.DuckDBPyConnection, path: Path) -> FocusFile:
    fmt, compression = detect_format(path)
    if compression == "gzip":
        verify_gzip(path)
    return focus_file(path, fmt, compression, describe_columns(con, path, fmt, compression))


def focus_file(path: Path, fmt: FileFormat, compression: str | None, described: FileColumns) -> FocusFile:
    """The :class:`FocusFile` of a file whose columns were read (:func:`describe_columns`); a
    NotFocusError naming the FOCUS columns it lacks."""
    types = described.types
    by_lower = {name.strip().lower(): name for name in types}
    columns = {focus: by_lower[focus.lower()] for focus in FOCUS_COLUMNS if focus.lower() in by_lower}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise NotFocusError(
            f"{path}: not a FOCUS file: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            hint="FOCUS 1.0–1.3 files have these columns; for a provider's native export use its own connector",
        )
    known = set(columns.values())
    ignored = tuple(name for name in types if name not in known)
    version = "1.0"
    for candidate, added in ADDED_IN.items():
        if any(c in columns for c in added):
            version = candidate
    return FocusFile(path, fmt, compression, version, columns, types, ignored, described.csv_dialect)


def ingest(
    wh: Warehouse,
    patterns: Sequence[str | Path],
    *,
    source: str = SOURCE_KIND,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Load FOCUS files matching ``patterns`` into ``charges``; return what was read and loaded."""
    paths = expand(patterns, suffixes=(".csv", ".csv.gz", ".parquet", ".pq", ".tsv", ".tsv.gz"))
    files = inspect(paths)
    report = progress or no_progress
    total = len(files)
    sources = checksums([f.path for f in files], report)
    uri = ", ".join(str(p) for p in patterns)
    with wh.load(source, uri, sources) as batch:
        rows_read = stage_files_side_by_side(
            batch, files, _stage_apart, report, path=lambda f: f.path, rows_table="focus_rows", rejects_table="focus_rejects"
        )
        report("replacing partitions", total, total)
        columns = ", ".join(f'"{c}"' for c in FOCUS_COLUMNS)
        result = batch.replace_partitions(
            "charges",
            f"SELECT {columns}, '{source}' AS x_Source, {batch.batch_id} AS x_BatchId,"
            " _file AS x_SourceFile, _row AS x_SourceRow FROM focus_rows WHERE len(_errors) = 0",
            partition_by=PARTITION_COLUMNS,
            rows_read=rows_read,
            quarantine_sql=errors_quarantine_sql("focus_rows", column_pattern=r"\w+")
            + " UNION ALL SELECT file, row_number, column_name, reason, raw_row FROM focus_rejects",
        )
        period_totals = batch.period_totals()
        sample = batch.quarantine_sample()
    return IngestReport(result, files, period_totals, sample)


def _stage_apart(helper: LoadBatch, index: int, file: FocusFile) -> StagedRows:
    """Stage one file's rows (typed, with their errors) into tables of its own; see stage_files_side_by_side."""
    return stage_rows_apart(
        helper,
        index,
        file.path,
        file.format,
        file.compression,
        typed_select=lambda raw, row_number: _typed_select(file, raw, row_number),
        rows_table="focus_rows",
        rejects_table="focus_rejects",
        csv_dialect=file.csv_dialect,
    )


def _typed_select(file: FocusFile, raw: str, row_number: str) -> str:
    """SELECT every FOCUS column typed, plus _file, _row, _errors (a list of reasons) and _raw."""
    exprs: list[str] = []
    errors: list[str] = []
    for name, target in FOCUS_COLUMNS.items():
        source = file.columns.get(name)
        fallback = file.columns.get(FALLBACKS.get(name, ""))
        if source is None and fallback is None:
            exprs.append(f'CAST(NULL AS {target}) AS "{name}"')
            continue
        if source is None or fallback is not None:  # the 1.3 name fills the deprecated one
            parts = [_text(f'r."{c}"', file.types[c].upper()) for c in (source, fallback) if c is not None]
            exprs.append(f'coalesce({", ".join(parts)}) AS "{name}"')
            continue
        col = f'r."{source}"'
        src_type = file.types[source].upper()
        text = _text(col, src_type)
        shown = f"left({text}, 60)"
        if target == MONEY:
            typed = f"TRY_CAST({col} AS {MONEY})" if _is_numeric(src_type) else money_from_text(text)
            errors.append(f"CASE WHEN {text} IS NOT NULL AND {typed} IS NULL THEN '{name}: cannot read ''' || {shown} || ''' as a number' END")
        elif target == "TIMESTAMP":
            if src_type.startswith(("TIMESTAMP", "DATE")):
                typed = f"CAST({col} AS TIMESTAMP)"
            else:
                typed = f"CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP)"
            errors.append(
                f"CASE WHEN {text} IS NOT NULL AND {typed} IS NULL THEN '{name}: cannot read ''' || {shown} || ''' as a date-time' END"
            )
        elif target.startswith("MAP"):
            if src_type.startswith("MAP"):
                typed = f"CAST({col} AS MAP(VARCHAR, VARCHAR))"
            else:
                typed, check = _json_object_map(text)
                errors.append(f"CASE WHEN {text} IS NOT NULL AND NOT ({check}) THEN '{name}: not a JSON object: ''' || {shown} || '''' END")
        else:
            typed = text
        if name in NOT_NULL_COLUMNS:
            errors.append(f"CASE WHEN {text} IS NULL THEN '{name}: empty, but FOCUS requires a value' END")
        exprs.append(f'{typed} AS "{name}"')
    error_list = f"list_filter([{', '.join(errors)}]::VARCHAR[], e -> e IS NOT NULL)"
    raw_row = ", ".join(f"{sql_literal(name)}: r.\"{name}\"" for name in file.types)
    # Values and their checks in one projection: DuckDB then trims and casts each value once.
    return (
        f"SELECT {', '.join(exprs)}, {sql_literal(str(file.path))} AS _file, {row_number} AS _row, {error_list} AS _errors,"
        f" CASE WHEN len({error_list}) > 0 THEN to_json({{{raw_row}}}) END AS _raw"
        f" FROM (SELECT *, rowid AS _rowid FROM \"{raw}\" AS r) AS r"
    )


def _text(col: str, src_type: str) -> str:
    """The value as trimmed text, NULL for empty strings and the text NULL."""
    as_text = col if src_type == "VARCHAR" else f"CAST({col} AS VARCHAR)"
    return f"nullif(nullif(trim({as_text}), ''), 'NULL')"


def _json_object_map(text: str) -> tuple[str, str]:
    """(map expression, validity check) for a JSON object held as text; Azure omits the braces."""
    wrapped = f"(CASE WHEN starts_with({text}, '{{') THEN {text} ELSE '{{' || {text} || '}}' END)"
    check = f"(CASE WHEN json_valid({wrapped}) THEN json_type({wrapped}::JSON) = 'OBJECT' ELSE false END)"
    as_map = (
        f"(CASE WHEN {check} THEN map_from_entries(list_transform(json_keys({wrapped}::JSON),"
        f" k -> {{'key': k, 'value': {wrapped}::JSON ->> k}})) END)"
    )
    return as_map, check


def _is_numeric(src_type: str) -> bool:
    return src_type.startswith(("DECIMAL", "DOUBLE", "FLOAT", "REAL", "INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"))


_first_line = first_line  # the name aws_cur and azure import
