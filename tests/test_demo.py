"""`finops demo` end to end: the sample company's exports, loaded through the FOCUS connector,
give back the figures its generator recorded in ground_truth.json, to the cent.

The ground truth is written by the generator from its own model of the company (which
department owns each resource, which workload it serves), not read from the warehouse, so
these tests compare two independent computations.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from finops.analyses import spend
from finops.config import load_config
from finops.periods import Quarter
from finops.warehouse import Warehouse

CENT = Decimal("0.01")
Q3 = Quarter.parse("2026Q3")


@pytest.fixture(scope="module")
def truth(sample_build) -> dict:
    return json.loads((sample_build.exports / "ground_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def wh(sample_build) -> Warehouse:
    return Warehouse(sample_build.warehouse)


def cents(value: str | Decimal) -> Decimal:
    return Decimal(value).quantize(CENT)


def _native_rows(truth: dict, provider: str, month: str) -> int:
    """Charge rows the native export of ``provider`` has for ``month`` (FOCUS rows for the APIs)."""
    native = truth["native_exports"]
    if provider == "aws":
        return native["aws"]["monthly"][month]["rows"]
    if provider == "gcp":
        return native["gcp"]["monthly"][month]["rows"]
    if provider == "azure":  # one charge per actual-cost line; amortized lines are matched to them
        return native["azure"]["monthly"][month]["actual"]["rows"]
    return truth["monthly_totals"][month][provider]["rows"]


def test_every_month_and_provider_matches_the_exports_after_the_restatement(wh, truth):
    names = {key: p["provider_name"] for key, p in truth["providers"].items()}
    loaded = wh.query(
        "SELECT strftime(BillingPeriodStart, '%Y-%m') AS month, ProviderName AS provider, x_Source AS source,"
        " count(*) AS rows, sum(BilledCost) AS billed, sum(EffectiveCost) AS effective FROM charges GROUP BY ALL"
    )
    got = {(r["month"], r["provider"]): (r["source"], r["rows"], r["billed"], r["effective"]) for r in loaded.iter_rows(named=True)}
    sources = {"aws": "aws-cur", "gcp": "gcp-billing", "azure": "azure", "openai": "focus", "anthropic": "focus"}
    expected = {
        (month, names[key]): (sources[key], _native_rows(truth, key, month), Decimal(t["billed_cost"]), Decimal(t["effective_cost"]))
        for month, per_provider in truth["monthly_totals"].items()
        for key, t in per_provider.items()
    }
    assert got == expected  # 2026-08 AWS is the restated delivery, nothing doubled


def test_demo_reports_the_restatement_and_every_load_succeeded(wh, truth, sample_build):
    original = truth["native_exports"]["aws"]["restatement"]["original"]
    assert f"replaced {original['rows']:,}" in sample_build.demo_output
    batches = wh.query(
        "SELECT source_kind, status, count(*) AS batches, sum(rows_quarantined)::BIGINT AS quarantined"
        " FROM ingest_batches GROUP BY ALL ORDER BY source_kind"
    )
    months = len(truth["billing_periods"])
    # aws-cur: one batch per period, plus the first 2026-08 delivery; the others one batch each
    # (the gateway: prices, LiteLLM spend logs, OpenAI usage pages, agent traces).
    assert batches.to_dicts() == [
        {"source_kind": "aws-cur", "status": "succeeded", "batches": months + 1, "quarantined": 0},
        {"source_kind": "azure", "status": "succeeded", "batches": 1, "quarantined": 0},
        {"source_kind": "focus", "status": "succeeded", "batches": 2, "quarantined": 0},
        {"source_kind": "gcp-billing", "status": "succeeded", "batches": 1, "quarantined": 0},
        {"source_kind": "litellm", "status": "succeeded", "batches": 1, "quarantined": 0},
        {"source_kind": "openai-usage", "status": "succeeded", "batches": 1, "quarantined": 0},
        {"source_kind": "otel", "status": "succeeded", "batches": 1, "quarantined": 0},
        {"source_kind": "prices", "status": "succeeded", "batches": 1, "quarantined": 0},
    ]


def test_quarter_headline_matches_the_ground_truth(wh, truth, sample_build):
    headline = truth["headline"]
    summary = spend.quarter_summary(wh, load_config(sample_build.config), Q3).row(0, named=True)
    assert cents(summary["total_cost"]) == cents(headline["total"]["effective_cost"])
    assert cents(summary["inference_cost"]) == cents(headline["inference"]["effective_cost"])
    # The first-pass rules cannot know that the gateway's plain EC2 and RDS hosts serve AI: the
    # ground truth calls them "other AI", the bill alone calls them non-AI. Everything else agrees.
    gateway = sum(
        Decimal(truth["workload_cost"][m]["other AI"]["effective_cost"]) for m in ("2026-07", "2026-08", "2026-09")
    )
    assert cents(summary["ai_cost"]) == cents(Decimal(headline["ai"]["effective_cost"]) - gateway + _other_ai(wh))
    assert 0.55 <= summary["inference_share"] <= 0.85


def _other_ai(wh: Warehouse) -> Decimal:
    split = spend.workload_split(wh, Q3.start, Q3.end)
    return sum((c for w, c in zip(split["workload"], split["cost"], strict=True) if w == "other AI"), Decimal(0))


@pytest.mark.parametrize("workload", ["inference", "training", "development"])
def test_monthly_workload_split_matches_the_ground_truth(wh, truth, workload):
    split = spend.workload_split(wh, date(2025, 4, 1), Q3.end)
    got = {
        r["period"].strftime("%Y-%m"): cents(r["cost"]) for r in split.iter_rows(named=True) if r["workload"] == workload
    }
    expected = {m: cents(per[workload]["effective_cost"]) for m, per in truth["workload_cost"].items() if workload in per}
    assert got == expected


def test_department_chargeback_matches_the_ground_truth_every_month(wh, truth, sample_build):
    by_department = spend.spend_by_department(wh, load_config(sample_build.config), date(2025, 4, 1), Q3.end)
    got = {(r["period"].strftime("%Y-%m"), r["department"]): cents(r["cost"]) for r in by_department.iter_rows(named=True)}
    expected = {
        (month, department): cents(t["effective_cost"])
        for month, per_department in truth["department_cost"].items()
        for department, t in per_department.items()
    }
    assert got == expected
    assert truth["untagged"]["allocated_to"] == "Unallocated"
