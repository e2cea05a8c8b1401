"""AI FinOps workbench: what AI costs, who spends it, and what next quarter will cost.

Layers, imported in one direction only (tests/test_architecture.py checks it)::

    finops.cli        the `finops` command: parses text into typed values, calls the layers below
    finops.reports    charts, narrative, papermill-rendered HTML reports, the notebook explorer
    finops.demo       the sample company and its gateway (exports, loaded through the connectors)
    finops.ingest     the [[sources]] of finops.toml and the connector for each kind
    finops.analyses   chargeback, spend, unit economics, forecasts, budgets, anomalies, what-ifs
    connectors        one source each: list, read, page, map into the warehouse's tables
    finops.warehouse  the only DuckDB owner: connections, schema, migrations, loads; shared SQL keys
    finops.config, finops.periods, finops.exceptions   the core every layer shares
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

_MOVED = {
    **{name: f"finops.analyses.{name}" for name in (
        "anomalies", "budgets", "chargeback", "classify", "forecast", "reconcile", "spend",
        "unit_economics", "usage", "whatif")},
    "charts": "finops.reports.charts",
    "narrative": "finops.reports.narrative",
    "report": "finops.reports.render",
    "explore": "finops.reports.explore",
    "sample_company": "finops.demo.company",
    "sample_gateway": "finops.demo.gateway",
    "sources": "finops.ingest.sources",
}  # fmt: skip
"""Modules that moved into the layers: ``from finops import chargeback`` keeps working, with a warning."""


def __getattr__(name: str) -> ModuleType:
    if name in _MOVED:
        warnings.warn(
            f"finops.{name} moved to {_MOVED[name]}; import it from there", DeprecationWarning, stacklevel=2
        )
        return importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'finops' has no attribute {name!r}")
