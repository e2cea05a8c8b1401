"""Loading AWS deliveries: :func:`ingest`, skipping unchanged manifests, one batch per delivery.

For an export with manifests, each billing period's newest manifest is loaded unless its sha256
equals the one saved with the last load of that period and those rows are still in `charges`;
files without manifest are one delivery of their own. CSV files are staged as text (their
malformed lines go to the quarantine with their line); Parquet is read in place. The warehouse
replaces the delivery's partitions and saves the manifest's checksum in the same transaction.
An AWS FOCUS export reuses :mod:`connectors.focus`'s staging inside this batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from connectors import focus
from connectors.aws_cur.discover import (
    DATA_SUFFIXES,
    SOURCE_KIND,
    ProgressCallback,
    _Export,
    _has_manifests,
    _LocalExport,
    _Manifest,
    _parse_manifest,
    _S3Export,
)
from connectors.aws_cur.inspect import REQUIRED_FIELDS, CurFile, Dialect, _inspect_all
from connectors.aws_cur.map import SERVICES, _focus_sql, _Relation, _typed_sql
from connectors.files import csv_rejects_sql, expand, sql_literal
from connectors.staging import (
    StagedRows,
    checksums,
    errors_quarantine_sql,
    files_side_by_side,
    first_line,
    stage_files_side_by_side,
    stage_raw,
)
from finops.exceptions import SourceError
from finops.warehouse import FOCUS_COLUMNS, PARTITION_COLUMNS, LoadBatch, LoadResult, SourceFile, Warehouse

# -- what a load returns --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PeriodLoad:
    """One delivery loaded (one billing period, or a set of files without manifest).

    Shaped like :class:`connectors.focus.IngestReport`, so the CLI prints it the same way.
    """

    period: str | None  # YYYY-MM; None for files without manifest (their periods are in period_totals)
    manifest: str | None  # the manifest's URI, None without one
    export_id: str  # x_ExportId of the loaded rows
    dialect: Dialect
    result: LoadResult
    files: list[CurFile]
    period_totals: pl.DataFrame  # billing_period, rows, billed_cost, effective_cost
    quarantine_sample: pl.DataFrame  # file, row_number, column_name, reason (first 20)


@dataclasses.dataclass(frozen=True)
class AwsIngestReport:
    """What an AWS load did: the periods loaded and those skipped as unchanged."""

    loads: list[PeriodLoad]
    skipped: list[tuple[str, int]]  # (YYYY-MM, batch_id that loaded the same manifest)


# -- public entry point ---------------------------------------------------------------------


def ingest(
    wh: Warehouse,
    uri: str | Sequence[str],
    *,
    periods: Sequence[str] | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    progress: ProgressCallback | None = None,
) -> AwsIngestReport:
    """Load an AWS cost export into ``charges``; return the periods loaded and skipped.

    Parameters
    ----------
    wh
        The warehouse.
    uri
        ``s3://bucket/prefix/export-name``, a local directory in the same layout, or local
        export files / globs without manifest (a list of them is fine).
    periods
        Billing periods (``YYYY-MM``) to load; default every period the export has.
    profile, endpoint_url
        boto3 profile and S3 endpoint (e.g. a test server); default credential chain otherwise.
    progress
        ``progress(description, completed, total)``, called as manifests and files are read.

    Returns
    -------
    AwsIngestReport
        ``loads``: one :class:`PeriodLoad` per period loaded (one for a set of files without
        manifest); ``skipped``: ``(period, batch_id)`` for periods whose manifest had not changed.
    """
    report = progress or (lambda *_: None)
    wanted = _check_periods(periods)
    uris = [uri] if isinstance(uri, str) else list(uri)
    if not uris:
        raise SourceError("no AWS export given", hint="pass s3://bucket/prefix/export-name, a directory or files")
    if len(uris) == 1 and (uris[0].startswith("s3://") or _has_manifests(uris[0])):
        source: _Export = (
            _S3Export(uris[0], profile=profile, endpoint_url=endpoint_url)
            if uris[0].startswith("s3://")
            else _LocalExport(Path(uris[0]).expanduser())
        )
        return _ingest_export(wh, source, wanted, report)
    if any(u.startswith("s3://") for u in uris):
        raise SourceError(
            "give one s3:// export at a time, without local files beside it",
            hint="finops ingest aws-cur s3://BUCKET/PREFIX/EXPORT_NAME",
        )
    return AwsIngestReport([_ingest_files(wh, uris, wanted, report)], [])


def _check_periods(periods: Sequence[str] | None) -> list[str] | None:
    if not periods:
        return None
    bad = [p for p in periods if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", p)]
    if bad:
        raise SourceError(
            f"not a billing period: {', '.join(map(repr, bad))}", hint="use YYYY-MM, e.g. --period 2026-07"
        )
    return sorted(set(periods))


# -- export with manifests ------------------------------------------------------------------


def _ingest_export(
    wh: Warehouse, export: _Export, wanted: list[str] | None, report: ProgressCallback
) -> AwsIngestReport:
    report(f"listing manifests in {export.root}", 0, 0)
    newest: dict[str, _Manifest] = {}
    for manifest in export.manifests():
        current = newest.get(manifest.period)
        if current is None or (manifest.modified, manifest.uri) > (current.modified, current.uri):
            newest[manifest.period] = manifest
    if not newest:
        raise SourceError(
            f"no CUR manifests under {export.root}",
            hint="expected <export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json"
            " (Data Exports) or <report>/YYYYMMDD-YYYYMMDD/<report>-Manifest.json (legacy CUR);"
            " for files without manifest, name the files",
        )
    if wanted:
        missing = [p for p in wanted if p not in newest]
        if missing:
            raise SourceError(
                f"{export.root} has no delivery for {', '.join(missing)}",
                hint=f"periods with a manifest: {', '.join(sorted(newest))}",
            )
    chosen = [newest[p] for p in sorted(newest) if not wanted or p in wanted]
    state = wh.source_state(SOURCE_KIND, "manifest/")
    loads: list[PeriodLoad] = []
    skipped: list[tuple[str, int]] = []
    for manifest in chosen:
        raw = export.read(manifest.uri)
        sha256 = hashlib.sha256(raw).hexdigest()
        key = f"manifest/{export.root}/{manifest.period}"
        previous = state.get(key)
        if previous and previous.get("sha256") == sha256 and _still_loaded(wh, int(previous["batch_id"])):
            skipped.append((manifest.period, int(previous["batch_id"])))
            report(f"{manifest.period}: unchanged", 0, 0)
            continue
        parsed = _parse_manifest(raw, manifest.uri)
        listed = parsed.get("dataFiles") or parsed.get("reportKeys") or []
        if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
            raise SourceError(f"{manifest.uri}: dataFiles / reportKeys is not a list of file names")
        uris = list(dict.fromkeys(export.resolve(x) for x in listed))
        export_id = str(parsed.get("executionId") or parsed.get("assemblyId") or sha256[:32])
        with export.fetched(uris, report, listed_by=manifest.uri) as local:
            files = _inspect_all([(uri, local[uri]) for uri in uris], report)
            loads.append(
                _load(
                    wh,
                    files,
                    export=export,
                    uri=manifest.uri,
                    period=manifest.period,
                    export_id=export_id,
                    manifest=manifest.uri,
                    state={
                        key: {"sha256": sha256, "export_id": export_id, "manifest": manifest.uri, "files": len(uris)}
                    },
                    wanted=None,
                    report=report,
                )
            )
    return AwsIngestReport(loads, skipped)


def _still_loaded(wh: Warehouse, batch_id: int) -> bool:
    """Whether `charges` still holds every row the batch that loaded a manifest wrote (a later
    load of the same partitions from another copy of the export would have replaced them)."""
    counts = wh.query(
        "SELECT b.rows_loaded AS loaded, (SELECT count(*) FROM charges WHERE x_BatchId = b.batch_id) AS remaining"
        " FROM ingest_batches AS b WHERE b.batch_id = ?",
        [batch_id],
    )
    return counts.height == 1 and counts["loaded"][0] == counts["remaining"][0]


# -- files without manifest -----------------------------------------------------------------


def _ingest_files(
    wh: Warehouse, patterns: Sequence[str], wanted: list[str] | None, report: ProgressCallback
) -> PeriodLoad:
    paths = [p for p in expand(patterns, suffixes=DATA_SUFFIXES) if not p.name.lower().endswith("manifest.json")]
    files = _inspect_all([(str(p), p) for p in paths], report)
    sources = checksums([f.local for f in files], report)
    digest = hashlib.sha256("".join(sorted(f.sha256 for f in sources)).encode()).hexdigest()
    return _load(
        wh,
        files,
        sources=sources,
        export=None,
        uri=", ".join(patterns),
        period=None,
        export_id=f"files-sha256:{digest[:32]}",
        manifest=None,
        state=None,
        wanted=wanted,
        report=report,
    )


# -- loading --------------------------------------------------------------------------------


def _load(
    wh: Warehouse,
    files: list[CurFile],
    *,
    sources: list[SourceFile] | None = None,
    export: _Export | None,
    uri: str,
    period: str | None,
    export_id: str,
    manifest: str | None,
    state: dict[str, dict[str, Any]] | None,
    wanted: list[str] | None,
    report: ProgressCallback,
) -> PeriodLoad:
    """Load one delivery's files in one batch (one transaction)."""
    label = period or "files"
    report(f"{label}: checksums", 0, len(files))
    if sources is None:
        sources = checksums([f.local for f in files])
    sources = [dataclasses.replace(source, path=f.uri) for source, f in zip(sources, files, strict=True)]
    dialect: Dialect = files[0].dialect if files else "cur2"
    uri_sql = export.uri_sql if export is not None else (lambda col: col)
    with wh.load(SOURCE_KIND, uri, sources) as batch:
        report(f"{label}: reading {len(files)} file{'s' if len(files) != 1 else ''}", 0, len(files))
        if dialect == "focus":
            rows_sql, quarantine_sql, rows_read = _stage_focus(batch, files, period, export_id, uri_sql, report)
        else:
            rows_sql, quarantine_sql, rows_read = _stage_cur(batch, files, period, wanted, export_id, uri_sql, report)
        if state:
            for value in state.values():
                value["batch_id"] = batch.batch_id
        report(f"{label}: replacing partitions", len(files), len(files))
        # Row order means nothing inside `charges`; not keeping it lets DuckDB write in parallel
        # with less memory. (Only now: staged CSV rows take their line numbers from their order.)
        batch.execute("SET preserve_insertion_order = false")
        try:
            result = batch.replace_partitions(
                "charges",
                rows_sql,
                partition_by=PARTITION_COLUMNS,
                rows_read=rows_read,
                quarantine_sql=quarantine_sql,
                state=state,
            )
        except duckdb.Error as exc:
            raise SourceError(f"{uri}: cannot be loaded: {first_line(exc)}; nothing was written") from None
        period_totals = batch.period_totals()
        sample = batch.quarantine_sample()
    return PeriodLoad(period, manifest, export_id, dialect, result, files, period_totals, sample)


def _stage_focus(batch, files, period, export_id, uri_sql, report) -> tuple[str, str, int]:
    """An AWS FOCUS export: FOCUS's own mapping, with AWS lineage and the delivery's checks.

    The FOCUS connector's staging step is reused rather than ``focus.ingest``, which opens its
    own batch: the manifest's checksum (skip state) and x_ExportId must be written in the same
    transaction as the rows they describe.
    """

    def stage_apart(helper, index: int, file: CurFile) -> StagedRows:
        assert file.focus_file is not None
        return focus._stage_apart(helper, index, file.focus_file)

    rows_read = stage_files_side_by_side(
        batch, files, stage_apart, report, path=lambda f: f.path, rows_table="focus_rows", rejects_table="focus_rejects"
    )
    outside = "false"
    if period:
        outside = f"coalesce(strftime(BillingPeriodStart, '%Y-%m') <> {sql_literal(period)}, false)"
    columns = ", ".join(f'"{c}"' for c in FOCUS_COLUMNS)
    rows_sql = (
        f"SELECT {columns}, '{SOURCE_KIND}' AS x_Source, {batch.batch_id} AS x_BatchId,"
        f" {uri_sql('_file')} AS x_SourceFile, _row AS x_SourceRow, {sql_literal(export_id)} AS x_ExportId"
        f" FROM focus_rows WHERE len(_errors) = 0 AND NOT {outside}"
    )
    quarantine_sql = (
        errors_quarantine_sql("focus_rows", column_pattern=r"\w+", file=uri_sql("_file"))
        + f" UNION ALL SELECT {uri_sql('_file')}, _row, 'BillingPeriodStart',"
        f" 'BillingPeriodStart: billing period ' || strftime(BillingPeriodStart, '%Y-%m') || ' is outside this delivery''s period {period}',"
        " NULL FROM focus_rows WHERE len(_errors) = 0 AND "
        + outside
        + f" UNION ALL SELECT {uri_sql('file')}, row_number, column_name, reason, raw_row FROM focus_rejects"
    )
    return rows_sql, quarantine_sql, rows_read


def _stage_cur(batch, files, period, wanted, export_id, uri_sql, report) -> tuple[str, str | None, int]:
    """Stage what must be staged (CSV rows, a service table) and return (rows SQL, quarantine SQL,
    rows read). Parquet is read in place by the statements that load it: staging ten million
    line items in a temp table first would cost gigabytes of memory for nothing. CSV rows are
    typed once, as each file is staged (see :func:`_stage_csv`)."""
    relations: list[_Relation] = []
    typed_parts: list[str] = []
    rejects: list[str] = []
    parquet = [f for f in files if f.format == "parquet"]
    if parquet:
        relations.append(_parquet_relation(batch, parquet, uri_sql))

    def stage_csv(helper: LoadBatch, index: int, file: CurFile) -> tuple[str, str]:
        return _stage_csv(helper, index, file, period)

    csv = [f for f in files if f.format == "csv"]
    with contextlib.closing(files_side_by_side(batch, csv, stage_csv, report, path=lambda f: f.path)) as staged:
        for typed_table, reject_sql in staged:
            typed_parts.append(f"SELECT * FROM {typed_table}")
            rejects.append(reject_sql)
    batch.stage(
        "aws_services",
        "SELECT * FROM (VALUES "
        + ", ".join(
            f"({sql_literal(code)}, {sql_literal(name)}, {sql_literal(category)}, {sql_literal(sub) if sub else 'NULL'})"
            for code, (name, category, sub) in SERVICES.items()
        )
        + ") AS s(code, name, category, subcategory)",
    )
    if not relations and not typed_parts:
        relations.append(_empty_relation())
    # Rows without a readable period stay in scope: they are quarantined, never silently dropped.
    scope = None
    if wanted:
        months = ", ".join(map(sql_literal, wanted))
        scope = (
            f"strftime(bill_billing_period_start_date, '%Y-%m') IN ({months}) OR bill_billing_period_start_date IS NULL"
        )
    typed = " UNION ALL ".join([*(_typed_sql(r, period) for r in relations), *typed_parts])
    if scope:
        typed = f"SELECT * FROM ({typed}) WHERE {scope}"
    rows_read, bad = batch.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT _ok) FROM ({typed})").fetchone()
    rejected = 0
    if rejects:
        rejected = batch.execute(f"SELECT count(*) FROM ({' UNION ALL '.join(rejects)})").fetchone()[0]
    rows_sql = _focus_sql(typed, batch.batch_id, export_id)
    quarantine = [f"SELECT * FROM ({r})" for r in rejects]
    if bad:  # a clean delivery (the usual case) is not read a third time for nothing
        quarantine.insert(
            0,
            "SELECT _file AS file, _row AS row_number, _error_column AS column_name,"
            f" array_to_string(_errors, '; ') AS reason, _raw AS raw_row FROM ({typed}) WHERE NOT _ok",
        )
    quarantine_sql = " UNION ALL ".join(quarantine) if quarantine else None
    return rows_sql, quarantine_sql, rows_read + rejected


def _parquet_relation(batch, files: list[CurFile], uri_sql) -> _Relation:
    paths = "[" + ", ".join(sql_literal(str(f.local)) for f in files) + "]"
    source = f"read_parquet({paths}, filename = true, file_row_number = true, union_by_name = true)"
    described = batch.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    types = {row[0]: row[1] for row in described if row[0] not in ("filename", "file_row_number")}
    columns: dict[str, str] = {}
    tag_columns: dict[str, str] = {}
    for file in files:
        for canonical, name in file.columns.items():
            columns.setdefault(canonical, name)
        tag_columns.update(file.tag_columns)
    return _Relation(source, uri_sql("r.filename"), "r.file_row_number + 1", columns, types, tag_columns, False)


def _stage_csv(helper: LoadBatch, index: int, file: CurFile, period: str | None) -> tuple[str, str]:
    """Stage one CSV file's line items typed (:func:`_typed_sql`) on a helper batch; return the
    typed table and the quarantine SQL of its malformed lines.

    The files are staged side by side (a gzip CSV reads in one thread) and each is typed once,
    here: the load reads its rows three times (counts, quarantine, insert), and typing text in
    place there cost each read again, twice for the filter on ``_ok`` (DuckDB inlines the
    checks into the filter, where it cannot share their common parts): 1M rows 60 s. The
    tables stay until the load ends; the text is dropped once typed.
    """
    raw, rejects, typed = f"_aws_raw_{index}", f"_aws_rejects_{index}", f"_aws_typed_{index}"
    row_sql = stage_raw(
        helper, raw, rejects, file.local, "csv", file.compression, name=file.uri, rowid="r.rowid", csv_dialect=file.csv_dialect
    )
    types = {name: "VARCHAR" for name in file.types}
    relation = _Relation(f'"{raw}"', sql_literal(file.uri), row_sql, file.columns, types, file.tag_columns, True)
    helper.stage(typed, _typed_sql(relation, period))
    helper.execute(f'DROP TABLE "{raw}"')
    return helper.table_name(typed), csv_rejects_sql(helper.table_name(rejects), file.uri)


def _empty_relation() -> _Relation:
    """A relation with no rows (a manifest listing no files), so the period still records its state."""
    types = {name: "VARCHAR" for name in REQUIRED_FIELDS}
    sql = "(SELECT " + ", ".join(f"CAST(NULL AS VARCHAR) AS {name}" for name in REQUIRED_FIELDS) + " WHERE false)"
    return _Relation(sql, "NULL", "NULL", {n: n for n in REQUIRED_FIELDS}, types, {}, True)
