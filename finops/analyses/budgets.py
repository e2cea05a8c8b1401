"""Budgets: burn to date, projected end-of-quarter spend, run-out date and alerts.

Budgets live in finops.toml (``[[budgets]]``: department, quarter, amount, optionally a
provider or a model; ``[budget_alerts]``: thresholds). :func:`budget_status` reads them and
the warehouse:

* **spent** is the budget's spend from the quarter's first day through ``as_of``, by
  ChargePeriodStart (the day the cost was incurred, as the forecasts count), on the
  config's cost basis: an exact Decimal.
* **projected** is spent plus the forecast of the quarter's remaining days
  (:mod:`finops.analyses.forecast`: the model its backtest chose for the series, fitted on the days
  through ``as_of``), with 80% and 95% intervals from the model's backtest errors of totals
  over as many days (see :mod:`finops.analyses.forecast`, "Intervals"). Rounded to cents.
* **run_out_date** is the first day on which spent-then-forecast cumulative spend reaches the
  budget (:func:`run_out_date`); null when that does not happen within the quarter.
* **alerts** name each threshold that spent has reached ("80% spent", "100% spent") and
  "forecast over budget" when the projection exceeds the budget.

A budget's scope: the department's charges (chargeback's rules: sub account, then tags), and
when given, only those whose ProviderName equals ``provider`` (any case) and whose model —
``x_Model`` where the bill names one, else ``SkuMeter`` (OpenAI and Anthropic FOCUS lines name
the model there) — matches ``model`` (any case, ``*`` a wildcard: ``"gpt-4o*"``).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import polars as pl

from finops.analyses import cache, forecast
from finops.analyses.tables import charges_table
from finops.config import Budget, BudgetAlerts, Config
from finops.exceptions import AnalysisError
from finops.periods import Quarter

if TYPE_CHECKING:

    from finops.warehouse import Warehouse

_MONEY = pl.Decimal(38, 10)
_CENTS = pl.Decimal(38, 2)


def run_out_date(days: pl.DataFrame, budget: Decimal | float, *, amount: str = "amount") -> date | None:
    """The first day on which cumulative spend reaches ``budget``; None if it never does.

    Parameters
    ----------
    days
        One row per day: ``date`` and ``amount`` (actual spend, then forecast; Decimal or
        float). Sorted here by date.
    budget
        The budget, in the same currency.
    amount
        The name of the amount column.

    Returns
    -------
    date or None
        The day whose cumulative spend (that day included) is at least ``budget``.

    >>> days = pl.DataFrame({"date": [date(2026, 7, d) for d in (1, 2, 3)], "amount": [40.0, 40.0, 40.0]})
    >>> run_out_date(days, 100)
    datetime.date(2026, 7, 3)
    >>> run_out_date(days, 121) is None
    True
    """
    if days.is_empty():
        return None
    cumulative = days.sort("date").select("date", total=pl.col(amount).cum_sum())
    if isinstance(budget, Decimal) and cumulative.schema["total"].is_decimal():
        # Both at the warehouse's money scale, so neither side is rounded to the other's.
        threshold = pl.lit(budget).cast(_MONEY)
        cumulative = cumulative.with_columns(pl.col("total").cast(_MONEY))
    else:
        threshold = pl.lit(float(budget))
        cumulative = cumulative.with_columns(pl.col("total").cast(pl.Float64))
    hit = cumulative.filter(pl.col("total") >= threshold)
    return None if hit.is_empty() else hit["date"][0]


def _in_scope(budget: Budget) -> pl.Expr:
    """The rows of :func:`finops.analyses.spend.daily_scope_spend_expr` in a budget's scope."""
    scope = pl.col("department") == budget.department
    if budget.provider:
        scope &= pl.col("provider") == budget.provider.lower()
    if budget.model:
        # SQL LIKE's meaning, as before: ``*`` (written as ``%``) any text, ``_`` one character.
        pattern = "".join(
            ".*" if c in "*%" else "." if c == "_" else c if c.isalnum() else f"\\x{{{ord(c):X}}}"
            for c in budget.model.lower()
        )  # every other character as a hex escape: literal in any regex dialect
        scope &= pl.col("model").str.contains(f"(?s)^{pattern}$")
    return scope


def _scope_label(budget: Budget) -> str:
    parts = [budget.department]
    if budget.provider:
        parts.append(f"provider={budget.provider}")
    if budget.model:
        parts.append(f"model={budget.model}")
    return " ".join(parts)


def budget_series(wh: Warehouse, config: Config, budgets: list[Budget], start: date, end: date) -> pl.DataFrame:
    """Daily spend of each budget's scope in [start, end): ``series`` (the scope label), ``date``,
    ``cost`` (exact Decimal), days without charges filled with zero from the first day with any."""
    from finops.analyses.spend import daily_scope_spend_expr

    if not budgets:
        return pl.DataFrame(schema={"series": pl.String, "date": pl.Date, "cost": _MONEY})
    with wh.ibis() as con:
        departments = sorted({b.department for b in budgets})
        expr = daily_scope_spend_expr(
            charges_table(con, config), start, end, basis=config.basis, config=config, departments=departments
        )
        daily = expr.to_polars()
    frames = [  # one scan above serves every budget; each takes its rows here (a few thousand)
        daily.filter(_in_scope(budget))
        .group_by("date")
        .agg(pl.col("cost").sum())
        .select(series=pl.lit(_scope_label(budget)), date=pl.col("date"), cost=pl.col("cost"))
        for budget in budgets
    ]
    return forecast.complete_days(pl.concat(frames).unique(["series", "date"]), end)


def _alerts(spent: Decimal, projected: Decimal, budget: Decimal, rules: BudgetAlerts) -> str:
    hits = [
        f"{(threshold * 100).normalize():f}% spent" for threshold in rules.thresholds if spent >= budget * threshold
    ]
    if rules.forecast_over_budget and projected > budget:
        hits.append("forecast over budget")
    return "; ".join(hits)


@cache.per_warehouse_state
def budget_status(
    wh: Warehouse,
    config: Config,
    quarter: Quarter,
    *,
    as_of: date | None = None,
    missing_ok: bool = False,
) -> pl.DataFrame:
    """Each budget of a quarter: burn to date, projected end-of-quarter spend, run-out date, alerts.

    ``missing_ok``: a quarter without budgets gives an empty frame instead of an error (the
    review shows "no budgets" rather than failing).

    Parameters
    ----------
    wh
        The warehouse.
    config
        The finops.toml: its ``[[budgets]]``, ``[budget_alerts]`` and cost basis.
    quarter
        The quarter whose budgets to report (``finops budgets`` defaults to the quarter
        containing ``--as-of``, else the warehouse's last day).
    as_of
        The last day counted as spent (inclusive). Defaults to the warehouse's last day with
        charges, or the quarter's last day if that is earlier; days after the warehouse's last
        day are forecast, not spent.

    Returns
    -------
    pl.DataFrame
        One row per budget of the quarter, in file order: ``department``, ``provider``,
        ``model``, ``quarter``, ``budget`` (Decimal), ``as_of``, ``spent`` (exact Decimal),
        ``burn_pct`` (spent / budget × 100, float), ``projected``, ``projected_lo_80``,
        ``projected_hi_80``, ``projected_lo_95``, ``projected_hi_95`` (Decimal, cents),
        ``projected_pct`` (float), ``run_out_date`` (date or null), ``model_used`` (the
        forecast model; null when nothing is left to forecast), ``alerts`` (text, "; " between
        alerts, empty when none).

    Raises
    ------
    AnalysisError
        The config has no budget for the quarter.

    Why
    ---
    A budget owner needs to hear "you will run out on 14 September" in August, not read it
    on the October invoice.
    """
    first, last = forecast.data_range(wh)
    budgets = [b for b in config.budgets if b.quarter == quarter.label]
    if not budgets and missing_ok:
        return pl.DataFrame(schema=STATUS_SCHEMA)
    if not budgets:
        planned = sorted({b.quarter for b in config.budgets})
        raise AnalysisError(
            f"no budgets for {quarter} in {config.path or 'the configuration'}",
            hint=f"budgets exist for: {', '.join(planned)}" if planned else "add [[budgets]] tables to finops.toml",
        )
    rules = config.budget_alerts or BudgetAlerts()
    quarter_last = quarter.end - timedelta(days=1)
    as_of = min(as_of or last, quarter_last)
    known_end = min(as_of, last) + timedelta(days=1)  # exclusive end of the days actually known
    history_start = min(first, quarter.start)
    series = budget_series(wh, config, budgets, history_start, max(known_end, history_start + timedelta(days=1)))
    # The spent part: the quarter's days through as_of (exact).
    spent_days = series.filter(pl.col("date") >= quarter.start, pl.col("date") < known_end)
    # The forecast part: from the first unknown day to the quarter's end, by the backtest's choice.
    origin = max(known_end, quarter.start)
    remaining = (quarter.end - origin).days
    daily, rest_totals = _forecast_rest(series, first, origin, remaining)
    rows = []
    for budget in budgets:  # one row per budget
        label = _scope_label(budget)
        spent_part = spent_days.filter(pl.col("series") == label)
        spent = spent_part["cost"].sum() if not spent_part.is_empty() else Decimal(0)
        rest = daily.filter(pl.col("series") == label)
        rest_total = rest_totals.filter(pl.col("series") == label)
        sums = {
            c: Decimal(str(round(float(rest_total[c][0]), 2))) if rest_total.height else Decimal(0)
            for c in ("forecast", "lo_80", "hi_80", "lo_95", "hi_95")
        }
        projected = {c: (Decimal(spent) + v).quantize(Decimal("0.01")) for c, v in sums.items()}
        path = pl.concat(
            [
                spent_part.select("date", amount=pl.col("cost").cast(_MONEY)),
                rest.select("date", amount=pl.col("forecast").round(2).cast(_MONEY)),
            ]
        )
        rows.append(
            {
                "department": budget.department,
                "provider": budget.provider,
                "model": budget.model,
                "quarter": quarter.label,
                "budget": budget.amount,
                "as_of": as_of,
                "spent": Decimal(spent),
                "burn_pct": float(Decimal(spent) / budget.amount * 100),
                "projected": projected["forecast"],
                "projected_lo_80": projected["lo_80"],
                "projected_hi_80": projected["hi_80"],
                "projected_lo_95": projected["lo_95"],
                "projected_hi_95": projected["hi_95"],
                "projected_pct": float(projected["forecast"] / budget.amount * 100),
                "run_out_date": run_out_date(path, budget.amount),
                "model_used": rest["model"][0] if not rest.is_empty() else None,
                "alerts": _alerts(Decimal(spent), projected["forecast"], budget.amount, rules),
            }
        )
    return pl.DataFrame(rows, schema=STATUS_SCHEMA)


STATUS_SCHEMA = {
    "department": pl.String,
    "provider": pl.String,
    "model": pl.String,
    "quarter": pl.String,
    "budget": _MONEY,
    "as_of": pl.Date,
    "spent": _MONEY,
    "burn_pct": pl.Float64,
    "projected": _CENTS,
    "projected_lo_80": _CENTS,
    "projected_hi_80": _CENTS,
    "projected_lo_95": _CENTS,
    "projected_hi_95": _CENTS,
    "projected_pct": pl.Float64,
    "run_out_date": pl.Date,
    "model_used": pl.String,
    "alerts": pl.String,
}
"""Columns of :func:`budget_status`."""


def _forecast_rest(series: pl.DataFrame, first: date, origin: date, days: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Daily forecasts of each series for ``days`` days from ``origin`` (fitted on the days before
    it, by the model its backtest chose), and per series the forecast total of those days with
    its interval (:func:`finops.analyses.forecast.total_interval`)."""
    columns = ("forecast", "lo_80", "hi_80", "lo_95", "hi_95")
    empty = pl.DataFrame(
        schema={"series": pl.String, "date": pl.Date, "model": pl.String} | dict.fromkeys(columns, pl.Float64)
    )
    if days <= 0:
        return empty, empty.drop("date")
    known = series.filter(pl.col("date") < origin)
    if known.is_empty():
        raise AnalysisError(f"no spend before {origin} to forecast the budgets from")
    runs = forecast.backtest_runs(known, forecast.backtest_origins(first, origin))
    chosen = forecast.summarize_backtest(forecast.backtest_errors(runs))
    daily = forecast.forecast_days(known, origin, days, chosen).select(empty.columns)
    totals = daily.group_by("series").agg(pl.col("model").first(), *(pl.col(c).sum() for c in columns))
    return daily, forecast.total_interval(totals, forecast.total_error_scale(runs, chosen), days)
