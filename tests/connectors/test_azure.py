"""The Azure Cost Management connector, end to end into a real DuckDB warehouse file.

Export files are written here with the csv module, gzip and pyarrow, in the header styles of
Enterprise Agreement (PascalCase), Microsoft Customer Agreement (camelCase, with a BOM) and
older EA files (PreTaxCost, UsageDateTime, SubscriptionGuid); expected totals are Decimal sums
of the values written. Blob Storage is Azurite over HTTP with the real azure-storage-blob
client, and the CLI runs as a real subprocess.
"""

from __future__ import annotations

import base64
import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors import azure
from finops.analyses.spend import workload_split
from finops.exceptions import SourceError
from finops.warehouse import Warehouse
from tests.focus_files import make_rows
from tests.focus_files import write_csv as write_focus_csv
from tests.rollup import rollup_differences
from tests.servers_azurite import ACCOUNT, ACCOUNT_KEY, azurite  # noqa: F401  (azurite is a session fixture)

ACCOUNT_ID = "8611537"
SUB = "0b1c2d3e-0000-4000-8000-000000000001"

# Logical field → header spelling, per file style. Columns a style lacks are left out.
EA = {
    "account": "BillingAccountId", "account_name": "BillingAccountName", "period_start": "BillingPeriodStartDate",
    "period_end": "BillingPeriodEndDate", "sub": "SubscriptionId", "sub_name": "SubscriptionName", "date": "Date",
    "category": "MeterCategory", "subcategory": "MeterSubCategory", "meter_id": "MeterId", "meter": "MeterName",
    "product": "ProductName", "resource": "ResourceId", "location": "ResourceLocation", "charge": "ChargeType",
    "pricing": "PricingModel", "quantity": "Quantity", "unit": "UnitOfMeasure", "unit_price": "UnitPrice",
    "payg_price": "PayGPrice", "cost": "CostInBillingCurrency", "currency": "BillingCurrencyCode", "tags": "Tags",
    "service": "ConsumedService", "reservation": "ReservationId", "benefit": "BenefitId", "info": "AdditionalInfo",
}  # fmt: skip
MCA = {
    "account": "billingAccountId", "account_name": "billingAccountName", "period_start": "billingPeriodStartDate",
    "period_end": "billingPeriodEndDate", "sub": "SubscriptionId", "sub_name": "subscriptionName", "date": "date",
    "category": "meterCategory", "subcategory": "meterSubCategory", "meter_id": "meterId", "meter": "meterName",
    "product": "ProductName", "resource": "ResourceId", "location": "resourceLocation", "charge": "chargeType",
    "pricing": "pricingModel", "quantity": "quantity", "unit": "unitOfMeasure", "unit_price": "unitPrice",
    "payg_price": "PayGPrice", "cost": "costInBillingCurrency", "currency": "billingCurrency", "tags": "tags",
    "service": "consumedService", "reservation": "reservationId", "benefit": "benefitId", "info": "additionalInfo",
}  # fmt: skip
OLD_EA = {  # schema 2019-10-01: no billing account, no charge type
    "sub": "SubscriptionGuid", "sub_name": "SubscriptionName", "date": "UsageDateTime", "category": "MeterCategory",
    "subcategory": "MeterSubcategory", "meter_id": "MeterId", "meter": "MeterName", "resource": "InstanceId",
    "location": "ResourceLocation", "quantity": "UsageQuantity", "unit": "UnitOfMeasure", "cost": "PreTaxCost",
    "currency": "Currency", "tags": "Tags", "service": "ConsumedService",
}  # fmt: skip


def line(cost: str, **fields: str) -> dict[str, str]:
    """One cost line (logical field names), July 2026 usage on demand unless told otherwise."""
    row = {
        "account": ACCOUNT_ID, "account_name": "Contoso", "period_start": "07/01/2026", "period_end": "07/31/2026",
        "sub": SUB, "sub_name": "ml-prod", "date": "07/02/2026", "category": "Virtual Machines",
        "subcategory": "Dv5 Series", "meter_id": "mtr-d4", "meter": "D4 v5", "product": "Virtual Machines Dv5",
        "resource": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        "location": "EastUS", "charge": "Usage", "pricing": "OnDemand", "quantity": "1", "unit": "1 Hour",
        "unit_price": "", "payg_price": "", "cost": cost, "currency": "USD", "tags": "", "service": "Microsoft.Compute",
        "reservation": "", "benefit": "", "info": "",
    }  # fmt: skip
    row.update(fields)
    return row


def write_export(path: Path, lines: list[dict[str, str]], style: dict[str, str] = EA, *, bom: bool = False) -> Path:
    """An export file in ``style``'s header; .csv, .csv.gz or .parquet (typed: DOUBLE costs, DATE dates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".parquet"):
        columns = {}
        for field, header in style.items():
            values = [r.get(field, "") for r in lines]
            if field in ("cost", "quantity"):
                columns[header] = pa.array([float(v) if v else None for v in values], pa.float64())
            elif field == "date":
                columns[header] = pa.array([datetime.strptime(v, "%m/%d/%Y").date() for v in values], pa.date32())
            else:
                columns[header] = pa.array([v or None for v in values], pa.string())
        pq.write_table(pa.table(columns), path)
        return path
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(style.values())
        writer.writerows([[r.get(field, "") for field in style] for r in lines])
    return path


def write_run(export_dir: Path, folder: str, run_id: str, submitted: str, dataset: str,
              parts: dict[str, list[dict[str, str]]], style: dict[str, str] = EA, *, container_root: Path | None = None) -> Path:
    """A Cost Management export run: its parts and a manifest.json in Microsoft's documented shape."""
    run_dir = export_dir / folder / run_id
    root = container_root or export_dir.parent
    blobs = []
    for name, rows in parts.items():
        part = write_export(run_dir / name, rows, style)
        blobs.append({"blobName": part.relative_to(root).as_posix(), "byteCount": part.stat().st_size,
                      "dataRowCount": len(rows)})  # fmt: skip
    start = datetime.strptime(folder[:8], "%Y%m%d")
    manifest = {
        "manifestVersion": "2024-04-01",
        "byteCount": sum(b["byteCount"] for b in blobs),
        "blobCount": len(blobs),
        "dataRowCount": sum(b["dataRowCount"] for b in blobs),
        "exportConfig": {"exportName": export_dir.name, "resourceId": f"/providers/Microsoft.Billing/billingAccounts/{ACCOUNT_ID}"
                         f"/providers/Microsoft.CostManagement/exports/{export_dir.name}", "dataVersion": "2021-10-01",
                         "apiVersion": "2023-07-01-preview", "type": dataset, "timeFrame": "MonthToDate", "granularity": "Daily"},
        "deliveryConfig": {"partitionData": True, "dataOverwriteBehavior": "CreateNewReport", "fileFormat": "Csv",
                           "compressionMode": "None", "rootFolderPath": export_dir.parent.name},
        "runInfo": {"executionType": "Scheduled", "submittedTime": submitted, "runId": run_id,
                    "startDate": f"{start:%Y-%m-%d}T00:00:00", "endDate": f"{start:%Y-%m}-20T00:00:00Z"},
        "blobs": blobs,
    }  # fmt: skip
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return run_dir


def total(lines: list[dict[str, str]]) -> Decimal:
    return sum((Decimal(r["cost"]) for r in lines), Decimal(0))


def totals(wh, where: str = "true") -> tuple[int, Decimal, Decimal]:
    row = wh.query(f"SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM charges WHERE {where}").row(0)
    return row[0], row[1] or Decimal(0), row[2] or Decimal(0)


# -- headers, types and mapping ------------------------------------------------------------


def test_ea_actual_csv_maps_to_focus_columns_with_exact_money(wh, tmp_path):
    lines = [
        line("73.4400000001", quantity="24", unit_price="3.06", payg_price="3.3", tags='"team": "ml","env": "prod"',
             info='{"ServiceType": "Standard_D4_v5", "VMName": "vm1"}'),
        line("0.0000033", date="07/15/2026", quantity="0.0011", tags=""),
        line("1.5E-03", date="07/31/2026", pricing="Spot", tags='{"team": "web"}'),
    ]  # fmt: skip
    path = write_export(tmp_path / "ea-actual.csv", lines)
    report = azure.ingest(wh, str(path))
    [load] = report.loads
    assert (load.result.rows_read, load.result.rows_loaded, load.result.rows_quarantined) == (3, 3, 0)
    assert [(run.export_type, run.rows_read, run.rows_quarantined) for run in load.runs] == [("actual", 3, 0)]
    assert totals(wh) == (3, total(lines), total(lines)) == (3, Decimal("73.4415033001"), Decimal("73.4415033001"))
    first = wh.query("SELECT * FROM charges WHERE x_SourceRow = 1").to_dicts()[0]
    assert first["ProviderName"] == "Microsoft" and first["BillingAccountId"] == ACCOUNT_ID
    assert first["SubAccountId"] == f"/subscriptions/{SUB}" and first["SubAccountName"] == "ml-prod"
    assert first["ListCost"] == Decimal("79.2")  # PayGPrice 3.3 × 24
    assert first["ContractedCost"] == Decimal("73.44")  # UnitPrice 3.06 × 24
    assert first["Tags"] == {"team": "ml", "env": "prod"}  # brace-less tags
    assert first["x_InstanceType"] == "Standard_D4_v5"
    assert first["x_UsageType"] == "Dv5 Series D4 v5" and first["SkuMeter"] == "D4 v5" and first["SkuId"] == "mtr-d4"
    assert (first["ChargeCategory"], first["x_LineItemType"], first["x_PricingModel"]) == ("Usage", "Usage", "OnDemand")
    assert (str(first["ChargePeriodStart"]), str(first["ChargePeriodEnd"])) == ("2026-07-02 00:00:00", "2026-07-03 00:00:00")
    assert (str(first["BillingPeriodStart"]), str(first["BillingPeriodEnd"])) == ("2026-07-01 00:00:00", "2026-08-01 00:00:00")
    assert first["ServiceName"] == "Virtual Machines" and first["ServiceCategory"] == "Compute"
    assert wh.query("SELECT Tags FROM charges WHERE x_SourceRow = 2").item() is None
    assert wh.query("SELECT x_PricingModel, PricingCategory FROM charges WHERE x_SourceRow = 3").row(0) == ("Spot", "Dynamic")
    [part] = load.partitions.to_dicts()
    assert part["cost_basis"] == "actual export only" and part["billed_cost"] == total(lines)


def test_mca_camel_case_gzip_with_bom_and_old_ea_names_and_parquet(wh, tmp_path):
    mca = [line(f"{i}.25", date=f"2026-07-{i:02d}", period_start="2026-07-01", period_end="2026-07-31",
                account="abcd:ef01_2019-05-31") for i in range(1, 11)]  # fmt: skip
    write_export(tmp_path / "mca" / "costs.csv.gz", mca, MCA, bom=True)
    old = [line("2.10", date="2026-06-30", sub="11111111-2222-3333-4444-555555555555"),
           line("0.05", date="2026-07-01", sub="11111111-2222-3333-4444-555555555555")]  # fmt: skip
    write_export(tmp_path / "old" / "usage.csv", old, OLD_EA)
    typed = [line("12.3456789", date="07/09/2026"), line("0.1", date="07/10/2026", quantity="2.5")]
    write_export(tmp_path / "typed" / "part_0_0001.parquet", typed)
    report = azure.ingest(wh, [str(tmp_path / "mca"), str(tmp_path / "old"), str(tmp_path / "typed")])
    [load] = report.loads  # files outside the export layout: one run per export type
    assert load.result.rows_read == 14 and load.result.rows_quarantined == 0
    assert totals(wh, "BillingAccountId = 'abcd:ef01_2019-05-31'")[1] == total(mca) == Decimal("57.50")
    # Old files have no billing account: the subscription stands in, and the usage date sets the month.
    by_month = wh.query(
        "SELECT strftime(BillingPeriodStart, '%Y-%m') AS m, sum(BilledCost) AS c FROM charges"
        " WHERE BillingAccountId = '11111111-2222-3333-4444-555555555555' GROUP BY ALL ORDER BY m").rows()
    assert by_month == [("2026-06", Decimal("2.10")), ("2026-07", Decimal("0.05"))]
    assert wh.query("SELECT count(*) FROM charges WHERE x_LineItemType = 'Usage' AND ChargeCategory = 'Usage'").item() == 14
    # Parquet: DOUBLE costs and DATE dates, exact to the 10th decimal; rows numbered from the file.
    parquet = wh.query("SELECT x_SourceRow, ChargePeriodStart, BilledCost, ConsumedQuantity FROM charges"
                       " WHERE x_SourceFile LIKE '%.parquet' ORDER BY 1").rows()  # fmt: skip
    assert parquet == [(1, datetime(2026, 7, 9), Decimal("12.3456789"), Decimal("1")),
                       (2, datetime(2026, 7, 10), Decimal("0.1"), Decimal("2.5"))]  # fmt: skip


def test_azure_openai_meters_keep_model_and_direction_and_ml_endpoints_classify_as_inference(wh, tmp_path):
    openai = {"category": "Foundry Models", "subcategory": "Azure OpenAI", "service": "Microsoft.CognitiveServices",
              "unit": "1K", "resource": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai"}
    meters = {
        "gpt 4o 0513 Input global Tokens": ("gpt-4o", "input", "1.20"),
        "gpt-4o-mini-0718 Outp glbl Tokens": ("gpt-4o-mini", "output", "2.40"),
        "o1 cached Inp regional Tokens": ("o1", "cached input", "0.30"),
        "gpt-4o-0806-Inp-regnl Tokens": ("gpt-4o", "input", "0.70"),
        "gpt 4.1 Inp Data Zone Tokens": ("gpt-4.1", "input", "0.11"),
        "GPT 5.1 cd inp Gl 1M Tokens": ("gpt-5.1", "cached input", "0.02"),
        "Llama 3.3 70B Outp glbl Tokens": ("llama-3.3-70b", "output", "0.09"),
    }  # fmt: skip
    lines = [line(cost, meter=meter, **openai) for meter, (_, _, cost) in meters.items()]
    ml = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
    endpoint = line("30.00", subcategory="NCSv3 Series", meter="NC6s v3", service="Microsoft.MachineLearningServices",
                    resource=f"{ml}/onlineEndpoints/chat", tags='"azuremlendpoint": "chat","azuremldeployment": "blue"')
    training = line("55.50", subcategory="NDasrA100 v4 Series", meter="ND96asr A100 v4",
                    service="Microsoft.MachineLearningServices", resource=f"{ml}/computes/gpu-cluster")
    plain_vm = line("4.00")
    write_export(tmp_path / "actual.csv", [*lines, endpoint, training, plain_vm])
    azure.ingest(wh, str(tmp_path / "actual.csv"))
    got = wh.query("SELECT SkuMeter, x_Model, x_TokenDirection, ServiceCategory, ServiceSubcategory FROM charges"
                   " WHERE x_Model IS NOT NULL").rows()  # fmt: skip
    assert {meter: (model, direction) for meter, model, direction, _, _ in got} == {
        meter: (model, direction) for meter, (model, direction, _) in meters.items()}
    assert {(category, sub) for *_, category, sub in got} == {("AI and Machine Learning", "Generative AI")}
    assert wh.query("SELECT count(*) FROM charges WHERE x_Model IS NULL AND x_TokenDirection IS NULL").item() == 3
    split = {r["workload"]: r["cost"] for r in workload_split(wh, date(2026, 7, 1), date(2026, 8, 1)).to_dicts()}
    token_cost = sum((Decimal(cost) for _, _, cost in meters.values()), Decimal(0))
    assert split["inference"] == token_cost + Decimal("30.00") == Decimal("34.82")
    assert split["training"] == Decimal("55.50")
    assert split["non-AI"] == Decimal("4.00")


# -- actual and amortized ----------------------------------------------------------------


def commitment_exports() -> tuple[list[dict[str, str]], list[dict[str, str]], dict[str, tuple[Decimal, Decimal]]]:
    """An actual and an amortized export of July 2026 with a reservation and a savings plan.

    Returns (actual lines, amortized lines, expected (BilledCost, EffectiveCost) per line name),
    the expectations worked out by hand from how Cost Management writes the two datasets.
    """
    vm = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/"
    reserved = {"pricing": "Reservation", "reservation": "r-7f3a", "benefit": "r-7f3a"}
    plan = {"pricing": "SavingsPlan", "benefit": "sp-91c2"}
    aoai = {"category": "Azure OpenAI", "meter": "gpt 4o 0513 Input global Tokens", "quantity": "1382.4",
            "resource": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai"}
    same = {  # name: line as both exports write it
        "on-demand": line("20.00", resource=vm + "ondemand", quantity="10"),
        "tokens": line("3.456789", **aoai),
        # Two lines with equal keys and different costs: matched in file order, never crossed.
        "twin-1": line("1.11", resource=vm + "twin"),
        "twin-2": line("2.22", resource=vm + "twin"),
    }
    actual = {
        **same,
        "reserved-usage": line("0", resource=vm + "reserved", quantity="24", **reserved),
        "reservation-purchase": line("120.00", charge="Purchase", resource="", meter="", product="Reserved VM Instance",
                                     date="07/01/2026", **reserved),
        "plan-usage": line("0", resource=vm + "covered", quantity="5", **plan),
        "plan-purchase": line("50.00", charge="Purchase", resource="", meter="", product="Savings Plan",
                              date="07/01/2026", **plan),
    }  # fmt: skip
    amortized = {
        **same,
        "reserved-usage": line("7.50", resource=vm + "reserved", quantity="24", **reserved),
        "plan-usage": line("4.20", resource=vm + "covered", quantity="5", **plan),
        "unused-reservation": line("2.30", charge="UnusedReservation", sub="", sub_name="", resource="",
                                   date="07/31/2026", quantity="3", **reserved),
        "unused-plan": line("1.10", charge="UnusedSavingsPlan", sub="", sub_name="", resource="", date="07/31/2026",
                            **plan),
    }  # fmt: skip
    for name, row in [*actual.items(), *amortized.items()]:
        row["product"] = row["product"] if row["charge"] == "Purchase" else name  # names each line in charges
    d = Decimal
    expected = {
        "on-demand": (d("20.00"), d("20.00")),
        "tokens": (d("3.456789"), d("3.456789")),
        "twin-1": (d("1.11"), d("1.11")),
        "twin-2": (d("2.22"), d("2.22")),
        "reserved-usage": (d("0"), d("7.50")),  # the reservation paid for it: amortized share only
        "Reserved VM Instance": (d("120.00"), d("0")),  # the purchase is on the invoice, spread over usage
        "plan-usage": (d("0"), d("4.20")),
        "Savings Plan": (d("50.00"), d("0")),
        "unused-reservation": (d("0"), d("2.30")),  # only in the amortized export
        "unused-plan": (d("0"), d("1.10")),
    }
    return list(actual.values()), list(amortized.values()), expected


def per_line(wh) -> dict[str, tuple[Decimal, Decimal]]:
    rows = wh.query("SELECT ChargeDescription, BilledCost, EffectiveCost FROM charges ORDER BY ALL").rows()
    assert len({name for name, *_ in rows}) == len(rows)
    return {name: (billed, effective) for name, billed, effective in rows}


def test_actual_and_amortized_match_per_line_and_reconcile_with_each_export(wh, tmp_path):
    actual, amortized, expected = commitment_exports()
    assert total(actual) == Decimal("196.786789") and total(amortized) == Decimal("41.886789")
    exports = tmp_path / "exports"
    write_run(exports / "ea-actual", "20260701-20260731", "4a0c6b1e-1111-4c3e-9d36-000000000001",
              "2026-08-03T06:12:44.1234567Z", "ActualCost", {"part_0_0001.csv": actual})
    write_run(exports / "ea-amortized", "20260701-20260731", "4a0c6b1e-2222-4c3e-9d36-000000000002",
              "2026-08-03T06:15:02.7654321Z", "AmortizedCost", {"part_0_0001.csv": amortized[:5], "part_1_0001.csv": amortized[5:]})

    only_actual = azure.ingest(wh, str(exports / "ea-actual"))
    assert totals(wh) == (8, total(actual), total(actual))  # one export: both costs from it
    assert only_actual.loads[0].partitions["cost_basis"].to_list() == ["actual export only"]

    both = azure.ingest(wh, str(exports / "ea-amortized"))
    [load] = both.loads
    assert [run.export_type for run in load.runs] == ["amortized"]
    assert load.result.rows_read == 8 and load.result.rows_loaded == 8
    assert load.partitions["cost_basis"].to_list() == ["actual and amortized exports"]
    assert per_line(wh) == expected
    assert totals(wh) == (10, total(actual), total(amortized))
    unused = wh.query("SELECT ChargeCategory, CommitmentDiscountStatus, CommitmentDiscountType, SubAccountId"
                      " FROM charges WHERE x_LineItemType = 'UnusedSavingsPlan'").row(0)  # fmt: skip
    assert unused == ("Usage", "Unused", "Savings Plan", None)
    assert wh.query("SELECT CommitmentDiscountStatus, CommitmentDiscountCategory FROM charges"
                    " WHERE ChargeDescription = 'reserved-usage'").row(0) == ("Used", "Usage")  # fmt: skip
    # Loading both again, or in the other order into a new warehouse, gives the same rows.
    again = azure.ingest(wh, str(exports))
    assert again.loads == [] and {s.reason.split(":")[1].strip() for s in again.skipped} == {"already loaded (batch 1)",
                                                                                            "already loaded (batch 2)"}
    other = Warehouse(tmp_path / "other.duckdb")
    azure.ingest(other, str(exports / "ea-amortized"))
    azure.ingest(other, str(exports / "ea-actual"))
    assert per_line(other) == expected and totals(other) == (10, total(actual), total(amortized))
    # Each month's rollup follows its rebuilt lines, whichever batch wrote the lines they came from.
    assert rollup_differences(wh) == (0, 0) and rollup_differences(other) == (0, 0)


def test_loose_files_are_told_apart_by_name_or_by_their_unused_commitment_lines(wh, tmp_path):
    actual, amortized, expected = commitment_exports()
    write_export(tmp_path / "downloads" / "a" / "july.csv", actual)
    write_export(tmp_path / "downloads" / "b" / "july.csv", amortized)  # amortized: it has UnusedReservation lines
    report = azure.ingest(wh, str(tmp_path / "downloads"))
    [load] = report.loads  # one batch for the call
    assert sorted(run.export_type for run in load.runs) == ["actual", "amortized"]
    assert per_line(wh) == expected
    renamed = tmp_path / "later" / "costs-amortised-2026-07.csv"
    write_export(renamed, [row for row in amortized if not row["charge"].startswith("Unused")])
    [load] = azure.ingest(wh, str(renamed)).loads
    assert load.runs[0].export_type == "amortized"  # by its name; it replaces the amortized lines loaded before
    assert totals(wh) == (8, total(actual), total(amortized) - Decimal("3.40"))


def test_newest_run_of_a_month_replaces_older_runs(wh, tmp_path):
    export = tmp_path / "exports" / "daily-actual"
    runs = {  # run id: (submitted, cost per day, days)
        "00000000-0000-4000-8000-00000000000a": ("2026-07-20T05:00:00Z", "1.00", 19),
        "00000000-0000-4000-8000-00000000000b": ("2026-07-21T05:00:00.1234567Z", "1.01", 20),
    }
    lines = {}
    for run_id, (submitted, cost, days) in runs.items():
        lines[run_id] = [line(cost, date=f"07/{d:02d}/2026", resource=f"/vm/{d}") for d in range(1, days + 1)]
        write_run(export, "20260701-20260731", run_id, submitted, "ActualCost", {"part_0_0001.csv": lines[run_id]})
    report = azure.ingest(wh, str(export.parent))
    [load] = report.loads
    assert [run.run_id[-1] for run in load.runs] == ["b"] and totals(wh) == (20, Decimal("20.20"), Decimal("20.20"))
    [skipped] = report.skipped
    assert skipped.run_id.endswith("a") and "superseded by run 00000000-0000-4000-8000-00000000000b" in skipped.reason
    # A later run restates the month; an older run seen afterwards is not loaded over it.
    later = [line("0.99", date=f"07/{d:02d}/2026", resource=f"/vm/{d}") for d in range(1, 22)]
    write_run(export, "20260701-20260731", "00000000-0000-4000-8000-00000000000c", "2026-07-22T05:00:00Z",
              "ActualCost", {"part_0_0001.csv": later})
    restated = azure.ingest(wh, str(export.parent))
    [load] = restated.loads
    assert [run.run_id[-1] for run in load.runs] == ["c"] and load.result.rows_replaced == 20
    assert totals(wh) == (21, total(later), total(later))
    assert rollup_differences(wh) == (0, 0)
    assert wh.query("SELECT count(DISTINCT x_BatchId) FROM azure_export_lines").item() == 1  # old lines are gone
    for run_dir in export.glob("20260701-20260731/*c"):
        for f in run_dir.iterdir():
            f.unlink()
        run_dir.rmdir()
    older = azure.ingest(wh, str(export.parent))
    assert older.loads == [] and any("older than run 00000000-0000-4000-8000-00000000000c" in s.reason for s in older.skipped)
    assert totals(wh)[1] == total(later)


def test_older_layout_without_manifest_loads_the_newest_file_per_month(wh, tmp_path):
    folder = tmp_path / "exports" / "legacy" / "20260601-20260630"
    old = write_export(folder / "legacy_11111111-1111-4111-8111-111111111111.csv", [line("5.00", date="06/03/2026",
                       period_start="06/01/2026", period_end="06/30/2026")])  # fmt: skip
    new_lines = [line("6.00", date="06/03/2026", period_start="06/01/2026", period_end="06/30/2026"),
                 line("0.50", date="06/04/2026", period_start="06/01/2026", period_end="06/30/2026")]  # fmt: skip
    new = write_export(folder / "legacy_22222222-2222-4222-8222-222222222222.csv", new_lines)
    an_hour_ago = datetime.now(timezone.utc).timestamp() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    report = azure.ingest(wh, str(tmp_path / "exports"))
    assert [run.run_id for load in report.loads for run in load.runs] == ["22222222-2222-4222-8222-222222222222"]
    assert report.skipped[0].run_id == "11111111-1111-4111-8111-111111111111"
    assert totals(wh) == (2, Decimal("6.50"), Decimal("6.50")) and new.exists()


def test_loading_the_same_loose_file_twice_keeps_totals(wh, tmp_path):
    lines = [line(f"{i}.{i:02d}", date=f"07/{i:02d}/2026") for i in range(1, 29)]
    path = write_export(tmp_path / "july.csv", lines)
    azure.ingest(wh, str(path))
    once = totals(wh)
    second = azure.ingest(wh, str(path))
    assert totals(wh) == once == (28, total(lines), total(lines))
    assert second.loads[0].result.rows_replaced == 28
    assert wh.query("SELECT count(*) FROM azure_export_lines").item() == 28


def test_focus_export_is_loaded_by_the_focus_connector_as_azure(wh, tmp_path):
    rows = make_rows(40, account="8611537", provider="Microsoft")
    run = tmp_path / "exports" / "focus-cost" / "20260701-20260731" / "5f0c6b1e-0000-4c3e-9d36-000000000009"
    run.mkdir(parents=True)
    written = write_focus_csv(run / "part_0_0001.csv", rows, "1.2")
    manifest = {"exportConfig": {"type": "FocusCost", "dataVersion": "1.2"},
                "runInfo": {"runId": run.name, "submittedTime": "2026-08-02T01:00:00Z"},
                "blobs": [{"blobName": "exports/focus-cost/20260701-20260731/" + run.name + "/part_0_0001.csv"}]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    report = azure.ingest(wh, str(tmp_path / "exports"))
    [load] = report.loads
    assert [(run.export_type, run.rows_read) for run in load.runs] == [("focus", 40)]
    assert load.partitions["cost_basis"].to_list() == ["FOCUS export"]
    assert totals(wh, "x_Source = 'azure'") == (40, written.total("BilledCost"), written.total("EffectiveCost"))


# -- bad input -------------------------------------------------------------------------------


def test_bad_rows_are_quarantined_with_file_row_column_and_reason(wh, tmp_path):
    lines = [line("1.00"), line("n/a"), line("2.00"), line("3.00", date="31/07/2026"), line("4.00", charge="Bonus"),
             line("5.00", tags='"team": '), line("", date=""), line("6.00"), line("7.00")]  # fmt: skip
    path = write_export(tmp_path / "actual.csv", lines)
    text = path.read_text().splitlines()
    text[9] += ",surplus"  # line 10 = data row 9: one field too many, DuckDB cannot parse it as a row
    path.write_text("\n".join(text) + "\n")
    [load] = azure.ingest(wh, str(path)).loads
    r = load.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (9, 3, 6) and r.rows_read == r.rows_loaded + r.rows_quarantined
    assert totals(wh)[1] == Decimal("9.00")
    assert wh.query("SELECT x_SourceRow FROM charges ORDER BY 1")["x_SourceRow"].to_list() == [1, 3, 8]
    got = wh.query("SELECT row_number, column_name, reason FROM quarantine ORDER BY row_number").rows()
    assert got[:4] == [
        (2, "CostInBillingCurrency", "CostInBillingCurrency: cannot read 'n/a' as a number"),
        (4, "Date", "Date: cannot read '31/07/2026' as a date"),
        (5, "ChargeType", "ChargeType: unknown charge type 'Bonus'"),
        (6, "Tags", "Tags: not a JSON object: '\"team\":'"),
    ]
    assert got[4][:2] == (7, "CostInBillingCurrency") and "Date: empty" in got[4][2]
    assert got[5][0] == 9 and "line 10" in got[5][2]
    assert wh.query("SELECT DISTINCT file FROM quarantine").item() == str(path.resolve())
    raw = json.loads(wh.query("SELECT raw_row FROM quarantine WHERE row_number = 2").item())
    assert raw["CostInBillingCurrency"] == "n/a" and raw["Tags"] is None


def test_a_file_that_is_not_an_azure_export_is_refused_and_nothing_is_written(wh, tmp_path):
    good = write_export(tmp_path / "in" / "actual.csv", [line("1.00")])
    other = tmp_path / "in" / "sales.csv"
    other.write_text("id,amount,when\n1,2.50,2026-07-01\n")
    with pytest.raises(azure.NotAzureExportError) as err:
        azure.ingest(wh, [str(good), str(other)])
    message = str(err.value)
    assert str(other.resolve()) in message
    for missing in ("CostInBillingCurrency or PreTaxCost or Cost", "Date or UsageDateTime", "SubscriptionId or SubscriptionGuid",
                    "MeterCategory", "BillingCurrencyCode or BillingCurrency or Currency"):  # fmt: skip
        assert missing in message
    assert not wh.exists() or wh.query("SELECT count(*) FROM ingest_batches").item() == 0


def test_a_manifest_listing_a_missing_part_is_an_error(wh, tmp_path):
    run = write_run(tmp_path / "exports" / "x", "20260701-20260731", "r1", "2026-07-02T00:00:00Z", "ActualCost",
                    {"part_0_0001.csv": [line("1.00")], "part_1_0001.csv": [line("2.00")]})
    (run / "part_1_0001.csv").unlink()
    with pytest.raises(SourceError, match="lists .part_1_0001.csv., which is not there"):
        azure.ingest(wh, str(tmp_path / "exports"))


def test_a_runs_parts_are_checked_side_by_side_and_the_first_bad_one_in_order_is_named(wh, tmp_path):
    parts = {f"part_{n}_0001.csv": [line(f"{n + 1}.00")] for n in range(4)}
    run = write_run(tmp_path / "exports" / "x", "20260701-20260731", "r1", "2026-07-02T00:00:00Z", "ActualCost", parts)
    (run / "part_1_0001.csv").write_text("id,amount\n1,2.50\n")
    (run / "part_3_0001.csv").write_text("id,amount\n1,4.50\n")
    with pytest.raises(azure.NotAzureExportError, match="part_1_0001.csv: not an Azure cost export"):
        azure.ingest(wh, str(tmp_path / "exports"))
    assert not wh.exists() or wh.query("SELECT count(*) FROM ingest_batches").item() == 0
    for n in (1, 3):  # put right, the four parts load, each once
        write_export(run / f"part_{n}_0001.csv", parts[f"part_{n}_0001.csv"])
    azure.ingest(wh, str(tmp_path / "exports"))
    assert wh.query("SELECT count(*), sum(BilledCost) FROM charges").row(0) == (4, Decimal("10.00"))


def test_location_parsing_never_keeps_the_sas_in_names():
    loc = azure.parse_location("az://acct/costs/exports/ea?sv=2024-11-04&sig=c2VjcmV0")
    assert (loc.account, loc.container, loc.prefix, str(loc)) == ("acct", "costs", "exports/ea", "az://acct/costs/exports/ea")
    assert "sig" not in repr(loc)
    emulator = azure.parse_location("http://127.0.0.1:10000/devstoreaccount1/costs/a/b?sv=1&sig=x")
    assert (emulator.account, emulator.container, emulator.prefix, emulator.account_url) == (
        "devstoreaccount1", "costs", "a/b", "http://127.0.0.1:10000/devstoreaccount1")
    assert azure.parse_location("./exports/*.csv") is None


# -- Blob Storage through Azurite ------------------------------------------------------------


def finops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )


def upload(azurite, container: str, local_root: Path) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite.connection_string()) as service:
        client = service.create_container(container)
        for path in sorted(local_root.rglob("*")):
            if path.is_file():
                with open(path, "rb") as handle:
                    client.upload_blob(path.relative_to(local_root).as_posix(), handle)


@pytest.fixture(scope="module")
def blob_exports(azurite, tmp_path_factory):
    """A container holding an actual (gzip CSV, two runs) and an amortized (Parquet) export of July 2026."""
    actual, amortized, expected = commitment_exports()
    root = tmp_path_factory.mktemp("container")
    exports = root / "exports"
    write_run(exports / "ea-actual", "20260701-20260731", "9d1c0000-0000-4000-8000-00000000000a", "2026-08-01T06:00:00Z",
              "ActualCost", {"part_0_0001.csv.gz": actual[:2]}, container_root=root)  # an older, partial run
    write_run(exports / "ea-actual", "20260701-20260731", "9d1c0000-0000-4000-8000-00000000000b", "2026-08-03T06:00:00Z",
              "ActualCost", {"part_0_0001.csv.gz": actual[:4], "part_1_0001.csv.gz": actual[4:]}, container_root=root)
    write_run(exports / "ea-amortized", "20260701-20260731", "9d1c0000-0000-4000-8000-00000000000c",
              "2026-08-03T06:05:00Z", "AmortizedCost", {"part_0_0001.parquet": amortized}, container_root=root)
    upload(azurite, "costs", root)
    return actual, amortized, expected


def test_cli_loads_blob_exports_with_a_connection_string_from_the_environment(azurite, blob_exports, tmp_path):
    actual, amortized, expected = blob_exports
    warehouse = tmp_path / "w.duckdb"
    env = {"MY_COSTS_STORAGE": azurite.connection_string(), "AZURE_STORAGE_CONNECTION_STRING": ""}
    run = finops("ingest", "azure", f"az://{ACCOUNT}/costs/exports", "--connection-string-env", "MY_COSTS_STORAGE",
                 "--warehouse", str(warehouse), env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "run 9d1c0000-0000-4000-8000-00000000000a: 20260701-20260731: superseded by run" in run.stdout
    assert "2 Azure export runs (1 actual, 1 amortized): 16 rows read, 16 loaded, 0 quarantined from 3 files" in run.stdout
    assert "ea-actual/20260701-20260731 run 9d1c0000-0000-4000-8000-00000000000b (actual): 8 rows read, 0 quarantined" in run.stdout
    assert f"{ACCOUNT_ID} 2026-07: costs from the actual and amortized exports" in run.stdout
    assert ACCOUNT_KEY not in run.stdout + run.stderr
    wh = Warehouse(warehouse)
    assert per_line(wh) == expected
    assert totals(wh) == (10, total(actual), total(amortized))
    files = wh.query("SELECT DISTINCT x_SourceFile FROM charges ORDER BY 1")["x_SourceFile"].to_list()
    assert files[0] == f"az://{ACCOUNT}/costs/exports/ea-actual/20260701-20260731/9d1c0000-0000-4000-8000-00000000000b/part_0_0001.csv.gz"
    again = azure.ingest(wh, f"az://{ACCOUNT}/costs/exports/", connection_string=azurite.connection_string())
    assert again.loads == [] and sum("already loaded" in s.reason for s in again.skipped) == 2
    assert totals(wh) == (10, total(actual), total(amortized))


def test_a_wrong_key_fails_cleanly_without_showing_the_connection_string(azurite, blob_exports, tmp_path):
    marker_key = base64.b64encode(b"finops-test-marker-key-do-not-print-0123").decode()
    warehouse = tmp_path / "w.duckdb"
    run = finops("ingest", "azure", f"az://{ACCOUNT}/costs/exports", "--warehouse", str(warehouse),
                 env={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(marker_key)})  # fmt: skip
    assert run.returncode == 1
    assert f"cannot list az://{ACCOUNT}/costs/exports: access denied" in run.stderr
    output = run.stdout + run.stderr
    for secret in (marker_key, "AccountKey", azurite.connection_string(marker_key)):
        assert secret not in output
    assert "Traceback" not in output


def test_sas_urls_load_and_a_bad_signature_never_shows_the_token(azurite, blob_exports, tmp_path):
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    actual, amortized, _ = blob_exports
    sas = generate_container_sas(ACCOUNT, "costs", account_key=ACCOUNT_KEY,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))  # fmt: skip
    warehouse = tmp_path / "w.duckdb"
    wh = Warehouse(warehouse)
    report = azure.ingest(wh, f"{azurite.blob_endpoint}/costs/exports/ea-amortized?{sas}")
    assert [run.export_type for load in report.loads for run in load.runs] == ["amortized"]
    assert totals(wh) == (8, total(amortized), total(amortized))
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    stored = wh.query(
        "SELECT (SELECT string_agg(uri || files::VARCHAR, ' ') FROM ingest_batches)"
        " || (SELECT string_agg(DISTINCT x_SourceFile, ' ') FROM charges)"
        " || (SELECT string_agg(value::VARCHAR, ' ') FROM source_state)").item()  # fmt: skip
    assert "sig=" not in stored and signature not in stored
    assert f"az://{ACCOUNT}/costs/exports/ea-amortized/20260701-20260731" in stored

    forged = "sv=2024-11-04&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=rl&sig=ZmluT3BzTWFya2VyU2lnbmF0dXJlMDAwMDAwMDA%3D"
    bad = finops("ingest", "azure", f"{azurite.blob_endpoint}/costs/exports?{forged}", "--warehouse", str(warehouse),
                 env={"AZURE_STORAGE_CONNECTION_STRING": ""})  # fmt: skip
    assert bad.returncode == 1 and "access denied" in bad.stderr
    assert "ZmluT3BzTWFya2Vy" not in bad.stdout + bad.stderr and "sig=" not in bad.stdout + bad.stderr


def test_the_same_run_copied_to_two_folders_is_loaded_once(wh, tmp_path):
    """A run's manifest carries its run id (a GUID per run): the same id in two places is one run
    copied (a backup folder, a second export root), and loading both would double the month."""
    export = tmp_path / "exports" / "daily-actual"
    lines = [line("1.25", date=f"07/{d:02d}/2026", resource=f"/vm/{d}") for d in range(1, 11)]
    run_id = "00000000-0000-4000-8000-0000000000d1"
    run_dir = write_run(export, "20260701-20260731", run_id, "2026-07-11T05:00:00Z", "ActualCost",
                        {"part_0_0001.csv": lines})  # fmt: skip
    copy = tmp_path / "exports" / "backup" / "daily-actual" / "20260701-20260731" / run_id
    shutil.copytree(run_dir, copy)
    report = azure.ingest(wh, str(tmp_path / "exports"))
    assert totals(wh) == (10, total(lines), total(lines))
    [load] = report.loads
    assert [run.run_id for run in load.runs] == [run_id]
    [skipped] = report.skipped
    assert skipped.run_id == run_id and "the same run as " in skipped.reason and "(a copy" in skipped.reason
