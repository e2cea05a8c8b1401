"""The same analyses on both engines: DuckDB over the warehouse file, Spark (local mode) over its Parquet export.

Spark runs through pyspark's Spark Connect in local mode (``spark_remote = "local[2]"``), the
way a cluster at ``sc://host:15002`` would run it. Every figure the quarterly review shows must
be the same on both, exactly: DECIMAL money to the last digit, counts, dates; floats (shares,
ratios) to 1e-9 relative.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from finops.analyses import (
    anomalies,
    budgets,
    chargeback,
    forecast,
    reconcile,
    spend,
    unit_economics,
    usage,
    whatif,
)
from finops.config import SparkTable, load_config, parse_config
from finops.exceptions import ConfigError, EngineError, WarehouseError
from finops.periods import Quarter
from finops.warehouse import Warehouse
from finops.warehouse.engine import SparkWarehouse, open_engine
from finops.warehouse.export import EXPORTED_TABLES, export_parquet, read_manifest

Q3 = Quarter.parse("2026Q3")
REMOTE = "local[2]"

# `make test` installs Java 17 (Debian's openjdk-17-jre-headless); without it Spark cannot start here.
pytestmark = pytest.mark.skipif(
    not (os.environ.get("JAVA_HOME") or shutil.which("java")), reason="Spark's local mode needs Java 17"
)


@pytest.fixture(scope="module")
def exported(sample_build, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "finops-export"
    export_parquet(Warehouse(sample_build.warehouse), out)
    return out


@pytest.fixture(scope="module")
def duck(sample_build) -> Warehouse:
    return Warehouse(sample_build.warehouse)


@pytest.fixture(scope="module")
def spark(exported) -> SparkWarehouse:
    return SparkWarehouse(exported, remote=REMOTE)


@pytest.fixture(scope="module")
def config(sample_build):
    return load_config(sample_build.config)


def assert_same(duck_frame: pl.DataFrame, spark_frame: pl.DataFrame) -> None:
    """Equal frames: same columns, dtypes and rows in order; DECIMALs exact, floats to 1e-9."""
    assert duck_frame.height > 0, "the comparison would prove nothing on an empty result"
    assert_frame_equal(duck_frame, spark_frame, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
    for name, dtype in duck_frame.schema.items():
        if isinstance(dtype, pl.Decimal) or dtype in (pl.String, pl.Date, pl.Int64):
            assert duck_frame[name].equals(spark_frame[name]), name


# -- the export ---------------------------------------------------------------------------------


def test_export_holds_every_row_and_cent_partitioned_by_source_and_month(duck, exported):
    manifest = read_manifest(exported)
    assert set(manifest["tables"]) == set(EXPORTED_TABLES)
    with duck.reader() as con:
        for table in EXPORTED_TABLES:
            rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            parquet = f"read_parquet('{exported}/{table}/**/*.parquet', hive_partitioning = true)"
            assert con.execute(f"SELECT count(*) FROM {parquet}").fetchone()[0] == rows, table
            assert manifest["tables"][table]["rows"] == rows
        bill = con.execute(
            "SELECT x_Source, strftime(BillingPeriodStart, '%Y-%m') AS m, sum(BilledCost), sum(EffectiveCost), count(*)"
            " FROM charges GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        exported_bill = con.execute(
            f"SELECT x_Source, billing_month, sum(BilledCost), sum(EffectiveCost), count(*)"
            f" FROM read_parquet('{exported}/charges/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        requests = con.execute(
            "SELECT strftime(period_start, '%Y-%m'), sum(cost), sum(input_tokens), count(*) FROM llm_requests"
            " GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    # Hive partition values come back as text; the money comes back as DECIMAL, to the last digit.
    assert [(str(s), str(m), b, e, n) for s, m, b, e, n in exported_bill] == bill
    assert all(isinstance(row[2], Decimal) for row in exported_bill)
    folders = sorted(p.relative_to(exported / "charges").as_posix() for p in (exported / "charges").glob("*/*"))
    assert folders == sorted(f"x_Source={s}/billing_month={m}" for s, m, *_ in bill)
    assert manifest["tables"]["charges"]["partitions"] == len(bill)
    months = sorted(p.name for p in (exported / "llm_requests").iterdir())
    assert months == [f"month={m}" for m, *_ in requests]


def test_export_replaces_an_earlier_export_and_refuses_a_foreign_folder(duck, tmp_path):
    out = tmp_path / "export"
    export_parquet(duck, out, tables=["charges"])
    stale = out / "charges" / "x_Source=old" / "billing_month=2000-01"
    stale.mkdir(parents=True)
    (stale / "data_0.parquet").write_bytes(b"not parquet")
    written = export_parquet(duck, out, tables=["charges", "prices"])
    assert [t.table for t in written] == ["charges", "prices"]
    assert not stale.exists(), "an export replaces the whole folder, so no stale partition survives"
    assert sorted(p.name for p in out.iterdir()) == ["_finops_export.json", "charges", "prices"]
    assert not list(tmp_path.glob(".export.*")), "no staging folder is left behind"

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(WarehouseError, match="not a finops export"):
        export_parquet(duck, foreign)
    assert (foreign / "cat.jpg").read_bytes() == b"meow"
    with pytest.raises(WarehouseError, match="cannot export nonsense"):
        export_parquet(duck, tmp_path / "x", tables=["nonsense"])


# -- the same figures on both engines --------------------------------------------------------


def _months_of(quarter: Quarter) -> list[str]:
    return [f"{quarter.start.year}-{m:02d}" for m in range(quarter.start.month, quarter.start.month + 3)]


def test_chargeback_on_spark_equals_duckdb_and_the_bill_every_month(duck, spark, config):
    for basis in ("effective", "billed"):
        on_duck = chargeback.chargeback(duck, config, Q3, basis=basis)
        on_spark = chargeback.chargeback(spark, config, Q3, basis=basis)
        assert_same(on_duck, on_spark)
        column = "EffectiveCost" if basis == "effective" else "BilledCost"
        bill = spend.monthly_bill(spark, Q3.start, Q3.end)
        with duck.reader() as con:
            invoices = dict(
                con.execute(
                    f"SELECT strftime(BillingPeriodStart, '%Y-%m'), round(sum({column}), 2) FROM charges"
                    " WHERE BillingPeriodStart >= ? AND BillingPeriodStart < ? GROUP BY 1",
                    [Q3.start, Q3.end],
                ).fetchall()
            )
        totals = dict(on_spark.group_by("month").agg(pl.col("total_cost").sum()).iter_rows())
        assert sorted(totals) == _months_of(Q3)
        assert totals == invoices, f"{basis}: chargeback per month must equal the bill to the cent"
        assert bill.height > 0
    assert_same(chargeback.allocations(duck, config, Q3), chargeback.allocations(spark, config, Q3))
    assert_same(chargeback.reconciliation(duck, config, Q3), chargeback.reconciliation(spark, config, Q3))


SPEND: dict[str, Callable[..., pl.DataFrame]] = {
    "by department": lambda wh, cfg: spend.spend_by_department(wh, cfg, Q3.start, Q3.end),
    "by department, AI only": lambda wh, cfg: spend.spend_by_department(wh, cfg, Q3.start, Q3.end, ai_only=True),
    "by provider and service": lambda wh, cfg: spend.spend_by_provider_service(wh, Q3.start, Q3.end, config=cfg),
    "workload split": lambda wh, cfg: spend.workload_split(wh, Q3.start, Q3.end, config=cfg),
    "daily by workload": lambda wh, cfg: spend.daily_spend(wh, Q3.start, Q3.end, config=cfg),
    "quarter summary": lambda wh, cfg: spend.quarter_summary(wh, cfg, Q3),
    "top departments": lambda wh, cfg: spend.top_departments(wh, cfg, Q3),
    "monthly bill": lambda wh, cfg: spend.monthly_bill(wh, date(2025, 4, 1), Q3.end),
    "classification coverage": lambda wh, cfg: spend.classification_coverage(wh, cfg, Q3.start, Q3.end),
    "data freshness": lambda wh, cfg: spend.data_freshness(wh),
}


@pytest.mark.parametrize("name", SPEND)
def test_spend_views_on_spark_equal_duckdb(duck, spark, config, name):
    assert_same(SPEND[name](duck, config), SPEND[name](spark, config))


UNITS: dict[str, Callable[..., pl.DataFrame]] = {
    "per model": lambda wh, cfg: unit_economics.token_unit_costs(wh, Q3.start, Q3.end),
    "per department by month": lambda wh, cfg: unit_economics.token_unit_costs(
        wh, Q3.start, Q3.end, by="department", grain="month", config=cfg
    ),
    "per agent task": lambda wh, cfg: unit_economics.agent_task_unit_costs(wh, Q3.start, Q3.end),
    "task costs": lambda wh, cfg: usage.task_costs(wh, Q3.start, Q3.end),
    "agent costs": lambda wh, cfg: usage.agent_costs(wh, Q3.start, Q3.end),
    "gateway vs bill": lambda wh, cfg: reconcile.gateway_vs_bill(wh, Q3.start, Q3.end),
    "token usage (what-if input)": lambda wh, cfg: whatif.token_usage(wh, Q3.start, Q3.end),
    "savings": lambda wh, cfg: whatif.savings_opportunities(wh, cfg, Q3),
}


@pytest.mark.parametrize("name", UNITS)
def test_unit_costs_and_reconciliation_on_spark_equal_duckdb(duck, spark, config, name):
    assert_same(UNITS[name](duck, config), UNITS[name](spark, config))


def test_anomaly_and_forecast_inputs_on_spark_equal_duckdb(duck, spark, config):
    detail = {wh.engine: anomalies.daily_detail(wh, config, Q3.start, Q3.end) for wh in (duck, spark)}
    assert_same(detail["duckdb"], detail["spark"])
    assert_same(
        anomalies.cost_anomalies(duck, config, date(2026, 4, 1), Q3.end),
        anomalies.cost_anomalies(spark, config, date(2026, 4, 1), Q3.end),
    )
    assert_same(anomalies.agent_anomalies(duck, Q3.start, Q3.end), anomalies.agent_anomalies(spark, Q3.start, Q3.end))
    for by in ("department", "workload"):
        assert_same(
            forecast.spend_series(duck, config, date(2025, 4, 1), Q3.end, by=by),
            forecast.spend_series(spark, config, date(2025, 4, 1), Q3.end, by=by),
        )
    assert forecast.data_range(duck) == forecast.data_range(spark)
    assert_same(budgets.budget_status(duck, config, Q3), budgets.budget_status(spark, config, Q3))


# -- choosing the engine ----------------------------------------------------------------------


def test_engine_setting_in_finops_toml(sample_build, exported, tmp_path):
    text = Path(sample_build.config).read_text()
    assert 'engine = "duckdb"\n' in text
    spark_toml = tmp_path / "finops.toml"
    settings = f'engine = "spark"\nspark_remote = "{REMOTE}"\nspark_data = "{exported.name}"\n'
    spark_toml.write_text(text.replace('engine = "duckdb"\n', settings))
    shutil.copytree(exported, tmp_path / exported.name)
    chosen = open_engine(load_config(spark_toml))
    assert isinstance(chosen, SparkWarehouse)
    assert chosen.data == str((tmp_path / exported.name).resolve()), "relative to the config file's folder"
    assert isinstance(open_engine(load_config(spark_toml), sample_build.warehouse, engine="duckdb"), Warehouse)
    assert isinstance(open_engine(load_config(sample_build.config), sample_build.warehouse), Warehouse)

    with pytest.raises(ConfigError, match=r":1: engine: must be one of duckdb, spark, got 'sparc'"):
        parse_config('engine = "sparc"\n', Path("finops.toml"))
    with pytest.raises(ConfigError, match=r":2: spark_remote: expected a Spark Connect URL"):
        parse_config('engine = "spark"\nspark_remote = "spark://host:7077"\n', Path("finops.toml"))
    with pytest.raises(ConfigError, match=r"spark_tables.charges.format: must be one of parquet, delta"):
        parse_config('[spark_tables]\ncharges = { path = "s3a://b/c", format = "csv" }\n', Path("finops.toml"))


def test_a_table_named_in_spark_tables_is_read_without_the_exports_rollup_of_it(exported):
    own = SparkTable("charges", "s3a://lake/finops/charges", "delta")
    places = SparkWarehouse(exported, remote=REMOTE, tables=(own,)).locations()
    assert places["charges"] == own and "charges_daily" not in places  # the export's rollup sums other charges
    assert places["llm_requests_daily"].path == f"{exported}/llm_requests_daily"  # beside its own table
    assert "charges_daily" in SparkWarehouse(exported, remote=REMOTE).locations()


def test_spark_without_an_export_says_how_to_make_one(tmp_path, config):
    missing = SparkWarehouse(tmp_path / "nothing-here", remote=REMOTE)
    with pytest.raises(EngineError, match="no finops export at .*nothing-here") as caught:
        spend.monthly_bill(missing, Q3.start, Q3.end)
    assert "finops export parquet" in caught.value.hint


def test_cli_export_and_engine_option(sample_build, tmp_path):
    from finops.cli import cli

    runner = CliRunner()
    out = tmp_path / "export"
    result = runner.invoke(cli, ["export", "parquet", str(out), "--warehouse", str(sample_build.warehouse)])
    assert result.exit_code == 0, result.output
    assert "charges" in result.output and "llm_requests" in result.output
    manifest = json.loads((out / "_finops_export.json").read_text())
    with duckdb.connect(str(sample_build.warehouse), read_only=True) as con:
        assert manifest["tables"]["charges"]["rows"] == con.execute("SELECT count(*) FROM charges").fetchone()[0]

    spark_toml = tmp_path / "finops.toml"
    spark_toml.write_text(f'spark_remote = "{REMOTE}"\nspark_data = "{out}"\n' + Path(sample_build.config).read_text())
    base = ["chargeback", "--quarter", "2026Q3", "--format", "csv", "--config", str(spark_toml),
            "--warehouse", str(sample_build.warehouse)]  # fmt: skip
    on_duck = runner.invoke(cli, base)
    on_spark = runner.invoke(cli, [*base, "--engine", "spark"])
    assert on_duck.exit_code == 0 and on_spark.exit_code == 0, on_spark.output
    assert on_spark.output == on_duck.output
    assert "Customer Support" in on_spark.output


def test_quarterly_review_renders_with_engine_spark(sample_build, exported, duck, config, tmp_path):
    from finops.cli import cli
    from finops.reports import narrative

    spark_toml = tmp_path / "finops.toml"
    settings = f'engine = "spark"\nspark_remote = "{REMOTE}"\nspark_data = "{exported}"\n'
    spark_toml.write_text(Path(sample_build.config).read_text().replace('engine = "duckdb"\n', settings))
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        cli,
        ["report", "quarterly", "--quarter", "2026Q3", "--out", str(out), "--config", str(spark_toml),
         "--warehouse", str(sample_build.warehouse)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(spark)" in result.output
    html = (out / "quarterly-review-2026Q3.html").read_text(encoding="utf-8")
    # The figures the CFO reads are DuckDB's, to the cent: the headline and each department's charge.
    headline = narrative.total_ai_spend_line(spend.quarter_summary(duck, config, Q3), "USD")
    assert headline in html
    per_department = chargeback.chargeback(duck, config, Q3).group_by("department").agg(pl.col("total_cost").sum())
    for department, total in per_department.iter_rows():
        assert f"{total:,.2f}" in html, department
