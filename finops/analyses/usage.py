"""Agent task and agent cost roll-ups over `llm_requests` (model calls from traces and gateways).

A *task* is what one agent run cost: every model call with the same ``task_id`` (the trace, for
OTel spans and Langfuse observations alike; see connectors/otel.py and connectors/langfuse.py).
Only model-call rows are in `llm_requests`, never agent or tool spans, so summing a task's rows
counts each call once.

Cost stays exact (DECIMAL). ``cost`` sums the rows that have a cost; ``unpriced_calls`` counts
those that have none (a model without a price): a task with unpriced calls costs *at least*
``cost``, never silently less.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import TYPE_CHECKING

import polars as pl

from finops.exceptions import AnalysisError

if TYPE_CHECKING:
    from finops.warehouse import Warehouse

SOURCE_PRIORITY: tuple[str, ...] = ("litellm", "openai-usage", "anthropic-usage", "otel", "langfuse")
"""Which `llm_requests` source to believe for a provider and month when several saw the same calls
(a LiteLLM gateway, the provider's usage API, traces): the first present wins. The gateway sees
every call; a usage API all of its provider's; traces one agent. Unlisted sources come after."""

_TOTALS = """
    count(*) AS model_calls,
    sum(coalesce(input_tokens, 0)) AS input_tokens,
    sum(coalesce(cached_input_tokens, 0)) AS cached_input_tokens,
    sum(coalesce(cache_write_tokens, 0)) AS cache_write_tokens,
    sum(coalesce(output_tokens, 0)) AS output_tokens,
    sum(cost) AS cost,
    count(*) FILTER (WHERE cost_source = 'reported') AS reported_calls,
    count(*) FILTER (WHERE cost_source = 'priced') AS priced_calls,
    count(*) FILTER (WHERE cost IS NULL) AS unpriced_calls,
    min(period_start) AS first_call_at,
    max(coalesce(period_end, period_start)) AS last_call_at
"""


def _bounds(start: date, end: date) -> list[datetime]:
    if end <= start:
        raise AnalysisError(f"empty date range {start} … {end}", hint="end is exclusive: pass an end after start")
    return [datetime.combine(start, time()), datetime.combine(end, time())]


def task_costs(wh: Warehouse, start: date, end: date, *, source: str | None = None) -> pl.DataFrame:
    """One row per task with a model call starting in [start, end): its cost and volume, costliest first.

    Columns: source, task_id, agent_id (the task's agent; several joined by ', ' when its
    calls ran under different agents), model_calls, input/cached input/cache write/output
    tokens, cost (DECIMAL), reported_calls / priced_calls / unpriced_calls (the cost source
    mix), first_call_at, last_call_at. ``source`` limits it to one connector ('otel', 'langfuse').
    A runaway agent shows here as a task with far more model calls and cost than its peers.

    >>> task_costs(wh, date(2025, 11, 1), date(2025, 12, 1)).select("task_id", "model_calls", "cost")  # doctest: +SKIP
    ┌──────────────────┬─────────────┬──────────┐
    │ 7d1e…            ┆ 40          ┆ 0.36     │
    """
    return wh.query(
        f"""SELECT x_Source AS source, task_id,
                string_agg(DISTINCT agent_id, ', ' ORDER BY agent_id) AS agent_id,
                {_TOTALS}
            FROM llm_requests
            WHERE task_id IS NOT NULL AND period_start >= ? AND period_start < ? AND (? IS NULL OR x_Source = ?)
            GROUP BY x_Source, task_id
            ORDER BY cost DESC NULLS LAST, model_calls DESC, task_id""",
        [*_bounds(start, end), source, source],
    )


def agent_costs(wh: Warehouse, start: date, end: date, *, source: str | None = None) -> pl.DataFrame:
    """One row per agent (NULL: model calls outside any agent) in [start, end): tasks, calls, tokens, cost.

    The same columns as :func:`task_costs` with ``tasks`` (distinct task ids) and
    ``max_task_cost`` (its costliest task) instead of task_id, costliest agent first.
    """
    return wh.query(
        f"""WITH per_task AS (
                SELECT x_Source, agent_id, task_id, sum(cost) AS task_cost FROM llm_requests
                WHERE period_start >= ? AND period_start < ? AND (? IS NULL OR x_Source = ?) GROUP BY ALL
            )
            SELECT x_Source AS source, agent_id, count(DISTINCT task_id) AS tasks,
                {_TOTALS},
                (SELECT max(task_cost) FROM per_task p WHERE p.x_Source = r.x_Source
                    AND p.agent_id IS NOT DISTINCT FROM r.agent_id) AS max_task_cost
            FROM llm_requests AS r
            WHERE period_start >= ? AND period_start < ? AND (? IS NULL OR x_Source = ?)
            GROUP BY x_Source, agent_id
            ORDER BY cost DESC NULLS LAST, model_calls DESC, agent_id""",
        [*_bounds(start, end), source, source, *_bounds(start, end), source, source],
    )
