"""The analysis commands: chargeback, forecast, budgets, anomalies, unit-costs, savings, reconcile.

Each parses its options once (finops.cli.options), calls one function of finops.analyses and prints
the frame it returns (finops.cli.output).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import polars as pl

from finops.cli.options import (
    _basis,
    _engine,
    _period,
    _quarter,
    config_option,
    engine_option,
    format_option,
    warehouse_option,
)
from finops.cli.output import _print_frame
from finops.periods import Quarter

# -- reconciliation ----------------------------------------------------------------------


@click.command()
@click.option(
    "--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]"
)
@click.option(
    "--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day (YYYY-MM-DD), instead of --quarter."
)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Day after the last (exclusive).")
@click.option("--unpriced", is_flag=True, help="List the models without a price and their token volume instead.")
@format_option
@warehouse_option
@config_option
@engine_option
def reconcile(
    quarter: str | None,
    start: Any,
    end: Any,
    unpriced: bool,
    output_format: str,
    warehouse_path: Path | None,
    config_path: Path | None,
    engine: str | None,
) -> None:
    """Compare gateway/API cost (llm_requests) with the providers' bills (charges), per month.

    difference = billed − gateway; each llm_requests source is its own row (never added up).

    \b
    Examples:
      finops reconcile --quarter 2026Q3
      finops reconcile --start 2026-07-01 --end 2026-10-01
      finops reconcile --start 2026-07-01 --end 2026-10-01 --unpriced
    """
    from finops.analyses import reconcile as reconciling
    from finops.config import load_config

    wh = _engine(warehouse_path, load_config(config_path), engine)
    first, last, label = _period(wh, quarter, start, end)
    if unpriced:
        frame = reconciling.unpriced_usage(wh, first, last)
        _print_frame(frame, output_format, title=f"Model calls without a price, {label}")
    else:
        frame = reconciling.gateway_vs_bill(wh, first, last)
        _print_frame(frame, output_format, title=f"Gateway/API cost vs. the bill, {label} (USD)")


# -- chargeback ---------------------------------------------------------------------------


@click.command("chargeback")
@click.option(
    "--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]"
)
@click.option(
    "--basis",
    type=click.Choice(["effective", "billed"]),
    default=None,
    help="EffectiveCost (amortized) or BilledCost (as invoiced) [default: finops.toml's, else effective]",
)
@click.option(
    "--reconcile", is_flag=True, help="Print the reconciliation to the invoices instead (per provider and month)."
)
@click.option(
    "--detail", is_flag=True, help="Print every allocation (department, pool, rule, provider, service), unrounded."
)
@format_option
@warehouse_option
@config_option
@engine_option
def chargeback_command(
    quarter: str | None,
    basis: str | None,
    reconcile: bool,
    detail: bool,
    output_format: str,
    warehouse_path: Path | None,
    config_path: Path | None,
    engine: str | None,
) -> None:
    """Who pays what: one row per department and billing month, shared costs split, to the cent.

    Columns: department, month (YYYY-MM), direct_cost, shared_cost, total_cost. Each month's
    total_cost adds up to that month's bill exactly; Unallocated is a row of its own.

    \b
      finops chargeback --quarter 2026Q3
      finops chargeback --basis billed --format csv > chargeback.csv
      finops chargeback --reconcile
    """
    from finops.analyses import chargeback as charging
    from finops.config import load_config

    config = load_config(config_path)
    wh = _engine(warehouse_path, config, engine)
    chosen = _quarter(wh, quarter)
    shown = _basis(config, basis)
    if reconcile:
        frame = charging.reconciliation(wh, config, chosen, basis=shown)  # type: ignore[arg-type]
        title = f"{chosen} invoices = departments + unallocated ({shown} cost, {config.currency})"
    elif detail:
        frame = charging.allocations(wh, config, chosen, basis=shown)  # type: ignore[arg-type]
        title = f"{chosen} allocations ({shown} cost, {config.currency})"
    else:
        frame = charging.chargeback(wh, config, chosen, basis=shown)  # type: ignore[arg-type]
        title = f"{chosen} chargeback ({shown} cost, {config.currency})"
    _print_frame(frame, output_format, title=title)


# -- forecasts and budgets ------------------------------------------------------------------


@click.command("forecast")
@click.option("--quarter", default=None, help="Quarter like 2026Q4 [default: the quarter after the data's last day]")
@click.option("--by", type=click.Choice(["department", "workload"]), default="department", show_default=True)
@format_option
@warehouse_option
@config_option
@engine_option
def forecast_command(
    quarter: str | None,
    by: str,
    output_format: str,
    warehouse_path: Path | None,
    config_path: Path | None,
    engine: str | None,
) -> None:
    """Forecast a quarter's spend per department or workload class, with 80%/95% intervals.

    Totals sum the daily forecasts of the model the rolling-origin backtest chose per series
    (AutoETS, a 28-day average or the seasonal-naive baseline); mape is that backtest's error
    on weekly totals (%), beside the baseline's. A past quarter gets the forecast made at its start.

    \b
    Examples:
      finops forecast
      finops forecast --quarter 2026Q3 --by workload --format csv
    """
    from finops.analyses import forecast as forecasting
    from finops.config import load_config

    config = load_config(config_path)
    wh = _engine(warehouse_path, config, engine)
    label = _quarter(wh, quarter, default=forecasting.quarter_to_plan)
    frame = forecasting.quarter_forecast(wh, config, by=by, quarter=label)  # type: ignore[arg-type]
    if output_format == "table":  # the columns that fit a terminal; csv and json keep every one
        frame = frame.select(
            pl.col("series").alias(by),
            "model",
            "forecast",
            "lo_95",
            "hi_95",
            mape_pct=pl.col("mape").round(1),
            baseline_mape_pct=pl.col("baseline_mape").round(1),
        )
    title = f"Forecast of {label} spend by {by} (USD; 95% interval; backtest MAPE of weekly totals)"
    _print_frame(frame, output_format, title=title)


@click.command("budgets")
@click.option("--quarter", default=None, help="Quarter like 2026Q3 [default: the quarter of --as-of]")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day counted as spent (YYYY-MM-DD) [default: the warehouse's last day]",
)
@format_option
@warehouse_option
@config_option
@engine_option
def budgets_command(
    quarter: str | None,
    as_of: Any,
    output_format: str,
    warehouse_path: Path | None,
    config_path: Path | None,
    engine: str | None,
) -> None:
    """Budgets from finops.toml: burn to date, projected spend, run-out date and alerts.

    \b
    Examples:
      finops budgets --quarter 2026Q3 --as-of 2026-08-15
      finops budgets --quarter 2026Q4 --format json
    """
    from finops.analyses import budgets as budgeting
    from finops.analyses.forecast import data_range
    from finops.config import load_config

    config = load_config(config_path)
    wh = _engine(warehouse_path, config, engine)
    day = as_of.date() if as_of else None
    label = _quarter(wh, quarter, default=lambda wh: Quarter.containing(day or data_range(wh)[1]))
    frame = budgeting.budget_status(wh, config, label, as_of=day)
    as_of_text = f" as of {frame['as_of'][0]}" if frame.height else ""
    if output_format == "table":  # the columns that fit a terminal; csv and json keep every one
        frame = frame.select(
            "department",
            scope=pl.concat_str(pl.col("provider"), pl.col("model"), separator=" ", ignore_nulls=True),
            budget="budget",
            spent="spent",
            burn_pct=pl.col("burn_pct").round(1),
            projected="projected",
            low_95="projected_lo_95",
            high_95="projected_hi_95",
            run_out="run_out_date",
            alerts="alerts",
        )
    _print_frame(frame, output_format, title=f"Budgets {label}{as_of_text} (USD)")


# -- anomalies ------------------------------------------------------------------------------


@click.command()
@click.option(
    "--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]"
)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day (YYYY-MM-DD), with --end.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Day after the last (exclusive).")
@click.option("--agents", is_flag=True, help="Runaway agent tasks (llm_requests) instead of daily cost anomalies.")
@click.option("--basis", type=click.Choice(["effective", "billed"]), default=None, help="[default: finops.toml's]")
@click.option("--threshold", type=float, default=5.0, show_default=True, help="Robust sigmas above expected to flag.")
@click.option("--min-impact", type=str, default="250", show_default=True, help="Dollars above expected to flag.")
@format_option
@warehouse_option
@config_option
@engine_option
def anomalies(
    quarter: str | None,
    start: Any,
    end: Any,
    agents: bool,
    basis: str | None,
    threshold: float,
    min_impact: str,
    output_format: str,
    warehouse_path: Path | None,
    config_path: Path | None,
    engine: str | None,
) -> None:
    """Days whose cost of a department × service is far above its baseline, or agent tasks that loop.

    The baseline follows the weekly rhythm and the trend of each series (see
    finops/analyses/anomalies.py); a day is flagged when it is both many robust sigmas and
    --min-impact dollars above expected. Each anomaly names the sub account, resource and
    SKU that explain most of it.

    \b
    Examples:
      finops anomalies --quarter 2026Q3
      finops anomalies --start 2026-08-01 --end 2026-09-01 --format csv
      finops anomalies --quarter 2026Q3 --agents
    """
    from finops.analyses import anomalies as detecting
    from finops.config import load_config, resolve_path
    from finops.exceptions import AnalysisError

    if (start is None) != (end is None) or (quarter and start is not None):
        raise click.UsageError("give either --quarter or both --start and --end (e.g. --quarter 2026Q3)")
    config = load_config(resolve_path(config_path))
    wh = _engine(warehouse_path, config, engine)
    if start is not None:
        first, last = start.date(), end.date()
    else:
        chosen = _quarter(wh, quarter)
        first, last = chosen.start, chosen.end
    if agents:
        frame = detecting.agent_anomalies(wh, first, last)
        _print_frame(frame, output_format, title=f"Runaway agent tasks, {first} to {last} (exclusive)")
        return
    try:
        impact = Decimal(min_impact)
    except ArithmeticError as exc:
        raise AnalysisError(f"--min-impact {min_impact!r} is not a number", hint="e.g. --min-impact 500") from exc
    frame = detecting.cost_anomalies(
        wh, config, first, last, basis=_basis(config, basis), threshold=threshold, min_impact=impact
    )
    if output_format == "table":
        # the explaining resource ids are long: csv and json have them, with every share
        frame = frame.select("date", "department", "service", "expected", "actual", "impact", "score", "top_sku")
    _print_frame(frame, output_format, title=f"Cost anomalies, {first} to {last} (exclusive), USD")


# -- unit economics and savings ---------------------------------------------------------------


@click.command("unit-costs")
@click.option(
    "--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]"
)
@click.option(
    "--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day (YYYY-MM-DD), instead of --quarter."
)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Day after the last (exclusive).")
@click.option("--by", "by", type=click.Choice(["model", "department", "agent", "self-hosted"]), default="model", show_default=True,
              help="model: per provider and model; department; agent: cost per agent task; self-hosted: [[self_hosted]] models.")  # fmt: skip
@click.option("--grain", type=click.Choice(["month", "week"]), default=None, help="Also split by month or week.")
@click.option(
    "--source", default=None, help="Count only this llm_requests source [default: one per provider, litellm first]."
)
@format_option
@warehouse_option
@config_option
@engine_option
def unit_costs(
    quarter: str | None,
    start: Any,
    end: Any,
    by: str,
    grain: str | None,
    source: str | None,
    output_format: str,
    warehouse_path: Path | None,
    config_path: Path | None,
    engine: str | None,
) -> None:
    """Cost per 1M tokens (blended, input, output), per request, per agent task (USD).

    \b
    Examples:
      finops unit-costs --quarter 2026Q3
      finops unit-costs --quarter 2026Q3 --by department --grain month
      finops unit-costs --start 2026-08-01 --end 2026-09-01 --by agent
    """
    from finops.analyses import unit_economics
    from finops.config import load_config

    settings = load_config(config_path)
    wh = _engine(warehouse_path, settings, engine)
    first, last, label = _period(wh, quarter, start, end)
    if by == "agent":
        frame = unit_economics.agent_task_unit_costs(wh, first, last, source=source, grain=grain)  # type: ignore[arg-type]
        title = f"Cost per agent task, {label} (USD)"
    elif by == "self-hosted":
        config = settings
        frame = unit_economics.self_hosted_unit_costs(wh, config, first, last, grain, source=source)  # type: ignore[arg-type]
        title = f"Self-hosted models: GPU cost per 1M tokens, {label} (USD)"
    else:
        config = settings if by == "department" else None
        group = ("department",) if by == "department" else ("provider", "model")
        frame = unit_economics.token_unit_costs(wh, first, last, by=group, grain=grain, source=source, config=config)  # type: ignore[arg-type]
        title = f"Unit costs per {by}, {label} (USD; per 1M tokens and per request)"
    unit_costs = {c: 4 for c in frame.columns if c.startswith(("cost_per", "mean_task"))}  # more than cents
    _print_frame(frame, output_format, title=title, digits=unit_costs)


@click.command()
@click.option(
    "--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]"
)
@format_option
@warehouse_option
@config_option
@engine_option
def savings(
    quarter: str | None, output_format: str, warehouse_path: Path | None, config_path: Path | None, engine: str | None
) -> None:
    """Savings what-ifs ranked by $ per quarter: caching, routing, batch, GPU tuning, commitments, on-prem.

    Each row states its assumptions (defaults from the seed articles); the savings overlap,
    so do not add them up. Change assumptions from Python: finops.analyses.whatif.savings_opportunities.

    \b
    Example:
      finops savings --quarter 2026Q3 --format csv
    """
    from finops.analyses import whatif
    from finops.config import load_config

    config = load_config(config_path)
    wh = _engine(warehouse_path, config, engine)
    chosen = _quarter(wh, quarter)
    frame = whatif.savings_opportunities(wh, config, chosen)
    if output_format == "table":
        frame = frame.drop("assumptions")
    _print_frame(frame, output_format, title=f"Savings opportunities, {chosen} (USD; overlapping, do not add)")
