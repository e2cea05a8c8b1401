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

import polars as pl

from finops.exceptions import AnalysisError
from finops.warehouse import Warehouse
from finops.warehouse.keys import provider_key_sql

RECONCILED_PROVIDERS = ("OpenAI", "Anthropic", "AWS Bedrock", "Azure OpenAI", "Google Vertex AI / Gemini")
"""The providers :func:`gateway_vs_bill` can match with invoice lines."""

GATEWAY_PROVIDER_SQL = f"""CASE {provider_key_sql('provider')}
    WHEN 'openai' THEN 'OpenAI'
    WHEN 'anthropic' THEN 'Anthropic'
    WHEN 'bedrock' THEN 'AWS Bedrock'
    WHEN 'azure' THEN 'Azure OpenAI'
    WHEN 'vertex_ai' THEN 'Google Vertex AI / Gemini'
    WHEN 'gemini' THEN 'Google Vertex AI / Gemini'
    ELSE coalesce(provider, 'unknown') END"""

_text = "coalesce({}, '')"
BILLED_PROVIDER_SQL = f"""CASE
    WHEN {_text.format('ServiceName')} ILIKE '%bedrock%' THEN 'AWS Bedrock'
    WHEN {_text.format('ProviderName')} ILIKE 'microsoft%' AND (x_Model IS NOT NULL
         OR {_text.format('ServiceName')} ILIKE '%openai%' OR {_text.format('ServiceName')} ILIKE '%foundry%')
         THEN 'Azure OpenAI'
    WHEN {_text.format('ProviderName')} ILIKE 'google%' AND (x_Model IS NOT NULL
         OR {_text.format('ServiceName')} ILIKE '%gemini%' OR {_text.format('ServiceName')} ILIKE '%generative language%'
         OR ({_text.format('ServiceName')} ILIKE '%vertex ai%'
             AND regexp_matches(lower({_text.format('x_UsageType')} || ' ' || {_text.format('ChargeDescription')}),
                                'token|character|gemini|claude')))
         THEN 'Google Vertex AI / Gemini'
    WHEN {_text.format('ProviderName')} ILIKE 'openai%' THEN 'OpenAI'
    WHEN {_text.format('ProviderName')} ILIKE 'anthropic%' THEN 'Anthropic'
    END"""


def _bounds(start: date, end: date) -> list[datetime]:
    if end <= start:
        raise AnalysisError(f"empty date range {start} … {end}", hint="end is exclusive: pass an end after start")
    as_datetime = [d if isinstance(d, datetime) else datetime.combine(d, time()) for d in (start, end)]
    return as_datetime


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
    low, high = _bounds(start, end)
    return wh.query(
        f"""
        WITH gateway AS (
            SELECT {GATEWAY_PROVIDER_SQL} AS provider, CAST(date_trunc('month', period_start) AS DATE) AS month,
                x_Source AS source, sum(cost) AS gateway_cost,
                count(*) FILTER (WHERE cost IS NULL) AS unpriced_requests
            FROM llm_requests
            WHERE period_start >= ? AND period_start < ? AND (CAST(? AS VARCHAR) IS NULL OR x_Source = ?)
            GROUP BY ALL
        ),
        billed AS (
            SELECT provider, month, sum(BilledCost) AS billed_cost,
                string_agg(DISTINCT BillingCurrency, ', ' ORDER BY BillingCurrency) AS billed_currency
            FROM (
                SELECT {BILLED_PROVIDER_SQL} AS provider, CAST(date_trunc('month', ChargePeriodStart) AS DATE) AS month,
                    BilledCost, BillingCurrency
                FROM charges
                WHERE ChargePeriodStart >= ? AND ChargePeriodStart < ?
            )
            WHERE provider IS NOT NULL
            GROUP BY ALL
        )
        SELECT coalesce(g.provider, b.provider) AS provider, coalesce(g.month, b.month) AS month, g.source,
            coalesce(g.gateway_cost, CAST(0 AS DECIMAL(38, 10))) AS gateway_cost,
            coalesce(g.unpriced_requests, 0) AS unpriced_requests,
            b.billed_cost, b.billed_currency,
            b.billed_cost - coalesce(g.gateway_cost, 0) AS difference,
            CASE WHEN b.billed_cost <> 0
                 THEN round(CAST(b.billed_cost - coalesce(g.gateway_cost, 0) AS DOUBLE) * 100 / CAST(b.billed_cost AS DOUBLE), 2)
            END AS difference_pct
        FROM gateway AS g FULL OUTER JOIN billed AS b ON g.provider = b.provider AND g.month = b.month
        ORDER BY provider, month, source NULLS FIRST
        """,
        [low, high, source, source, low, high],
    )


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
    low, high = _bounds(start, end)
    return wh.query(
        """
        SELECT x_Source AS source, provider, model, count(*) AS rows, sum(requests) AS requests,
            sum(coalesce(input_tokens, 0)) AS input_tokens,
            sum(coalesce(cached_input_tokens, 0)) AS cached_input_tokens,
            sum(coalesce(cache_write_tokens, 0)) AS cache_write_tokens,
            sum(coalesce(output_tokens, 0)) AS output_tokens,
            sum(coalesce(input_tokens, 0) + coalesce(cached_input_tokens, 0) + coalesce(cache_write_tokens, 0)
                + coalesce(output_tokens, 0)) AS total_tokens,
            min(period_start) AS first_seen, max(period_start) AS last_seen
        FROM llm_requests
        WHERE period_start >= ? AND period_start < ? AND (cost_source = 'unpriced' OR cost IS NULL)
        GROUP BY ALL
        ORDER BY total_tokens DESC, source, provider, model
        """,
        [low, high],
    )
