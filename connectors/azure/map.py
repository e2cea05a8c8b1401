"""Mapping Azure cost lines to rows of `charges`, in SQL.

:func:`_typed_select` turns one staged export file into typed lines with the FOCUS columns,
their line key and their errors; :func:`_rebuild_sql` matches the actual and amortized lines of
a month into one row per charge (see :mod:`connectors.azure.load`). Both only build SQL.

Columns
-------
Dates are read as ``MM/DD/YYYY`` (EA and MCA CSV), ISO ``YYYY-MM-DD``, ISO date-times, or typed
Parquet dates.
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
"""

from __future__ import annotations

from connectors.azure.discover import SOURCE_KIND
from connectors.azure.inspect import COLUMN_ALIASES, AzureFile, _Plan
from connectors.files import money_from_text, sql_literal
from connectors.focus import _is_numeric, _json_object_map, _text
from finops.warehouse import CHARGES_COLUMNS, MONEY

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
            text = f'r."_az_{field}"'
            typed_columns.append(f'{money_from_text(text)} AS "_az_{field}_n"')
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
        f"WHEN regexp_matches(lower(r.ServiceName), '{pattern}') THEN '{category}'"
        for pattern, category in _SERVICE_CATEGORIES
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


# -- SQL: actual and amortized lines of a month as one row per charge ----------------------


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
