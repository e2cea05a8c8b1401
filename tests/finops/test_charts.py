"""Charts aggregate before they draw, keep fixed colours, and render offline; tables keep cents."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import altair as alt
import polars as pl
import pytest

from finops.reports import charts

MONEY = pl.Decimal(38, 10)


def chart_rows(chart: alt.Chart) -> list[dict]:
    spec = chart.to_dict()  # raises MaxRowsError if a chart carried more than 5,000 rows
    [rows] = spec["datasets"].values()
    return rows


def daily_department_rows(days: int = 183, departments: int = 30) -> pl.DataFrame:
    """More rows than Altair allows in a chart (days × departments), one cent each plus a dollar."""
    start = date(2026, 4, 1)
    frame = pl.DataFrame(
        {
            "period": [start + timedelta(days=d) for d in range(days) for _ in range(departments)],
            "department": [f"Dept {k:02d}" for _ in range(days) for k in range(departments)],
        }
    )
    return frame.with_columns(cost=pl.lit(Decimal("1.01")).cast(MONEY))


def test_department_chart_sums_to_the_month_and_keeps_the_largest_departments():
    rows = daily_department_rows()  # April to September: 183 days
    assert rows.height > 5000
    chart = charts.monthly_spend_by_department(rows.with_columns(pl.col("period").dt.truncate("1mo")), keep=8)
    data = chart_rows(chart)
    # 6 months × (8 named + "Other departments")
    assert len(data) == 6 * 9
    assert {d["department"] for d in data} >= {"Other departments"}
    assert sum(d["cost"] for d in data) == pytest.approx(float(rows["cost"].sum()))
    july = sum(d["cost"] for d in data if d["month"] == "Jul 2026")
    assert july == pytest.approx(31 * 30 * 1.01)


def test_unallocated_is_grey_whatever_its_rank():
    frame = pl.DataFrame(
        {
            "period": [date(2026, 7, 1)] * 3,
            "department": ["Unallocated", "Research", "Product"],
            "cost": [Decimal(900), Decimal(100), Decimal(50)],
        },
        schema_overrides={"cost": MONEY},
    )
    scale = charts.monthly_spend_by_department(frame).to_dict()["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True))["Unallocated"] == charts.UNALLOCATED_COLOUR
    assert scale["domain"][0] == "Unallocated"  # largest first
    assert charts.UNALLOCATED_COLOUR not in [c for d, c in zip(scale["domain"], scale["range"], strict=True) if d != "Unallocated"]


@pytest.mark.parametrize("order", [["training", "inference", "development"], ["development", "inference", "training"]])
def test_workload_colours_are_fixed_and_non_ai_is_left_out(order):
    frame = pl.DataFrame(
        {
            "period": [date(2026, 7, 1)] * 4,
            "workload": [*order, "non-AI"],
            "cost": [Decimal(1), Decimal(2), Decimal(3), Decimal(1000)],
        },
        schema_overrides={"cost": MONEY},
    )
    spec = charts.workload_split_over_time(frame).to_dict()
    scale = spec["encoding"]["color"]["scale"]
    assert scale["domain"] == ["inference", "training", "development"]
    assert scale["range"] == [charts.WORKLOAD_COLOURS[w] for w in ("inference", "training", "development")]
    [rows] = spec["datasets"].values()
    assert sum(r["cost"] for r in rows) == 6


def test_daily_chart_aggregates_to_one_point_per_day_and_workload():
    days = [date(2026, 7, 1) + timedelta(days=d) for d in range(92)]
    frame = pl.DataFrame(
        {
            "date": [d for d in days for _ in range(60)],
            "workload": ["inference", "training", "other AI"] * (92 * 20),
            "cost": [Decimal("0.10")] * (92 * 60),
        },
        schema_overrides={"cost": MONEY},
    )
    assert frame.height > 5000
    rows = chart_rows(charts.daily_spend(frame))
    assert len(rows) == 92 * 3
    assert all(r["cost"] == pytest.approx(2.0) for r in rows)


def test_provider_mix_sorts_and_names_the_rest():
    frame = pl.DataFrame(
        {
            "provider": ["AWS"] * 20,
            "service": [f"Service {i:02d}" for i in range(20)],
            "cost": [Decimal(100 - i) for i in range(20)],
            "share": [0.05] * 20,
        },
        schema_overrides={"cost": MONEY},
    )
    chart = charts.provider_service_mix(frame, keep=5)
    rows = {r["label"]: r["cost"] for r in chart_rows(chart)}
    assert rows["AWS · Other services"] == sum(100 - i for i in range(5, 20))
    assert len(rows) == 6
    encoding = chart.to_dict()["encoding"]
    # Bars largest first, and the folded rest last although it is the largest bar here.
    assert encoding["y"]["sort"] == [f"AWS · Service {i:02d}" for i in range(5)] + ["AWS · Other services"]
    assert encoding["x"]["axis"]["format"] == "$,.0f"


def test_money_table_formats_exact_cents_and_aligns_numbers():
    frame = pl.DataFrame(
        {
            "department": ["Research <ML>", "Legal"],
            "ai_cost": [Decimal("1234567.885"), None],
            "share": [0.98765, None],
            "change_pct": [12.345, -3.0],
            "rows": [1234, 5],
        },
        schema_overrides={"ai_cost": MONEY},
    )
    table = charts.money(frame, ["ai_cost"], "USD", shares=["share"], percents=["change_pct"], titles={"ai_cost": "AI spend"})
    html = table._repr_html_()
    assert '<td class="num">$1,234,567.89</td>' in html
    assert '<td class="num">n/a</td>' in html
    assert '<td class="num">98.8%</td>' in html and '<td class="num">+12.3%</td>' in html
    assert '<td class="num">-3.0%</td>' in html and '<td class="num">1,234</td>' in html
    assert "Research &lt;ML&gt;" in html  # text is escaped
    assert '<th class="num">AI spend</th>' in html and "<th>Department</th>" in html
    assert "mathjax_ignore" in html  # JupyterLab must not read "$…$" as LaTeX
    assert "$1,234,567.89" in repr(table)


def test_offline_renderer_output_cannot_close_its_script_early():
    frame = pl.DataFrame(
        {"period": [date(2026, 7, 1)], "department": ["</script><script>alert(1)</script>"], "cost": [Decimal(5)]},
        schema_overrides={"cost": MONEY},
    )
    chart = charts.monthly_spend_by_department(frame)
    html = charts.offline_html(chart.to_dict())
    assert html.startswith('<div class="finops-chart"></div><script>')
    assert html.count("</script>") == 1 and html.endswith("</script>")
    spec_json = re.search(r"var spec=(\{.*?\});function draw", html).group(1)
    assert json.loads(spec_json) == chart.to_dict()
    assert "vegaEmbed(el,spec,{actions:false" in html
    assert charts.VEGA_READY_EVENT in html


def test_offline_renderer_is_used_once_enabled():
    previous = alt.renderers.active
    try:
        charts.use_offline_renderer()
        bundle = alt.Chart(alt.Data(values=[{"a": 1}])).mark_bar().encode(x="a:Q")._repr_mimebundle_()
        html = bundle["text/html"] if isinstance(bundle, dict) else bundle[0]["text/html"]
        assert 'class="finops-chart"' in html and "cdn.jsdelivr" not in html
    finally:
        alt.renderers.enable(previous)


def test_vega_bundle_defines_vega_embed_and_announces_itself():
    bundle = charts.vega_javascript()
    assert len(re.findall(r"window\.vegaEmbed\s*=", bundle)) == 1
    assert charts.VEGA_READY_EVENT in bundle
    assert "</script" not in bundle.lower()
    assert not re.search(r"^\s*import\s", bundle, re.MULTILINE)  # self-contained: no imports left
