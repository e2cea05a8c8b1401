"""Unit costs per 1M tokens, per request, per agent task and per self-hosted model.

The small warehouse's rows are written with plain INSERTs (cost as the source reported it);
every expected figure is worked out by hand in the comments. The sample company checks that
unit costs add back up to the gateway totals of the chosen sources and to every department.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from finops.analyses.unit_economics import agent_task_unit_costs, self_hosted_unit_costs, token_unit_costs
from finops.config import load_config, parse_config
from finops.exceptions import AnalysisError
from finops.warehouse import LLM_REQUESTS_COLUMNS, PRICES_COLUMNS, Warehouse
from tests.finops.warehouse_rows import charge, insert_charges, roll_up_requests

JULY, AUGUST, Q3_END = date(2026, 7, 1), date(2026, 8, 1), date(2026, 10, 1)
PER_M = Decimal("0.000001")


def insert(wh: Warehouse, table: str, rows: list[dict[str, Any]]) -> None:
    columns = sorted({c for row in rows for c in row})
    types = LLM_REQUESTS_COLUMNS if table == "llm_requests" else PRICES_COLUMNS
    values = ", ".join(f"CAST(? AS {types[c]})" for c in columns)
    with wh.writer() as con:
        con.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})", [[r.get(c) for c in columns] for r in rows]
        )
        roll_up_requests(con)


def request(**row: Any) -> dict[str, Any]:
    base = {"x_Source": "litellm", "source": "litellm", "provider": "openai", "model": "gpt-test", "requests": 1,
            "period_start": datetime(2026, 7, 15, 10), "input_tokens": 0, "cached_input_tokens": 0,
            "cache_write_tokens": 0, "output_tokens": 0, "cost_source": "reported"}  # fmt: skip
    return {**base, **row}


@pytest.fixture
def gateway(wh: Warehouse) -> Warehouse:
    # gpt-test lists $1 per 1M input, $0.25 per 1M cached input, $3 per 1M output.
    insert(wh, "prices", [dict(provider="openai", model="gpt-test", input=1 * PER_M, cached_input=Decimal("0.25") * PER_M,
                               output=3 * PER_M, price_source="override", currency="USD")])  # fmt: skip
    insert(wh, "llm_requests", [
        # 3M input ($3 list) and 1M output ($3 list): half the $5.00 is input, half output.
        request(input_tokens=3_000_000, output_tokens=1_000_000, cost=Decimal("5.00"), team="support",
                agent_id="triage", task_id="t1"),
        # 1M fresh ($1) + 4M cached ($1) input, no output: the whole $2.00 is input.
        request(input_tokens=1_000_000, cached_input_tokens=4_000_000, cost=Decimal("2.00"), project_id="proj_1",
                agent_id="triage", task_id="t2", period_start=datetime(2026, 7, 20, 9)),
        # The same calls seen again by the agent's traces: never added to the gateway's.
        request(x_Source="otel", source="otel", provider="OpenAI", input_tokens=3_000_000,
                output_tokens=1_000_000, cost=Decimal("5.00")),
        # Azure OpenAI only through traces (OTel's name for it): kept as provider 'azure'.
        request(x_Source="otel", source="otel", provider="azure.ai.openai", input_tokens=9, cost=Decimal("9.00")),
        # A model without a list price: cost and blended unit cost, no input/output split.
        request(model="no-price-model", input_tokens=1_000_000, cost=Decimal("1.00")),
        # A model nobody priced: counted as unpriced, never as $0 per token.
        request(model="mystery", input_tokens=500, output_tokens=500, cost=None, cost_source="unpriced"),
        # August.
        request(input_tokens=1_000_000, cost=Decimal("1.00"), period_start=datetime(2026, 8, 3)),
        # Anthropic only through traces: kept, since no gateway row describes it.
        request(x_Source="otel", source="otel", provider="anthropic", model="claude-x", input_tokens=2_000_000,
                output_tokens=2_000_000, cost=Decimal("4.00")),
    ])  # fmt: skip
    return wh


def by_model(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["model"]: row for row in frame.iter_rows(named=True)}


def test_cost_per_million_tokens_by_model(gateway: Warehouse) -> None:
    rows = by_model(token_unit_costs(gateway, JULY, AUGUST))
    assert set(rows) == {"gpt-test", "no-price-model", "mystery", "claude-x"}
    frame = token_unit_costs(gateway, JULY, AUGUST)
    gpt = frame.filter((pl.col("model") == "gpt-test") & (pl.col("provider") == "openai")).row(0, named=True)
    assert (gpt["requests"], gpt["input_tokens"], gpt["cached_input_tokens"], gpt["output_tokens"]) == (
        2, 4_000_000, 4_000_000, 1_000_000)  # fmt: skip
    assert gpt["cost"] == Decimal("7.00")
    assert gpt["cost_per_1m_tokens"] == Decimal("0.7777777778")  # 7.00 / 9M tokens
    assert gpt["cost_per_1m_input"] == Decimal("0.5625")  # (2.50 + 2.00) / 8M input-side tokens
    assert gpt["cost_per_1m_output"] == Decimal("2.5")  # 2.50 / 1M output tokens
    assert gpt["cost_per_request"] == Decimal("3.5")
    unpriced_split = rows["no-price-model"]
    assert unpriced_split["cost_per_1m_tokens"] == Decimal("1") and unpriced_split["cost_per_1m_input"] is None
    mystery = rows["mystery"]
    assert mystery["unpriced_requests"] == 1 and mystery["cost"] is None and mystery["cost_per_1m_tokens"] is None
    assert rows["claude-x"]["cost_per_1m_tokens"] == Decimal("1")  # 4.00 / 4M, from traces
    assert rows["claude-x"]["cost_per_1m_input"] is None  # claude-x has no list price: no split


def test_one_source_per_provider_unless_asked(gateway: Warehouse) -> None:
    default = token_unit_costs(gateway, JULY, AUGUST, by="provider")
    # OpenAI: the gateway's 5.00 + 2.00 + 1.00 (its traces' 5.00 left out); the others from traces.
    assert dict(default.select("provider", "cost").iter_rows()) == {
        "openai": Decimal("8.00"), "anthropic": Decimal("4.00"), "azure": Decimal("9.00")}  # fmt: skip
    traces = token_unit_costs(gateway, JULY, AUGUST, by=("provider", "source"), source="otel")
    assert dict(traces.select("provider", "cost").iter_rows()) == {
        "anthropic": Decimal("4.00"), "azure": Decimal("9.00"), "openai": Decimal("5.00")}  # fmt: skip
    traces_first = token_unit_costs(gateway, JULY, AUGUST, by="provider", source=["otel", "litellm"])
    assert dict(traces_first.select("provider", "cost").iter_rows())["openai"] == Decimal("5.00")


def test_over_time(gateway: Warehouse) -> None:
    monthly = token_unit_costs(gateway, JULY, Q3_END, grain="month").filter(
        (pl.col("model") == "gpt-test") & (pl.col("provider") == "openai")
    )
    assert monthly.select("period", "cost", "cost_per_1m_tokens").rows() == [
        (JULY, Decimal("7.00"), Decimal("0.7777777778")), (AUGUST, Decimal("1.00"), Decimal("1"))]  # fmt: skip


def test_parameters_are_checked(gateway: Warehouse) -> None:
    with pytest.raises(AnalysisError, match="cannot group"):
        token_unit_costs(gateway, JULY, AUGUST, by="colour")  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="grain"):
        token_unit_costs(gateway, JULY, AUGUST, grain="day")  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="empty period"):
        token_unit_costs(gateway, AUGUST, JULY)
    with pytest.raises(AnalysisError, match="configuration"):
        token_unit_costs(gateway, JULY, AUGUST, by="department")


def test_per_department(gateway: Warehouse) -> None:
    config = parse_config('[[departments]]\nname = "Support"\ntag_values = ["Support"]\n'
                          '[[departments]]\nname = "Product"\nsub_accounts = ["proj_1"]\n')  # fmt: skip
    frame = token_unit_costs(gateway, JULY, AUGUST, by="department", config=config)
    costs = dict(frame.select("department", "cost").iter_rows())
    # team 'support' → Support (5.00); project proj_1 → Product (2.00); the rest (no-price-model
    # 1.00, claude-x 4.00 and azure 9.00 from traces) Unallocated. Sums to the 19.00 total.
    assert costs == {"Support": Decimal("5.00"), "Product": Decimal("2.00"), "Unallocated": Decimal("14.00")}


def test_agent_task_distribution(gateway: Warehouse) -> None:
    frame = agent_task_unit_costs(gateway, JULY, AUGUST, source="litellm")
    triage = frame.filter(pl.col("agent_id") == "triage").row(0, named=True)
    assert (triage["tasks"], triage["model_calls"], triage["cost"]) == (2, 2, Decimal("7.00"))
    assert triage["mean_task_cost"] == Decimal("3.5") and triage["max_task_cost"] == Decimal("5.00")
    assert triage["median_task_cost"] == pytest.approx(3.5)
    assert triage["p90_task_cost"] == pytest.approx(2.0 + 0.9 * 3.0)  # linear between 2.00 and 5.00


def test_self_hosted_cost_per_million_tokens(wh: Warehouse) -> None:
    endpoint = "arn:aws:sagemaker:us-east-1:1:endpoint/llama-ep"
    insert_charges(wh, [
        charge(cost="100", day="2026-07-01", ResourceId=endpoint, ConsumedQuantity=Decimal(24), ConsumedUnit="Hrs"),
        charge(cost="100", day="2026-07-02", ResourceId=endpoint, ConsumedQuantity=Decimal(24), ConsumedUnit="Hrs"),
        charge(cost="50", day="2026-07-02", ResourceId="arn:aws:sagemaker:us-east-1:1:endpoint/other"),
        charge(cost="30", day="2026-08-02", ResourceId=endpoint, ConsumedQuantity=Decimal(24), ConsumedUnit="Hrs"),
    ])  # fmt: skip
    insert(wh, "llm_requests", [
        request(provider="hosted_vllm", model="Llama-3-8B", input_tokens=30_000_000, output_tokens=5_000_000,
                period_start=datetime(2026, 7, 1, 9, 15), cost=None, cost_source="unpriced"),
        request(provider="hosted_vllm", model="llama-3-8b", input_tokens=4_000_000, output_tokens=1_000_000,
                period_start=datetime(2026, 7, 2, 17, 40), cost=None, cost_source="unpriced"),
    ])  # fmt: skip
    config = parse_config('[[self_hosted]]\nmodel = "llama-3-8b"\nresource = "endpoint/llama-ep$"\n')
    frame = self_hosted_unit_costs(wh, config, JULY, Q3_END)
    july, august = frame.sort("period").iter_rows(named=True)
    assert (july["period"], july["gpu_cost"], july["tokens"], july["requests"]) == (JULY, Decimal("200"), 40_000_000, 2)
    assert july["cost_per_1m_tokens"] == Decimal("5")  # 200 / 40M tokens
    assert july["instance_hours"] == pytest.approx(48.0)
    assert july["busy_hour_share"] == pytest.approx(2 / 48)  # two busy clock hours over two billed days
    # August: the endpoint ran with no recorded traffic: its cost shows, its unit cost is unknown.
    assert (august["gpu_cost"], august["tokens"], august["cost_per_1m_tokens"]) == (Decimal("30"), 0, None)
    whole = self_hosted_unit_costs(wh, config, JULY, Q3_END, grain=None).row(0, named=True)
    assert whole["gpu_cost"] == Decimal("230") and whole["cost_per_1m_tokens"] == Decimal("5.75")


def test_self_hosted_needs_config(wh: Warehouse) -> None:
    insert_charges(wh, [charge()])
    with pytest.raises(AnalysisError, match="no self-hosted"):
        self_hosted_unit_costs(wh, parse_config(""), JULY, AUGUST)


def test_self_hosted_config_errors_name_the_line() -> None:
    with pytest.raises(Exception, match=r"<config>:2: self_hosted\[0\]\.resource"):
        parse_config('[[self_hosted]]\nresource = "a\\\\.b"\nmodel = "m"\n')
    with pytest.raises(Exception, match="resource: is required"):
        parse_config('[[self_hosted]]\nmodel = "m"\n')


# -- the sample company ---------------------------------------------------------------------------


def test_sample_gateway_costs_add_up(sample_build) -> None:
    wh = Warehouse(sample_build.warehouse)
    config = load_config(sample_build.config)
    start, end = date(2026, 7, 1), date(2026, 10, 1)
    # The sample's support agent is seen by LiteLLM and by its OTel traces: LiteLLM wins for
    # Azure, and OpenAI's traffic comes from its usage API.
    expected = wh.query(
        "SELECT sum(cost) AS c FROM llm_requests WHERE x_Source IN ('litellm', 'openai-usage')"
        " AND period_start >= ? AND period_start < ?",
        [datetime(2026, 7, 1), datetime(2026, 10, 1)],
    )["c"][0]
    per_model = token_unit_costs(wh, start, end)
    assert per_model["cost"].sum() == expected
    assert set(per_model["provider"]) == {"azure", "bedrock", "vertex_ai", "openai"}
    per_department = token_unit_costs(wh, start, end, by="department", config=config)
    assert per_department["cost"].sum() == expected
    assert per_department["requests"].sum() == per_model["requests"].sum()
    monthly = token_unit_costs(wh, start, end, by="provider", grain="month")
    assert monthly["cost"].sum() == expected and monthly["period"].n_unique() == 3
    tasks = agent_task_unit_costs(wh, start, end)
    assert tasks.filter(pl.col("source") == "otel")["tasks"].sum() > 0


def test_unit_costs_command(sample_build) -> None:
    import json

    from click.testing import CliRunner

    from finops.cli import cli

    common = ["--warehouse", str(sample_build.warehouse), "--config", str(sample_build.config), "--format", "json"]
    result = CliRunner().invoke(cli, ["unit-costs", "--quarter", "2026Q3", "--by", "department", *common])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    total = token_unit_costs(Warehouse(sample_build.warehouse), date(2026, 7, 1), date(2026, 10, 1))["cost"].sum()
    assert sum(Decimal(r["cost"]) for r in rows) == total  # JSON keeps the decimals exact
    # The table shows unit costs to 4 decimals (cents would say $0.00 per request), right-aligned.
    table = CliRunner().invoke(cli, ["unit-costs", "--quarter", "2026Q3", "--by", "department", *common[:4]])
    assert table.exit_code == 0, table.output
    for row in rows:
        per_request = f"{Decimal(row['cost_per_request']):,.4f}"
        assert f" {per_request} │" in table.output, per_request
    result = CliRunner().invoke(
        cli, ["unit-costs", "--start", "2026-08-01", "--end", "2026-09-01", "--by", "agent", *common]
    )
    assert result.exit_code == 0, result.output
    assert {r["source"] for r in json.loads(result.output)} == {"litellm", "otel"}
    result = CliRunner().invoke(cli, ["unit-costs", "--quarter", "2026Q3", "--start", "2026-08-01", *common])
    assert result.exit_code != 0


def test_the_input_output_split_is_made_per_day_of_a_task_from_its_summed_tokens(wh: Warehouse) -> None:
    # gpt-test lists $1 per 1M input and $3 per 1M output. Call A's source charged twice the list
    # for its input ($2 for 1M input); call B's exactly the list ($3 for 1M output).
    insert(wh, "prices", [dict(provider="openai", model="gpt-test", input=1 * PER_M, output=3 * PER_M,
                               price_source="override", currency="USD")])  # fmt: skip
    a = {"input_tokens": 1_000_000, "cost": Decimal("2.00"), "task_id": "t1"}
    b = {"output_tokens": 1_000_000, "cost": Decimal("3.00"), "task_id": "t1"}
    insert(wh, "llm_requests", [request(**a, team="same-day"), request(**b, team="same-day"),
                                request(**a, team="two-days"),
                                request(**b, team="two-days", period_start=datetime(2026, 7, 16, 10))])  # fmt: skip
    # One rollup row for the same day's two calls, one per call on two days.
    assert wh.query("SELECT team, count(*), sum(x_Calls)::BIGINT FROM llm_requests_daily GROUP BY 1 ORDER BY 1").rows() == [
        ("same-day", 1, 2), ("two-days", 2, 2)]  # fmt: skip
    rows = {r["team"]: r for r in token_unit_costs(wh, JULY, AUGUST, by="team").iter_rows(named=True)}
    # Same day: $5.00 split by the summed list prices, $1 input against $3 output: $1.25 and $3.75.
    assert (rows["same-day"]["cost_per_1m_input"], rows["same-day"]["cost_per_1m_output"]) == (
        Decimal("1.25"), Decimal("3.75"))  # fmt: skip
    # Two days: each call's own split, all input ($2.00) and all output ($3.00).
    assert (rows["two-days"]["cost_per_1m_input"], rows["two-days"]["cost_per_1m_output"]) == (
        Decimal(2), Decimal(3))  # fmt: skip
    # What does not depend on the split is the same either way.
    for team in ("same-day", "two-days"):
        assert (rows[team]["requests"], rows[team]["cost"], rows[team]["cost_per_1m_tokens"]) == (
            2, Decimal("5.00"), Decimal("2.5"))  # fmt: skip
