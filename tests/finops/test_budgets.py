"""Budgets: run-out date on hand-made series, burn to date on a hand-made warehouse, the
config's validation with line numbers, and the sample company's budgets through the CLI."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import polars as pl
import pytest
from click.testing import CliRunner

from finops.analyses.budgets import _in_scope, budget_status, run_out_date
from finops.cli import cli
from finops.config import Budget, BudgetAlerts, parse_config
from finops.exceptions import AnalysisError, ConfigError
from finops.periods import Quarter
from finops.warehouse import Warehouse
from tests.finops.warehouse_rows import charge, insert_charges

# -- run_out_date on hand-made series ------------------------------------------------------------


def _days(amounts: list[str | float], start: date = date(2026, 7, 1)) -> pl.DataFrame:
    values = [Decimal(a) if isinstance(a, str) else a for a in amounts]
    return pl.DataFrame({"date": [start + timedelta(days=i) for i in range(len(values))], "amount": values})


def test_run_out_date_is_the_first_day_the_cumulative_spend_reaches_the_budget() -> None:
    # cumulative: 10, 30, 60, 100, 150 -> the budget of 100 is reached on the 4th day, exactly.
    days = _days(["10", "20", "30", "40", "50"])
    assert run_out_date(days, Decimal("100")) == date(2026, 7, 4)
    # One ten-billionth more is not reached until the 5th day: decimals are compared exactly.
    assert run_out_date(days, Decimal("100.0000000001")) == date(2026, 7, 5)
    assert run_out_date(days, Decimal("150.01")) is None
    assert run_out_date(days, Decimal("5")) == date(2026, 7, 1)


def test_run_out_date_sorts_by_date_and_reads_floats() -> None:
    days = _days([1.5, 2.5, 3.0]).reverse()  # 2026-07-03 first: the function sorts
    # cumulative in date order: 1.5, 4.0, 7.0
    assert run_out_date(days, 4.0) == date(2026, 7, 2)
    assert run_out_date(days, 7.5) is None
    assert run_out_date(days.clear(), 1) is None


# -- burn to date on a hand-made warehouse ------------------------------------------------------------

CONFIG_TEXT = """
[[departments]]
name = "Research"
sub_accounts = ["111111111111"]

[[departments]]
name = "Product"
sub_accounts = ["222222222222"]

[[budgets]]
department = "Research"
quarter = "2026Q3"
amount = "1000"

[[budgets]]
department = "Research"
quarter = "2026Q3"
provider = "Microsoft"
amount = 50

[[budgets]]
department = "Product"
quarter = "2026Q3"
amount = 90.5

[budget_alerts]
thresholds = [0.5, 1.0]
"""


@pytest.fixture(scope="module")
def small_wh(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """June 1 to July 10, 2026: Research on AWS every day, Research on Microsoft and Product some days."""
    wh = Warehouse(tmp_path_factory.mktemp("budgets") / "w.duckdb")
    rows = []
    for i in range(40):
        day = date(2026, 6, 1) + timedelta(days=i)
        rows.append(charge(cost=f"{10 + i % 7}.1234567891", day=day.isoformat(), SubAccountId="111111111111"))
    rows += [
        charge(cost="7.0000000001", day="2026-07-02", SubAccountId="111111111111", ProviderName="Microsoft"),
        charge(cost="8.25", day="2026-07-09", SubAccountId="111111111111", ProviderName="Microsoft"),
        charge(cost="99.99", day="2026-06-30", SubAccountId="222222222222"),  # June: not the quarter's
        charge(cost="45.25", day="2026-07-01", SubAccountId="222222222222"),
        charge(cost="0.01", day="2026-07-11", SubAccountId="222222222222"),  # after as_of
    ]
    insert_charges(wh, rows)
    return wh


def test_burn_to_date_is_the_exact_hand_sum(small_wh: Warehouse) -> None:
    config = parse_config(CONFIG_TEXT)
    status = budget_status(small_wh, config, Quarter(2026, 3), as_of=date(2026, 7, 10))
    assert status.height == 3
    rows = {(r["department"], r["provider"]): r for r in status.to_dicts()}
    # Research, July 1..10 (day index 30..39 from June 1): AWS 10 + i%7 .1234567891, plus Microsoft.
    aws = sum(Decimal(f"{10 + i % 7}.1234567891") for i in range(30, 40))
    microsoft = Decimal("7.0000000001") + Decimal("8.25")
    research = rows[("Research", None)]
    assert research["spent"] == aws + microsoft
    assert research["budget"] == Decimal("1000")
    assert research["burn_pct"] == pytest.approx(float((aws + microsoft) / 10))
    assert research["as_of"] == date(2026, 7, 10)
    # Scoped to Microsoft: only those two lines.
    assert rows[("Research", "Microsoft")]["spent"] == microsoft
    # Product: the July 1 line only (June is another quarter, July 11 is after as_of).
    product = rows[("Product", None)]
    assert product["spent"] == Decimal("45.25")
    assert product["budget"] == Decimal("90.5")
    # Alerts: 45.25 of 90.5 is exactly 50%: the 0.5 threshold is reached.
    assert product["alerts"].split("; ")[0] == "50% spent"
    # Microsoft 15.2500000001 of 50 is under 50%: no spent alert.
    assert "spent" not in rows[("Research", "Microsoft")]["alerts"]
    # Microsoft's history is nine days (July 2 to 10, zero-filled): too short for a weekly model,
    # so its mean, 15.2500000001 / 9 = 1.6944 a day, is forecast for the 82 days left:
    # 138.94, projected 15.25 + 138.94 = 154.19; cumulative spend passes 50 after 21 more days
    # at 1.69 (15.25 + 20 × 1.69 = 49.05, + 21 × 1.69 = 50.74): on July 31.
    scoped = rows[("Research", "Microsoft")]
    assert scoped["model_used"] == "HistoricAverage"
    assert scoped["projected"] == Decimal("154.19")
    assert scoped["run_out_date"] == date(2026, 7, 31)
    assert "forecast over budget" in scoped["alerts"]
    # The projection adds a non-negative forecast, ordered intervals, to the exact spend.
    for row in status.to_dicts():
        assert row["projected_lo_95"] <= row["projected_lo_80"] <= row["projected"]
        assert row["projected"] <= row["projected_hi_80"] <= row["projected_hi_95"]
        assert row["projected"] >= row["spent"].quantize(Decimal("0.01")) - Decimal("0.01")


def test_research_runs_out_where_spent_plus_forecast_crosses_the_budget(small_wh: Warehouse) -> None:
    config = parse_config(CONFIG_TEXT)
    status = budget_status(small_wh, config, Quarter(2026, 3), as_of=date(2026, 7, 10))
    research = status.filter(pl.col("department") == "Research", pl.col("provider").is_null()).row(0, named=True)
    # About 13.1 + 0.15 a day against 1000: spent ~147 by July 10, the rest forecast; it runs out
    # in the quarter (~76 days), and the projection is over budget.
    assert research["run_out_date"] is not None
    assert date(2026, 8, 1) < research["run_out_date"] < date(2026, 10, 1)
    assert "forecast over budget" in research["alerts"]


def test_a_quarter_without_budgets_says_which_quarters_have_them(small_wh: Warehouse) -> None:
    with pytest.raises(AnalysisError) as err:
        budget_status(small_wh, parse_config(CONFIG_TEXT), Quarter(2026, 4))
    assert "2026Q4" in str(err.value) and "2026Q3" in (err.value.hint or "")


# -- config ----------------------------------------------------------------------------------------


def test_budgets_parse_to_exact_amounts_and_alerts() -> None:
    config = parse_config(CONFIG_TEXT)
    assert config.budgets == (
        Budget("Research", "2026Q3", Decimal("1000"), line=10),
        Budget("Research", "2026Q3", Decimal("50"), provider="Microsoft", line=15),
        Budget("Product", "2026Q3", Decimal("90.5"), line=21),
    )
    assert config.budget_alerts == BudgetAlerts((Decimal("0.5"), Decimal("1.0")), True)
    assert parse_config("").budget_alerts == BudgetAlerts()


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (
            'department = "Reserch"\nquarter = "2026Q3"\namount = 1',
            "<config>:7: budgets[0].department: unknown department 'Reserch' (did you mean 'Research'?)",
        ),
        (
            'department = "Research"\nquarter = "2026-07"\namount = 1',
            "<config>:8: budgets[0].quarter: expected a quarter like \"2026Q3\", got '2026-07'",
        ),
        (
            'department = "Research"\nquarter = "2026Q3"\namount = -5',
            "<config>:9: budgets[0].amount: must be positive, got -5",
        ),
        (
            'department = "Research"\nquarter = "2026Q3"\namount = "lots"',
            "<config>:9: budgets[0].amount: not an amount: 'lots'",
        ),
        ('department = "Research"\nquarter = "2026Q3"', "<config>:6: budgets[0].amount: is required"),
        (
            'department = "Research"\nquarter = "2026Q3"\namount = 1\nvendor = "x"',
            "<config>:10: budgets[0].vendor: unknown key",
        ),
    ],
)
def test_budget_mistakes_are_reported_with_their_line(budget: str, message: str) -> None:
    text = f'[[departments]]\nname = "Research"\n\n[[departments]]\nname = "Product"\n[[budgets]]\n{budget}\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert str(err.value).startswith(message)


def test_duplicate_budget_and_bad_thresholds_are_reported() -> None:
    base = '[[departments]]\nname = "Research"\n'
    one = '[[budgets]]\ndepartment = "Research"\nquarter = "2026Q3"\namount = 1\n'
    with pytest.raises(
        ConfigError, match=r"<config>:7: budgets\[1\]: a budget for Research 2026Q3 with the same scope"
    ):
        parse_config(base + one + one)
    with pytest.raises(ConfigError, match=r"<config>:5: budget_alerts.thresholds: thresholds are fractions"):
        parse_config(base + "\n[budget_alerts]\nthresholds = [80, 100]\n")
    with pytest.raises(ConfigError, match=r"<config>:5: budget_alerts.forecast_over_budget: expected true or false"):
        parse_config(base + '\n[budget_alerts]\nforecast_over_budget = "yes"\n')


def test_the_sample_finops_toml_budgets_both_quarters(sample_build) -> None:
    from finops.config import load_config

    config = load_config(sample_build.config)
    quarters = {b.quarter for b in config.budgets}
    assert quarters == {"2026Q3", "2026Q4"}
    for quarter in quarters:
        assert {b.department for b in config.budgets if b.quarter == quarter and not b.provider} == set(
            config.department_names
        )


# -- the sample company through the CLI ---------------------------------------------------------------


def test_budgets_command_on_the_sample_company(sample_build) -> None:
    """2026Q3 in full: spent equals the ground truth's department totals; the mix of alerts."""
    args = ["budgets", "--quarter", "2026Q3", "--format", "json"]
    args += ["--warehouse", str(sample_build.warehouse), "--config", str(sample_build.config)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    by_scope = {(r["department"], r["provider"]): r for r in rows}
    print({k: (r["spent"], r["burn_pct"], r["alerts"]) for k, r in by_scope.items()})
    support = by_scope[("Customer Support", None)]
    assert "100% spent" in support["alerts"] and support["run_out_date"] is not None
    # A complete quarter projects what was spent, with no interval left.
    assert Decimal(support["projected"]) == Decimal(support["spent"]).quantize(Decimal("0.01"))
    assert by_scope[("Product", None)]["alerts"] == "80% spent"
    assert by_scope[("Sales & Finance", None)]["alerts"] == ""
    # Department budgets spend exactly what the ground truth says each department spent.
    truth = json.loads((sample_build.exports / "ground_truth.json").read_text(encoding="utf-8"))
    for (department, provider), row in by_scope.items():
        if provider is None:
            expected = sum(
                Decimal(truth["department_cost"][m][department]["effective_cost"])
                for m in ("2026-07", "2026-08", "2026-09")
            )
            assert Decimal(row["spent"]) == expected, department


def test_budgets_command_mid_quarter_forecasts_the_runaway_department_over(sample_build) -> None:
    args = ["budgets", "--quarter", "2026Q3", "--as-of", "2026-08-15", "--format", "csv"]
    args += ["--warehouse", str(sample_build.warehouse), "--config", str(sample_build.config)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    frame = pl.read_csv(result.output.encode(), infer_schema_length=0)
    print(frame.select("department", "provider", "spent", "projected", "run_out_date", "alerts"))
    support = frame.filter(pl.col("department") == "Customer Support", pl.col("provider").is_null()).row(0, named=True)
    assert support["alerts"] == "forecast over budget"
    assert date(2026, 8, 15) < date.fromisoformat(support["run_out_date"]) < date(2026, 10, 1)
    assert frame["as_of"].unique().to_list() == ["2026-08-15"]


def test_a_model_scope_reads_like_sql_like_whatever_the_characters():
    """One scan serves every budget; each takes its rows with the model pattern's LIKE meaning:
    ``*`` any text, ``_`` one character, every other character itself (regex signs included)."""
    models = ["gpt-4o-mini", "gpt-4o", "gpt 4o (eu)", "gpt-4", "claude.3", "claudex3"]
    rows = pl.DataFrame({"department": ["A"] * 6, "provider": ["openai"] * 6, "model": models})

    def scoped(pattern: str, provider: str | None = None) -> list[str]:
        budget = Budget("A", "2026Q3", Decimal(1), provider, pattern, 1)
        return rows.filter(_in_scope(budget))["model"].to_list()

    assert scoped("gpt-4o*") == ["gpt-4o-mini", "gpt-4o"]
    assert scoped("GPT 4O (EU)") == ["gpt 4o (eu)"]
    assert scoped("claude.3") == ["claude.3"]  # the dot is a dot, not any character
    assert scoped("gpt_4o") == ["gpt-4o"]
    assert scoped("gpt-4o*", provider="Anthropic") == []
