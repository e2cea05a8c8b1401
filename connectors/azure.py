"""Azure Cost Management exports (actual cost, amortized cost, FOCUS) into the `charges` table.

Where exports are read from
---------------------------
* ``az://ACCOUNT/CONTAINER/PATH`` with a storage connection string (the CLI reads it from
  ``$AZURE_STORAGE_CONNECTION_STRING`` or the variable ``--connection-string-env`` names);
* a SAS URL: ``az://ACCOUNT/CONTAINER/PATH?sv=…``, ``https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH?sv=…``,
  or the emulator's path style ``http://127.0.0.1:10000/ACCOUNT/CONTAINER/PATH?sv=…``;
* local files, directories (searched recursively) or globs, e.g. a downloaded copy of the container.

Credentials are used, never shown: messages, the warehouse's records (``ingest_batches.uri``,
``x_SourceFile``) and errors name blobs as ``az://ACCOUNT/CONTAINER/NAME``, without a query
string. Azure SDK errors are mapped to :class:`SourceError` here with our own words (the error
code and HTTP status, never the SDK's text or request URL) and without the SDK exception
chained, since its text and URL can carry a SAS token. ``azure-identity`` is not a dependency,
so there is no DefaultAzureCredential: use a connection string or a SAS URL.

Which files make one export run
-------------------------------
Cost Management exports (v2) write every run to
``<directory>/<export-name>/<YYYYMMDD-YYYYMMDD>/<run-id>/part_*.csv|.csv.gz|.parquet`` with a
``manifest.json`` beside the parts. The manifest, in Microsoft's documented shape
(``manifestVersion`` "2024-04-01")::

    {"exportConfig": {"exportName": …, "resourceId": …, "dataVersion": …, "type": "ActualCost"},
     "runInfo": {"runId": …, "submittedTime": "2025-03-21T21:04:06.5234447Z", "startDate": …, "endDate": …},
     "blobs": [{"blobName": "<directory>/<export-name>/…/part_0_0001.csv", "byteCount": …, "dataRowCount": …}]}

names the run's files (``blobName``, relative to the container), the dataset
(``exportConfig.type``: ActualCost, AmortizedCost, FocusCost; Usage is the old name of
ActualCost; other datasets such as PriceSheet are skipped) and when it ran. Older exports
write ``<directory>/<export-name>/<YYYYMMDD-YYYYMMDD>/<export-name>_<guid>.csv`` with no
manifest: each such file is a run of its own, timed by its last-modified time.

An export is identified by the path before its ``YYYYMMDD-YYYYMMDD`` folder. For each export and
date-range folder, only the newest run is loaded (manifest ``runInfo.submittedTime``, else the
blob's last-modified time); older runs are reported as skipped, and a run already loaded
(same run id, remembered in ``source_state``) or older than the loaded one is skipped too.
Files outside that layout (a CSV handed over by hand) are grouped per export type: the files
of one type in one call are one run, and a later call replaces what they loaded for the same
billing accounts and months. Without a manifest, an export is amortized when its path says
"amortized"/"amortised" or it has UnusedReservation / UnusedSavingsPlan lines; else actual.

Columns
-------
Names are matched case-insensitively, so Enterprise Agreement (PascalCase), Microsoft Customer
Agreement (camelCase) and older files are read alike; :data:`COLUMN_ALIASES` lists the names
each field is found under, first match wins (e.g. cost: CostInBillingCurrency, PreTaxCost, Cost;
date: Date, UsageDateTime; subscription: SubscriptionId, SubscriptionGuid). Dates are read as
``MM/DD/YYYY`` (EA and MCA CSV), ISO ``YYYY-MM-DD``, ISO date-times, or typed Parquet dates.
Mapping to FOCUS: ProviderName and InvoiceIssuerName "Microsoft"; BillingAccountId (the
subscription when a file has none, as old pay-as-you-go files); SubAccountId/Name the
subscription; ServiceName the MeterCategory, except "Azure Machine Learning" for lines of
``Microsoft.MachineLearningServices`` (their compute is billed under "Virtual Machines");
ServiceCategory "AI and Machine Learning" for Azure OpenAI, Cognitive Services and Search, AI services,
Foundry and Machine Learning; SkuId the MeterId, SkuMeter the MeterName, x_UsageType
"MeterSubCategory MeterName" (what finops.analyses.classify reads); x_LineItemType the ChargeType;
x_PricingModel the PricingModel without spaces (OnDemand, Reservation, SavingsPlan, Spot);
ChargeCategory from ChargeType (Usage → Usage, Purchase → Purchase, Refund → Credit,
RoundingAdjustment → Adjustment, Tax → Tax, UnusedReservation / UnusedSavingsPlan → Usage with
CommitmentDiscountStatus "Unused"; another ChargeType quarantines the line); ListCost
paygCostInBillingCurrency, else PayGPrice × Quantity; ContractedCost UnitPrice × Quantity;
ChargePeriodStart the usage date (end: the next day); BillingPeriodStart/End from
BillingPeriodStartDate/EndDate (end made exclusive), else the usage date's month; Tags parsed
from JSON with or without the outer braces; x_InstanceType from AdditionalInfo.ServiceType.

Azure OpenAI / AI Foundry token meters keep their model and direction (x_Model,
x_TokenDirection). A meter name ending in "Tokens" is split at its first direction word, after
lower-casing and turning ``-`` and ``_`` into spaces: the words before it are the model (joined
with ``-``, a trailing 4-digit version such as ``0513`` dropped), the direction is "cached input"
for ``cached``/``cd``, "output" for ``outp``/``output``/``opt``, "input" for ``inp``/``input``;
the words after it (deployment type: ``global``, ``glbl``, ``regional``, ``Data Zone``, ``1M``…)
are ignored. "gpt 4o 0513 Input global Tokens" → gpt-4o, input; "gpt-4o-mini-0718 Outp glbl
Tokens" → gpt-4o-mini, output; "o1 cached Inp regional Tokens" → o1, cached input. Azure ML
online endpoints keep the system tags azuremlendpoint / azuremldeployment in Tags.

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
import hashlib
import json
import posixpath
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import duckdb
import polars as pl

from connectors import focus
from connectors.files import (
    EMPTY_QUARANTINE_SQL,
    FileFormat,
    csv_rejects_sql,
    detect_format,
    expand,
    read_sql,
    sql_literal,
    verify_gzip,
)
from connectors.focus import _first_line, _is_numeric, _json_object_map, _row_number_sql, _text
from finops.exceptions import SourceError, WarehouseError
from finops.warehouse import (
    AZURE_EXPORT_LINE_COLUMNS,
    CHARGES_COLUMNS,
    MONEY,
    PARTITION_COLUMNS,
    LoadBatch,
    LoadResult,
    SourceFile,
    Warehouse,
)

SOURCE_KIND = "azure"
DEFAULT_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"

ExportType = Literal["actual", "amortized", "focus"]
ProgressCallback = Callable[[str, int, int], None]
"""progress(description, completed, total): called as blobs are listed, downloaded and read."""

DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".parq")
MANIFEST_NAME = "manifest.json"

DATASETS: dict[str, ExportType] = {"actualcost": "actual", "usage": "actual", "amortizedcost": "amortized", "focuscost": "focus"}
"""Manifest ``exportConfig.type`` (lower case) → what we load; other datasets are skipped."""

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

DECIMAL_FIELDS = ("cost", "quantity", "unit_price", "payg_price", "payg_cost")
"""Money and quantities: read as exact decimals."""
DATE_FIELDS = ("date", "billing_period_start", "billing_period_end")

CHARGE_CATEGORIES = {
    "usage": "Usage",
    "purchase": "Purchase",
    "refund": "Credit",
    "credit": "Credit",
    "roundingadjustment": "Adjustment",
    "adjustment": "Adjustment",
    "tax": "Tax",
    "unusedreservation": "Usage",
    "unusedsavingsplan": "Usage",
}
"""ChargeType (lower case, no spaces) → FOCUS ChargeCategory."""

_AI_SERVICES = "openai|cognitive (services|search)|ai services|foundry|machine learning|azure ai|ai search|bot service"
_SERVICE_CATEGORIES = (
    (_AI_SERVICES, "AI and Machine Learning"),
    ("sql|cosmos|database|redis|postgres|mysql|mariadb", "Databases"),
    ("bandwidth|network|load balancer|vpn|dns|front door|application gateway|cdn|firewall|nat gateway|ip address",
     "Networking"),
    ("virtual machine|compute|container|kubernetes|functions|batch|app service|cloud services", "Compute"),
    ("storage|backup|data box", "Storage"),
    ("monitor|log analytics|insights|automation|advisor|policy", "Management and Governance"),
    ("defender|key vault|sentinel|security", "Security"),
)  # fmt: skip
"""ServiceName patterns (lower case) → FOCUS ServiceCategory, first match wins; else Other."""

# Meter-name words that mark a token meter's direction (see the module docstring).
_DIRECTION_WORDS = "cached|cd|inp|input|outp|output|opt"
# EA and MCA CSV write US dates (07/31/2026); other files ISO dates; ISO date-times fall through to a cast.
_DATE_FORMATS = "['%m/%d/%Y', '%Y-%m-%d', '%m/%d/%Y %H:%M:%S', '%m/%d/%Y %I:%M:%S %p']"
_RANGE_FOLDER = re.compile(r"^(\d{8})-(\d{8})$")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class NotAzureExportError(SourceError):
    """A file handed to the Azure connector is not a Cost Management cost export."""


# -- what the caller gets ----------------------------------------------------------------


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
class SkippedRun:
    """An export run found but not loaded, and why."""

    export: str
    run_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class AzureIngestReport:
    """What :func:`ingest` did: the runs it loaded and the ones it skipped."""

    loads: list[AzureLoad]
    skipped: list[SkippedRun]


# -- where files are -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportObject:
    """A file found in storage: a blob or a local file."""

    uri: str  # az://ACCOUNT/CONTAINER/NAME (never a query string) or a local path
    name: str  # blob name within the container, or the local path
    modified: datetime  # naive UTC
    size: int


@dataclasses.dataclass(frozen=True)
class BlobLocation:
    """``az://ACCOUNT/CONTAINER/PREFIX`` and how to reach it; ``str()`` never shows the SAS."""

    account: str
    container: str
    prefix: str
    account_url: str | None = None  # from an http(s) URL; else https://ACCOUNT.blob.core.windows.net
    sas: str | None = dataclasses.field(default=None, repr=False)

    def __str__(self) -> str:
        return f"az://{self.account}/{self.container}/{self.prefix}".rstrip("/")

    def uri(self, name: str) -> str:
        return f"az://{self.account}/{self.container}/{name}"


def parse_location(text: str) -> BlobLocation | None:
    """The blob location ``text`` names, or None for a local path or glob.

    >>> str(parse_location("az://acct/costs/exports/actual?sv=2024&sig=secret"))
    'az://acct/costs/exports/actual'
    >>> parse_location("https://acct.blob.core.windows.net/costs/x?sv=1&sig=s").account_url
    'https://acct.blob.core.windows.net'
    >>> parse_location("exports/2026-07/*.csv") is None
    True
    """
    if text.startswith("az://"):
        body, _, query = text[len("az://"):].partition("?")
        account, _, rest = body.partition("/")
        container, _, prefix = rest.partition("/")
        if not account or not container:
            raise SourceError(f"{text.split('?')[0]}: expected az://ACCOUNT/CONTAINER[/PATH]")
        return BlobLocation(account, container, prefix.strip("/"), None, query or None)
    if text.startswith(("https://", "http://")):
        url = urlsplit(text)
        host = url.hostname or ""
        segments = [s for s in url.path.split("/") if s]
        is_ip_address = host.replace(".", "").isdigit()
        if host.endswith(".blob.core.windows.net") or ("." in host and not is_ip_address):
            account = host.split(".")[0]
            account_url = f"{url.scheme}://{url.netloc}"
        else:  # path-style, as the storage emulator serves it: http://127.0.0.1:10000/ACCOUNT/CONTAINER/…
            if not segments:
                raise SourceError(f"{url.scheme}://{url.netloc}{url.path}: expected …/ACCOUNT/CONTAINER[/PATH]")
            account, segments = segments[0], segments[1:]
            account_url = f"{url.scheme}://{url.netloc}/{account}"
        if not segments:
            raise SourceError(f"{url.scheme}://{url.netloc}{url.path}: the URL names no container")
        return BlobLocation(account, segments[0], "/".join(segments[1:]), account_url, url.query or None)
    return None


_SAS_QUERY = re.compile(r"\?\S*\bsig=\S*")
_KEY_VALUE = re.compile(r"(?i)\b(accountkey|sharedaccesssignature|sig)=[^;&\s]+")


def _redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` without the given secrets, SAS query strings, or anything shaped like a key.

    >>> _redact("GET https://a.blob.core.windows.net/c?sv=1&sig=abc failed; AccountKey=xyz;", [])
    'GET https://a.blob.core.windows.net/c?*** failed; AccountKey=***;'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SAS_QUERY.sub("?***", text)
    return _KEY_VALUE.sub(r"\1=***", text)


class _BlobStore:
    """One container through azure-storage-blob; every SDK error becomes a clean SourceError."""

    def __init__(self, location: BlobLocation, connection_string: str | None) -> None:
        from azure.storage.blob import BlobServiceClient, ContainerClient

        self.location = location
        self._secrets = [connection_string, location.sas, *_connection_string_secrets(connection_string)]
        if location.sas:
            account_url = location.account_url or f"https://{location.account}.blob.core.windows.net"
            self._client = ContainerClient(account_url, location.container, credential=location.sas.lstrip("?"))
            return
        if not connection_string:
            raise SourceError(
                f"{location}: no credentials for storage account {location.account}",
                hint=f"put the storage account's connection string in ${DEFAULT_CONNECTION_STRING_ENV} (or in the"
                " variable --connection-string-env names), or pass a SAS URL (…?sv=…&sig=…)",
            )
        try:
            service = BlobServiceClient.from_connection_string(connection_string)
        except ValueError:
            raise SourceError(
                f"{location}: the storage connection string is malformed",
                hint="expected DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…[;BlobEndpoint=…]",
            ) from None
        if service.account_name and service.account_name.lower() != location.account.lower():
            raise SourceError(
                f"{location}: the connection string is for storage account {service.account_name}, not {location.account}",
                hint="use the connection string of the account the URI names",
            )
        self._client = service.get_container_client(location.container)

    def _error(self, action: str, exc: Exception) -> SourceError:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        code = getattr(exc, "error_code", None)
        status = getattr(exc, "status_code", None)
        detail = ", ".join(str(x) for x in (f"HTTP {status}" if status else None, code) if x)
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            reason = "access denied"
            hint = "check the account key in the connection string, or the SAS token's permissions (read, list) and expiry"
        elif isinstance(exc, ResourceNotFoundError):
            reason = "not found"
            hint = "check the container and path"
        elif isinstance(exc, ServiceRequestError):
            reason = "the storage endpoint did not answer"
            hint = "check the endpoint and the network"
        elif isinstance(exc, HttpResponseError):
            reason = "the storage service refused the request"
            hint = None
        else:
            reason = type(exc).__name__
            hint = None
        message = f"Azure Blob Storage: cannot {action}: {reason}" + (f" ({detail})" if detail else "")
        return SourceError(_redact(message, self._secrets), hint=hint)

    def list(self) -> list[ExportObject]:
        prefix = self.location.prefix
        try:
            blobs = list(self._client.list_blobs(name_starts_with=prefix or None))
        except Exception as exc:
            raise self._error(f"list {self.location}", exc) from None
        # A prefix is a folder (or one blob), not the start of any name: exports/a must not match exports/ab.
        wanted = [b for b in blobs if not prefix or b.name == prefix or b.name.startswith(prefix.rstrip("/") + "/")]
        return [
            ExportObject(self.location.uri(b.name), b.name, _naive_utc(b.last_modified), b.size or 0) for b in wanted
        ]

    def read(self, obj: ExportObject) -> bytes:
        try:
            return self._client.download_blob(obj.name).readall()
        except Exception as exc:
            raise self._error(f"read {obj.uri}", exc) from None

    def fetch(self, obj: ExportObject, into: Path) -> Path:
        target = into / self.location.account / self.location.container / obj.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, "wb") as handle:
                self._client.download_blob(obj.name).readinto(handle)
        except Exception as exc:
            raise self._error(f"download {obj.uri}", exc) from None
        return target


class _LocalStore:
    """Files, directories and globs on this machine."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = patterns

    def list(self) -> list[ExportObject]:
        objects = []
        for path in expand(self.patterns):
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc).replace(tzinfo=None)
            absolute = path.resolve().as_posix()
            objects.append(ExportObject(absolute, absolute, modified, stat.st_size))
        return objects

    def read(self, obj: ExportObject) -> bytes:
        return Path(obj.name).read_bytes()

    def fetch(self, obj: ExportObject, into: Path) -> Path:
        return Path(obj.name)


def _connection_string_secrets(connection_string: str | None) -> list[str]:
    if not connection_string:
        return []
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    return [v for k, v in parts.items() if k.lower() in ("accountkey", "sharedaccesssignature") and v]


def _naive_utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime(1970, 1, 1)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


# -- runs: which files belong together, and which of them to load ---------------------------


@dataclasses.dataclass
class ExportRun:
    """One run of an export: the files it wrote, when, and (from a manifest) its dataset."""

    store: _BlobStore | _LocalStore
    export_key: str | None  # the path before the YYYYMMDD-YYYYMMDD folder; None outside the layout
    folder: str | None  # the date-range folder (or the manifest's start month)
    run_id: str
    submitted: datetime
    files: list[ExportObject]
    dataset: str | None = None  # manifest exportConfig.type
    missing: list[str] = dataclasses.field(default_factory=list)  # files the manifest lists that are not there
    manifest: str | None = None

    @property
    def export(self) -> str:
        return self.export_key or self.files[0].uri

    def check_complete(self) -> None:
        """Raise unless every file the run's manifest lists is there (checked only for runs we load)."""
        if self.missing:
            verb = "is" if len(self.missing) == 1 else "are"
            raise SourceError(
                f"{self.manifest}: lists {', '.join(repr(m) for m in self.missing)}, which {verb} not there",
                hint="the run may still be being written (load it later), or the copy is incomplete",
            )


def _find_runs(store: _BlobStore | _LocalStore, objects: list[ExportObject], skipped: list[SkippedRun]) -> list[ExportRun]:
    """Group the files found in one place into export runs (manifest runs, then single files)."""
    by_name = {obj.name: obj for obj in objects}
    runs: list[ExportRun] = []
    run_dirs: set[str] = set()
    for manifest in (o for o in objects if posixpath.basename(o.name).lower() == MANIFEST_NAME):
        run_dir = posixpath.dirname(manifest.name)
        run_dirs.add(run_dir)
        try:
            doc = json.loads(store.read(manifest))
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise SourceError(f"{manifest.uri}: not a readable manifest.json: {exc}") from exc
        run_info = doc.get("runInfo") or {}
        export_config = doc.get("exportConfig") or {}
        export_key, folder = _layout(manifest.uri)
        if export_key is None:  # not in the documented layout: the run folder's parent is the export
            export_key = posixpath.dirname(posixpath.dirname(manifest.uri))
            folder = str(run_info.get("startDate") or "")[:7] or None
        run_id = str(run_info.get("runId") or posixpath.basename(run_dir) or manifest.uri)
        dataset = export_config.get("type")
        if dataset and str(dataset).lower() not in DATASETS:
            skipped.append(SkippedRun(export_key, run_id, f"dataset {dataset} is not cost details"))
            continue
        files, missing = [], []
        for blob in doc.get("blobs") or []:
            listed = str(blob.get("blobName") or "").strip().lstrip("/")
            # blobName is relative to the container; a copied folder only has the run's own files.
            found = by_name.get(listed) or by_name.get(f"{run_dir}/{posixpath.basename(listed)}")
            if found is None:
                missing.append(posixpath.basename(listed))
            else:
                files.append(found)
        if not files and not missing:
            skipped.append(SkippedRun(export_key, run_id, "the run exported no rows (its manifest lists no files)"))
            continue
        submitted = _parse_time(run_info.get("submittedTime")) or manifest.modified
        runs.append(ExportRun(store, export_key, folder, run_id, submitted, files, dataset, missing, manifest.uri))
    for obj in objects:
        if posixpath.dirname(obj.name) in run_dirs or not obj.name.lower().endswith(DATA_SUFFIXES):
            continue
        export_key, folder = _layout(obj.uri)
        guid = _GUID.search(posixpath.basename(obj.name))
        run_id = guid.group(0) if guid else posixpath.basename(obj.name)
        runs.append(ExportRun(store, export_key, folder, run_id, obj.modified, [obj]))
    return runs


def _layout(uri: str) -> tuple[str | None, str | None]:
    """(export, date-range folder) of a file in the Cost Management layout, else (None, None).

    >>> _layout("az://acct/c/exports/ea-actual/20260701-20260731/0b1c…/part_0_0001.csv")
    ('az://acct/c/exports/ea-actual', '20260701-20260731')
    """
    parts = uri.split("/")[:-1]
    for i in range(len(parts) - 1, -1, -1):
        if _RANGE_FOLDER.match(parts[i]):
            return "/".join(parts[:i]), parts[i]
    return None, None


def _parse_time(value: Any) -> datetime | None:
    """A manifest time such as 2025-03-21T21:04:06.5234447Z as naive UTC (7-digit fractions too)."""
    if not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value).strip()).replace("Z", "+00:00")
    try:
        return _naive_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _newest_runs(runs: list[ExportRun], loaded: dict[str, Any], skipped: list[SkippedRun]) -> list[ExportRun]:
    """Per export and date-range folder, the newest run, unless it is loaded already or older."""
    chosen: dict[tuple[str, str], ExportRun] = {}
    others: list[ExportRun] = []
    for run in runs:
        if run.export_key is None or run.folder is None:
            others.append(run)
            continue
        key = (run.export_key, run.folder)
        best = chosen.get(key)
        if best is None or (run.submitted, run.run_id) > (best.submitted, best.run_id):
            if best is not None:
                skipped.append(_superseded(best, run))
            chosen[key] = run
        else:
            skipped.append(_superseded(run, best))
    fresh = []
    for (export_key, folder), run in chosen.items():
        state = loaded.get(_run_state_key(export_key, folder))
        if state and state.get("run_id") == run.run_id:
            skipped.append(SkippedRun(run.export, run.run_id, f"{folder}: already loaded (batch {state.get('batch_id')})"))
        elif state and (_parse_time(state.get("submitted")) or datetime.min) > run.submitted:
            skipped.append(SkippedRun(run.export, run.run_id,
                                      f"{folder}: older than run {state.get('run_id')}, which is loaded"))
        else:
            fresh.append(run)
    return fresh + others


def _superseded(old: ExportRun, new: ExportRun) -> SkippedRun:
    return SkippedRun(old.export, old.run_id, f"{old.folder}: superseded by run {new.run_id} ({new.submitted:%Y-%m-%d %H:%M} UTC)")


def _run_state_key(export_key: str, folder: str) -> str:
    return f"run|{export_key}|{folder}"


# -- checking files before anything is written -------------------------------------------


def _inspect(con: duckdb.DuckDBPyConnection, obj: ExportObject, local: Path) -> AzureFile:
    """Read a file's header; refuse it, naming what is missing, unless it is Azure cost data."""
    fmt, compression = detect_format(local)
    if compression == "gzip":
        verify_gzip(local)
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {read_sql(local, fmt, compression)}").fetchall()
    except duckdb.Error as exc:
        raise SourceError(f"{obj.uri}: cannot be read as {fmt.upper()}: {_first_line(exc)}") from exc
    types = {row[0]: row[1] for row in described if row[0] != "file_row_number"}
    by_lower = {name.strip().lower(): name for name in types}
    shown: PurePath = Path(obj.name) if obj.uri == obj.name else PurePosixPath(obj.name)
    if all(c.lower() in by_lower for c in focus.REQUIRED_COLUMNS):
        return AzureFile(shown, obj.uri, local, fmt, compression, "focus", {}, types, ())
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
    return AzureFile(shown, obj.uri, local, fmt, compression, "native", columns, types, ignored)


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
        raise SourceError(f"{run.export} run {run.run_id}: mixes FOCUS and native cost files",
                          hint="an export run has one dataset; load its files separately")
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
    return con.execute(
        f"SELECT count(*) FROM {read_sql(file.local, file.format, file.compression)}"
        f" WHERE lower({text}) IN ('unusedreservation', 'unusedsavingsplan')"
    ).fetchone()[0] > 0


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
            raise SourceError(f"{location}: no blobs there", hint="check the container and path (and the SAS token's list permission)")
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
            for obj in run.files:
                report(f"fetching {posixpath.basename(obj.name)}", done, total)
                files.append(_inspect(con, obj, run.store.fetch(obj, Path(scratch_dir))))
                done += 1
            plans.append(_plan(con, run, files))
        plans = _merge_loose_files(plans)
        native = [p for p in plans if p.export_type != "focus"]
        focus_plans = [p for p in plans if p.export_type == "focus"]
        if native:
            loads.append(_load_native(wh, native, report))
        if focus_plans:
            loads.append(_load_focus(wh, focus_plans, progress))
    return AzureIngestReport(loads, skipped)


def _load_focus(wh: Warehouse, plans: list[_Plan], progress: ProgressCallback | None) -> AzureLoad:
    """FOCUS export runs: the FOCUS connector loads them, as source kind "azure", in one batch."""
    loaded = focus.ingest(wh, [f.local for plan in plans for f in plan.files], source=SOURCE_KIND, progress=progress)
    ignored = {f.path: f.ignored_columns for f in loaded.files}
    rejected = dict(
        wh.query("SELECT file, count(*) FROM quarantine WHERE batch_id = ? GROUP BY ALL", [loaded.result.batch_id]).rows()
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
    sources = [dataclasses.replace(SourceFile.of(file.local), path=file.uri) for _, file in staged]
    label = plans[0].label if len(plans) == 1 else "; ".join(sorted(p.label for p in plans))
    with wh.load(SOURCE_KIND, label, sources) as batch:
        read = {}
        for i, (plan, file) in enumerate(staged):
            report(f"reading {file.path.name}", i, len(staged))
            read[file.uri] = _stage_file(batch, i, file, plan)
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
        batch.execute(f"INSERT INTO azure_export_lines BY NAME SELECT {line_columns} FROM azure_rows WHERE len(_errors) = 0")
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
                    "run_id": plan.run_id, "submitted": plan.submitted.isoformat(), "batch_id": batch.batch_id}
        bases = _stage_rebuild(batch, current, {(account, f"{period:%Y-%m-%d}") for _, account, period in months})
        rebuilt = batch.execute("SELECT count(*) FROM _azure_rebuilt").fetchone()[0]
        result = batch.replace_partitions(
            "charges",
            "SELECT * FROM _azure_rebuilt",
            partition_by=PARTITION_COLUMNS,
            rows_read=rebuilt + quarantined,
            quarantine_sql=(
                "SELECT _file AS file, _row AS row_number, regexp_extract(_errors[1], '^([^:]+):', 1) AS column_name,"
                " array_to_string(_errors, '; ') AS reason, _raw AS raw_row FROM azure_rows WHERE len(_errors) > 0"
                " UNION ALL SELECT file, row_number, column_name, reason, raw_row FROM azure_rejects"
            ),
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
    shown = LoadResult(result.batch_id, rows_read, rows_read - quarantined, quarantined, result.rows_replaced, result.partitions)
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


def _stage_rebuild(batch: LoadBatch, current: dict[str, dict[str, Any]], months: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
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


def _rebuild_sql(batch_id: int) -> str:
    """One row per charge: actual and amortized lines matched on their key, costs from each side."""
    columns = []
    for name in CHARGES_COLUMNS:
        if name == "BilledCost":
            expr = "CASE WHEN b.has_actual THEN coalesce(a.BilledCost, 0) ELSE m.BilledCost END"
        elif name == "EffectiveCost":
            expr = "CASE WHEN b.has_amortized THEN coalesce(m.EffectiveCost, 0) ELSE a.EffectiveCost END"
        elif name == "x_BatchId":
            expr = str(int(batch_id))
        elif name == "x_ExportId":
            expr = "concat_ws(' + ', a.x_ExportId, m.x_ExportId)"
        else:
            expr = f'coalesce(a."{name}", m."{name}")'
        columns.append(f'{expr} AS "{name}"')
    matched = (
        "SELECT *, row_number() OVER (PARTITION BY BillingAccountId, BillingPeriodStart, x_LineKey"
        " ORDER BY x_ExportKey, x_SourceFile, x_SourceRow) AS _match FROM _azure_lines WHERE x_ExportType = '{}'"
    )
    return (
        f"WITH a AS ({matched.format('actual')}), m AS ({matched.format('amortized')}),"
        " b AS (SELECT BillingAccountId, BillingPeriodStart, bool_or(x_ExportType = 'actual') AS has_actual,"
        "  bool_or(x_ExportType = 'amortized') AS has_amortized FROM _azure_lines GROUP BY ALL)"
        f" SELECT {', '.join(columns)} FROM a FULL OUTER JOIN m ON a.BillingAccountId = m.BillingAccountId"
        " AND a.BillingPeriodStart = m.BillingPeriodStart AND a.x_LineKey = m.x_LineKey AND a._match = m._match"
        " JOIN b ON b.BillingAccountId = coalesce(a.BillingAccountId, m.BillingAccountId)"
        " AND b.BillingPeriodStart = coalesce(a.BillingPeriodStart, m.BillingPeriodStart)"
    )


def _stage_file(batch: LoadBatch, index: int, file: AzureFile, plan: _Plan) -> int:
    """Stage one file's lines (typed, with their errors) into azure_rows; return rows read."""
    raw = f"_azure_raw_{index}"
    rejects = f"_azure_rejects_{index}"
    try:
        batch.stage(raw, f"SELECT * FROM {read_sql(file.local, file.format, file.compression, rejects_table=rejects)}")
    except Exception as exc:
        raise SourceError(f"{file.uri}: cannot be read: {_first_line(exc)}") from exc
    has_rejects = file.format == "csv"
    select = _typed_select(file, raw, _row_number_sql(file, rejects if has_rejects else None, batch), plan, batch.batch_id)
    if index == 0:
        batch.stage("azure_rows", select)
        batch.stage(
            "azure_rejects",
            EMPTY_QUARANTINE_SQL,
        )
    else:
        batch.stage("azure_rows", select, append=True)
    rejected = 0
    if has_rejects:
        rejected = batch.stage(
            "azure_rejects",
            csv_rejects_sql(rejects, file.uri),
            append=True,
        )
    staged = batch.execute(f'SELECT count(*) FROM "{raw}"').fetchone()[0]
    batch.execute(f'DROP TABLE "{raw}"')
    return staged + rejected


# -- SQL: a native line as a row of `charges` ---------------------------------------------


def _typed_select(file: AzureFile, raw: str, row_number: str, plan: _Plan, batch_id: int) -> str:
    """SELECT every column of an Azure export line: charges columns, line key, _file, _row, _errors, _raw.

    Three steps, each a subquery over the last: (1) every field as trimmed text (NULL for empty
    and the text NULL), typed Parquet values as they are, and the raw row packed aside (the
    file's own column names, such as Tags or ResourceId, would clash with FOCUS names);
    (2) money, quantities and dates typed; (3) the FOCUS columns and the line's errors.
    """
    spelled = {field: file.columns.get(field) for field in COLUMN_ALIASES}

    def source_type(field: str) -> str:
        return file.types[spelled[field]].upper() if spelled[field] else "VARCHAR"

    step1_columns = ["rowid AS _rowid"]
    if file.format == "parquet":
        step1_columns.append("r.file_row_number")
    for field, column in spelled.items():
        expr = _text(f'r."{column}"', source_type(field)) if column else "CAST(NULL AS VARCHAR)"
        step1_columns.append(f'{expr} AS "_az_{field}"')
    typed_columns = []
    for field in DECIMAL_FIELDS:
        column = spelled[field]
        if column and _is_numeric(source_type(field)):
            step1_columns.append(f'TRY_CAST(r."{column}" AS {MONEY}) AS "_az_{field}_n"')
        else:
            typed_columns.append(f'TRY_CAST(r."_az_{field}" AS {MONEY}) AS "_az_{field}_n"')
    for field in DATE_FIELDS:
        column = spelled[field]
        if column and source_type(field).startswith(("TIMESTAMP", "DATE")):
            step1_columns.append(f'CAST(r."{column}" AS TIMESTAMP) AS "_az_{field}_t"')
        else:
            text = f'r."_az_{field}"'
            typed_columns.append(
                f"coalesce(try_strptime({text}, {_DATE_FORMATS}),"
                f' CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP)) AS "_az_{field}_t"'
            )
    tags_column = spelled["tags"]
    if tags_column and source_type("tags").startswith("MAP"):
        step1_columns.append(f'CAST(r."{tags_column}" AS MAP(VARCHAR, VARCHAR)) AS _az_tags_map')
        tags, tags_ok = "r._az_tags_map", "true"
    else:
        tags, tags_ok = _json_object_map("r._az_tags")
    step1_columns.append("{" + ", ".join(f'{sql_literal(name)}: r."{name}"' for name in file.types) + "} AS _az_raw")

    f = "r._az_"  # a field's text (step 1) or typed value (step 2, with _n / _t)
    charge_type = f"lower(replace({f}charge_type, ' ', ''))" if spelled["charge_type"] else "'usage'"
    pricing = f"lower(replace({f}pricing_model, ' ', ''))"
    meter = f"regexp_replace(lower({f}meter_name), '[-_[:space:]]+', ' ', 'g')"
    is_tokens = f"coalesce(regexp_matches({meter}, ' tokens?$'), false)"
    model_words = f"regexp_extract({meter}, '^(.*?) ({_DIRECTION_WORDS})( |$)', 1)"
    service_name = (
        f"CASE WHEN lower(coalesce({f}consumed_service, '')) = 'microsoft.machinelearningservices'"
        f" OR lower(coalesce({f}resource_id, '')) LIKE '%/providers/microsoft.machinelearningservices/%'"
        f" THEN 'Azure Machine Learning' ELSE {f}meter_category END"
    )
    category_cases = " ".join(
        f"WHEN regexp_matches(lower(r.ServiceName), '{pattern}') THEN '{category}'" for pattern, category in _SERVICE_CATEGORIES
    )
    commitment_id = f"coalesce({f}reservation_id, {f}benefit_id)"
    savings_plan = (
        f"({pricing} = 'savingsplan' OR {charge_type} = 'unusedsavingsplan'"
        f" OR ({f}benefit_id IS NOT NULL AND {f}reservation_id IS NULL))"
    )
    charge_categories = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in CHARGE_CATEGORIES.items())
    focus_columns: dict[str, str] = {
        "BilledCost": f"{f}cost_n",
        "EffectiveCost": f"{f}cost_n",
        "ListCost": f"coalesce({f}payg_cost_n, CAST({f}payg_price_n * {f}quantity_n AS {MONEY}))",
        "ListUnitPrice": f"{f}payg_price_n",
        "ContractedCost": f"CAST({f}unit_price_n * {f}quantity_n AS {MONEY})",
        "ContractedUnitPrice": f"{f}unit_price_n",
        "BillingAccountId": f"coalesce({f}billing_account_id, {f}subscription_id)",
        "BillingAccountName": f"{f}billing_account_name",
        "BillingCurrency": f"upper({f}currency)",
        "BillingPeriodStart": f"coalesce(date_trunc('day', {f}billing_period_start_t), date_trunc('month', {f}date_t))",
        "BillingPeriodEnd": (
            f"coalesce(date_trunc('day', {f}billing_period_end_t) + INTERVAL 1 DAY,"
            f" date_trunc('month', {f}date_t) + INTERVAL 1 MONTH)"
        ),
        "ChargeCategory": f"CASE {charge_type} {charge_categories} END",
        "ChargeDescription": f"coalesce({f}product_name, {f}meter_name)",
        "ChargeFrequency": (
            f"CASE lower(replace({f}frequency, ' ', '')) WHEN 'onetime' THEN 'One-Time' WHEN 'recurring' THEN 'Recurring'"
            f" WHEN 'usagebased' THEN 'Usage-Based' ELSE CASE WHEN {charge_type} = 'purchase' THEN 'One-Time'"
            " ELSE 'Usage-Based' END END"
        ),
        "ChargePeriodStart": f"{f}date_t",
        "ChargePeriodEnd": f"{f}date_t + INTERVAL 1 DAY",
        "CommitmentDiscountId": commitment_id,
        "CommitmentDiscountName": f"coalesce({f}reservation_name, {f}benefit_name)",
        "CommitmentDiscountType": (
            f"CASE WHEN {commitment_id} IS NULL THEN NULL WHEN {savings_plan} THEN 'Savings Plan' ELSE 'Reservation' END"
        ),
        "CommitmentDiscountCategory": (
            f"CASE WHEN {commitment_id} IS NULL THEN NULL WHEN {savings_plan} THEN 'Spend' ELSE 'Usage' END"
        ),
        "CommitmentDiscountStatus": (
            f"CASE WHEN {charge_type} IN ('unusedreservation', 'unusedsavingsplan') THEN 'Unused'"
            f" WHEN {charge_type} = 'usage' AND {commitment_id} IS NOT NULL AND {pricing} IN ('reservation', 'savingsplan')"
            " THEN 'Used' END"
        ),
        "ConsumedQuantity": f"{f}quantity_n",
        "ConsumedUnit": f"{f}unit_of_measure",
        "PricingQuantity": f"{f}quantity_n",
        "PricingUnit": f"{f}unit_of_measure",
        "PricingCategory": (
            f"CASE {pricing} WHEN 'ondemand' THEN 'Standard' WHEN 'spot' THEN 'Dynamic'"
            " WHEN 'reservation' THEN 'Committed' WHEN 'savingsplan' THEN 'Committed' END"
        ),
        "InvoiceId": f"{f}invoice_id",
        "InvoiceIssuerName": "'Microsoft'",
        "ProviderName": "'Microsoft'",
        "PublisherName": f"coalesce({f}publisher_name, 'Microsoft')",
        "RegionId": f"lower(replace({f}resource_location, ' ', ''))",
        "RegionName": f"{f}resource_location",
        "AvailabilityZone": f"{f}availability_zone",
        "ResourceId": f"{f}resource_id",
        "ResourceName": f"coalesce({f}resource_name, nullif(regexp_extract({f}resource_id, '[^/]+$'), ''))",
        "ResourceType": (
            f"coalesce({f}resource_type, nullif(lower(regexp_extract({f}resource_id, '/providers/([^/]+/[^/]+)', 1)), ''))"
        ),
        "ServiceName": service_name,
        "SkuId": f"{f}meter_id",
        "SkuMeter": f"{f}meter_name",
        # As Microsoft's own FOCUS export writes it, so mappings work for either export.
        "SubAccountId": (
            f"CASE WHEN starts_with({f}subscription_id, '/') THEN {f}subscription_id"
            f" ELSE '/subscriptions/' || {f}subscription_id END"
        ),
        "SubAccountName": f"{f}subscription_name",
        "SubAccountType": f"CASE WHEN {f}subscription_id IS NOT NULL THEN 'Subscription' END",
        "Tags": tags,
        "x_UsageType": f"nullif(concat_ws(' ', {f}meter_subcategory, {f}meter_name), '')",
        "x_LineItemType": f"coalesce({f}charge_type, 'Usage')",
        "x_PricingModel": (
            f"CASE {pricing} WHEN 'ondemand' THEN 'OnDemand' WHEN 'reservation' THEN 'Reservation'"
            f" WHEN 'savingsplan' THEN 'SavingsPlan' WHEN 'spot' THEN 'Spot' ELSE {f}pricing_model END"
        ),
        "x_InstanceType": (
            f"CASE WHEN json_valid({f}additional_info)"
            f" THEN nullif(json_extract_string({f}additional_info, '$.ServiceType'), '') END"
        ),
        "x_Model": (
            f"CASE WHEN {is_tokens} AND {model_words} <> ''"
            f" THEN replace(regexp_replace({model_words}, ' [0-9]{{4}}$', ''), ' ', '-') END"
        ),
        "x_TokenDirection": (
            f"CASE WHEN NOT {is_tokens} THEN NULL WHEN regexp_matches({meter}, '(^| )(cached|cd)( |$)') THEN 'cached input'"
            f" WHEN regexp_matches({meter}, '(^| )(outp|output|opt)( |$)') THEN 'output'"
            f" WHEN regexp_matches({meter}, '(^| )(inp|input)( |$)') THEN 'input' END"
        ),
        "x_ExportId": sql_literal(plan.run_id),
        "x_Source": sql_literal(SOURCE_KIND),
        "x_BatchId": str(int(batch_id)),
        "x_SourceFile": sql_literal(file.uri),
        "x_SourceRow": row_number,
        "x_ExportKey": sql_literal(plan.export_key),
        "x_ExportType": sql_literal(plan.export_type),
    }
    # Columns that read other FOCUS columns are computed one step later.
    derived = {
        "ServiceCategory": f"CASE {category_cases} ELSE 'Other' END",
        "ServiceSubcategory": (
            "CASE WHEN r.x_Model IS NOT NULL THEN 'Generative AI' WHEN r.ServiceName = 'Azure Machine Learning'"
            f" THEN 'Machine Learning' WHEN regexp_matches(lower(r.ServiceName), '{_AI_SERVICES}')"
            " THEN 'Other (AI and Machine Learning)' END"
        ),
    }

    def said(field: str) -> str:
        """The file's name for a field, ready to go inside a SQL string literal."""
        return sql_literal(spelled[field] or COLUMN_ALIASES[field][0])[1:-1]

    def unreadable(field: str, typed: str, what: str) -> str:
        return (
            f"CASE WHEN {f}{field} IS NOT NULL AND {f}{field}{typed} IS NULL"
            f" THEN '{said(field)}: cannot read ''' || left({f}{field}, 60) || ''' as {what}' END"
        )

    def empty(field: str, why: str) -> str:
        return f"CASE WHEN {f}{field} IS NULL THEN '{said(field)}: empty, but {why}' END"

    errors = [unreadable(field, "_n", "a number") for field in DECIMAL_FIELDS]
    errors += [unreadable(field, "_t", "a date") for field in DATE_FIELDS]
    errors += [
        empty("cost", "every cost line has a cost"),
        empty("date", "every cost line has a date"),
        empty("currency", "every cost line has a currency"),
        f"CASE WHEN coalesce({f}billing_account_id, {f}subscription_id) IS NULL"
        f" THEN '{said('billing_account_id')}: empty, and no {said('subscription_id')} to use instead' END",
        f"CASE WHEN {charge_type} NOT IN ({', '.join(sql_literal(k) for k in CHARGE_CATEGORIES)})"
        f" THEN '{said('charge_type')}: unknown charge type ' || {sql_literal(chr(39))} || left({f}charge_type, 60)"
        f" || {sql_literal(chr(39))} END",
        f"CASE WHEN {f}tags IS NOT NULL AND NOT ({tags_ok})"
        f" THEN '{said('tags')}: not a JSON object: ' || {sql_literal(chr(39))} || left({f}tags, 60)"
        f" || {sql_literal(chr(39))} END",
    ]
    error_list = f"list_filter([{', '.join(errors)}]::VARCHAR[], e -> e IS NOT NULL)"
    step1 = f'SELECT {", ".join(step1_columns)} FROM "{raw}" AS r'
    step2 = f"SELECT r.*{''.join(', ' + c for c in typed_columns)} FROM ({step1}) AS r"
    computed = ", ".join(f'{expr} AS "{name}"' for name, expr in focus_columns.items())
    step3 = f"SELECT r._az_raw, {computed}, {error_list} AS _errors FROM ({step2}) AS r"
    final = []
    for name, sql_type in CHARGES_COLUMNS.items():
        if name in derived:
            final.append(f'{derived[name]} AS "{name}"')
        elif name in focus_columns:
            final.append(f'r."{name}"')
        else:
            final.append(f'CAST(NULL AS {sql_type}) AS "{name}"')
    line_key = (
        "md5(concat_ws('|', coalesce(strftime(r.ChargePeriodStart, '%Y-%m-%d %H:%M:%S'), ''),"
        " coalesce(r.SubAccountId, ''), lower(coalesce(r.ResourceId, '')), coalesce(r.SkuId, ''),"
        " coalesce(r.SkuMeter, ''), coalesce(r.x_LineItemType, ''), coalesce(r.x_PricingModel, ''),"
        " lower(coalesce(r.CommitmentDiscountId, '')), coalesce(CAST(r.ConsumedQuantity AS VARCHAR), ''),"
        " coalesce(r.ConsumedUnit, '')))"
    )
    return (
        f"SELECT {', '.join(final)}, r.x_ExportKey, r.x_ExportType, {line_key} AS x_LineKey,"
        f" {sql_literal(file.uri)} AS _file, r.x_SourceRow AS _row, r._errors,"
        f" CASE WHEN len(r._errors) > 0 THEN to_json(r._az_raw) END AS _raw FROM ({step3}) AS r"
    )
