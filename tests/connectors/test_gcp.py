"""The Google Cloud connectors, end to end into a real DuckDB warehouse file.

Export files are written here the way `bq extract` writes them (newline-delimited JSON with
nested records) and as nested Parquet with pyarrow, never through our own code; expected
totals are computed here in Python Decimal from the same rows. BigQuery and the Cloud
Billing API are the real client libraries calling a local HTTP server that serves recorded
API responses (tests/data/gcp); the expected BigQuery totals are read from those recordings.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors import gcp_billing, gcp_catalog
from finops.analyses.classify import classify
from finops.exceptions import SourceError
from finops.warehouse import Warehouse
from tests.rollup import rollup_differences
from tests.servers_recorded import RecordedServer, Route

DATA = Path(__file__).parent.parent / "data" / "gcp"
ACCOUNT = "01F3A2-9B7C4D-E5A610"
TABLE = "lark-billing.billing_export.gcp_billing_export_v1_01F3A2_9B7C4D_E5A610"

# Amounts whose float sums drift (0.1 + 0.2 …) and one that JSON writes with an exponent.
COSTS = ["0.1", "0.2", "0.7", "1.15", "0.000015", "123.456789", "0.3", "2.675"]
CREDITS = ["-0.05", "-0.1", "-0.000015", "-0.333333"]
SERVICES = [
    ({"id": "C7E2-9256-1C43", "description": "Vertex AI"}, {"id": "9A2C-7D31-B0E4", "description": "Vertex AI: Training on Nvidia A100 GPU running in Americas"}),
    ({"id": "C7E2-9256-1C43", "description": "Vertex AI"}, {"id": "E3B1-44C2-91F0", "description": "Gemini 2.5 Pro Input Text Tokens"}),
    ({"id": "6F81-5844-456A", "description": "Compute Engine"}, {"id": "2E27-4F75-95CD", "description": "N1 Predefined Instance Core running in Americas"}),
    ({"id": "95FF-2EF5-5EA1", "description": "Cloud Storage"}, {"id": "E5F0-6A5B-1ACE", "description": "Standard Storage US Multi-region"}),
]  # fmt: skip


# -- export fixtures ---------------------------------------------------------------------


def export_rows(n: int, *, month: str = "202607", account: str = ACCOUNT, export_time: str = "2026-08-02 04:00:00",
                scale: str = "1") -> list[dict]:
    """n export rows of one invoice month, as Python values (money as Decimal, None = NULL)."""
    year, mon = int(month[:4]), int(month[4:])
    rows = []
    for i in range(n):
        service, sku = SERVICES[i % len(SERVICES)]
        start = datetime(year, mon, i % 28 + 1, i % 24, tzinfo=timezone.utc)
        credits = [
            {"name": "Promotion", "amount": Decimal(CREDITS[i % len(CREDITS)]) * Decimal(scale), "full_name": "Startup credit",
             "id": "promo-1", "type": "PROMOTION"},
        ] if i % 3 == 0 else []  # fmt: skip
        if i % 7 == 0:
            credits.append({"name": "Committed use discount", "amount": Decimal("-0.02"), "full_name": "Commitment: A100 1 year",
                            "id": "commitments/a100", "type": "COMMITTED_USAGE_DISCOUNT"})  # fmt: skip
        rows.append({
            "billing_account_id": account,
            "service": service,
            "sku": sku,
            "usage_start_time": start,
            "usage_end_time": start + timedelta(hours=1),
            "project": {"id": f"lark-proj-{i % 3}", "number": f"48151623420{i % 3}", "name": f"Lark project {i % 3}",
                        "labels": [{"key": "team", "value": ["research", "product", "marketing"][i % 3]}],
                        "ancestry_numbers": f"/8841000/48151623420{i % 3}/"},
            "labels": [{"key": "env", "value": "prod"}] if i % 2 else [],
            "system_labels": [],
            "location": {"location": "us-central1", "country": "US", "region": "us-central1", "zone": None},
            "export_time": datetime.fromisoformat(export_time).replace(tzinfo=timezone.utc),
            "cost": Decimal(COSTS[i % len(COSTS)]) * Decimal(scale),
            "currency": "USD",
            "currency_conversion_rate": Decimal(1),
            "usage": {"amount": Decimal(3600), "unit": "seconds", "amount_in_pricing_units": Decimal(1), "pricing_unit": "hour"},
            "credits": credits,
            "invoice": {"month": month},
            "cost_type": "regular",
            "cost_at_list": Decimal(COSTS[i % len(COSTS)]) * Decimal(scale) * 2,
        })  # fmt: skip
    return rows


def billed(rows: list[dict]) -> Decimal:
    """BilledCost computed independently: cost plus the credits (negative)."""
    return sum((r["cost"] + sum((c["amount"] for c in r["credits"]), Decimal(0)) for r in rows), Decimal(0))


def _bq_json(value):
    """A value as `bq extract --destination_format NEWLINE_DELIMITED_JSON` writes it."""
    if isinstance(value, dict):
        return {k: _bq_json(v) for k, v in value.items() if v is not None}  # NULL fields are left out
    if isinstance(value, list):
        return [_bq_json(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)  # FLOAT64: a JSON number, shortest form (1.5e-05)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC") if not value.microsecond else value.strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    return value


def write_ndjson(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(_bq_json(r), separators=(",", ":")) + "\n" for r in rows))
    return path


_KV = pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))
PARQUET_SCHEMA = pa.schema([
    ("billing_account_id", pa.string()),
    ("service", pa.struct([("id", pa.string()), ("description", pa.string())])),
    ("sku", pa.struct([("id", pa.string()), ("description", pa.string())])),
    ("usage_start_time", pa.timestamp("us", tz="UTC")),
    ("usage_end_time", pa.timestamp("us", tz="UTC")),
    ("project", pa.struct([("id", pa.string()), ("number", pa.string()), ("name", pa.string()), ("labels", _KV),
                           ("ancestry_numbers", pa.string())])),
    ("labels", _KV),
    ("system_labels", _KV),
    ("location", pa.struct([("location", pa.string()), ("country", pa.string()), ("region", pa.string()), ("zone", pa.string())])),
    ("export_time", pa.timestamp("us", tz="UTC")),
    ("cost", pa.float64()),
    ("currency", pa.string()),
    ("currency_conversion_rate", pa.float64()),
    ("usage", pa.struct([("amount", pa.float64()), ("unit", pa.string()), ("amount_in_pricing_units", pa.float64()),
                         ("pricing_unit", pa.string())])),
    ("credits", pa.list_(pa.struct([("name", pa.string()), ("amount", pa.float64()), ("full_name", pa.string()),
                                    ("id", pa.string()), ("type", pa.string())]))),
    ("invoice", pa.struct([("month", pa.string())])),
    ("cost_type", pa.string()),
    ("cost_at_list", pa.float64()),
])  # fmt: skip


def _floats(value):
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return float(value) if isinstance(value, Decimal) else value


def write_parquet(path: Path, rows: list[dict]) -> Path:
    """Nested Parquet as BigQuery's Parquet extract has it: FLOAT64 money as doubles."""
    pq.write_table(pa.Table.from_pylist([_floats(r) for r in rows], schema=PARQUET_SCHEMA), path)
    return path


def totals(wh: Warehouse, where: str = "true") -> tuple[int, Decimal, Decimal]:
    row = wh.query(f"SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM charges WHERE {where}").row(0)
    return row[0], row[1] or Decimal(0), row[2] or Decimal(0)


# -- export files --------------------------------------------------------------------------


def test_json_lines_export_rows_and_exact_totals(wh, tmp_path):
    july, august = export_rows(200), export_rows(120, month="202608")
    path = write_ndjson(tmp_path / "export.json", july + august)
    report = gcp_billing.ingest_export(wh, [path])
    r = report.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (320, 320, 0)
    assert r.partitions == [f"gcp-billing/{ACCOUNT}/2026-07-01", f"gcp-billing/{ACCOUNT}/2026-08-01"]
    # Exact to the last decimal, where a float sum of the same values drifts.
    assert totals(wh, "BillingPeriodStart = '2026-07-01'") == (200, billed(july), billed(july))
    assert totals(wh, "BillingPeriodStart = '2026-08-01'") == (120, billed(august), billed(august))
    float_sum = sum(float(r["cost"]) + sum(float(c["amount"]) for c in r["credits"]) for r in july)
    assert Decimal(repr(float_sum)) != billed(july)
    credits = sum((c["amount"] for r in july + august for c in r["credits"]), Decimal(0))
    cost = sum((r["cost"] for r in july + august), Decimal(0))
    assert wh.query("SELECT sum(x_CreditAmount), sum(ContractedCost), sum(ListCost) FROM charges").row(0) == (
        credits, cost, cost * 2)
    # Credits are subtracted: BilledCost = cost + credits on every row.
    assert wh.query("SELECT count(*) FROM charges WHERE BilledCost <> ContractedCost + x_CreditAmount").item() == 0
    assert [(p["billing_period"], p["billed_cost"]) for p in report.period_totals.to_dicts()] == [
        ("2026-07", billed(july)), ("2026-08", billed(august))]


def test_parquet_export_loads_the_same_and_replaces_the_json_load(wh, tmp_path):
    rows = export_rows(150)
    gcp_billing.ingest_export(wh, [write_ndjson(tmp_path / "july.json", rows)])
    from_json = wh.query("SELECT x_SourceRow, BilledCost, Tags, ChargePeriodStart FROM charges ORDER BY 1").rows()
    report = gcp_billing.ingest_export(wh, [write_parquet(tmp_path / "july.parquet", rows)])
    assert report.result.rows_replaced == 150  # same source kind, same month: replaced, not added
    assert totals(wh) == (150, billed(rows), billed(rows))
    assert wh.query("SELECT x_SourceRow, BilledCost, Tags, ChargePeriodStart FROM charges ORDER BY 1").rows() == from_json
    assert wh.query("SELECT DISTINCT x_SourceFile FROM charges").item().endswith("july.parquet")


def test_each_field_lands_where_the_mapping_says(wh, tmp_path):
    training, gemini, compute, storage = export_rows(4)
    training["labels"] = [{"key": "team", "value": "research-llm"}, {"key": "workload", "value": "training"}]
    training["system_labels"] = [{"key": "compute.googleapis.com/machine_spec", "value": "a2-highgpu-1g"}]
    training["credits"] = [
        {"name": "CUD", "amount": Decimal("-0.03"), "full_name": "Commitment - 1 year: A100", "id": "commitments/a100-1y",
         "type": "COMMITTED_USAGE_DISCOUNT"},
        {"name": "Promotion", "amount": Decimal("-0.01"), "full_name": "Startup credit", "id": "promo-1", "type": "PROMOTION"},
    ]  # fmt: skip
    training["cost"] = Decimal("0.1")
    tax = dict(compute, cost_type="tax", cost=Decimal("0.3"), credits=[], project=None, labels=[], cost_at_list=None)
    correction = dict(gemini, cost_type="adjustment", cost=Decimal("-0.1"), credits=[])
    rounding = dict(storage, cost_type="rounding_error", cost=Decimal("0.000001"), credits=[])
    fee = dict(compute, sku={"id": "8C4B-1F2E-CUD1", "description": "Commitment v1: Nvidia A100 GPU in Americas for 1 Year"},
               cost=Decimal("1.5"), credits=[])  # fmt: skip
    write_ndjson(tmp_path / "e.json", [training, gemini, compute, storage, tax, correction, rounding, fee])
    gcp_billing.ingest_export(wh, [tmp_path / "e.json"])
    got = {r["x_SourceRow"]: r for r in wh.query("SELECT * FROM charges").to_dicts()}
    t = got[1]
    assert t["BilledCost"] == t["EffectiveCost"] == Decimal("0.06") and t["x_CreditAmount"] == Decimal("-0.04")
    assert t["x_CreditTypes"] == ["COMMITTED_USAGE_DISCOUNT", "PROMOTION"]
    assert (t["CommitmentDiscountCategory"], t["CommitmentDiscountId"], t["CommitmentDiscountStatus"]) == (
        "Usage", "commitments/a100-1y", "Used")
    assert t["PricingCategory"] == "Committed" and t["x_PricingModel"] == "CommittedUseDiscount"
    # Project labels are inherited; the resource's own label wins on the same key.
    assert t["Tags"] == {"team": "research-llm", "workload": "training"}
    assert (t["SubAccountId"], t["SubAccountName"], t["SubAccountType"]) == ("lark-proj-0", "Lark project 0", "Project")
    assert (t["BillingAccountId"], t["ProviderName"], t["ServiceName"], t["ServiceCategory"]) == (
        ACCOUNT, "Google Cloud", "Vertex AI", "AI and Machine Learning")
    assert t["SkuId"] == "9A2C-7D31-B0E4"
    assert t["ChargeDescription"] == t["x_UsageType"] == "Vertex AI: Training on Nvidia A100 GPU running in Americas"
    assert (t["RegionId"], t["x_InstanceType"], t["ListCost"]) == ("us-central1", "a2-highgpu-1g", Decimal("0.2"))
    assert (t["ConsumedQuantity"], t["ConsumedUnit"], t["PricingQuantity"], t["PricingUnit"]) == (
        Decimal(3600), "seconds", Decimal(1), "hour")
    assert (str(t["BillingPeriodStart"]), str(t["BillingPeriodEnd"]), str(t["ChargePeriodStart"])) == (
        "2026-07-01 00:00:00", "2026-08-01 00:00:00", "2026-07-01 00:00:00")
    assert (t["ChargeCategory"], t["ChargeClass"], t["x_LineItemType"]) == ("Usage", None, "regular")
    assert t["x_ExportId"] == "2026-08-02T04:00:00.000000Z"
    assert got[3]["ServiceCategory"] == "Compute" and got[4]["ServiceCategory"] == "Storage"
    assert (got[5]["ChargeCategory"], got[5]["SubAccountId"], got[5]["Tags"], got[5]["ListCost"]) == ("Tax", None, None, None)
    assert (got[6]["ChargeCategory"], got[6]["ChargeClass"], got[6]["BilledCost"]) == ("Credit", "Correction", Decimal("-0.1"))
    assert (got[7]["ChargeCategory"], got[7]["x_LineItemType"]) == ("Adjustment", "rounding_error")
    # The monthly commitment fee is already in its month: no amortization, EffectiveCost = BilledCost.
    assert (got[8]["ChargeCategory"], got[8]["ChargeFrequency"], got[8]["PricingCategory"]) == ("Usage", "Recurring", "Committed")
    assert got[8]["EffectiveCost"] == got[8]["BilledCost"] == Decimal("1.5")
    assert got[2]["ChargeFrequency"] == "Usage-Based" and got[2]["PricingCategory"] == "Standard"
    # finops.analyses.classify reads the SKU description and tells training from inference.
    with wh.ibis() as con:
        classified = classify(con.table("charges")).select("x_SourceRow", "workload").to_pyarrow().to_pylist()
    workloads = {r["x_SourceRow"]: r["workload"] for r in classified}
    assert (workloads[1], workloads[2], workloads[3]) == ("training", "inference", "non-AI")


def test_bad_values_are_quarantined_with_file_row_and_column(wh, tmp_path):
    rows = export_rows(12)
    path = write_ndjson(tmp_path / "bad.json", rows)
    lines = path.read_text().splitlines()
    edits = {
        2: lambda d: d.update(cost="12,50"),
        4: lambda d: d.update(usage_start_time="last tuesday"),
        6: lambda d: d["credits"].append({"name": "x", "amount": "n/a", "type": "PROMOTION"}),
        8: lambda d: d["invoice"].update(month="2026-13"),
        10: lambda d: d.update(cost_type="refund"),
    }
    for row_number, edit in edits.items():
        record = json.loads(lines[row_number - 1])
        edit(record)
        lines[row_number - 1] = json.dumps(record)
    lines[11] = lines[11][:40]  # row 12: a line cut short
    path.write_text("\n".join(lines) + "\n")

    report = gcp_billing.ingest_export(wh, [path])
    r = report.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (12, 6, 6)
    q = wh.query("SELECT file, row_number, column_name, reason, raw_row FROM quarantine ORDER BY row_number")
    assert q["row_number"].to_list() == [2, 4, 6, 8, 10, 12]
    assert q["column_name"].to_list() == ["cost", "usage_start_time", "credits.amount", "invoice.month", "cost_type", "row"]
    assert set(q["file"]) == {str(path)}
    assert "cannot read '12,50' as a number" in q["reason"][0]
    assert "cannot read 'last tuesday' as a date-time" in q["reason"][1]
    assert "credits.amount: cannot read 'n/a' as a number" in q["reason"][2]
    assert "cannot read '2026-13' as a month YYYYMM" in q["reason"][3]
    assert "unknown value 'refund'" in q["reason"][4]
    assert q["reason"][5] == "row: not valid JSON" and json.loads(q["raw_row"][5]) == {"line": lines[11]}
    assert '"12,50"' in q["raw_row"][0]
    good = [row for i, row in enumerate(rows, start=1) if i not in (2, 4, 6, 8, 10, 12)]
    assert totals(wh) == (6, billed(good), billed(good))
    assert wh.query("SELECT x_SourceRow FROM charges ORDER BY 1")["x_SourceRow"].to_list() == [1, 3, 5, 7, 9, 11]


def test_a_file_that_is_not_a_billing_export_is_refused_and_nothing_is_written(wh, tmp_path):
    good = write_ndjson(tmp_path / "good.json", export_rows(5))
    gcp_billing.ingest_export(wh, [good])
    before = totals(wh)
    batches = wh.query("SELECT count(*) FROM ingest_batches").item()
    other = tmp_path / "invoices.json"
    other.write_text('{"invoice": {"month": "202607"}, "amount": 3.5, "currency": "USD", "customer": "x"}\n')
    with pytest.raises(SourceError) as err:
        gcp_billing.ingest_export(wh, [good, other])
    message = str(err.value)
    assert "invoices.json: not a Cloud Billing export: missing fields" in message
    for field in ("billing_account_id", "service.description", "sku.id", "usage_start_time", "cost,", "cost_type"):
        assert field in message
    assert "currency" not in message and "invoice.month" not in message  # present fields are not listed
    csv_file = tmp_path / "focus.csv"
    csv_file.write_text("BilledCost,BillingAccountId\n1,2\n")
    with pytest.raises(SourceError, match="focus.csv: not a billing export: neither newline-delimited JSON nor Parquet"):
        gcp_billing.ingest_export(wh, [csv_file])
    parquet = tmp_path / "other.parquet"
    pq.write_table(pa.table({"amount": [1.5], "currency": ["USD"]}), parquet)
    with pytest.raises(SourceError, match="other.parquet: not a Cloud Billing export: missing fields billing_account_id"):
        gcp_billing.ingest_export(wh, [parquet])
    assert totals(wh) == before
    assert wh.query("SELECT count(*) FROM ingest_batches").item() == batches


def test_the_same_file_twice_gives_the_same_totals(wh, tmp_path):
    rows = export_rows(90)
    path = tmp_path / "july.json.gz"  # bq extract --compression GZIP
    path.write_bytes(gzip.compress(write_ndjson(tmp_path / "plain.json", rows).read_bytes()))
    gcp_billing.ingest_export(wh, [path])
    once = totals(wh)
    second = gcp_billing.ingest_export(wh, [path])
    assert totals(wh) == once == (90, billed(rows), billed(rows))
    assert second.result.rows_replaced == 90


def test_a_later_export_with_late_rows_replaces_the_month_and_leaves_others(wh, tmp_path):
    july, june = export_rows(60), export_rows(40, month="202606")
    gcp_billing.ingest_export(wh, [write_ndjson(tmp_path / "first.json", july + june)])
    late = export_rows(8, export_time="2026-08-05 06:30:00", scale="3")
    for row in late:
        row["usage_start_time"] = datetime(2026, 7, 31, 22, tzinfo=timezone.utc)
    later = july + late
    for row in later:
        row["export_time"] = max(row["export_time"], datetime(2026, 8, 5, 6, 30, tzinfo=timezone.utc))
    report = gcp_billing.ingest_export(wh, [write_ndjson(tmp_path / "later.json", later)])
    assert report.result.rows_replaced == 60
    assert totals(wh, "BillingPeriodStart = '2026-07-01'") == (68, billed(later), billed(later))
    assert totals(wh, "BillingPeriodStart = '2026-06-01'") == (40, billed(june), billed(june))
    assert wh.query("SELECT DISTINCT x_ExportId FROM charges WHERE BillingPeriodStart = '2026-07-01'").item() == (
        "2026-08-05T06:30:00.000000Z")
    assert rollup_differences(wh) == (0, 0)


# -- BigQuery --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def google_api():
    """One recorded-API server for the session; each test sets its own routes."""
    with RecordedServer(data_dir=DATA) as server:
        yield server


@pytest.fixture
def api(google_api):
    google_api.use([])
    google_api.clear()
    return google_api


_BQ = "/bigquery/v2/projects/lark-billing"
_PAGE_2 = "BEBX4NQCI6AQAAASA4EAAEEAQCAAKGQIBC7BAEQIAARQCBAIGQ"


def bigquery_routes(*, late: bool = False) -> list[Route]:
    """jobs.insert → jobs.get → getQueryResults (status, then two pages) for 202607; 202608 is empty."""
    july = "bq_results_202607_late" if late else "bq_results_202607"
    month_body = lambda month: {"configuration": {"query": {"queryParameters": [{"parameterValue": {"value": month}}]}}}
    return [
        Route("GET", f"{_BQ}/datasets/billing_export/tables/gcp_billing_export_v1_01F3A2_9B7C4D_E5A610", "bq_table_standard.json"),
        Route("GET", f"{_BQ}/datasets/billing_export/tables/invoices", "bq_table_not_billing.json"),
        Route("GET", f"{_BQ}/datasets/billing_export/tables/forbidden", "bq_error_403.json", status=403),
        Route("POST", f"{_BQ}/jobs", "bq_job_202607_running.json", body=month_body("202607")),
        Route("POST", f"{_BQ}/jobs", "bq_job_202608_running.json", body=month_body("202608")),
        Route("GET", f"{_BQ}/jobs/job_7Fq2c1_202607", "bq_job_202607_done.json"),
        Route("GET", f"{_BQ}/jobs/job_9Kd4e8_202608", "bq_job_202608_done.json"),
        Route("GET", f"{_BQ}/queries/job_7Fq2c1_202607", f"{july}_complete.json", query={"maxResults": "0"}),
        Route("GET", f"{_BQ}/queries/job_7Fq2c1_202607", f"{july}_page2.json", query={"pageToken": _PAGE_2}),
        Route("GET", f"{_BQ}/queries/job_7Fq2c1_202607", f"{july}_page1.json"),
        Route("GET", f"{_BQ}/queries/job_9Kd4e8_202608", "bq_results_202608_empty.json"),
    ]


def recorded_rows(*names: str) -> list[dict]:
    """The rows of recorded getQueryResults pages, by field name (values as the API sent them)."""
    complete = json.loads((DATA / "bq_results_202607_complete.json").read_text())
    fields = [f["name"] for f in complete["schema"]["fields"]]
    rows = []
    for name in names:
        for row in json.loads((DATA / name).read_text()).get("rows", []):
            rows.append({f: cell["v"] for f, cell in zip(fields, row["f"], strict=True)})
    return rows


def recorded_billed(rows: list[dict]) -> Decimal:
    return sum(
        (Decimal(r["cost"]) + sum((Decimal(c["v"]["f"][1]["v"]) for c in r["credits"]), Decimal(0)) for r in rows),
        Decimal(0),
    )


def test_bigquery_queries_each_month_with_a_bound_parameter_and_pages_the_results(wh, api):
    api.use(bigquery_routes())
    reports = gcp_billing.ingest_bigquery(wh, TABLE, ["2026-07", "2026-08"], api_endpoint=api.url)
    rows = recorded_rows("bq_results_202607_page1.json", "bq_results_202607_page2.json")
    expected = recorded_billed(rows)
    assert expected == Decimal("1.02")  # 0.1 - 0.03 + 0.2 + 0.7 - 0.1 - 0.05 + 0.3 - 0.1, by hand
    assert 0.1 - 0.03 + 0.2 + 0.7 - 0.1 - 0.05 + 0.3 - 0.1 == 1.0199999999999998  # what a float sum would load
    july, august = reports
    assert (july.result.rows_read, july.result.rows_loaded, july.result.rows_quarantined) == (5, 5, 0)
    assert (august.result.rows_read, august.result.partitions) == (0, [])
    assert totals(wh) == (5, expected, expected)

    inserts = api.received("POST", f"{_BQ}/jobs")
    assert len(inserts) == 2  # one query per month
    for sent, month in zip(inserts, ("202607", "202608"), strict=True):
        query = sent.body["configuration"]["query"]
        assert "@invoice_month" in query["query"] and month not in query["query"]  # bound, not formatted
        assert query["queryParameters"] == [
            {"parameterType": {"type": "STRING"}, "parameterValue": {"value": month}, "name": "invoice_month"}]
        assert query["useLegacySql"] is False and sent.body["jobReference"]["location"] == "US"
        assert f"FROM `{TABLE}`" in query["query"] and "`credits`" in query["query"]
        assert "`tags`" not in query["query"] and "`adjustment_info`" not in query["query"]  # only fields we read
    pages = [r for r in api.received("GET", f"{_BQ}/queries/job_7Fq2c1_202607") if r.param("maxResults") != "0"]
    assert [p.param("pageToken") for p in pages] == [None, _PAGE_2]  # two pages, the second by its token
    assert all("authorization" not in r.headers for r in api.requests)  # anonymous: no token sent
    source = wh.query("SELECT DISTINCT x_SourceFile FROM charges").item()
    assert source == f"bigquery://{TABLE}?invoice_month=202607"
    assert wh.query("SELECT x_SourceRow FROM charges ORDER BY 1")["x_SourceRow"].to_list() == [1, 2, 3, 4, 5]
    assert wh.query("SELECT DISTINCT x_ExportId FROM charges").item() == "2026-08-01T05:10:00.000000Z"
    by_category = dict(wh.query("SELECT ChargeCategory, sum(BilledCost) FROM charges GROUP BY ALL").rows())
    assert by_category == {"Usage": Decimal("0.82"), "Tax": Decimal("0.3"), "Credit": Decimal("-0.1")}


def test_bigquery_late_rows_replace_the_month_and_an_export_file_replaces_it_again(wh, api, tmp_path):
    api.use(bigquery_routes())
    gcp_billing.ingest_bigquery(wh, TABLE, ["2026-07"], api_endpoint=api.url)
    api.use(bigquery_routes(late=True))  # Google added a row to July after the first load
    [report] = gcp_billing.ingest_bigquery(wh, TABLE, ["202607"], api_endpoint=api.url)
    late = recorded_rows("bq_results_202607_late_page1.json", "bq_results_202607_late_page2.json")
    assert report.result.rows_replaced == 5 and report.result.rows_loaded == 6
    assert totals(wh) == (6, recorded_billed(late), recorded_billed(late)) == (6, Decimal("1.12"), Decimal("1.12"))
    assert wh.query("SELECT DISTINCT x_ExportId FROM charges").item() == "2026-08-04T06:02:00.000000Z"
    # The same month from an export file is the same source: it replaces the BigQuery rows.
    rows = export_rows(10, account=ACCOUNT)
    gcp_billing.ingest_export(wh, [write_ndjson(tmp_path / "july.json", rows)])
    assert totals(wh) == (10, billed(rows), billed(rows))


def test_bigquery_table_that_is_not_a_billing_export_is_refused_before_any_query(wh, api):
    api.use(bigquery_routes())
    with pytest.raises(SourceError) as err:
        gcp_billing.ingest_bigquery(wh, "lark-billing.billing_export.invoices", ["2026-07"], api_endpoint=api.url)
    assert "is not a Cloud Billing export: missing fields service.description, sku.id" in str(err.value)
    assert api.count("POST") == 0
    assert not wh.exists() or wh.query("SELECT count(*) FROM ingest_batches").item() == 0


def test_bigquery_permission_denied_is_one_clear_error_with_a_hint(wh, api):
    api.use(bigquery_routes())
    with pytest.raises(SourceError) as err:
        gcp_billing.ingest_bigquery(wh, "lark-billing.billing_export.forbidden", ["2026-07"], api_endpoint=api.url)
    assert "permission denied (403)" in str(err.value) and "Access Denied" in str(err.value)
    assert "roles/bigquery.dataViewer" in err.value.hint
    with pytest.raises(SourceError, match="not a month"):
        gcp_billing.ingest_bigquery(wh, TABLE, ["July"], api_endpoint=api.url)
    with pytest.raises(SourceError, match="not a BigQuery table id"):
        gcp_billing.ingest_bigquery(wh, "billing_export.gcp_billing_export_v1", ["2026-07"], api_endpoint=api.url)


def test_credentials_are_never_sent_in_the_clear_to_another_host():
    with pytest.raises(SourceError, match="refusing to send Google credentials over plain http to billing.example.com"):
        gcp_billing.google_credentials("http://billing.example.com:8080")
    assert type(gcp_billing.google_credentials("http://127.0.0.1:9")).__name__ == "AnonymousCredentials"
    assert type(gcp_billing.google_credentials("https://bq.example.com", anonymous=True)).__name__ == "AnonymousCredentials"
    assert gcp_billing.google_credentials(None) is None  # the client library finds Application Default Credentials


# -- Cloud Billing catalog -------------------------------------------------------------------

_VERTEX, _COMPUTE = "C7E2-9256-1C43", "6F81-5844-456A"
_SKUS_PAGE_2 = "CgNDN0UyEgZwYWdlLTI"


def catalog_routes(*, vertex_repriced: bool = False) -> list[Route]:
    vertex = (
        [Route("GET", f"/v1/services/{_VERTEX}/skus", "catalog_skus_vertex_repriced.json")]
        if vertex_repriced
        else [
            Route("GET", f"/v1/services/{_VERTEX}/skus", "catalog_skus_vertex_page2.json", query={"pageToken": _SKUS_PAGE_2}),
            Route("GET", f"/v1/services/{_VERTEX}/skus", "catalog_skus_vertex_page1.json"),
        ]
    )
    return [
        Route("GET", "/v1/services", "catalog_services.json"),
        *vertex,
        Route("GET", f"/v1/services/{_COMPUTE}/skus", "catalog_skus_compute.json"),
        Route("GET", f"/v1/billingAccounts/{ACCOUNT}/projects", "billing_projects.json"),
    ]


def recorded_prices(*names: str) -> dict[tuple[str, Decimal | None], Decimal | None]:
    """(sku id, tier start) → unit price, computed from the recordings' units and nanos."""
    prices = {}
    for name in names:
        for sku in json.loads((DATA / name).read_text())["skus"]:
            if not sku["pricingInfo"]:
                prices[(sku["skuId"], None)] = None
            for info in sku["pricingInfo"]:
                for tier in info["pricingExpression"]["tieredRates"]:
                    price = Decimal(tier["unitPrice"]["units"]) + Decimal(tier["unitPrice"]["nanos"]) / Decimal(10**9)
                    prices[(sku["skuId"], Decimal(str(tier["startUsageAmount"])))] = price
    return prices


def stored_prices(wh: Warehouse, service_id: str) -> dict:
    rows = wh.query("SELECT sku_id, tier_start_amount, unit_price FROM sku_prices WHERE service_id = ?", [service_id]).rows()
    return {(sku, start): price for sku, start, price in rows}


def test_catalog_stores_exact_list_prices_over_pages_and_the_projects(wh, api):
    api.use(catalog_routes())
    summary = gcp_catalog.ingest_catalog(wh, ["vertex ai", _COMPUTE], billing_account=ACCOUNT, api_endpoint=api.url)
    assert [(s.name, s.skus, s.prices) for s in summary.services] == [("Vertex AI", 5, 5), ("Compute Engine", 2, 5)]
    assert (summary.prices.rows_read, summary.prices.rows_loaded, summary.prices.rows_quarantined) == (10, 10, 0)
    assert stored_prices(wh, _VERTEX) == recorded_prices("catalog_skus_vertex_page1.json", "catalog_skus_vertex_page2.json")
    assert stored_prices(wh, _COMPUTE) == recorded_prices("catalog_skus_compute.json")
    # By hand: Gemini input is $1.25 per million tokens; the A100 hour is 2 units + 933908000 nanos.
    assert stored_prices(wh, _VERTEX)[("E3B1-44C2-91F0", Decimal(0))] == Decimal("0.00000125")
    assert stored_prices(wh, _VERTEX)[("9A2C-7D31-B0E4", Decimal(0))] == Decimal("2.933908")
    assert stored_prices(wh, _VERTEX)[("0D1E-F00D-0000", None)] is None  # unpriced, never $0
    egress = wh.query("SELECT unit_price FROM sku_prices WHERE sku_id = '9DE9-9092-B3BC' ORDER BY tier_start_amount")["unit_price"].to_list()
    assert egress == [Decimal("0"), Decimal("0.12"), Decimal("0.11"), Decimal("0.08")]
    row = wh.query("SELECT * FROM sku_prices WHERE sku_id = '9A2C-7D31-B0E4'").to_dicts()[0]
    assert (row["provider"], row["service_name"], row["pricing_unit"], row["currency"], row["regions"]) == (
        "Google Cloud", "Vertex AI", "h", "USD", ["us-central1", "us-east4"])
    assert (row["resource_family"], row["resource_group"], row["usage_type"]) == ("Compute", "GPU", "OnDemand")
    assert str(row["effective_time"]) == "2026-07-14 16:41:03.212000"
    skus = api.received("GET", f"/v1/services/{_VERTEX}/skus")
    assert [r.param("pageToken") for r in skus] == [None, _SKUS_PAGE_2]
    projects = wh.query("SELECT project_id, billing_enabled FROM billing_projects WHERE billing_account_id = ? ORDER BY 1",
                        [ACCOUNT]).rows()
    assert len(projects) == 5 and ("lark-sandbox-old", False) in projects
    assert all("authorization" not in r.headers for r in api.requests)


def test_a_later_catalog_load_replaces_only_the_services_it_loads(wh, api):
    api.use(catalog_routes())
    gcp_catalog.ingest_catalog(wh, ["Vertex AI", "Compute Engine"], billing_account=ACCOUNT, api_endpoint=api.url)
    compute_before = stored_prices(wh, _COMPUTE)
    api.use(catalog_routes(vertex_repriced=True))  # Google cut the Gemini input price and retired SKUs
    summary = gcp_catalog.ingest_catalog(wh, ["Vertex AI"], billing_account=ACCOUNT, api_endpoint=api.url)
    assert summary.prices.rows_replaced == 5 and summary.prices.rows_loaded == 3
    assert stored_prices(wh, _VERTEX) == recorded_prices("catalog_skus_vertex_repriced.json")
    assert stored_prices(wh, _VERTEX)[("E3B1-44C2-91F0", Decimal(0))] == Decimal("0.000001")
    assert stored_prices(wh, _COMPUTE) == compute_before
    assert summary.projects.rows_replaced == 5
    assert wh.query("SELECT count(*) FROM billing_projects").item() == 5


def test_a_service_the_catalog_does_not_know_is_an_error_naming_close_matches(wh, api):
    api.use(catalog_routes())
    with pytest.raises(SourceError) as err:
        gcp_catalog.ingest_catalog(wh, ["Vertex AI", "Vertx AI"], api_endpoint=api.url)
    assert "no service named 'Vertx AI'" in str(err.value) and "'Vertex AI'" in err.value.hint
    assert api.count("GET", r"/v1/services/.*/skus") == 0
    assert not wh.exists() or wh.query("SELECT count(*) FROM sku_prices").item() == 0


# -- the commands ----------------------------------------------------------------------------


def finops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )


def test_cli_gcp_export_and_gcp_bigquery(tmp_path, api):
    warehouse = str(tmp_path / "w.duckdb")
    rows = export_rows(30, month="202606")
    path = write_ndjson(tmp_path / "june.json", rows)
    run = finops("ingest", "gcp-export", str(path), "--warehouse", warehouse)
    assert run.returncode == 0, run.stderr
    assert "30 rows read, 30 loaded, 0 quarantined" in run.stdout and f"{billed(rows):,.2f}" in run.stdout
    api.use(bigquery_routes())
    run = finops("ingest", "gcp-bigquery", TABLE, "--months", "2026-07..2026-08", "--api-endpoint", api.url, "--warehouse", warehouse)
    assert run.returncode == 0, run.stderr
    assert "invoice month 2026-07: 5 rows read, 5 loaded" in run.stdout and "1.02" in run.stdout
    assert "invoice month 2026-08: 0 rows read" in run.stdout
    denied = finops("ingest", "gcp-bigquery", "lark-billing.billing_export.forbidden", "--months", "2026-07",
                    "--api-endpoint", api.url, "--warehouse", warehouse)  # fmt: skip
    assert denied.returncode == 1 and "permission denied (403)" in denied.stderr and "Traceback" not in denied.stderr


def test_cli_gcp_catalog(tmp_path, api):
    api.use(catalog_routes())
    warehouse = str(tmp_path / "w.duckdb")
    run = finops("ingest", "gcp-catalog", "--services", "Vertex AI,Compute Engine", "--billing-account", ACCOUNT,
                 "--api-endpoint", api.url, "--warehouse", warehouse)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "10 prices stored for 2 services" in run.stdout and "5 projects of billing account" in run.stdout
    assert "C7E2-9256-1C43" in run.stdout


def test_ibis_reads_the_loaded_tags(wh, tmp_path):
    """Tags are a real MAP column: analyses can group by a tag key."""
    rows = export_rows(9)
    gcp_billing.ingest_export(wh, [write_ndjson(tmp_path / "t.json", rows)])
    with wh.ibis() as con:
        charges = con.table("charges")
        by_team = charges.group_by(team=charges.Tags.get("team")).agg(n=charges.count()).to_pyarrow().to_pylist()
    assert sorted((r["team"], r["n"]) for r in by_team) == [("marketing", 3), ("product", 3), ("research", 3)]


def test_several_files_staged_side_by_side_keep_their_order_rows_and_quarantine(wh, tmp_path, monkeypatch):
    """JSON lines (one gzipped) and Parquet files are staged two at a time and appended in order:
    each row keeps its file and row number, and a broken line is quarantined under its own file.
    Under a 200 MB memory limit: each read buffer is sized to the file's lines (it was 256 MiB)."""
    monkeypatch.setenv("FINOPS_MEMORY_LIMIT", "200MB")
    months = ["202607", "202608", "202609", "202610"]
    files, good = [], []
    for n, month in enumerate(months):
        rows = export_rows(40 + n, month=month)
        if n == 1:
            path = write_parquet(tmp_path / f"part-{n}.parquet", rows)
        else:
            path = write_ndjson(tmp_path / f"part-{n}.json", rows)
        if n == 2:  # row 7: a line cut short
            lines = path.read_text().splitlines()
            lines[6] = lines[6][:30]
            path.write_text("\n".join(lines) + "\n")
        if n == 3:
            packed = path.with_name(path.name + ".gz")
            packed.write_bytes(gzip.compress(path.read_bytes()))
            path.unlink()
            path = packed
        files.append(path)
        good += [row for i, row in enumerate(rows, start=1) if (n, i) != (2, 7)]

    report = gcp_billing.ingest_export(wh, files)
    r = report.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (166, 165, 1)
    assert wh.query("SELECT file, row_number, column_name FROM quarantine").rows() == [(str(files[2]), 7, "row")]
    order = wh.query("SELECT x_SourceFile AS f, x_SourceRow AS r FROM charges ORDER BY rowid").rows()
    assert order == [(str(p), i) for n, p in enumerate(files) for i in range(1, 41 + n) if (n, i) != (2, 7)]
    assert totals(wh)[:2] == (165, billed(good))
