from __future__ import annotations

import pytest

from finops.warehouse import Warehouse


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    """An empty warehouse in a temp dir; short lock timeout so a lock bug fails fast."""
    return Warehouse(tmp_path / "warehouse.duckdb", lock_timeout=5)
