"""Calendar quarters, the period a quarterly review is about.

A :class:`Quarter` is a value (``Quarter(2026, 3)``) that knows its first day, its
exclusive end, its neighbours and its months, so analyses never do month arithmetic by
hand. :func:`finops.analyses.quarters.latest_complete_quarter` picks the default quarter for
a report: the last one the warehouse holds in full (it reads the warehouse, so it is an
analysis; this module is plain values every layer shares).

>>> q = Quarter.parse("2026Q3")
>>> q.start, q.end
(datetime.date(2026, 7, 1), datetime.date(2026, 10, 1))
>>> str(q.previous()), str(q.year_ago()), str(q.next())
('2026Q2', '2025Q3', '2026Q4')
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date

from finops.exceptions import AnalysisError

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
