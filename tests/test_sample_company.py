"""The sample company: deterministic FOCUS files whose ground truth matches what the files say.

Every figure in the ground truth is recomputed here from the files themselves (read with
DuckDB, summed as DECIMAL) or from finops.toml, never taken from the generator's frames.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from finops import sample_company
from finops.config import UNALLOCATED, load_config

REPO = Path(__file__).resolve().parents[1]
MONTHS = [f"{y}-{m:02d}" for y, m in [(2025, m) for m in range(4, 13)] + [(2026, m) for m in range(1, 10)]]
FOCUS_1_2_ONLY = ("ServiceSubcategory", "InvoiceId", "SkuMeter", "BillingAccountType", "SubAccountType")


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> sample_company.SampleCompany:
    return sample_company.generate(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def truth(company) -> dict:
    return company.ground_truth()


def _scan(path: Path | list[Path]) -> str:
    """A DuckDB table function reading generated files as the provider wrote them (CSV as text)."""
    paths = path if isinstance(path, list) else [path]
    listed = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
    if paths[0].suffix == ".parquet":
        return f"read_parquet({listed}, hive_partitioning = false, filename = true)"
    return f"read_csv({listed}, header = true, all_varchar = true, hive_partitioning = false, filename = true)"


def _final_files(company) -> dict[str, list[Path]]:
    """Files per provider as finally billed: AWS 2026-08's restatement instead of its first delivery."""
    by_provider: dict[str, list[Path]] = defaultdict(list)
    for delivery, provider in zip(company.deliveries[:-1], sample_company.PROVIDERS, strict=True):
        for path in delivery.files:
            if provider == "aws" and "billing_period=2026-08" in str(path):
                continue
            by_provider[provider].append(path)
    by_provider["aws"] += company.deliveries[-1].files
    return by_provider


@pytest.fixture(scope="module")
def con(company):
    """In-memory DuckDB with one table per provider (``rows_aws`` …) holding its finally-billed files."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for provider, paths in _final_files(company).items():
        connection.execute(f"CREATE TABLE rows_{provider} AS SELECT * FROM {_scan(paths)}")
    yield connection
    connection.close()


def _all_rows(con, columns: str) -> pl.DataFrame:
    """``columns`` (SQL over a provider's table) of every finally-billed row, with the provider key."""
    return con.execute(
        " UNION ALL ".join(f"SELECT '{p}' AS provider, {columns} FROM rows_{p}" for p in sample_company.PROVIDERS)
    ).pl()


# -- determinism ------------------------------------------------------------------------


def _content(company) -> dict[str, object]:
    """Each file's data: Parquet as a frame, CSV as text (decompressed), keyed by relative path."""
    out: dict[str, object] = {}
    for delivery in company.deliveries:
        for path in delivery.files:
            key = str(path.relative_to(company.out_dir))
            if path.suffix == ".parquet":
                out[key] = pl.read_parquet(path)
            elif path.name.endswith(".gz"):
                out[key] = gzip.decompress(path.read_bytes()).decode()
            else:
                out[key] = path.read_text()
    return out


def test_same_seed_gives_the_same_data_and_clears_stale_files(company, tmp_path_factory):
    again_dir = tmp_path_factory.mktemp("again")
    stale = again_dir / "focus" / "aws" / "billing_period=2020-01" / "part-0.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")
    again = sample_company.generate(again_dir)

    assert not stale.exists()
    first, second = _content(company), _content(again)
    assert first.keys() == second.keys()
    for key, value in first.items():
        other = second[key]
        assert value.equals(other) if isinstance(value, pl.DataFrame) else value == other, key
    files = sorted(p.relative_to(again_dir) for p in (again_dir / "focus").rglob("*") if p.is_file())
    assert files == sorted(Path(k) for k in first)
    assert again.ground_truth() == company.ground_truth()


def test_another_seed_gives_other_figures(truth, tmp_path_factory):
    other = sample_company.generate(tmp_path_factory.mktemp("other"), seed=7).ground_truth()
    assert other["seed"] == 7
    assert other["billing_periods"] == truth["billing_periods"]
    assert other["monthly_totals"] != truth["monthly_totals"]


# -- shape of the files -----------------------------------------------------------------


def test_deliveries_cover_every_provider_and_month_with_the_restatement_last(company):
    labels = [d.label for d in company.deliveries]
    assert len(labels) == len(sample_company.PROVIDERS) + 1
    for delivery in company.deliveries[:-1]:
        months = sorted(p.parent.name.removeprefix("billing_period=") for p in delivery.files)
        assert months == MONTHS, delivery.label
    restated = company.deliveries[-1]
    assert "restated" in restated.label
    assert [p.parent.name for p in restated.files] == ["billing_period=2026-08"]
    assert restated.files[0] != company.deliveries[0].files[MONTHS.index("2026-08")]


def test_every_file_is_readable_focus_of_its_version(company, con):
    expected_format = {"aws": ".parquet", "gcp": ".gz", "azure": ".csv", "openai": ".csv", "anthropic": ".csv"}
    for provider, paths in _final_files(company).items():
        assert {p.suffix for p in paths} == {expected_format[provider]}
        columns = {row[0] for row in con.execute(f"DESCRIBE rows_{provider}").fetchall()}
        assert set(sample_company.FOCUS_1_0) <= columns, provider
        if provider == "gcp":  # FOCUS 1.0: none of the 1.1+ columns
            assert not columns & set(FOCUS_1_2_ONLY)
        else:
            assert set(FOCUS_1_2_ONLY) <= columns, provider
        if provider in ("openai", "anthropic"):
            assert {"ProviderName", "ServiceProviderName", "HostProviderName"} <= columns
        if provider == "azure":
            assert "x_SkuMeterCategory" in columns
        per_file = dict(con.execute(f"SELECT filename, count(*) FROM rows_{provider} GROUP BY ALL").fetchall())
        assert sorted(per_file) == sorted(str(p) for p in paths)
        assert min(per_file.values()) > 0
    # The first delivery of AWS 2026-08 reads too.
    original = company.deliveries[0].files[MONTHS.index("2026-08")]
    assert con.execute(f"SELECT count(*) FROM {_scan(original)}").fetchone()[0] > 0


def test_dates_are_the_fixed_range_and_periods_are_consistent(con, truth):
    rows = _all_rows(
        con,
        "CAST(BillingPeriodStart AS TIMESTAMPTZ) AS bps, CAST(BillingPeriodEnd AS TIMESTAMPTZ) AS bpe,"
        " CAST(ChargePeriodStart AS TIMESTAMPTZ) AS cps, CAST(ChargePeriodEnd AS TIMESTAMPTZ) AS cpe,"
        " CAST(ChargePeriodStart AS VARCHAR) AS cps_text",
    )
    assert rows["cps"].min().replace(tzinfo=None) == datetime(2025, 4, 1)
    assert rows["cpe"].max().replace(tzinfo=None) == datetime(2026, 10, 1)
    assert rows.filter(pl.col("bpe") != pl.col("bps").dt.offset_by("1mo")).is_empty()
    assert rows.filter((pl.col("cps") < pl.col("bps")) | (pl.col("cpe") > pl.col("bpe"))).is_empty()
    assert rows.filter(pl.col("cpe") <= pl.col("cps")).is_empty()
    # CSV timestamps are ISO 8601 UTC with a Z
    csv_text = rows.filter(pl.col("provider") != "aws")["cps_text"]
    assert csv_text.str.contains(r"^\d{4}-\d\d-\d\dT00:00:00Z$").all()
    periods = sorted(rows["bps"].dt.strftime("%Y-%m").unique().to_list())
    assert periods == MONTHS == truth["billing_periods"]
    assert truth["start"] == "2025-04-01" and truth["end"] == "2026-09-30"


def test_size_is_modest(truth):
    assert 50_000 <= truth["rows"] <= 150_000


# -- ground truth recomputed from the files ----------------------------------------------

MONEY_SQL = "CAST(BilledCost AS DECIMAL(38, 10)) AS billed, CAST(EffectiveCost AS DECIMAL(38, 10)) AS effective"
PERIOD_SQL = "strftime(CAST(BillingPeriodStart AS TIMESTAMPTZ), '%Y-%m') AS month"


def test_monthly_totals_match_the_files(con, truth):
    sums = con.execute(
        "SELECT provider, month, count(*) AS n, sum(billed) AS billed, sum(effective) AS effective FROM ("
        + " UNION ALL ".join(f"SELECT '{p}' AS provider, {PERIOD_SQL}, {MONEY_SQL} FROM rows_{p}" for p in sample_company.PROVIDERS)
        + ") GROUP BY ALL"
    ).fetchall()
    assert len(sums) == len(MONTHS) * len(sample_company.PROVIDERS)
    for provider, month, n, billed, effective in sums:
        expected = truth["monthly_totals"][month][provider]
        assert Decimal(expected["billed_cost"]) == billed, (provider, month)
        assert Decimal(expected["effective_cost"]) == effective, (provider, month)
        assert expected["rows"] == n
    assert sum(r[2] for r in sums) == truth["rows"]


def test_restatement_changes_aws_2026_08_by_the_recorded_amounts(company, con, truth):
    original = company.deliveries[0].files[MONTHS.index("2026-08")]
    restated = company.deliveries[-1].files[0]
    record = truth["restatement"]
    for path, expected in ((original, record["original"]), (restated, record["restated"])):
        n, billed, effective = con.execute(
            f"SELECT count(*), sum(CAST(BilledCost AS DECIMAL(38, 10))), sum(CAST(EffectiveCost AS DECIMAL(38, 10)))"
            f" FROM {_scan(path)}"
        ).fetchone()
        assert (n, billed, effective) == (
            expected["rows"],
            Decimal(expected["billed_cost"]),
            Decimal(expected["effective_cost"]),
        )
    change = Decimal(record["restated"]["billed_cost"]) - Decimal(record["original"]["billed_cost"])
    assert change == Decimal(record["billed_cost_change"]) < 0
    assert sum(Decimal(c["billed_cost_change"]) for c in record["changes"]) == change
    # Rows only in the first delivery are the removed notebook; the credit only in the restatement.
    only_first = con.execute(
        f"SELECT DISTINCT ResourceId FROM {_scan(original)} WHERE ResourceId NOT IN"
        f" (SELECT ResourceId FROM {_scan(restated)} WHERE ResourceId IS NOT NULL)"
    ).fetchall()
    assert [r[0] for r in only_first] == record["changes"][1]["resource_ids"]
    credits = con.execute(f"SELECT sum(BilledCost) FROM {_scan(restated)} WHERE ChargeCategory = 'Credit'").fetchone()[0]
    assert credits == Decimal(record["changes"][2]["billed_cost_change"])
    assert con.execute(f"SELECT count(*) FROM {_scan(original)} WHERE ChargeCategory = 'Credit'").fetchone()[0] == 0


def _allocate_sql(config) -> str:
    """SQL (over SubAccountId and a lower-cased tag map `tags`) naming each row's department per finops.toml."""
    by_account = " ".join(f"WHEN SubAccountId = '{a}' THEN '{d}'" for a, d in config.sub_account_map().items())
    by_tag = " ".join(
        f"WHEN lower(tags['{key.lower()}']) = '{value}' THEN '{d}'"
        for key in config.tag_keys
        for value, d in config.tag_value_map().items()
    )
    return f"CASE {by_account} {by_tag} ELSE '{UNALLOCATED}' END"


def test_department_costs_follow_the_config(company, con, truth):
    config = load_config(company.config_path)
    lowered_tags = (
        "CASE WHEN Tags IS NULL OR Tags = '' THEN MAP {}::MAP(VARCHAR, VARCHAR) ELSE"
        " map_from_entries(list_transform(json_keys(Tags::JSON), k -> {'key': lower(k), 'value': Tags::JSON ->> k})) END"
    )
    rows = _all_rows(con, f"{PERIOD_SQL}, SubAccountId, {lowered_tags} AS tags, {MONEY_SQL}")
    con.register("sample_rows", rows.to_arrow())
    allocated = con.execute(
        f"SELECT month, {_allocate_sql(config)} AS department, sum(effective) AS effective, sum(billed) AS billed"
        " FROM sample_rows GROUP BY ALL"
    ).fetchall()
    con.unregister("sample_rows")
    found = {(m, d) for m, d, _, _ in allocated}
    expected = {(m, d) for m, by in truth["department_cost"].items() for d in by}
    assert found == expected
    for month, department, effective, billed in allocated:
        assert Decimal(truth["department_cost"][month][department]["effective_cost"]) == effective, (month, department)
        assert Decimal(truth["department_cost"][month][department]["billed_cost"]) == billed, (month, department)
    # Every department is charged something each month; Unallocated is exactly the untagged spend.
    for month in MONTHS:
        assert set(config.department_names) <= set(truth["department_cost"][month])
        assert truth["department_cost"][month][UNALLOCATED] == truth["untagged"]["monthly"][month]


def test_config_maps_every_department_account(company):
    repo_config = load_config(REPO / "finops.toml", required=True)
    generated = load_config(company.config_path, required=True)
    assert repo_config.departments == generated.departments
    assert (repo_config.company_name, repo_config.currency, repo_config.basis, repo_config.tag_keys) == (
        generated.company_name,
        generated.currency,
        generated.basis,
        generated.tag_keys,
    )
    assert len(repo_config.departments) == 6
    mapped = repo_config.sub_account_map()
    for sub in sample_company.SUB_ACCOUNTS.values():
        if sub.department is None:
            assert sub.id not in mapped  # shared accounts are allocated by tags
        else:
            assert mapped[sub.id] == sub.department
    assert all(d.sub_accounts or d.tag_values for d in repo_config.departments)


def test_untagged_rows_carry_no_department_tag(company, con, truth):
    untagged = truth["untagged"]
    config = load_config(company.config_path)
    ids = ", ".join(f"'{r}'" for r in untagged["resource_ids"])
    rows = _all_rows(con, f"{PERIOD_SQL}, SubAccountId, ResourceId, Tags, {MONEY_SQL}").filter(
        pl.col("ResourceId").is_in(untagged["resource_ids"])
    )
    assert ids and rows.height == untagged["total"]["rows"]
    assert rows["SubAccountId"].unique().to_list() == [untagged["sub_account_id"]]
    assert untagged["sub_account_id"] not in config.sub_account_map()
    tag_keys = {k.lower() for k in config.tag_keys}
    for tags in rows["Tags"].unique().to_list():
        assert not tag_keys & {k.lower() for k in json.loads(tags or "{}")}
    monthly = rows.group_by("month").agg(pl.col("effective").sum()).sort("month")
    for month, effective in monthly.iter_rows():
        assert Decimal(untagged["monthly"][month]["effective_cost"]) == effective
    assert untagged["department"] == "Marketing"
    # The truth knows the owner: Marketing's real spend is more than what chargeback shows it.
    q3 = ["2026-07", "2026-08", "2026-09"]
    owned = sum(Decimal(truth["owner_cost"][m]["Marketing"]["effective_cost"]) for m in q3)
    charged = sum(Decimal(truth["department_cost"][m]["Marketing"]["effective_cost"]) for m in q3)
    hidden = sum(Decimal(untagged["monthly"][m]["effective_cost"]) for m in q3)
    assert owned == charged + hidden


def test_workload_classes_add_up_and_inference_leads_in_2026q3(truth):
    for month in MONTHS:
        total = Decimal(0)
        for provider in sample_company.PROVIDERS:
            total += Decimal(truth["monthly_totals"][month][provider]["effective_cost"])
        by_workload = truth["workload_cost"][month]
        assert set(by_workload) <= set(sample_company.WORKLOADS)
        assert sum(Decimal(v["effective_cost"]) for v in by_workload.values()) == total
    q3 = ["2026-07", "2026-08", "2026-09"]
    ai = sum(Decimal(v["effective_cost"]) for m in q3 for w, v in truth["workload_cost"][m].items() if w != "non-AI")
    inference = sum(Decimal(truth["workload_cost"][m]["inference"]["effective_cost"]) for m in q3)
    share = inference / ai
    assert Decimal("0.55") <= share <= Decimal("0.85")
    assert Decimal(truth["headline"]["inference_share_of_ai_effective_cost"]) == share.quantize(Decimal("0.0001"))
    # Growth: 2026Q3 spends much more than 2025Q3, inference faster than training.
    q3_2025 = ["2025-07", "2025-08", "2025-09"]

    def spend(months, workload):
        return sum(Decimal(truth["workload_cost"][m][workload]["effective_cost"]) for m in months)

    assert spend(q3, "inference") / spend(q3_2025, "inference") > spend(q3, "training") / spend(q3_2025, "training") > 1


def test_monthly_spend_is_realistic(truth):
    totals = [
        sum(Decimal(v["effective_cost"]) for v in truth["monthly_totals"][m].values()) for m in MONTHS
    ]
    assert Decimal(130_000) < totals[0] < Decimal(250_000)
    assert Decimal(300_000) < totals[-1] < Decimal(450_000)


def test_planted_anomaly_is_where_the_truth_says(con, truth):
    [first, second] = truth["anomalies"]
    meters = ", ".join(f"'{m}'" for m in first["skus"])
    daily = dict(
        con.execute(
            "SELECT CAST(ChargePeriodStart AS DATE)::VARCHAR, sum(CAST(EffectiveCost AS DECIMAL(38, 10))) FROM rows_azure"
            f" WHERE ChargePeriodStart LIKE '2026-08-%' AND SubAccountId = '{first['sub_account_id']}' AND SkuMeter IN ({meters}) GROUP BY ALL"
        ).fetchall()
    )
    for anomaly in (first, second):
        assert anomaly["department"] == "Customer Support" and anomaly["provider"] == "azure"
        actual = daily[anomaly["date"]]
        assert actual == Decimal(anomaly["actual_cost"])
        assert Decimal(anomaly["impact"]) == actual - Decimal(anomaly["expected_cost"])
        assert actual > 4 * Decimal(anomaly["expected_cost"])
    # The expected cost is an ordinary weekday: close to the other weekdays of early August.
    normal = [v for d, v in daily.items() if "2026-08-03" <= d <= "2026-08-11" and datetime.fromisoformat(d).weekday() < 5]
    typical = sorted(normal)[len(normal) // 2]
    assert abs(Decimal(first["expected_cost"]) - typical) < typical * Decimal("0.35")


def test_focus_cost_columns_are_consistent(con):
    rows = _all_rows(
        con,
        "ChargeCategory, CommitmentDiscountId, CAST(BilledCost AS DECIMAL(38, 10)) AS billed,"
        " CAST(EffectiveCost AS DECIMAL(38, 10)) AS effective, CAST(ListCost AS DECIMAL(38, 10)) AS list,"
        " CAST(ContractedCost AS DECIMAL(38, 10)) AS contracted, CAST(ListUnitPrice AS DECIMAL(38, 10)) AS list_price,"
        " CAST(PricingQuantity AS DECIMAL(38, 10)) AS qty, BillingCurrency, Tags",
    )
    usage = rows.filter(pl.col("ChargeCategory") == "Usage")
    assert rows["BillingCurrency"].unique().to_list() == ["USD"]
    assert set(rows["ChargeCategory"].unique()) == {"Usage", "Purchase", "Tax", "Credit"}
    assert usage.filter(pl.col("list") < pl.col("contracted")).is_empty()
    assert usage.filter((pl.col("list_price") * pl.col("qty") - pl.col("list")).abs() > Decimal("0.000001")).is_empty()
    covered = usage.filter(pl.col("CommitmentDiscountId").is_not_null())
    assert covered.height > 0
    assert covered.filter((pl.col("billed") != 0) | (pl.col("effective") >= pl.col("list"))).is_empty()
    fees = rows.filter(pl.col("ChargeCategory") == "Purchase")
    assert fees.height > 0 and fees.filter((pl.col("effective") < 0) | (pl.col("effective") >= pl.col("billed"))).is_empty()
    # The Savings Plan is amortized exactly: over all rows, billed and effective totals agree.
    aws = rows.filter(pl.col("provider") == "aws")
    assert aws["billed"].sum() == aws["effective"].sum()
    assert rows.filter(pl.col("Tags").is_null()).is_empty()


# -- the FOCUS connector, if present ---------------------------------------------------------


def test_restated_month_replaces_the_original_in_the_warehouse(company, truth, tmp_path):
    focus = pytest.importorskip("connectors.focus")
    from finops.warehouse import Warehouse

    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout=5)
    original = company.deliveries[0].files[MONTHS.index("2026-08")]
    focus.ingest(wh, [original])
    focus.ingest(wh, company.deliveries[-1].files)
    n, billed, effective = wh.query(
        "SELECT count(*) AS n, sum(BilledCost) AS b, sum(EffectiveCost) AS e FROM charges"
    ).row(0)
    expected = truth["monthly_totals"]["2026-08"]["aws"]
    assert (n, billed, effective) == (expected["rows"], Decimal(expected["billed_cost"]), Decimal(expected["effective_cost"]))
