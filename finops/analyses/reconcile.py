"""Does what the gateways and model APIs say we spent match what the providers billed?

`llm_requests` holds model calls as a gateway (LiteLLM), an API usage report (OpenAI,
Anthropic) or traces (OTel, Langfuse) saw them, each with a ``cost`` (the source's reported USD
cost, else our price; see connectors/pricing.py). `charges` holds the invoices. This module
lines the two up per provider and month:

==========================  =============================================  =========================================
provider                    `llm_requests`.provider                        `charges` lines
==========================  =============================================  =========================================
OpenAI                      openai                                         ProviderName OpenAI (invoice as FOCUS)
Anthropic                   anthropic                                      ProviderName Anthropic (invoice as FOCUS)
AWS Bedrock                 bedrock, aws.bedrock                           ServiceName contains "Bedrock"
Azure OpenAI                azure, azure_openai, azure.ai.openai, …        Microsoft lines with a model (x_Model) or
                                                                           ServiceName Azure OpenAI / AI Foundry
Google Vertex AI / Gemini   vertex_ai, gemini, gcp.vertex_ai, gcp.gemini   Google lines with a model (x_Model), the
                                                                           Gemini / Generative Language API, or
                                                                           Vertex AI token and character SKUs
==========================  =============================================  =========================================

Months are usage months: a call's ``period_start`` and a charge's ``ChargePeriodStart``. The
billed side is ``BilledCost`` (what the invoice asks for, in ``BillingCurrency``, shown beside
it). Each source of `llm_requests` is compared on its own row, because a LiteLLM gateway and
the OpenAI usage API can describe the *same* calls: adding them would double count.

``difference`` = billed − gateway: positive when the bill is higher than what the source saw
(traffic that bypassed the gateway, unpriced models, taxes or fees), negative when the source
counts more than was billed (credits, negotiated discounts our prices do not know).
"""

from __future__ import annotations

from datetime import date, datetime, time

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import polars as pl

from finops.analyses import cache
from finops.analyses.tables import call_count, charges_table, requests_table
from finops.analyses.unit_economics import minus, provider_key
from finops.exceptions import AnalysisError
from finops.warehouse import Warehouse
from finops.warehouse.keys import provider_key_sql

RECONCILED_PROVIDERS = ("OpenAI", "Anthropic", "AWS Bedrock", "Azure OpenAI", "Google Vertex AI / Gemini")
"""The providers :func:`gateway_vs_bill` can match with invoice lines."""

GATEWAY_PROVIDER_SQL = f"""CASE {provider_key_sql("provider")}
    WHEN 'openai' THEN 'OpenAI'
    WHEN 'anthropic' THEN 'Anthropic'
    WHEN 'bedrock' THEN 'AWS Bedrock'
    WHEN 'azure' THEN 'Azure OpenAI'
    WHEN 'vertex_ai' THEN 'Google Vertex AI / Gemini'
    WHEN 'gemini' THEN 'Google Vertex AI / Gemini'
    ELSE coalesce(provider, 'unknown') END"""

_text = "coalesce({}, '')"
BILLED_PROVIDER_SQL = f"""CASE
    WHEN {_text.format("ServiceName")} ILIKE '%bedrock%' THEN 'AWS Bedrock'
    WHEN {_text.format("ProviderName")} ILIKE 'microsoft%' AND (x_Model IS NOT NULL
         OR {_text.format("ServiceName")} ILIKE '%openai%' OR {_text.format("ServiceName")} ILIKE '%foundry%')
         THEN 'Azure OpenAI'
    WHEN {_text.format("ProviderName")} ILIKE 'google%' AND (x_Model IS NOT NULL
         OR {_text.format("ServiceName")} ILIKE '%gemini%' OR {_text.format("ServiceName")} ILIKE '%generative language%'
         OR ({_text.format("ServiceName")} ILIKE '%vertex ai%'
             AND regexp_matches(lower({_text.format("x_UsageType")} || ' ' || {_text.format("ChargeDescription")}),
                                'token|character|gemini|claude')))
         THEN 'Google Vertex AI / Gemini'
    WHEN {_text.format("ProviderName")} ILIKE 'openai%' THEN 'OpenAI'
    WHEN {_text.format("ProviderName")} ILIKE 'anthropic%' THEN 'Anthropic'
    END"""


MONEY = dt.Decimal(38, 10)
_COUNT = dt.Decimal(38, 0)
"""Token sums: DECIMAL(38, 0), as DuckDB sums BIGINT (HUGEINT)."""

_GATEWAY_FAMILIES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "bedrock": "AWS Bedrock",
    "azure": "Azure OpenAI",
    "vertex_ai": "Google Vertex AI / Gemini",
    "gemini": "Google Vertex AI / Gemini",
}


def gateway_provider(provider: ir.StringValue) -> ir.StringValue:
    """The ibis twin of :data:`GATEWAY_PROVIDER_SQL`: a gateway provider's family as billed."""
    return provider_key(provider).substitute(_GATEWAY_FAMILIES, else_=provider.fill_null("unknown"))


def billed_provider(charges: ibis.Table) -> ir.StringValue:
    """The ibis twin of :data:`BILLED_PROVIDER_SQL`: which reconciled provider a charge bills, or NULL."""
    service = charges.ServiceName.fill_null("")
    provider = charges.ProviderName.fill_null("")
    usage_text = (charges.x_UsageType.fill_null("") + " " + charges.ChargeDescription.fill_null("")).lower()
    has_model = charges.x_Model.notnull()
    return ibis.cases(
        (service.ilike("%bedrock%"), "AWS Bedrock"),
        (
            provider.ilike("microsoft%") & (has_model | service.ilike("%openai%") | service.ilike("%foundry%")),
            "Azure OpenAI",
        ),
        (
            provider.ilike("google%")
            & (
                has_model
                | service.ilike("%gemini%")
                | service.ilike("%generative language%")
                | (service.ilike("%vertex ai%") & usage_text.re_search("token|character|gemini|claude"))
            ),
            "Google Vertex AI / Gemini",
        ),
        (provider.ilike("openai%"), "OpenAI"),
        (provider.ilike("anthropic%"), "Anthropic"),
        else_=ibis.null(dt.string),
    )


def _joined_sorted(values: ir.StringValue) -> ir.StringValue:
    """string_agg(DISTINCT values, ', ' ORDER BY values): NULL when there is none."""
    names = values.collect(distinct=True).sort()
    return ibis.ifelse(names.length() > 0, names.join(", "), ibis.null(dt.string))


def _between(t: ibis.Table, column: str, start: date, end: date) -> ibis.Table:
    low, high = _bounds(start, end)
    return t.filter(
        t[column] >= ibis.literal(low, type=dt.timestamp), t[column] < ibis.literal(high, type=dt.timestamp)
    )


def gateway_vs_bill_expr(
    requests: ibis.Table, charges: ibis.Table, start: date, end: date, *, source: str | None = None
) -> ibis.Table:
    """The expression behind :func:`gateway_vs_bill`, over `llm_requests` and `charges` tables."""
    r = _between(requests, "period_start", start, end)
    if source is not None:
        r = r.filter(r.x_Source == source)
    gateway = r.group_by(
        provider=gateway_provider(r.provider), month=r.period_start.truncate("M").date(), source=r.x_Source
    ).aggregate(gateway_cost=r.cost.sum().cast(MONEY), unpriced_requests=call_count(r, where=r.cost.isnull()))
    c = _between(charges, "ChargePeriodStart", start, end)
    c = c.mutate(_provider=billed_provider(c), _month=c.ChargePeriodStart.truncate("M").date())
    c = c.filter(c._provider.notnull())
    billed = c.group_by(_provider=c._provider, _month=c._month).aggregate(
        billed_cost=c.BilledCost.sum().cast(MONEY), billed_currency=_joined_sorted(c.BillingCurrency)
    )
    j = gateway.outer_join(billed, [gateway.provider == billed._provider, gateway.month == billed._month])
    gateway_cost = j.gateway_cost.fill_null(ibis.literal(0, type=MONEY))
    difference = minus(j.billed_cost, gateway_cost)
    out = j.select(
        provider=j.provider.fill_null(j._provider),
        month=j.month.fill_null(j._month),
        source=j.source,
        gateway_cost=gateway_cost,
        unpriced_requests=j.unpriced_requests.fill_null(0),
        billed_cost=j.billed_cost,
        billed_currency=j.billed_currency,
        difference=difference,
        difference_pct=ibis.ifelse(
            j.billed_cost != 0, (difference.cast(dt.float64) * 100 / j.billed_cost.cast(dt.float64)).round(2), None
        ),
    )
    return out.order_by(
        ibis.asc(out.provider, nulls_first=False), ibis.asc(out.month, nulls_first=False),
        ibis.asc(out.source, nulls_first=True),
    )  # fmt: skip


def unpriced_usage_expr(requests: ibis.Table, start: date, end: date) -> ibis.Table:
    """The expression behind :func:`unpriced_usage`, over an `llm_requests` table."""
    r = _between(requests, "period_start", start, end)
    r = r.filter((r.cost_source == "unpriced") | r.cost.isnull())
    tokens = {c: r[c].fill_null(0).cast(_COUNT) for c in ("input_tokens", "cached_input_tokens", "cache_write_tokens",
                                                          "output_tokens")}  # fmt: skip
    total = (
        tokens["input_tokens"] + tokens["cached_input_tokens"] + tokens["cache_write_tokens"] + tokens["output_tokens"]
    )
    out = r.group_by(source=r.x_Source, provider=r.provider, model=r.model).aggregate(
        rows=r.count(),
        requests=r.requests.cast(_COUNT).sum().cast(_COUNT),
        **{c: v.sum().cast(_COUNT) for c, v in tokens.items()},
        total_tokens=total.cast(_COUNT).sum().cast(_COUNT),
        first_seen=r.period_start.min(),
        last_seen=r.period_start.max(),
    )
    return out.order_by(
        ibis.desc(out.total_tokens, nulls_first=False), *(ibis.asc(out[c], nulls_first=False) for c in
                                                          ("source", "provider", "model")),
    )  # fmt: skip


def _bounds(start: date, end: date) -> list[datetime]:
    if end <= start:
        raise AnalysisError(f"empty date range {start} … {end}", hint="end is exclusive: pass an end after start")
    as_datetime = [d if isinstance(d, datetime) else datetime.combine(d, time()) for d in (start, end)]
    return as_datetime


@cache.per_warehouse_state
def gateway_vs_bill(wh: Warehouse, start: date, end: date, *, source: str | None = None) -> pl.DataFrame:
    """Gateway/API cost next to the provider's bill, per provider, month and source, in [start, end).

    Columns: provider, month (first day), source (the `llm_requests` source; NULL when only the
    bill has the month), gateway_cost (sum of ``cost``, DECIMAL), unpriced_requests (rows with
    no cost: the gateway side is a lower bound when > 0), billed_cost (sum of BilledCost, NULL
    when no invoice line matched), billed_currency, difference (billed − gateway, DECIMAL) and
    difference_pct (difference / billed × 100, rounded to 0.01). ``source`` keeps one source.

    >>> gateway_vs_bill(wh, date(2026, 7, 1), date(2026, 8, 1))  # doctest: +SKIP
    ┌───────────────┬────────────┬─────────┬──────────────┬───┬─────────────┬────────────┬────────────────┐
    │ provider      ┆ month      ┆ source  ┆ gateway_cost ┆ … ┆ billed_cost ┆ difference ┆ difference_pct │
    ╞═══════════════╪════════════╪═════════╪══════════════╪═══╪═════════════╪════════════╪════════════════╡
    │ AWS Bedrock   ┆ 2026-07-01 ┆ litellm ┆ 950.00       ┆ … ┆ 1000.00     ┆ 50.00      ┆ 5.0            │
    │ OpenAI        ┆ 2026-07-01 ┆ litellm ┆ 480.00       ┆ … ┆ null        ┆ null       ┆ null           │
    └───────────────┴────────────┴─────────┴──────────────┴───┴─────────────┴────────────┴────────────────┘
    """
    with wh.ibis() as con:
        expr = gateway_vs_bill_expr(requests_table(con), charges_table(con), start, end, source=source)
        return expr.to_polars()


@cache.per_warehouse_state
def unpriced_usage(wh: Warehouse, start: date, end: date) -> pl.DataFrame:
    """Model calls in [start, end) that have no cost (``cost_source`` 'unpriced'), with their volume.

    A model missing from the price table must be visible, never a silent $0: this is the list
    to add to the overrides CSV (``finops ingest prices overrides.csv``). One row per source,
    provider and model: rows, requests (NULL when the source does not count them), input,
    cached input, cache write, output and total tokens, first_seen and last_seen; most tokens
    first.

    >>> unpriced_usage(wh, date(2026, 7, 1), date(2026, 8, 1))  # doctest: +SKIP
    ┌─────────┬──────────┬─────────────┬──────┬──────────┬───┬──────────────┐
    │ source  ┆ provider ┆ model       ┆ rows ┆ requests ┆ … ┆ total_tokens │
    ╞═════════╪══════════╪═════════════╪══════╪══════════╪═══╪══════════════╡
    │ litellm ┆ openai   ┆ my-finetune ┆ 2    ┆ 2        ┆ … ┆ 2020         │
    └─────────┴──────────┴─────────────┴──────┴──────────┴───┴──────────────┘
    """
    with wh.ibis() as con:
        return unpriced_usage_expr(con.table("llm_requests"), start, end).to_polars()
