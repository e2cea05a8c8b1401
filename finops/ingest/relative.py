"""Relative dates and durations in [[sources]] options: ``-1m`` (last month), ``-35d``, ``-36h``, ``1h``.

finops.toml may say "the last three months" instead of fixed dates, so a scheduled run keeps
loading the recent past; these turn such texts into dates at load time (UTC).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from finops.config import DURATION_TEXT, RELATIVE_TIME
from finops.exceptions import ConfigError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str | timedelta) -> timedelta:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"2d"`` → timedelta (a timedelta passes through).

    >>> parse_duration("3h")
    datetime.timedelta(seconds=10800)
    """
    if isinstance(value, timedelta):
        return value
    match = DURATION_TEXT.match(value)
    if not match:
        raise ConfigError(f"not a duration: {value!r}", hint="write a number and a unit: 30m, 1h, 2d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


_RELATIVE_MONTH = re.compile(r"(?<![0-9])(0|-\d+)m")


def resolve_months(texts: Sequence[str], today: date | None = None) -> list[str]:
    """Month texts with relative months (``0m`` this month, ``-1m`` the one before, UTC) written out.

    >>> resolve_months(["-2m..0m", "2026-01"], today=date(2026, 10, 5))
    ['2026-08..2026-10', '2026-01']
    """
    today = today or datetime.now(UTC).date()

    def month(match: re.Match[str]) -> str:
        index = today.year * 12 + today.month - 1 + int(match[1])
        return f"{index // 12:04d}-{index % 12 + 1:02d}"

    return [_RELATIVE_MONTH.sub(month, text) for text in texts]


def resolve_day(value: date | str, today: date | None = None) -> date:
    """A date, or ``"-Nd"``: N days before ``today`` (default: today in UTC).

    >>> resolve_day("-35d", today=date(2026, 10, 5))
    datetime.date(2026, 8, 31)
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    match = RELATIVE_TIME.match(value)
    if not match or match[2] != "d":
        return date.fromisoformat(value)
    return (today or datetime.now(UTC).date()) - timedelta(days=int(match[1]))


def resolve_moment(value: date | datetime | str, now: datetime | None = None) -> date | datetime:
    """A date or date-time, or ``"-Nd"`` / ``"-Nh"`` before ``now`` (default: now, UTC, naive).

    >>> resolve_moment("-36h", now=datetime(2026, 10, 5, 12))
    datetime.datetime(2026, 10, 4, 0, 0)
    """
    if isinstance(value, date):
        return value
    match = RELATIVE_TIME.match(value)
    if not match:
        return datetime.fromisoformat(value)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
