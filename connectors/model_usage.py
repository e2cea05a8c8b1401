"""Loading model-API usage and cost reports (OpenAI, Anthropic) into `llm_requests`: the shared part.

The provider modules (:mod:`connectors.openai_usage`, :mod:`connectors.anthropic_usage`) fetch
pages with :class:`connectors.http_api.JsonApi` and say, in SQL, how one usage result and one
cost line map to columns. This module does the rest, the same way for both:

1. Every page's JSON text is staged and parsed in DuckDB: one row per result of every bucket
   (``_api_results``: page key, 1-based row within the page, bucket JSON, result JSON). Fields
   the provider SQL does not select are ignored, so new API fields never break a load.
2. Usage rows: one per bucket × group. A result with a token count that is not a non-negative
   integer (or, for OpenAI, more cached than total input) is quarantined with its page, row,
   field and reason, and identifiers (bucket, project, model, API key id) only.
3. Our price: :func:`connectors.pricing.price_staged` prices every usage row (``priced_cost``).
4. Reported cost: the provider's cost lines for a (day, project, model) are matched to the usage
   rows of that day, project and model and split over them in proportion to our price of each
   row (or to their tokens when a row of the group has no price). The split is exact: the
   shares of a group add up to the reported amount to the last of MONEY's 10 decimals (each
   row gets the difference of rounded running totals). Those rows get ``reported_cost`` = their
   share, ``cost`` = it and ``cost_source`` = 'reported'; ``priced_cost`` stays ours, so the two
   can be compared row by row.
5. Cost lines that match no usage row (web search, fine-tuning, storage, a model whose usage
   the window lacks, a non-USD amount) become cost-only rows: ``call_type`` 'cost', zero tokens
   and requests, ``reported_cost`` = the amount, ``tags`` = ['line_item:<line item>'].
   Usage rows of a group without any cost line keep our price (``cost_source`` 'priced', or
   'unpriced' with ``cost`` NULL).

   So every reported dollar is in ``cost`` exactly once, and a usage row is counted once:
   ``sum(cost)`` over a window = the cost report's total + our price of usage the cost report
   did not cover. Never add ``reported_cost`` and ``priced_cost``.
6. The warehouse replaces the (``x_Source``, ``period_start`` day) partitions present in the
   load in one transaction: loading a window again, or an overlapping one, never duplicates.
   A day of the window for which the API now returns nothing at all keeps what an earlier load
   stored (the APIs do not remove usage, so this only matters for hand-edited recordings).

Rows read = usage results + cost lines that became their own rows + quarantined results and
lines; cost lines folded into usage rows are counted in :attr:`UsageLoad.cost_lines_matched`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date

import polars as pl

from connectors.http_api import Page
from connectors.pricing import price_staged
from finops.warehouse import LLM_REQUESTS_COLUMNS, MONEY, LoadBatch, LoadResult, Warehouse

PARTITION_BY = ("x_Source", "period_start")
"""What a load replaces in `llm_requests`: one source's day buckets."""

COST_LINE_COLUMNS = (
    "period_start", "period_end", "provider", "x_Source", "project_id", "model", "line_item", "amount", "currency",
    "service_tier",
)  # fmt: skip
"""What a provider's cost SQL selects (plus the problem columns, see :func:`problem_sql`)."""

PROBLEM_COLUMNS = ("_page", "_row", "_problem", "_column", "_ids")
"""Every provider SQL also selects: page key, row in the page, reason (NULL: fine), field, identifiers JSON."""


@dataclasses.dataclass(frozen=True)
class UsageLoad:
    """What one usage/cost load did, for the CLI to print and tests to check."""

    result: LoadResult
    source_kind: str
    start: date
    end: date  # exclusive
    pages: dict[str, int]  # API path → pages fetched
    retries: int  # answers retried (429, 5xx, timeouts)
    usage_rows: int  # usage rows loaded
    cost_lines: int  # cost lines read (valid ones)
    cost_lines_matched: int  # of those, split over usage rows
    cost_only_rows: int  # of those, loaded as their own rows
    by_model: pl.DataFrame  # model, call_type, requests, input/cached/cache-write/output tokens, cost, cost_source
    quarantine_sample: pl.DataFrame  # file (page), row_number, column_name, reason


def count_sql(raw: str) -> str:
    """SQL: a token count from its JSON text; NULL when absent or not a whole number."""
    return f"CASE WHEN regexp_full_match(trim({raw}), '-?[0-9]+') THEN TRY_CAST(trim({raw}) AS BIGINT) END"


def bad_count_sql(raw: str) -> str:
    """SQL: true when a count is present but is not a non-negative whole number (that fits a BIGINT)."""
    whole = f"regexp_full_match(trim({raw}), '[0-9]+')"
    return f"({raw} IS NOT NULL AND (NOT {whole} OR TRY_CAST(trim({raw}) AS BIGINT) IS NULL))"


def problem_sql(checks: Sequence[tuple[str, str, str]]) -> tuple[str, str]:
    """(reason SQL, column SQL) from ``(condition SQL, column name, reason)`` checks; first failing wins."""
    if not checks:
        return "CAST(NULL AS VARCHAR)", "CAST(NULL AS VARCHAR)"
    reason = "CASE " + " ".join(f"WHEN {cond} THEN '{why}'" for cond, _, why in checks) + " END"
    column = "CASE " + " ".join(f"WHEN {cond} THEN '{col}'" for cond, col, _ in checks) + " END"
    return reason, column


def count_checks(fields: dict[str, str]) -> list[tuple[str, str, str]]:
    """Checks that each ``{field name: raw SQL}`` count is a non-negative whole number."""
    return [(bad_count_sql(raw), name, f"{name} is not a non-negative whole number") for name, raw in fields.items()]


def load(
    wh: Warehouse,
    *,
    source_kind: str,
    uri: str,
    start: date,
    end: date,
    usage_pages: Sequence[Page],
    cost_pages: Sequence[Page],
    usage_sql: str,
    cost_sql: str,
    retries: int = 0,
    before_pricing: Sequence[str] = (),
    after_pricing: Sequence[str] = (),
) -> UsageLoad:
    """Load fetched pages: usage rows priced by us, reported costs split over them (see the module doc).

    ``usage_sql`` selects from ``_api_results`` (page_key, path, row_number, bucket, result)
    the `llm_requests` columns it knows, optionally ``cache_write_1h_tokens``, and
    :data:`PROBLEM_COLUMNS`. ``cost_sql`` selects :data:`COST_LINE_COLUMNS` and the problem
    columns. ``before_pricing`` / ``after_pricing`` are SQL statements run on the staged
    ``_usage`` table around :func:`~connectors.pricing.price_staged` (e.g. a pricing hint).
    """
    pages = [*usage_pages, *cost_pages]
    with wh.load(source_kind, uri) as batch:
        batch.stage(
            "_api_pages",
            "SELECT unnest(?::VARCHAR[]) AS page_key, unnest(?::VARCHAR[]) AS path, unnest(?::VARCHAR[]) AS body",
            [[p.key for p in pages], [p.path for p in pages], [p.text for p in pages]],
        )
        batch.stage(
            "_api_results",
            """WITH buckets AS (
                SELECT page_key, path,
                    unnest(from_json(body::JSON->'data', '["JSON"]')) AS bucket,
                    generate_subscripts(from_json(body::JSON->'data', '["JSON"]'), 1) AS bucket_no
                FROM _api_pages
            ), results AS (
                SELECT page_key, path, bucket_no, bucket,
                    unnest(from_json(bucket->'results', '["JSON"]')) AS result,
                    generate_subscripts(from_json(bucket->'results', '["JSON"]'), 1) AS result_no
                FROM buckets
            )
            SELECT page_key, path, bucket, result,
                row_number() OVER (PARTITION BY page_key ORDER BY bucket_no, result_no) AS row_number
            FROM results""",
        )
        usage_read = batch.stage("_usage_raw", usage_sql)
        batch.stage(
            "_usage",
            f"SELECT * EXCLUDE ({', '.join(PROBLEM_COLUMNS)}), row_number() OVER (ORDER BY _page, _row) AS _alloc_row,"
            f" _page AS x_SourceKey, CAST(NULL AS {MONEY}) AS reported_cost, CAST(NULL AS VARCHAR) AS cost_currency"
            " FROM _usage_raw WHERE _problem IS NULL",
        )
        for statement in before_pricing:
            batch.execute(statement)
        price_staged(batch, "_usage")
        for statement in after_pricing:
            batch.execute(statement)

        cost_read = batch.stage("_costs_raw", cost_sql)
        batch.stage(
            "_costs",
            """SELECT c.* EXCLUDE (_problem, _column, _ids),
                upper(coalesce(c.currency, 'USD')) = 'USD' AND c.model IS NOT NULL AND EXISTS (
                    SELECT 1 FROM _usage AS u WHERE u.period_start = c.period_start
                       AND u.project_id IS NOT DISTINCT FROM c.project_id AND u.model = c.model
                ) AS matched
            FROM _costs_raw AS c WHERE c._problem IS NULL""",
        )
        _allocate(batch)

        columns = [c for c in LLM_REQUESTS_COLUMNS if c != "x_BatchId"]
        usage_cols = {r[0] for r in batch.execute('DESCRIBE "_usage"').fetchall()}
        select_usage = ", ".join(f'"{c}"' if c in usage_cols else f'NULL AS "{c}"' for c in columns)
        rows_sql = (
            f"SELECT {select_usage}, {batch.batch_id} AS x_BatchId FROM _usage"
            f" UNION ALL BY NAME SELECT *, {batch.batch_id} AS x_BatchId FROM _cost_rows"
        )
        quarantine_sql = (
            "SELECT _page AS file, _row AS row_number, _column AS column_name, _problem AS reason, _ids AS raw_row"
            " FROM _usage_raw WHERE _problem IS NOT NULL"
            " UNION ALL SELECT _page, _row, _column, _problem, _ids FROM _costs_raw WHERE _problem IS NOT NULL"
        )
        usage_rows = batch.execute("SELECT count(*) FROM _usage").fetchone()[0]
        cost_lines, matched = batch.execute("SELECT count(*), count(*) FILTER (matched) FROM _costs").fetchone()
        rows_read = usage_read + cost_read - matched
        result = batch.replace_partitions(
            "llm_requests",
            rows_sql,
            partition_by=PARTITION_BY,
            rows_read=rows_read,
            quarantine_sql=quarantine_sql,
            state={"last_window": {"start": start.isoformat(), "end": end.isoformat()}},
        )
        by_model = batch.execute(
            """SELECT model, call_type, sum(requests) AS requests, sum(input_tokens) AS input_tokens,
                sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
                sum(output_tokens) AS output_tokens, sum(cost) AS cost,
                string_agg(DISTINCT cost_source, ', ' ORDER BY cost_source) AS cost_source
            FROM llm_requests WHERE x_BatchId = ? GROUP BY ALL ORDER BY call_type, model NULLS LAST""",
            [batch.batch_id],
        ).pl()
        quarantine = batch.quarantine_sample()
    page_counts: dict[str, int] = {}
    for page in pages:
        page_counts[page.path] = page_counts.get(page.path, 0) + 1
    return UsageLoad(
        result=result,
        source_kind=source_kind,
        start=start,
        end=end,
        pages=page_counts,
        retries=retries,
        usage_rows=usage_rows,
        cost_lines=cost_lines,
        cost_lines_matched=matched,
        cost_only_rows=cost_lines - matched,
        by_model=by_model,
        quarantine_sample=quarantine,
    )


def _allocate(batch: LoadBatch) -> None:
    """Split matched cost lines over their usage rows (exactly), and stage unmatched ones as rows."""
    tokens = (
        "coalesce(u.input_tokens, 0) + coalesce(u.cached_input_tokens, 0)"
        " + coalesce(u.cache_write_tokens, 0) + coalesce(u.output_tokens, 0)"
    )
    batch.stage(
        "_alloc",
        f"""WITH groups AS (
            SELECT period_start, project_id, model, sum(amount) AS amount
            FROM _costs WHERE matched GROUP BY ALL
        ), members AS (
            SELECT u._alloc_row, g.period_start, g.project_id, g.model, g.amount,
                CAST(u.priced_cost AS DOUBLE) AS price_weight, CAST({tokens} AS DOUBLE) AS token_weight
            FROM _usage AS u JOIN groups AS g
              ON u.period_start = g.period_start AND u.project_id IS NOT DISTINCT FROM g.project_id
             AND u.model = g.model
        ), weighted AS (
            SELECT *,
                CASE WHEN count(price_weight) OVER grp = count(*) OVER grp AND sum(price_weight) OVER grp > 0
                     THEN price_weight
                     WHEN sum(token_weight) OVER grp > 0 THEN token_weight
                     ELSE 1 END AS weight
            FROM members
            WINDOW grp AS (PARTITION BY period_start, project_id, model)
        ), running AS (
            SELECT *,
                row_number() OVER (PARTITION BY period_start, project_id, model ORDER BY _alloc_row) AS n,
                count(*) OVER (PARTITION BY period_start, project_id, model) AS members,
                sum(weight) OVER (PARTITION BY period_start, project_id, model ORDER BY _alloc_row
                                  ROWS UNBOUNDED PRECEDING) AS cum_weight,
                sum(weight) OVER (PARTITION BY period_start, project_id, model) AS total_weight
            FROM weighted
        ), cumulative AS (
            SELECT _alloc_row, period_start, project_id, model, n,
                CASE WHEN n = members THEN amount
                     ELSE CAST(amount * CAST(least(cum_weight / total_weight, 1.0) AS DECIMAL(18, 17)) AS {MONEY})
                END AS cum_share
            FROM running
        )
        SELECT _alloc_row,
            CAST(cum_share - coalesce(lag(cum_share) OVER (PARTITION BY period_start, project_id, model ORDER BY n), 0)
                 AS {MONEY}) AS share
        FROM cumulative""",
    )
    batch.execute(
        """UPDATE _usage SET reported_cost = a.share, cost = a.share, cost_currency = 'USD', cost_source = 'reported'
        FROM _alloc AS a WHERE _usage._alloc_row = a._alloc_row"""
    )
    batch.stage(
        "_cost_rows",
        f"""SELECT period_start, period_end, x_Source AS source, provider, model, project_id,
            'cost' AS call_type, service_tier, 0 AS requests, 0 AS input_tokens, 0 AS cached_input_tokens,
            0 AS cache_write_tokens, 0 AS output_tokens, CAST(amount AS {MONEY}) AS reported_cost,
            upper(coalesce(currency, 'USD')) AS cost_currency,
            CASE WHEN upper(coalesce(currency, 'USD')) = 'USD' THEN CAST(amount AS {MONEY}) END AS cost,
            CASE WHEN upper(coalesce(currency, 'USD')) = 'USD' THEN 'reported' ELSE 'unpriced' END AS cost_source,
            CASE WHEN line_item IS NOT NULL THEN ['line_item:' || line_item] END AS tags,
            _page AS x_SourceKey, x_Source
        FROM _costs WHERE NOT matched""",
    )
