"""The review's sentences: amounts to the cent, changes with their direction, Markdown-safe."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from finops.periods import Quarter
from finops.reports import narrative

MONEY = pl.Decimal(38, 10)


def summary_row(**overrides) -> pl.DataFrame:
    row = {
        "quarter": "2026Q3",
        "total_cost": Decimal("1500000.00"),
        "ai_cost": Decimal("1234567.885"),
        "previous_ai_cost": Decimal("1000000"),
        "ai_change_pct": 23.4567885,
        "year_ago_ai_cost": Decimal("617283.94"),
        "ai_change_yoy_pct": 100.0,
        "inference_cost": Decimal("864197.52"),
        "inference_share": 0.7,
        "training_cost": Decimal("246913.58"),
        "training_share": 0.2,
        "departments": 4,
    }
    row.update(overrides)
    schema = {k: MONEY for k in row if k.endswith("_cost")}
    return pl.DataFrame([row], schema_overrides=schema)


TOP = pl.DataFrame(
    {
        "department": ["Research", "Product"],
        "ai_cost": [Decimal("740740.73"), Decimal("493827.15")],
        "share": [0.6, 0.4],
        "previous_ai_cost": [Decimal("600000"), Decimal("400000")],
        "change_pct": [23.45, 23.46],
    },
    schema_overrides={"ai_cost": MONEY, "previous_ai_cost": MONEY},
)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (Decimal("1234567.885"), "USD", "$1,234,567.89"),  # half-up, not banker's rounding
        (Decimal("0.005"), "USD", "$0.01"),
        (Decimal("-0.001"), "USD", "$0.00"),  # no "-$0.00"
        (Decimal("-1234.5"), "EUR", "-€1,234.50"),
        (Decimal("99.999"), "CHF", "100.00 CHF"),
        (0.1 + 0.2, "USD", "$0.30"),
        (None, "USD", "n/a"),
    ],
)
def test_format_money(amount, currency, text):
    assert narrative.format_money(amount, currency) == text


def test_total_line_is_the_summary_amount_to_the_cent():
    assert narrative.total_ai_spend_line(summary_row()) == "Total AI spend 2026Q3: $1,234,567.89"


def test_total_line_needs_exactly_one_row():
    with pytest.raises(ValueError, match="one row"):
        narrative.total_ai_spend_line(pl.concat([summary_row(), summary_row()]))


def test_executive_summary_states_spend_change_mix_and_leaders():
    text = narrative.executive_summary(summary_row(), TOP, "USD")
    assert "AI spend in 2026Q3 was \\$1,234,567.89" in text
    assert "up 23.5% from \\$1,000,000.00" in text
    assert "A year earlier it was \\$617,283.94 (+100.0%)" in text
    assert "AI was 82.3% of all cloud spend" in text  # 1,234,567.885 / 1,500,000
    assert "Inference was 70.0% of AI spend** (\\$864,197.52); training 20.0% (\\$246,913.58)" in text
    assert "Research \\$740,740.73 (60.0%); Product \\$493,827.15 (40.0%)" in text


def test_executive_summary_renders_dollars_as_text_not_math():
    html = markdown2html_mistune(narrative.executive_summary(summary_row(), TOP, "USD"))
    assert "<strong>AI spend in 2026Q3 was $1,234,567.89</strong>" in html
    assert "\\$" not in html


def test_executive_summary_without_history_or_departments():
    first_quarter = summary_row(
        previous_ai_cost=None, ai_change_pct=None, year_ago_ai_cost=None, ai_change_yoy_pct=None
    )
    text = narrative.executive_summary(first_quarter, TOP.clear(), "USD")
    assert "no AI spend recorded the quarter before" in text
    assert "A year earlier" not in text
    assert "no AI spend was attributed to a department" in text


def test_falling_and_flat_spend_read_as_such():
    assert "down 12.5% from" in narrative.executive_summary(summary_row(ai_change_pct=-12.5), TOP)
    assert "unchanged from" in narrative.executive_summary(summary_row(ai_change_pct=0.01), TOP)


def test_heading_names_quarter_months_and_basis():
    text = narrative.heading(Quarter(2026, 1), "Larkspur Labs", "billed", "usd")
    assert text.startswith("# AI spend review, 2026Q1\n")
    assert "billing months January to March 2026" in text and "billed cost (as invoiced), USD" in text
