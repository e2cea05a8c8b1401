"""Hand-made warehouses for the analysis tests: rows written with plain INSERTs, in tests only."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from finops.warehouse import Warehouse, charges_daily_sql, llm_requests_daily_sql


def charge(
    *,
    cost: str | Decimal = "1",
    billed: str | Decimal | None = None,
    day: str = "2026-07-15",
    billing_month: str | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """One daily charge row. ``cost`` is EffectiveCost (BilledCost defaults to it);
    ``day`` is ChargePeriodStart's date; the billing period is ``day``'s month unless given."""
    start = datetime.fromisoformat(day)
    month = datetime.fromisoformat(billing_month) if billing_month else start.replace(day=1)
    next_month = month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)
    row = {
        "EffectiveCost": Decimal(cost),
        "BilledCost": Decimal(billed if billed is not None else cost),
        "ChargePeriodStart": start,
        "ChargePeriodEnd": start.replace(hour=23, minute=59, second=59),
        "BillingPeriodStart": month,
        "BillingPeriodEnd": next_month,
        "BillingAccountId": "payer-1",
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ProviderName": "AWS",
        "ServiceName": "Amazon Simple Storage Service",
        "x_Source": "test",
    }
    row.update(columns)
    return row


def insert_charges(wh: Warehouse, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` into ``charges`` (creating the schema) and its rollup. ``Tags`` is a dict or None."""
    if not rows:
        with wh.writer():
            return
    columns = sorted({name for row in rows for name in row})
    placeholders = ", ".join(
        "CAST(CAST(? AS JSON) AS MAP(VARCHAR, VARCHAR))" if name == "Tags" else "?" for name in columns
    )

    def value(row: dict[str, Any], name: str) -> Any:
        if name == "Tags" and row.get(name) is not None:
            return json.dumps(row[name])
        return row.get(name)

    values = [[value(row, name) for name in columns] for row in rows]
    with wh.writer() as con:
        con.executemany(f"INSERT INTO charges ({', '.join(columns)}) VALUES ({placeholders})", values)
        # What a load does for the partitions it writes.
        con.execute("DELETE FROM charges_daily")
        con.execute(f"INSERT INTO charges_daily BY NAME ({charges_daily_sql()})")


def roll_up_requests(con) -> None:
    """Rebuild `llm_requests_daily` from `llm_requests`, as a load does for the days it writes."""
    con.execute("DELETE FROM llm_requests_daily")
    con.execute(f"INSERT INTO llm_requests_daily BY NAME ({llm_requests_daily_sql()})")


BASE_CONFIG = """
[[departments]]
name = "Alpha"
sub_accounts = ["acct-a"]
tag_values = ["alpha"]

[[departments]]
name = "Beta"
sub_accounts = ["acct-b"]
tag_values = ["beta"]

[[departments]]
name = "Gamma"
sub_accounts = ["acct-c"]
tag_values = ["gamma"]
"""
"""Three departments, each with one account and one tag value (the chargeback and cache tests)."""
