"""The quarterly review's forecasts, fitted in a second process while the review's notebook runs.

The review's kernel runs its cells one after another. Its forecasts (statsforecast fits, one
core, about 15 s cold, the same at any warehouse size) would hold one core while the other
waits, and the kernel reaches them in its fourth cell. So :func:`finops.reports.render.render_quarterly`
starts this module beside the kernel: it asks for the same forecasts with the same arguments,
and the result cache (:mod:`finops.analyses.cache`) hands them to the kernel. A kernel that
reaches a forecast still being fitted here waits for it (the cache's per-entry lock) rather than
fitting it again; a helper that fails or is stopped leaves the kernel to compute them itself.

    python -m finops.reports.prefetch --quarter 2026Q3 --warehouse W.duckdb --config finops.toml

The calls below are the notebook's own (notebooks/quarterly_review.ipynb); tests/test_report.py
runs the notebook's forecast cells after this and checks that the cache answered them.
"""

from __future__ import annotations

import argparse
import signal
import sys

from finops.analyses import budgets, cache, forecast
from finops.config import Config, load_config
from finops.periods import Quarter
from finops.warehouse.engine import Engine, open_engine


def review_forecasts(wh: Engine, cfg: Config, quarter: Quarter) -> None:
    """Compute (into the cache) the forecasts the quarterly review of ``quarter`` shows, in its order."""
    forecast.quarter_forecast(wh, cfg, by="department", quarter=quarter.next(), basis=cfg.basis)
    budgets.budget_status(wh, cfg, quarter, missing_ok=True)
    forecast.forecast_vs_actual(wh, cfg, quarter, by="department", basis=cfg.basis)


def main(argv: list[str] | None = None) -> int:
    """Open the warehouse as the notebook does (same parameters), then :func:`review_forecasts`.

    Does nothing when nothing could be shared: the cache is off, or the engine cannot tell its
    state (Spark), so the kernel would not find the results.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quarter", required=True)
    parser.add_argument("--warehouse", default="")
    parser.add_argument("--config", default="")
    parser.add_argument("--engine", default="")
    args = parser.parse_args(argv)
    # Stopped when the notebook is done: unwind, so the cache entry being computed lets go of its lock file.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if not cache.enabled():
        return 0
    cfg = load_config(args.config or None)
    wh = open_engine(cfg, args.warehouse or None, engine=args.engine or None)
    if wh.state_token() is None:
        return 0
    review_forecasts(wh, cfg, Quarter.parse(args.quarter))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
