"""Google Cloud billing export (standard or detailed) into the `charges` table.

Two ways in, one mapping:

* :func:`ingest_bigquery` queries the export table in BigQuery (google-cloud-bigquery), one
  invoice month at a time, with the month as a bound query parameter (``@invoice_month``),
  never formatted into the SQL. Rows are paged over the REST API (no BigQuery Storage API)
  into a local Parquet file, so the warehouse lock is held only while loading, not while
  downloading, and memory stays flat for a large month.
* :func:`ingest_export` loads the same table exported to files: newline-delimited JSON as
  ``bq extract --destination_format NEWLINE_DELIMITED_JSON`` writes it (nested records,
  repeated ``credits``/``labels``, INT64 as strings, timestamps as ``"2026-07-01 00:00:00
  UTC"``, NULL fields left out), optionally gzipped, or Parquet with nested struct and list
  columns.

How a load goes:

1. Every file is checked first, without touching the warehouse: a file without the fields
   every billing export has (:data:`REQUIRED_FIELDS`) is refused, naming what is missing.
2. Each row becomes one JSON document and is parsed once into a struct whose leaves are all
   text, so a bad value is a bad *row* (quarantined with file, row, column and reason), never
   a failed load. JSON lines that do not parse are quarantined the same way.
3. Typed columns are computed in SQL. Money is read from its text as DECIMAL: BigQuery keeps
   ``cost`` and ``credits.amount`` as FLOAT64, and the shortest text of a double is the
   decimal Google wrote (0.1 stays 0.1), so sums are exact where a float sum would drift.
4. Each (billing account, invoice month) present replaces what the warehouse held for it, in
   one transaction. BigQuery loads and file loads share one source kind, ``gcp-billing``:
   they are the same data, so loading both never double counts, and the newest load of a
   month wins. Late rows (Google adds rows to a month for days after it ends) arrive by
   loading the month again. Load all files of one invoice month together.

Mapping (FOCUS column ← export field), and the choices made where the export says less:

* BilledCost = ``cost`` + sum of ``credits.amount`` (credits are negative); the credit sum
  and the distinct credit types are kept in ``x_CreditAmount`` / ``x_CreditTypes``.
* EffectiveCost = BilledCost as well. FOCUS amortizes *upfront* commitment payments; Google's
  committed use discounts have none: the commitment fee is billed monthly as its own
  "Commitment v1: …" SKU and the discount arrives as COMMITTED_USAGE_DISCOUNT(_DOLLAR_BASE)
  credits on the covered usage, so both are already in the month they belong to. Rows with
  such a credit get CommitmentDiscountId/Name/Category (Usage or Spend) from the credit and
  CommitmentDiscountStatus "Used"; commitment-fee rows and covered rows get PricingCategory
  "Committed".
* ContractedCost = ``cost`` (Google's price for the account, before credits); ListCost =
  ``cost_at_list`` when the export has it, else NULL (never guessed).
* ChargeCategory from ``cost_type``: regular → Usage, tax → Tax, rounding_error → Adjustment,
  adjustment → Credit when it lowers the bill (BilledCost < 0) else Adjustment; adjustment
  rows are corrections of earlier charges, so ChargeClass = "Correction". ``x_LineItemType``
  keeps ``cost_type``. An unknown ``cost_type`` is quarantined rather than guessed.
* BillingPeriodStart = first day of ``invoice.month`` (UTC midnight), BillingPeriodEnd = the
  next month's first day. ChargePeriodStart/End = ``usage_start_time``/``usage_end_time`` in UTC.
* SubAccountId/Name = ``project.id``/``project.name``. Tags = the project's labels with the
  resource's ``labels`` on top (a resource label wins over a project label with the same key):
  many teams label projects, not every resource, and FOCUS counts inherited tags as tags.
  ``system_labels`` are not tags; ``compute.googleapis.com/machine_spec`` becomes
  ``x_InstanceType``.
* ServiceName = ``service.description``; SkuId = ``sku.id``; ``sku.description`` goes to both
  ChargeDescription and ``x_UsageType``, which finops.analyses.classify reads to tell Vertex AI
  training from prediction. ServiceCategory "AI and Machine Learning" for Vertex AI, Gemini
  and Google's AI APIs (see :data:`SERVICE_CATEGORIES`).
* RegionId/AvailabilityZone = ``location.region``/``location.zone``; ConsumedQuantity/Unit =
  ``usage.amount``/``usage.unit``; PricingQuantity/Unit = ``usage.amount_in_pricing_units``/
  ``usage.pricing_unit``; ResourceId/Name = ``resource.global_name``/``resource.name``
  (detailed export only); ContractedUnitPrice = ``price.effective_price`` (detailed only).
* ``x_ExportId`` = the newest ``export_time`` of the (account, month) loaded: which delivery
  the warehouse holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import duckdb

from connectors.files import expand, longest_line, money_from_text, sql_literal
from connectors.focus import IngestReport
from connectors.staging import (
    StagedRows,
    checksums,
    errors_quarantine_sql,
    first_line,
    lines_sql,
    no_progress,
    reading,
    stage_files_side_by_side,
)
from finops.exceptions import SourceError
from finops.warehouse import PARTITION_COLUMNS, LoadBatch, LoadResult, SourceFile, Warehouse

SOURCE_KIND = "gcp-billing"
"""One kind for BigQuery and file loads: the same export either way, so they replace each other."""

PROVIDER = "Google Cloud"

REQUIRED_FIELDS = (
    "billing_account_id",
    "service.description",
    "sku.id",
    "sku.description",
    "usage_start_time",
    "usage_end_time",
    "cost",
    "currency",
    "invoice.month",
    "cost_type",
)
"""Fields every Cloud Billing export (standard and detailed) has: without them a file is not one."""

# The part of the export schema we read, every leaf as text: parsing a row once into this
# shape never fails, so a bad value can be reported for its row instead of failing the load.
# BigQuery loads select only these top-level fields (a query is billed by the bytes it reads).
_LABELS = [{"key": "VARCHAR", "value": "VARCHAR"}]
EXPORT_FIELDS: dict[str, Any] = {
    "billing_account_id": "VARCHAR",
    "service": {"id": "VARCHAR", "description": "VARCHAR"},
    "sku": {"id": "VARCHAR", "description": "VARCHAR"},
    "usage_start_time": "VARCHAR",
    "usage_end_time": "VARCHAR",
    "project": {"id": "VARCHAR", "name": "VARCHAR", "labels": _LABELS},
    "labels": _LABELS,
    "system_labels": _LABELS,
    "location": {"region": "VARCHAR", "zone": "VARCHAR"},
    "resource": {"name": "VARCHAR", "global_name": "VARCHAR"},  # detailed export only
    "cost": "VARCHAR",
    "cost_at_list": "VARCHAR",
    "currency": "VARCHAR",
    "usage": {"amount": "VARCHAR", "unit": "VARCHAR", "amount_in_pricing_units": "VARCHAR", "pricing_unit": "VARCHAR"},
    "credits": [{"name": "VARCHAR", "amount": "VARCHAR", "full_name": "VARCHAR", "id": "VARCHAR", "type": "VARCHAR"}],
    "invoice": {"month": "VARCHAR"},
    "cost_type": "VARCHAR",
    "price": {"effective_price": "VARCHAR"},  # detailed export only
    "transaction_type": "VARCHAR",
    "seller_name": "VARCHAR",
    "export_time": "VARCHAR",
}
_LIST_FIELDS = ("credits", "labels", "system_labels", "project.labels")

COST_TYPES = {"regular": "Usage", "tax": "Tax", "rounding_error": "Adjustment", "adjustment": None}
"""cost_type → ChargeCategory (adjustment: Credit or Adjustment by sign, see the module docstring)."""

CUD_CREDIT_TYPES = {"COMMITTED_USAGE_DISCOUNT": "Usage", "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE": "Spend"}
"""Committed use discount credit types → FOCUS CommitmentDiscountCategory."""

SERVICE_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("vertex ai|gemini|generative language|ai platform|machine learning|automl|document ai|dialogflow"
     "|contact center ai|cloud vision|vision ai|video intelligence|speech|text-to-speech|translat"
     "|natural language|recommendations ai|retail api|discovery engine|agent builder|colab|notebooks",
     "AI and Machine Learning"),
    ("compute engine|kubernetes engine|cloud run|cloud functions|app engine|cloud tpu|batch", "Compute"),
    ("cloud storage|filestore|backup|persistent disk|artifact registry", "Storage"),
    ("cloud sql|spanner|bigtable|firestore|datastore|alloydb|memorystore", "Databases"),
    ("bigquery|dataflow|dataproc|pub/sub|composer|data fusion|looker|dataplex", "Analytics"),
    ("networking|cloud cdn|cloud dns|load balancing|cloud nat|vpn|interconnect|network", "Networking"),
    ("logging|monitoring|cloud trace|operations", "Management and Governance"),
    ("security|secret manager|key management|identity|armor|recaptcha", "Security"),
    ("support", "Support"),
)  # fmt: skip
"""(regex on lower-cased service.description, FOCUS ServiceCategory); first match wins, else Other."""

MACHINE_SPEC_LABEL = "compute.googleapis.com/machine_spec"

ProgressCallback = Callable[[str, int, int], None]
FileKind = Literal["json", "parquet"]


@dataclasses.dataclass(frozen=True)
class ExportFile:
    """A file (or one BigQuery month, downloaded) checked to be a Cloud Billing export."""

    path: PurePosixPath | Path  # what the user gave, or table/invoice_month=YYYYMM for BigQuery
    format: FileKind
    compression: str | None
    ignored_columns: tuple[str, ...]  # top-level fields this connector does not read
    source_name: str  # x_SourceFile: the file path, or bigquery://project.dataset.table?invoice_month=…
    local_path: Path  # where the rows are read from
    longest_line: int | None = None  # gzip JSON: the bytes of its longest line, to size the read buffer


# -- files ----------------------------------------------------------------------------------


def detect_kind(path: Path) -> tuple[FileKind, str | None]:
    """(format, compression) of an export file, by its name, else by its first bytes."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq", ".parq")):
        return "parquet", None
    if name.endswith((".json.gz", ".jsonl.gz", ".ndjson.gz")):
        return "json", "gzip"
    if name.endswith((".json", ".jsonl", ".ndjson")):
        return "json", None
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == b"PAR1":
        return "parquet", None
    if head[:2] == b"\x1f\x8b":
        return "json", "gzip"
    if head[:1] == b"{":
        return "json", None
    raise SourceError(
        f"{path}: not a billing export: neither newline-delimited JSON nor Parquet",
        hint="extract the table with `bq extract --destination_format NEWLINE_DELIMITED_JSON` (or PARQUET)",
    )


def _lines_sql(path: Path, compression: str | None, longest: int | None = None) -> str:
    """Read a newline-delimited JSON file as one text column ``line``, one row per line (see :func:`lines_sql`)."""
    return lines_sql(path, compression, longest=longest, max_line_size=268435456)


def _json_rows_sql(
    path: Path, kind: FileKind, compression: str | None, *, lines_table: str | None = None, longest: int | None = None
) -> str:
    """SELECT _row (1-based), _raw (the row as text), j (the row as JSON, NULL when not valid).

    JSON lines are numbered by their position in ``lines_table`` (the file's lines staged in
    order) when given; without it (a sample while inspecting) the numbers are not needed.
    """
    if kind == "parquet":
        return (
            "SELECT _row, _raw, _raw::JSON AS j FROM (SELECT file_row_number + 1 AS _row,"
            f" to_json(t) AS _raw FROM read_parquet({sql_literal(str(path))}, file_row_number = true) AS t)"
        )
    source, row = (f'"{lines_table}"', "rowid + 1") if lines_table else (_lines_sql(path, compression, longest), "NULL")
    # Blank lines are not rows; skipping them after numbering keeps every row's line number.
    return (
        f"SELECT * FROM (SELECT {row} AS _row, line AS _raw, CASE WHEN json_valid(line) THEN line::JSON END AS j"
        f" FROM {source}) WHERE nullif(trim(_raw), '') IS NOT NULL"
    )


def inspect(paths: Sequence[Path], *, sample_rows: int = 1000) -> list[ExportFile]:
    """Check that each file is a readable billing export; raise before anything is written.

    Fields are judged on the first ``sample_rows`` rows: the JSON export leaves NULL fields
    out, so a field counts as present if any sampled row has it.
    """
    files = []
    with Warehouse.scratch() as con:
        for path in paths:
            kind, compression = detect_kind(path)
            # Decompressing a gzip file whole proves it complete (DuckDB reads a truncated one
            # up to the cut and calls it done) and measures the read buffer its stage needs.
            longest = longest_line(path, "gzip") if compression == "gzip" else None
            files.append(_inspect_one(con, path, path, str(path), kind, compression, sample_rows, longest))
    return files


def _inspect_one(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    shown: PurePosixPath | Path,
    source_name: str,
    kind: FileKind,
    compression: str | None,
    sample_rows: int,
    longest: int | None = None,
) -> ExportFile:
    if kind == "parquet":
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_literal(str(path))})").fetchall()
            top_level = [r[0] for r in described]
        except duckdb.Error as exc:
            raise SourceError(f"{shown}: cannot be read as Parquet: {_first_line(exc)}") from exc
    sample = _json_rows_sql(path, kind, compression, longest=longest)
    checks = ", ".join(f"bool_or(json_exists(j, {sql_literal(_json_path(f))}))" for f in REQUIRED_FIELDS)
    try:
        row = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE json_type(j) = 'OBJECT'), {checks},"
            f" list_distinct(flatten(list(json_keys(j)))) FROM (SELECT * FROM ({sample}) LIMIT {int(sample_rows)})"
        ).fetchone()
    except duckdb.Error as exc:
        what = "Parquet" if kind == "parquet" else "JSON lines"
        raise SourceError(f"{shown}: cannot be read as {what}: {_first_line(exc)}") from exc
    sampled, objects, present, keys = row[0], row[1], row[2 : 2 + len(REQUIRED_FIELDS)], row[-1] or []
    if kind == "parquet":
        keys = top_level
        if sampled == 0:  # an empty file: judge the top-level columns only
            present = [f.split(".")[0] in top_level for f in REQUIRED_FIELDS]
    if sampled and not objects:
        raise SourceError(
            f"{shown}: not a billing export: no line of the first {sampled} is a JSON object",
            hint="expected newline-delimited JSON as `bq extract --destination_format NEWLINE_DELIMITED_JSON` writes it",
        )
    missing = [f for f, ok in zip(REQUIRED_FIELDS, present, strict=True) if not ok]
    if missing and (sampled or kind == "parquet"):  # an empty JSON file has nothing to judge
        raise SourceError(
            f"{shown}: not a Cloud Billing export: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            hint="load the standard or detailed usage cost export (gcp_billing_export_v1_… / gcp_billing_export_resource_v1_…);"
            " for a FOCUS export use `finops ingest focus`",
        )
    ignored = tuple(k for k in keys if k not in EXPORT_FIELDS)
    return ExportFile(shown, kind, compression, ignored, source_name, path, longest)


def _json_path(field: str) -> str:
    return "$." + field


# -- loading --------------------------------------------------------------------------------


def ingest_export(
    wh: Warehouse,
    patterns: Sequence[str | Path],
    *,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Load billing export files (JSON lines, .json.gz, Parquet) matching ``patterns`` into ``charges``.

    Every (billing account, invoice month) in the files replaces what the warehouse held for
    it, whether that came from files or from BigQuery.
    """
    paths = expand(patterns, suffixes=(".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz", ".parquet", ".pq"))
    files = inspect(paths)
    report = progress or no_progress
    sources = checksums([f.local_path for f in files], report)
    return _load(wh, files, sources, ", ".join(str(p) for p in patterns), report)


def _load(
    wh: Warehouse,
    files: Sequence[ExportFile],
    sources: Sequence[SourceFile],
    uri: str,
    report: ProgressCallback,
    state: dict[str, Any] | None = None,
) -> IngestReport:
    total = len(files)
    with wh.load(SOURCE_KIND, uri, sources) as batch:
        rows_read = stage_files_side_by_side(
            batch, files, _stage_apart, report, path=lambda f: f.path, rows_table="gcp_rows", rejects_table=None
        )
        report("replacing invoice months", total, total)
        if rows_read == 0:
            result = LoadResult(batch.batch_id, 0, 0, 0, 0, [])
        else:
            batch.stage("gcp_typed", _typed_sql("gcp_rows"))
            result = batch.replace_partitions(
                "charges",
                _charges_sql("gcp_typed", batch.batch_id),
                partition_by=PARTITION_COLUMNS,
                rows_read=rows_read,
                quarantine_sql=errors_quarantine_sql("gcp_typed"),
                state=state,
            )
        period_totals = batch.period_totals()
        sample = batch.quarantine_sample()
    return IngestReport(result, list(files), period_totals, sample)


def _stage_apart(helper: LoadBatch, index: int, file: ExportFile) -> StagedRows:
    """Stage one file's rows as (_file, _row, _raw, r, _shape) in a table of its own, for gcp_rows."""
    lines = f"_lines_{index}" if file.format == "json" else None
    rows = _json_rows_sql(file.local_path, file.format, file.compression, lines_table=lines)
    shape_checks = [
        "CASE WHEN j IS NULL THEN 'row: not valid JSON' END",
        "CASE WHEN json_type(j) <> 'OBJECT' THEN 'row: not a JSON object' END",
        *(
            f"CASE WHEN json_type(j, {sql_literal(_json_path(f))}) NOT IN ('ARRAY', 'NULL')"
            f" THEN '{f}: not a list: ' || left(json_extract(j, {sql_literal(_json_path(f))})::VARCHAR, 60) END"
            for f in _LIST_FIELDS
        ),
    ]
    select = (
        f"SELECT {sql_literal(file.source_name)} AS _file, _row,"
        " CASE WHEN j IS NOT NULL THEN _raw::JSON ELSE to_json({'line': _raw}) END AS _raw,"
        f" json_transform(j, {sql_literal(json.dumps(EXPORT_FIELDS))}) AS r,"
        f" list_filter([{', '.join(shape_checks)}]::VARCHAR[], e -> e IS NOT NULL) AS _shape"
        f" FROM ({rows})"
    )
    rows_table = f"_gcp_rows_{index}"
    with reading(file.path):
        if lines:  # staged first: a table keeps the file's line order, so rowid is the line number
            helper.stage(lines, f"SELECT line FROM {_lines_sql(file.local_path, file.compression, file.longest_line)}")
        staged = helper.stage(rows_table, select)
    if lines:
        helper.execute(f'DROP TABLE "{lines}"')
    return StagedRows(helper.table_name(rows_table), None, staged)


def _text(expr: str) -> str:
    """The value as trimmed text, NULL for empty strings."""
    return f"nullif(trim({expr}), '')"


def _typed_sql(rows: str) -> str:
    """SELECT the typed values of each staged row with its list of errors (empty when good).

    Three levels, so that each value is parsed once: texts, then typed values, then the
    errors that compare the two (inlined, DuckDB would parse a timestamp once per use).
    """
    texts = {
        "account": "r.billing_account_id",
        "currency_text": "r.currency",
        "cost_text": "r.cost",
        "list_cost_text": "r.cost_at_list",
        "usage_amount_text": "r.usage.amount",
        "pricing_amount_text": "r.usage.amount_in_pricing_units",
        "unit_price_text": "r.price.effective_price",
        "start_text": "r.usage_start_time",
        "end_text": "r.usage_end_time",
        "export_text": "r.export_time",
        "month_text": "r.invoice.month",
        "cost_type_text": "r.cost_type",
        "sku_description": "r.sku.description",
        "service": "r.service.description",
    }
    numbers = {  # typed column: (its text column, the export field named in errors)
        "cost": ("cost_text", "cost"),
        "list_cost": ("list_cost_text", "cost_at_list"),
        "usage_amount": ("usage_amount_text", "usage.amount"),
        "pricing_amount": ("pricing_amount_text", "usage.amount_in_pricing_units"),
        "unit_price": ("unit_price_text", "price.effective_price"),
    }
    timestamps = {
        "charge_start": ("start_text", "usage_start_time"),
        "charge_end": ("end_text", "usage_end_time"),
        "export_time": ("export_text", "export_time"),
    }
    required = {
        "account": "billing_account_id",
        "cost_text": "cost",
        "currency_text": "currency",
        "start_text": "usage_start_time",
        "end_text": "usage_end_time",
        "month_text": "invoice.month",
        "cost_type_text": "cost_type",
    }
    credits = "coalesce(r.credits, [])"
    labels = "list_concat(coalesce(r.project.labels, []), coalesce(r.labels, []))"
    cud_types = ", ".join(sql_literal(t) for t in CUD_CREDIT_TYPES)
    known_cost_types = ", ".join(sql_literal(t) for t in COST_TYPES)

    def shown(column: str) -> str:
        return "''' || left(" + column + ", 60) || '''"

    errors = [
        *(
            f"CASE WHEN {col} IS NULL THEN '{name}: empty, but every billing export row has a value' END"
            for col, name in required.items()
        ),
        *(
            f"CASE WHEN {text} IS NOT NULL AND {typed} IS NULL THEN '{name}: cannot read {shown(text)} as a number' END"
            for typed, (text, name) in numbers.items()
        ),
        *(
            f"CASE WHEN {text} IS NOT NULL AND {typed} IS NULL THEN '{name}: cannot read {shown(text)} as a date-time' END"
            for typed, (text, name) in timestamps.items()
        ),
        f"CASE WHEN month_text IS NOT NULL AND month IS NULL"
        f" THEN 'invoice.month: cannot read {shown('month_text')} as a month YYYYMM' END",
        f"CASE WHEN cost_type_text IS NOT NULL AND cost_type NOT IN ({known_cost_types})"
        f" THEN 'cost_type: unknown value {shown('cost_type_text')}' END",
    ]
    credit_errors = (
        "list_transform(list_filter(credit_list, c -> c.amount_value IS NULL),"
        " c -> 'credits.amount: cannot read ''' || coalesce(left(c.amount, 60), '') || ''' as a number'"
        " || coalesce(' (credit ' || c.name || ')', ''))"
    )
    return f"""
        SELECT *,
            cost + credit_amount AS billed,
            max(export_time) OVER (PARTITION BY account, month) AS newest_export
        FROM (
            SELECT *,
                CASE WHEN r IS NULL OR len(list_filter(_shape, e -> starts_with(e, 'row:'))) > 0 THEN _shape
                    ELSE list_concat(_shape, {credit_errors}, list_filter([{", ".join(errors)}]::VARCHAR[], e -> e IS NOT NULL))
                    END AS _errors,
                coalesce(list_sum(list_transform(credit_list, c -> c.amount_value)), 0) AS credit_amount,
                nullif(list_sort(list_distinct(list_filter(list_transform(credit_list, c -> {_text("c.type")}),
                    t -> t IS NOT NULL))), []) AS credit_types,
                list_filter(credit_list, c -> c.type IN ({cud_types}))[1] AS cud
            FROM (
                SELECT *,
                    {", ".join(f"{money_from_text(text)} AS {typed}" for typed, (text, _) in numbers.items())},
                    {", ".join(f"{_timestamp(text)} AS {typed}" for typed, (text, _) in timestamps.items())},
                    CASE WHEN regexp_full_match(month_text, '[0-9]{{6}}') THEN try_strptime(month_text, '%Y%m') END AS month,
                    lower(cost_type_text) AS cost_type,
                    list_transform({credits}, c -> {{'name': c.name, 'amount': c.amount, 'full_name': c.full_name,
                        'id': c.id, 'type': c.type, 'amount_value': {money_from_text(_text("c.amount"))}}}) AS credit_list,
                    list_filter({labels}, (e, i) -> nullif(e.key, '') IS NOT NULL  -- the last value of a key wins
                        AND NOT list_contains(list_transform({labels}[i + 1:], later -> later.key), e.key)) AS tag_entries,
                    list_filter(coalesce(r.system_labels, []), e -> e.key = '{MACHINE_SPEC_LABEL}')[1].value AS machine_spec
                FROM (SELECT _file, _row, _raw, _shape, r, {", ".join(f"{_text(expr)} AS {name}" for name, expr in texts.items())}
                      FROM {rows})
            )
        )
    """


def _timestamp(text: str) -> str:
    """A UTC timestamp from text; the common UTC spellings take the fast path (no time zone lookup)."""
    return (
        f"CASE WHEN regexp_matches({text}, '( UTC|[+]00(:?00)?|Z)$') THEN TRY_CAST({text} AS TIMESTAMP)"
        f" ELSE CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP) END"
    )


def _service_category(service: str) -> str:
    cases = " ".join(
        f"WHEN regexp_matches(lower({service}), {sql_literal(pattern)}) THEN {sql_literal(category)}"
        for pattern, category in SERVICE_CATEGORIES
    )
    return f"CASE WHEN {service} IS NULL THEN NULL {cases} ELSE 'Other' END"


def _charges_sql(typed: str, batch_id: int) -> str:
    """SELECT the `charges` columns of the good staged rows."""
    commitment_sku = "coalesce(starts_with(lower(sku_description), 'commitment'), false)"
    spot = "coalesce(regexp_matches(lower(sku_description), 'spot|preemptible'), false)"
    cud_categories = " ".join(f"WHEN {sql_literal(t)} THEN {sql_literal(c)}" for t, c in CUD_CREDIT_TYPES.items())
    return f"""
        SELECT
            account AS BillingAccountId,
            'Billing Account' AS BillingAccountType,
            {_text('r.currency')} AS BillingCurrency,
            month AS BillingPeriodStart,
            month + INTERVAL 1 MONTH AS BillingPeriodEnd,
            charge_start AS ChargePeriodStart,
            charge_end AS ChargePeriodEnd,
            billed AS BilledCost,
            billed AS EffectiveCost,
            cost AS ContractedCost,
            list_cost AS ListCost,
            unit_price AS ContractedUnitPrice,
            CASE cost_type WHEN 'adjustment' THEN CASE WHEN billed < 0 THEN 'Credit' ELSE 'Adjustment' END
                {' '.join(f"WHEN {sql_literal(t)} THEN {sql_literal(c)}" for t, c in COST_TYPES.items() if c)} END
                AS ChargeCategory,
            CASE WHEN cost_type = 'adjustment' THEN 'Correction' END AS ChargeClass,
            sku_description AS ChargeDescription,
            CASE WHEN cost_type <> 'regular' THEN 'One-Time' WHEN {commitment_sku} THEN 'Recurring'
                ELSE 'Usage-Based' END AS ChargeFrequency,
            CASE WHEN cost_type <> 'regular' THEN NULL WHEN cud IS NOT NULL OR {commitment_sku} THEN 'Committed'
                WHEN {spot} THEN 'Dynamic' ELSE 'Standard' END AS PricingCategory,
            CASE WHEN cost_type <> 'regular' THEN NULL WHEN cud IS NOT NULL OR {commitment_sku} THEN 'CommittedUseDiscount'
                WHEN {spot} THEN 'Spot' ELSE 'OnDemand' END AS x_PricingModel,
            CASE cud.type {cud_categories} END AS CommitmentDiscountCategory,
            {_text('cud.id')} AS CommitmentDiscountId,
            coalesce({_text('cud.full_name')}, {_text('cud.name')}) AS CommitmentDiscountName,
            CASE WHEN cud IS NOT NULL THEN 'Used' END AS CommitmentDiscountStatus,
            CASE WHEN cud IS NOT NULL THEN 'Committed Use Discount' END AS CommitmentDiscountType,
            usage_amount AS ConsumedQuantity,
            {_text('r.usage.unit')} AS ConsumedUnit,
            pricing_amount AS PricingQuantity,
            {_text('r.usage.pricing_unit')} AS PricingUnit,
            '{PROVIDER}' AS ProviderName,
            '{PROVIDER}' AS ServiceProviderName,
            CASE WHEN starts_with(upper(r.transaction_type), 'THIRD_PARTY') AND {_text('r.seller_name')} IS NOT NULL
                THEN {_text('r.seller_name')} ELSE '{PROVIDER}' END AS PublisherName,
            '{PROVIDER}' AS InvoiceIssuerName,
            {_text('r.location.region')} AS RegionId,
            {_text('r.location.zone')} AS AvailabilityZone,
            {_text('r.resource.global_name')} AS ResourceId,
            {_text('r.resource.name')} AS ResourceName,
            service AS ServiceName,
            {_service_category('service')} AS ServiceCategory,
            {_text('r.sku.id')} AS SkuId,
            {_text('r.project.id')} AS SubAccountId,
            {_text('r.project.name')} AS SubAccountName,
            CASE WHEN {_text('r.project.id')} IS NOT NULL THEN 'Project' END AS SubAccountType,
            CASE WHEN len(tag_entries) > 0 THEN map_from_entries(tag_entries) END AS Tags,
            sku_description AS x_UsageType,
            cost_type AS x_LineItemType,
            {_text('machine_spec')} AS x_InstanceType,
            credit_amount AS x_CreditAmount,
            credit_types AS x_CreditTypes,
            strftime(newest_export, '%Y-%m-%dT%H:%M:%S.%fZ') AS x_ExportId,
            '{SOURCE_KIND}' AS x_Source,
            {int(batch_id)} AS x_BatchId,
            _file AS x_SourceFile,
            _row AS x_SourceRow
        FROM {typed}
        WHERE len(_errors) = 0
    """


# -- BigQuery -------------------------------------------------------------------------------

_TABLE_ID = re.compile(r"^(?P<project>[a-z0-9][a-z0-9.:_-]*[a-z0-9])\.(?P<dataset>[A-Za-z0-9_]+)\.(?P<table>[A-Za-z0-9_$-]+)$")


def parse_month(text: str) -> str:
    """'2026-07' or '202607' → '202607' (the export's invoice.month); anything else is an error."""
    match = re.fullmatch(r"(\d{4})-?(\d{2})", text.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise SourceError(f"invoice month {text!r} is not a month", hint="write months as YYYY-MM, e.g. 2026-07")
    return match[1] + match[2]


def parse_months(texts: Sequence[str]) -> list[str]:
    """Invoice months (YYYYMM) from '2026-07', '2026-07,2026-08' or ranges '2026-01..2026-06', in order.

    >>> parse_months(["2026-07,202608", "2026-11..2027-01"])
    ['202607', '202608', '202611', '202612', '202701']
    """
    months: dict[str, None] = {}
    for text in texts:
        for part in filter(None, (p.strip() for p in text.split(","))):
            first, _, last = part.partition("..")
            start, end = parse_month(first), parse_month(last or first)
            if end < start:
                raise SourceError(f"month range {part!r} ends before it starts", hint="write ranges as 2026-01..2026-06")
            year, month = int(start[:4]), int(start[4:])
            while f"{year}{month:02d}" <= end:
                months.setdefault(f"{year}{month:02d}", None)
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return list(months)


def ingest_bigquery(
    wh: Warehouse,
    table: str,
    months: Sequence[str],
    *,
    client: Any = None,
    project: str | None = None,
    api_endpoint: str | None = None,
    credentials: Any = None,
    anonymous: bool = False,
    progress: ProgressCallback | None = None,
) -> list[IngestReport]:
    """Query billing export ``table`` (``PROJECT.DATASET.TABLE``) for each invoice month and load it.

    Each month is one query with the month bound as ``@invoice_month`` and one load that
    replaces the month (per billing account) in the warehouse; a month the query returns no
    rows for is left as it was. The rows are paged over the REST API into a temporary
    Parquet file first, so the warehouse is locked only while loading; ``x_SourceFile`` is
    ``bigquery://TABLE?invoice_month=YYYYMM`` and ``x_SourceRow`` the row's place in the
    query's result. Returns one report per month, in month order. ``client`` is a
    ``google.cloud.bigquery.Client``; without one, a client is made for ``project`` (the
    project that runs and pays for the query; default: the table's project) with Application
    Default Credentials, or anonymous credentials for a loopback ``http://`` ``api_endpoint``
    (a local test server) or when ``anonymous`` is set.
    """
    match = _TABLE_ID.match(table.strip())
    if not match:
        raise SourceError(
            f"{table!r} is not a BigQuery table id",
            hint="write it as PROJECT.DATASET.TABLE, e.g. my-billing.billing_export.gcp_billing_export_v1_01F3A2_9B7C4D_E5A610",
        )
    wanted = parse_months(months)
    if not wanted:
        raise SourceError("no invoice month given", hint="pass --months 2026-07 (several: --months 2026-07,2026-08)")
    report = progress or (lambda *_: None)
    if client is None:
        client = bigquery_client(
            project or match["project"], api_endpoint=api_endpoint, credentials=credentials, anonymous=anonymous
        )
    schema, location = _export_table_schema(client, table)
    reports = []
    for i, month in enumerate(wanted):
        with tempfile.TemporaryDirectory(prefix="finops-gcp-") as tmp:
            local = Path(tmp) / f"invoice_month={month}.parquet"
            report(f"querying {month[:4]}-{month[4:]}", i, len(wanted))
            rows = _download_month(client, table, schema, location, month, local, report)
            source_name = f"bigquery://{table}?invoice_month={month}"
            shown = PurePosixPath(table) / f"invoice_month={month}"
            with Warehouse.scratch() as con:
                file = _inspect_one(con, local, shown, source_name, "parquet", None, 1000) if rows else None
            files = [file] if file else []
            sources = [dataclasses.replace(SourceFile.of(local), path=source_name)] if file else []
            state = {f"bigquery/{table}/{month}": {"rows": rows}}
            reports.append(_load(wh, files, sources, source_name, report, state=state))
    return reports


def bigquery_client(
    project: str | None,
    *,
    api_endpoint: str | None = None,
    credentials: Any = None,
    anonymous: bool = False,
) -> Any:
    """A google.cloud.bigquery.Client (see :func:`google_credentials` for which credentials)."""
    from google.cloud import bigquery

    credentials = google_credentials(api_endpoint, credentials=credentials, anonymous=anonymous)
    with google_errors("BigQuery"):
        return bigquery.Client(
            project=project,
            credentials=credentials,
            client_options={"api_endpoint": api_endpoint} if api_endpoint else None,
        )


def _export_table_schema(client: Any, table: str) -> tuple[list[Any], str | None]:
    """The table's schema (refused unless it is a billing export) and its location."""
    with google_errors(f"BigQuery table {table}"):
        found = client.get_table(table)
    present = set()

    def walk(fields: Sequence[Any], prefix: str) -> None:
        for field in fields:
            present.add(prefix + field.name)
            walk(field.fields or (), prefix + field.name + ".")

    walk(found.schema, "")
    missing = [f for f in REQUIRED_FIELDS if f not in present]
    if missing:
        raise SourceError(
            f"BigQuery table {table} is not a Cloud Billing export: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            hint="name the standard or detailed usage cost export table (gcp_billing_export_v1_… or gcp_billing_export_resource_v1_…)",
        )
    return [f for f in found.schema if f.name in EXPORT_FIELDS], found.location


def _download_month(
    client: Any, table: str, schema: Sequence[Any], location: str | None, month: str, local: Path, report: ProgressCallback
) -> int:
    """Run the month's query and write its rows to ``local`` (Parquet), page by page; return rows."""
    import pyarrow.parquet as pq
    from google.cloud import bigquery

    columns = ", ".join(f"`{field.name}`" for field in schema)
    sql = f"SELECT {columns} FROM `{table}` WHERE invoice.month = @invoice_month"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("invoice_month", "STRING", month)])
    written = 0
    with google_errors(f"BigQuery query of {table} for invoice month {month}"):
        job = client.query(sql, job_config=config, location=location)
        rows = job.result()
        total = rows.total_rows or 0
        writer = None
        try:
            for batch in rows.to_arrow_iterable(bqstorage_client=None):
                if writer is None:
                    writer = pq.ParquetWriter(local, batch.schema)
                writer.write_batch(batch)
                written += batch.num_rows
                report(f"downloading {month[:4]}-{month[4:]}", written, max(total, written))
        finally:
            if writer is not None:
                writer.close()
    return written


# -- Google credentials and errors (shared with connectors.gcp_catalog) ----------------------


def is_loopback_http(endpoint: str | None) -> bool:
    """True for ``http://127.0.0.1:PORT``-style endpoints: a server on this machine."""
    if not endpoint:
        return False
    parts = urlsplit(endpoint)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def google_credentials(api_endpoint: str | None, *, credentials: Any = None, anonymous: bool = False) -> Any:
    """Which credentials a Google client gets.

    Given ``credentials`` win. Anonymous credentials for ``anonymous`` or a loopback
    ``http://`` endpoint (a local test server never needs a token, and none is sent to it).
    Otherwise None: the client library finds Application Default Credentials. A plain-http
    endpoint that is not on this machine is refused: it would receive a bearer token in the clear.
    """
    if credentials is not None:
        return credentials
    if anonymous or is_loopback_http(api_endpoint):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    if api_endpoint and urlsplit(api_endpoint).scheme == "http":
        raise SourceError(
            f"refusing to send Google credentials over plain http to {urlsplit(api_endpoint).hostname}",
            hint="use an https:// endpoint, or pass --anonymous for a server that needs no credentials",
        )
    return None


@contextlib.contextmanager
def google_errors(what: str) -> Iterator[None]:
    """Turn google-api-core / google-auth errors into SourceError with a hint (no secrets)."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    try:
        yield
    except auth.DefaultCredentialsError as exc:
        raise SourceError(
            f"{what}: no Google Cloud credentials found",
            hint="run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file",
        ) from exc
    except auth.GoogleAuthError as exc:
        raise SourceError(f"{what}: authentication failed: {type(exc).__name__}", hint="refresh your credentials") from exc
    except (api.Unauthorized, api.Forbidden, api.PermissionDenied, api.Unauthenticated) as exc:
        raise SourceError(
            f"{what}: permission denied ({exc.code}): {_api_message(exc)}",
            hint="the account needs roles/bigquery.dataViewer and roles/bigquery.jobUser (BigQuery),"
            " or roles/billing.viewer (Cloud Billing)",
        ) from exc
    except api.NotFound as exc:
        raise SourceError(f"{what}: not found: {_api_message(exc)}", hint="check the project, dataset, table or id") from exc
    except api.GoogleAPICallError as exc:
        raise SourceError(f"{what}: the API answered {exc.code}: {_api_message(exc)}") from exc
    except api.RetryError as exc:
        raise SourceError(f"{what}: gave up after retries: {_api_message(exc.cause) if exc.cause else exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise SourceError(
            f"{what}: cannot reach the API: {type(exc).__name__}", hint="check the network or --api-endpoint"
        ) from exc


def _api_message(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return _first_line(message) if isinstance(message, str) else str(message)


_first_line = first_line
