"""Quarter arithmetic and the choice of the latest complete quarter."""

from __future__ import annotations

from datetime import date

import pytest

from finops.analyses.quarters import latest_complete_quarter
from finops.exceptions import AnalysisError
from finops.periods import Quarter
from tests.finops.warehouse_rows import charge, insert_charges


@pytest.mark.parametrize("text", ["2026Q3", "2026q3", "2026-Q3", "2026 Q3", " 2026/q3 ", "Q3 2026", "q3-2026"])
def test_parse_accepts_common_spellings(text):
    assert Quarter.parse(text) == Quarter(2026, 3)


@pytest.mark.parametrize("text", ["2026Q5", "2026Q0", "2026", "Q3", "26Q3", "2026-07", "", "2026Q3x"])
def test_parse_rejects_and_names_the_text(text):
    with pytest.raises(AnalysisError) as info:
        Quarter.parse(text)
    assert repr(text) in str(info.value)


def test_quarter_number_is_checked():
    with pytest.raises(AnalysisError):
        Quarter(2026, 5)


def test_quarter_bounds_and_label():
    q = Quarter.parse("2026Q3")
    assert (q.start, q.end) == (date(2026, 7, 1), date(2026, 10, 1))
    assert q.label == str(q) == "2026Q3"
    assert q.months() == [date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1)]
    assert Quarter(2026, 4).end == date(2027, 1, 1)
    assert Quarter(2026, 1).start == date(2026, 1, 1)


def test_neighbours_cross_year_boundaries():
    assert Quarter(2026, 1).previous() == Quarter(2025, 4)
    assert Quarter(2025, 4).next() == Quarter(2026, 1)
    assert Quarter(2026, 3).year_ago() == Quarter(2025, 3)
    assert Quarter(2026, 2).previous().next() == Quarter(2026, 2)
    assert Quarter.containing(date(2026, 12, 31)) == Quarter(2026, 4)
    assert sorted([Quarter(2026, 1), Quarter(2025, 4), Quarter(2025, 1)]) == [
        Quarter(2025, 1),
        Quarter(2025, 4),
        Quarter(2026, 1),
    ]


def test_quarters_and_their_months_tile_the_calendar():
    q = Quarter(2024, 1)
    for _ in range(8):
        assert q.end == q.next().start
        assert q.months()[0] == q.start and q.months()[-1] < q.end
        q = q.next()


def month_rows(*months: str, last_day: str | None = None) -> list[dict]:
    """One charge per month on its 10th, and one on the last day of the last month unless ``last_day`` moves it."""
    rows = [charge(day=f"{m}-10") for m in months]
    if last_day:
        rows.append(charge(day=last_day))
    return rows


def test_latest_complete_quarter_needs_every_month(wh):
    # Q1 full, Q2 missing May, Q3 has only July and August.
    insert_charges(wh, month_rows("2026-01", "2026-02", "2026-03", "2026-04", "2026-06", "2026-07", "2026-08",
                                  last_day="2026-03-31"))  # fmt: skip
    assert latest_complete_quarter(wh) == Quarter(2026, 1)


def test_latest_complete_quarter_skips_a_quarter_still_in_progress(wh):
    insert_charges(wh, month_rows("2026-04", "2026-05", "2026-06", "2026-07", "2026-08", last_day="2026-06-30"))
    insert_charges(wh, [charge(day="2026-09-14")])  # September has begun, but only half of it is in
    assert latest_complete_quarter(wh) == Quarter(2026, 2)
    insert_charges(wh, [charge(day="2026-09-30")])
    assert latest_complete_quarter(wh) == Quarter(2026, 3)


def test_latest_complete_quarter_counts_months_by_billing_period(wh):
    # June's charges all billed in July: June's invoice month is empty, so Q2 is not complete.
    insert_charges(wh, [charge(day="2026-04-10"), charge(day="2026-05-10"),
                        charge(day="2026-06-30", billing_month="2026-07-01")])  # fmt: skip
    with pytest.raises(AnalysisError, match="no complete quarter"):
        latest_complete_quarter(wh)


def test_latest_complete_quarter_of_an_empty_warehouse(wh):
    insert_charges(wh, [])
    with pytest.raises(AnalysisError, match="billing months loaded: none"):
        latest_complete_quarter(wh)
