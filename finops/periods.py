"""Calendar quarters, the period a quarterly review is about.

A :class:`Quarter` is a value (``Quarter(2026, 3)``) that knows its first day, its
exclusive end, its neighbours and its months, so analyses never do month arithmetic by
hand. :func:`latest_complete_quarter` picks the default quarter for a report: the last one
the warehouse holds in full.

>>> q = Quarter.parse("2026Q3")
>>> q.start, q.end
(datetime.date(2026, 7, 1), datetime.date(2026, 10, 1))
>>> str(q.previous()), str(q.year_ago()), str(q.next())
('2026Q2', '2025Q3', '2026Q4')
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from finops.exceptions import AnalysisError

if TYPE_CHECKING:
    import ibis

    from finops.warehouse import Warehouse

# "2026Q3", "2026-Q3", "2026 q3", "2026/Q3"; and the other way round: "Q3 2026", "q3-2026".
_YEAR_FIRST = re.compile(r"^\s*(?P<year>\d{4})\s*[-/ ]?\s*[Qq](?P<q>[1-4])\s*$")
_QUARTER_FIRST = re.compile(r"^\s*[Qq](?P<q>[1-4])\s*[-/ ]?\s*(?P<year>\d{4})\s*$")


@dataclasses.dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter: ``year`` and ``q`` (1–4). Ordered in time.

    >>> Quarter(2026, 1).months()
    [datetime.date(2026, 1, 1), datetime.date(2026, 2, 1), datetime.date(2026, 3, 1)]
    >>> Quarter(2026, 1) < Quarter(2026, 2)
    True
    """

    year: int
    q: int

    def __post_init__(self) -> None:
        if not 1 <= self.q <= 4:
            raise AnalysisError(f"quarter number must be 1 to 4, got {self.q!r}")
        if not 1 <= self.year <= 9998:
            raise AnalysisError(f"quarter year out of range: {self.year!r}")

    @classmethod
    def parse(cls, text: str | Quarter) -> Quarter:
        """Read ``"2026Q3"`` (also ``"2026-Q3"``, ``"2026 q3"``, ``"Q3 2026"``); a Quarter passes through.

        Raises :class:`~finops.exceptions.AnalysisError` naming the text it could not read,
        so a mistyped ``--quarter`` option says what was wrong.

        >>> Quarter.parse("q4-2025")
        Quarter(year=2025, q=4)
        """
        if isinstance(text, Quarter):
            return text
        match = _YEAR_FIRST.match(str(text)) or _QUARTER_FIRST.match(str(text))
        if not match:
            raise AnalysisError(f"not a quarter: {text!r}", hint="write a quarter like 2026Q3")
        return cls(int(match["year"]), int(match["q"]))

    @classmethod
    def containing(cls, day: date) -> Quarter:
        """The quarter that ``day`` falls in.

        >>> Quarter.containing(date(2026, 8, 15))
        Quarter(year=2026, q=3)
        """
        return cls(day.year, (day.month - 1) // 3 + 1)

    @property
    def start(self) -> date:
        """First day of the quarter."""
        return date(self.year, 3 * self.q - 2, 1)

    @property
    def end(self) -> date:
        """First day of the next quarter: the exclusive end, as every period in finops."""
        return self.next().start

    @property
    def label(self) -> str:
        """``"2026Q3"``: how reports, file names and the CLI write a quarter."""
        return f"{self.year}Q{self.q}"

    def previous(self) -> Quarter:
        """The quarter before (quarter-over-quarter comparisons)."""
        return Quarter(self.year - 1, 4) if self.q == 1 else Quarter(self.year, self.q - 1)

    def next(self) -> Quarter:
        """The quarter after."""
        return Quarter(self.year + 1, 1) if self.q == 4 else Quarter(self.year, self.q + 1)

    def year_ago(self) -> Quarter:
        """The same quarter one year earlier (year-over-year comparisons, free of seasonality)."""
        return Quarter(self.year - 1, self.q)

    def months(self) -> list[date]:
        """First day of each of the quarter's three months."""
        return [date(self.year, 3 * self.q - 2 + i, 1) for i in range(3)]

    def __str__(self) -> str:
        return self.label


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
        .aggregate(rows=billed.count(), reach=reach.max())
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
        months = month_coverage_expr(con.table("charges")).to_polars()
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
