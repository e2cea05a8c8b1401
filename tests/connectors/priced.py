"""A warehouse with hand-set token prices, for the trace connectors' tests (their expected costs use them)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from finops.warehouse import Warehouse

Price = tuple[str, str, Decimal | None, Decimal | None, Decimal | None, Decimal | None]
"""(provider, model, input, cached input, cache write, output), USD per token."""


def priced_warehouse(path: Path, prices: Sequence[Price]) -> Warehouse:
    """A new warehouse at ``path`` whose `prices` table holds ``prices`` (overrides valid from 2024-01-01)."""
    warehouse = Warehouse(path)
    with warehouse.writer() as con:
        con.executemany(
            "INSERT INTO prices (provider, model, input, cached_input, cache_write, output, valid_from, currency,"
            " price_source) VALUES (?, ?, ?, ?, ?, ?, DATE '2024-01-01', 'USD', 'override')",
            [list(p) for p in prices],
        )
    return warehouse
