"""Which table an analysis sums: the daily rollups when it can, the line items or calls when it must.

`charges_daily` (see :data:`finops.warehouse.CHARGES_DAILY_COLUMNS`) is `charges` summed per
day and per every column but a line's own identity (resource, source file and row, unit prices).
Sums, classification and departments over it equal those over the line items, and it is a few
thousand rows a day where the bill has millions of lines, so the bill analyses read it.

Two rules for code that reads the table :func:`charges_table` returns:

* count line items as ``x_LineItems.sum()``, never ``count()`` (a rollup row sums many lines);
* ChargePeriodStart is the day on the rollup: group by its date, never by the hour.

`llm_requests_daily` (:data:`finops.warehouse.LLM_REQUESTS_DAILY_COLUMNS`) is the same for the
gateway and model-API calls: `llm_requests` summed per day and per every column but a call's own
ids, so tasks, agents, callers and models keep their own rows. :func:`requests_table` returns it;
count calls as ``x_Calls.sum()`` (:func:`call_count`), and read ``period_start`` as a day (it is
the day's first call), never an hour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis

from finops.warehouse.export import ROLLUP_OF

if TYPE_CHECKING:
    from finops.config import ChargeMatch, Config

ROLLUP, REQUESTS_ROLLUP = ROLLUP_OF  # `charges_daily` and `llm_requests_daily`, named once by the warehouse
RESOURCE_COLUMNS = ("ResourceId", "ResourceName")


def charges_table(con, config: Config | None = None) -> ibis.Table:
    """`charges_daily` if it has every column ``config``'s rules name, else `charges`.

    Parameters
    ----------
    con
        An ibis backend on the warehouse (DuckDB, or Spark over an export).
    config
        finops.toml: a workload rule, shared-cost pool or allocation rule that matches on the
        resource (or on a column the rollup leaves out) makes the analysis read the line items.

    Returns
    -------
    ibis.Table
        The rollup, or `charges` with ``x_LineItems`` = 1 per line, so callers count the same way.
        A Spark export written before the rollup existed has none, and gets `charges`.
    """
    if ROLLUP in con.list_tables():
        daily = con.table(ROLLUP)
        if config_reads(config) <= set(daily.columns):
            return daily
    charges = con.table("charges")
    return charges.mutate(x_LineItems=ibis.literal(1, type="int64"))


def config_reads(config: Config | None) -> set[str]:
    """The `charges` columns that ``config``'s workload rules, pools and allocation rules match on."""
    if config is None:
        return set()
    read: set[str] = set()
    if any(rule.resource is not None for rule in config.workload_rules):
        read.update(RESOURCE_COLUMNS)
    matches: list[ChargeMatch] = [pool.match for pool in config.shared_costs]
    matches += [rule.match for rule in config.allocation_rules]
    for match in matches:
        if match.resource is not None:
            read.update(RESOURCE_COLUMNS)
        read.update(column for column, _ in match.columns)
    return read


def line_count(t: ibis.Table, where=None) -> ibis.expr.types.IntegerValue:
    """How many bill line items ``t``'s rows stand for (rows of `charges`, ``x_LineItems`` of the rollup)."""
    if "x_LineItems" in t.columns:
        return t.x_LineItems.sum(where=where).coalesce(0).cast("int64")
    return t.count(where=where)


def requests_table(con) -> ibis.Table:
    """`llm_requests_daily`, or :func:`request_calls` where there is no rollup (a Spark export
    from before it existed)."""
    if REQUESTS_ROLLUP in con.list_tables():
        return con.table(REQUESTS_ROLLUP)
    return request_calls(con)


def request_calls(con) -> ibis.Table:
    """`llm_requests` with the rollup's extra columns: ``x_Calls`` = 1, ``x_HasTokens`` per call."""
    calls = con.table("llm_requests")
    tokens = sum(
        calls[c].fill_null(0) for c in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")
    )
    return calls.mutate(x_Calls=ibis.literal(1, type="int64"), x_HasTokens=tokens > 0)


def call_count(t: ibis.Table, where=None) -> ibis.expr.types.IntegerValue:
    """How many model calls ``t``'s rows stand for (rows of `llm_requests`, ``x_Calls`` of the rollup)."""
    if "x_Calls" in t.columns:
        return t.x_Calls.sum(where=where).coalesce(0).cast("int64")
    return t.count(where=where)
