from __future__ import annotations

import os

import pytest

from finops.analyses import cache
from finops.warehouse import Warehouse


@pytest.fixture(scope="session", autouse=True)
def _result_cache_of_this_session(tmp_path_factory):
    """The analyses' result cache (finops.analyses.cache) in this session's temp dir, not ~/.cache.

    Subprocesses (the CLI, papermill kernels) inherit it through the environment.
    """
    os.environ[cache.ENV_DIR] = str(tmp_path_factory.mktemp("finops-cache"))


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    """An empty warehouse in a temp dir; short lock timeout so a lock bug fails fast."""
    return Warehouse(tmp_path / "warehouse.duckdb", lock_timeout=5)
