"""The bill analyses read the daily rollup, count line items, and read the line items when a rule needs the resource."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connectors import focus
from finops.analyses.spend import monthly_bill, quarter_summary_expr, workload_split
from finops.analyses.tables import charges_table
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
