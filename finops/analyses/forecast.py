"""Spend forecasts: next quarter per department or workload class, with intervals and a backtest.

Each series is the daily spend of one department (Unallocated included) or one workload class
(:func:`finops.analyses.spend.daily_spend`, days without charges filled with zero from the series' first
day). Three statsforecast models are fitted per series:

* ``AutoETS`` with weekly seasonality (``season_length=7``): trend and weekday pattern, for
  steady spend (inference endpoints, APIs, platforms);
* ``WindowAverage`` of the last 28 days: for bursty spend (training jobs that run a few days
  at a time), where any smoothing model extrapolates whichever burst or lull the history ends
  in; its intervals are conformal (statsforecast ``ConformalIntervals``, two windows of the
  horizon, so it is fitted only where the history is twice the horizon plus 28 days);
* ``SeasonalNaive`` (the same weekday of the last week): the baseline the models must beat.

A rolling-origin backtest refits them at several origins (month starts, each with at least
half a year of history before it and a full horizon after it) and scores the forecasts of the
next ``horizon`` days (92, the longest quarter) against what happened. Per series, the model of the two
with the lower error is the series' model; the forecast uses it, unless the baseline did better
still (then the baseline is used, and says so). A series with less than two weeks of history
(a new department) is forecast as the mean of its days (``HistoricAverage``).

What the error is computed over
-------------------------------
Daily MAPE is meaningless here: taxes and fees land on the first day of a month (a day worth
two to four ordinary days), training jobs leave days near zero, and a relative error on a
near-zero day is huge. The error is the **MAPE of weekly totals**: the horizon is cut into
7-day weeks from the origin, and ``mape`` is the mean of ``|forecast − actual| / actual`` over
all origins and weeks (weeks whose actual is zero are left out), in percent. ``quarter_mape``
beside it is the same for the horizon's total, the figure a budget owner feels.

Intervals
---------
Per day, the intervals are the model's own (80% and 95%). A total over many days needs more
than its days' bounds: summing them assumes every day errs the same way at once (far too
wide), treating days as independent ignores that a wrong level is wrong every day (too
narrow). So a total's interval is **empirical**: in the backtest, the chosen model's relative
error of the cumulative total of the first *k* days is measured at every origin; a total of
*k* days gets ``forecast × (1 ± q · rmse)``, with ``rmse`` the root mean square of those
errors over the *n* origins and ``q`` Student's t quantile with *n − 1* degrees of freedom
(:func:`total_interval`). Origins a month apart overlap, so *n* overstates the evidence:
read the interval as indicative. With fewer than three origins the sum of the daily bounds is
used instead (conservative), and the output says which (``interval``). Forecasts and bounds are
clipped at zero (spend is not negative).

Money
-----
Forecasts are statistical estimates, so they are floats (USD). Tables meant to be read as
money (:func:`quarter_forecast`, :func:`forecast_vs_actual`) round them to cents as
``Decimal``; actuals stay exact decimals.

statsforecast takes seconds to import, so it is imported inside the functions that fit:
``import finops.analyses.forecast`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

import polars as pl

from finops.analyses import cache
from finops.analyses.tables import charges_table
from finops.config import COST_BASES, Config, CostBasis
from finops.exceptions import AnalysisError
from finops.periods import Quarter

if TYPE_CHECKING:
    from finops.warehouse import Warehouse

ForecastBy = Literal["department", "workload"]
FORECAST_BYS: tuple[ForecastBy, ...] = ("department", "workload")

MODEL = "AutoETS"
"""The main forecasting model (statsforecast AutoETS, weekly seasonality)."""
WINDOW_MODEL = "WindowAverage"
"""The model for bursty series: the mean of the last ``WINDOW`` days."""
MODELS: tuple[str, ...] = (MODEL, WINDOW_MODEL)
"""The candidate models; per series the backtest picks one."""
WINDOW = 28
BASELINE = "SeasonalNaive"
SHORT_MODEL = "HistoricAverage"
"""For a series with less than two weeks of history: the mean of its days."""
"""The baseline: each day forecast as the same weekday of the last observed week."""
SEASON_LENGTH = 7
HORIZON = 92
"""Backtest horizon in days: the longest quarter (13 full weeks and a day)."""
N_ORIGINS = 6
"""Backtest origins: the latest month starts that leave a full horizon after them."""
MIN_HISTORY = 182
"""Days of history an origin needs before it (half a year: enough for weekly ETS to settle)."""
LEVELS: tuple[int, ...] = (80, 95)
TOTAL = "Total"
"""Series name of the all-series row in :func:`quarter_forecast` and :func:`forecast_vs_actual`."""

_MONEY = pl.Decimal(38, 2)


# -- small helpers ------------------------------------------------------------------------------


def _check_by(by: str) -> ForecastBy:
    if by not in FORECAST_BYS:
        raise AnalysisError(f"cannot forecast by {by!r}", hint=f"use one of: {', '.join(FORECAST_BYS)}")
    return by  # type: ignore[return-value]


def _check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    chosen = tuple(sorted({int(level) for level in levels}))
    if not chosen or any(not 0 < level < 100 for level in chosen):
        raise AnalysisError(f"interval levels must be percentages between 0 and 100, got {list(levels)}")
    return chosen


def _basis(config: Config, basis: CostBasis | None) -> CostBasis:
    chosen = basis or config.basis
    if chosen not in COST_BASES:
        raise AnalysisError(f"unknown cost basis {chosen!r}", hint=f"use one of: {', '.join(COST_BASES)}")
    return chosen


def data_range(wh: Warehouse) -> tuple[date, date]:
    """First and last day (UTC, by ChargePeriodStart) that the warehouse has charges for.

    Raises :class:`AnalysisError` when the warehouse holds no charges.
    """
    with wh.ibis() as con:
        charges = charges_table(con)
        day = charges.ChargePeriodStart.date()
        row = charges.aggregate(first=day.min(), last=day.max()).to_polars()
    first, last = row["first"][0], row["last"][0]
    if first is None:
        raise AnalysisError(f"no charges in warehouse {wh.path}", hint="load bills first (finops demo, finops ingest)")
    return first, last


def complete_days(frame: pl.DataFrame, end: date) -> pl.DataFrame:
    """Fill the days a series has no charges with zero, from its first day up to ``end`` (exclusive).

    ``frame`` has ``series``, ``date`` and ``cost``; the result has one row per series and day.

    >>> f = pl.DataFrame({"series": ["a", "a"], "date": [date(2026, 7, 1), date(2026, 7, 3)], "cost": [1.0, 2.0]})
    >>> complete_days(f, date(2026, 7, 5))["cost"].to_list()
    [1.0, 0.0, 2.0, 0.0]
    """
    if frame.is_empty():
        return frame
    last = end - timedelta(days=1)
    firsts = frame.group_by("series").agg(first=pl.col("date").min()).filter(pl.col("first") <= last)
    grid = firsts.select(
        "series", date=pl.date_ranges(pl.col("first"), pl.lit(last), interval="1d", closed="both")
    ).explode("date")
    zero = pl.lit(0).cast(frame.schema["cost"])
    return (
        grid.join(frame, on=["series", "date"], how="left")
        .with_columns(pl.col("cost").fill_null(zero))
        .sort("series", "date")
    )


def spend_series(
    wh: Warehouse,
    config: Config,
    start: date,
    end: date,
    *,
    by: ForecastBy = "department",
    basis: CostBasis | None = None,
) -> pl.DataFrame:
    """The daily spend series that the forecasts are fitted on.

    Parameters
    ----------
    wh
        The warehouse.
    config
        Departments and workload rules; its basis is the default.
    start, end
        Days to include (``end`` exclusive), by ChargePeriodStart.
    by
        ``"department"`` (Unallocated is a series too) or ``"workload"`` (non-AI included).
    basis
        ``"effective"`` or ``"billed"``; the config's when omitted.

    Returns
    -------
    pl.DataFrame
        ``series``, ``date``, ``cost`` (exact Decimal); every day from the series' first day
        with charges to ``end``, zero where it had none.

    Why
    ---
    A model reads a missing day as "unknown"; for spend it means nothing was spent.
    """
    from finops.analyses.spend import daily_spend

    frame = daily_spend(wh, start, end, basis=_basis(config, basis), by=_check_by(by), config=config)
    return complete_days(frame.rename({by: "series"}).select("series", "date", "cost"), end)


def _training_frame(series: pl.DataFrame, end: date) -> pl.DataFrame:
    """statsforecast's input: ``unique_id``, ``ds``, ``y`` (float) for days before ``end``."""
    return series.filter(pl.col("date") < end).select(
        unique_id=pl.col("series"), ds=pl.col("date"), y=pl.col("cost").cast(pl.Float64)
    )


def _empty_forecast(levels: tuple[int, ...]) -> pl.DataFrame:
    columns = ["forecast", *(f"{side}_{level}" for level in levels for side in ("lo", "hi"))]
    schema = {"series": pl.String, "date": pl.Date, "model": pl.String} | dict.fromkeys(columns, pl.Float64)
    return pl.DataFrame(schema=schema)


def _long_form(wide: pl.DataFrame, names: Sequence[str], levels: tuple[int, ...]) -> pl.DataFrame:
    """statsforecast's wide output (``<model>``, ``<model>-lo-80``, …) as one row per model and day."""
    parts = []
    for name in (n for n in names if n in wide.columns):
        bounds = {f"{side}_{level}": pl.col(f"{name}-{side}-{level}") for level in levels for side in ("lo", "hi")}
        parts.append(
            wide.select(
                series=pl.col("unique_id"),
                date=pl.col("ds").cast(pl.Date),
                model=pl.lit(name),
                forecast=pl.col(name),
                **bounds,
            )
        )
    return pl.concat(parts)


def _fit_forecast(train: pl.DataFrame, horizon: int, levels: tuple[int, ...]) -> pl.DataFrame:
    """Every model's daily forecasts for ``horizon`` days after each training series ends.

    Series with less than two weeks of history get the mean of their days
    (``HistoricAverage``): no weekly model can be fitted to them yet.

    Returns ``series``, ``date``, ``model`` and ``forecast``, ``lo_<L>``, ``hi_<L>`` per level
    (floats, clipped at zero).
    """
    if train.is_empty():
        return _empty_forecast(levels)
    # Fitted once per training series: the backtests of quarter_forecast, forecast_vs_actual and
    # the budgets refit the same series at the same origins, and the same again in every kernel.
    key = cache.key_of("forecast fit", _statsforecast_version(), MODELS, BASELINE, SEASON_LENGTH, WINDOW,
                       horizon, levels, train.sort("unique_id", "ds").write_csv())  # fmt: skip
    return cache.cached_frame(key, lambda: _fit(train, horizon, levels))


def _statsforecast_version() -> str:
    from importlib.metadata import version

    return version("statsforecast")


def _fit(train: pl.DataFrame, horizon: int, levels: tuple[int, ...]) -> pl.DataFrame:
    """:func:`_fit_forecast` itself (statsforecast), without the cache."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, HistoricAverage, SeasonalNaive, WindowAverage
    from statsforecast.utils import ConformalIntervals

    lengths = train.group_by("unique_id").len()
    short_ids = lengths.filter(pl.col("len") < 2 * SEASON_LENGTH)["unique_id"].implode()
    long_train = train.filter(~pl.col("unique_id").is_in(short_ids))
    short_train = train.filter(pl.col("unique_id").is_in(short_ids))
    parts = []
    if not long_train.is_empty():
        models = [AutoETS(season_length=SEASON_LENGTH), SeasonalNaive(season_length=SEASON_LENGTH)]
        shortest = long_train.group_by("unique_id").len()["len"].min()
        if shortest >= 2 * horizon + WINDOW:  # conformal intervals need two horizons of history
            models.append(WindowAverage(WINDOW, prediction_intervals=ConformalIntervals(h=horizon, n_windows=2)))
        sf = StatsForecast(
            models=models, freq="1d", n_jobs=1, fallback_model=SeasonalNaive(season_length=SEASON_LENGTH)
        )
        parts.append(_long_form(sf.forecast(df=long_train, h=horizon, level=list(levels)), (*MODELS, BASELINE), levels))
    if not short_train.is_empty():
        sf = StatsForecast(models=[HistoricAverage()], freq="1d", n_jobs=1)
        wide = sf.forecast(df=short_train, h=horizon, level=list(levels))
        parts.append(_long_form(wide, (SHORT_MODEL,), levels))
    long = pl.concat(parts)
    value_columns = [c for c in long.columns if c not in ("series", "date", "model")]
    # A one-day history has no spread: its bounds are the forecast. Clipping every value at the
    # same bound keeps lo_95 <= lo_80 <= forecast <= hi_80 <= hi_95.
    filled = long.with_columns(pl.col(value_columns).fill_nan(None).fill_null(pl.col("forecast")))
    return filled.with_columns(pl.col(value_columns).clip(lower_bound=0.0))


# -- backtest -----------------------------------------------------------------------------------


def backtest_origins(first: date, end: date, *, horizon: int = HORIZON, n_origins: int = N_ORIGINS) -> list[date]:
    """The backtest's origins: the latest ``n_origins`` month starts with ``MIN_HISTORY`` days of
    data before them and a full ``horizon`` before ``end`` (exclusive) after them.

    >>> backtest_origins(date(2025, 4, 1), date(2026, 7, 1), n_origins=3)
    [datetime.date(2026, 1, 1), datetime.date(2026, 2, 1), datetime.date(2026, 3, 1)]
    """
    origins = []
    month = date(first.year, first.month, 1)
    while month + timedelta(days=horizon) <= end:
        if (month - first).days >= MIN_HISTORY:
            origins.append(month)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return origins[-n_origins:] if n_origins > 0 else []


def backtest_runs(series: pl.DataFrame, origins: Sequence[date], *, horizon: int = HORIZON) -> pl.DataFrame:
    """Every model's daily forecast from each origin, beside what happened.

    Parameters
    ----------
    series
        ``series``, ``date``, ``cost`` as :func:`spend_series` returns (already in memory).
    origins
        First forecast day of each backtest run; each fit sees only the days before it.
    horizon
        Days forecast from each origin.

    Returns
    -------
    pl.DataFrame
        ``series``, ``model``, ``origin``, ``date``, ``step`` (1 for the origin's day, …),
        ``forecast`` and ``actual`` (floats; a day without charges is 0).
    """
    runs = []
    for origin in origins:  # a handful of refits
        fitted = _fit_forecast(_training_frame(series, origin), horizon, LEVELS)
        if fitted.is_empty():
            continue
        actual = series.filter(pl.col("date") >= origin, pl.col("date") < origin + timedelta(days=horizon)).select(
            "series", "date", actual=pl.col("cost").cast(pl.Float64)
        )
        runs.append(
            fitted.join(actual, on=["series", "date"], how="left").select(
                "series",
                "model",
                origin=pl.lit(origin),
                date="date",
                step=((pl.col("date") - pl.lit(origin)).dt.total_days() + 1).cast(pl.Int32),
                forecast="forecast",
                actual=pl.col("actual").fill_null(0.0),
            )
        )
    schema = {"series": pl.String, "model": pl.String, "origin": pl.Date, "date": pl.Date, "step": pl.Int32}
    schema |= {"forecast": pl.Float64, "actual": pl.Float64}
    return pl.concat(runs) if runs else pl.DataFrame(schema=schema)


def _ape() -> pl.Expr:
    return pl.when(pl.col("actual") != 0).then((pl.col("forecast") - pl.col("actual")).abs() / pl.col("actual").abs())


def backtest_errors(runs: pl.DataFrame) -> pl.DataFrame:
    """Absolute percentage errors of weekly and horizon totals, from :func:`backtest_runs`.

    Returns one row per series, model, origin and ``week`` (0, 1, …: full 7-day weeks from the
    origin; ``week`` null is the horizon's total) with ``forecast``, ``actual`` and ``ape``
    (|forecast − actual| / actual; null when the actual is zero).
    """
    keys = ["series", "model", "origin"]
    full_weeks = runs.select(pl.col("step").max()).item() // SEASON_LENGTH if not runs.is_empty() else 0
    with_week = runs.with_columns(week=((pl.col("step") - 1) // SEASON_LENGTH).cast(pl.Int32))
    weekly = (
        with_week.filter(pl.col("week") < full_weeks)
        .group_by(*keys, "week")
        .agg(pl.col("forecast").sum(), pl.col("actual").sum())
    )
    totals = runs.group_by(keys).agg(pl.col("forecast").sum(), pl.col("actual").sum())
    totals = totals.with_columns(week=pl.lit(None, dtype=pl.Int32)).select(weekly.columns)
    return pl.concat([weekly, totals]).with_columns(ape=_ape()).sort(*keys, "week", nulls_last=True)


def total_error_scale(runs: pl.DataFrame, chosen: pl.DataFrame) -> pl.DataFrame:
    """How wrong the chosen model's totals were, by how many days they covered.

    For each series (and :data:`TOTAL`, the sum over series), origin and ``step``, the relative
    error of the cumulative forecast of the first ``step`` days; ``rel_rmse`` is its root mean
    square over the origins, ``rel_mape`` its mean absolute value in percent, and ``n`` the
    number of origins. A total of ``step`` days gets the
    interval ``forecast × (1 ± t·rel_rmse)`` (:func:`total_interval`).
    """
    picks = chosen.select("series", "chosen")
    mine = runs.join(picks, on="series").filter(pl.col("model") == pl.col("chosen")).drop("chosen")
    overall = mine.group_by("origin", "step").agg(pl.col("forecast").sum(), pl.col("actual").sum())
    both = pl.concat(
        [
            mine.select("series", "origin", "step", "forecast", "actual"),
            overall.select(pl.lit(TOTAL).alias("series"), "origin", "step", "forecast", "actual"),
        ]
    ).sort("series", "origin", "step")
    cumulative = both.with_columns(
        pl.col("forecast").cum_sum().over("series", "origin"), pl.col("actual").cum_sum().over("series", "origin")
    )
    relative = cumulative.filter(pl.col("actual") != 0).with_columns(
        rel=(pl.col("forecast") - pl.col("actual")) / pl.col("actual")
    )
    return (
        relative.group_by("series", "step")
        .agg(rel_rmse=(pl.col("rel") ** 2).mean().sqrt(), rel_mape=pl.col("rel").abs().mean() * 100, n=pl.len())
        .sort("series", "step")
    )


MIN_ORIGINS_FOR_EMPIRICAL = 3
"""Fewer backtest origins than this, and a total's interval is the sum of the daily bounds."""


def total_interval(
    totals: pl.DataFrame, scale: pl.DataFrame, steps: int, levels: Sequence[int] = LEVELS
) -> pl.DataFrame:
    """Intervals for totals of ``steps`` days: empirical from the backtest where it has the evidence.

    ``totals`` has ``series``, ``forecast`` and ``lo_<L>``/``hi_<L>`` (the sums of the daily
    bounds). Where ``scale`` (:func:`total_error_scale`) has at least
    :data:`MIN_ORIGINS_FOR_EMPIRICAL` origins for the series at ``steps`` days (or the longest
    horizon it has, if ``steps`` is longer), the bounds become ``forecast × (1 ± q·rel_rmse)``
    with ``q`` Student's t quantile for ``n − 1`` degrees of freedom (clipped at zero);
    otherwise the summed daily bounds stay. Adds ``interval`` ("backtest" or "daily bounds").
    """
    from scipy.stats import t as student_t

    levels = _check_levels(levels)
    longest = scale["step"].max() if not scale.is_empty() else None
    step = min(steps, longest) if longest else steps
    at_step = scale.filter(pl.col("step") == step, pl.col("n") >= MIN_ORIGINS_FOR_EMPIRICAL)
    joined = totals.join(at_step.select("series", "rel_rmse", "n"), on="series", how="left", maintain_order="left")
    quantiles = {
        level: pl.col("n").map_elements(
            lambda n, level=level: float(student_t.ppf(0.5 + level / 200, df=n - 1)), return_dtype=pl.Float64
        )
        for level in levels
    }
    empirical = pl.col("rel_rmse").is_not_null()
    bounds = {}
    for level, q in quantiles.items():
        half = pl.col("forecast") * q * pl.col("rel_rmse")
        bounds[f"lo_{level}"] = (
            pl.when(empirical).then((pl.col("forecast") - half).clip(lower_bound=0.0)).otherwise(pl.col(f"lo_{level}"))
        )
        bounds[f"hi_{level}"] = pl.when(empirical).then(pl.col("forecast") + half).otherwise(pl.col(f"hi_{level}"))
    return joined.with_columns(
        **bounds, interval=pl.when(empirical).then(pl.lit("backtest")).otherwise(pl.lit("daily bounds"))
    ).drop("rel_rmse", "n")


def summarize_backtest(errors: pl.DataFrame) -> pl.DataFrame:
    """Per series: the best model's and the baseline's errors, and which one the forecast uses.

    ``model`` is the candidate of :data:`MODELS` with the lower weekly MAPE; ``chosen`` is
    that model, or the baseline when the baseline's weekly MAPE is lower still. With no
    evidence (too little history for any origin) the main model is chosen and the errors are
    null. MAPEs are percentages (floats).
    """
    schema = {"series": pl.String, "model": pl.String}
    per_model = errors.group_by("series", "model").agg(
        mape=pl.col("ape").filter(pl.col("week").is_not_null()).mean() * 100,
        quarter_mape=pl.col("ape").filter(pl.col("week").is_null()).mean() * 100,
        origins=pl.col("origin").n_unique(),
    )
    if per_model.is_empty():
        per_model = per_model.cast(schema)  # type: ignore[arg-type]
    candidates = (
        per_model.filter(pl.col("model").is_in(list(MODELS)))
        .sort("series", pl.col("mape").fill_null(float("inf")), "model")
        .group_by("series", maintain_order=True)
        .first()
    )
    baseline = per_model.filter(pl.col("model") == BASELINE).select(
        "series",
        baseline_mape="mape",
        baseline_quarter_mape="quarter_mape",
        baseline_origins="origins",
    )
    joined = candidates.join(baseline, on="series", how="full", coalesce=True)
    use_baseline = pl.col("baseline_mape") < pl.col("mape").fill_null(float("inf"))
    return (
        joined.with_columns(
            model=pl.col("model").fill_null(pl.lit(MODEL)),
            chosen=pl.when(use_baseline).then(pl.lit(BASELINE)).otherwise(pl.col("model").fill_null(pl.lit(MODEL))),
            chosen_mape=pl.when(use_baseline).then("baseline_mape").otherwise("mape"),
            chosen_quarter_mape=pl.when(use_baseline).then("baseline_quarter_mape").otherwise("quarter_mape"),
            origins=pl.coalesce("origins", "baseline_origins", pl.lit(0)).cast(pl.UInt32),
        )
        .select(
            "series",
            "model",
            "mape",
            "baseline_mape",
            "chosen",
            "chosen_mape",
            "quarter_mape",
            "baseline_quarter_mape",
            "chosen_quarter_mape",
            "origins",
        )
        .sort("series")
    )


def backtest(
    wh: Warehouse,
    config: Config,
    *,
    by: ForecastBy = "department",
    end: date | None = None,
    basis: CostBasis | None = None,
    horizon: int = HORIZON,
    n_origins: int = N_ORIGINS,
) -> pl.DataFrame:
    """Rolling-origin backtest of the model against the seasonal-naive baseline, per series.

    Parameters
    ----------
    wh
        The warehouse.
    config
        Departments and workload rules; its basis is the default.
    by
        ``"department"`` or ``"workload"``.
    end
        Use only days before this date (exclusive), e.g. a quarter's start to see what was
        known then; the day after the data's last day when omitted.
    basis
        ``"effective"`` or ``"billed"``.
    horizon
        Days forecast from each origin (91: a quarter).
    n_origins
        How many origins (month starts, latest first; see :func:`backtest_origins`).

    Returns
    -------
    pl.DataFrame
        ``series``; ``model`` (the better of :data:`MODELS`); ``mape`` (its MAPE of weekly
        totals, percent, float) and ``baseline_mape`` (SeasonalNaive's); ``chosen`` (the
        model, or the baseline when its MAPE is lower) and ``chosen_mape``;
        ``quarter_mape``, ``baseline_quarter_mape`` and ``chosen_quarter_mape`` (MAPE of the
        horizon total); ``origins`` (how many origins were scored). Errors are null when no
        origin fits in the data.

    Why
    ---
    A forecast without its track record is a guess with decimals: the error beside it says
    how far to trust it, and a model that cannot beat "same as last week" should not be used.
    """
    first, last = data_range(wh)
    end = end or last + timedelta(days=1)
    series = spend_series(wh, config, first, end, by=by, basis=basis)
    origins = backtest_origins(first, end, horizon=horizon, n_origins=n_origins)
    return summarize_backtest(backtest_errors(backtest_runs(series, origins, horizon=horizon)))


# -- forecasts ----------------------------------------------------------------------------------


def forecast_days(
    series: pl.DataFrame,
    origin: date,
    days: int,
    chosen: pl.DataFrame,
    *,
    levels: Sequence[int] = LEVELS,
) -> pl.DataFrame:
    """Daily forecasts of the chosen model per series for ``days`` days from ``origin``.

    ``series`` is fitted on its days before ``origin``; ``chosen`` has ``series`` and
    ``chosen`` (a model name; series missing from it use the model). Returns ``series``,
    ``date``, ``model``, ``forecast`` and ``lo_<L>``/``hi_<L>`` per level (floats, USD).
    """
    levels = _check_levels(levels)
    train = _training_frame(series, origin)
    if train.is_empty() or days <= 0:
        return _empty_forecast(levels)
    # A series whose history stops before the origin is forecast from its end; keep the origin's days.
    last_seen = train.group_by("unique_id").agg(pl.col("ds").max())
    gap = max((origin - d).days - 1 for d in last_seen["ds"].to_list())
    fitted = _fit_forecast(train, days + gap, levels)
    # The chosen model where it was fitted, else the first fitted of MODEL, WindowAverage,
    # the baseline and HistoricAverage (a short series, or too little history for a model).
    preference = {name: rank for rank, name in enumerate((*MODELS, BASELINE, SHORT_MODEL), start=1)}
    rank = pl.when(pl.col("model") == pl.col("chosen")).then(0).otherwise(pl.col("model").replace_strict(preference))
    return (
        fitted.join(chosen.select("series", "chosen"), on="series", how="left")
        .with_columns(_rank=rank)
        .filter(pl.col("_rank") == pl.col("_rank").min().over("series"))
        .filter(pl.col("date") >= origin, pl.col("date") < origin + timedelta(days=days))
        .drop("chosen", "_rank")
        .sort("series", "date")
    )


def quarter_to_plan(wh: Warehouse) -> Quarter:
    """The quarter after the data's last day's quarter: the next one to plan for.

    ``finops forecast`` forecasts it when no ``--quarter`` is given; the analyses below take
    the quarter they are given.
    """
    _, last = data_range(wh)
    return Quarter.containing(last).next()


def _quarter_inputs(
    wh: Warehouse, config: Config, quarter: Quarter, by: ForecastBy, basis: CostBasis | None
) -> tuple[pl.DataFrame, date, pl.DataFrame, pl.DataFrame]:
    """Series known at the quarter's start, the forecast origin, the backtest summary then, and
    the chosen models' error scale of totals (:func:`total_error_scale`)."""
    first, last = data_range(wh)
    origin = min(quarter.start, last + timedelta(days=1))
    if origin <= first:
        raise AnalysisError(
            f"no spend before {quarter} to forecast it from (the warehouse starts on {first})",
            hint="choose a later quarter",
        )
    series = spend_series(wh, config, first, origin, by=by, basis=basis)
    runs = backtest_runs(series, backtest_origins(first, origin))
    summary = summarize_backtest(backtest_errors(runs))
    return series, origin, summary, total_error_scale(runs, summary)


def forecast_spend(
    wh: Warehouse,
    config: Config,
    *,
    by: ForecastBy = "department",
    quarter: Quarter,
    basis: CostBasis | None = None,
    levels: Sequence[int] = LEVELS,
) -> pl.DataFrame:
    """Daily spend forecast of a quarter per department or workload class, with intervals.

    Parameters
    ----------
    wh
        The warehouse.
    config
        Departments and workload rules; its basis is the default.
    by
        ``"department"`` or ``"workload"``.
    quarter
        The quarter to forecast (:func:`quarter_to_plan` is the next one to plan for).
        The forecast uses only data before the quarter's start (or all data, if the
        quarter starts later), so a past quarter gets the forecast one would have made then.
    basis
        ``"effective"`` or ``"billed"``.
    levels
        Interval levels in percent.

    Returns
    -------
    pl.DataFrame
        ``series``, ``date``, ``model`` (the one the backtest chose for the series),
        ``forecast``, and ``lo_<L>``/``hi_<L>`` per level: floats in USD, clipped at zero,
        with ``lo_95 <= lo_80 <= forecast <= hi_80 <= hi_95``.

    Why
    ---
    Next quarter's budget conversation starts from a number with a range, per owner.
    """
    by = _check_by(by)
    series, origin, summary, _ = _quarter_inputs(wh, config, quarter, by, basis)
    days = (quarter.end - origin).days
    return forecast_days(series, origin, days, summary, levels=levels).filter(pl.col("date") >= quarter.start)


def _cents(column: str) -> pl.Expr:
    return pl.col(column).round(2).cast(_MONEY)


def _totals(daily: pl.DataFrame, levels: tuple[int, ...]) -> pl.DataFrame:
    """Per series and over all series: the sum of the daily forecasts and of their bounds (floats)."""
    value_columns = ["forecast", *(f"{side}_{level}" for level in levels for side in ("lo", "hi"))]
    per_series = daily.group_by("series").agg(pl.col("model").first(), *(pl.col(c).sum() for c in value_columns))
    total = per_series.select(
        pl.lit(TOTAL).alias("series"),
        pl.lit(None, dtype=pl.String).alias("model"),
        *(pl.col(c).sum() for c in value_columns),
    )
    return pl.concat([per_series.sort("series"), total])


@cache.per_warehouse_state
def quarter_forecast(
    wh: Warehouse,
    config: Config,
    *,
    by: ForecastBy = "department",
    quarter: Quarter,
    basis: CostBasis | None = None,
    levels: Sequence[int] = LEVELS,
) -> pl.DataFrame:
    """A quarter's forecast total per series, with its interval and the backtest error beside it.

    Parameters
    ----------
    wh, config, by, quarter, basis, levels
        As :func:`forecast_spend`.

    Returns
    -------
    pl.DataFrame
        ``series`` (and a last ``Total`` row), ``quarter``, ``model``, ``forecast`` (Decimal,
        cents: the sum of the daily forecasts; Total is the sum of the rows above it),
        ``lo_<L>``/``hi_<L>`` (Decimal, cents) and ``interval``, how they were made:
        ``"backtest"`` (the chosen model's relative error of totals over as many days in the
        rolling-origin backtest, see :func:`total_interval`; Total's from the backtest of the
        sum over series) or ``"daily bounds"`` (the sum of the daily bounds, when the backtest
        has too few origins: conservative); ``mape`` (weekly MAPE of the chosen model in the
        backtest, percent), ``baseline_mape``, ``quarter_mape`` (the chosen model's MAPE of
        quarter totals; on the Total row, that of the sum over series).

    Why
    ---
    The CFO reads one number per owner for next quarter, how wide it may be, and how wrong
    the same method was before.
    """
    by = _check_by(by)
    levels = _check_levels(levels)
    series, origin, summary, scale = _quarter_inputs(wh, config, quarter, by, basis)
    steps = (quarter.end - origin).days
    daily = forecast_days(series, origin, steps, summary, levels=levels).filter(pl.col("date") >= quarter.start)
    totals = total_interval(_totals(daily, levels), scale, steps, levels)
    errors = summary.select(
        "series", mape="chosen_mape", baseline_mape="baseline_mape", quarter_mape="chosen_quarter_mape"
    )
    # Total's quarter MAPE: the backtest's error of the sum over series, over as many days.
    if not scale.is_empty():
        step = min(steps, scale["step"].max())
        total_mape = scale.filter(pl.col("series") == TOTAL, pl.col("step") == step)["rel_mape"]
        if total_mape.len():
            errors = pl.concat(
                [errors, pl.DataFrame({"series": [TOTAL], "quarter_mape": [total_mape[0]]})], how="diagonal_relaxed"
            )
    bounds = [f"{side}_{level}" for level in levels for side in ("lo", "hi")]
    rounded = totals.with_columns(*(_cents(c) for c in ("forecast", *bounds)))
    # Total's forecast is the sum of the rounded rows, so the table adds up to the cent.
    parts = rounded.filter(pl.col("series") != TOTAL)
    total_forecast = parts.select(pl.col("forecast").sum()).item() if parts.height else Decimal(0)
    rounded = rounded.with_columns(
        forecast=pl.when(pl.col("series") == TOTAL)
        .then(pl.lit(total_forecast).cast(_MONEY))
        .otherwise(pl.col("forecast"))
    )
    return (
        rounded.join(errors, on="series", how="left", maintain_order="left")
        .with_columns(quarter=pl.lit(quarter.label))
        .select("series", "quarter", "model", "forecast", *bounds, "interval", "mape", "baseline_mape", "quarter_mape")
    )


@cache.per_warehouse_state
def forecast_vs_actual(
    wh: Warehouse,
    config: Config,
    quarter: Quarter,
    *,
    by: ForecastBy = "department",
    basis: CostBasis | None = None,
    levels: Sequence[int] = LEVELS,
) -> pl.DataFrame:
    """The forecast of a past quarter made at its start, against what was actually spent.

    Parameters
    ----------
    wh, config, by, basis, levels
        As :func:`forecast_spend`.
    quarter
        A quarter the warehouse holds in full.

    Returns
    -------
    pl.DataFrame
        ``series`` (and a last ``Total`` row), ``quarter``, ``model``, ``forecast``,
        ``lo_<L>``/``hi_<L>`` (Decimal, cents), ``actual`` (exact Decimal: the quarter's daily
        spend by ChargePeriodStart), ``error`` (actual − forecast, Decimal), ``error_pct``
        (error / actual × 100, float) and ``within_<L>`` (the actual inside each interval).

    Why
    ---
    Last quarter's forecast against its actual is the forecast's report card, in dollars.
    """
    by = _check_by(by)
    levels = _check_levels(levels)
    first, last = data_range(wh)
    if last < quarter.end - timedelta(days=1):
        raise AnalysisError(
            f"the warehouse's charges end on {last}, before {quarter} is over",
            hint="compare a quarter the warehouse holds in full",
        )
    forecast = quarter_forecast(wh, config, by=by, quarter=quarter, basis=basis, levels=levels)
    actual = spend_series(wh, config, quarter.start, quarter.end, by=by, basis=basis)
    per_series = actual.group_by("series").agg(actual=pl.col("cost").sum())
    total = per_series.select(series=pl.lit(TOTAL), actual=pl.col("actual").sum())
    actuals = pl.concat([per_series, total])
    joined = forecast.drop("mape", "baseline_mape", "quarter_mape").join(
        actuals, on="series", how="full", coalesce=True, maintain_order="left"
    )
    actual_col = pl.col("actual").fill_null(pl.lit(0).cast(actuals.schema["actual"]))
    within = {
        f"within_{level}": (pl.col("actual") >= pl.col(f"lo_{level}")) & (pl.col("actual") <= pl.col(f"hi_{level}"))
        for level in levels
    }
    return joined.with_columns(actual=actual_col, quarter=pl.lit(quarter.label)).with_columns(
        error=pl.col("actual") - pl.col("forecast"),
        error_pct=(pl.col("actual").cast(pl.Float64) - pl.col("forecast").cast(pl.Float64))
        / pl.col("actual").cast(pl.Float64).replace(0.0, None)
        * 100,
        **within,
    )
