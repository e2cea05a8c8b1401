"""Department statements: one HTML per department through papermill, and an index that adds up.

Rendered once for two departments of the sample company (each statement is a notebook run).
The figures each page shows are compared with finops.analyses.chargeback's for the same quarter.
"""

from __future__ import annotations

import re
from decimal import Decimal

import polars as pl
import pytest

from finops.analyses import chargeback
from finops.config import load_config
from finops.exceptions import ReportError
from finops.periods import Quarter
from finops.reports import narrative
from finops.reports import render as report
from finops.warehouse import Warehouse

QUARTER = Quarter(2026, 3)
DEPARTMENTS = ["Marketing", "Customer Support"]


@pytest.fixture(scope="module")
def statements(sample_build, tmp_path_factory):
    out = tmp_path_factory.mktemp("statements")
    seen: list[tuple[str, int, int]] = []
    index = report.render_departments(
        QUARTER, warehouse=sample_build.warehouse, config=sample_build.config, out_dir=out,
        departments=DEPARTMENTS, progress=lambda name, done, total: seen.append((name, done, total)), jobs=2,
    )  # fmt: skip
    return index, seen


def test_one_statement_per_department_with_its_checked_total(statements, sample_build):
    index, seen = statements
    # Rendered two at a time: told as each is done, in whichever order they finish.
    assert sorted(name for name, _, _ in seen) == sorted(DEPARTMENTS)
    assert [(done, total) for _, done, total in seen] == [(1, 2), (2, 2)]
    wh, config = Warehouse(sample_build.warehouse), load_config(sample_build.config)
    for name, page in [("Marketing", "statement-2026Q3-marketing.html"), ("Customer Support", "statement-2026Q3-customer-support.html")]:
        html = (index.parent / page).read_text(encoding="utf-8")
        statement = chargeback.department_statement(wh, config, name, QUARTER)
        assert narrative.statement_total_line(statement) in html
        rows = chargeback.chargeback(wh, config, QUARTER).filter(pl.col("department") == name)
        assert statement.totals["total_cost"][0] == rows["total_cost"].sum()
        assert not re.search(r"""(src|href)=["']https?://""", html)  # opens offline
        assert html.count('class="finops-chart"') == 1  # the month chart, drawn by the inlined Vega


def test_the_index_links_the_statements_and_adds_up_to_the_bills(statements, sample_build):
    index, _ = statements
    html = index.read_text(encoding="utf-8")
    assert 'href="statement-2026Q3-marketing.html"' in html and 'href="statement-2026Q3-customer-support.html"' in html
    wh = Warehouse(sample_build.warehouse)
    bill = wh.query(
        "SELECT sum(EffectiveCost) AS bill FROM charges WHERE BillingPeriodStart >= '2026-07-01' AND BillingPeriodStart < '2026-10-01'"
    )["bill"][0]
    per_month = wh.query(
        "SELECT round(sum(EffectiveCost), 2) AS bill FROM charges"
        " WHERE BillingPeriodStart >= '2026-07-01' AND BillingPeriodStart < '2026-10-01' GROUP BY BillingPeriodStart"
    )["bill"]
    # The index's total is the sum of the three monthly bills, each rounded to the cent.
    total = sum(per_month, Decimal(0))
    assert abs(total - bill) < Decimal("0.03")
    assert f"Total (the bills)</td><td></td><td></td><td>{narrative.format_money(total)}" in html
    # Every department is listed, statement or not, and Unallocated too.
    for name in ["Product", "Research", "Data Platform", "Sales &amp; Finance", "Unallocated"]:
        assert f"<td>{name}</td>" in html


def test_an_unknown_department_is_refused_before_anything_runs(sample_build, tmp_path):
    with pytest.raises(ReportError, match=r"no department 'Legal'"):
        report.render_departments(QUARTER, warehouse=sample_build.warehouse, config=sample_build.config,
                                  out_dir=tmp_path, departments=["Legal"])  # fmt: skip
    assert not any(tmp_path.rglob("*.html"))


def test_a_statement_that_fails_in_a_worker_stops_the_run_and_publishes_no_index(sample_build, tmp_path):
    with pytest.raises(ReportError, match=r"department_statement.ipynb could not be run: .*no-such-kernel") as failed:
        report.render_departments(QUARTER, warehouse=sample_build.warehouse, config=sample_build.config,
                                  out_dir=tmp_path, departments=DEPARTMENTS, kernel_name="no-such-kernel", jobs=2)  # fmt: skip
    assert failed.value.hint and "kernelspec" in failed.value.hint  # the hint crossed the process boundary
    assert not (tmp_path / "statements-2026Q3" / "index.html").exists()
    assert not any(tmp_path.rglob("*.html"))
