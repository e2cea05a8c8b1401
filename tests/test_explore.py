"""The explore notebook's widgets (finops/reports/explore.py) on the sample company.

Widgets are driven as a user would, by setting their ``value``. Every total the explorer shows
is compared with the finops function that owns that number (exact Decimal), or with the
sample company's ground truth (data/sample/ground_truth.json, written by the generator).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import polars as pl
import pytest

from finops.analyses import chargeback, spend
from finops.analyses.classify import AI_WORKLOADS
from finops.config import load_config
from finops.periods import Quarter
from finops.reports import charts
from finops.reports.explore import Explorer, families_billed_by
from finops.reports.narrative import format_money
from finops.warehouse import Warehouse

Q3 = Quarter.parse("2026Q3")
Q3_MONTHS = ("2026-07", "2026-08", "2026-09")
FIRST_DAY, AFTER_LAST_DAY = date(2025, 4, 1), date(2026, 10, 1)


@pytest.fixture(scope="module")
def sample(sample_build):
    wh, cfg = Warehouse(sample_build.warehouse), load_config(sample_build.config)
    truth = json.loads((sample_build.exports / "ground_truth.json").read_text())
    return wh, cfg, truth, Explorer(wh, cfg)


@pytest.fixture
def explorer(sample) -> Explorer:
    """The module's explorer with its controls back at their defaults."""
    explorer = sample[3]
    explorer.dates.index = (0, len(explorer.dates.options) - 1)
    explorer.departments.value = ()
    explorer.providers.value = ()
    explorer.models.value = ()
    explorer.workloads.value = [w for w in explorer.workloads.options if w in AI_WORKLOADS]
    explorer.split.value = "workload"
    return explorer


def shown_spend(explorer: Explorer) -> Decimal:
    return explorer.totals()["spend"][0]


def every_workload(explorer: Explorer) -> None:
    explorer.workloads.value = explorer.workloads.options


def test_loads_every_day_of_the_sample_company(explorer):
    assert explorer.dates.value == (FIRST_DAY, date(2026, 9, 30))
    assert set(explorer.workloads.value) == set(AI_WORKLOADS)


def test_default_shows_all_ai_spend_as_spend_module_does(sample, explorer):
    wh, cfg, _, _ = sample
    expected = spend.spend_by_department(wh, cfg, FIRST_DAY, AFTER_LAST_DAY, grain="day", ai_only=True)["cost"].sum()
    assert shown_spend(explorer) == expected
    # The first table shown is the totals row, formatted from the same exact number.
    first_table = explorer.output.outputs[0]["data"]["text/html"]
    assert format_money(expected, "USD") in first_table


def test_department_widget_filters_to_that_department(sample, explorer):
    wh, cfg, _, _ = sample
    everyone = shown_spend(explorer)
    explorer.departments.value = ("Research",)
    by_department = spend.spend_by_department(wh, cfg, FIRST_DAY, AFTER_LAST_DAY, grain="day", ai_only=True)
    research = by_department.filter(pl.col("department") == "Research")["cost"].sum()
    assert shown_spend(explorer) == research
    assert 0 < research < everyone
    explorer.departments.value = ("Research", "Product")
    both = by_department.filter(pl.col("department").is_in(["Research", "Product"]))["cost"].sum()
    assert shown_spend(explorer) == both > research


def test_date_and_department_match_the_ground_truth(sample, explorer):
    _, _, truth, _ = sample
    every_workload(explorer)
    explorer.dates.value = (Q3.start, date(2026, 9, 30))
    assert shown_spend(explorer) == Decimal(truth["headline"]["total"]["effective_cost"])
    for department in ("Research", "Unallocated"):
        explorer.departments.value = (department,)
        expected = sum(Decimal(truth["department_cost"][m][department]["effective_cost"]) for m in Q3_MONTHS)
        assert shown_spend(explorer) == expected


def test_date_widget_narrows_to_the_quarter(sample, explorer):
    wh, cfg, _, _ = sample
    everything = shown_spend(explorer)
    explorer.dates.value = (Q3.start, date(2026, 9, 30))
    quarter = spend.spend_by_department(wh, cfg, Q3.start, Q3.end, grain="day", ai_only=True)["cost"].sum()
    assert shown_spend(explorer) == quarter
    assert 0 < quarter < everything


def test_provider_widget_filters_the_bill_and_the_calls_it_bills(sample, explorer):
    wh, cfg, _, _ = sample
    every_workload(explorer)
    explorer.providers.value = ("AWS",)
    daily = spend.daily_spend(wh, FIRST_DAY, AFTER_LAST_DAY, by="provider", config=cfg)
    assert shown_spend(explorer) == daily.filter(pl.col("provider") == "AWS")["cost"].sum()
    # Gateway calls billed by AWS are Bedrock's.
    usage = chargeback.gateway_usage(wh, cfg, Q3)
    bedrock = usage.filter(pl.col("provider") == "bedrock")
    totals = explorer.totals()
    assert totals["requests"][0] == bedrock["requests"].sum() > 0
    assert totals["gateway_cost"][0] == bedrock["cost"].sum()


def test_model_widget_narrows_gateway_usage(sample, explorer):
    wh, cfg, _, _ = sample
    usage = chargeback.gateway_usage(wh, cfg, Q3)  # every gateway call of the sample company is in 2026Q3
    before = explorer.totals()
    assert before["requests"][0] == usage["requests"].sum()
    assert before["gateway_cost"][0] == usage["cost"].sum()
    explorer.models.value = ("gemini-2.5-pro",)
    after = explorer.totals()
    model = usage.filter(pl.col("model") == "gemini-2.5-pro")
    assert after["requests"][0] == model["requests"].sum()
    assert 0 < after["requests"][0] < before["requests"][0]
    assert after["gateway_cost"][0] == model["cost"].sum() < before["gateway_cost"][0]
    assert after["spend"][0] == before["spend"][0]  # bills are not filtered by model
    # With a department picked as well: only that department's calls of the model.
    explorer.models.value = ("gpt-4.1-2025-04-14",)
    explorer.departments.value = ("Customer Support",)
    calls = usage.filter((pl.col("model") == "gpt-4.1-2025-04-14") & (pl.col("department") == "Customer Support"))
    assert explorer.totals()["requests"][0] == calls["requests"].sum() > 0


def test_chargeback_table_follows_department_and_months(sample, explorer):
    wh, cfg, _, _ = sample
    explorer.dates.value = (date(2026, 8, 10), date(2026, 9, 5))
    explorer.departments.value = ("Research",)
    table = explorer.output.outputs[-1]["data"]["text/html"]
    rows = chargeback.chargeback(wh, cfg, Q3).filter(pl.col("department") == "Research")
    for month, total in rows.select("month", "total_cost").iter_rows():
        assert (f"<td>{month}</td>" in table) == (month in ("2026-08", "2026-09"))
        if month != "2026-07":
            assert format_money(total, "USD") in table


def test_widget_changes_do_not_read_the_warehouse(sample, explorer, monkeypatch):
    def refuse(self):
        raise AssertionError("a widget change opened the warehouse")

    monkeypatch.setattr(Warehouse, "reader", refuse)
    for split in ("department", "provider"):
        explorer.split.value = split
    explorer.departments.value = ("Marketing",)
    explorer.models.value = ("gpt-image-1",)
    explorer.dates.value = (date(2026, 8, 1), date(2026, 8, 31))
    assert explorer.totals()["spend"][0] > 0


def test_an_empty_selection_shows_zero_not_an_error(explorer):
    explorer.providers.value = ("Anthropic",)
    explorer.workloads.value = ("training",)
    explorer.dates.value = (date(2025, 4, 1), date(2025, 4, 1))
    totals = explorer.totals()
    assert totals["spend"][0] == 0
    assert explorer.output.outputs  # the totals table and the chargeback table are still shown


def test_families_billed_by():
    assert families_billed_by(["AWS", "Microsoft", "Google Cloud"]) == [
        "AWS Bedrock",
        "Azure OpenAI",
        "Google Vertex AI / Gemini",
    ]
    assert families_billed_by(["Amazon Web Services"]) == ["AWS Bedrock"]
    assert families_billed_by([]) == []


# -- the charts the explorer added to finops/reports/charts.py ------------------------------------


def test_spend_over_time_folds_small_series_and_keeps_the_total():
    days = [date(2026, 7, 1) + timedelta(days=d) for d in range(92)]
    frame = pl.DataFrame(
        {
            "date": [d for d in days for _ in range(30)],
            "department": [f"Dept {k:02d}" for _ in days for k in range(30)],
            "cost": [Decimal(k + 1) for _ in days for k in range(30)],  # Dept 29 costs most
        },
        schema_overrides={"cost": pl.Decimal(38, 10)},
    )
    assert frame.height > 2500
    rows = charts.spend_over_time(frame, by="department", grain="day", keep=8).to_dict()["datasets"]
    [rows] = rows.values()
    names = {r["department"] for r in rows}
    assert names == {f"Dept {k:02d}" for k in range(22, 30)} | {"Other"}
    assert len(rows) == 92 * 9
    assert sum(r["cost"] for r in rows) == pytest.approx(92 * sum(range(1, 31)))
    other = next(r["cost"] for r in rows if r["department"] == "Other")
    assert other == sum(range(1, 23))  # departments 00..21 cost 1..22 a day


def test_gateway_model_mix_sums_calls_per_model():
    frame = pl.DataFrame(
        {
            "provider": ["OpenAI", "OpenAI", "Azure OpenAI", "AWS Bedrock"],
            "model": ["gpt-4o", "gpt-4o", "gpt-4o", None],
            "cost": [Decimal("1.50"), Decimal("2.25"), Decimal(4), None],
            "requests": [1, 2, 3, 4],
        },
        schema_overrides={"cost": pl.Decimal(38, 10)},
    )
    [rows] = charts.gateway_model_mix(frame).to_dict()["datasets"].values()
    by_key = {(r["provider"], r["model"]): (r["cost"], r["requests"]) for r in rows}
    assert by_key == {
        ("OpenAI", "gpt-4o"): (3.75, 3),
        ("Azure OpenAI", "gpt-4o"): (4.0, 3),
        ("AWS Bedrock", "unknown model"): (0.0, 4),
    }
