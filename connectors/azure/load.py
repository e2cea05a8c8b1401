"""Loading Azure export runs: :func:`ingest`, staging, rebuilding months, the state of what is current.

Actual and amortized exports of the same month
----------------------------------------------
The actual-cost export says what the invoice says; the amortized one spreads reservation and
savings plan purchases over the usage they covered and adds the unused part as
UnusedReservation / UnusedSavingsPlan lines. FOCUS wants both in one row (BilledCost,
EffectiveCost). So every loaded export's typed lines are kept in the warehouse table
``azure_export_lines`` (schema v3), tagged with the batch that loaded them, and a load rebuilds
each (billing account, month) it touched in ``charges`` from the current lines of every export
of that month, in one transaction:

* an actual line and an amortized line are the same charge when their key matches — usage
  date, subscription, resource id, meter id and name, ChargeType, PricingModel,
  reservation/benefit id, quantity and unit (``x_LineKey``) — with a row-number tie-break among
  lines whose keys are equal (their costs differ only between exports, not within one);
* BilledCost comes from the actual line, EffectiveCost from the amortized one; a line only in
  the actual export (a purchase) has EffectiveCost 0, a line only in the amortized export (an
  unused reservation) has BilledCost 0. So sum(BilledCost) is the actual export's total and
  sum(EffectiveCost) the amortized export's total, to the cent (checked before writing);
* with only one of the two loaded for a month, both costs come from it; the report says which
  basis each month has (``AzureLoad.partitions.cost_basis``).

All actual and amortized runs of one :func:`ingest` call are one batch (one transaction for
``charges``). Their lines are written first, tagged with the batch; ``source_state`` (saved in
the same transaction as ``charges``) says which batch's lines are current for each export,
date-range folder, billing account and month, and lines of batches no longer current are
deleted. A load that dies half-way therefore leaves ``charges`` and the state as they were, and
its orphaned lines are deleted by the next load. Keep one actual and one amortized export per
scope: two actual exports covering the same subscriptions would be added together. A restated
run that no longer has a billing account or month the earlier run had leaves that month's rows
as they were. FOCUS exports carry both costs already; all FOCUS runs of a call are loaded by
:mod:`connectors.focus` in one batch with source kind "azure", replacing the same partitions
(load FOCUS or actual/amortized exports for a billing account, not both); their x_SourceFile is
the downloaded copy's path, which keeps the blob's path under a temporary folder.

What is counted: the report's rows read are the exports' lines (loaded + quarantined), per run
in ``AzureLoad.runs``. For a month rebuilt from both exports, ``ingest_batches.rows_loaded``
counts the rows written to ``charges`` (an actual and an amortized line make one row, and
current lines of earlier loads are written again), so there it differs from the lines read.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from connectors import focus
from connectors.azure.discover import (
    SOURCE_KIND,
    ExportRun,
    ExportType,
    ProgressCallback,
    SkippedRun,
    _BlobStore,
    _find_runs,
    _LocalStore,
    _newest_runs,
    _run_state_key,
    parse_location,
)
from connectors.azure.inspect import AzureFile, _inspect, _merge_loose_files, _Plan, _plan
from connectors.azure.map import _rebuild_sql, _typed_select
from connectors.staging import (
    StagedRows,
    checksums,
    errors_quarantine_sql,
    side_by_side,
    stage_files_side_by_side,
    stage_rows_apart,
)
from finops.exceptions import SourceError, WarehouseError
from finops.warehouse import (
    AZURE_EXPORT_LINE_COLUMNS,
    CHARGES_COLUMNS,
    PARTITION_COLUMNS,
    LoadBatch,
    LoadResult,
    Warehouse,
)

# -- what the caller gets ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """One export run that a load read: what it was and how many of its lines were good."""

    export: str  # az://…/directory/export-name, a local export folder, or "files"
    export_type: ExportType
    run_id: str
    folder: str | None  # the YYYYMMDD-YYYYMMDD folder; None for files outside the export layout
    files: list[AzureFile]
    rows_read: int
    rows_quarantined: int


@dataclasses.dataclass(frozen=True)
class AzureLoad:
    """One batch: the actual and amortized runs of a call, or its FOCUS runs.

    Shaped like :class:`connectors.focus.IngestReport`, so finops.cli prints it the same way.
    """

    result: LoadResult  # rows read from the exports' files = loaded + quarantined
    files: list[AzureFile]
    period_totals: pl.DataFrame  # billing_period, rows, billed_cost, effective_cost (of the months written)
    quarantine_sample: pl.DataFrame  # file, row_number, column_name, reason
    runs: list[LoadedRun]
    partitions: pl.DataFrame  # billing_account, billing_period, rows, billed_cost, effective_cost, cost_basis

    @property
    def title(self) -> str:
        if len(self.runs) == 1:
            run = self.runs[0]
            return f"{run.export} ({run.export_type}, run {run.run_id})"
        kinds = ", ".join(f"{n} {kind}" for kind in ("actual", "amortized", "focus")
                          if (n := sum(r.export_type == kind for r in self.runs)))  # fmt: skip
        return f"{len(self.runs)} Azure export runs ({kinds})"


@dataclasses.dataclass(frozen=True)
class AzureIngestReport:
    """What :func:`ingest` did: the runs it loaded and the ones it skipped."""

    loads: list[AzureLoad]
    skipped: list[SkippedRun]


# -- loading --------------------------------------------------------------------------------


def ingest(
    wh: Warehouse,
    uri: str | Sequence[str],
    *,
    connection_string: str | None = None,
    progress: ProgressCallback | None = None,
) -> AzureIngestReport:
    """Load Azure cost exports (actual, amortized, FOCUS) from Blob Storage or local files.

    Parameters
    ----------
    wh
        The warehouse.
    uri
        One or more of: ``az://ACCOUNT/CONTAINER/PATH`` (with ``connection_string``), a SAS URL
        (``…?sv=…``), local files, directories or globs.
    connection_string
        The storage account's connection string, for ``az://`` URIs without a SAS token.
    progress
        ``progress(description, completed, total)``, called while listing, downloading and reading.

    Returns
    -------
    AzureIngestReport
        ``loads``: one :class:`AzureLoad` per run loaded; ``skipped``: runs found but not loaded
        (older, already loaded, not cost data) with the reason.

    Every file is checked before anything is written: a file that is not an Azure cost export
    raises :class:`NotAzureExportError` naming the missing columns, and nothing is loaded.
    """
    report = progress or (lambda *_: None)
    uris = [uri] if isinstance(uri, str) else list(uri)
    skipped: list[SkippedRun] = []
    runs: list[ExportRun] = []
    local_patterns = []
    for text in uris:
        location = parse_location(text)
        if location is None:
            local_patterns.append(text)
            continue
        report(f"listing {location}", 0, 0)
        store = _BlobStore(location, connection_string)
        objects = store.list()
        if not objects:
            raise SourceError(
                f"{location}: no blobs there", hint="check the container and path (and the SAS token's list permission)"
            )
        runs += _find_runs(store, objects, skipped)
    if local_patterns:
        local = _LocalStore(local_patterns)
        runs += _find_runs(local, local.list(), skipped)
    runs = _newest_runs(runs, wh.source_state(SOURCE_KIND, "run|"), skipped)
    loads: list[AzureLoad] = []
    with tempfile.TemporaryDirectory(prefix="finops-azure-") as scratch_dir, Warehouse.scratch() as con:
        total = sum(len(r.files) for r in runs)
        done = 0
        plans = []
        for run in runs:
            run.check_complete()
            files = []
            for file in _fetch_and_inspect(con, run, Path(scratch_dir)):
                done += 1
                report(f"fetched {file.path.name}", done, total)
                files.append(file)
            plans.append(_plan(con, run, files))
        plans = _merge_loose_files(plans)
        native = [p for p in plans if p.export_type != "focus"]
        focus_plans = [p for p in plans if p.export_type == "focus"]
        if native:
            loads.append(_load_native(wh, native, report))
        if focus_plans:
            loads.append(_load_focus(wh, focus_plans, progress))
    return AzureIngestReport(loads, skipped)


FETCHES_AT_ONCE = 4
"""Export files downloaded and checked side by side: a download waits on the network, a check
(the gzip stream, the header) reads the whole file in one thread."""


def _fetch_and_inspect(con: duckdb.DuckDBPyConnection, run: ExportRun, scratch: Path) -> Iterator[AzureFile]:
    """Each of ``run``'s files downloaded (blobs) and checked, in the run's order; the first bad
    file in that order is the one raised."""
    return side_by_side(
        con, run.files, lambda cursor, obj: _inspect(cursor, obj, run.store.fetch(obj, scratch)), at_once=FETCHES_AT_ONCE
    )


def _load_focus(wh: Warehouse, plans: list[_Plan], progress: ProgressCallback | None) -> AzureLoad:
    """FOCUS export runs: the FOCUS connector loads them, as source kind "azure", in one batch."""
    loaded = focus.ingest(wh, [f.local for plan in plans for f in plan.files], source=SOURCE_KIND, progress=progress)
    ignored = {f.path: f.ignored_columns for f in loaded.files}
    rejected = dict(
        wh.query(
            "SELECT file, count(*) FROM quarantine WHERE batch_id = ? GROUP BY ALL", [loaded.result.batch_id]
        ).rows()
    )
    runs = []
    for plan in plans:
        files = [dataclasses.replace(f, ignored_columns=ignored.get(f.local, ())) for f in plan.files]
        rows = wh.query(
            "SELECT count(*) FROM charges WHERE x_BatchId = ? AND x_SourceFile IN (SELECT unnest(?::VARCHAR[]))",
            [loaded.result.batch_id, [str(f.local) for f in files]],
        ).item()
        bad = sum(rejected.get(str(f.local), 0) for f in files)
        runs.append(LoadedRun(plan.export, "focus", plan.run_id, plan.folder, files, rows + bad, bad))
    partitions = wh.query(
        "SELECT BillingAccountId AS billing_account, strftime(BillingPeriodStart, '%Y-%m') AS billing_period,"
        " count(*) AS rows, sum(BilledCost) AS billed_cost, sum(EffectiveCost) AS effective_cost,"
        " 'FOCUS export' AS cost_basis FROM charges WHERE x_BatchId = ? GROUP BY ALL ORDER BY ALL",
        [loaded.result.batch_id],
    )
    files = [f for run in runs for f in run.files]
    return AzureLoad(loaded.result, files, loaded.period_totals, loaded.quarantine_sample, runs, partitions)


def _load_native(wh: Warehouse, plans: list[_Plan], report: ProgressCallback) -> AzureLoad:
    """Actual and amortized export runs, in one batch: stage their lines, then rebuild the months they touch."""
    staged = [(plan, file) for plan in plans for file in plan.files]
    sources = checksums([file.local for _, file in staged], report, names=[file.uri for _, file in staged])
    label = plans[0].label if len(plans) == 1 else "; ".join(sorted(p.label for p in plans))
    with wh.load(SOURCE_KIND, label, sources) as batch:
        read: dict[str, int] = {}

        def stage_apart(helper: LoadBatch, index: int, item: tuple[_Plan, AzureFile]) -> StagedRows:
            plan, file = item
            rows = _stage_apart(helper, index, file, plan)
            read[file.uri] = rows.rows_read
            return rows

        stage_files_side_by_side(
            batch, staged, stage_apart, report, path=lambda item: item[1].path, rows_table="azure_rows",
            rejects_table="azure_rejects",
        )  # fmt: skip
        bad = dict(batch.execute(
            "SELECT file, count(*) FROM (SELECT _file AS file FROM azure_rows WHERE len(_errors) > 0"
            " UNION ALL SELECT file FROM azure_rejects) GROUP BY file"
        ).fetchall())  # fmt: skip
        quarantined = sum(bad.values())
        plan_of = {file.uri: plan for plan, file in staged}
        months = batch.execute(
            "SELECT DISTINCT _file, BillingAccountId, BillingPeriodStart FROM azure_rows WHERE len(_errors) = 0"
        ).fetchall()
        report("rebuilding billing months", 0, 1)
        current = _current_lines(batch)
        # Lines of loads that died before their state was saved belong to no current export.
        _delete_lines_not_in(batch, current)
        line_columns = ", ".join(f'"{c}"' for c in (*CHARGES_COLUMNS, *AZURE_EXPORT_LINE_COLUMNS))
        batch.execute(
            f"INSERT INTO azure_export_lines BY NAME SELECT {line_columns} FROM azure_rows WHERE len(_errors) = 0"
        )
        state: dict[str, Any] = {}
        for uri, account, period in months:
            plan = plan_of[uri]
            key = _current_state_key(plan.export_key, plan.folder, account, period)
            state[key] = current[key] = {
                "export_key": plan.export_key, "folder": plan.folder, "account": account, "period": f"{period:%Y-%m-%d}",
                "export_type": plan.export_type, "batch_id": batch.batch_id, "run_id": plan.run_id,
                "submitted": plan.submitted.isoformat(),
            }  # fmt: skip
        for plan in plans:
            if plan.folder is not None:
                state[_run_state_key(plan.export_key, plan.folder)] = {
                    "run_id": plan.run_id,
                    "submitted": plan.submitted.isoformat(),
                    "batch_id": batch.batch_id,
                }
        bases = _stage_rebuild(batch, current, {(account, f"{period:%Y-%m-%d}") for _, account, period in months})
        rebuilt = batch.execute("SELECT count(*) FROM _azure_rebuilt").fetchone()[0]
        result = batch.replace_partitions(
            "charges",
            "SELECT * FROM _azure_rebuilt",
            partition_by=PARTITION_COLUMNS,
            rows_read=rebuilt + quarantined,
            quarantine_sql=errors_quarantine_sql("azure_rows", column_pattern="[^:]+")
            + " UNION ALL SELECT file, row_number, column_name, reason, raw_row FROM azure_rejects",
            state=state,
        )
        _delete_lines_not_in(batch, current)  # the runs this one replaced
        period_totals = batch.period_totals()
        partitions = batch.execute(
            "SELECT BillingAccountId AS billing_account, strftime(BillingPeriodStart, '%Y-%m') AS billing_period,"
            " count(*) AS rows, sum(BilledCost) AS billed_cost, sum(EffectiveCost) AS effective_cost"
            " FROM charges WHERE x_BatchId = ? GROUP BY ALL ORDER BY ALL",
            [batch.batch_id],
        ).pl()
        sample = batch.quarantine_sample()
    basis = pl.DataFrame(
        [{"billing_account": a, "billing_period": p[:7], "cost_basis": b} for (a, p), b in bases.items()],
        schema={"billing_account": pl.String, "billing_period": pl.String, "cost_basis": pl.String},
    )
    partitions = partitions.join(basis, on=["billing_account", "billing_period"], how="left")
    runs = [
        LoadedRun(plan.export, plan.export_type, plan.run_id, plan.folder, plan.files,
                  sum(read[f.uri] for f in plan.files), sum(bad.get(f.uri, 0) for f in plan.files))
        for plan in plans
    ]  # fmt: skip
    # The report counts the exports' own lines; `result` counts the rows written to charges,
    # where an actual and an amortized line of the same charge make one row.
    rows_read = sum(read.values())
    shown = LoadResult(
        result.batch_id, rows_read, rows_read - quarantined, quarantined, result.rows_replaced, result.partitions
    )
    return AzureLoad(shown, [file for _, file in staged], period_totals, sample, runs, partitions)


def _current_state_key(export_key: str, folder: str | None, account: str, period: datetime) -> str:
    return f"current|{export_key}|{folder or ''}|{account}|{period:%Y-%m-%d}"


def _current_lines(batch: LoadBatch) -> dict[str, dict[str, Any]]:
    """Which batch's lines are current for each (export, billing account, month), from source_state."""
    rows = batch.execute(
        "SELECT state_key, value FROM source_state WHERE source_kind = ? AND starts_with(state_key, 'current|')",
        [SOURCE_KIND],
    ).fetchall()
    return {key: json.loads(value) for key, value in rows if value is not None and json.loads(value)}


def _delete_lines_not_in(batch: LoadBatch, current: dict[str, dict[str, Any]]) -> None:
    keep = sorted({entry["batch_id"] for entry in current.values()} | {batch.batch_id})
    batch.execute("DELETE FROM azure_export_lines WHERE x_BatchId NOT IN (SELECT unnest(?::BIGINT[]))", [keep])


def _stage_rebuild(
    batch: LoadBatch, current: dict[str, dict[str, Any]], months: set[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """Stage `_azure_rebuilt`: the rows of `charges` for ``months`` from every current export's lines.

    Returns each month's cost basis. Raises if a total fails to reconcile with its exports.
    """
    entries = [e for e in current.values() if (e["account"], e["period"]) in months]
    batch.stage(
        "_azure_current",
        # DISTINCT: two date-range folders of one export loaded in one batch share their lines' tags.
        "SELECT DISTINCT unnest(?::VARCHAR[]) AS export_key, unnest(?::VARCHAR[]) AS account,"
        " CAST(unnest(?::VARCHAR[]) AS TIMESTAMP) AS period, unnest(?::BIGINT[]) AS batch_id",
        [[e["export_key"] for e in entries], [e["account"] for e in entries], [e["period"] for e in entries],
         [e["batch_id"] for e in entries]],
    )  # fmt: skip
    batch.stage(
        "_azure_lines",
        "SELECT l.* FROM azure_export_lines AS l JOIN _azure_current AS c ON l.x_BatchId = c.batch_id"
        " AND l.x_ExportKey = c.export_key AND l.BillingAccountId = c.account AND l.BillingPeriodStart = c.period",
    )
    batch.stage("_azure_rebuilt", _rebuild_sql(batch.batch_id))
    mismatched = batch.execute(
        "WITH want AS (SELECT BillingAccountId, BillingPeriodStart,"
        "  coalesce(sum(BilledCost) FILTER (x_ExportType = 'actual'), sum(BilledCost)) AS billed,"
        "  coalesce(sum(EffectiveCost) FILTER (x_ExportType = 'amortized'), sum(EffectiveCost)) AS effective"
        "  FROM _azure_lines GROUP BY ALL),"
        " got AS (SELECT BillingAccountId, BillingPeriodStart, sum(BilledCost) AS billed,"
        "  sum(EffectiveCost) AS effective FROM _azure_rebuilt GROUP BY ALL)"
        " SELECT want.BillingAccountId, want.BillingPeriodStart FROM want FULL JOIN got USING (BillingAccountId, BillingPeriodStart)"
        " WHERE want.billed IS DISTINCT FROM got.billed OR want.effective IS DISTINCT FROM got.effective"
    ).fetchall()
    if mismatched:
        raise WarehouseError(
            f"batch {batch.batch_id}: rebuilt Azure costs do not reconcile with the exports for {mismatched[:3]};"
            " nothing was written"
        )
    names = {("actual",): "actual export only", ("amortized",): "amortized export only",
             ("actual", "amortized"): "actual and amortized exports"}  # fmt: skip
    kinds = batch.execute(
        "SELECT BillingAccountId, strftime(BillingPeriodStart, '%Y-%m-%d'), list(DISTINCT x_ExportType ORDER BY x_ExportType)"
        " FROM _azure_lines GROUP BY ALL"
    ).fetchall()
    return {(account, period): names[tuple(types)] for account, period, types in kinds}


def _stage_apart(helper: LoadBatch, index: int, file: AzureFile, plan: _Plan) -> StagedRows:
    """Stage one file's lines (typed, with their errors) into tables of its own; see stage_files_side_by_side."""
    return stage_rows_apart(
        helper,
        index,
        file.local,
        file.format,
        file.compression,
        typed_select=lambda raw, row_number: _typed_select(file, raw, row_number, plan, helper.batch_id),
        rows_table="azure_rows",
        rejects_table="azure_rejects",
        name=file.uri,
        csv_dialect=file.csv_dialect,
    )
