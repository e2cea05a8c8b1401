"""OpenAI organization Usage and Costs APIs into `llm_requests` (source kind ``openai-usage``).

What is read (an organization *admin* key, from the environment variable named by
``--api-key-env``; sent as ``Authorization: Bearer``):

* ``GET /v1/organization/usage/completions`` — daily buckets (``bucket_width=1d``) grouped by
  project_id, model, api_key_id, user_id, batch and service_tier;
* ``GET /v1/organization/usage/embeddings`` — daily buckets grouped by project_id, model,
  api_key_id and user_id;
* ``GET /v1/organization/costs`` — daily buckets grouped by project_id and line_item, amounts
  as ``{"value": number, "currency": "usd"}``.

Each is followed page by page (``has_more`` / ``next_page`` → ``page``), retried on 429/5xx
with backoff that respects Retry-After (:mod:`connectors.http_api`). Everything is fetched
before the warehouse is opened: a failed call writes nothing.

Mapping, one `llm_requests` row per bucket × group:

* period_start / period_end = the bucket's start_time / end_time (Unix seconds, UTC).
* provider 'openai', source and x_Source 'openai-usage', call_type 'completion' or 'embedding',
  x_SourceKey the page (``GET /v1/organization/usage/completions page 2``).
* requests = num_model_requests; project_id, api_key_id, user_id, model as grouped.
* input_tokens = input_tokens − input_cached_tokens: OpenAI's input count *includes* the cached
  reads, and pricing them as fresh input overcharges. cached_input_tokens = input_cached_tokens.
  Newer answers may also carry input_cache_write_tokens (also inside input_tokens): they go to
  cache_write_tokens and are subtracted from the fresh input too (NULL when not reported).
  A result with more cached (+ written) than total input is quarantined.
* output_tokens = output_tokens; it already includes reasoning tokens, which the Usage API does
  not report apart, so reasoning_tokens is NULL. Audio tokens (input_audio_tokens,
  output_audio_tokens) are counted inside input/output by the API and priced at the text price
  here: `llm_requests` has no audio columns.
* service_tier = 'batch' when batch is true, else the result's service_tier, else 'default'.

Costs: a cost line item reads "<model>, <kind>" (``gpt-4o-2024-08-06, input``). Its model part
and project are matched to the usage rows of the same day, project and model, and the day's
amount for that (project, model) is split over those rows (see :mod:`connectors.model_usage`);
other line items (tools, fine-tuning, storage, …) are loaded as cost-only rows. Amounts are read
from the JSON text as DECIMAL, never through a float.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from connectors.http_api import JsonApi, Page, ProgressCallback
from connectors.model_usage import UsageLoad, count_checks, count_sql, problem_sql
from connectors.model_usage import load as load_usage
from finops.exceptions import SourceError
from finops.warehouse import MONEY, Warehouse

SOURCE_KIND = "openai-usage"
PROVIDER = "openai"
DEFAULT_BASE_URL = "https://api.openai.com"

COMPLETIONS_PATH = "/v1/organization/usage/completions"
EMBEDDINGS_PATH = "/v1/organization/usage/embeddings"
COSTS_PATH = "/v1/organization/costs"

USAGE_ENDPOINTS: dict[str, tuple[str, list[str]]] = {
    COMPLETIONS_PATH: ("completion", ["project_id", "model", "api_key_id", "user_id", "batch", "service_tier"]),
    EMBEDDINGS_PATH: ("embedding", ["project_id", "model", "api_key_id", "user_id"]),
}
"""Usage endpoint → (call_type, group_by)."""

BUCKET_LIMIT = 31  # the most daily buckets the Usage API returns per page
COSTS_LIMIT = 180  # the most daily buckets the Costs API returns per page


def window(start: date, end: date | None) -> tuple[date, date]:
    """(start, end) with end exclusive, default tomorrow (UTC): whole UTC days."""
    end = end or (datetime.now(timezone.utc).date() + timedelta(days=1))
    if end <= start:
        raise SourceError(
            f"empty window: --end {end} is not after --start {start}", hint="--end is the first day NOT loaded"
        )
    return start, end


def _unix(day: date) -> int:
    return int(datetime.combine(day, time(), tzinfo=timezone.utc).timestamp())


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
    """Load OpenAI usage (completions, embeddings) and costs for the UTC days [start, end).

    The window's days are replaced in the warehouse: running it again, or for an overlapping
    window, never duplicates. ``api_key_env`` names the environment variable that holds an
    organization admin key.
    """
    start, end = window(start, end)
    api = JsonApi(
        source="OpenAI Usage API",
        base_url=base_url or DEFAULT_BASE_URL,
        key_env=api_key_env,
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        timeout=timeout,
        max_total_wait=max_total_wait,
        transport=transport,
        **({"sleep": sleep} if sleep else {}),
    )
    times = {"start_time": _unix(start), "end_time": _unix(end), "bucket_width": "1d"}
    usage_pages: list[Page] = []
    for path, (_, group_by) in USAGE_ENDPOINTS.items():
        params = {**times, "group_by": group_by, "limit": BUCKET_LIMIT}
        usage_pages += api.pages(path, params, progress=progress, label=f"OpenAI {path.rsplit('/', 1)[-1]} usage")
    cost_params = {**times, "group_by": ["project_id", "line_item"], "limit": COSTS_LIMIT}
    cost_pages = list(api.pages(COSTS_PATH, cost_params, progress=progress, label="OpenAI costs"))
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

    ``usage_pages`` are answers of :data:`COMPLETIONS_PATH` / :data:`EMBEDDINGS_PATH` (their
    ``path`` says which), ``cost_pages`` of :data:`COSTS_PATH`.
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
    )


PAGE_FILE_SUFFIXES = (".json",)
"""What :func:`read_pages` takes from a folder: the API's answers saved one page a file."""

_RESULT_OBJECTS = {
    "organization.usage.completions.result": COMPLETIONS_PATH,
    "organization.usage.embeddings.result": EMBEDDINGS_PATH,
    "organization.costs.result": COSTS_PATH,
}
_NAME_WORDS = {"completions": COMPLETIONS_PATH, "embeddings": EMBEDDINGS_PATH, "costs": COSTS_PATH}


def _natural(path: Path) -> list[Any]:
    """Sort key: ``costs_page2.json`` before ``costs_page10.json``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def read_pages(paths: Sequence[Path]) -> tuple[list[Page], list[Page]]:
    """(usage pages, cost pages) from API answers saved as files, one page a file, for :func:`load_pages`.

    Which endpoint a file answered is read from its results' ``object``
    (``organization.usage.completions.result``, ``….embeddings.result``, ``organization.costs.result``);
    a page without results is placed by the word ``completions``, ``embeddings`` or ``costs`` in
    its file name. Pages are numbered per endpoint in natural file-name order (page2 before
    page10), as the API numbered them. The text is passed on as read: it is parsed in SQL.
    """
    numbers: dict[str, int] = {}
    usage: list[Page] = []
    costs: list[Page] = []
    for path in sorted(paths, key=_natural):
        text = path.read_text(encoding="utf-8")
        found = {_RESULT_OBJECTS[m] for m in re.findall(r'"object"\s*:\s*"(organization\.[a-z_.]+\.result)"', text)
                 if m in _RESULT_OBJECTS}  # fmt: skip
        if not found:
            found = {endpoint for word, endpoint in _NAME_WORDS.items() if word in path.name.lower()}
        if len(found) != 1:
            raise SourceError(
                f"{path}: not one OpenAI usage or costs API page"
                + (f" (it has results of {len(found)} endpoints)" if found else ""),
                hint="save each answer of /v1/organization/usage/completions, …/embeddings or /v1/organization/costs"
                " as a file of its own (an empty page needs completions, embeddings or costs in its name)",
            )
        [endpoint] = found
        numbers[endpoint] = numbers.get(endpoint, 0) + 1
        (costs if endpoint == COSTS_PATH else usage).append(Page(endpoint, numbers[endpoint], text))
    return usage, costs


def _bucket_time(field: str) -> str:
    """SQL: a bucket's Unix seconds as TIMESTAMP; NULL when absent, not whole, negative (before
    1970: no usage API reports that) or past year 9999."""
    ts = f"CAST(try(to_timestamp(CAST({count_sql(f'bucket->>{field!r}')} AS DOUBLE))) AS TIMESTAMP)"
    return f"CASE WHEN year({ts}) BETWEEN 1970 AND 9999 THEN {ts} END"


def _ids(*fields: str) -> str:
    """SQL: a JSON object of identifiers for quarantine (never a content field: the APIs have none)."""
    pairs = ", ".join(f"'{f}', result->>'{f}'" for f in fields)
    return f"json_object('bucket_start', bucket->>'start_time', {pairs})"


def usage_sql() -> str:
    """SQL over ``_api_results``: completions and embeddings results as `llm_requests` rows."""
    raw = {
        name: f"result->>'{name}'"
        for name in ("input_tokens", "input_cached_tokens", "input_cache_write_tokens", "output_tokens", "num_model_requests")
    }
    cached = f"coalesce({count_sql(raw['input_cached_tokens'])}, 0)"
    written = f"coalesce({count_sql(raw['input_cache_write_tokens'])}, 0)"
    checks = [
        (f"{_bucket_time('start_time')} IS NULL", "start_time", "bucket start_time is missing or not Unix seconds"),
        (f"{raw['input_tokens']} IS NULL", "input_tokens", "input_tokens is missing"),
        *count_checks(raw),
        (f"{cached} + {written} > {count_sql(raw['input_tokens'])}", "input_cached_tokens",
         "input_cached_tokens (+ input_cache_write_tokens) exceeds input_tokens, which include them"),
    ]  # fmt: skip
    problem, column = problem_sql(checks)
    call_type = "CASE path " + " ".join(f"WHEN '{p}' THEN '{t}'" for p, (t, _) in USAGE_ENDPOINTS.items()) + " END"
    tier = (
        "CASE WHEN lower(result->>'batch') = 'true' THEN 'batch'"
        " ELSE lower(coalesce(nullif(result->>'service_tier', ''), 'default')) END"
    )
    return f"""
        SELECT
            {_bucket_time('start_time')} AS period_start,
            {_bucket_time('end_time')} AS period_end,
            '{SOURCE_KIND}' AS source, '{PROVIDER}' AS provider, '{SOURCE_KIND}' AS x_Source,
            result->>'model' AS model, result->>'project_id' AS project_id,
            result->>'user_id' AS user_id, result->>'api_key_id' AS api_key_id,
            {call_type} AS call_type, {tier} AS service_tier,
            {count_sql(raw['num_model_requests'])} AS requests,
            {count_sql(raw['input_tokens'])} - {cached} - {written} AS input_tokens,
            {cached} AS cached_input_tokens,
            {count_sql(raw['input_cache_write_tokens'])} AS cache_write_tokens,
            {count_sql(raw['output_tokens'])} AS output_tokens,
            CAST(NULL AS BIGINT) AS reasoning_tokens,
            page_key AS _page, row_number AS _row, {problem} AS _problem, {column} AS _column,
            {_ids('project_id', 'model', 'api_key_id', 'user_id')} AS _ids
        FROM _api_results WHERE path IN ({', '.join(repr(p) for p in USAGE_ENDPOINTS)})
    """


def cost_sql() -> str:
    """SQL over ``_api_results``: Costs API results as cost lines (model = the line item's model part)."""
    value = "result->'amount'->>'value'"
    checks = [
        (f"{_bucket_time('start_time')} IS NULL", "start_time", "bucket start_time is missing or not Unix seconds"),
        (f"{value} IS NULL", "amount.value", "amount.value is missing"),
        (f"TRY_CAST({value} AS {MONEY}) IS NULL", "amount.value", "amount.value is not a number"),
    ]  # fmt: skip
    problem, column = problem_sql(checks)
    return f"""
        SELECT
            {_bucket_time('start_time')} AS period_start,
            {_bucket_time('end_time')} AS period_end,
            '{PROVIDER}' AS provider, '{SOURCE_KIND}' AS x_Source,
            result->>'project_id' AS project_id,
            nullif(trim(regexp_extract(result->>'line_item', '^([^,]+),', 1)), '') AS model,
            result->>'line_item' AS line_item,
            TRY_CAST({value} AS {MONEY}) AS amount,
            upper(result->'amount'->>'currency') AS currency,
            CAST(NULL AS VARCHAR) AS service_tier,
            page_key AS _page, row_number AS _row, {problem} AS _problem, {column} AS _column,
            {_ids('project_id', 'line_item')} AS _ids
        FROM _api_results WHERE path = '{COSTS_PATH}'
    """
