"""The sample company: deterministic FOCUS files and native cloud exports whose ground truth matches what the files say.

Every figure in the ground truth is recomputed here from the files themselves (read with
DuckDB, summed as DECIMAL, native exports by their format's documented cost rules) or from
finops.toml, never taken from the generator's frames.
"""

from __future__ import annotations

import calendar
import gzip
import hashlib
import json
import re
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from finops.config import UNALLOCATED, load_config
from finops.demo import company as sample_company

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


def _native_digests(out_dir: Path) -> dict[str, str]:
    """sha256 of every native export file (data and manifests), keyed by path under ``out_dir``."""
    return {
        p.relative_to(out_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in ("aws", "gcp", "azure")
        for p in (out_dir / folder).rglob("*")
        if p.is_file()
    }


def test_same_seed_gives_the_same_data_and_clears_stale_files(company, tmp_path_factory):
    again_dir = tmp_path_factory.mktemp("again")
    stale = [
        again_dir / "focus" / "aws" / "billing_period=2020-01" / "part-0.parquet",
        again_dir / "aws" / "cur" / "larkspur-cur2" / "data" / "BILLING_PERIOD=2020-01" / "larkspur-cur2-00001.snappy.parquet",
        again_dir / "gcp" / "billing_export" / "202001" / "old.json.gz",
        again_dir / "azure" / "exports" / "larkspur-ea-actual-cost" / "20200101-20200131" / "run" / "manifest.json",
    ]
    for path in stale:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"stale")
    again = sample_company.generate(again_dir)

    assert not any(path.exists() for path in stale)
    # Native exports: byte for byte the same (Parquet, gzip and CSV alike), nothing more, nothing less.
    native = _native_digests(company.out_dir)
    assert len(native) > 100
    assert _native_digests(again_dir) == native
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
    # The repository's copy documents [[workload_rules]] in comments only: same (no) rules.
    assert repo_config.workload_rules == generated.workload_rules == ()
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


# -- native exports: the same spend as AWS, Google Cloud and Azure write it ------------------
#
# Each test reads the native files directly with DuckDB and applies the format's documented
# rule (FORMATS.md): CUR amortized cost by line item type, GCP cost + credits, Azure actual and
# amortized exports. The totals must equal the ground truth's monthly figures, which the
# generator computed from its own model, not from these files.

D6 = "DECIMAL(38, 6)"
D10 = "DECIMAL(38, 10)"
CUR_AMORTIZED = f"""CASE line_item_line_item_type
    WHEN 'SavingsPlanCoveredUsage' THEN CAST(savings_plan_savings_plan_effective_cost AS {D6})
    WHEN 'SavingsPlanRecurringFee' THEN CAST(savings_plan_total_commitment_to_date AS {D6}) - CAST(savings_plan_used_commitment AS {D6})
    WHEN 'SavingsPlanNegation' THEN 0
    WHEN 'SavingsPlanUpfrontFee' THEN 0
    WHEN 'DiscountedUsage' THEN CAST(reservation_effective_cost AS {D6})
    WHEN 'RIFee' THEN CAST(reservation_unused_amortized_upfront_fee_for_billing_period AS {D6}) + CAST(reservation_unused_recurring_fee AS {D6})
    ELSE CAST(line_item_unblended_cost AS {D6}) END"""
CUR_MONEY_COLUMNS = (
    "line_item_unblended_cost", "line_item_net_unblended_cost", "pricing_public_on_demand_cost",
    "savings_plan_savings_plan_effective_cost", "savings_plan_total_commitment_to_date", "savings_plan_used_commitment",
    "reservation_effective_cost", "reservation_unused_recurring_fee",
)  # fmt: skip


def _delivery(company, kind: str, index: int = 0) -> sample_company.Delivery:
    return [d for d in company.native_deliveries if d.kind == kind][index]


def _listed(paths: list[Path]) -> str:
    return "[" + ", ".join(f"'{p}'" for p in paths) + "]"


GCP_CREDITS = (
    "coalesce(list_sum(list_transform(CAST(json_extract(json, '$.credits[*].amount') AS VARCHAR[]),"
    f" a -> CAST(a AS {D10}))), 0)"
)
"""The sum of a GCP export row's credits, from the exported number text (0 when it has none)."""


def _cur(paths: list[Path]) -> str:
    return f"read_parquet({_listed(paths)}, hive_partitioning = false, filename = true)"


def test_native_deliveries_load_in_order_with_the_restatement_last(company, truth):
    native = company.native_deliveries
    assert [d.kind for d in native] == ["aws-cur", "gcp-export", "azure", "focus", "focus", "aws-cur"]
    original, final = native[0], native[-1]
    assert "first delivered" in original.label and "restated" in final.label
    assert original.root == company.out_dir / "aws" / "cur-2026-08-original" / "larkspur-cur2"
    assert final.root == company.out_dir / "aws" / "cur" / "larkspur-cur2"
    assert [p.parent.name for p in original.files] == ["BILLING_PERIOD=2026-08"]
    assert sorted(p.parent.name.removeprefix("BILLING_PERIOD=") for p in final.files) == MONTHS
    # OpenAI and Anthropic have no other export: their FOCUS deliveries are loaded as they are.
    assert native[3] is company.deliveries[3] and native[4] is company.deliveries[4]
    assert all(d.root is None for d in native[3:5])
    for delivery in native:
        assert delivery.files and all(p.is_file() and p.stat().st_size > 0 for p in delivery.files), delivery.label
        if delivery.root is not None:
            assert all(p.is_relative_to(delivery.root) for p in delivery.files), delivery.label
    recorded = truth["native_exports"]["load_order"]
    assert [(r["label"], r["kind"]) for r in recorded] == [(d.label, d.kind) for d in native]
    assert [r["root"] for r in recorded] == [d.root and d.root.relative_to(company.out_dir).as_posix() for d in native]


def test_aws_cur_reconciles_to_the_ground_truth_every_month(company, truth):
    final = _delivery(company, "aws-cur", 1)
    con = duckdb.connect()
    sums = con.execute(
        f"SELECT strftime(bill_billing_period_start_date, '%Y-%m') AS month, filename, count(*) AS n,"
        f" sum(CAST(line_item_unblended_cost AS {D6})) AS billed, sum({CUR_AMORTIZED}) AS effective,"
        " count(*) FILTER (line_item_line_item_type = 'SavingsPlanCoveredUsage') AS covered,"
        " count(*) FILTER (line_item_line_item_type = 'SavingsPlanNegation') AS negations,"
        " count(*) FILTER (line_item_line_item_type = 'RIFee') AS ri_fees"
        f" FROM {_cur(final.files)} GROUP BY ALL ORDER BY month"
    ).fetchall()
    assert [s[0] for s in sums] == MONTHS
    recorded = truth["native_exports"]["aws"]["monthly"]
    for month, filename, n, billed, effective, covered, negations, ri_fees in sums:
        expected = truth["monthly_totals"][month]["aws"]
        assert (billed, effective) == (Decimal(expected["billed_cost"]), Decimal(expected["effective_cost"])), month
        assert f"BILLING_PERIOD={month}" in filename
        # Every ground-truth row is one line; AWS adds a negation per covered line and an RI fee a month.
        assert covered == negations and ri_fees == 1
        assert n - negations - ri_fees == expected["rows"]
        assert n == recorded[month]["rows"]
        assert Decimal(recorded[month]["unblended_cost"]) == billed and Decimal(recorded[month]["amortized_cost"]) == effective
    lines, distinct_ids = con.execute(f"SELECT count(*), count(DISTINCT identity_line_item_id) FROM {_cur(final.files)}").fetchone()
    assert lines == distinct_ids == sum(s[2] for s in sums)
    covered_months = [s[0] for s in sums if s[5]]
    assert covered_months == MONTHS[MONTHS.index("2025-06"):]  # the Savings Plan starts 2025-06
    # Money is double, as AWS writes it: every value is the double nearest to a micro-dollar amount.
    drift = " + ".join(f"count(*) FILTER ({c} <> CAST(CAST({c} AS {D6}) AS DOUBLE))" for c in CUR_MONEY_COLUMNS)
    assert con.execute(f"SELECT {drift} FROM {_cur(final.files)}").fetchone()[0] == 0


def test_aws_commitments_follow_the_cur_rules(company):
    final = _delivery(company, "aws-cur", 1)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE cur AS SELECT * FROM {_cur(final.files)}")
    # Savings Plan: covered usage at on-demand cost, negated to zero; each day's fee records what it covered.
    net = con.execute(
        f"SELECT sum(CAST(line_item_unblended_cost AS {D6})) FROM cur"
        " WHERE line_item_line_item_type IN ('SavingsPlanCoveredUsage', 'SavingsPlanNegation')"
    ).fetchone()[0]
    assert net == 0
    days = con.execute(
        f"""SELECT f.day, f.total, f.used, coalesce(c.covered, 0) AS covered FROM
            (SELECT line_item_usage_start_date AS day, CAST(savings_plan_total_commitment_to_date AS {D6}) AS total,
                    CAST(savings_plan_used_commitment AS {D6}) AS used, CAST(line_item_unblended_cost AS {D6}) AS billed
             FROM cur WHERE line_item_line_item_type = 'SavingsPlanRecurringFee') f
            LEFT JOIN (SELECT line_item_usage_start_date AS day, sum(CAST(savings_plan_savings_plan_effective_cost AS {D6})) AS covered
             FROM cur WHERE line_item_line_item_type = 'SavingsPlanCoveredUsage' GROUP BY ALL) c USING (day)"""
    ).fetchall()
    assert len(days) == (datetime(2026, 10, 1) - datetime(2025, 6, 1)).days
    assert {total for _, total, _, _ in days} == {Decimal(28 * 24)}
    assert all(used == covered <= total for _, total, used, covered in days)
    assert any(used < total for _, total, used, _ in days)  # some days leave commitment unused: amortization matters
    # Reserved Instance: discounted hours cost nothing unblended; one fee a month bills exactly those hours.
    ri = con.execute(
        f"""SELECT month, fee, hours, effective, usage_billed, arns, tags FROM
            (SELECT strftime(line_item_usage_start_date, '%Y-%m') AS month, sum(CAST(line_item_unblended_cost AS {D6})) AS fee,
                    sum(line_item_usage_amount) AS hours, any_value(resource_tags) AS tags
             FROM cur WHERE line_item_line_item_type = 'RIFee' GROUP BY ALL)
            JOIN (SELECT strftime(line_item_usage_start_date, '%Y-%m') AS month, sum(CAST(reservation_effective_cost AS {D6})) AS effective,
                    sum(CAST(line_item_unblended_cost AS {D6})) AS usage_billed, list(DISTINCT reservation_reservation_a_r_n) AS arns
             FROM cur WHERE line_item_line_item_type = 'DiscountedUsage' GROUP BY ALL) USING (month) ORDER BY month"""
    ).fetchall()
    assert [r[0] for r in ri] == MONTHS
    for month, fee, hours, effective, usage_billed, arns, tags in ri:
        assert hours == calendar.monthrange(int(month[:4]), int(month[5:]))[1] * 24
        assert fee == effective == Decimal("0.24") * Decimal(int(hours)) and usage_billed == 0, month
        assert len(arns) == 1 and arns[0].endswith("-2024" if month < "2025-10" else "-2025")
        assert tags == {"user_Team": "Platform", "user_app": "llm-gateway"}
    # Tags keep the user's keys behind the CUR 2.0 "user_" prefix.
    keys = {k for (k,) in con.execute("SELECT DISTINCT unnest(map_keys(resource_tags)) FROM cur").fetchall()}
    assert keys and all(k.startswith("user_") for k in keys) and "user_cost-center" in keys


def _manifest_files(manifest: dict, root: Path) -> list[Path]:
    """A CUR manifest's data files as local paths: the key after s3://bucket/cur/larkspur-cur2/ under the export root."""
    prefix = "s3://larkspur-billing/cur/larkspur-cur2/"
    assert all(uri.startswith(prefix) for uri in manifest["dataFiles"])
    return [root / uri.removeprefix(prefix) for uri in manifest["dataFiles"]]


def test_aws_manifests_list_exactly_the_data_files(company):
    execution_ids = []
    for delivery in (d for d in company.native_deliveries if d.kind == "aws-cur"):
        root = delivery.root
        manifests = sorted((root / "metadata").glob("BILLING_PERIOD=*/larkspur-cur2-Manifest.json"))
        listed = []
        for path in manifests:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            month = path.parent.name.removeprefix("BILLING_PERIOD=")
            assert manifest["billingPeriod"]["start"].startswith(f"{month}-01T00:00:00")
            assert manifest["exportName"] == "larkspur-cur2" and manifest["bucket"] == "larkspur-billing"
            files = _manifest_files(manifest, root)
            assert all(f.parent.name == f"BILLING_PERIOD={month}" and f.is_file() for f in files)
            schema = duckdb.connect().execute(f"DESCRIBE SELECT * FROM read_parquet('{files[0]}', hive_partitioning = false)").fetchall()
            assert [c["name"] for c in manifest["columns"]] == [row[0] for row in schema]
            listed += files
            execution_ids.append(manifest["executionId"])
        assert sorted(listed) == sorted(delivery.files) == sorted((root / "data").rglob("*.parquet"))
    assert len(execution_ids) == len(set(execution_ids)) == len(MONTHS) + 1
    # The main tree is s3://larkspur-billing/ as delivered: a data file's key is its path under aws/.
    final = _delivery(company, "aws-cur", 1)
    manifest = json.loads((final.root / "metadata/BILLING_PERIOD=2026-08/larkspur-cur2-Manifest.json").read_text())
    key = manifest["dataFiles"][0].removeprefix("s3://larkspur-billing/")
    assert (company.out_dir / "aws" / key).is_file()


def test_aws_restatement_differs_from_the_first_delivery_by_the_recorded_changes(company, truth):
    original = _delivery(company, "aws-cur", 0).files
    restated = [p for p in _delivery(company, "aws-cur", 1).files if "BILLING_PERIOD=2026-08" in str(p)]
    record = truth["restatement"]
    con = duckdb.connect()
    columns = "* EXCLUDE (filename)"
    con.execute(f"CREATE TABLE original AS SELECT {columns} FROM {_cur(original)}")
    con.execute(f"CREATE TABLE restated AS SELECT {columns} FROM {_cur(restated)}")
    native = truth["native_exports"]["aws"]["restatement"]
    for table, expected in (("original", record["original"]), ("restated", record["restated"])):
        billed, effective, n = con.execute(
            f"SELECT sum(CAST(line_item_unblended_cost AS {D6})), sum({CUR_AMORTIZED}), count(*) FROM {table}"
        ).fetchone()
        assert (billed, effective) == (Decimal(expected["billed_cost"]), Decimal(expected["effective_cost"])), table
        assert n == native[table]["rows"]
    assert native["original"]["execution_id"] != native["restated"]["execution_id"]

    # Lines only in one delivery are exactly the recorded corrections.
    def only_in(a: str, b: str) -> pl.DataFrame:
        return con.execute(
            f"SELECT line_item_line_item_type AS type, line_item_resource_id AS resource, CAST(line_item_usage_start_date AS DATE) AS day,"
            f" CAST(line_item_unblended_cost AS {D6}) AS billed FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})"
        ).pl()

    removed, added = only_in("original", "restated"), only_in("restated", "original")
    doubled, orphan, credit, tax = record["changes"]
    first, last = (datetime.fromisoformat(d).date() for d in doubled["dates"])
    endpoint = pl.col("resource").is_in(doubled["resource_ids"]) & pl.col("day").is_between(first, last)
    assert removed.filter(~(endpoint | pl.col("resource").is_in(orphan["resource_ids"]) | (pl.col("type") == "Tax"))).is_empty()
    assert added.filter(~(endpoint | (pl.col("type").is_in(["Credit", "Tax"])))).is_empty()
    assert removed.filter(pl.col("resource").is_in(orphan["resource_ids"])).height == orphan["rows"]
    assert -removed.filter(pl.col("resource").is_in(orphan["resource_ids"]))["billed"].sum() == Decimal(orphan["billed_cost_change"])
    assert added.filter(endpoint)["billed"].sum() - removed.filter(endpoint)["billed"].sum() == Decimal(doubled["billed_cost_change"])
    assert added.filter(pl.col("type") == "Credit")["billed"].sum() == Decimal(credit["billed_cost_change"])
    tax_change = added.filter(pl.col("type") == "Tax")["billed"].sum() - removed.filter(pl.col("type") == "Tax")["billed"].sum()
    assert tax_change == Decimal(tax["billed_cost_change"])
    total = added["billed"].sum() - removed["billed"].sum()
    assert total == Decimal(record["billed_cost_change"]) == sum(Decimal(c["billed_cost_change"]) for c in record["changes"])


GCP_FIELDS = {
    "billing_account_id", "service", "sku", "usage_start_time", "usage_end_time", "project", "labels", "system_labels",
    "location", "resource", "export_time", "cost", "currency", "currency_conversion_rate", "usage", "credits", "invoice",
    "cost_type", "adjustment_info", "cost_at_list",
}  # fmt: skip


def test_gcp_export_reconciles_to_the_ground_truth_every_month(company, truth):
    export = _delivery(company, "gcp-export")
    assert sorted(p.parent.name for p in export.files) == [m.replace("-", "") for m in MONTHS]
    assert all(p.name.endswith(".json.gz") and p.is_relative_to(export.root) for p in export.files)
    con = duckdb.connect()
    # Money read as the exported text, cast to DECIMAL: cost + the credits riding on the row.
    con.execute(
        f"""CREATE TABLE gcp AS SELECT filename, json AS row,
              json_extract_string(json, '$.invoice.month') AS invoice_month,
              CAST(json_extract_string(json, '$.cost') AS {D10}) AS cost,
              {GCP_CREDITS} AS credits
            FROM read_ndjson_objects({_listed(export.files)}, filename = true)"""
    )
    sums = con.execute(
        "SELECT invoice_month, any_value(filename), count(*), sum(cost), sum(credits), sum(cost + credits) FROM gcp GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert [s[0] for s in sums] == [m.replace("-", "") for m in MONTHS]
    recorded = truth["native_exports"]["gcp"]["monthly"]
    for invoice_month, filename, n, cost, credits, net in sums:
        month = f"{invoice_month[:4]}-{invoice_month[4:]}"
        expected = truth["monthly_totals"][month]["gcp"]
        assert net == Decimal(expected["billed_cost"]) == Decimal(expected["effective_cost"]), month
        assert f"/{invoice_month}/" in filename
        has_credit = credits != 0
        assert n == expected["rows"] - (1 if has_credit else 0)  # the credit rides on usage rows instead of its own row
        assert (n, cost, credits) == (recorded[month]["rows"], Decimal(recorded[month]["cost"]), Decimal(recorded[month]["credits"]))
    assert [(s[0], s[4]) for s in sums if s[4]] == [("202507", Decimal("-3000"))]
    # Every row has the export's fields; times are BigQuery's UTC text; no credit exceeds its row's cost.
    rows = con.execute(
        "SELECT row, cost, credits FROM gcp"
    ).fetchall()
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    for row, cost, credits in rows:
        record = json.loads(row)
        assert set(record) == GCP_FIELDS
        assert stamp.match(record["usage_start_time"]) and stamp.match(record["export_time"])
        assert record["project"]["id"] in {s.id for s in sample_company.SUB_ACCOUNTS.values() if s.provider == "gcp"}
        assert 0 <= -credits <= cost
        assert all(c["type"] == "PROMOTION" and c["full_name"].startswith("Promotional credit") for c in record["credits"])


def _azure_csv(paths: list[Path]) -> str:
    return f"read_csv({_listed(paths)}, header = true, all_varchar = true, filename = true)"


AZURE_REQUIRED = (
    "BillingAccountId", "BillingAccountName", "BillingPeriodStartDate", "BillingPeriodEndDate", "SubscriptionId",
    "SubscriptionName", "Date", "ResourceId", "ResourceLocation", "MeterCategory", "MeterSubCategory", "MeterName", "MeterId",
    "ProductName", "Quantity", "UnitOfMeasure", "EffectivePrice", "UnitPrice", "PayGPrice", "CostInBillingCurrency",
    "BillingCurrencyCode", "ChargeType", "PricingModel", "ReservationId", "ReservationName", "BenefitId", "BenefitName",
    "Tags", "ConsumedService", "ResourceGroup", "PublisherType", "Frequency",
)  # fmt: skip


def test_azure_actual_and_amortized_exports_reconcile_to_billed_and_effective(company, truth):
    exports = _delivery(company, "azure")
    actual = [p for p in exports.files if "/larkspur-ea-actual-cost/" in p.as_posix()]
    amortized = [p for p in exports.files if "/larkspur-ea-amortized-cost/" in p.as_posix()]
    assert len(actual) == len(amortized) == len(MONTHS) and len(exports.files) == 2 * len(MONTHS)
    con = duckdb.connect()
    for name, paths in (("actual", actual), ("amortized", amortized)):
        con.execute(
            f"CREATE TABLE {name} AS SELECT *, strftime(strptime(BillingPeriodStartDate, '%m/%d/%Y'), '%Y-%m') AS month,"
            f" CAST(CostInBillingCurrency AS {D10}) AS cost FROM {_azure_csv(paths)}"
        )
    columns = [row[0] for row in con.execute("DESCRIBE actual").fetchall()]
    assert set(AZURE_REQUIRED) <= set(columns)
    recorded = truth["native_exports"]["azure"]["monthly"]
    for name, basis in (("actual", "billed_cost"), ("amortized", "effective_cost")):
        sums = con.execute(f"SELECT month, count(*), sum(cost) FROM {name} GROUP BY ALL ORDER BY month").fetchall()
        assert [s[0] for s in sums] == MONTHS
        for month, n, cost in sums:
            expected = truth["monthly_totals"][month]["azure"]
            assert cost == Decimal(expected[basis]), (name, month)
            assert n == expected["rows"] + (1 if name == "actual" else 0)  # the reservation's monthly purchase line
            assert (n, cost) == (recorded[month][name]["rows"], Decimal(recorded[month][name]["cost"]))
    # Lines differ where the reservation is: actual shows the purchase and covered usage at 0,
    # amortized shows the usage at the reservation's hourly price and no purchase.
    reservation = truth["native_exports"]["azure"]["reservation"]
    covered = f"ReservationId = '{reservation['reservation_id']}' AND ChargeType = 'Usage'"
    assert con.execute(f"SELECT count(*) FROM actual WHERE {covered} AND (cost <> 0 OR EffectivePrice <> '0')").fetchone()[0] == 0
    mispriced = f"cost <> CAST(Quantity AS {D10}) * CAST(EffectivePrice AS {D10})"
    assert con.execute(f"SELECT count(*) FROM amortized WHERE {covered} AND {mispriced}").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM amortized WHERE ChargeType = 'Purchase'").fetchone()[0] == 0
    by_month = con.execute(
        f"""SELECT p.month, p.cost, u.cost FROM (SELECT month, sum(cost) AS cost FROM actual WHERE ChargeType = 'Purchase' GROUP BY ALL) p
            JOIN (SELECT month, sum(cost) AS cost FROM amortized WHERE {covered} GROUP BY ALL) u USING (month) ORDER BY 1"""
    ).fetchall()
    assert [m for m, _, _ in by_month] == MONTHS
    assert all(purchase == usage > 0 for _, purchase, usage in by_month)
    assert con.execute(f"SELECT DISTINCT SubscriptionId FROM actual WHERE ChargeType = 'Purchase'").fetchall() == [
        (reservation["subscription_id"].removeprefix("/subscriptions/"),)
    ]
    # EA conventions: US dates, tags as JSON without the braces.
    assert con.execute(r"SELECT count(*) FROM actual WHERE NOT regexp_full_match(Date, '\d\d/\d\d/\d{4}')").fetchone()[0] == 0
    tags = [t for (t,) in con.execute("SELECT DISTINCT Tags FROM actual WHERE Tags IS NOT NULL").fetchall()]
    assert tags and all(not t.startswith("{") and json.loads("{" + t + "}") for t in tags)


def test_azure_manifests_name_every_blob_of_their_run(company):
    exports = _delivery(company, "azure")
    container = exports.root
    manifests = sorted(container.rglob("manifest.json"))
    assert len(manifests) == 2 * len(MONTHS)
    rows_by_file = dict(duckdb.connect().execute(f"SELECT filename, count(*) FROM {_azure_csv(exports.files)} GROUP BY ALL").fetchall())
    named = []
    for path in manifests:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        run = path.parent
        export_name, date_range, run_id = run.parts[-3:]
        assert manifest["exportConfig"]["exportName"] == export_name
        datasets = {"larkspur-ea-actual-cost": "ActualCost", "larkspur-ea-amortized-cost": "AmortizedCost"}
        assert manifest["exportConfig"]["type"] == datasets[export_name]
        assert manifest["runInfo"]["runId"] == run_id
        start, end = manifest["runInfo"]["startDate"][:10].replace("-", ""), manifest["runInfo"]["endDate"][:10].replace("-", "")
        assert date_range == f"{start}-{end}"
        assert manifest["blobCount"] == len(manifest["blobs"]) == 1
        for blob in manifest["blobs"]:
            data = container / blob["blobName"]
            assert data.parent == run and data.is_file()
            assert blob["byteCount"] == data.stat().st_size == manifest["byteCount"]
            assert blob["dataRowCount"] == rows_by_file[str(data)] == manifest["dataRowCount"]
            named.append(data)
    assert sorted(named) == sorted(exports.files) == sorted(container.rglob("*.csv"))


def test_native_exports_allocate_to_departments_as_the_ground_truth_says(company, truth):
    """The native files carry what chargeback needs: per month and department, billed and effective cost agree."""
    config = load_config(company.config_path)
    final_aws = _delivery(company, "aws-cur", 1).files
    gcp = _delivery(company, "gcp-export").files
    azure = _delivery(company, "azure").files
    actual = [p for p in azure if "/larkspur-ea-actual-cost/" in p.as_posix()]
    amortized = [p for p in azure if "/larkspur-ea-amortized-cost/" in p.as_posix()]
    focus = [p for d in company.native_deliveries if d.kind == "focus" for p in d.files]
    lower_map = "map_from_entries(list_transform(map_entries({m}), e -> {{'key': lower(e.key), 'value': e.value}}))"
    from_json = (
        "CASE WHEN ({t}) IS NULL OR ({t}) IN ('', '{{}}') THEN MAP {{}}::MAP(VARCHAR, VARCHAR) ELSE"
        " map_from_entries(list_transform(json_keys(({t})::JSON), k -> {{'key': lower(k), 'value': ({t})::JSON ->> k}})) END"
    )
    strip_user = "map_from_entries(list_transform(map_entries(resource_tags), e -> {'key': lower(e.key[6:]), 'value': e.value}))"
    con = duckdb.connect()
    rows = con.execute(
        f"""
        SELECT strftime(bill_billing_period_start_date, '%Y-%m') AS month, line_item_usage_account_id AS SubAccountId,
               {strip_user} AS tags, CAST(line_item_unblended_cost AS {D10}) AS billed, {CUR_AMORTIZED} AS effective
          FROM {_cur(final_aws)}
        UNION ALL
        SELECT json_extract_string(json, '$.invoice.month')[:4] || '-' || json_extract_string(json, '$.invoice.month')[5:],
               json_extract_string(json, '$.project.id'),
               {lower_map.format(m="map_from_entries(CAST(json_extract(json, '$.labels') AS STRUCT(key VARCHAR, value VARCHAR)[]))")},
               CAST(json_extract_string(json, '$.cost') AS {D10})
                 + {GCP_CREDITS} AS net,
               net
          FROM read_ndjson_objects({_listed(gcp)})
        UNION ALL
        SELECT strftime(strptime(BillingPeriodStartDate, '%m/%d/%Y'), '%Y-%m'), '/subscriptions/' || SubscriptionId,
               {from_json.format(t="'{' || Tags || '}'")}, CAST(CostInBillingCurrency AS {D10}), 0
          FROM {_azure_csv(actual)}
        UNION ALL
        SELECT strftime(strptime(BillingPeriodStartDate, '%m/%d/%Y'), '%Y-%m'), '/subscriptions/' || SubscriptionId,
               {from_json.format(t="'{' || Tags || '}'")}, 0, CAST(CostInBillingCurrency AS {D10})
          FROM {_azure_csv(amortized)}
        UNION ALL
        SELECT {PERIOD_SQL}, SubAccountId, {from_json.format(t="Tags")}, {MONEY_SQL}
          FROM {_scan(focus)}
        """
    ).pl()
    con.register("native_rows", rows.to_arrow())
    allocated = con.execute(
        f"SELECT month, {_allocate_sql(config)} AS department, sum(billed), sum(effective) FROM native_rows GROUP BY ALL"
    ).fetchall()
    expected = {(m, d): v for m, by in truth["department_cost"].items() for d, v in by.items()}
    assert {(m, d) for m, d, _, _ in allocated} == set(expected)
    for month, department, billed, effective in allocated:
        want = expected[(month, department)]
        assert (billed, effective) == (Decimal(want["billed_cost"]), Decimal(want["effective_cost"])), (month, department)
