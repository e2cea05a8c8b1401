"""Spend views over a small hand-made warehouse.

Each row below carries the department and workload a person assigned it by reading the
config and the rules; expected totals are summed from these rows in Python Decimal, never
taken from the functions under test.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

import ibis
import polars as pl
import pytest

from finops.analyses import spend
from finops.analyses.quarters import month_coverage_expr
from finops.config import UNALLOCATED, Config, parse_config
from finops.exceptions import AnalysisError
from finops.periods import Quarter
from finops.warehouse import Warehouse
from tests.finops.warehouse_rows import charge, insert_charges

CONFIG = parse_config(
    """
[allocation]
tag_keys = ["team", "CostCenter"]

[[departments]]
name = "Research"
sub_accounts = ["111111111111"]
tag_values = ["research"]

[[departments]]
name = "Product"
sub_accounts = ["AAAA1111-2222-3333-4444-555566667777"]
tag_values = ["product"]

[[departments]]
name = "Marketing"
tag_values = ["mkt"]
"""
)

SAGEMAKER = {"ProviderName": "AWS", "ServiceName": "Amazon SageMaker"}
BEDROCK = {"ProviderName": "AWS", "ServiceName": "Amazon Bedrock"}
EC2 = {"ProviderName": "AWS", "ServiceName": "Amazon Elastic Compute Cloud"}
S3 = {"ProviderName": "AWS", "ServiceName": "Amazon Simple Storage Service"}
VERTEX = {"ProviderName": "Google Cloud", "ServiceName": "Vertex AI"}
AOAI = {"ProviderName": "Microsoft", "ServiceName": "Azure OpenAI"}
AML = {"ProviderName": "Microsoft", "ServiceName": "Azure Machine Learning"}
OPENAI = {"ProviderName": "OpenAI", "ServiceName": "API"}

# (label, department, workload, charge)
ROWS: list[tuple[str, str, str, dict]] = [
    # 2026Q3, the quarter under review
    ("account beats tag", "Research", "training",
     charge(cost="100.10", billed="90.05", day="2026-07-05", SubAccountId="111111111111",
            SkuId="USE1-Train:ml.p4d.24xlarge", Tags={"team": "product"}, ListCost=Decimal("120"), **SAGEMAKER)),
    ("tag key in title case", "Product", "inference",
     charge(cost="50.0000000005", day="2026-07-05", SubAccountId="222", SkuId="USE1-Claude3.5Sonnet-input-tokens",
            Tags={"Team": "Product"}, ListCost=Decimal("60"), **BEDROCK)),
    ("tag key in upper case", "Marketing", "non-AI",
     charge(cost="20.00", day="2026-08-10", SubAccountId="222", SkuId="BoxUsage:m5.large", Tags={"TEAM": "mkt"},
            ListCost=Decimal("25"), **EC2)),
    ("second tag key", "Marketing", "training",
     charge(cost="10.01", day="2026-08-10", SubAccountId="222", ChargeDescription="Custom Training: A100 GPU",
            Tags={"costcenter": "MKT"}, **VERTEX)),
    ("untagged", UNALLOCATED, "inference",
     charge(cost="5.0000000001", day="2026-09-01", SubAccountId="333", SkuId="gpt-4o", **OPENAI)),
    ("first key's value unknown", "Research", "inference",
     charge(cost="7.25", day="2026-09-02", SubAccountId="222", SkuMeter="gpt 4o 0513 Input global Tokens",
            Tags={"team": "nomatch", "CostCenter": " Research "}, **AOAI)),
    ("azure subscription path", "Product", "inference",
     charge(cost="3.33", day="2026-09-30", SubAccountId="/subscriptions/aaaa1111-2222-3333-4444-555566667777",
            Tags={"azuremlendpoint": "chat"}, **AML)),
    ("charged in June, billed in July", "Research", "inference",
     charge(cost="2.00", day="2026-06-30", billing_month="2026-07-01", SubAccountId="111111111111",
            SkuId="USE1-Host:ml.g5.2xlarge", **SAGEMAKER)),
    ("credit on a gpu", "Marketing", "other AI",
     charge(cost="-1.50", day="2026-09-15", SubAccountId="222", SkuId="BoxUsage:p4d.24xlarge", Tags={"team": "mkt"},
            ChargeCategory="Credit", **EC2)),
    ("storage nobody claims", UNALLOCATED, "non-AI",
     charge(cost="4.00", day="2026-09-15", SubAccountId="444", SkuId="TimedStorage-ByteHrs", **S3)),
    # 2026Q2, the quarter before
    ("previous hosting", "Research", "inference",
     charge(cost="80.00", day="2026-05-10", SubAccountId="111111111111", SkuId="USE1-Host:ml.g5.2xlarge", **SAGEMAKER)),
    ("previous tokens", "Product", "inference",
     charge(cost="40.00", day="2026-06-10", SubAccountId="222", SkuId="USE1-Claude3Haiku-output-tokens",
            Tags={"team": "product"}, **BEDROCK)),
    ("previous ec2", UNALLOCATED, "non-AI",
     charge(cost="30.00", day="2026-04-10", SubAccountId="222", SkuId="BoxUsage:m5.large", **EC2)),
    # 2026Q1 (in no comparison) and 2025Q3 (a year before)
    ("old training", "Research", "training",
     charge(cost="999.00", day="2026-02-10", SubAccountId="111111111111", SkuId="USE1-Train:ml.p4d.24xlarge", **SAGEMAKER)),
    ("year-ago training", "Research", "training",
     charge(cost="50.00", day="2025-08-10", SubAccountId="111111111111", SkuId="USE1-Train:ml.p4d.24xlarge", **SAGEMAKER)),
]  # fmt: skip

Q3 = Quarter(2026, 3)


def rows_where(**conditions) -> list[tuple[str, str, str, dict]]:
    """Rows whose billing period falls in ``quarter`` and whose labels match the other conditions."""
    quarter = conditions.pop("quarter", None)
    ai = conditions.pop("ai", None)
    found = []
    for label, department, workload, row in ROWS:
        if quarter is not None and not (quarter.start <= row["BillingPeriodStart"].date() < quarter.end):
            continue
        if ai is not None and (workload != "non-AI") != ai:
            continue
        if "department" in conditions and department != conditions["department"]:
            continue
        if "workload" in conditions and workload != conditions["workload"]:
            continue
        found.append((label, department, workload, row))
    return found


def total(rows, column: str = "EffectiveCost") -> Decimal:
    return sum((row[column] for _, _, _, row in rows), Decimal(0))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    wh = Warehouse(tmp_path_factory.mktemp("spend") / "w.duckdb", lock_timeout=5)
    insert_charges(wh, [{**row, "ResourceName": label} for label, _, _, row in ROWS])
    return wh


def as_dict(frame: pl.DataFrame, keys: list[str], value: str = "cost") -> dict:
    return {tuple(r[k] for k in keys): r[value] for r in frame.to_dicts()}


# -- department assignment ------------------------------------------------------------------------


def test_each_row_gets_the_department_a_person_would_give_it(warehouse):
    with warehouse.ibis() as con:
        got = spend.with_department(con.table("charges"), CONFIG).select("ResourceName", "department").to_polars()
    assert dict(got.iter_rows()) == {label: department for label, department, _, _ in ROWS}


def test_department_is_decided_per_owner_and_every_row_keeps_its_own(tmp_path):
    """Departments are decided once per distinct sub account and tags, then joined back: a NULL
    account or tags, an empty map and many rows of one owner each still give one row per charge."""
    wh = Warehouse(tmp_path / "owners.duckdb", lock_timeout=5)
    owners = [
        ("no account, tagged", None, {"team": "mkt"}, "Marketing"),
        ("no account, no tags", None, None, UNALLOCATED),
        ("empty tags", "222", {}, UNALLOCATED),
        ("two cases of one key: the smallest value", "222", {"TEAM": " MKT ", "team": "product"}, "Marketing"),
        ("same keys, other value", "222", {"team": "product"}, "Product"),
        ("account", "111111111111", None, "Research"),
    ]
    rows = [charge(cost="1", ResourceName=label, SubAccountId=account, Tags=tags)
            for label, account, tags, _ in owners for _ in range(50)]  # fmt: skip
    insert_charges(wh, rows)
    with wh.ibis() as con:
        got = (
            spend.with_department(con.table("charges"), CONFIG)
            .group_by("ResourceName", "department")
            .aggregate(rows=ibis._.count(), cost=ibis._.EffectiveCost.sum())
        )
        got = got.to_polars()
    assert sorted(got.select("ResourceName", "department", "rows").iter_rows()) == sorted(
        (label, department, 50) for label, _, _, department in owners
    )
    assert got["cost"].sum() == Decimal(50 * len(owners))


def test_without_departments_everything_is_unallocated(warehouse):
    with warehouse.ibis() as con:
        got = spend.with_department(con.table("charges"), Config()).select("department").distinct().to_polars()
    assert got["department"].to_list() == [UNALLOCATED]


# -- monthly and daily views ----------------------------------------------------------------------


def test_spend_by_department_per_invoice_month(warehouse):
    got = spend.spend_by_department(warehouse, CONFIG, date(2026, 7, 1), date(2026, 10, 1))
    assert got.schema == pl.Schema({"period": pl.Date, "department": pl.String, "cost": pl.Decimal(38, 10)})
    expected: dict = defaultdict(Decimal)
    for _, department, _, row in rows_where(quarter=Q3):
        expected[(row["BillingPeriodStart"].date(), department)] += row["EffectiveCost"]
    assert as_dict(got, ["period", "department"]) == expected
    # The June charge billed in July is July's: monthly totals follow the invoice.
    assert got.filter(pl.col("period") == date(2026, 6, 1)).height == 0
    assert UNALLOCATED in got["department"].to_list()


def test_spend_by_department_ai_only_by_quarter(warehouse):
    got = spend.spend_by_department(
        warehouse, CONFIG, date(2026, 4, 1), date(2026, 10, 1), grain="quarter", ai_only=True
    )
    expected: dict = defaultdict(Decimal)
    for quarter in (Q3.previous(), Q3):
        for _, department, _, row in rows_where(quarter=quarter, ai=True):
            expected[(quarter.start, department)] += row["EffectiveCost"]
    assert as_dict(got, ["period", "department"]) == expected


def test_spend_by_department_billed_basis(warehouse):
    got = spend.spend_by_department(warehouse, CONFIG, Q3.start, Q3.end, basis="billed", grain="quarter")
    research = rows_where(quarter=Q3, department="Research")
    assert as_dict(got, ["department"])[("Research",)] == total(research, "BilledCost")
    assert total(research, "BilledCost") != total(research)  # the basis really changes the answer


def test_spend_by_provider_service_shares_sum_to_one(warehouse):
    got = spend.spend_by_provider_service(warehouse, Q3.start, Q3.end)
    expected: dict = defaultdict(Decimal)
    for _, _, _, row in rows_where(quarter=Q3):
        expected[(row["ProviderName"], row["ServiceName"])] += row["EffectiveCost"]
    assert as_dict(got, ["provider", "service"]) == expected
    assert got["cost"].to_list() == sorted(expected.values(), reverse=True)
    assert got["share"].sum() == pytest.approx(1.0)
    ai = spend.spend_by_provider_service(warehouse, Q3.start, Q3.end, ai_only=True)
    assert "Amazon Simple Storage Service" not in ai["service"].to_list()
    assert ai["cost"].sum() == total(rows_where(quarter=Q3, ai=True))


def test_workload_split_per_month(warehouse):
    got = spend.workload_split(warehouse, Q3.start, Q3.end)
    expected: dict = defaultdict(Decimal)
    for _, _, workload, row in rows_where(quarter=Q3):
        expected[(row["BillingPeriodStart"].date(), workload)] += row["EffectiveCost"]
    assert as_dict(got, ["period", "workload"]) == expected
    july = got.filter(pl.col("period") == date(2026, 7, 1))["workload"].to_list()
    assert july == ["inference", "training"]  # WORKLOADS order within a period


def test_daily_spend_uses_the_charge_date(warehouse):
    start, end = date(2026, 6, 1), date(2026, 10, 1)
    by_workload = spend.daily_spend(warehouse, start, end)
    expected: dict = defaultdict(Decimal)
    for _, _, workload, row in ROWS:
        if datetime(2026, 6, 1) <= row["ChargePeriodStart"] < datetime(2026, 10, 1):
            expected[(row["ChargePeriodStart"].date(), workload)] += row["EffectiveCost"]
    assert as_dict(by_workload, ["date", "workload"]) == expected
    assert (date(2026, 6, 30), "inference") in as_dict(by_workload, ["date", "workload"])

    by_department = spend.daily_spend(warehouse, start, end, by="department", config=CONFIG)
    assert by_department.columns == ["date", "department", "cost"]
    assert by_department["cost"].sum() == sum(expected.values())
    by_provider = spend.daily_spend(warehouse, date(2026, 9, 1), date(2026, 9, 2), by="provider", basis="billed")
    assert by_provider.to_dicts() == [{"date": date(2026, 9, 1), "provider": "OpenAI", "cost": Decimal("5.0000000001")}]


# -- the quarterly review's numbers ---------------------------------------------------------------


def test_quarter_summary(warehouse):
    got = spend.quarter_summary(warehouse, CONFIG, Q3)
    assert got.height == 1
    row = got.row(0, named=True)
    ai = total(rows_where(quarter=Q3, ai=True))
    previous = total(rows_where(quarter=Q3.previous(), ai=True))
    year_ago = total(rows_where(quarter=Q3.year_ago(), ai=True))
    inference = total(rows_where(quarter=Q3, workload="inference"))
    training = total(rows_where(quarter=Q3, workload="training"))
    named_departments = {d for _, d, _, _ in rows_where(quarter=Q3, ai=True) if d != UNALLOCATED}
    assert row == {
        "quarter": "2026Q3",
        "total_cost": total(rows_where(quarter=Q3)),
        "ai_cost": ai,
        "previous_ai_cost": previous,
        "ai_change_pct": pytest.approx(float((ai - previous) / previous * 100)),
        "year_ago_ai_cost": year_ago,
        "ai_change_yoy_pct": pytest.approx(float((ai - year_ago) / year_ago * 100)),
        "inference_cost": inference,
        "inference_share": pytest.approx(float(inference / ai)),
        "training_cost": training,
        "training_share": pytest.approx(float(training / ai)),
        "departments": len(named_departments),
    }
    assert got.schema["ai_cost"] == pl.Decimal(38, 10)
    # Spot checks against numbers written out by hand.
    assert row["ai_cost"] == Decimal("176.1900000006")
    assert row["departments"] == 3


def test_quarter_summary_without_a_previous_quarter(warehouse):
    row = spend.quarter_summary(warehouse, CONFIG, Quarter(2025, 3)).row(0, named=True)
    assert row["ai_cost"] == Decimal("50")
    assert row["previous_ai_cost"] is None and row["ai_change_pct"] is None
    assert row["year_ago_ai_cost"] is None and row["ai_change_yoy_pct"] is None


def test_quarter_summary_of_an_empty_quarter_is_an_error(warehouse):
    with pytest.raises(AnalysisError, match="no charges billed in 2027Q1"):
        spend.quarter_summary(warehouse, CONFIG, Quarter(2027, 1))


def test_top_departments(warehouse):
    got = spend.top_departments(warehouse, CONFIG, Q3)
    ai_total = total(rows_where(quarter=Q3, ai=True))
    expected = []
    for department in ("Research", "Product", "Marketing", UNALLOCATED):
        cost = total(rows_where(quarter=Q3, ai=True, department=department))
        previous = total(rows_where(quarter=Q3.previous(), ai=True, department=department))
        change = float((cost - previous) / previous * 100) if previous else None
        expected.append(
            {
                "department": department,
                "ai_cost": cost,
                "share": pytest.approx(float(cost / ai_total)),
                "previous_ai_cost": previous,
                "change_pct": pytest.approx(change) if change is not None else None,
            }
        )
    expected.sort(key=lambda r: r["ai_cost"], reverse=True)
    assert got.to_dicts() == expected
    assert UNALLOCATED in got["department"].to_list()

    top_two = spend.top_departments(warehouse, CONFIG, Q3, n=2)
    assert top_two["department"].to_list() == [r["department"] for r in expected[:2]]
    assert top_two["share"].to_list() == got["share"].to_list()[:2]  # shares stay of the whole quarter


def test_monthly_bill(warehouse):
    got = spend.monthly_bill(warehouse, date(2026, 7, 1), date(2026, 8, 1))
    july = [r for _, _, _, r in rows_where(quarter=Q3) if r["BillingPeriodStart"].month == 7]
    assert {r["ProviderName"] for r in july} == {"AWS"}
    assert got.to_dicts() == [
        {
            "billing_period": date(2026, 7, 1),
            "provider": "AWS",
            "currency": "USD",
            "rows": len(july),
            "billed_cost": sum((r["BilledCost"] for r in july), Decimal(0)),
            "effective_cost": sum((r["EffectiveCost"] for r in july), Decimal(0)),
            "list_cost": sum((r["ListCost"] for r in july if "ListCost" in r), Decimal(0)),
        }
    ]


# -- data freshness ---------------------------------------------------------------------------------


def test_data_freshness(wh):
    loaded_at = datetime(2026, 10, 2, 6, 0)
    insert_charges(wh, [
        charge(day="2026-07-01", x_BatchId=1, x_Source="focus", ProviderName="AWS"),
        charge(day="2026-09-30", x_BatchId=2, x_Source="focus", ProviderName="AWS"),
        charge(day="2026-08-15", x_BatchId=2, x_Source="focus", ProviderName="Microsoft"),
    ])  # fmt: skip
    with wh.writer() as con:
        con.executemany(
            "INSERT INTO ingest_batches (batch_id, source_kind, uri, started_at, ended_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                [1, "focus", "a.csv", datetime(2026, 8, 1), datetime(2026, 8, 1, 0, 5), "succeeded"],
                [2, "focus", "b.csv", datetime(2026, 10, 2, 5), loaded_at, "succeeded"],
                [3, "focus", "c.csv", datetime(2026, 10, 3), datetime(2026, 10, 3), "failed"],
            ],
        )
        con.executemany(
            "INSERT INTO quarantine (batch_id, file, row_number, reason, raw_row) VALUES (?, 'b.csv', ?, 'bad', ?)",
            [[2, 7, '{"ProviderName": "AWS"}'], [2, 8, '{"ProviderName": "AWS"}'], [2, 9, '{"csv_line": "x,y"}'],
             [3, 1, '{"ProviderName": "AWS"}']],  # the failed batch's rows were rolled back: not counted
        )  # fmt: skip
    got = spend.data_freshness(wh)
    assert got.to_dicts() == [
        {"source": "focus", "provider": "AWS", "rows": 2, "first_billing_period": date(2026, 7, 1),
         "last_billing_period": date(2026, 9, 1), "last_charge_end": datetime(2026, 9, 30, 23, 59, 59),
         "last_loaded_at": loaded_at, "quarantined_rows": 2},
        {"source": "focus", "provider": "Microsoft", "rows": 1, "first_billing_period": date(2026, 8, 1),
         "last_billing_period": date(2026, 8, 1), "last_charge_end": datetime(2026, 8, 15, 23, 59, 59),
         "last_loaded_at": loaded_at, "quarantined_rows": 0},
        {"source": "focus", "provider": None, "rows": 0, "first_billing_period": None, "last_billing_period": None,
         "last_charge_end": None, "last_loaded_at": loaded_at, "quarantined_rows": 1},
    ]  # fmt: skip


# -- parameters -------------------------------------------------------------------------------------


def test_bad_parameters_say_what_is_wrong(warehouse):
    with pytest.raises(AnalysisError, match="unknown cost basis 'list'"):
        spend.spend_by_department(warehouse, CONFIG, Q3.start, Q3.end, basis="list")
    with pytest.raises(AnalysisError, match="unknown grain 'week'"):
        spend.workload_split(warehouse, Q3.start, Q3.end, grain="week")
    with pytest.raises(AnalysisError, match="needs the configuration"):
        spend.daily_spend(warehouse, Q3.start, Q3.end, by="department")
    with pytest.raises(AnalysisError, match="cannot split daily spend by 'service'"):
        spend.daily_spend(warehouse, Q3.start, Q3.end, by="service")
    with pytest.raises(AnalysisError, match="empty period"):
        spend.monthly_bill(warehouse, Q3.end, Q3.start)
    with pytest.raises(AnalysisError, match="needs n >= 1"):
        spend.top_departments(warehouse, CONFIG, Q3, n=0)
    # A mistyped quarter is the CLI's to reject (tests/finops/test_quarter_types.py): analyses take a Quarter.


# -- the same expressions compile for Spark -----------------------------------------------------------


class _SparkOptions(ibis.config.Config):
    """ibis's Spark SQL compiler reads options.pyspark, which only pyspark's backend sets."""

    treat_nan_as_null: bool = False


def test_every_expression_compiles_to_spark_sql(warehouse, monkeypatch):
    if ibis.options.pyspark is None:
        monkeypatch.setattr(ibis.options, "pyspark", _SparkOptions())
    with warehouse.ibis() as con:
        charges = con.table("charges")
        expressions = {
            "spend_by_department": spend.spend_by_department_expr(charges, CONFIG, Q3.start, Q3.end, ai_only=True),
            "spend_by_department_daily": spend.spend_by_department_expr(charges, CONFIG, Q3.start, Q3.end, grain="day"),
            "spend_by_provider_service": spend.spend_by_provider_service_expr(charges, Q3.start, Q3.end, ai_only=True),
            "workload_split": spend.workload_split_expr(charges, Q3.start, Q3.end, grain="quarter"),
            "daily_spend": spend.daily_spend_expr(charges, Q3.start, Q3.end, by="department", config=CONFIG),
            "quarter_summary": spend.quarter_summary_expr(charges, CONFIG, Q3),
            "top_departments": spend.top_departments_expr(charges, CONFIG, Q3),
            "monthly_bill": spend.monthly_bill_expr(charges, Q3.start, Q3.end),
            "data_freshness": spend.data_freshness_expr(charges, con.table("ingest_batches"), con.table("quarantine")),
            "month_coverage": month_coverage_expr(charges),
        }
        for name, expr in expressions.items():
            sql = ibis.to_sql(expr, dialect="pyspark")
            assert "SELECT" in sql, name
    # The department rule and the classifier compile to Spark's own functions.
    sql = ibis.to_sql(expressions["quarter_summary"], dialect="pyspark")
    assert "RLIKE" in sql and "MAP_KEYS" in sql
