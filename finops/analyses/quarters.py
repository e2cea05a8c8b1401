"""Which quarters the warehouse holds in full: the default quarter of a review.

The CLI and the notebooks' parameters call :func:`latest_complete_quarter` once, when no
quarter is named; analyses then take a :class:`~finops.periods.Quarter`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import polars as pl

from finops.analyses.tables import charges_table, line_count
from finops.exceptions import AnalysisError, FinopsError
from finops.periods import Quarter
from finops.warehouse import Warehouse


def month_coverage_expr(charges: ibis.Table) -> ibis.Table:
    """Billing months present in ``charges``, with how far their charges reach.

    One row per month (``month``, the first day of the BillingPeriodStart month) with
    ``rows`` and ``reach``: the latest ChargePeriodEnd (BillingPeriodEnd where it is
    missing) among the month's charges. Small: one row per month, whatever the table's size.
    """
    billed = charges.filter(charges.BillingPeriodStart.notnull())
    reach = billed.ChargePeriodEnd.coalesce(billed.BillingPeriodEnd)
    return (
        billed.group_by(month=billed.BillingPeriodStart.truncate("M").date())
        .aggregate(rows=line_count(billed), reach=reach.max())
        .order_by("month")
    )


def latest_complete_quarter(wh: Warehouse) -> Quarter:
    """The last quarter the warehouse holds in full: the default quarter of a review.

    A quarter is complete when each of its three months has charges (by
    BillingPeriodStart, the invoice month) and its last month's charges reach the
    quarter's last day (some ChargePeriodEnd after the last day begins; rows without
    ChargePeriodEnd count by their BillingPeriodEnd). The second test keeps a quarter still in progress — whose
    last month has a few days of charges — from being reported as if it were over.

    Parameters
    ----------
    wh
        The warehouse to look in.

    Returns
    -------
    Quarter
        The latest complete quarter.

    Raises
    ------
    AnalysisError
        No quarter is complete (empty warehouse, or less than three months loaded).
    """
    with wh.ibis() as con:
        months = month_coverage_expr(charges_table(con)).to_polars()
    complete = _complete_quarters(months)
    if not complete:
        loaded = ", ".join(m.strftime("%Y-%m") for m in months["month"].to_list()) or "none"
        raise AnalysisError(
            f"no complete quarter in warehouse {wh.path} (billing months loaded: {loaded})",
            hint="load all three months of a quarter, or name the quarter explicitly",
        )
    return complete[-1]


def _complete_quarters(months: pl.DataFrame) -> list[Quarter]:
    """Quarters, oldest first, whose months all appear in ``months`` and whose data reaches the end."""
    by_quarter: dict[Quarter, list[tuple[date, datetime | None]]] = {}
    for month, reach in months.select("month", "reach").iter_rows():  # one row per month: tiny
        by_quarter.setdefault(Quarter.containing(month), []).append((month, reach))
    complete = []
    for quarter, rows in sorted(by_quarter.items()):
        reach_by_month = dict(rows)
        if not set(quarter.months()) <= reach_by_month.keys():
            continue
        last_month_reach = reach_by_month[quarter.months()[-1]]
        last_day = datetime.combine(quarter.end - timedelta(days=1), datetime.min.time())
        if last_month_reach is None or last_month_reach > last_day:
            complete.append(quarter)
    return complete


# -- may the quarter's reports be published? ------------------------------------------------------


def _midnight(day: date) -> ibis.expr.types.TimestampScalar:
    return ibis.literal(datetime.combine(day, datetime.min.time()), type=dt.timestamp)


def quarter_coverage_expr(charges: ibis.Table, quarter: Quarter) -> ibis.Table:
    """Per (provider, billing account): the quarter's billing months, reach and latest month.

    The expression behind :func:`quarter_coverage` (before its ``complete`` and ``reason``):
    ``months`` (int32), ``reach``, ``last_month`` and ``undated`` (the last month has charges
    without any end date).
    """
    bp = charges.BillingPeriodStart
    c = charges.filter(bp >= _midnight(quarter.previous().start), bp < _midnight(quarter.end))
    months = c.group_by(
        provider=c.ProviderName, billing_account=c.BillingAccountId, month=c.BillingPeriodStart.truncate("M").date()
    ).aggregate(reach=c.ChargePeriodEnd.coalesce(c.BillingPeriodEnd).max(), rows=line_count(c))
    last_month = ibis.literal(quarter.months()[-1], type=dt.date)
    in_last = months.month == last_month
    out = months.group_by(["provider", "billing_account"]).aggregate(
        months=months.count(where=months.month >= ibis.literal(quarter.start, type=dt.date)).cast(dt.int32),
        reach=months.reach.max(where=in_last),
        last_month=months.month.max(),
        undated=(in_last & (months.rows > 0) & months.reach.isnull()).any(),
    )
    return out.order_by(
        ibis.asc(out.provider, nulls_first=False), ibis.asc(out.billing_account, nulls_first=False)
    )  # fmt: skip


def quarter_coverage(wh: Warehouse, quarter: Quarter) -> pl.DataFrame:
    """How far each billing account's charges reach in ``quarter``: is its quarter complete?

    One row per (provider, billing account) that has charges in the quarter or in the quarter
    before (an account that billed last quarter and has nothing this quarter is a missing
    delivery, not a closed account, until proven otherwise). A row is ``complete`` when the
    account has charges in each of the quarter's three billing months and its last month's
    charges reach the quarter's last day, the test :func:`finops.analyses.quarters.latest_complete_quarter`
    applies to the whole warehouse. Usage sources (`llm_requests`) are not judged: a trace
    export covering one week is not an incomplete quarter.

    Returns
    -------
    polars.DataFrame
        ``provider``, ``billing_account``, ``months`` (of the quarter with charges, 0–3),
        ``reach`` (latest ChargePeriodEnd of the quarter's last month, null if none),
        ``last_month`` (latest billing month loaded, up to the quarter's end), ``complete``
        and ``reason`` (why not complete; null when complete).
    """
    last_day = datetime.combine(quarter.end - timedelta(days=1), datetime.min.time())
    with wh.ibis() as con:
        frame = quarter_coverage_expr(charges_table(con), quarter).to_polars()
    reaches = pl.col("reach") > last_day
    complete = (pl.col("months") == 3) & (reaches | pl.col("undated").fill_null(False))
    reason = (
        pl.when(pl.col("months") == 0)
        .then(pl.format("no charges in {} (last billing month loaded: {})", pl.lit(quarter.label), pl.col("last_month").dt.strftime("%Y-%m")))
        .when(pl.col("months") < 3)
        .then(pl.format("{} of the quarter's 3 billing months loaded (latest {})", pl.col("months"), pl.col("last_month").dt.strftime("%Y-%m")))
        .when(~complete)
        .then(pl.format("charges reach only {}", pl.col("reach").dt.strftime("%Y-%m-%d %H:%M")))
    )  # fmt: skip
    return frame.with_columns(complete=complete, reason=reason).drop("undated")


@dataclasses.dataclass(frozen=True)
class Readiness:
    """Whether a quarter's reports may be published: the quarter (None when none could be
    chosen) and the reasons they may not (empty: publish)."""

    quarter: Quarter | None
    reasons: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return self.quarter is not None and not self.reasons


def readiness(wh: Warehouse, quarter: Quarter | None, runs: Sequence[Any] = ()) -> Readiness:
    """Decide whether the reports of ``quarter`` (default: the last complete one) rest on complete data.

    Not complete when a source of this run failed (its data may be stale or partial), or when
    :func:`quarter_coverage` finds a billing account whose quarter is not complete. Without
    ``quarter``, :func:`~finops.analyses.quarters.latest_complete_quarter` picks it; when no quarter is
    complete, or the warehouse cannot be read, ``quarter`` is None and the reason says why.

    Why None, here and nowhere else: ``finops run`` can only pick the default quarter after its
    sources have loaded, and "no complete quarter" is then a reason to withhold the reports,
    not an error. Every other analysis takes a :class:`~finops.periods.Quarter`.
    """
    # runs: this run's sources (finops.ingest.sources.SourceRun: name, status)
    reasons = [f"source {r.name!r} failed in this run" for r in runs if r.status == "failed"]
    try:
        chosen = quarter if quarter is not None else latest_complete_quarter(wh)
        coverage = quarter_coverage(wh, chosen)
    except FinopsError as exc:  # no complete quarter, no warehouse yet (every source failed), …
        return Readiness(None, (*reasons, str(exc)))
    for row in coverage.filter(~pl.col("complete")).iter_rows(named=True):  # one row per billing account
        reasons.append(f"{chosen}: {row['provider']} account {row['billing_account']}: {row['reason']}")
    if coverage.height == 0:
        reasons.append(f"{chosen}: no charges loaded for the quarter")
    return Readiness(chosen, tuple(reasons))
