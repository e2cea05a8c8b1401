"""Small FOCUS files written with the csv module and pyarrow, never through our own code,
with their expected totals computed here in Python Decimal: the independent side of the tests."""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.focus import ADDED_IN, FOCUS_1_0_COLUMNS

COLUMNS = {
    "1.0": list(FOCUS_1_0_COLUMNS),
    "1.1": [*FOCUS_1_0_COLUMNS, *ADDED_IN["1.1"]],
    "1.2": [*FOCUS_1_0_COLUMNS, *ADDED_IN["1.1"], *ADDED_IN["1.2"]],
    "1.3": [*FOCUS_1_0_COLUMNS, *ADDED_IN["1.1"], *ADDED_IN["1.2"], *ADDED_IN["1.3"]],
}


@dataclass
class Written:
    path: Path
    rows: list[dict[str, str]]

    def total(self, column: str, period: str | None = None) -> Decimal:
        return sum(
            (Decimal(r[column]) for r in self.rows if period is None or r["BillingPeriodStart"].startswith(period)),
            Decimal(0),
        )


def make_rows(n: int, *, account: str = "111122223333", period: str = "2026-07", provider: str = "AWS",
              scale: str = "1") -> list[dict[str, str]]:
    """n daily line items in one billing period with awkward but exact money values."""
    year, month = map(int, period.split("-"))
    end = f"{year + month // 12}-{month % 12 + 1:02d}"
    rows = []
    for i in range(n):
        day = i % 28 + 1
        billed = (Decimal(i * 37 % 1000) + Decimal("0.01234567")) * Decimal(scale)
        rows.append({
            "BilledCost": str(billed),
            "EffectiveCost": str(billed * Decimal("0.9")),
            "ListCost": str(billed * Decimal("1.25")),
            "ContractedCost": str(billed),
            "BillingAccountId": account,
            "BillingAccountName": "Test payer",
            "BillingCurrency": "USD",
            "BillingPeriodStart": f"{period}-01T00:00:00Z",
            "BillingPeriodEnd": f"{end}-01T00:00:00Z",
            "ChargePeriodStart": f"{period}-{day:02d}T00:00:00Z",
            "ChargePeriodEnd": f"{period}-{day:02d}T23:59:59Z",
            "ChargeCategory": "Usage",
            "ChargeFrequency": "Usage-Based",
            "ProviderName": provider,
            "PublisherName": provider,
            "InvoiceIssuerName": provider,
            "ServiceName": ["Amazon SageMaker", "Amazon EC2", "Amazon Bedrock"][i % 3],
            "ServiceCategory": ["AI and Machine Learning", "Compute", "AI and Machine Learning"][i % 3],
            "SubAccountId": f"acct-{i % 4}",
            "SubAccountName": f"Account {i % 4}",
            "ResourceId": f"res-{i % 17}",
            "RegionId": "us-east-1",
            "SkuId": f"SKU{i % 5}",
            "PricingQuantity": str(Decimal(i) / 3),
            "PricingUnit": "Hours",
            "Tags": json.dumps({"team": ["research", "product"][i % 2], "env": "prod"}) if i % 5 else "",
        })
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], version: str = "1.0", *, header_case=str,
              gzip_it: bool = False) -> Written:
    columns = COLUMNS[version]
    opener = gzip.open if gzip_it else open
    with opener(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([header_case(c) for c in columns])
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    return Written(path, rows)


def write_parquet(path: Path, rows: list[dict[str, str]], version: str = "1.2") -> Written:
    """Typed Parquet as cloud exports write it: decimals, UTC timestamps, a map of tags."""
    from datetime import datetime

    columns = COLUMNS[version]
    arrays, fields = [], []
    money = {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity"}
    times = {"BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"}
    for c in columns:
        values = [r.get(c) or None for r in rows]
        if c in money:
            typ = pa.decimal128(38, 10)
            data = [Decimal(v).quantize(Decimal("1e-10")) if v else None for v in values]
        elif c in times:
            typ = pa.timestamp("ms", tz="UTC")
            data = [datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None for v in values]
        elif c == "Tags":
            typ = pa.map_(pa.string(), pa.string())
            data = [list(json.loads(v).items()) if v else None for v in values]
        else:
            typ = pa.string()
            data = values
        arrays.append(pa.array(data, type=typ))
        fields.append(pa.field(c, typ))
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)
    return Written(path, rows)
