"""Anthropic Admin API usage and cost reports into `llm_requests` (source kind ``anthropic-usage``).

What is read (an Admin API key ``sk-ant-admin…``, from the environment variable named by
``--api-key-env``; sent as ``x-api-key`` with ``anthropic-version: 2023-06-01``):

* ``GET /v1/organizations/usage_report/messages`` — daily buckets (``bucket_width=1d``) grouped
  by model, workspace_id, api_key_id, service_tier and context_window;
* ``GET /v1/organizations/cost_report`` — daily buckets grouped by workspace_id and description
  (which adds model, cost_type, token_type, service_tier and context_window to each line).

Both are followed page by page (``has_more`` / ``next_page`` → ``page``) and retried on
429/5xx with backoff that respects Retry-After (:mod:`connectors.http_api`). Everything is
fetched before the warehouse is opened: a failed call writes nothing.

Mapping, one `llm_requests` row per bucket × group:

* period_start / period_end = starting_at / ending_at (RFC 3339, UTC).
* provider 'anthropic', source and x_Source 'anthropic-usage', call_type 'completion',
  project_id = workspace_id (NULL: the default workspace), api_key_id, model as grouped.
* input_tokens = uncached_input_tokens (Anthropic reports uncached input apart: nothing to
  subtract); cached_input_tokens = cache_read_input_tokens; cache_write_tokens =
  cache_creation.ephemeral_5m_input_tokens + cache_creation.ephemeral_1h_input_tokens.
  `llm_requests` has no column for the 1-hour part, so it is lost once stored, but it is
  handed to pricing (``cache_write_1h_tokens``) so those tokens are priced at the 1-hour write
  price (2× input rather than 1.25×).
* output_tokens = output_tokens (thinking tokens included, as Anthropic bills them);
  reasoning_tokens NULL (not reported apart).
* requests NULL: the usage report does not count requests.
* service_tier: 'standard' → 'default'; batch, priority, flex kept.
* Long context: with context_window '200k-1M' every request of the row was above 200k input
  tokens, so the row is priced at the above-threshold prices; '0-200k' rows at the standard ones.
  (Pricing needs ``requests`` for this; the report has none, so a hint — 1 for long rows, 2 for
  the others — is staged only while pricing, and ``requests`` is stored NULL.)
* ``server_tool_use`` (web search requests) is not a token count: its cost arrives as its own
  line in the cost report and is loaded as a cost-only row.

Costs: cost report amounts are decimal strings in the lowest currency unit (cents for USD):
``"123.45"`` is $1.2345, converted exactly as DECIMAL. Lines with a model are matched to the
usage rows of the same day, workspace and model and the amount is split over them (see
:mod:`connectors.model_usage`); the rest (web search, code execution, …) become cost-only rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

import httpx

from connectors.http_api import JsonApi, Page, ProgressCallback
from connectors.model_usage import UsageLoad, count_checks, count_sql, problem_sql
from connectors.model_usage import load as load_usage
from connectors.openai_usage import window
from finops.warehouse import MONEY, Warehouse

SOURCE_KIND = "anthropic-usage"
PROVIDER = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"

USAGE_PATH = "/v1/organizations/usage_report/messages"
COST_PATH = "/v1/organizations/cost_report"

USAGE_GROUP_BY = ["model", "workspace_id", "api_key_id", "service_tier", "context_window"]
COST_GROUP_BY = ["workspace_id", "description"]
BUCKET_LIMIT = 31  # the most daily buckets per page

LONG_CONTEXT_WINDOW = "200k-1M"


def ingest(
    wh: Warehouse,
    start: date,
    end: date | None = None,
    *,
    api_key_env: str,
    base_url: str | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = 60.0,
    max_total_wait: float = 300.0,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] | None = None,
) -> UsageLoad:
    """Load Anthropic message usage and costs for the UTC days [start, end).

    The window's days are replaced in the warehouse: running it again, or for an overlapping
    window, never duplicates. ``api_key_env`` names the environment variable holding an Admin key.
    """
    start, end = window(start, end)
    api = JsonApi(
        source="Anthropic Admin API",
        base_url=base_url or DEFAULT_BASE_URL,
        key_env=api_key_env,
        auth_headers=lambda key: {"x-api-key": key, "anthropic-version": API_VERSION},
        timeout=timeout,
        max_total_wait=max_total_wait,
        transport=transport,
        **({"sleep": sleep} if sleep else {}),
    )
    times = {"starting_at": f"{start.isoformat()}T00:00:00Z", "ending_at": f"{end.isoformat()}T00:00:00Z"}
    usage_params = {**times, "bucket_width": "1d", "group_by[]": USAGE_GROUP_BY, "limit": BUCKET_LIMIT}
    usage_pages: list[Page] = list(api.pages(USAGE_PATH, usage_params, progress=progress, label="Anthropic usage"))
    cost_params = {**times, "group_by[]": COST_GROUP_BY, "limit": BUCKET_LIMIT}
    cost_pages = list(api.pages(COST_PATH, cost_params, progress=progress, label="Anthropic costs"))
    if progress:
        progress("loading into the warehouse", 1, 1)
    return load_pages(wh, start, end, usage_pages, cost_pages, uri=api.base_url, retries=api.retries)


def load_pages(
    wh: Warehouse,
    start: date,
    end: date,
    usage_pages: Sequence[Page],
    cost_pages: Sequence[Page],
    *,
    uri: str,
    retries: int = 0,
) -> UsageLoad:
    """Load pages already fetched (or written by the sample company) for the days [start, end).

    ``usage_pages`` are answers of :data:`USAGE_PATH`, ``cost_pages`` of :data:`COST_PATH`.
    """
    return load_usage(
        wh,
        source_kind=SOURCE_KIND,
        uri=uri,
        start=start,
        end=end,
        usage_pages=usage_pages,
        cost_pages=cost_pages,
        usage_sql=usage_sql(),
        cost_sql=cost_sql(),
        retries=retries,
        # Pricing reads `requests` to tell a single long-context request from an aggregate.
        before_pricing=[
            f"UPDATE _usage SET requests = CASE WHEN context_window_hint = '{LONG_CONTEXT_WINDOW}' THEN 1 ELSE 2 END"
        ],
        after_pricing=["UPDATE _usage SET requests = NULL"],
    )


def _time(field: str) -> str:
    """SQL: an RFC 3339 bucket time as UTC TIMESTAMP; NULL when absent, unreadable, infinite or past year 9999."""
    ts = f"TRY_CAST(TRY_CAST(bucket->>'{field}' AS TIMESTAMPTZ) AS TIMESTAMP)"
    return f"CASE WHEN year({ts}) BETWEEN 1 AND 9999 THEN {ts} END"


def _ids(*fields: str) -> str:
    """SQL: identifiers for quarantine (the report has no content fields)."""
    pairs = ", ".join(f"'{f}', result->>'{f}'" for f in fields)
    return f"json_object('bucket_start', bucket->>'starting_at', {pairs})"


def usage_sql() -> str:
    """SQL over ``_api_results``: usage report results as `llm_requests` rows."""
    raw = {
        "uncached_input_tokens": "result->>'uncached_input_tokens'",
        "cache_read_input_tokens": "result->>'cache_read_input_tokens'",
        "cache_creation.ephemeral_5m_input_tokens": "result->'cache_creation'->>'ephemeral_5m_input_tokens'",
        "cache_creation.ephemeral_1h_input_tokens": "result->'cache_creation'->>'ephemeral_1h_input_tokens'",
        "output_tokens": "result->>'output_tokens'",
    }
    checks = [
        (f"{_time('starting_at')} IS NULL", "starting_at", "bucket starting_at is missing or not a timestamp"),
        (f"{raw['uncached_input_tokens']} IS NULL", "uncached_input_tokens", "uncached_input_tokens is missing"),
        *count_checks(raw),
    ]
    problem, column = problem_sql(checks)
    n = {name: f"coalesce({count_sql(sql)}, 0)" for name, sql in raw.items()}
    tier = "CASE lower(result->>'service_tier') WHEN 'standard' THEN 'default' ELSE lower(result->>'service_tier') END"
    return f"""
        SELECT
            {_time('starting_at')} AS period_start,
            {_time('ending_at')} AS period_end,
            '{SOURCE_KIND}' AS source, '{PROVIDER}' AS provider, '{SOURCE_KIND}' AS x_Source,
            result->>'model' AS model, result->>'workspace_id' AS project_id, result->>'api_key_id' AS api_key_id,
            'completion' AS call_type, coalesce({tier}, 'default') AS service_tier,
            CAST(NULL AS BIGINT) AS requests,
            {count_sql(raw['uncached_input_tokens'])} AS input_tokens,
            {n['cache_read_input_tokens']} AS cached_input_tokens,
            {n['cache_creation.ephemeral_5m_input_tokens']} + {n['cache_creation.ephemeral_1h_input_tokens']}
                AS cache_write_tokens,
            {n['cache_creation.ephemeral_1h_input_tokens']} AS cache_write_1h_tokens,
            {count_sql(raw['output_tokens'])} AS output_tokens,
            CAST(NULL AS BIGINT) AS reasoning_tokens,
            result->>'context_window' AS context_window_hint,
            page_key AS _page, row_number AS _row, {problem} AS _problem, {column} AS _column,
            {_ids('workspace_id', 'model', 'api_key_id', 'service_tier')} AS _ids
        FROM _api_results WHERE path = '{USAGE_PATH}'
    """


def cost_sql() -> str:
    """SQL over ``_api_results``: cost report lines, amounts converted from cents to dollars exactly."""
    amount = "result->>'amount'"
    # Cents as DECIMAL with 12 places, times 0.01: exact (a decimal division would go through DOUBLE).
    dollars = f"CAST(TRY_CAST({amount} AS DECIMAL(38, 12)) * CAST(0.01 AS DECIMAL(3, 2)) AS {MONEY})"
    checks = [
        (f"{_time('starting_at')} IS NULL", "starting_at", "bucket starting_at is missing or not a timestamp"),
        (f"{amount} IS NULL", "amount", "amount is missing"),
        (f"TRY_CAST({amount} AS DECIMAL(38, 12)) IS NULL", "amount", "amount is not a decimal string"),
    ]
    problem, column = problem_sql(checks)
    return f"""
        SELECT
            {_time('starting_at')} AS period_start,
            {_time('ending_at')} AS period_end,
            '{PROVIDER}' AS provider, '{SOURCE_KIND}' AS x_Source,
            result->>'workspace_id' AS project_id,
            nullif(result->>'model', '') AS model,
            coalesce(result->>'description', result->>'cost_type') AS line_item,
            {dollars} AS amount,
            upper(coalesce(result->>'currency', 'USD')) AS currency,
            CASE lower(result->>'service_tier') WHEN 'standard' THEN 'default' ELSE lower(result->>'service_tier') END
                AS service_tier,
            page_key AS _page, row_number AS _row, {problem} AS _problem, {column} AS _column,
            {_ids('workspace_id', 'model', 'cost_type', 'description')} AS _ids
        FROM _api_results WHERE path = '{COST_PATH}'
    """
