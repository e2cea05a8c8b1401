"""Checking Azure export files before anything is written, and what kind of export each run is.

Columns
-------
Names are matched case-insensitively, so Enterprise Agreement (PascalCase), Microsoft Customer
Agreement (camelCase) and older files are read alike; :data:`COLUMN_ALIASES` lists the names
each field is found under, first match wins (e.g. cost: CostInBillingCurrency, PreTaxCost, Cost;
date: Date, UsageDateTime; subscription: SubscriptionId, SubscriptionGuid). A file without the
:data:`REQUIRED_FIELDS` raises :class:`NotAzureExportError` naming the missing columns; a file
with the columns FOCUS requires is a FOCUS export.

Export type
-----------
A run is FOCUS by its columns, else actual or amortized as its manifest says. Without a
manifest, an export is amortized when its path says "amortized"/"amortised" or it has
UnusedReservation / UnusedSavingsPlan lines; else actual. Files outside the export layout are
merged into one run per export type (:func:`_merge_loose_files`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import re
from datetime import datetime
from pathlib import Path, PurePath, PurePosixPath
from typing import Literal

import duckdb

from connectors import focus
from connectors.azure.discover import DATASETS, ExportObject, ExportRun, ExportType
from connectors.files import CsvDialect, FileFormat, detect_format, read_sql, verify_gzip
from connectors.focus import _text
from connectors.staging import describe_columns
from finops.exceptions import SourceError

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "cost": ("CostInBillingCurrency", "PreTaxCost", "Cost"),
    "date": ("Date", "UsageDateTime", "UsageDate"),
    "currency": ("BillingCurrencyCode", "BillingCurrency", "Currency"),
    "subscription_id": ("SubscriptionId", "SubscriptionGuid"),
    "meter_category": ("MeterCategory",),
    "billing_account_id": ("BillingAccountId",),
    "billing_account_name": ("BillingAccountName",),
    "billing_period_start": ("BillingPeriodStartDate",),
    "billing_period_end": ("BillingPeriodEndDate",),
    "subscription_name": ("SubscriptionName",),
    "meter_subcategory": ("MeterSubCategory",),
    "meter_id": ("MeterId",),
    "meter_name": ("MeterName",),
    "product_name": ("ProductName", "Product"),
    "resource_id": ("ResourceId", "InstanceId", "InstanceName"),
    "resource_name": ("ResourceName",),
    "resource_type": ("ResourceType",),
    "resource_location": ("ResourceLocation", "Location"),
    "availability_zone": ("AvailabilityZone",),
    "consumed_service": ("ConsumedService",),
    "charge_type": ("ChargeType",),
    "pricing_model": ("PricingModel",),
    "frequency": ("Frequency",),
    "quantity": ("Quantity", "UsageQuantity"),
    "unit_of_measure": ("UnitOfMeasure",),
    "unit_price": ("UnitPrice",),
    "payg_price": ("PayGPrice",),
    "payg_cost": ("PaygCostInBillingCurrency",),
    "tags": ("Tags",),
    "additional_info": ("AdditionalInfo",),
    "reservation_id": ("ReservationId",),
    "reservation_name": ("ReservationName",),
    "benefit_id": ("BenefitId",),
    "benefit_name": ("BenefitName",),
    "invoice_id": ("InvoiceId",),
    "publisher_name": ("PublisherName",),
}
"""Each field we read and the column names it goes by in EA, MCA and older cost files."""


REQUIRED_FIELDS = ("cost", "date", "currency", "subscription_id", "meter_category")
"""Fields every Azure cost details file has: a file without them is not one."""


class NotAzureExportError(SourceError):
    """A file handed to the Azure connector is not a Cost Management cost export."""


@dataclasses.dataclass(frozen=True)
class AzureFile:
    """One export file checked to be Azure cost details (``native``) or FOCUS."""

    path: PurePath  # the blob name or local path, for people (``.name`` is the file name)
    uri: str  # az://ACCOUNT/CONTAINER/NAME or the local path: stored as x_SourceFile
    local: Path  # where it is read from (a downloaded copy for blobs)
    format: FileFormat
    compression: str | None
    kind: Literal["native", "focus"]
    columns: dict[str, str]  # field → the file's own spelling (native files)
    types: dict[str, str]  # the file's spelling → DuckDB type
    ignored_columns: tuple[str, ...]  # columns this connector does not read
    csv_dialect: CsvDialect | None = None  # CSV: as sniffed here, so the stage does not sniff again


# -- checking files before anything is written -------------------------------------------


def _inspect(con: duckdb.DuckDBPyConnection, obj: ExportObject, local: Path) -> AzureFile:
    """Read a file's header; refuse it, naming what is missing, unless it is Azure cost data."""
    fmt, compression = detect_format(local)
    if compression == "gzip":
        verify_gzip(local)
    described = describe_columns(con, local, fmt, compression, name=obj.uri)
    types, dialect = described.types, described.csv_dialect
    by_lower = {name.strip().lower(): name for name in types}
    shown: PurePath = Path(obj.name) if obj.uri == obj.name else PurePosixPath(obj.name)
    if all(c.lower() in by_lower for c in focus.REQUIRED_COLUMNS):
        return AzureFile(shown, obj.uri, local, fmt, compression, "focus", {}, types, (), dialect)
    columns = {}
    for field, aliases in COLUMN_ALIASES.items():
        spelling = next((by_lower[a.lower()] for a in aliases if a.lower() in by_lower), None)
        if spelling is not None:
            columns[field] = spelling
    missing = [f for f in REQUIRED_FIELDS if f not in columns]
    if missing:
        names = "; ".join(" or ".join(COLUMN_ALIASES[f]) for f in missing)
        raise NotAzureExportError(
            f"{obj.uri}: not an Azure cost export: missing column{'s' if len(missing) > 1 else ''} {names}",
            hint="expected Cost Management cost details (actual or amortized, EA or MCA) or a FOCUS export",
        )
    used = set(columns.values())
    ignored = tuple(name for name in types if name not in used)
    return AzureFile(shown, obj.uri, local, fmt, compression, "native", columns, types, ignored, dialect)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A run ready to load: its checked files and what kind of export it is."""

    export_key: str
    folder: str | None
    run_id: str
    submitted: datetime
    export_type: ExportType
    files: list[AzureFile]

    @property
    def export(self) -> str:
        return "files" if self.export_key.startswith("file:") else self.export_key

    @property
    def label(self) -> str:
        if self.folder is None:
            return ", ".join(f.uri for f in self.files)
        return f"{self.export_key}/{self.folder} run {self.run_id}"


def _plan(con: duckdb.DuckDBPyConnection, run: ExportRun, files: list[AzureFile]) -> _Plan:
    kinds = {f.kind for f in files}
    if len(kinds) > 1:
        raise SourceError(
            f"{run.export} run {run.run_id}: mixes FOCUS and native cost files",
            hint="an export run has one dataset; load its files separately",
        )
    export_type = _export_type(con, run, files)
    if run.export_key is None or run.folder is None:
        return _Plan(f"file:{export_type}", None, run.run_id, run.submitted, export_type, files)
    return _Plan(run.export_key, run.folder, run.run_id, run.submitted, export_type, files)


def _export_type(con: duckdb.DuckDBPyConnection, run: ExportRun, files: list[AzureFile]) -> ExportType:
    """FOCUS by its columns; actual or amortized by the manifest, else the path, else the lines."""
    if files[0].kind == "focus":
        return "focus"
    declared = DATASETS.get((run.dataset or "").lower())
    if declared in ("actual", "amortized"):
        return declared
    # The export's name, or for loose files their folder and name: not the whole path, whose
    # upper folders say nothing about this export.
    names = [posixpath.basename(run.export_key or "")]
    names += [posixpath.basename(posixpath.dirname(f.uri)) + "/" + f.path.name for f in files]
    said = " ".join(names).lower()
    if re.search(r"amorti[sz]", said):
        return "amortized"
    if "actual" in said:
        return "actual"
    return "amortized" if any(_has_unused_commitment_lines(con, f) for f in files) else "actual"


def _has_unused_commitment_lines(con: duckdb.DuckDBPyConnection, file: AzureFile) -> bool:
    column = file.columns.get("charge_type")
    if column is None:
        return False
    text = _text(f'"{column}"', file.types[column].upper())
    return (
        con.execute(
            f"SELECT count(*) FROM {read_sql(file.local, file.format, file.compression, csv_dialect=file.csv_dialect)}"
            f" WHERE lower({text}) IN ('unusedreservation', 'unusedsavingsplan')"
        ).fetchone()[0]
        > 0
    )


def _merge_loose_files(plans: list[_Plan]) -> list[_Plan]:
    """Files outside the export layout: one run per export type, as one delivery."""
    merged: dict[str, _Plan] = {}
    result = []
    for plan in plans:
        if plan.folder is not None or plan.export_type == "focus":
            result.append(plan)
            continue
        earlier = merged.get(plan.export_key)
        files = (earlier.files if earlier else []) + plan.files
        submitted = max(plan.submitted, earlier.submitted) if earlier else plan.submitted
        merged[plan.export_key] = dataclasses.replace(plan, files=files, submitted=submitted)
    for plan in merged.values():
        digest = hashlib.sha256("\n".join(sorted(f.uri for f in plan.files)).encode()).hexdigest()[:12]
        result.append(dataclasses.replace(plan, run_id=f"files-{digest}"))
    return result
