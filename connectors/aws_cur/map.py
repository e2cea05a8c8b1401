"""Mapping CUR line items to the FOCUS columns of `charges`, in SQL.

:func:`_typed_sql` types the canonical columns of the rows as read and gives each row its
errors (the quarantine's column and reason); :func:`_focus_sql` maps the rows that passed every
check to FOCUS columns. Both only build SQL; the load runs it.

Money is exact. CSV amounts are read as text and cast to DECIMAL. CUR Parquet stores amounts as
DOUBLE; DuckDB's direct DOUBLE → DECIMAL(38, 10) cast scales in binary floating point and turns
780857.137942 into 780857.1379419999, so doubles are cast where that is provably exact (below
100,000) and otherwise through their shortest text form, the digits AWS wrote (see
:func:`_money_from_double`): sums reconcile to the cent and to the last digit.

Amortization (EffectiveCost) follows the line item type, as AWS's own dashboards do:
SavingsPlanCoveredUsage → savings_plan_savings_plan_effective_cost; SavingsPlanRecurringFee →
total commitment to date − used commitment (the unused part); SavingsPlanNegation and
SavingsPlanUpfrontFee → 0; DiscountedUsage → reservation_effective_cost; RIFee → unused
amortized upfront fee + unused recurring fee; every other type → line_item_unblended_cost.
"""

from __future__ import annotations

import dataclasses

from connectors.aws_cur.discover import SOURCE_KIND
from connectors.files import money_from_text, sql_literal
from finops.warehouse import MONEY

# -- columns --------------------------------------------------------------------------------
# Canonical names are CUR 2.0's snake_case. Legacy CUR headers (`lineItem/UnblendedCost`) are
# translated to them by `_canonical_name`; legacy Parquet (Athena style) already uses them.


MONEY_FIELDS = (
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "line_item_usage_amount",
    "line_item_unblended_rate",
    "pricing_public_on_demand_cost",
    "pricing_public_on_demand_rate",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
)


TIME_FIELDS = (
    "bill_billing_period_start_date",
    "bill_billing_period_end_date",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
)


TEXT_FIELDS = (
    "bill_payer_account_id",
    "bill_payer_account_name",
    "bill_invoice_id",
    "bill_invoicing_entity",
    "bill_billing_entity",
    "line_item_usage_account_id",
    "line_item_usage_account_name",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_operation",
    "line_item_resource_id",
    "line_item_currency_code",
    "line_item_line_item_description",
    "line_item_availability_zone",
    "line_item_legal_entity",
    "pricing_term",
    "pricing_purchase_option",
    "pricing_unit",
    "product_servicename",
    "product_product_name",
    "product_region_code",
    "product_region",
    "product_location",
    "product_instance_type",
    "product_sku",
    "savings_plan_savings_plan_a_r_n",
    "reservation_reservation_a_r_n",
)


MAP_FIELDS = ("resource_tags", "product")


# CUR 2.0 folds many product columns into the `product` map; a top-level column wins.
PRODUCT_MAP_KEYS = {
    "product_servicename": "servicename",
    "product_product_name": "product_name",
    "product_region_code": "region_code",
    "product_region": "region",
    "product_location": "location",
    "product_instance_type": "instance_type",
    "product_sku": "sku",
}


NOT_NULL_FIELDS = {
    "bill_payer_account_id": "every line item needs the payer account",
    "bill_billing_period_start_date": "every line item needs its billing period",
    "bill_billing_period_end_date": "every line item needs its billing period",
    "line_item_usage_start_date": "every line item needs its charge period",
    "line_item_usage_end_date": "every line item needs its charge period",
    "line_item_line_item_type": "the line item type decides the amortized cost",
    "line_item_unblended_cost": "it is the billed cost",
    "line_item_currency_code": "every amount needs its currency",
}


LINE_ITEM_TYPES: dict[str, tuple[str, str]] = {
    # type: (FOCUS ChargeCategory, ChargeFrequency)
    "Usage": ("Usage", "Usage-Based"),
    "DiscountedUsage": ("Usage", "Usage-Based"),
    "SavingsPlanCoveredUsage": ("Usage", "Usage-Based"),
    "Fee": ("Purchase", "One-Time"),
    "RIFee": ("Purchase", "Recurring"),
    "SavingsPlanRecurringFee": ("Purchase", "Recurring"),
    "SavingsPlanUpfrontFee": ("Purchase", "One-Time"),
    "Tax": ("Tax", "One-Time"),
    "Credit": ("Credit", "One-Time"),
    "Refund": ("Credit", "One-Time"),
    "SavingsPlanNegation": ("Adjustment", "Usage-Based"),
    "BundledDiscount": ("Adjustment", "Usage-Based"),
    "Discount": ("Adjustment", "Usage-Based"),
    "EdpDiscount": ("Adjustment", "Usage-Based"),
    "PrivateRateDiscount": ("Adjustment", "Usage-Based"),
    "DistributorDiscount": ("Adjustment", "Usage-Based"),
}
"""The line item types whose amortization is known. Any other type is quarantined with its
name: guessing its EffectiveCost would put a wrong number in every chargeback."""


AI_CATEGORY = "AI and Machine Learning"


SERVICES: dict[str, tuple[str, str, str | None]] = {
    # product code: (readable name, FOCUS ServiceCategory, ServiceSubcategory)
    "AmazonSageMaker": ("Amazon SageMaker", AI_CATEGORY, "AI Platforms"),
    "AmazonBedrock": ("Amazon Bedrock", AI_CATEGORY, "Generative AI"),
    "AmazonBedrockService": ("Amazon Bedrock", AI_CATEGORY, "Generative AI"),
    "AmazonQ": ("Amazon Q", AI_CATEGORY, "Generative AI"),
    "comprehend": ("Amazon Comprehend", AI_CATEGORY, "Natural Language Processing"),
    "AmazonComprehend": ("Amazon Comprehend", AI_CATEGORY, "Natural Language Processing"),
    "AmazonComprehendMedical": ("Amazon Comprehend Medical", AI_CATEGORY, "Natural Language Processing"),
    "AmazonRekognition": ("Amazon Rekognition", AI_CATEGORY, "Machine Learning"),
    "AmazonTextract": ("Amazon Textract", AI_CATEGORY, "Machine Learning"),
    "transcribe": ("Amazon Transcribe", AI_CATEGORY, "Natural Language Processing"),
    "translate": ("Amazon Translate", AI_CATEGORY, "Natural Language Processing"),
    "AmazonPolly": ("Amazon Polly", AI_CATEGORY, "Natural Language Processing"),
    "AmazonLex": ("Amazon Lex", AI_CATEGORY, "Natural Language Processing"),
    "AmazonKendra": ("Amazon Kendra", AI_CATEGORY, "Machine Learning"),
    "AmazonPersonalize": ("Amazon Personalize", AI_CATEGORY, "Machine Learning"),
    "AmazonForecast": ("Amazon Forecast", AI_CATEGORY, "Machine Learning"),
    "AmazonFraudDetector": ("Amazon Fraud Detector", AI_CATEGORY, "Machine Learning"),
    "AmazonEC2": ("Amazon Elastic Compute Cloud", "Compute", None),
    "AWSLambda": ("AWS Lambda", "Compute", None),
    "AmazonECS": ("Amazon Elastic Container Service", "Compute", None),
    "AmazonEKS": ("Amazon Elastic Kubernetes Service", "Compute", None),
    "AmazonLightsail": ("Amazon Lightsail", "Compute", None),
    "AmazonS3": ("Amazon Simple Storage Service", "Storage", None),
    "AmazonEFS": ("Amazon Elastic File System", "Storage", None),
    "AmazonFSx": ("Amazon FSx", "Storage", None),
    "AmazonGlacier": ("Amazon Glacier", "Storage", None),
    "AWSBackup": ("AWS Backup", "Storage", None),
    "AmazonRDS": ("Amazon Relational Database Service", "Databases", None),
    "AmazonDynamoDB": ("Amazon DynamoDB", "Databases", None),
    "AmazonElastiCache": ("Amazon ElastiCache", "Databases", None),
    "AmazonDocDB": ("Amazon DocumentDB", "Databases", None),
    "AmazonNeptune": ("Amazon Neptune", "Databases", None),
    "AmazonRedshift": ("Amazon Redshift", "Analytics", None),
    "AmazonAthena": ("Amazon Athena", "Analytics", None),
    "AWSGlue": ("AWS Glue", "Analytics", None),
    "AmazonKinesis": ("Amazon Kinesis", "Analytics", None),
    "ElasticMapReduce": ("Amazon EMR", "Analytics", None),
    "AmazonES": ("Amazon OpenSearch Service", "Analytics", None),
    "AmazonQuickSight": ("Amazon QuickSight", "Analytics", None),
    "AWSDataTransfer": ("AWS Data Transfer", "Networking", None),
    "AmazonCloudFront": ("Amazon CloudFront", "Networking", None),
    "AmazonVPC": ("Amazon Virtual Private Cloud", "Networking", None),
    "AmazonRoute53": ("Amazon Route 53", "Networking", None),
    "AWSELB": ("Elastic Load Balancing", "Networking", None),
    "AWSDirectConnect": ("AWS Direct Connect", "Networking", None),
    "AmazonCloudWatch": ("Amazon CloudWatch", "Management and Governance", None),
    "AWSCloudTrail": ("AWS CloudTrail", "Management and Governance", None),
    "AWSConfig": ("AWS Config", "Management and Governance", None),
    "awskms": ("AWS Key Management Service", "Security", None),
    "AWSSecretsManager": ("AWS Secrets Manager", "Security", None),
    "AmazonGuardDuty": ("Amazon GuardDuty", "Security", None),
    "awswaf": ("AWS WAF", "Security", None),
    "AmazonSNS": ("Amazon Simple Notification Service", "Integration", None),
    "AWSQueueService": ("Amazon Simple Queue Service", "Integration", None),
    "AmazonMQ": ("Amazon MQ", "Integration", None),
    "AWSEvents": ("Amazon EventBridge", "Integration", None),
    "AmazonStates": ("AWS Step Functions", "Integration", None),
}
"""Product codes → readable ServiceName, FOCUS ServiceCategory and ServiceSubcategory.
Unknown codes keep product_servicename (or the code) and the category "Other"; any service
whose name says Bedrock or SageMaker (e.g. a Bedrock marketplace model) is AI."""


# -- SQL: typed line items, their errors, FOCUS columns -----------------------------------


@dataclasses.dataclass(frozen=True)
class _Relation:
    """Rows of one or more files with the same columns, as DuckDB reads them."""

    sql: str  # FROM-able SQL
    file_sql: str  # the row's file URI
    row_sql: str  # the row's 1-based data row in its file
    columns: dict[str, str]  # canonical → column name
    types: dict[str, str]
    tag_columns: dict[str, str]
    text_input: bool  # CSV: every column is text


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed_sql(rel: _Relation, period: str | None) -> str:
    """One row per line item: canonical columns typed, ``_ok``, ``_errors`` (reasons),
    ``_error_column``, ``_file``, ``_row`` and ``_raw`` (the values read, for the quarantine;
    NULL on a row that passes).

    Checks test whether a value is *there* on the column as read (cheap) and whether text
    parses separately, so the load does not convert a column twice.
    """
    exprs: dict[str, str] = {}
    present: dict[str, str] = {}  # field → an expression that is NULL when the value is missing
    checks: list[tuple[str, str, str]] = []  # (condition, column name, reason SQL)

    def source(field: str) -> tuple[str | None, str, str]:
        name = rel.columns.get(field)
        typ = rel.types[name].upper() if name else "VARCHAR"
        return (f"r.{_q(name)}" if name else None), (name or field), typ

    def text_of(col: str, typ: str) -> str:
        if rel.text_input:
            return f"nullif(nullif(trim({col}), ''), 'NULL')"
        return f"nullif({col}, '')" if typ == "VARCHAR" else f"CAST({col} AS VARCHAR)"

    def product_key(field: str) -> str | None:
        key = PRODUCT_MAP_KEYS.get(field)
        name = rel.columns.get("product")
        if not key or not name:
            return None
        if rel.types[name].upper().startswith("MAP"):
            return f"nullif(r.{_q(name)}[{sql_literal(key)}], '')"
        text = text_of(f"r.{_q(name)}", rel.types[name].upper())
        return (
            f"nullif(json_extract_string(CASE WHEN json_valid({text}) THEN {text} END, {sql_literal('$.' + key)}), '')"
        )

    def unreadable(text: str, shown: str, what: str) -> str:
        return f"'{_esc(shown)}: cannot read ''' || left({text}, 60) || ''' as {what}'"

    for field in MONEY_FIELDS:
        col, shown, typ = source(field)
        if col is None:
            exprs[field] = present[field] = f"CAST(NULL AS {MONEY})"
        elif typ.startswith("DECIMAL") or typ in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"):
            exprs[field], present[field] = f"CAST({col} AS {MONEY})", col
        elif typ in ("DOUBLE", "FLOAT", "REAL"):
            exprs[field], present[field] = _money_from_double(col), col
            checks.append((f"NOT isfinite({col})", shown, f"'{_esc(shown)}: ' || {col} || ' is not an amount'"))
        else:
            text = text_of(col, typ)
            exprs[field], present[field] = money_from_text(text), text
            checks.append(
                (f"{text} IS NOT NULL AND {exprs[field]} IS NULL", shown, unreadable(text, shown, "a number"))
            )
    for field in TIME_FIELDS:
        col, shown, typ = source(field)
        if col is None:
            exprs[field] = present[field] = "CAST(NULL AS TIMESTAMP)"
        elif typ.startswith(("TIMESTAMP", "DATE")):
            exprs[field] = present[field] = f"CAST({col} AS TIMESTAMP)"
        else:
            text = text_of(col, typ)
            exprs[field], present[field] = f"CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP)", text
            checks.append(
                (f"{text} IS NOT NULL AND {exprs[field]} IS NULL", shown, unreadable(text, shown, "a date-time"))
            )
    for field in TEXT_FIELDS:
        col, _, typ = source(field)
        candidates = [text_of(col, typ)] if col is not None else []
        if (from_map := product_key(field)) is not None:
            candidates.append(from_map)
        if not candidates:
            exprs[field] = "CAST(NULL AS VARCHAR)"
        else:
            exprs[field] = candidates[0] if len(candidates) == 1 else f"coalesce({', '.join(candidates)})"
        present[field] = exprs[field]
    exprs["tags"] = _tags_sql(rel, checks)

    for field, why in NOT_NULL_FIELDS.items():
        shown = source(field)[1]
        checks.append((f"{present[field]} IS NULL", shown, f"'{_esc(shown)}: empty, but {why}'"))
    line_type = exprs["line_item_line_item_type"]
    type_name = source("line_item_line_item_type")[1]
    known = ", ".join(sql_literal(t) for t in LINE_ITEM_TYPES)
    unknown = f"'{_esc(type_name)}: unknown line item type ''' || {line_type} || ''': its amortized cost is not known'"
    checks.append((f"{line_type} NOT IN ({known})", type_name, unknown))
    for needing, needed in (
        ("SavingsPlanCoveredUsage", "savings_plan_savings_plan_effective_cost"),
        ("SavingsPlanRecurringFee", "savings_plan_total_commitment_to_date"),
        ("SavingsPlanRecurringFee", "savings_plan_used_commitment"),
        ("DiscountedUsage", "reservation_effective_cost"),
    ):
        shown = source(needed)[1]
        checks.append(
            (
                f"{line_type} = '{needing}' AND {present[needed]} IS NULL",
                shown,
                f"'{_esc(shown)}: empty, but a {needing} line needs it for EffectiveCost'",
            )
        )
    if period:
        start, shown = exprs["bill_billing_period_start_date"], source("bill_billing_period_start_date")[1]
        first, after = _month_bounds(period)
        outside = f"'{_esc(shown)}: billing period ' || strftime({start}, '%Y-%m') || ' is outside this delivery''s period {period}'"
        checks.append((f"NOT ({start} >= TIMESTAMP '{first}' AND {start} < TIMESTAMP '{after}')", shown, outside))

    conditions = [f"coalesce({cond}, false)" for cond, _, _ in checks]
    ok = "NOT (" + " OR ".join(conditions) + ")"
    reasons = ", ".join(
        f"CASE WHEN {c} THEN {reason} END" for c, (_, _, reason) in zip(conditions, checks, strict=True)
    )
    errors = f"list_filter([{reasons}]::VARCHAR[], e -> e IS NOT NULL)"
    first_bad = " ".join(
        f"WHEN {c} THEN {sql_literal(name)}" for c, (_, name, _) in zip(conditions, checks, strict=True)
    )
    read_columns = [*dict.fromkeys([*rel.columns.values(), *rel.tag_columns])]
    # Only a quarantined row keeps what was read: as JSON it is the largest value of a row.
    raw = "CASE WHEN NOT " + ok + " THEN to_json({" + ", ".join(
        f"{sql_literal(name)}: r.{_q(name)}" for name in read_columns
    ) + "}) END"
    select = ", ".join(f"{expr} AS {_q(name)}" for name, expr in exprs.items())
    return (
        f"SELECT {select}, {ok} AS _ok, {errors} AS _errors, CASE {first_bad} END AS _error_column,"
        f" {rel.file_sql} AS _file, {rel.row_sql} AS _row, {raw} AS _raw FROM {rel.sql} AS r"
    )


def _money_from_double(col: str) -> str:
    """SQL for exact money from a DOUBLE amount: the decimal AWS wrote, NULL for NaN and infinity.

    DuckDB's DOUBLE → DECIMAL cast scales in binary floating point. Below 100,000 the scaled
    value stays under 2^53 and the rounding errors add up to less than 0.14 of the last digit,
    so a 64-bit DECIMAL(18, 10) cast lands exactly on the 10-decimal amount; larger amounts
    would drift (780857.137942 → 780857.1379419999) and go through their shortest text form,
    which is the digits AWS wrote.
    """
    exact_direct = f"CAST(CAST({col} AS DECIMAL(18, 10)) AS {MONEY})"
    return f"CASE WHEN abs({col}) < 100000 THEN {exact_direct} ELSE {money_from_text(f'CAST({col} AS VARCHAR)')} END"


def _month_bounds(period: str) -> tuple[str, str]:
    """('2026-07-01', '2026-08-01') for '2026-07'."""
    year, month = map(int, period.split("-"))
    return f"{period}-01", f"{year + month // 12}-{month % 12 + 1:02d}-01"


def _esc(text: str) -> str:
    """``text`` inside a single-quoted SQL literal."""
    return text.replace("'", "''")


_RENAME_KEY = (
    "CASE WHEN starts_with({k}, 'user:') OR starts_with({k}, 'user_') THEN substr({k}, 6)"
    " WHEN starts_with({k}, 'aws_') THEN 'aws:' || substr({k}, 5) ELSE {k} END"
)


def _tags_sql(rel: _Relation, checks: list[tuple[str, str, str]]) -> str:
    """Tags as a string map with the user's keys; NULL when a line has none."""
    name = rel.columns.get("resource_tags")
    if name:
        typ = rel.types[name].upper()
        col = f"r.{_q(name)}"
        if typ.startswith("MAP"):
            entries = (
                f"list_filter(map_entries(CAST({col} AS MAP(VARCHAR, VARCHAR))), e -> coalesce(e.value, '') <> '')"
            )
            renamed = f"list_transform({entries}, e -> {{'key': {_RENAME_KEY.format(k='e.key')}, 'value': e.value}})"
        else:  # CSV: a JSON object as text
            text = f"nullif(nullif(trim({col}), ''), 'NULL')" if typ == "VARCHAR" else f"CAST({col} AS VARCHAR)"
            valid = f"(CASE WHEN json_valid({text}) THEN json_type({text}::JSON) = 'OBJECT' ELSE false END)"
            checks.append(
                (
                    f"{text} IS NOT NULL AND {text} <> '{{}}' AND NOT {valid}",
                    name,
                    f"'{_esc(name)}: not a JSON object: ''' || left({text}, 60) || ''''",
                )
            )
            entries = (
                f"list_filter(list_transform(CASE WHEN {valid} THEN json_keys({text}::JSON) END,"
                f" k -> {{'key': k, 'value': {text}::JSON ->> k}}), e -> coalesce(e.value, '') <> '')"
            )
            renamed = f"list_transform({entries}, e -> {{'key': {_RENAME_KEY.format(k='e.key')}, 'value': e.value}})"
        return f"CASE WHEN len({entries}) > 0 THEN map_from_entries({renamed}) END"
    if rel.tag_columns:
        items = ", ".join(
            f"{{'key': {sql_literal(key)}, 'value': nullif(trim(CAST(r.{_q(col)} AS VARCHAR)), '')}}"
            for col, key in rel.tag_columns.items()
        )
        entries = f"list_filter([{items}], e -> e.value IS NOT NULL)"
        return f"CASE WHEN len({entries}) > 0 THEN map_from_entries({entries}) END"
    return "CAST(NULL AS MAP(VARCHAR, VARCHAR))"


def _focus_sql(typed: str, batch_id: int, export_id: str) -> str:
    """FOCUS columns of `charges` from the typed line items (rows that passed every check)."""
    t = "c.line_item_line_item_type"
    category = (
        "CASE "
        + " ".join(f"WHEN {t} = {sql_literal(k)} THEN {sql_literal(v[0])}" for k, v in LINE_ITEM_TYPES.items())
        + " END"
    )
    frequency = (
        "CASE "
        + " ".join(f"WHEN {t} = {sql_literal(k)} THEN {sql_literal(v[1])}" for k, v in LINE_ITEM_TYPES.items())
        + " END"
    )
    zero = f"CAST(0 AS {MONEY})"
    effective = (
        f"CASE WHEN {t} = 'SavingsPlanCoveredUsage' THEN c.savings_plan_savings_plan_effective_cost"
        f" WHEN {t} = 'SavingsPlanRecurringFee' THEN c.savings_plan_total_commitment_to_date - c.savings_plan_used_commitment"
        f" WHEN {t} IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN {zero}"
        f" WHEN {t} = 'DiscountedUsage' THEN c.reservation_effective_cost"
        f" WHEN {t} = 'RIFee' THEN coalesce(c.reservation_unused_amortized_upfront_fee_for_billing_period, {zero})"
        f" + coalesce(c.reservation_unused_recurring_fee, {zero})"
        " ELSE c.line_item_unblended_cost END"
    )
    named = "coalesce(c.product_servicename, c.product_product_name, '')"
    pricing_model = (
        f"CASE WHEN {t} IN ('SavingsPlanCoveredUsage', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee',"
        " 'SavingsPlanNegation') THEN 'SavingsPlan'"
        f" WHEN {t} IN ('DiscountedUsage', 'RIFee') THEN 'Reservation'"
        " WHEN c.pricing_term = 'Spot' OR contains(coalesce(c.line_item_usage_type, ''), 'SpotUsage') THEN 'Spot'"
        " WHEN c.pricing_term = 'Reserved' THEN 'Reservation'"
        f" WHEN c.pricing_term = 'OnDemand' OR (c.pricing_term IS NULL AND {t} = 'Usage') THEN 'OnDemand' END"
    )
    is_sp, is_ri = "c.savings_plan_savings_plan_a_r_n IS NOT NULL", "c.reservation_reservation_a_r_n IS NOT NULL"
    # Bedrock token meters: the usage type names the direction (and usually the model); a
    # marketplace model billed through Bedrock names itself "<model> (Amazon Bedrock Edition)".
    bedrock = f"(c.line_item_product_code IN ('AmazonBedrock', 'AmazonBedrockService') OR {named} ILIKE '%bedrock%')"
    usage = "coalesce(c.line_item_usage_type, '')"
    direction = (
        f"CASE WHEN NOT {bedrock} THEN NULL"
        f" WHEN regexp_matches({usage}, '(?i)cache[-_ ]?read') THEN 'cached input'"
        f" WHEN regexp_matches({usage}, '(?i)cache[-_ ]?write') THEN 'cache write'"
        f" WHEN regexp_matches({usage}, '(?i)input[-_ ]?token') THEN 'input'"
        f" WHEN regexp_matches({usage}, '(?i)output[-_ ]?token') THEN 'output' END"
    )
    model = (
        f"CASE WHEN ({direction}) IS NOT NULL THEN coalesce("
        f"nullif(regexp_extract({named}, '(?i)^(.+?) [(]amazon bedrock edition[)]$', 1), ''),"
        f" nullif(regexp_extract({usage}, '(?i)^(?:[A-Z0-9]+-)?(.+?)-(?:batch-)?(?:input|output|cache-?read|cache-?write)', 1), ''))"
        " END"
    )
    values = {
        "AvailabilityZone": "c.line_item_availability_zone",
        "BilledCost": "c.line_item_unblended_cost",
        "BillingAccountId": "c.bill_payer_account_id",
        "BillingAccountName": "c.bill_payer_account_name",
        "BillingCurrency": "c.line_item_currency_code",
        "BillingPeriodEnd": "c.bill_billing_period_end_date",
        "BillingPeriodStart": "c.bill_billing_period_start_date",
        "ChargeCategory": category,
        "ChargeDescription": "c.line_item_line_item_description",
        "ChargeFrequency": frequency,
        "ChargePeriodEnd": "c.line_item_usage_end_date",
        "ChargePeriodStart": "c.line_item_usage_start_date",
        "CommitmentDiscountCategory": f"CASE WHEN {is_sp} THEN 'Spend' WHEN {is_ri} THEN 'Usage' END",
        "CommitmentDiscountId": "coalesce(c.savings_plan_savings_plan_a_r_n, c.reservation_reservation_a_r_n)",
        "CommitmentDiscountStatus": (
            f"CASE WHEN {t} IN ('SavingsPlanCoveredUsage', 'DiscountedUsage') THEN 'Used'"
            f" WHEN {t} IN ('SavingsPlanRecurringFee', 'RIFee') THEN 'Unused' END"
        ),
        "CommitmentDiscountType": f"CASE WHEN {is_sp} THEN 'Savings Plan' WHEN {is_ri} THEN 'Reserved Instance' END",
        "ConsumedQuantity": "c.line_item_usage_amount",
        "ConsumedUnit": "c.pricing_unit",
        "ContractedCost": "coalesce(c.line_item_net_unblended_cost, c.line_item_unblended_cost)",
        "EffectiveCost": effective,
        "InvoiceId": "c.bill_invoice_id",
        "InvoiceIssuerName": "coalesce(c.bill_invoicing_entity, 'AWS')",
        "ListCost": "c.pricing_public_on_demand_cost",
        "ListUnitPrice": "c.pricing_public_on_demand_rate",
        "PricingCategory": (
            f"CASE ({pricing_model}) WHEN 'OnDemand' THEN 'Standard' WHEN 'Spot' THEN 'Dynamic'"
            " WHEN 'SavingsPlan' THEN 'Committed' WHEN 'Reservation' THEN 'Committed' END"
        ),
        "PricingQuantity": "c.line_item_usage_amount",
        "PricingUnit": "c.pricing_unit",
        "ProviderName": "'AWS'",
        "PublisherName": "CASE WHEN c.bill_billing_entity = 'AWS Marketplace' THEN coalesce(c.line_item_legal_entity, 'AWS Marketplace') ELSE 'AWS' END",
        "RegionId": "coalesce(c.product_region_code, c.product_region)",
        "RegionName": "c.product_location",
        "ResourceId": "c.line_item_resource_id",
        "ServiceCategory": (
            f"coalesce(s.category, CASE WHEN {named} ILIKE '%bedrock%' OR {named} ILIKE '%sagemaker%' THEN '{AI_CATEGORY}' ELSE 'Other' END)"
        ),
        "ServiceName": "coalesce(c.product_servicename, s.name, c.product_product_name, c.line_item_product_code)",
        "ServiceSubcategory": "s.subcategory",
        "SkuId": "c.product_sku",
        "SubAccountId": "c.line_item_usage_account_id",
        "SubAccountName": "c.line_item_usage_account_name",
        "Tags": "c.tags",
        "HostProviderName": "'AWS'",
        "ServiceProviderName": "'AWS'",
        "x_Source": f"'{SOURCE_KIND}'",
        "x_BatchId": str(batch_id),
        "x_SourceFile": "c._file",
        "x_SourceRow": "c._row",
        "x_UsageType": "c.line_item_usage_type",
        "x_Operation": "c.line_item_operation",
        "x_LineItemType": t,
        "x_PricingModel": pricing_model,
        "x_InstanceType": "c.product_instance_type",
        "x_Model": model,
        "x_TokenDirection": direction,
        "x_ExportId": sql_literal(export_id),
    }
    select = ", ".join(f"{expr} AS {_q(name)}" for name, expr in values.items())
    return f"SELECT {select} FROM ({typed}) AS c LEFT JOIN aws_services AS s ON s.code = c.line_item_product_code WHERE c._ok"
