"""The AWS cost connector, end to end into a real DuckDB warehouse file.

Export files are written here with pyarrow, csv and gzip — never through our own code — in the
layouts AWS delivers (Data Exports and legacy CUR), and every expected number is computed in
this file from the line items, in Python Decimal. S3 is a real `moto_server` on 127.0.0.1
(tests/servers_moto.py) that boto3 reaches over HTTP with ``--endpoint-url``.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from connectors import aws_cur
from finops.analyses import spend
from finops.cli import cli
from finops.exceptions import SourceError
from finops.warehouse import Warehouse
from tests.focus_files import make_rows, write_parquet
from tests.rollup import rollup_differences
from tests.servers_moto import DUMMY_CREDENTIALS, moto_s3  # noqa: F401  (pytest fixture)

PAYER = "111122223333"
EXPORT = "ai-costs"

# -- writing exports (the independent side) -------------------------------------------------


def line(line_type: str = "Usage", cost: str = "1.00", *, period: str = "2026-07", day: int = 1, **fields: object) -> dict:
    """One CUR 2.0 line item; amounts are decimal strings (the truth the tests compare with)."""
    year, month = map(int, period.split("-"))
    end = f"{year + month // 12}-{month % 12 + 1:02d}"
    row = {
        "bill_payer_account_id": PAYER,
        "bill_payer_account_name": "Lark Payer",
        "bill_billing_period_start_date": f"{period}-01T00:00:00Z",
        "bill_billing_period_end_date": f"{end}-01T00:00:00Z",
        "bill_invoice_id": "INV-1",
        "line_item_usage_account_id": "444455556666",
        "line_item_usage_account_name": "ml-research",
        "line_item_line_item_type": line_type,
        "line_item_product_code": "AmazonEC2",
        "line_item_usage_type": "USE1-BoxUsage:m5.large",
        "line_item_operation": "RunInstances",
        "line_item_resource_id": "i-0abc",
        "line_item_usage_start_date": f"{period}-{day:02d}T00:00:00Z",
        "line_item_usage_end_date": f"{period}-{day:02d}T01:00:00Z",
        "line_item_usage_amount": "1",
        "line_item_unblended_cost": cost,
        "line_item_currency_code": "USD",
        "line_item_line_item_description": f"{line_type} line",
        "pricing_public_on_demand_cost": cost,
        "pricing_term": "OnDemand",
        "pricing_unit": "Hrs",
        "product_region_code": "us-east-1",
        "product_sku": "SKU123",
        "product": {"servicename": "Amazon Elastic Compute Cloud", "instance_type": "m5.large"},
        "resource_tags": {"user_team": "research", "user_env": "prod", "aws_createdBy": "alice"},
    }
    row.update(fields)
    return row


MONEY = (
    "line_item_unblended_cost", "line_item_usage_amount", "pricing_public_on_demand_cost",
    "savings_plan_savings_plan_effective_cost", "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment", "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period", "reservation_unused_recurring_fee",
)  # fmt: skip
TIMES = ("bill_billing_period_start_date", "bill_billing_period_end_date", "line_item_usage_start_date", "line_item_usage_end_date")
TEXT = (
    "bill_payer_account_id", "bill_payer_account_name", "bill_invoice_id", "line_item_usage_account_id",
    "line_item_usage_account_name", "line_item_line_item_type", "line_item_product_code", "line_item_usage_type",
    "line_item_operation", "line_item_resource_id", "line_item_currency_code", "line_item_line_item_description",
    "pricing_term", "pricing_unit", "product_region_code", "product_sku", "savings_plan_savings_plan_a_r_n",
    "reservation_reservation_a_r_n",
)  # fmt: skip


def write_cur2_parquet(path: Path, rows: list[dict]) -> Path:
    """CUR 2.0 Parquet as Data Exports writes it: DOUBLE amounts, TIMESTAMPs, maps."""
    arrays, fields = [], []
    for name in (*TEXT, *MONEY, *TIMES):
        values = [r.get(name) for r in rows]
        if name in MONEY:
            typ, data = pa.float64(), [None if v is None else float(Decimal(v)) for v in values]
        elif name in TIMES:
            typ, data = pa.timestamp("ms"), [None if v is None else datetime.fromisoformat(v.replace("Z", "")) for v in values]
        else:
            typ, data = pa.string(), values
        arrays.append(pa.array(data, type=typ))
        fields.append(pa.field(name, typ))
    for name in ("product", "resource_tags"):
        typ = pa.map_(pa.string(), pa.string())
        arrays.append(pa.array([list((r.get(name) or {}).items()) for r in rows], type=typ))
        fields.append(pa.field(name, typ))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)
    return path


LEGACY = {
    "bill_payer_account_id": "bill/PayerAccountId",
    "bill_billing_period_start_date": "bill/BillingPeriodStartDate",
    "bill_billing_period_end_date": "bill/BillingPeriodEndDate",
    "line_item_usage_account_id": "lineItem/UsageAccountId",
    "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_product_code": "lineItem/ProductCode",
    "line_item_usage_type": "lineItem/UsageType",
    "line_item_operation": "lineItem/Operation",
    "line_item_resource_id": "lineItem/ResourceId",
    "line_item_usage_start_date": "lineItem/UsageStartDate",
    "line_item_usage_end_date": "lineItem/UsageEndDate",
    "line_item_usage_amount": "lineItem/UsageAmount",
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "line_item_currency_code": "lineItem/CurrencyCode",
    "pricing_public_on_demand_cost": "pricing/publicOnDemandCost",
    "product_instance_type": "product/instanceType",
    "product_servicename": "product/servicename",
    "product_region_code": "product/regionCode",
    "savings_plan_savings_plan_effective_cost": "savingsPlan/SavingsPlanEffectiveCost",
    "savings_plan_savings_plan_a_r_n": "savingsPlan/SavingsPlanARN",
    "reservation_effective_cost": "reservation/EffectiveCost",
}


def write_legacy_csv(path: Path, rows: list[dict], *, drop: tuple[str, ...] = ()) -> Path:
    """Legacy CUR CSV (gzip): `category/Name` headers and one `resourceTags/…` column per tag."""
    tag_keys = sorted({k for r in rows for k in (r.get("resource_tags") or {})})
    legacy_tag = {k: "resourceTags/" + ("aws:" + k[4:] if k.startswith("aws_") else "user:" + k[5:]) for k in tag_keys}
    header = [h for f, h in LEGACY.items() if h not in drop] + [legacy_tag[k] for k in tag_keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for r in rows:
            product = r.get("product") or {}
            values = {**{f"product_{k}": v for k, v in product.items()}, **r}
            writer.writerow(
                [values.get(f) or "" for f, h in LEGACY.items() if h not in drop]
                + [(r.get("resource_tags") or {}).get(k, "") for k in tag_keys]
            )
    return path


def write_cur2_csv(path: Path, rows: list[dict]) -> Path:
    """CUR 2.0 as gzip CSV: snake_case headers, the maps as JSON text."""
    names = [*TEXT, *MONEY, *TIMES, "product", "resource_tags"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for r in rows:
            writer.writerow([json.dumps(r[n]) if n in ("product", "resource_tags") else (r.get(n) or "") for n in names])
    return path


def data_exports(root: Path, period: str, files: dict[str, list[dict]], *, execution: str, writer=write_cur2_parquet,
                 bucket: str = "billing", prefix: str = "cur") -> Path:
    """A Data Exports delivery of one period under root/<export>: data files and the manifest."""
    export = root / EXPORT
    data = export / "data" / f"BILLING_PERIOD={period}"
    if data.exists():  # AWS overwrites the period: the old files go
        for old in data.iterdir():
            old.unlink()
    for name, rows in files.items():
        writer(data / name, rows)
    manifest = {
        "executionId": execution,
        "exportArn": f"arn:aws:bcm-data-exports:us-east-1:{PAYER}:export/{EXPORT}-0000",
        "exportName": EXPORT,
        "billingPeriod": period,
        "bucket": bucket,
        "dataFiles": [f"s3://{bucket}/{prefix}/{EXPORT}/data/BILLING_PERIOD={period}/{name}" for name in files],
        "columns": [{"name": "line_item_unblended_cost", "type": "double"}],
    }
    meta = export / "metadata" / f"BILLING_PERIOD={period}"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / f"{EXPORT}-Manifest.json").write_text(json.dumps(manifest))
    return export


def total(rows: list[dict], field: str = "line_item_unblended_cost") -> Decimal:
    return sum((Decimal(r[field]) for r in rows), Decimal(0))


def effective(r: dict) -> Decimal:
    """EffectiveCost by hand, per FORMATS.md (as AWS's dashboards amortize)."""
    t, d = r["line_item_line_item_type"], lambda f: Decimal(r.get(f) or "0")
    if t == "SavingsPlanCoveredUsage":
        return d("savings_plan_savings_plan_effective_cost")
    if t == "SavingsPlanRecurringFee":
        return d("savings_plan_total_commitment_to_date") - d("savings_plan_used_commitment")
    if t in ("SavingsPlanNegation", "SavingsPlanUpfrontFee"):
        return Decimal(0)
    if t == "DiscountedUsage":
        return d("reservation_effective_cost")
    if t == "RIFee":
        return d("reservation_unused_amortized_upfront_fee_for_billing_period") + d("reservation_unused_recurring_fee")
    return d("line_item_unblended_cost")


def sums(wh: Warehouse, where: str = "true") -> tuple[int, Decimal, Decimal]:
    n, billed, eff = wh.query(f"SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM charges WHERE {where}").row(0)
    return n, billed or Decimal(0), eff or Decimal(0)


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy credentials only: never a developer's real AWS config."""
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


# -- mapping and money ----------------------------------------------------------------------


def mixed_month(period: str = "2026-07") -> list[dict]:
    """A month with every line item type, awkward amounts and AI services."""
    return [
        line("Usage", "12.3456789", period=period, day=2),
        line("Usage", "0.0000012345", period=period, day=3, line_item_usage_account_id="777788889999"),
        line("DiscountedUsage", "3.40", period=period, reservation_effective_cost="2.1037",
             reservation_reservation_a_r_n="arn:aws:ec2:us-east-1:1:reserved-instances/r-1", pricing_term="Reserved"),
        line("RIFee", "100.00", period=period, reservation_unused_amortized_upfront_fee_for_billing_period="12.5",
             reservation_unused_recurring_fee="7.25", reservation_reservation_a_r_n="arn:aws:ec2:us-east-1:1:reserved-instances/r-1"),
        line("SavingsPlanCoveredUsage", "5.00", period=period, savings_plan_savings_plan_effective_cost="3.2",
             savings_plan_savings_plan_a_r_n="arn:aws:savingsplans::1:savingsplan/sp-1"),
        line("SavingsPlanNegation", "-5.00", period=period, savings_plan_savings_plan_a_r_n="arn:aws:savingsplans::1:savingsplan/sp-1"),
        line("SavingsPlanRecurringFee", "720.00", period=period, savings_plan_total_commitment_to_date="720.00",
             savings_plan_used_commitment="650.4", savings_plan_savings_plan_a_r_n="arn:aws:savingsplans::1:savingsplan/sp-1"),
        line("Tax", "1.23", period=period),
        line("Credit", "-4.56", period=period),
        line("Usage", "987654321.123456", period=period, day=9),  # above the 64-bit fast path of the cast
    ]


def test_cur2_parquet_export_maps_to_focus_with_exact_money(wh, tmp_path):
    rows = mixed_month()
    export = data_exports(tmp_path, "2026-07", {"ai-costs-00001.snappy.parquet": rows[:6], "ai-costs-00002.snappy.parquet": rows[6:]},
                          execution="exec-0701")
    report = aws_cur.ingest(wh, str(export))
    [load] = report.loads
    assert (load.period, load.dialect, load.export_id) == ("2026-07", "cur2", "exec-0701")
    assert (load.result.rows_read, load.result.rows_loaded, load.result.rows_quarantined) == (10, 10, 0)
    assert sums(wh) == (10, total(rows), sum(map(effective, rows)))
    assert total(rows) == Decimal("987655153.5391361345")  # by hand: the ten amounts above
    [period] = load.period_totals.to_dicts()
    assert period["billing_period"] == "2026-07" and period["billed_cost"] == total(rows)
    first = wh.query(
        "SELECT ProviderName, ServiceName, ServiceCategory, BillingAccountId, BillingAccountName, SubAccountId,"
        " SubAccountName, RegionId, SkuId, ChargeCategory, ChargeFrequency, PricingQuantity, ListCost, Tags,"
        " x_UsageType, x_Operation, x_LineItemType, x_InstanceType, x_PricingModel, x_ExportId, x_SourceFile,"
        " x_SourceRow, x_Source, ChargePeriodStart, BillingPeriodStart, BillingPeriodEnd, InvoiceId"
        " FROM charges WHERE BilledCost = 12.3456789"
    ).to_dicts()[0]
    assert first == {
        "ProviderName": "AWS", "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Compute",
        "BillingAccountId": PAYER, "BillingAccountName": "Lark Payer", "SubAccountId": "444455556666",
        "SubAccountName": "ml-research", "RegionId": "us-east-1", "SkuId": "SKU123", "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based", "PricingQuantity": Decimal(1), "ListCost": Decimal("12.3456789"),
        "Tags": {"team": "research", "env": "prod", "aws:createdBy": "alice"},
        "x_UsageType": "USE1-BoxUsage:m5.large", "x_Operation": "RunInstances", "x_LineItemType": "Usage",
        "x_InstanceType": "m5.large", "x_PricingModel": "OnDemand", "x_ExportId": "exec-0701",
        "x_SourceFile": str(export / "data/BILLING_PERIOD=2026-07/ai-costs-00001.snappy.parquet"),
        "x_SourceRow": 1, "x_Source": "aws-cur", "ChargePeriodStart": datetime(2026, 7, 2),
        "BillingPeriodStart": datetime(2026, 7, 1), "BillingPeriodEnd": datetime(2026, 8, 1), "InvoiceId": "INV-1",
    }  # fmt: skip
    sp = wh.query(
        "SELECT CommitmentDiscountId, CommitmentDiscountType, CommitmentDiscountStatus, x_PricingModel"
        " FROM charges WHERE x_LineItemType = 'SavingsPlanCoveredUsage'"
    ).row(0)
    assert sp == ("arn:aws:savingsplans::1:savingsplan/sp-1", "Savings Plan", "Used", "SavingsPlan")
    # The daily rollup, grouped by the columns the CUR mapping writes, equals one over every column.
    assert rollup_differences(wh) == (0, 0)
    assert wh.query("SELECT sum(x_LineItems)::BIGINT, sum(BilledCost) FROM charges_daily").row(0) == (10, total(rows))


def test_every_double_amount_loads_as_the_decimal_written(wh, tmp_path):
    """CUR Parquet amounts are doubles: each must come back as the exact decimal, at any size."""
    import random

    rng = random.Random(20260701)
    amounts = [
        str(Decimal(rng.randrange(-10**15, 10**15)).scaleb(-rng.randint(0, 10)).quantize(Decimal(1).scaleb(-rng.randint(0, 10))))
        for _ in range(3000)
    ] + ["780857.137942", "-318949.2996", "0.0000000001", "99999.9999999999", "100000.0000000001", "123456789.5"]
    amounts = [a for a in amounts if len(Decimal(a).as_tuple().digits) <= 15]  # what a double holds exactly
    export = data_exports(tmp_path, "2026-07", {"f.parquet": [line("Usage", a) for a in amounts]}, execution="e1")
    aws_cur.ingest(wh, str(export))
    got = dict(wh.query("SELECT x_SourceRow, BilledCost FROM charges").rows())
    wrong = [(a, got[i + 1]) for i, a in enumerate(amounts) if got[i + 1] != Decimal(a)]
    assert wrong == [] and len(got) == len(amounts) > 1500


AMORTIZATION = [
    # (line item type, extra fields, unblended cost, EffectiveCost by hand, ChargeCategory)
    ("Usage", {}, "10.25", "10.25", "Usage"),
    ("DiscountedUsage", {"reservation_effective_cost": "2.1037"}, "3.40", "2.1037", "Usage"),
    ("RIFee", {"reservation_unused_amortized_upfront_fee_for_billing_period": "12.5",
               "reservation_unused_recurring_fee": "7.25"}, "100.00", "19.75", "Purchase"),  # 12.5 + 7.25
    ("SavingsPlanCoveredUsage", {"savings_plan_savings_plan_effective_cost": "3.2"}, "5.00", "3.2", "Usage"),
    ("SavingsPlanRecurringFee", {"savings_plan_total_commitment_to_date": "720.00",
                                 "savings_plan_used_commitment": "650.4"}, "720.00", "69.6", "Purchase"),  # 720 − 650.4
    ("SavingsPlanNegation", {}, "-5.00", "0", "Adjustment"),
    ("SavingsPlanUpfrontFee", {}, "8760.00", "0", "Purchase"),
    ("Fee", {}, "2.00", "2.00", "Purchase"),
    ("Tax", {}, "1.23", "1.23", "Tax"),
    ("Credit", {}, "-4.56", "-4.56", "Credit"),
    ("Refund", {}, "-7.89", "-7.89", "Credit"),
    ("BundledDiscount", {}, "-0.50", "-0.50", "Adjustment"),
    ("EdpDiscount", {}, "-1.11", "-1.11", "Adjustment"),
]  # fmt: skip


@pytest.mark.parametrize(("line_type", "extra", "cost", "expected", "category"), AMORTIZATION, ids=[a[0] for a in AMORTIZATION])
def test_amortized_cost_per_line_item_type(wh, tmp_path, line_type, extra, cost, expected, category):
    rows = [line(line_type, cost, **extra), line("Usage", "1.00")]
    export = data_exports(tmp_path, "2026-07", {"f.parquet": rows}, execution="e1")
    aws_cur.ingest(wh, str(export))
    got = wh.query(f"SELECT BilledCost, EffectiveCost, ChargeCategory FROM charges WHERE x_LineItemType = '{line_type}'"
                   " AND x_SourceRow = 1").row(0)
    assert got == (Decimal(cost), Decimal(expected), category)
    assert sums(wh)[1] == Decimal(cost) + Decimal("1.00")  # BilledCost = sum of line_item_unblended_cost


def test_legacy_cur_csv_in_legacy_layout(wh, tmp_path):
    """Legacy CUR: `lineItem/UnblendedCost` headers, a column per tag, reportKeys in the manifest."""
    rows = [
        line("Usage", "4.20", product={"servicename": "Amazon SageMaker", "instance_type": "ml.g5.2xlarge"},
             line_item_product_code="AmazonSageMaker", line_item_usage_type="USE1-Host:ml.g5.2xlarge"),
        line("SavingsPlanCoveredUsage", "2.00", savings_plan_savings_plan_effective_cost="1.3",
             savings_plan_savings_plan_a_r_n="arn:sp", resource_tags={"user_team": "web"}),
        line("Usage", "0.75", resource_tags={}),
    ]
    report_dir = tmp_path / "legacy-report"
    key = "20260701-20260801/a1b2c3/legacy-report-00001.csv.gz"
    write_legacy_csv(report_dir / key, rows)
    manifest = {"assemblyId": "a1b2c3", "account": PAYER, "reportName": "legacy-report", "bucket": "billing",
                "billingPeriod": {"start": "20260701T000000.000Z", "end": "20260801T000000.000Z"},
                "reportKeys": [f"cur/legacy-report/{key}"]}
    (report_dir / "20260701-20260801" / "legacy-report-Manifest.json").write_text(json.dumps(manifest))
    [load] = aws_cur.ingest(wh, str(report_dir)).loads
    assert (load.dialect, load.export_id, load.result.rows_loaded) == ("legacy", "a1b2c3", 3)
    assert sums(wh) == (3, Decimal("6.95"), Decimal("4.20") + Decimal("1.3") + Decimal("0.75"))
    got = wh.query("SELECT ServiceName, ServiceCategory, x_InstanceType, Tags, x_SourceRow FROM charges ORDER BY x_SourceRow").rows()
    assert got[0] == ("Amazon SageMaker", "AI and Machine Learning", "ml.g5.2xlarge",
                      {"team": "research", "env": "prod", "aws:createdBy": "alice"}, 1)
    assert got[1][3] == {"team": "web"} and got[2][3] is None


def test_files_without_manifest_take_periods_from_rows(wh, tmp_path):
    july, august = [line("Usage", "1.10", period="2026-07"), line("Tax", "0.20", period="2026-07")], [line("Usage", "2.30", period="2026-08")]
    path = write_cur2_csv(tmp_path / "loose" / "cur2.csv.gz", july + august)
    report = aws_cur.ingest(wh, str(tmp_path / "loose" / "*.csv.gz"))
    [load] = report.loads
    assert load.period is None and load.manifest is None and load.export_id.startswith("files-sha256:")
    assert [(p["billing_period"], p["rows"], p["billed_cost"]) for p in load.period_totals.to_dicts()] == [
        ("2026-07", 2, Decimal("1.30")), ("2026-08", 1, Decimal("2.30"))]
    assert wh.query("SELECT DISTINCT Tags FROM charges").item() == {"team": "research", "env": "prod", "aws:createdBy": "alice"}
    # --period picks rows of one period; loading it again replaces only that period.
    again = aws_cur.ingest(wh, [str(path)], periods=["2026-08"])
    assert again.loads[0].result.rows_read == 1 and again.loads[0].result.rows_replaced == 1
    assert sums(wh) == (3, Decimal("3.60"), Decimal("3.60"))


def test_aws_focus_export_goes_through_the_focus_mapping(wh, tmp_path):
    focus_rows = make_rows(30, account=PAYER, period="2026-07")
    export = tmp_path / EXPORT
    (export / "data/BILLING_PERIOD=2026-07").mkdir(parents=True)
    written = write_parquet(export / "data/BILLING_PERIOD=2026-07/focus-00001.parquet", focus_rows, "1.2")
    meta = export / "metadata/BILLING_PERIOD=2026-07"
    meta.mkdir(parents=True)
    (meta / f"{EXPORT}-Manifest.json").write_text(json.dumps(
        {"executionId": "focus-exec", "dataFiles": [f"s3://b/p/{EXPORT}/data/BILLING_PERIOD=2026-07/focus-00001.parquet"]}))
    [load] = aws_cur.ingest(wh, str(export)).loads
    assert load.dialect == "focus" and load.result.rows_loaded == 30
    assert sums(wh) == (30, written.total("BilledCost"), written.total("EffectiveCost"))
    assert wh.query("SELECT DISTINCT x_Source, x_ExportId FROM charges").rows() == [("aws-cur", "focus-exec")]


# -- deliveries: restated, unchanged, killed ------------------------------------------------


def test_restated_period_replaces_the_old_rows_and_keeps_other_periods(wh, tmp_path):
    june = [line("Usage", "5.00", period="2026-06")]
    july_v1 = [line("Usage", "10.00"), line("Usage", "20.00", line_item_usage_account_id="999900001111")]
    data_exports(tmp_path, "2026-06", {"june.parquet": june}, execution="june-1")
    export = data_exports(tmp_path, "2026-07", {"a.parquet": july_v1[:1], "b.parquet": july_v1[1:]}, execution="july-1")
    aws_cur.ingest(wh, str(export))
    assert sums(wh) == (3, Decimal("35.00"), Decimal("35.00"))
    # AWS restates July: other files, one sub account gone, a credit added.
    july_v2 = [line("Usage", "11.00"), line("Credit", "-1.50")]
    data_exports(tmp_path, "2026-07", {"c.parquet": july_v2}, execution="july-2")
    report = aws_cur.ingest(wh, str(export))
    assert report.skipped == [("2026-06", 1)]
    [load] = report.loads
    assert (load.period, load.export_id, load.result.rows_replaced, load.result.rows_loaded) == ("2026-07", "july-2", 2, 2)
    assert sums(wh, "BillingPeriodStart = '2026-07-01'") == (2, Decimal("9.50"), Decimal("9.50"))
    assert sums(wh, "BillingPeriodStart = '2026-06-01'") == (1, Decimal("5.00"), Decimal("5.00"))
    assert wh.query("SELECT count(*) FROM charges WHERE SubAccountId = '999900001111'").item() == 0
    assert wh.query("SELECT DISTINCT x_ExportId FROM charges WHERE BillingPeriodStart = '2026-07-01'").item() == "july-2"
    assert rollup_differences(wh) == (0, 0)


def test_same_export_twice_is_skipped_and_changes_nothing(wh, tmp_path):
    rows = mixed_month()
    export = data_exports(tmp_path, "2026-07", {"f.parquet": rows}, execution="e1")
    first = aws_cur.ingest(wh, str(export))
    before = sums(wh)
    second = aws_cur.ingest(wh, str(export))
    assert second.loads == [] and second.skipped == [("2026-07", first.loads[0].result.batch_id)]
    assert sums(wh) == before == (10, total(rows), sum(map(effective, rows)))
    assert wh.query("SELECT count(*) FROM ingest_batches").item() == 1  # nothing was even opened for writing


def test_cli_says_an_unchanged_manifest_was_skipped(tmp_path):
    export = data_exports(tmp_path, "2026-07", {"f.parquet": [line("Usage", "3.00")]}, execution="e1")
    warehouse = str(tmp_path / "w.duckdb")
    runner = CliRunner()
    first = runner.invoke(cli, ["ingest", "aws-cur", str(export), "--warehouse", warehouse])
    assert first.exit_code == 0, first.output
    assert "2026-07 (cur2, export e1): 1 rows read, 1 loaded, 0 quarantined from 1 file (batch 1)" in first.output
    second = runner.invoke(cli, ["ingest", "aws-cur", str(export), "--warehouse", warehouse])
    assert second.exit_code == 0, second.output
    assert "2026-07: manifest unchanged since batch 1, skipped" in second.output


def test_a_manifest_is_loaded_again_when_its_rows_were_replaced_from_elsewhere(wh, tmp_path):
    """The skip trusts the saved checksum only while the rows that batch loaded are still there."""
    export = data_exports(tmp_path / "a", "2026-07", {"f.parquet": [line("Usage", "3.00")]}, execution="e1")
    copy = data_exports(tmp_path / "b", "2026-07", {"f.parquet": [line("Usage", "4.00")]}, execution="e2")
    aws_cur.ingest(wh, str(export))
    aws_cur.ingest(wh, str(copy))  # same payer and period: replaces the first load's rows
    again = aws_cur.ingest(wh, str(export))
    assert again.skipped == [] and sums(wh) == (1, Decimal("3.00"), Decimal("3.00"))


def test_period_option_and_a_period_without_delivery(wh, tmp_path):
    data_exports(tmp_path, "2026-06", {"june.parquet": [line("Usage", "5.00", period="2026-06")]}, execution="j6")
    export = data_exports(tmp_path, "2026-07", {"july.parquet": [line("Usage", "7.00")]}, execution="j7")
    report = aws_cur.ingest(wh, str(export), periods=["2026-07"])
    assert [load.period for load in report.loads] == ["2026-07"] and sums(wh)[1] == Decimal("7.00")
    with pytest.raises(SourceError, match="has no delivery for 2026-09") as err:
        aws_cur.ingest(wh, str(export), periods=["2026-09"])
    assert "2026-06, 2026-07" in err.value.hint
    with pytest.raises(SourceError, match="not a billing period: '2026-7'"):
        aws_cur.ingest(wh, str(export), periods=["2026-7"])


def test_killed_load_leaves_the_previous_period_and_the_next_load_completes(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout=30)
    small = [line("Usage", "1.25"), line("Usage", "2.50")]
    export = data_exports(tmp_path, "2026-07", {"small.parquet": small}, execution="v1")
    aws_cur.ingest(wh, str(export))
    # A restated July big enough that the load is still running when it is killed.
    data_exports(tmp_path, "2026-07", {}, execution="v2")
    big = export / "data/BILLING_PERIOD=2026-07/big.parquet"
    rows = 400_000
    duckdb.sql(
        "COPY (SELECT '111122223333' AS bill_payer_account_id, TIMESTAMP '2026-07-01' AS bill_billing_period_start_date,"
        " TIMESTAMP '2026-08-01' AS bill_billing_period_end_date, 'Usage' AS line_item_line_item_type,"
        " TIMESTAMP '2026-07-01' + to_hours((i % 700)::INTEGER) AS line_item_usage_start_date,"
        " TIMESTAMP '2026-07-01' + to_hours((i % 700)::INTEGER + 1) AS line_item_usage_end_date,"
        " (i % 1000) / 100 AS line_item_unblended_cost, 'USD' AS line_item_currency_code,"
        " 'AmazonEC2' AS line_item_product_code, 'acct-' || (i % 7)::VARCHAR AS line_item_usage_account_id,"
        f" MAP {{'user_team': 'ml'}} AS resource_tags FROM range({rows}) t(i)) TO '{big}' (FORMAT parquet)"
    )
    manifest = export / f"metadata/BILLING_PERIOD=2026-07/{EXPORT}-Manifest.json"
    manifest.write_text(json.dumps({"executionId": "v2", "dataFiles": [f"s3://billing/cur/{EXPORT}/data/BILLING_PERIOD=2026-07/big.parquet"]}))
    code = textwrap.dedent(f"""
        from connectors import aws_cur
        from finops.warehouse import Warehouse
        def progress(description, done, total):
            if "replacing partitions" in description:
                print("writing", flush=True)
        aws_cur.ingest(Warehouse({str(wh.path)!r}), {str(export)!r}, progress=progress)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)  # inside the transaction: the old July rows are deleted there, not yet committed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stdout.read() == ""  # it never finished
    assert sums(wh) == (2, Decimal("3.75"), Decimal("3.75"))  # the previous July, whole
    report = aws_cur.ingest(wh, str(export))  # the manifest changed since the last *successful* load
    assert report.loads[0].result.rows_loaded == rows
    expected = duckdb.sql(f"SELECT sum(CAST(line_item_unblended_cost AS VARCHAR)::DECIMAL(38, 10)) FROM '{big}'").fetchone()[0]
    assert sums(wh) == (rows, expected, expected)
    statuses = wh.query("SELECT status FROM ingest_batches ORDER BY batch_id")["status"].to_list()
    assert statuses == ["succeeded", "interrupted", "succeeded"]


# -- bad input --------------------------------------------------------------------------------


def nothing_written(wh: Warehouse) -> bool:
    return not wh.exists() or wh.query("SELECT count(*) FROM charges").item() == 0


def test_corrupt_parquet_is_refused_naming_the_file(wh, tmp_path):
    export = data_exports(tmp_path, "2026-07", {"good.parquet": [line()], "bad.parquet": [line()]}, execution="e1")
    bad = export / "data/BILLING_PERIOD=2026-07/bad.parquet"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # cut short: a half-copied file
    with pytest.raises(SourceError, match=r"bad\.parquet: cannot be read as PARQUET"):
        aws_cur.ingest(wh, str(export))
    assert nothing_written(wh)


def test_truncated_gzip_is_refused_naming_the_file(wh, tmp_path):
    export = data_exports(tmp_path, "2026-07", {"a.csv.gz": [line()] * 50}, execution="e1", writer=write_cur2_csv)
    path = export / "data/BILLING_PERIOD=2026-07/a.csv.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(SourceError, match=r"a\.csv\.gz: truncated gzip file"):
        aws_cur.ingest(wh, str(export))
    assert nothing_written(wh)


def test_csv_missing_a_required_column_is_refused_naming_it(wh, tmp_path):
    path = write_legacy_csv(tmp_path / "cur.csv.gz", [line()], drop=("lineItem/UnblendedCost",))
    with pytest.raises(SourceError, match=r"cur\.csv\.gz: not an AWS Cost and Usage Report: missing column lineItem/UnblendedCost"):
        aws_cur.ingest(wh, str(path))
    assert nothing_written(wh)


def test_manifest_listing_a_missing_file_is_an_error_naming_both(wh, tmp_path):
    export = data_exports(tmp_path, "2026-07", {"a.parquet": [line()]}, execution="e1")
    (export / "data/BILLING_PERIOD=2026-07/a.parquet").unlink()
    with pytest.raises(SourceError, match=r"ai-costs-Manifest\.json lists .*a\.parquet, which is not there"):
        aws_cur.ingest(wh, str(export))
    assert nothing_written(wh)


def test_bad_rows_are_quarantined_with_row_column_and_reason(wh, tmp_path):
    rows = [
        line("Usage", "1.00"),
        line("MysteryCharge", "2.00"),  # unknown type: its amortization is not known
        line("Usage", "n/a"),  # and so is its on-demand cost: both reasons are given
        line("SavingsPlanCoveredUsage", "3.00"),  # without its effective cost
        line("Usage", "4.00", period="2026-08"),  # another period inside July's delivery
        line("Usage", "5.00", bill_payer_account_id=""),
    ]
    export = data_exports(tmp_path, "2026-07", {"a.csv.gz": rows}, execution="e1", writer=write_cur2_csv)
    [load] = aws_cur.ingest(wh, str(export)).loads
    assert (load.result.rows_read, load.result.rows_loaded, load.result.rows_quarantined) == (6, 1, 5)
    assert sums(wh) == (1, Decimal("1.00"), Decimal("1.00"))
    got = wh.query("SELECT row_number, column_name, reason FROM quarantine ORDER BY row_number").rows()
    assert got == [
        (2, "line_item_line_item_type",
         "line_item_line_item_type: unknown line item type 'MysteryCharge': its amortized cost is not known"),
        (3, "line_item_unblended_cost", "line_item_unblended_cost: cannot read 'n/a' as a number;"
                                         " pricing_public_on_demand_cost: cannot read 'n/a' as a number"),
        (4, "savings_plan_savings_plan_effective_cost",
         "savings_plan_savings_plan_effective_cost: empty, but a SavingsPlanCoveredUsage line needs it for EffectiveCost"),
        (5, "bill_billing_period_start_date",
         "bill_billing_period_start_date: billing period 2026-08 is outside this delivery's period 2026-07"),
        (6, "bill_payer_account_id", "bill_payer_account_id: empty, but every line item needs the payer account"),
    ]  # fmt: skip
    raw = json.loads(wh.query("SELECT raw_row FROM quarantine WHERE row_number = 3").item())
    assert raw["line_item_unblended_cost"] == "n/a"


# -- AI spend ---------------------------------------------------------------------------------


def test_ai_spend_is_classified_from_the_loaded_rows(wh, tmp_path):
    def sm(usage: str, cost: str) -> dict:
        return line("Usage", cost, line_item_product_code="AmazonSageMaker", line_item_usage_type=usage,
                    product={"servicename": "Amazon SageMaker", "instance_type": usage.split(":")[-1]})

    def ec2(instance: str, cost: str) -> dict:
        return line("Usage", cost, line_item_usage_type=f"USE1-BoxUsage:{instance}", product={"instance_type": instance})

    def bedrock(usage: str, cost: str) -> dict:
        return line("Usage", cost, line_item_product_code="AmazonBedrock", line_item_usage_type=usage, product={})

    rows = [
        sm("USE1-Host:ml.g5.2xlarge", "10.00"), sm("USE1-Train:ml.p4d.24xlarge", "20.00"),
        bedrock("USE1-Claude3Sonnet-input-tokens", "0.30"), bedrock("USE1-Claude3Sonnet-output-tokens", "1.50"),
        ec2("p5.48xlarge", "98.32"), ec2("g5.xlarge", "1.01"), ec2("inf2.xlarge", "0.76"), ec2("trn1.2xlarge", "1.34"),
        ec2("m5.large", "0.10"),
    ]  # fmt: skip
    export = data_exports(tmp_path, "2026-07", {"f.parquet": rows}, execution="e1")
    aws_cur.ingest(wh, str(export))
    split = {r["workload"]: r["cost"] for r in spend.workload_split(wh, date(2026, 7, 1), date(2026, 8, 1)).to_dicts()}
    assert split == {
        "inference": Decimal("10.00") + Decimal("0.30") + Decimal("1.50") + Decimal("0.76"),  # Host, Bedrock tokens, inf2
        "training": Decimal("20.00") + Decimal("1.34"),  # Train, trn1
        "other AI": Decimal("98.32") + Decimal("1.01"),  # p5, g5: AI of unknown kind
        "non-AI": Decimal("0.10"),
    }
    tokens = wh.query("SELECT x_Model, x_TokenDirection, ServiceCategory FROM charges WHERE ServiceName = 'Amazon Bedrock'"
                      " ORDER BY x_TokenDirection").rows()
    assert tokens == [("Claude3Sonnet", "input", "AI and Machine Learning"), ("Claude3Sonnet", "output", "AI and Machine Learning")]


# -- S3 (moto_server over HTTP) -------------------------------------------------------------


def test_s3_export_through_the_cli_then_skipped_then_restated(moto_s3, aws_env, tmp_path):
    s3 = moto_s3.client()
    s3.create_bucket(Bucket="billing-cli")
    local = tmp_path / "export"
    july = mixed_month()
    data_exports(local, "2026-07", {"ai-costs-00001.snappy.parquet": july}, execution="s3-1", bucket="billing-cli")
    data_exports(local, "2026-08", {"ai-costs-00001.snappy.parquet": [line("Usage", "8.00", period="2026-08")]},
                 execution="s3-aug", bucket="billing-cli")
    moto_s3.upload_tree("billing-cli", local, "cur")
    warehouse = str(tmp_path / "w.duckdb")
    args = ["ingest", "aws-cur", f"s3://billing-cli/cur/{EXPORT}", "--endpoint-url", moto_s3.endpoint_url, "--warehouse", warehouse]
    runner = CliRunner()
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "2026-07 (cur2, export s3-1): 10 rows read, 10 loaded, 0 quarantined from 1 file" in first.output
    assert "2026-08 (cur2, export s3-aug): 1 rows read, 1 loaded" in first.output
    wh = Warehouse(warehouse)
    assert sums(wh, "BillingPeriodStart = '2026-07-01'") == (10, total(july), sum(map(effective, july)))
    assert wh.query("SELECT DISTINCT x_SourceFile FROM charges WHERE BillingPeriodStart = '2026-07-01'").item() == (
        f"s3://billing-cli/cur/{EXPORT}/data/BILLING_PERIOD=2026-07/ai-costs-00001.snappy.parquet")
    second = runner.invoke(cli, args)
    assert "2026-07: manifest unchanged since batch 1, skipped" in second.output
    assert "2026-08: manifest unchanged since batch 2, skipped" in second.output
    # AWS restates July in the bucket: new file name, new manifest.
    s3.delete_object(Bucket="billing-cli", Key=f"cur/{EXPORT}/data/BILLING_PERIOD=2026-07/ai-costs-00001.snappy.parquet")
    restated = [line("Usage", "12.00"), line("Refund", "-2.00")]
    shutil_export = data_exports(tmp_path / "v2", "2026-07", {"ai-costs-00002.snappy.parquet": restated}, execution="s3-2",
                                 bucket="billing-cli")
    moto_s3.upload_tree("billing-cli", shutil_export.parent, "cur")
    third = runner.invoke(cli, [*args, "--period", "2026-07"])
    assert third.exit_code == 0, third.output
    assert "replaced 10 rows previously loaded" in third.output
    assert sums(wh, "BillingPeriodStart = '2026-07-01'") == (2, Decimal("10.00"), Decimal("10.00"))
    assert sums(wh, "BillingPeriodStart = '2026-08-01'") == (1, Decimal("8.00"), Decimal("8.00"))


def test_s3_manifest_listing_a_missing_object(moto_s3, aws_env, tmp_path):
    s3 = moto_s3.client()
    s3.create_bucket(Bucket="billing-missing")
    local = tmp_path / "export"
    data_exports(local, "2026-07", {"a.parquet": [line()]}, execution="m1", bucket="billing-missing")
    moto_s3.upload_tree("billing-missing", local, "cur")
    s3.delete_object(Bucket="billing-missing", Key=f"cur/{EXPORT}/data/BILLING_PERIOD=2026-07/a.parquet")
    wh = Warehouse(tmp_path / "w.duckdb")
    with pytest.raises(SourceError, match=rf"Manifest\.json lists s3://billing-missing/cur/{EXPORT}/data/BILLING_PERIOD=2026-07/a\.parquet, which is not there"):
        aws_cur.ingest(wh, f"s3://billing-missing/cur/{EXPORT}", endpoint_url=moto_s3.endpoint_url)
    assert nothing_written(wh)


def test_errors_never_show_the_credentials(moto_s3, tmp_path):
    marker = "SECRET-MARKER-4f9a7c"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIA-MARKER-ACCESS", "AWS_SECRET_ACCESS_KEY": marker,
           "AWS_SESSION_TOKEN": marker + "-token", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "COLUMNS": "200"}  # fmt: skip
    warehouse = str(tmp_path / "w.duckdb")
    for endpoint, expected in ((moto_s3.endpoint_url, "NoSuchBucket"), ("http://127.0.0.1:9", "Could not connect")):
        run = subprocess.run(
            [sys.executable, "-m", "finops.cli", "ingest", "aws-cur", "s3://no-such-bucket/cur/x",
             "--endpoint-url", endpoint, "--warehouse", warehouse],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        output = run.stdout + run.stderr
        assert run.returncode == 1, output
        assert expected in output and "s3://no-such-bucket/cur/x" in output
        assert marker not in output and "AKIA-MARKER-ACCESS" not in output
        assert "Traceback" not in output


def test_row_numbers_point_at_the_file_lines_of_a_large_csv(wh, tmp_path):
    """DuckDB reads a big CSV in parallel; every row must still name its own line."""
    n = 20_000  # 8 MB: enough for DuckDB to read it in parallel and lose the order if allowed to
    path = tmp_path / "cur2.csv"
    rows = [line("Usage", f"{i % 97}.{i % 100:02d}", line_item_resource_id=f"i-{i + 1}") for i in range(n)]
    rows[15_000]["line_item_unblended_cost"] = "oops"
    names = [*TEXT, *MONEY, *TIMES, "product", "resource_tags"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for r in rows:
            writer.writerow([json.dumps(r[k]) if k in ("product", "resource_tags") else (r.get(k) or "") for k in names])
    [load] = aws_cur.ingest(wh, str(path)).loads
    assert (load.result.rows_loaded, load.result.rows_quarantined) == (n - 1, 1)
    assert wh.query("SELECT count(*) FROM charges WHERE ResourceId <> 'i-' || x_SourceRow").item() == 0
    assert wh.query("SELECT row_number FROM quarantine").item() == 15_001



def test_csv_files_are_staged_side_by_side_keeping_rows_and_broken_lines_in_place(wh, tmp_path):
    """Four gzip CSV files, read two at a time on helper connections; a line with a field too
    many (data row 3) in files 2 and 4 is quarantined there, and the rows after it keep their
    own row numbers (DuckDB keeps rejected lines in a table of the connection that read the file)."""
    folder = tmp_path / "loose"
    files, expected = [], Decimal(0)
    for n in range(1, 5):
        rows = [line("Usage", f"{n}.{i:02d}", line_item_resource_id=f"i-{n}-{i}") for i in range(1, 41)]
        path = write_cur2_csv(folder / f"cur2-{n}.csv.gz", rows)
        if n in (2, 4):
            text = gzip.decompress(path.read_bytes()).decode().splitlines()
            text[3] += ",surplus"
            path.write_bytes(gzip.compress(("\n".join(text) + "\n").encode()))
        files.append(path)
        expected += sum(Decimal(f"{n}.{i:02d}") for i in range(1, 41) if (n, i) not in ((2, 3), (4, 3)))
    [load] = aws_cur.ingest(wh, str(folder / "*.csv.gz")).loads
    assert (load.result.rows_read, load.result.rows_loaded, load.result.rows_quarantined) == (160, 158, 2)
    assert sums(wh)[:2] == (158, expected)
    quarantined = wh.query("SELECT file, row_number FROM quarantine ORDER BY file").rows()
    assert quarantined == [(str(files[1]), 3), (str(files[3]), 3)]
    got = wh.query("SELECT x_SourceFile, x_SourceRow, ResourceId FROM charges ORDER BY x_SourceFile, x_SourceRow").rows()
    assert got == [
        (str(files[n - 1]), i, f"i-{n}-{i}") for n in range(1, 5) for i in range(1, 41) if (n, i) not in ((2, 3), (4, 3))
    ]

def test_s3_legacy_cur_layout(moto_s3, aws_env, tmp_path):
    s3 = moto_s3.client()
    s3.create_bucket(Bucket="billing-legacy")
    report_dir = tmp_path / "legacy"
    rows = [line("Usage", "2.50"), line("Tax", "0.25")]
    old_key, new_key = "20260701-20260801/asm-1/legacy-00001.csv.gz", "20260701-20260801/asm-2/legacy-00001.csv.gz"
    write_legacy_csv(report_dir / old_key, [line("Usage", "99.00")])  # an older version AWS left beside it
    write_legacy_csv(report_dir / new_key, rows)
    manifest = {"assemblyId": "asm-2", "bucket": "billing-legacy", "reportKeys": [f"cur/legacy/{new_key}"]}
    (report_dir / "20260701-20260801/legacy-Manifest.json").write_text(json.dumps(manifest))
    (report_dir / "20260701-20260801/asm-1/legacy-Manifest.json").write_text(
        json.dumps({"assemblyId": "asm-1", "reportKeys": [f"cur/legacy/{old_key}"]}))
    moto_s3.upload_tree("billing-legacy", report_dir, "cur/legacy")
    wh = Warehouse(tmp_path / "w.duckdb")
    [load] = aws_cur.ingest(wh, "s3://billing-legacy/cur/legacy", endpoint_url=moto_s3.endpoint_url).loads
    assert (load.period, load.dialect, load.export_id) == ("2026-07", "legacy", "asm-2")
    assert sums(wh) == (2, Decimal("2.75"), Decimal("2.75"))
