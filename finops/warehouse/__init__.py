"""The DuckDB warehouse: the only module that opens connections, creates tables and writes.

Everything else asks it for a connection:

* ``Warehouse.reader()`` — a short-lived read-only connection. Analyses and notebooks open
  one per call and close it at once, so a JupyterLab kernel never holds the file between
  cells and a scheduled load can get the write lock.
* ``Warehouse.load(...)`` — a write batch. It records the load in ``ingest_batches``, lets a
  connector stage rows in temporary tables, and replaces whole partitions (source + billing
  account + billing period) in one transaction: loading the same file twice, or a restated
  month, never double counts, and a failure half-way leaves the previous data in place.

DuckDB allows one writing process, and read-only holders block writers. Both kinds of
connection wait for a lock for ``lock_timeout`` seconds (``FINOPS_LOCK_TIMEOUT``, default
60) and then raise :class:`WarehouseBusyError` naming the process that holds it. A writer
that waits leaves a ``<warehouse>.writer-waiting.<pid>`` marker; new readers wait until it
has the lock, so readers that follow each other without a gap cannot starve a load.

Every connection runs in UTC. Writers apply pending schema migrations when they open.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from finops.exceptions import (
    SchemaVersionError,
    WarehouseBusyError,
    WarehouseError,
)

if TYPE_CHECKING:
    import ibis.backends.duckdb

DEFAULT_PATH = Path("data/warehouse.duckdb")
ENV_PATH = "FINOPS_WAREHOUSE"
ENV_LOCK_TIMEOUT = "FINOPS_LOCK_TIMEOUT"
ENV_MEMORY_LIMIT = "FINOPS_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "2GB"
"""DuckDB's memory per connection (``FINOPS_MEMORY_LIMIT``): past it, staged rows, joins and
sorts spill to ``<warehouse>.tmp-<pid>`` (:func:`_spill_privately`). DuckDB's own default is
80% of the machine, and a load that stages millions of rows in temporary tables would take that much."""
STORAGE_VERSION = "v1.4.0"
"""DuckDB storage format of the warehouse files created from now on (an existing file keeps its
own). DuckDB's default is still 1.0's; 1.4's compresses text with about two thirds of the CPU (a
load of 2M CUR line items: 15.1 → 12.4 s, the file 11% smaller) and DuckDB 1.4 LTS and later read it."""

MONEY = "DECIMAL(38, 10)"
"""Money, unit prices and quantities: exact decimals, 28 digits before the point, 10 after."""

# FOCUS columns of `charges`, in FOCUS 1.2 order of appearance in the spec's column index,
# plus the 1.3 additions. Types follow the spec: money and quantities DECIMAL, periods
# TIMESTAMP (UTC), Tags a string map.
FOCUS_COLUMNS: dict[str, str] = {
    "AvailabilityZone": "VARCHAR",
    "BilledCost": MONEY,
    "BillingAccountId": "VARCHAR",
    "BillingAccountName": "VARCHAR",
    "BillingAccountType": "VARCHAR",
    "BillingCurrency": "VARCHAR",
    "BillingPeriodEnd": "TIMESTAMP",
    "BillingPeriodStart": "TIMESTAMP",
    "CapacityReservationId": "VARCHAR",
    "CapacityReservationStatus": "VARCHAR",
    "ChargeCategory": "VARCHAR",
    "ChargeClass": "VARCHAR",
    "ChargeDescription": "VARCHAR",
    "ChargeFrequency": "VARCHAR",
    "ChargePeriodEnd": "TIMESTAMP",
    "ChargePeriodStart": "TIMESTAMP",
    "CommitmentDiscountCategory": "VARCHAR",
    "CommitmentDiscountId": "VARCHAR",
    "CommitmentDiscountName": "VARCHAR",
    "CommitmentDiscountQuantity": MONEY,
    "CommitmentDiscountStatus": "VARCHAR",
    "CommitmentDiscountType": "VARCHAR",
    "CommitmentDiscountUnit": "VARCHAR",
    "ConsumedQuantity": MONEY,
    "ConsumedUnit": "VARCHAR",
    "ContractedCost": MONEY,
    "ContractedUnitPrice": MONEY,
    "EffectiveCost": MONEY,
    "InvoiceId": "VARCHAR",
    "InvoiceIssuerName": "VARCHAR",
    "ListCost": MONEY,
    "ListUnitPrice": MONEY,
    "PricingCategory": "VARCHAR",
    "PricingCurrency": "VARCHAR",
    "PricingCurrencyContractedUnitPrice": MONEY,
    "PricingCurrencyEffectiveCost": MONEY,
    "PricingCurrencyListUnitPrice": MONEY,
    "PricingQuantity": MONEY,
    "PricingUnit": "VARCHAR",
    "ProviderName": "VARCHAR",
    "PublisherName": "VARCHAR",
    "RegionId": "VARCHAR",
    "RegionName": "VARCHAR",
    "ResourceId": "VARCHAR",
    "ResourceName": "VARCHAR",
    "ResourceType": "VARCHAR",
    "ServiceCategory": "VARCHAR",
    "ServiceName": "VARCHAR",
    "ServiceSubcategory": "VARCHAR",
    "SkuId": "VARCHAR",
    "SkuMeter": "VARCHAR",
    "SkuPriceDetails": "VARCHAR",
    "SkuPriceId": "VARCHAR",
    "SubAccountId": "VARCHAR",
    "SubAccountName": "VARCHAR",
    "SubAccountType": "VARCHAR",
    "Tags": "MAP(VARCHAR, VARCHAR)",
    # FOCUS 1.3
    "AllocatedMethodId": "VARCHAR",
    "AllocatedMethodDetails": "VARCHAR",
    "AllocatedResourceId": "VARCHAR",
    "AllocatedResourceName": "VARCHAR",
    "AllocatedTags": "MAP(VARCHAR, VARCHAR)",
    "ContractApplied": "VARCHAR",
    "HostProviderName": "VARCHAR",
    "ServiceProviderName": "VARCHAR",
}

LINEAGE_COLUMNS: dict[str, str] = {
    "x_Source": "VARCHAR",  # source kind: focus, aws-cur, gcp-bigquery, azure, …
    "x_BatchId": "BIGINT",  # ingest_batches.batch_id that loaded the row
    "x_SourceFile": "VARCHAR",  # file (or object URI) the row came from
    "x_SourceRow": "BIGINT",  # 1-based data row within that file
}

# Native-export details FOCUS has no column for, kept because analyses need them (schema v2).
NATIVE_COLUMNS: dict[str, str] = {
    "x_UsageType": "VARCHAR",  # AWS line_item_usage_type, GCP SKU description, Azure meter name
    "x_Operation": "VARCHAR",  # AWS line_item_operation
    "x_LineItemType": "VARCHAR",  # AWS line_item_line_item_type, Azure ChargeType, GCP cost_type
    "x_PricingModel": "VARCHAR",  # OnDemand, Reservation, SavingsPlan, Spot, …
    "x_InstanceType": "VARCHAR",  # p4d.24xlarge, Standard_ND96asr_v4, a2-highgpu-1g, …
    "x_Model": "VARCHAR",  # the model a managed-model meter bills (gpt-4o, claude-3-5-sonnet, …)
    "x_TokenDirection": "VARCHAR",  # input, output, cached input, cache write
    "x_CreditAmount": MONEY,  # GCP: sum of credits (negative), already inside BilledCost
    "x_CreditTypes": "VARCHAR[]",  # GCP: credit types (COMMITTED_USAGE_DISCOUNT, PROMOTION, …)
    "x_ExportId": "VARCHAR",  # the delivery: AWS manifest assemblyId, Azure run, GCP export_time
}

CHARGES_V1_COLUMNS: dict[str, str] = {**FOCUS_COLUMNS, **LINEAGE_COLUMNS}
CHARGES_COLUMNS: dict[str, str] = {**CHARGES_V1_COLUMNS, **NATIVE_COLUMNS}
"""Every column of `charges` at the current schema version."""

# Azure keeps the lines of its actual-cost and amortized-cost exports apart (schema v3): a month
# of `charges` is rebuilt from both, BilledCost from the actual lines and EffectiveCost from the
# matching amortized ones (see connectors/azure/). A line has the columns of `charges` plus these.
AZURE_EXPORT_LINE_COLUMNS: dict[str, str] = {
    "x_ExportKey": "VARCHAR",  # the export a line came from: container/directory/export-name, or file:<type>
    "x_ExportType": "VARCHAR",  # actual | amortized
    "x_LineKey": "VARCHAR",  # the same charge in both exports has the same key (date, subscription, resource, meter, …)
}

LLM_REQUESTS_V1_COLUMNS: dict[str, str] = {
    "period_start": "TIMESTAMP",
    "period_end": "TIMESTAMP",
    "source": "VARCHAR",
    "provider": "VARCHAR",
    "model": "VARCHAR",
    "project_id": "VARCHAR",
    "team": "VARCHAR",
    "user_id": "VARCHAR",
    "api_key_id": "VARCHAR",
    "agent_id": "VARCHAR",
    "task_id": "VARCHAR",
    "request_id": "VARCHAR",
    "requests": "BIGINT",
    "input_tokens": "BIGINT",
    "cached_input_tokens": "BIGINT",
    "cache_write_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "reasoning_tokens": "BIGINT",
    "cost": MONEY,
    "cost_currency": "VARCHAR",
    "cost_source": "VARCHAR",
    "x_Source": "VARCHAR",
    "x_BatchId": "BIGINT",
}

TOKEN_PRICE = "DECIMAL(38, 18)"
"""USD per token: prices such as 7.5e-8 per cached token need more than MONEY's 10 decimals."""

# Added to `llm_requests` in schema v4. `cost` is what the source reported, else our price;
# `cost_source` says which ('reported', 'priced', or 'unpriced' with cost NULL: never a silent 0).
LLM_REQUESTS_V4_COLUMNS: dict[str, str] = {
    "call_type": "VARCHAR",  # completion, embedding, image, audio, … (LiteLLM call_type, API endpoint)
    "status": "VARCHAR",  # success / failure, as the source says
    "cache_hit": "BOOLEAN",  # a gateway-side cache hit (no provider call)
    "service_tier": "VARCHAR",  # default, batch, flex, priority
    "tags": "VARCHAR[]",  # request tags (LiteLLM request_tags); never multiply totals by them
    "span_id": "VARCHAR",  # OTel span / Langfuse observation id
    "parent_span_id": "VARCHAR",
    "reported_cost": MONEY,  # the source's own cost, in cost_currency
    "priced_cost": MONEY,  # our price of the same tokens (USD), NULL when the model has no price
    "x_SourceKey": "VARCHAR",  # where the row came from: file, API page, table
}
LLM_REQUESTS_COLUMNS: dict[str, str] = {**LLM_REQUESTS_V1_COLUMNS, **LLM_REQUESTS_V4_COLUMNS}
"""Every column of `llm_requests` at the current schema version."""

# Per-token USD prices by provider and model (issue 5), from the LiteLLM price map or our own
# override CSV (negotiated prices), valid from/to a date. NULL means "no price", never 0.
PRICES_COLUMNS: dict[str, str] = {
    "provider": "VARCHAR",
    "model": "VARCHAR",
    "input": TOKEN_PRICE,  # fresh (uncached) input
    "cached_input": TOKEN_PRICE,  # cache read
    "cache_write": TOKEN_PRICE,  # cache creation (Anthropic 5-minute)
    "cache_write_1h": TOKEN_PRICE,  # Anthropic 1-hour cache creation
    "output": TOKEN_PRICE,
    "reasoning": TOKEN_PRICE,  # NULL: reasoning tokens are priced as output
    "input_batch": TOKEN_PRICE,
    "output_batch": TOKEN_PRICE,
    "input_priority": TOKEN_PRICE,
    "output_priority": TOKEN_PRICE,
    "long_context_threshold": "BIGINT",  # input tokens above which the whole request is priced at the tier below
    "input_above_threshold": TOKEN_PRICE,
    "output_above_threshold": TOKEN_PRICE,
    "per_request": MONEY,  # a fixed price per request (e.g. web search), if any
    "valid_from": "DATE",
    "valid_to": "DATE",  # exclusive; NULL: still valid
    "currency": "VARCHAR",
    "price_source": "VARCHAR",  # litellm | override | …
    "x_Source": "VARCHAR",
    "x_BatchId": "BIGINT",
}

# `charges_daily` (schema v5): `charges` summed per day (ChargePeriodStart's UTC day) and per
# every other column except a line's own identity (resource, source file and row) and its unit
# prices. The bill analyses read it instead of the line items: a year of a large company is tens
# of millions of lines (one per resource and hour or day) but thousands of rows a day here.
# LoadBatch.replace_partitions keeps it equal to `charges`, partition by partition, in the same
# transaction; `x_LineItems` counts the lines a row sums.
CHARGES_DAILY_SUMMED = (
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingCurrencyEffectiveCost",
    "ConsumedQuantity", "PricingQuantity", "CommitmentDiscountQuantity", "x_CreditAmount",
)  # fmt: skip
CHARGES_DAILY_LEFT_OUT = (
    "ResourceId", "ResourceName", "AllocatedResourceId", "AllocatedResourceName", "CapacityReservationId",
    "ListUnitPrice", "ContractedUnitPrice", "PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice",
    "x_SourceFile", "x_SourceRow",
)  # fmt: skip
CHARGES_DAILY_COLUMNS: dict[str, str] = {
    **{c: t for c, t in CHARGES_COLUMNS.items() if c not in CHARGES_DAILY_LEFT_OUT},
    "x_LineItems": "BIGINT",
}
"""Every column of `charges_daily`: those of `charges` but the left-out ones, and ``x_LineItems``."""


def charges_daily_sql(where: str = "TRUE", columns: Collection[str] | None = None, *, scans: int = 1) -> str:
    """SQL selecting the `charges_daily` rows (columns in table order) of the `charges` rows
    (aliased ``target``) matching ``where``.

    ``columns``, when given, are the only `charges` columns those rows can have values in (what
    the load that wrote them selected): the others are left out, to be NULL in `charges_daily`
    as they would be anyway, and the rollup groups by fewer keys (a third less time for CUR).

    ``scans`` > 1 reads the rows as that many scans of alternate row ids under one UNION ALL.
    DuckDB scans the rows a transaction has written but not committed in a single thread; the
    load's rollup reads exactly those, and one scan per thread groups them in parallel (2M CUR
    lines on 2 cores: 3.1 s → 2.1 s).
    """

    def column(name: str) -> str:
        if name in CHARGES_DAILY_SUMMED:
            return f'sum("{name}") AS "{name}"'
        return {
            "ChargePeriodStart": 'date_trunc(\'day\', "ChargePeriodStart") AS "ChargePeriodStart"',
            "ChargePeriodEnd": 'max("ChargePeriodEnd") AS "ChargePeriodEnd"',
            "x_LineItems": 'count(*) AS "x_LineItems"',
        }.get(name, f'"{name}"')

    wanted = None if columns is None else {c.lower() for c in columns} | {"x_lineitems"}  # BY NAME ignores case
    kept = [name for name in CHARGES_DAILY_COLUMNS if wanted is None or name.lower() in wanted]
    select = ", ".join(column(name) for name in kept)
    if scans <= 1:
        return f"SELECT {select} FROM charges AS target WHERE {where} GROUP BY ALL"
    read = ", ".join(f'"{name}"' for name in kept if name != "x_LineItems")
    parts = " UNION ALL ".join(
        f"SELECT {read} FROM charges AS target WHERE ({where}) AND target.rowid % {scans} = {i}" for i in range(scans)
    )
    return f"SELECT {select} FROM ({parts}) AS target GROUP BY ALL"


# `llm_requests_daily` (schema v6): `llm_requests` summed per day (period_start's UTC day) and
# per every other column except a call's own identity (request, span, source key). The usage
# analyses read it: 50 million calls a year are a few million caller × task × model × day rows.
# A row's period_start is its first call, period_end its last call's end (else start), so task
# durations and period filters stay exact; ``x_HasTokens`` keeps calls with and without tokens
# apart (unit costs count only the first), ``x_Calls`` counts the calls a row sums.
LLM_REQUESTS_DAILY_SUMMED = (
    "requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
    "cost", "reported_cost", "priced_cost",
)  # fmt: skip
LLM_REQUESTS_DAILY_LEFT_OUT = ("request_id", "span_id", "parent_span_id", "x_SourceKey")
LLM_REQUESTS_DAILY_COLUMNS: dict[str, str] = {
    **{c: t for c, t in LLM_REQUESTS_COLUMNS.items() if c not in LLM_REQUESTS_DAILY_LEFT_OUT},
    "x_HasTokens": "BOOLEAN",
    "x_Calls": "BIGINT",
}
"""Every column of `llm_requests_daily`: those of `llm_requests` but the left-out ones, ``x_HasTokens`` and ``x_Calls``."""
_HAS_TOKENS = (
    "(coalesce(input_tokens, 0) + coalesce(cached_input_tokens, 0) + coalesce(cache_write_tokens, 0)"
    " + coalesce(output_tokens, 0) > 0)"
)


_LISTED_REQUEST_DAYS, _LISTED_REQUEST_SOURCES = 5_000, 4
"""Up to this many (x_Source, day) pairs of at most this many sources, a load's `llm_requests_daily`
rebuild names them as literals (each source's days one IN list: 14 sources' lists took 3× the join)."""


def _same_source_on_days(source: str | None, days: Sequence[datetime]) -> str:
    """SQL: a `llm_requests` row (aliased ``target``) of ``source`` starting on one of ``days``."""
    same_source = "target.x_Source IS NULL" if source is None else "target.x_Source = '" + source.replace("'", "''") + "'"
    listed = ", ".join(f"TIMESTAMP '{day}'" for day in days)
    return f"({same_source} AND date_trunc('day', target.period_start) IN ({listed}))"


def llm_requests_daily_sql(where: str = "TRUE") -> str:
    """SQL selecting the `llm_requests_daily` rows (columns in table order) of the `llm_requests`
    rows (aliased ``target``) matching ``where``."""
    special = {
        "period_start": 'min("period_start") AS "period_start"',
        "period_end": 'max(coalesce("period_end", "period_start")) AS "period_end"',
        "requests": 'sum(coalesce("requests", 1)) AS "requests"',
        "x_HasTokens": f'{_HAS_TOKENS} AS "x_HasTokens"',
        "x_Calls": 'count(*) AS "x_Calls"',
    }
    keys = [f'"{c}"' for c in LLM_REQUESTS_DAILY_COLUMNS if c not in special and c not in LLM_REQUESTS_DAILY_SUMMED]

    def column(name: str) -> str:
        if name in special:
            return special[name]
        return f'sum("{name}") AS "{name}"' if name in LLM_REQUESTS_DAILY_SUMMED else f'"{name}"'

    select = ", ".join(column(name) for name in LLM_REQUESTS_DAILY_COLUMNS)
    group = ", ".join(["date_trunc('day', \"period_start\")", *keys, _HAS_TOKENS])
    return f"SELECT {select} FROM llm_requests AS target WHERE {where} GROUP BY {group}"


PARTITION_COLUMNS = ("x_Source", "BillingAccountId", "BillingPeriodStart")
MAX_RECORDED_PARTITIONS = 100
"""How many replaced partitions a batch lists in ingest_batches.partitions (then '… and N more')."""
"""What one load replaces in `charges`: a source's billing account and billing period."""


def _create_table(name: str, columns: dict[str, str]) -> str:
    body = ",\n    ".join(f'"{col}" {typ}' for col, typ in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {body}\n)"


# Each migration moves the schema from version N-1 to N. Later issues append to this list
# (ALTER TABLE … ADD COLUMN …); never edit a migration that has shipped.
MIGRATIONS: list[list[str]] = [
    [  # 1: the foundation
        _create_table("charges", CHARGES_V1_COLUMNS),
        _create_table("llm_requests", LLM_REQUESTS_V1_COLUMNS),
        """CREATE TABLE IF NOT EXISTS ingest_batches (
            batch_id BIGINT PRIMARY KEY,
            source_kind VARCHAR NOT NULL,
            uri VARCHAR NOT NULL,
            partitions VARCHAR[],
            files STRUCT(path VARCHAR, sha256 VARCHAR, bytes BIGINT)[],
            rows_read BIGINT,
            rows_loaded BIGINT,
            rows_quarantined BIGINT,
            rows_replaced BIGINT,
            started_at TIMESTAMP NOT NULL,
            ended_at TIMESTAMP,
            status VARCHAR NOT NULL,
            message VARCHAR,
            pid INTEGER
        )""",
        """CREATE TABLE IF NOT EXISTS quarantine (
            batch_id BIGINT NOT NULL,
            file VARCHAR,
            row_number BIGINT,
            column_name VARCHAR,
            reason VARCHAR NOT NULL,
            raw_row JSON
        )""",
    ],
    [  # 2: native cloud exports (issue 4): their details, connector state, SKU prices, projects
        *(f'ALTER TABLE charges ADD COLUMN IF NOT EXISTS "{c}" {t}' for c, t in NATIVE_COLUMNS.items()),
        # What a source needs to know next time (a manifest's checksum, a watermark), written in
        # the same transaction as the data it describes: state and data never disagree.
        """CREATE TABLE IF NOT EXISTS source_state (
            source_kind VARCHAR NOT NULL,
            state_key VARCHAR NOT NULL,
            value JSON,
            batch_id BIGINT,
            updated_at TIMESTAMP NOT NULL,
            PRIMARY KEY (source_kind, state_key)
        )""",
        f"""CREATE TABLE IF NOT EXISTS sku_prices (
            provider VARCHAR NOT NULL,
            service_id VARCHAR,
            service_name VARCHAR,
            sku_id VARCHAR NOT NULL,
            sku_description VARCHAR,
            resource_family VARCHAR,
            resource_group VARCHAR,
            usage_type VARCHAR,
            regions VARCHAR[],
            pricing_unit VARCHAR,
            pricing_unit_description VARCHAR,
            tier_start_amount {MONEY},
            unit_price {MONEY},
            currency VARCHAR,
            effective_time TIMESTAMP,
            x_Source VARCHAR,
            x_BatchId BIGINT
        )""",
        """CREATE TABLE IF NOT EXISTS billing_projects (
            provider VARCHAR NOT NULL,
            billing_account_id VARCHAR,
            project_id VARCHAR NOT NULL,
            project_name VARCHAR,
            billing_enabled BOOLEAN,
            x_Source VARCHAR,
            x_BatchId BIGINT
        )""",
    ],
    [  # 3: Azure export lines (issue 4), so actual and amortized exports of a month can be matched
        _create_table("azure_export_lines", {**CHARGES_V1_COLUMNS, **NATIVE_COLUMNS, **AZURE_EXPORT_LINE_COLUMNS}),
    ],
    [  # 4: gateway and model-API usage (issue 5): request details, both costs, token prices
        *(f'ALTER TABLE llm_requests ADD COLUMN IF NOT EXISTS "{c}" {t}' for c, t in LLM_REQUESTS_V4_COLUMNS.items()),
        _create_table("prices", PRICES_COLUMNS),
    ],
    [  # 5: the daily rollup of charges the bill analyses read (issue 12), filled from the loaded charges
        _create_table("charges_daily", CHARGES_DAILY_COLUMNS),
        f"INSERT INTO charges_daily BY NAME ({charges_daily_sql()})",
    ],
    [  # 6: the daily rollup of llm_requests the usage analyses read (issue 12), filled from the loaded calls
        _create_table("llm_requests_daily", LLM_REQUESTS_DAILY_COLUMNS),
        f"INSERT INTO llm_requests_daily BY NAME ({llm_requests_daily_sql()})",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The warehouse file: the argument, else ``$FINOPS_WAREHOUSE``, else ``data/warehouse.duckdb``."""
    if path:
        return Path(path)
    env = os.environ.get(ENV_PATH)
    return Path(env) if env else DEFAULT_PATH


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """A file a batch read, with its checksum so a later load can tell it changed."""

    path: str
    sha256: str
    bytes: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> SourceFile:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return cls(str(path), digest.hexdigest(), os.path.getsize(path))


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """What one batch did: the counts a user checks after every load."""

    batch_id: int
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_replaced: int
    partitions: list[str]

    def __post_init__(self) -> None:
        assert self.rows_read == self.rows_loaded + self.rows_quarantined, self


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>\S+) \(PID (?P<pid>\d+)\)(?: by user (?P<user>\S+))?")


def _describe_lock_holder(message: str) -> str:
    """'PID 123 (jupyter-lab …)' from DuckDB's lock error, reading the command line if we can."""
    match = _LOCK_HOLDER.search(message)
    if not match:
        return "another process"
    return _describe_process(int(match["pid"]), match["exe"], match["user"])


def _describe_process(pid: int, what: str, user: str | None = None) -> str:
    """'process 123 (finops ingest …)': the command line if we can read it, else ``what``."""
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        if cmdline:
            cmdline = " ".join(cmdline.split())  # one line, even for `python -c` scripts
            what = cmdline if len(cmdline) <= 120 else cmdline[:117] + "..."
    shown_user = f", user {user}" if user else ""
    return f"process {pid} ({what}{shown_user})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


_READING: collections.Counter[Path] = collections.Counter()
"""Read connections this process holds open, per warehouse path."""

_WRITER_WAITING = ".writer-waiting."
"""A writer that meets a lock leaves ``<warehouse>.writer-waiting.<pid>`` until it has the lock."""


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def _spill_privately(con: duckdb.DuckDBPyConnection, base: Path) -> None:
    """Make ``con`` spill to ``<base>-<pid>``: a folder of this process's own, beside ``base``.

    DuckDB's default, ``<warehouse>.tmp``, is shared by every process reading the warehouse, and
    its spill files are named by size class only: two processes spilling at once (two notebook
    kernels, the department statements) overwrite each other's blocks, and DuckDB crashes
    (reproduced: three readers sorting past their memory limit all died with SIGSEGV). DuckDB
    makes the folder when it first spills and removes it when the connection closes; folders of
    processes that are gone (killed before it could) are removed here."""
    private = base.with_name(f"{base.name}-{os.getpid()}")
    if con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == str(private):
        return  # another connection of this process set it; DuckDB refuses to switch once used
    for stale in base.parent.glob(f"{glob.escape(base.name)}-*"):
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and stale.is_dir() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    quoted = str(private).replace("'", "''")
    con.execute(f"SET temp_directory = '{quoted}'")


@functools.cache
def _inlining_compiler():
    """ibis's DuckDB compiler, with row-level common table expressions marked ``NOT MATERIALIZED``.

    ibis names a subexpression used twice as a CTE (rows joined back to a decision made over
    their distinct values, for one), and DuckDB materializes every such CTE: at 50M requests
    that wrote every wide row out and read it back under the memory limit, twice the time of
    computing the rows twice (token unit costs 32 s → 16 s). A grouped or DISTINCT CTE is a
    few rows, so it stays materialized: computed once, however often it is read."""
    import sqlglot.expressions as sge
    from ibis.backends.duckdb import Backend

    def row_level(query: sge.Expression) -> bool:
        return not (isinstance(query, sge.Select) and (query.args.get("group") or query.args.get("distinct")))

    class InliningCompiler(type(Backend.compiler)):
        def to_sqlglot(self, expr, *, limit=None, params=None):
            query = super().to_sqlglot(expr, limit=limit, params=params)
            for cte in query.find_all(sge.CTE):
                if row_level(cte.this):
                    cte.set("materialized", False)
            return query

    return InliningCompiler()


class Warehouse:
    """A DuckDB warehouse file shaped after FOCUS.

    >>> wh = Warehouse(tmp_path / "w.duckdb")          # doctest: +SKIP
    >>> wh.query("SELECT count(*) AS n FROM charges")  # doctest: +SKIP
    """

    engine = "duckdb"  # the analyses' engine this is (finops.warehouse.engine has the other, Spark)

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        lock_timeout: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.path = resolve_path(path).expanduser()
        if lock_timeout is None:
            lock_timeout = float(os.environ.get(ENV_LOCK_TIMEOUT, "60"))
        self.lock_timeout = lock_timeout
        # Told once per wait ("in use by process 123 (finops ingest …)"), so a CLI can say why it pauses.
        self.on_wait = on_wait

    def __repr__(self) -> str:
        return f"Warehouse({str(self.path)!r})"

    # -- connections ---------------------------------------------------------------------

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        if read_only:
            self._let_waiting_writers_in(deadline)
        delay = 0.05
        marker: Path | None = None
        try:
            while True:
                try:
                    con = duckdb.connect(
                        str(self.path),
                        read_only=read_only,
                        config={"storage_compatibility_version": STORAGE_VERSION},
                    )
                    break
                except duckdb.Error as exc:
                    if not _is_lock_error(exc):
                        raise WarehouseError(f"cannot open warehouse {self.path}: {exc}") from exc
                    if delay == 0.05 and self.on_wait is not None:
                        self.on_wait(f"warehouse {self.path} is in use by {_describe_lock_holder(str(exc))}")
                    if not read_only and marker is None:
                        marker = self._mark_writer_waiting(deadline)
                    if time.monotonic() >= deadline:
                        holder = _describe_lock_holder(str(exc))
                        mode = "read" if read_only else "write to"
                        raise WarehouseBusyError(
                            f"warehouse {self.path} is in use by {holder}; waited {self.lock_timeout:g}s to {mode} it",
                            hint="a load or a notebook holds it open; retry when it finishes, or raise FINOPS_LOCK_TIMEOUT",
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0 if marker is None else 0.1)
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)
        con.execute("SET TimeZone = 'UTC'")
        _spill_privately(con, Path(f"{self.path}.tmp"))
        limit = os.environ.get(ENV_MEMORY_LIMIT, "").strip() or DEFAULT_MEMORY_LIMIT
        try:
            quoted = limit.replace("'", "''")
            con.execute(f"SET memory_limit = '{quoted}'")
        except duckdb.Error as exc:
            con.close()
            raise WarehouseError(
                f"{ENV_MEMORY_LIMIT}={limit!r} is not a memory size: {str(exc).splitlines()[0]}",
                hint=f"use a size like 2GB or 500MB (default {DEFAULT_MEMORY_LIMIT})",
            ) from None
        return con

    # DuckDB's file lock is not fair: readers that follow each other without a gap (a dashboard,
    # several notebooks) would keep a load waiting until it gives up. So a writer that meets the
    # lock says so in a marker file, and new readers wait (up to their own timeout) until it has
    # the lock; the readers already in finish, and the writer gets in when the last one leaves.

    def _mark_writer_waiting(self, deadline: float) -> Path | None:
        marker = self.path.with_name(f"{self.path.name}{_WRITER_WAITING}{os.getpid()}")
        until = time.time() + max(0.0, deadline - time.monotonic())
        with contextlib.suppress(OSError):  # a read-only folder: no priority, still a correct wait
            marker.write_text(json.dumps({"pid": os.getpid(), "until": until}))
            return marker
        return None

    def _waiting_writers(self) -> list[int]:
        """PIDs of live writers of this warehouse waiting for its lock (stale markers are skipped)."""
        pids = []
        for marker in self.path.parent.glob(f"{glob.escape(self.path.name)}{_WRITER_WAITING}*"):
            try:
                waiting = json.loads(marker.read_text())
                pid, until = int(waiting["pid"]), float(waiting["until"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written or removed this instant
            if pid != os.getpid() and time.time() < until + 1 and _alive(pid):
                pids.append(pid)
        return pids

    def _let_waiting_writers_in(self, deadline: float) -> None:
        if _READING[self.path]:
            return  # this process reads already: the writer waits for that read anyway, do not wait for it
        delay, told = 0.05, False
        while time.monotonic() < deadline and (writers := self._waiting_writers()):
            if not told and self.on_wait is not None:
                holder = _describe_process(writers[0], "a load")
                self.on_wait(
                    f"warehouse {self.path} is in use by {holder}, which is waiting to write; reading after it"
                )
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def state_token(self) -> str | None:
        """A text that changes whenever the warehouse's data may have changed; None when there is no warehouse.

        Made from the file's and its WAL's identity, size and modification time (no connection,
        no lock): every write reaches one of the two. Results computed from one state can be
        kept under its token (:mod:`finops.analyses.cache`) and are never served for another.
        """
        parts = [str(self.path)]
        for path in (self.path, Path(f"{self.path}.wal")):
            try:
                st = path.stat()
            except FileNotFoundError:
                if path == self.path:
                    return None
                parts.append("-")
                continue
            parts.append(f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
        return "duckdb:" + "|".join(parts)

    def delete(self) -> bool:
        """Delete the warehouse file (and its WAL); False when there was none.

        Takes the write lock first (waiting as any writer does), so a warehouse that another
        process is loading or reading is never deleted from under it.
        """
        if not self.path.exists():
            return False
        self._connect(read_only=False).close()
        self.path.unlink()
        Path(str(self.path) + ".wal").unlink(missing_ok=True)
        return True

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection, closed when the block ends. Hold it briefly."""
        if not self.path.exists():
            raise WarehouseError(
                f"no warehouse at {self.path}",
                hint="load data first: `finops demo` or `finops ingest focus FILES`, or pass --warehouse",
            )
        con = self._connect(read_only=True)
        _READING[self.path] += 1
        try:
            self._check_version(con)
            yield con
        finally:
            _READING[self.path] -= 1
            con.close()

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection with the schema migrated; closed when the block ends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect(read_only=False)
        try:
            self._migrate(con)
            self._mark_interrupted_batches(con)
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def ibis(self) -> Iterator[ibis.backends.duckdb.Backend]:
        """An ibis backend over a read-only connection: build expressions, execute, leave."""
        import ibis

        with self.reader() as con:
            backend = ibis.duckdb.from_connection(con)
            backend.compiler = _inlining_compiler()
            yield backend

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        """Run read-only SQL and return a polars DataFrame."""
        with self.reader() as con:
            try:
                return con.execute(sql, params).pl()
            except duckdb.Error as exc:
                raise WarehouseError(f"query failed: {exc}") from exc

    def exists(self) -> bool:
        return self.path.exists()

    def source_state(self, source_kind: str, prefix: str = "") -> dict[str, Any]:
        """State a source saved with its loads (see :meth:`LoadBatch.replace_partitions`):
        ``{key: value}`` for keys starting with ``prefix``; empty for a new warehouse."""
        if not self.path.exists():
            return {}
        with self.writer() as con:  # a source asks just before it loads: migrate now if needed
            rows = con.execute(
                "SELECT state_key, value FROM source_state WHERE source_kind = ? AND starts_with(state_key, ?)",
                [source_kind, prefix],
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    @staticmethod
    @contextlib.contextmanager
    def scratch() -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB connection for looking at files before a load (no warehouse lock)."""
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            _spill_privately(con, Path(tempfile.gettempdir()) / "finops-duckdb.tmp")
            yield con
        finally:
            con.close()

    # -- schema --------------------------------------------------------------------------

    @staticmethod
    def _version(con: duckdb.DuckDBPyConnection) -> int:
        if not _has_table(con, "schema_version"):
            return 0
        return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    def _check_version(self, con: duckdb.DuckDBPyConnection) -> None:
        version = self._version(con)
        if version < SCHEMA_VERSION:
            raise SchemaVersionError(
                f"warehouse {self.path} has schema version {version}, this finops needs {SCHEMA_VERSION}",
                hint="run `finops migrate` (or any load) to upgrade it",
            )
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"warehouse {self.path} has schema version {version}, newer than this finops ({SCHEMA_VERSION})",
                hint="upgrade finops",
            )

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
        )
        current = self._version(con)
        if current > SCHEMA_VERSION:
            self._check_version(con)
        for version in range(current + 1, SCHEMA_VERSION + 1):
            con.execute("BEGIN TRANSACTION")
            try:
                for statement in MIGRATIONS[version - 1]:
                    con.execute(statement)
                con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, _utcnow()])
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise WarehouseError(f"migration to schema version {version} failed: {exc}") from exc

    def migrate(self) -> int:
        """Bring the warehouse to this finops's schema version; return that version."""
        with self.writer():
            return SCHEMA_VERSION

    @staticmethod
    def _mark_interrupted_batches(con: duckdb.DuckDBPyConnection) -> None:
        # We hold the only write lock, so a batch still 'running' belongs to a dead process.
        con.execute(
            "UPDATE ingest_batches SET status = 'interrupted', ended_at = coalesce(ended_at, ?),"
            " message = 'the loading process ended before the batch finished; its data was rolled back'"
            " WHERE status = 'running'",
            [_utcnow()],
        )

    # -- loading -------------------------------------------------------------------------

    @contextlib.contextmanager
    def load(self, source_kind: str, uri: str, files: Sequence[SourceFile] = ()) -> Iterator[LoadBatch]:
        """Open a write batch: recorded as 'running', then 'succeeded' or 'failed'.

        The connector stages rows with :meth:`LoadBatch.stage` and hands them to
        :meth:`LoadBatch.replace_partitions`. An exception marks the batch failed, rolls back
        its data and propagates.
        """
        with self.writer() as con:
            # max + 1 is safe: we hold the only write lock. (A DuckDB sequence can hand out a
            # used number again after the process is killed before a checkpoint.)
            batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM ingest_batches").fetchone()[0]
            con.execute(
                "INSERT INTO ingest_batches (batch_id, source_kind, uri, files, started_at, status, pid)"
                " VALUES (?, ?, ?, ?, ?, 'running', ?)",
                [batch_id, source_kind, uri, [dataclasses.asdict(f) for f in files], _utcnow(), os.getpid()],
            )
            batch = LoadBatch(con, batch_id, source_kind)
            try:
                yield batch
            except BaseException as exc:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                con.execute(
                    "UPDATE ingest_batches SET status = 'failed', ended_at = ?, message = ? WHERE batch_id = ?",
                    [_utcnow(), f"{type(exc).__name__}: {exc}"[:2000], batch_id],
                )
                raise
            if not batch.finished:
                con.execute(
                    "UPDATE ingest_batches SET status = 'succeeded', ended_at = ?, rows_read = 0,"
                    " rows_loaded = 0, rows_quarantined = 0, message = 'nothing to load' WHERE batch_id = ?",
                    [_utcnow(), batch_id],
                )


# An in-memory database every connection of a load's batch sees: helpers staging files on other
# threads (LoadBatch.helper) write their tables there, since temporary tables are per connection.
_SHARED_STAGE = "_batch_stage"


class LoadBatch:
    """One load in progress. Connectors stage rows here; the warehouse writes them."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, batch_id: int, source_kind: str, *, helper: bool = False
    ) -> None:
        self.con = con
        self.batch_id = batch_id
        self.source_kind = source_kind
        self.finished = False
        self._helper = helper

    @contextlib.contextmanager
    def helper(self) -> Iterator[LoadBatch]:
        """A batch on a cursor of this one's connection, to stage files on another thread.

        Its :meth:`stage` writes to an in-memory database all the batch's connections see (this
        batch's own staged tables are temporary: only its connection sees them), and its SQL
        finds those tables, and the warehouse's, by their bare names. This batch reads what a
        helper staged under :meth:`table_name`. Open helpers on this batch's thread, one per
        worker: a DuckDB connection is not for two threads at once.
        """
        self.con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {_SHARED_STAGE}")
        with self.con.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")  # a cursor is a session of its own
            database = cursor.execute("SELECT current_database()").fetchone()[0].replace("'", "''")
            cursor.execute(f"SET search_path = '{_SHARED_STAGE}.main,\"{database}\".main'")
            yield LoadBatch(cursor, self.batch_id, self.source_kind, helper=True)

    def table_name(self, name: str) -> str:
        """SQL naming the table ``name`` this batch staged, for any connection of the batch."""
        return f'{_SHARED_STAGE}."{name}"' if self._helper else f'"{name}"'

    def stage(self, name: str, sql: str, params: Sequence[Any] | None = None, *, append: bool = False) -> int:
        """Materialise ``sql`` as a temporary table ``name`` (gone when the batch ends).

        With ``append`` the rows are added to an existing staged table (matched by name).
        Returns the number of rows ``sql`` produced.
        """
        try:
            if append:
                return self.con.execute(f'INSERT INTO "{name}" BY NAME {sql}', params).fetchone()[0]
            create = f"TABLE {_SHARED_STAGE}.\"{name}\"" if self._helper else f'TEMP TABLE "{name}"'
            self.con.execute(f"CREATE OR REPLACE {create} AS {sql}", params)
            return self.con.execute(f"SELECT count(*) FROM {self.table_name(name)}").fetchone()[0]
        except duckdb.Error as exc:
            raise WarehouseError(f"batch {self.batch_id}: staging {name} failed: {exc}") from exc

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run a read statement on the batch's connection (e.g. to inspect a staged table)."""
        return self.con.execute(sql, params)

    def replace_partitions(
        self,
        table: str,
        rows_sql: str,
        *,
        partition_by: Sequence[str],
        rows_read: int,
        quarantine_sql: str | None = None,
        state: Mapping[str, Any] | None = None,
        also_delete_where: str | None = None,
    ) -> LoadResult:
        """Replace every partition that ``rows_sql`` touches, in one transaction.

        ``rows_sql`` selects the rows to load, with the target table's column names (missing
        columns become NULL). Rows of ``table`` whose ``partition_by`` values appear in it are
        deleted first. ``quarantine_sql`` selects rows for the ``quarantine`` table (file,
        row_number, column_name, reason, raw_row). ``state`` (key → JSON-able value) is saved
        in ``source_state`` for this batch's source kind in the same transaction, e.g. the
        checksum of the manifest just loaded, so the next run can tell what changed.
        ``also_delete_where`` is a condition on ``table``'s rows deleted in the same transaction
        (counted as replaced): rows an older version of a connector keyed differently.
        """
        con = self.con
        keys = ", ".join(f'"{c}"' for c in partition_by)
        match = " AND ".join(f'target."{c}" IS NOT DISTINCT FROM p."{c}"' for c in partition_by)
        # 'focus/123456789012/2026-07-01': midnight timestamps shown as dates.
        label = " || '/' || ".join(
            f"regexp_replace(coalesce(CAST(\"{c}\" AS VARCHAR), ''), ' 00:00:00$', '')" for c in partition_by
        )
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _partitions AS SELECT DISTINCT {keys} FROM ({rows_sql})")
            # Keyed loads (one partition per request id) would record every key: keep the first few.
            count = con.execute("SELECT count(*) FROM _partitions").fetchone()[0]
            partitions = [
                r[0]
                for r in con.execute(
                    f"SELECT {label} FROM _partitions ORDER BY ALL LIMIT {MAX_RECORDED_PARTITIONS}"
                ).fetchall()
            ]
            if count > MAX_RECORDED_PARTITIONS:
                partitions.append(f"… and {count - MAX_RECORDED_PARTITIONS:,} more")
            rolled_up = table == "charges" and _has_table(con, "charges_daily")  # (from schema v5 on)
            if rolled_up and also_delete_where:  # their partitions' rollup changes too
                con.execute(
                    f"INSERT INTO _partitions SELECT DISTINCT {keys} FROM charges WHERE ({also_delete_where})"
                    f" EXCEPT SELECT {keys} FROM _partitions"
                )
            days_rolled_up = table == "llm_requests" and _has_table(con, "llm_requests_daily")  # (schema v6 on)
            if days_rolled_up:
                self._note_request_days(rows_sql, match, also_delete_where)
            replaced = con.execute(f"DELETE FROM {table} AS target USING _partitions AS p WHERE {match}").fetchone()[0]
            if also_delete_where:
                replaced += con.execute(f"DELETE FROM {table} WHERE {also_delete_where}").fetchone()[0]
            written = []  # the columns the rows have, for the rollup
            if rolled_up:
                written = [d[0] for d in con.execute(f"SELECT * FROM ({rows_sql}) LIMIT 0").description]
            loaded = con.execute(f"INSERT INTO {table} BY NAME ({rows_sql})").fetchone()[0]
            if rolled_up:
                self._roll_up_partitions(match, loaded, written, whole_partitions=not also_delete_where)
            if days_rolled_up:
                self._roll_up_request_days()
            quarantined = 0
            if quarantine_sql:
                quarantined = con.execute(
                    "INSERT INTO quarantine (batch_id, file, row_number, column_name, reason, raw_row)"
                    f" SELECT ?, file, row_number, column_name, reason, raw_row FROM ({quarantine_sql})",
                    [self.batch_id],
                ).fetchone()[0]
            if loaded + quarantined != rows_read:
                raise WarehouseError(
                    f"batch {self.batch_id}: {rows_read} rows read but {loaded} loaded + {quarantined} quarantined;"
                    " nothing was written"
                )
            if state:
                self._save_state(state)
            con.execute(
                "UPDATE ingest_batches SET status = 'succeeded', ended_at = ?, partitions = ?, rows_read = ?,"
                " rows_loaded = ?, rows_quarantined = ?, rows_replaced = ? WHERE batch_id = ?",
                [_utcnow(), partitions, rows_read, loaded, quarantined, replaced, self.batch_id],
            )
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        self.finished = True
        return LoadResult(self.batch_id, rows_read, loaded, quarantined, replaced, partitions)

    def _roll_up_partitions(self, match: str, loaded: int, written: Sequence[str], *, whole_partitions: bool) -> None:
        """Rebuild the `charges_daily` rows of the partitions in ``_partitions`` from `charges`.

        When the load replaced whole partitions and tagged every row it wrote with its batch id,
        those rows are the partitions: they are found by the batch id, whose row groups DuckDB
        finds without reading the rest of the table (reloading a restated month of 767k lines into
        a 20M-line warehouse: 10 s this way, 17 s scanning `charges` for the partitions). Those
        rows have values only in the ``written`` columns, so only those are grouped by.
        """
        self.con.execute(f"DELETE FROM charges_daily AS target USING _partitions AS p WHERE {match}")
        own = f"target.x_BatchId = {int(self.batch_id)}"
        if (
            whole_partitions
            and self.con.execute(f"SELECT count(*) FROM charges AS target WHERE {own}").fetchone()[0] == loaded
        ):
            threads = self.con.execute("SELECT current_setting('threads')").fetchone()[0]
            rollup = charges_daily_sql(own, written, scans=int(threads))
        else:  # e.g. Azure months rebuilt from lines of earlier batches, which may fill other columns
            rollup = charges_daily_sql(f"EXISTS (SELECT 1 FROM _partitions AS p WHERE {match})")
        self.con.execute(f"INSERT INTO charges_daily BY NAME ({rollup})")

    def _note_request_days(self, rows_sql: str, match: str, also_delete_where: str | None) -> None:
        """Keep in ``_request_days`` the (x_Source, day) of every `llm_requests` row this load
        deletes or writes: the `llm_requests_daily` rows to rebuild. Called before the delete."""
        day = "date_trunc('day', period_start)"
        deleted = f"EXISTS (SELECT 1 FROM _partitions AS p WHERE {match})"
        if also_delete_where:
            deleted = f"({deleted}) OR ({also_delete_where})"
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _request_days AS SELECT DISTINCT x_Source, {day} AS day"
            f" FROM llm_requests AS target WHERE {deleted}"
            f" UNION SELECT DISTINCT x_Source, {day} AS day FROM ({rows_sql})"
        )

    def _roll_up_request_days(self) -> None:
        """Rebuild the `llm_requests_daily` rows of the days in ``_request_days`` from `llm_requests`."""
        con = self.con
        same_day = (
            "target.x_Source IS NOT DISTINCT FROM d.x_Source"
            " AND date_trunc('day', target.period_start) IS NOT DISTINCT FROM d.day"
        )
        con.execute(f"DELETE FROM llm_requests_daily AS target USING _request_days AS d WHERE {same_day}")
        first, last, undated = con.execute("SELECT min(day), max(day), count(*) - count(day) FROM _request_days").fetchone()
        days = con.execute(f"SELECT x_Source, day FROM _request_days LIMIT {_LISTED_REQUEST_DAYS + 1}").fetchall()
        sources = dict.fromkeys(source for source, _ in days)
        if len(days) <= _LISTED_REQUEST_DAYS and len(sources) <= _LISTED_REQUEST_SOURCES and not undated:
            # The days as literals, not a join: DuckDB plans a join with the rows this transaction
            # wrote as if the table held only the committed ones, and when it held none (the first
            # load) built its hash table from all the new rows (1.7M calls: 1.9 s instead of 0.7 s).
            rows = " OR ".join(_same_source_on_days(s, [day for source, day in days if source == s]) for s in sources)
            rows = rows or "FALSE"  # no calls written or deleted
        else:
            rows = f"EXISTS (SELECT 1 FROM _request_days AS d WHERE {same_day})"
        if first is not None and not undated:  # a literal range lets DuckDB skip the other days' row groups
            rows = (
                f"target.period_start >= TIMESTAMP '{first}'"
                f" AND target.period_start < TIMESTAMP '{last}' + INTERVAL 1 DAY AND ({rows})"
            )
        con.execute(f"INSERT INTO llm_requests_daily BY NAME ({llm_requests_daily_sql(rows)})")

    def period_totals(self) -> pl.DataFrame:
        """What this batch loaded into `charges`, per billing period: rows, BilledCost, EffectiveCost."""
        return self.con.execute(
            "SELECT strftime(BillingPeriodStart, '%Y-%m') AS billing_period, count(*) AS rows,"
            " sum(BilledCost) AS billed_cost, sum(EffectiveCost) AS effective_cost"
            " FROM charges WHERE x_BatchId = ? GROUP BY ALL ORDER BY billing_period",
            [self.batch_id],
        ).pl()

    def quarantine_sample(self, limit: int = 20) -> pl.DataFrame:
        """The first rows this batch quarantined (file, row_number, column_name, reason), to show the user."""
        return self.con.execute(
            "SELECT file, row_number, column_name, reason FROM quarantine WHERE batch_id = ?"
            " ORDER BY file, row_number LIMIT ?",
            [self.batch_id, limit],
        ).pl()

    def _save_state(self, state: Mapping[str, Any]) -> None:
        self.con.executemany(
            "INSERT OR REPLACE INTO source_state (source_kind, state_key, value, batch_id, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                [self.source_kind, key, json.dumps(value, default=str), self.batch_id, _utcnow()]
                for key, value in state.items()
            ],
        )


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0]
    return found > 0


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
