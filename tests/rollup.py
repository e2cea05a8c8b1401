"""Checks on the daily rollups a load keeps beside `charges` and `llm_requests`."""

from __future__ import annotations

from finops import warehouse as warehouse_module
from finops.warehouse import Warehouse


def _differences(wh: Warehouse, rollup: str, fresh: str) -> tuple[int, int]:
    return (
        wh.query(f"SELECT count(*) FROM (FROM {rollup} EXCEPT ALL ({fresh}))").item(),
        wh.query(f"SELECT count(*) FROM (({fresh}) EXCEPT ALL FROM {rollup})").item(),
    )


def rollup_differences(wh: Warehouse) -> tuple[int, int]:
    """Rows of `charges_daily` not in a rollup of `charges` made now, and the other way round."""
    return _differences(wh, "charges_daily", warehouse_module.charges_daily_sql())


def request_rollup_differences(wh: Warehouse) -> tuple[int, int]:
    """Rows of `llm_requests_daily` not in a rollup of `llm_requests` made now, and the other way round."""
    return _differences(wh, "llm_requests_daily", warehouse_module.llm_requests_daily_sql())
