"""The analyses read the daily rollups, count line items and calls, and read the line items when a rule needs the resource."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connectors import focus
from finops.analyses.reconcile import gateway_vs_bill_expr
from finops.analyses.spend import monthly_bill, quarter_summary_expr, workload_split
from finops.analyses.tables import charges_table, request_calls, requests_table
from finops.analyses.unit_economics import requests_with_prices_expr, token_unit_costs_expr
from finops.analyses.usage import agent_costs_expr, task_costs_expr
from finops.config import parse_config
from finops.periods import Quarter
from finops.warehouse import Warehouse
from tests.focus_files import make_rows, write_csv

RESOURCE_RULE = '[[workload_rules]]\nid = "r3"\nworkload = "training"\nresource = "^res-3[^0-9]"\n'


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """July (900 lines) and August (200) of make_rows, loaded by the FOCUS connector."""
    tmp = tmp_path_factory.mktemp("tables")
    wh = Warehouse(tmp / "w.duckdb")
    july = write_csv(tmp / "july.csv", make_rows(900, period="2026-07"), "1.0")
    august = write_csv(tmp / "august.csv", make_rows(200, period="2026-08"), "1.0")
    focus.ingest(wh, [july.path, august.path])
    return wh, july.rows + august.rows


def test_the_rollup_is_read_unless_a_rule_matches_on_the_resource(loaded):
    wh, _ = loaded
    plain = parse_config("")
    by_resource = parse_config(RESOURCE_RULE)
    by_column = parse_config('[[shared_costs]]\nname = "p"\nsplit = "even"\ncolumns = { ResourceName = "gpu" }\n')
    with wh.ibis() as con:
        assert "x_LineItems" in charges_table(con, plain).columns
        assert "ResourceId" not in charges_table(con, plain).columns
        for config in (by_resource, by_column):
            assert {"ResourceId", "ResourceName", "x_LineItems"} <= set(charges_table(con, config).columns)
        assert charges_table(con, plain).count().to_pyarrow().as_py() == 420 + 200  # rows, not lines


def test_line_counts_and_totals_are_those_of_the_line_items(loaded):
    wh, rows = loaded
    config = parse_config("")
    with wh.ibis() as con:
        summary = (
            quarter_summary_expr(charges_table(con, config), config, Quarter(2026, 3)).to_polars().row(0, named=True)
        )
    assert summary["charge_rows"] == 1100
    assert summary["total_cost"] == sum(Decimal(r["EffectiveCost"]) for r in rows)
    bill = monthly_bill(wh, date(2026, 7, 1), date(2026, 9, 1))
    assert bill.select("rows").to_series().to_list() == [900, 200]
    assert bill["billed_cost"].sum() == sum(Decimal(r["BilledCost"]) for r in rows)


def test_a_rule_on_the_resource_classifies_each_line_item(loaded):
    wh, rows = loaded
    split = workload_split(wh, date(2026, 7, 1), date(2026, 9, 1), grain="quarter", config=parse_config(RESOURCE_RULE))
    # make_rows: no default rule says training; every line of resource res-3 is the user rule's
    # (a rule's resource text is "ResourceId | ResourceName").
    expected = sum(Decimal(r["EffectiveCost"]) for r in rows if r["ResourceId"] == "res-3")
    assert dict(split.select("workload", "cost").rows())["training"] == expected
    assert split["cost"].sum() == sum(Decimal(r["EffectiveCost"]) for r in rows)


@pytest.fixture(scope="module")
def calls(tmp_path_factory):
    """3,000 model calls over ten days: 3 teams, 40 tasks of 2 agents, 3 models (one unpriced), some without tokens."""
    wh = Warehouse(tmp_path_factory.mktemp("calls") / "w.duckdb")
    with wh.load("otel", "mem://") as batch:
        batch.stage(
            "calls",
            """
            SELECT 'otel' AS x_Source, 'otel' AS source, 'openai' AS provider,
                ['gpt-a', 'gpt-b', 'mystery'][1 + i % 3] AS model, ['t1', 't2', 't3'][1 + i % 5 % 3] AS team,
                'task-' || (i % 40) AS task_id, 'agent-' || (i % 40 % 2) AS agent_id, 'call-' || i AS request_id,
                TIMESTAMP '2026-07-01' + to_seconds(i * 287) AS period_start,
                TIMESTAMP '2026-07-01' + to_seconds(i * 287 + i % 7) AS period_end,
                CASE WHEN i % 11 = 0 THEN 0 ELSE 100 + i % 97 END AS input_tokens,
                CASE WHEN i % 11 = 0 THEN 0 ELSE 10 + i % 13 END AS output_tokens,
                CASE WHEN i % 3 = 2 THEN NULL ELSE (i % 50 + 1) / 1000 END::DECIMAL(38, 10) AS cost,
                CASE WHEN i % 3 = 2 THEN 'unpriced' WHEN i % 2 = 0 THEN 'reported' ELSE 'priced' END AS cost_source
            FROM range(3000) AS r(i)""",
        )
        batch.replace_partitions(
            "llm_requests", "SELECT * FROM calls", partition_by=("x_Source", "request_id"), rows_read=3000
        )
    return wh


def test_the_call_analyses_are_the_same_on_the_request_rollup_and_on_the_calls(calls):
    start, end = date(2026, 7, 1), date(2026, 7, 9)  # the calls run to 2026-07-10: a period inside them
    with calls.ibis() as con:
        rollup, each_call = requests_table(con), request_calls(con)
        # One row per day, model, team, task (and its agent), cost source and with/without tokens.
        groups = calls.query(
            "SELECT count(*) FROM (SELECT DISTINCT period_start::DATE, model, team, task_id, cost_source,"
            " input_tokens + output_tokens > 0 FROM llm_requests)"
        ).item()
        assert rollup.count().to_pyarrow().as_py() == groups < 3000
        for table in (rollup, each_call):  # every call, once
            assert table.aggregate(n=table.x_Calls.sum(), c=table.cost.sum()).to_polars().row(0) == (
                3000,
                sum(Decimal(i % 50 + 1) / 1000 for i in range(3000) if i % 3 != 2),
            )

        def unit_costs(t):
            priced = requests_with_prices_expr(t, con.table("prices"), start, end)
            priced = priced.mutate(provider=priced.provider_key, source=priced.x_Source)
            # The input/output split is made per row (see unit_economics), so it is left out here.
            frame = token_unit_costs_expr(priced, ("provider", "model", "team"), None).to_polars()
            return frame.drop("_input_cost", "_output_cost")

        for expr in (
            lambda t: task_costs_expr(t, start, end),
            lambda t: agent_costs_expr(t, start, end),
            lambda t: gateway_vs_bill_expr(t, con.table("charges"), start, end),
            unit_costs,
        ):
            on_rollup, on_calls = expr(rollup), expr(each_call)
            on_rollup = on_rollup.to_polars() if hasattr(on_rollup, "to_polars") else on_rollup
            on_calls = on_calls.to_polars() if hasattr(on_calls, "to_polars") else on_calls
            assert on_rollup.height > 0
            assert on_rollup.equals(on_calls)
