"""Checks on `charges_daily`, the daily rollup a load keeps beside `charges`."""

from __future__ import annotations

from finops import warehouse as warehouse_module
from finops.warehouse import Warehouse


def rollup_differences(wh: Warehouse) -> tuple[int, int]:
    """Rows of `charges_daily` not in a rollup of `charges` made now, and the other way round."""
    fresh = warehouse_module.charges_daily_sql()
    return (
        wh.query(f"SELECT count(*) FROM (FROM charges_daily EXCEPT ALL ({fresh}))").item(),
        wh.query(f"SELECT count(*) FROM (({fresh}) EXCEPT ALL FROM charges_daily)").item(),
    )
