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

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import TYPE_CHECKING

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import polars as pl

from finops.analyses import cache
from finops.analyses.tables import call_count, requests_table
from finops.exceptions import AnalysisError

if TYPE_CHECKING:
    from finops.warehouse import Warehouse

SOURCE_PRIORITY: tuple[str, ...] = ("litellm", "openai-usage", "anthropic-usage", "otel", "langfuse")
"""Which `llm_requests` source to believe for a provider and month when several saw the same calls
(a LiteLLM gateway, the provider's usage API, traces): the first present wins. The gateway sees
every call; a usage API all of its provider's; traces one agent. Unlisted sources come after."""

MONEY = dt.Decimal(38, 10)
_COUNT = dt.Decimal(38, 0)
"""Token sums: DECIMAL(38, 0), as DuckDB sums BIGINT (HUGEINT), so no engine overflows or differs."""
_TOKENS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")


def keep_best(t: ibis.Table, groups: Sequence[str], rank: str, tie: str | None = None) -> ibis.Table:
    """The rows of ``t`` with the lowest ``rank`` of their group (``groups``; NULL is a group like
    any other), and among those, when ``tie`` is given, the lowest ``tie``. Columns as ``t``'s.

    The choice is made over the distinct (group, rank, tie) values present, a few rows, and joined
    back: a window over every row (millions of requests) would sort them all for it.
    """
    present = t.select(*groups, rank, *([tie] if tie else [])).distinct()
    best = present.group_by(*groups).aggregate(_best_rank=present[rank].min())
    same_group = [present[g].identical_to(best[g]) for g in groups]
    top = present.join(best, same_group).filter(lambda r: r[rank] == r._best_rank)
    chosen = top.group_by(*groups).aggregate(
        _best_rank=top[rank].min(), **({"_best_tie": top[tie].min()} if tie else {})
    )
    kept = t.join(
        chosen,
        [
            *(t[g].identical_to(chosen[g]) for g in groups),
            t[rank] == chosen._best_rank,
            *([t[tie] == chosen._best_tie] if tie else []),
        ],
    )
    return kept.select(*(t[c] for c in t.columns))


def _totals(t: ibis.Table) -> dict[str, ir.Value]:
    """The shared aggregates: calls, tokens, cost, the cost source mix, first and last call."""
    return {
        "model_calls": call_count(t),
        **{c: t[c].fill_null(0).cast(_COUNT).sum().cast(_COUNT) for c in _TOKENS},
        "cost": t.cost.sum().cast(MONEY),
        "reported_calls": call_count(t, where=t.cost_source == "reported"),
        "priced_calls": call_count(t, where=t.cost_source == "priced"),
        "unpriced_calls": call_count(t, where=t.cost.isnull()),
        "first_call_at": t.period_start.min(),
        "last_call_at": t.period_end.fill_null(t.period_start).max(),
    }


def _between(requests: ibis.Table, start: date, end: date, source: str | None) -> ibis.Table:
    """Rows starting in [start, end), of ``source`` when one is given."""
    low, high = _bounds(start, end)
    ps = requests.period_start
    t = requests.filter(ps >= ibis.literal(low, type=dt.timestamp), ps < ibis.literal(high, type=dt.timestamp))
    return t if source is None else t.filter(t.x_Source == source)


def _agents(agent_id: ir.StringValue) -> ir.StringValue:
    """The distinct agent ids joined by ', ' in name order (NULL when there is none)."""
    names = agent_id.collect(distinct=True).sort()
    return ibis.ifelse(names.length() > 0, names.join(", "), ibis.null(dt.string))


def task_costs_expr(requests: ibis.Table, start: date, end: date, *, source: str | None = None) -> ibis.Table:
    """The expression behind :func:`task_costs`, over an `llm_requests` table."""
    t = _between(requests, start, end, source)
    t = t.filter(t.task_id.notnull())
    out = t.group_by(source=t.x_Source, task_id=t.task_id).aggregate(agent_id=_agents(t.agent_id), **_totals(t))
    return out.order_by(
        ibis.desc(out.cost, nulls_first=False), ibis.desc(out.model_calls), ibis.asc(out.task_id, nulls_first=False)
    )


def agent_costs_expr(requests: ibis.Table, start: date, end: date, *, source: str | None = None) -> ibis.Table:
    """The expression behind :func:`agent_costs`, over an `llm_requests` table."""
    t = _between(requests, start, end, source)
    per_task = t.group_by(["x_Source", "agent_id", "task_id"]).aggregate(task_cost=t.cost.sum().cast(MONEY))
    worst = per_task.group_by(["x_Source", "agent_id"]).aggregate(max_task_cost=per_task.task_cost.max())
    out = t.group_by(["x_Source", "agent_id"]).aggregate(tasks=t.task_id.nunique(), **_totals(t))
    joined = out.left_join(
        worst, [out.x_Source.identical_to(worst.x_Source), out.agent_id.identical_to(worst.agent_id)]
    )
    result = joined.select("x_Source", "agent_id", "tasks", *_totals(t), "max_task_cost").rename(source="x_Source")
    return result.order_by(
        ibis.desc(result.cost, nulls_first=False), ibis.desc(result.model_calls),
        ibis.asc(result.agent_id, nulls_first=False),
    )  # fmt: skip


def _bounds(start: date, end: date) -> list[datetime]:
    if end <= start:
        raise AnalysisError(f"empty date range {start} … {end}", hint="end is exclusive: pass an end after start")
    return [datetime.combine(start, time()), datetime.combine(end, time())]


@cache.per_warehouse_state  # the review reads it twice: agent task unit costs and runaway tasks
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
    with wh.ibis() as con:
        return task_costs_expr(requests_table(con), start, end, source=source).to_polars()


def agent_costs(wh: Warehouse, start: date, end: date, *, source: str | None = None) -> pl.DataFrame:
    """One row per agent (NULL: model calls outside any agent) in [start, end): tasks, calls, tokens, cost.

    The same columns as :func:`task_costs` with ``tasks`` (distinct task ids) and
    ``max_task_cost`` (its costliest task) instead of task_id, costliest agent first.
    """
    with wh.ibis() as con:
        return agent_costs_expr(requests_table(con), start, end, source=source).to_polars()
