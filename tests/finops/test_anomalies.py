"""Cost and agent anomalies: hand-made series whose answers are worked out here, and the sample
company, whose generator records what it planted (ground_truth.json, gateway/runaway_tasks.json)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from finops.analyses import anomalies
from finops.cli import cli
from finops.config import Config, Department, load_config
from finops.demo.gateway import OUTPUT_FOLDER
from finops.exceptions import AnalysisError
from finops.warehouse import Warehouse
from tests.finops.warehouse_rows import charge, insert_charges, roll_up_requests

START = date(2026, 1, 5)  # a Monday
CONFIG = Config(
    departments=(
        Department("Product", sub_accounts=("111111111111",)),
        Department("Marketing", sub_accounts=("222222222222",)),
    )
)


def _detail(rows: list[tuple[date, str, str, str]]) -> pl.DataFrame:
    """A daily detail frame (as daily_detail_expr gives) of one Product EC2 series: (day, resource, sku, cost)."""
    return pl.DataFrame(
        {
            "date": [r[0] for r in rows],
            "department": "Product",
            "provider": "AWS",
            "service": "Amazon Elastic Compute Cloud",
            "SubAccountId": "111111111111",
            "ResourceId": [r[1] for r in rows],
            "sku": [r[2] for r in rows],
            "cost": [Decimal(r[3]) for r in rows],
        },
        schema_overrides={"cost": pl.Decimal(38, 10)},
    )


def test_a_flat_weekly_series_expects_its_weekday_level_and_flags_only_the_spike():
    # Weekdays cost 100, weekends 40; one Wednesday (2026-04-15) costs 400.
    spike = date(2026, 4, 15)
    rows = []
    for n in range(147):
        day = START + timedelta(days=n)
        cost = "400" if day == spike else ("40" if day.weekday() >= 5 else "100")
        rows.append((day, "i-web", "BoxUsage", cost))
    found = anomalies.detect(_detail(rows), START, START + timedelta(days=147))
    # By hand: the 28-day median is 100 (20 weekdays of 28), no trend, Wednesday's factor is 1:
    # expected 100.00, impact 300; the spread is its floor 5 % × 100 = 5, so the score is 60.
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["date"] == spike
    assert (row["expected"], row["actual"], row["impact"]) == (Decimal("100.00"), Decimal(400), Decimal(300))
    assert row["score"] == pytest.approx(60.0)
    assert (row["top_resource"], row["top_resource_share"]) == ("i-web", pytest.approx(1.0))


def _web(t: int) -> float:
    """Product's web fleet on day t, without noise: 100 $/day growing 0.4 % a day, 30 % on weekends."""
    return 100 * 1.004**t * (0.3 if (START + timedelta(days=t)).weekday() >= 5 else 1.0)


@pytest.fixture
def seasonal(wh: Warehouse) -> tuple[Warehouse, dict[date, Decimal]]:
    """Six months of two departments with weekly seasonality, one planted spike, and month-start fees.

    Product (EC2): a growing web fleet (weekend dip to 30 %) with ±3 % noise plus a flat $20
    batch box; on Wednesday 2026-05-20 the web fleet costs 4 × its usual. Marketing (a consumer
    app): $100 on weekdays, $500 on weekends. Every month: a $3,000 recurring fee and $500 tax
    on the 1st (charge periods of a month), which are not daily usage.
    """
    rng = np.random.default_rng(6)
    rows, product_per_day = [], {}
    for t in range(178):
        day = START + timedelta(days=t)
        text = day.isoformat()
        web = Decimal(f"{_web(t) * rng.lognormal(0, 0.03) * (4 if day == date(2026, 5, 20) else 1):.2f}")
        product_per_day[day] = web + Decimal(20)
        ec2 = {"SubAccountId": "111111111111", "ServiceName": "Amazon Elastic Compute Cloud"}
        rows.append(
            charge(cost=web, day=text, ResourceId="i-web", SkuMeter="BoxUsage", ChargeFrequency="Usage-Based", **ec2)
        )
        rows.append(charge(cost="20", day=text, ResourceId="i-batch", SkuMeter="Batch", **ec2))  # no ChargeFrequency
        weekend = day.weekday() >= 5
        rows.append(charge(cost=f"{(500 if weekend else 100) * rng.lognormal(0, 0.03):.2f}", day=text,
                           SubAccountId="222222222222", ServiceName="Amazon Bedrock", ChargeFrequency="Usage-Based"))  # fmt: skip
        if day.day == 1:
            month = datetime.combine(day, datetime.min.time())
            end = (month + timedelta(days=32)).replace(day=1)
            fee = {"day": text, "ChargePeriodEnd": end, "SubAccountId": "111111111111"}
            rows.append(charge(cost="3000", ChargeCategory="Purchase", ChargeFrequency="Recurring",
                               ServiceName="Amazon Elastic Compute Cloud", **fee))  # fmt: skip
            rows.append(charge(cost="500", ChargeCategory="Tax", ChargeFrequency="One-Time", ServiceName="Tax", **fee))
    insert_charges(wh, rows)
    return wh, product_per_day


def test_weekly_seasonality_and_trend_are_expected_and_the_planted_spike_is_found(seasonal):
    wh, product_per_day = seasonal
    found = anomalies.cost_anomalies(wh, CONFIG, START, START + timedelta(days=178))
    # Marketing's $500 weekends, Product's weekend dips, Mondays and the month-start fees and tax
    # are all normal; only the spike is not.
    assert found.select("date", "department", "service").rows() == [
        (date(2026, 5, 20), "Product", "Amazon Elastic Compute Cloud")
    ]
    row = found.row(0, named=True)
    spike = date(2026, 5, 20)
    assert row["actual"] == product_per_day[spike]  # the exact sum of that day's rows
    # Without the spike the day would have cost the web fleet's trend value plus the batch box:
    by_hand = Decimal(f"{_web((spike - START).days) + 20:.2f}")  # 191.54
    assert abs(row["expected"] - by_hand) / by_hand < Decimal("0.03")
    assert row["impact"] == row["actual"] - row["expected"]
    assert row["expected"] == row["expected"].quantize(Decimal("0.01"))  # cents
    assert (row["top_sub_account"], row["top_resource"], row["top_sku"]) == ("111111111111", "i-web", "BoxUsage")
    assert 0.9 < row["top_resource_share"] < 1.1
    assert row["score"] >= 5 and row["episode"] == 1


def test_the_dollar_floor_keeps_a_small_series_quiet(seasonal):
    wh, _ = seasonal
    # The spike's impact is about $520: above a $250 floor, below a $1,000 one.
    assert anomalies.cost_anomalies(wh, CONFIG, START, START + timedelta(days=178), min_impact=1000).is_empty()


def test_consecutive_anomalous_days_share_an_episode():
    rows = []
    for n in range(120):
        day = START + timedelta(days=n)
        cost = "500" if n in (100, 101, 102, 110) else "100"
        rows.append((day, "i-web", "BoxUsage", cost))
    found = anomalies.detect(_detail(rows), START, START + timedelta(days=120)).sort("date")
    assert found["date"].to_list() == [START + timedelta(days=n) for n in (100, 101, 102, 110)]
    assert found["episode"].to_list() == [1, 1, 1, 2]


def test_bad_parameters_are_refused(seasonal):
    wh, _ = seasonal
    with pytest.raises(AnalysisError, match="positive"):
        anomalies.cost_anomalies(wh, CONFIG, START, date(2026, 6, 1), threshold=0)
    with pytest.raises(AnalysisError, match="empty period"):
        anomalies.cost_anomalies(wh, CONFIG, date(2026, 6, 1), START)


def _insert_tasks(wh: Warehouse, tasks: dict[tuple[str, str], int]) -> None:
    """One llm_requests row per model call: 1,000 input and 200 output tokens, $0.01 each."""
    rows, n = [], 0
    for (agent, task), calls in tasks.items():
        for _ in range(calls):
            n += 1
            rows.append([datetime(2026, 8, 12, 9) + timedelta(seconds=n), "otel", "otel", agent, task, f"call-{n}",
                         1, 1000, 200, Decimal("0.01"), "priced"])  # fmt: skip
    with wh.writer() as con:
        con.executemany(
            "INSERT INTO llm_requests (period_start, source, x_Source, agent_id, task_id, request_id, requests,"
            " input_tokens, output_tokens, cost, cost_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        roll_up_requests(con)


def test_an_agents_runaway_task_is_flagged_against_its_own_agents_norm(wh):
    tasks = {("triage-bot", f"t-{i:02}"): 3 + i % 3 for i in range(30)}  # 10 each of 3, 4 and 5 calls
    tasks[("triage-bot", "t-loop")] = 40
    tasks.update({("research-bot", f"r-{i:02}"): 50 for i in range(12)})  # long tasks are its normal
    tasks[("research-bot", "r-long")] = 52
    tasks.update({("rare-bot", "x-1"): 2, ("rare-bot", "x-2"): 90})  # too few tasks for a norm
    _insert_tasks(wh, tasks)
    found = anomalies.agent_anomalies(wh, date(2026, 8, 1), date(2026, 9, 1))
    # By hand for triage-bot: median 4 calls (the 16th of 31), MAD 1, so the bound is
    # max(4 + 5 × 1.4826 × 1, 3 × 4) = 12 calls; tokens likewise (4,800 typical, 14,400 bound).
    assert found.select("agent_id", "task_id").rows() == [("triage-bot", "t-loop")]
    row = found.row(0, named=True)
    assert (row["calls"], row["tokens"], row["cost"]) == (40, 48_000, Decimal("0.40"))
    assert (row["typical_calls"], row["typical_tokens"], row["calls_ratio"], row["ratio"]) == (4, 4800, 10, 10)
    assert (row["day"], row["reason"]) == (date(2026, 8, 12), "calls, tokens")


# -- the sample company ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(sample_build):
    truth = json.loads((sample_build.exports / "ground_truth.json").read_text(encoding="utf-8"))
    return Warehouse(sample_build.warehouse), load_config(sample_build.config), truth


def _report(kind: str, result: anomalies.Evaluation) -> None:
    print(
        f"\n{kind}: found {result.found}, known {result.known}, precision {result.precision:.3f}, "
        f"recall {result.recall:.3f}, false alarms {result.false_alarms} "
        f"({result.false_alarms_per_quarter:.2f} per quarter)"
    )


def test_sample_company_cost_anomalies_find_every_planted_one_with_few_false_alarms(sample):
    wh, config, truth = sample
    start, end = date.fromisoformat(truth["start"]), date.fromisoformat(truth["end"]) + timedelta(days=1)
    found = anomalies.cost_anomalies(wh, config, start, end)
    planted = pl.DataFrame(truth["anomalies"]).select(
        date=pl.col("date").str.to_date(),
        department="department",
        provider="provider_name",
        top_resource="resource_id",  # matched on the resource it names, so the explanation must be right too
        impact=pl.col("impact").cast(pl.Decimal(38, 10)),
    )
    # The baseline needs two windows (56 days) of history before its first judgement.
    days = (end - start).days - 56
    result = anomalies.evaluate(found, planted, ("date", "department", "provider", "top_resource"), days=days)
    _report("cost anomalies, whole history", result)
    assert result.recall == 1.0, result.missed
    assert result.false_alarms_per_quarter <= 3  # the bound: at most 3 false alarm days per quarter
    hits = found.join(planted, on=["date", "department", "provider", "top_resource"], suffix="_truth")
    assert set(hits["top_sku"]) <= {sku for a in truth["anomalies"] for sku in a["skus"]}
    for row in hits.iter_rows(named=True):
        # Our series also holds gpt-4o-mini, the ground truth only the two gpt-4o meters: 5 % apart at most.
        assert abs(row["impact"] - row["impact_truth"]) / row["impact_truth"] < Decimal("0.05"), row


def test_sample_company_agent_anomalies_find_every_runaway_run(sample, sample_build):
    wh, _, _ = sample
    runaway = json.loads((sample_build.exports / OUTPUT_FOLDER / "runaway_tasks.json").read_text(encoding="utf-8"))
    assert len(runaway) == 20
    truth = pl.DataFrame(runaway)
    found = anomalies.agent_anomalies(wh, date(2025, 4, 1), date(2026, 10, 1))
    days = (date(2026, 10, 1) - date(2026, 7, 1)).days  # the gateway's window
    result = anomalies.evaluate(found, truth, ("task_id",), days=days)
    _report("agent anomalies, gateway window", result)
    assert result.recall == 1.0, result.missed
    assert result.false_alarms_per_quarter <= 3
    for source in ("otel", "litellm"):  # the traces and the gateway each see every looping run
        seen = anomalies.evaluate(found.filter(pl.col("source") == source), truth, ("task_id",), days=days)
        assert seen.recall == 1.0, (source, seen.missed)
    calls = dict(zip(truth["task_id"], truth["calls"], strict=True))
    assert all(calls[t] == c for t, c in zip(found["task_id"], found["calls"], strict=True))
    assert all(c > 0 for c in found["cost"])


def test_cli_anomalies_on_the_sample_company(sample_build):
    common = ["--warehouse", str(sample_build.warehouse), "--config", str(sample_build.config)]
    run = CliRunner().invoke(cli, ["anomalies", "--quarter", "2026Q3", "--format", "csv", *common])
    assert run.exit_code == 0, run.output
    frame = pl.read_csv(run.output.encode())
    assert {"2026-08-12", "2026-08-13"} <= set(
        frame.filter(pl.col("department") == "Customer Support")["date"].cast(pl.String)
    )
    run = CliRunner().invoke(cli, ["anomalies", "--start", "2026-08-01", "--end", "2026-09-01", "--agents",
                                   "--format", "json", *common])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert {row["task_id"] for row in json.loads(run.output)} == {
        t["task_id"] for t in json.loads((sample_build.exports / OUTPUT_FOLDER / "runaway_tasks.json").read_text())
    }
    run = CliRunner().invoke(cli, ["anomalies", "--start", "2026-08-01", *common])
    assert run.exit_code == 2 and "--quarter or both --start and --end" in run.output
