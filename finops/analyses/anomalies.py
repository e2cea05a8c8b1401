"""Anomalies: days whose cost is far above what the series usually costs, and agent runs that loop.

Two detectors, both robust (medians, not means, so the anomalies they look for do not hide
themselves by inflating the baseline):

* :func:`cost_anomalies`: daily spend per department × provider × service, from the
  usage-based charges of ``charges``. Each day is compared with a baseline that follows the
  series' weekly rhythm and its trend; a day is an anomaly when it is far above the baseline
  both in robust sigmas and in dollars.
* :func:`agent_anomalies`: agent tasks (traces) of ``llm_requests`` whose model calls
  or tokens are far above their agent's typical task: runaway loops.

:func:`evaluate` scores either detector against a list of known anomalies (the sample
company's ground truth): precision, recall and false alarms per quarter.

The baseline (:func:`cost_anomalies`), per series and day ``d``, from days before ``d`` only:

1. ``level``: the median daily cost of the ``window`` days before ``d`` (28 by default: four
   whole weeks, so every weekday weighs the same).
2. ``trend``: that median moves with the series; ``growth`` = level / (level ``window`` days
   earlier), clipped to [1/``max_growth``, ``max_growth``]. The median sits half a window in
   the past, so ``trend_level`` = level × growth ** ((window + 1) / 2 / window).
3. ``weekday``: the median, over the last ``weeks`` same weekdays, of cost / trend_level on
   that day (1 while fewer than 3 are known). Weekends of a weekday-heavy series get a low
   factor, so a quiet Saturday is expected, not flagged.
4. ``expected`` = trend_level × weekday, rounded to the cent.
5. ``spread``: the residuals (actual − expected) of the ``window`` days before ``d`` give two
   estimates of a normal sigma, 1.4826 × their median absolute value (the MAD) and their 90th
   percentile absolute value / 1.645; the larger is used, and at least ``min_spread`` ×
   expected so that a metronome-flat series does not make cents look like sigmas. The
   percentile matters for series idle most days (training jobs): their MAD is 0, yet a busy
   day is normal for them.
6. ``score`` = (actual − expected) / spread.

A day is flagged when ``score ≥ threshold`` **and** ``impact ≥ min_impact`` dollars **and**
``actual ≥ (1 + min_relative) × expected``, and the series has ``2 × window`` days of history
before it (so that trend, weekday profile and spread are all known). Only increases are
flagged: a drop in spend is not a cost risk. A lasting step up (a new always-on GPU node) is
flagged for its first few days, until a tenth of the window has seen it; then it is the new
normal.

Only usage-based charges are read (ChargeFrequency 'Usage-Based', or, when a bill leaves it
empty, Usage and Adjustment rows whose charge period is at most a day): monthly fees,
commitment purchases, tax, support and credits land on the first of a month by design and
would otherwise be flagged every month.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import ibis
import polars as pl
from ibis import _

from finops.analyses import cache
from finops.analyses.spend import _charged_between, _check_range, _with_cost, with_department
from finops.analyses.usage import SOURCE_PRIORITY, task_costs
from finops.config import Config, CostBasis
from finops.exceptions import AnalysisError

if TYPE_CHECKING:
    from finops.warehouse import Warehouse

SERIES = ("department", "provider", "service")
"""The columns that name a cost series."""

DIMENSIONS = {"sub_account": "SubAccountId", "resource": "ResourceId", "sku": "sku"}
"""Explaining dimensions: output prefix → column of the daily detail (``sku`` is SkuMeter,
else x_UsageType, else SkuId)."""

WINDOW = 28
"""Days of the rolling baseline (the default of every function taking ``window``)."""

COST_ANOMALY_COLUMNS = (
    "date",
    "department",
    "provider",
    "service",
    "expected",
    "actual",
    "impact",
    "score",
    "episode",
    *(f"top_{d}{suffix}" for d in DIMENSIONS for suffix in ("", "_share")),
)

MAD_TO_SIGMA = 1.4826
"""MAD × this = the standard deviation, for normal residuals."""

TAIL_QUANTILE = 0.9
TAIL_TO_SIGMA = 1.6449
"""The 90th percentile of |residual| / this = the standard deviation, for normal residuals. The
spread is the larger of the MAD's and this tail's estimate: for a series that is idle most days
(training jobs) the MAD is 0, while the tail still knows how large a busy day gets."""

_CENT = pl.Decimal(38, 2)
_MONEY = pl.Decimal(38, 10)


@dataclass(frozen=True)
class Evaluation:
    """How a detector's findings compare with the known anomalies.

    ``precision`` = true positives / found (1.0 when nothing was found), ``recall`` = known
    anomalies found / known (1.0 when none are known), ``false_alarms`` = findings that match
    no known anomaly, ``false_alarms_per_quarter`` = false_alarms / (days evaluated / 91.3125).
    """

    found: int
    known: int
    true_positives: int
    false_alarms: int
    missed: tuple[tuple[Any, ...], ...]
    precision: float
    recall: float
    false_alarms_per_quarter: float


# -- cost anomalies: pieces --------------------------------------------------------------------


def _usage_based(charges: ibis.Table) -> ibis.Table:
    """Usage-based charges only: not the month-start fees, purchases, tax and credits."""
    one_day = charges.ChargePeriodEnd.delta(charges.ChargePeriodStart, unit="hour") <= 24
    undeclared = charges.ChargeFrequency.isnull() & charges.ChargeCategory.isin(["Usage", "Adjustment"]) & one_day
    return charges.filter((charges.ChargeFrequency == "Usage-Based") | undeclared)


def daily_detail_expr(
    charges: ibis.Table, config: Config, start: date, end: date, *, basis: CostBasis = "effective"
) -> ibis.Table:
    """Usage-based cost per day, series and explaining dimension (sub account, resource, SKU).

    ``date`` is ChargePeriodStart's UTC date, selected in [start, end); ``cost`` is the exact sum
    of the ``basis`` column. Missing dimension values are '' so they group as one value.
    """
    _check_range(start, end)
    t = with_department(_with_cost(_usage_based(_charged_between(charges, start, end)), basis), config)
    empty = ibis.literal("")
    return t.group_by(
        date=t.ChargePeriodStart.date(),
        department=t.department,
        provider=t.ProviderName.coalesce(empty),
        service=t.ServiceName.coalesce(empty),
        SubAccountId=t.SubAccountId.coalesce(empty),
        ResourceId=t.ResourceId.coalesce(empty),
        sku=ibis.coalesce(t.SkuMeter, t.x_UsageType, t.SkuId, empty),
    ).aggregate(cost=_._cost.sum())


def _history_days(window: int, weeks: int) -> int:
    """Days of history before ``start`` that the baseline of ``start`` itself reads."""
    return 3 * window + 7 * weeks + 7


def daily_series(detail: pl.DataFrame, end: date) -> pl.DataFrame:
    """One row per series and calendar day, from the series' first day with spend to ``end``
    (exclusive); days without charges cost 0. ``cost`` stays exact (Decimal)."""
    per_day = detail.group_by("date", *SERIES).agg(pl.col("cost").sum())
    if per_day.is_empty():
        return per_day.with_columns(pl.col("cost").cast(_MONEY))
    first = per_day.filter(pl.col("cost") != 0).group_by(*SERIES).agg(first=pl.col("date").min())
    calendar = first.with_columns(date=pl.date_ranges("first", pl.lit(end - timedelta(days=1)), interval="1d")).explode(
        "date"
    )
    return (
        calendar.drop("first")
        .join(per_day, on=["date", *SERIES], how="left")
        .with_columns(pl.col("cost").fill_null(Decimal(0)).cast(_MONEY))
        .sort(*SERIES, "date")
    )


def baseline(
    series: pl.DataFrame,
    *,
    window: int = WINDOW,
    weeks: int = 8,
    max_growth: float = 2.0,
    min_spread: float = 0.05,
) -> pl.DataFrame:
    """Add the robust baseline of each day to :func:`daily_series` rows (method: module docstring).

    Adds ``expected`` (Decimal, cents), ``spread`` (float dollars), ``score`` (float sigmas) and
    ``history`` (days of the series before this one). Everything is computed from earlier days
    of the same series only, with polars window functions; ``expected`` is NULL until the
    series has a ``window`` of history.
    """
    if window < 7 or weeks < 3:
        raise AnalysisError(
            f"window={window}, weeks={weeks}: too short for a weekly baseline", hint="use window ≥ 7, weeks ≥ 3"
        )
    key = list(SERIES)
    cost = pl.col("cost").cast(pl.Float64)
    lag = (window + 1) / 2 / window
    out = series.sort(*key, "date").with_columns(
        history=pl.int_range(pl.len()).over(key),
        weekday=pl.col("date").dt.weekday(),
        level=cost.shift(1).rolling_median(window, min_samples=window).over(key),
    )
    growth = (pl.col("level") / pl.col("level").shift(window).over(key)).clip(1 / max_growth, max_growth)
    out = out.with_columns(
        trend_level=pl.col("level") * pl.when(growth.is_finite()).then(growth).otherwise(1.0).fill_null(1.0) ** lag
    )
    ratio = pl.when(pl.col("trend_level") > 0).then(cost / pl.col("trend_level"))
    out = out.with_columns(_ratio=ratio).with_columns(
        weekday_factor=pl.col("_ratio")
        .shift(1)
        .rolling_median(weeks, min_samples=3)
        .over([*key, "weekday"], order_by="date")
        .fill_null(1.0)
    )
    expected = (pl.col("trend_level") * pl.col("weekday_factor")).round(2)
    out = out.with_columns(_expected=expected).with_columns(_residual=cost - pl.col("_expected"))
    past_abs = pl.col("_residual").abs().shift(1)
    mad = past_abs.rolling_median(window, min_samples=window // 2).over(key)
    tail = past_abs.rolling_quantile(TAIL_QUANTILE, window_size=window, min_samples=window // 2).over(key)
    out = out.with_columns(
        spread=pl.max_horizontal(
            MAD_TO_SIGMA * mad, tail / TAIL_TO_SIGMA, min_spread * pl.col("_expected").abs(), pl.lit(0.01)
        )
    )
    return out.with_columns(
        expected=_to_cents(pl.col("_expected")),
        score=pl.col("_residual") / pl.col("spread"),
    ).drop("_ratio", "_expected", "_residual", "level")


def _to_cents(value: pl.Expr) -> pl.Expr:
    """A float amount as an exact Decimal(38, 2), rounded to the cent (through its shortest text,
    so 0.145 stays 0.15 rather than becoming 0.14 by binary truncation)."""
    return value.round(2).cast(pl.String).cast(_CENT)


def flag(
    scored: pl.DataFrame,
    *,
    window: int = WINDOW,
    threshold: float = 5.0,
    min_impact: Decimal = Decimal(250),
    min_relative: float = 0.5,
) -> pl.DataFrame:
    """The rows of :func:`baseline` output that are anomalies, with ``impact`` = actual − expected
    (Decimal) and ``episode`` (one id per run of consecutive anomalous days of a series)."""
    impact = pl.col("cost") - pl.col("expected").cast(_MONEY)
    hits = scored.filter(
        pl.col("expected").is_not_null()
        & (pl.col("history") >= 2 * window)
        & (pl.col("score") >= threshold)
        & (impact >= min_impact)
        & (pl.col("cost").cast(pl.Float64) >= (1 + min_relative) * pl.col("expected").cast(pl.Float64))
    ).with_columns(impact=impact)
    hits = hits.sort(*SERIES, "date")
    new_episode = (pl.col("date").diff().over(list(SERIES)) != timedelta(days=1)).fill_null(True)
    return hits.with_columns(episode=new_episode.cum_sum().cast(pl.Int64))


def explain(hits: pl.DataFrame, detail: pl.DataFrame, *, window: int = 28) -> pl.DataFrame:
    """Add, per anomaly and dimension (:data:`DIMENSIONS`), the value that deviates most from its
    own baseline, and its share of the impact.

    A value's baseline is the series' expected cost × the value's share of the series' cost
    over the ``window`` days before (a new resource has share 0, so all of its cost is
    deviation). ``top_<dim>_share`` = that value's deviation / impact (float; above 1 when other
    values fell).
    """
    if hits.is_empty():
        return hits.with_columns(
            *(pl.lit(None, pl.String).alias(f"top_{d}") for d in DIMENSIONS),
            *(pl.lit(None, pl.Float64).alias(f"top_{d}_share") for d in DIMENSIONS),
        )
    key = ["date", *SERIES]
    anchors = hits.select(*key, "expected", "impact")
    out = hits
    for name, column in DIMENSIONS.items():
        per_value = detail.group_by("date", *SERIES, column).agg(pl.col("cost").sum().cast(pl.Float64))
        # history of each value over [date - window, date)
        past = (
            anchors.select(*key)
            .join(per_value.rename({"date": "_day"}), on=list(SERIES))
            .filter((pl.col("_day") < pl.col("date")) & (pl.col("_day") >= pl.col("date") - timedelta(days=window)))
            .group_by(*key, column)
            .agg(past=pl.col("cost").sum())
            .with_columns(share=pl.col("past") / pl.col("past").sum().over(key))
        )
        today = anchors.join(per_value, on=key)
        both = (
            today.join(past.select(*key, column, "share"), on=[*key, column], how="full", coalesce=True)
            .drop("expected", "impact")
            .join(anchors, on=key)
            .with_columns(
                deviation=pl.col("cost").fill_null(0.0)
                - pl.col("expected").cast(pl.Float64) * pl.col("share").fill_null(0.0).fill_nan(0.0)
            )
        )
        top = (
            both.sort("deviation", column, descending=[True, False])
            .group_by(key, maintain_order=True)
            .first()
            .select(
                *key,
                pl.col(column).alias(f"top_{name}"),
                (pl.col("deviation") / pl.col("impact").cast(pl.Float64)).alias(f"top_{name}_share"),
            )
        )
        out = out.join(top, on=key, how="left")
    return out


# -- cost anomalies ----------------------------------------------------------------------------------


@cache.per_warehouse_state
def cost_anomalies(
    wh: Warehouse,
    config: Config,
    start: date,
    end: date,
    *,
    basis: CostBasis = "effective",
    window: int = WINDOW,
    weeks: int = 8,
    threshold: float = 5.0,
    min_impact: Decimal | int | str = 250,
    min_relative: float = 0.5,
    min_spread: float = 0.05,
    max_growth: float = 2.0,
) -> pl.DataFrame:
    """Days in [start, end) whose usage-based cost of a department × service is far above its baseline.

    Parameters
    ----------
    wh
        The warehouse.
    config
        The finops.toml: departments, by sub account and tags (:func:`finops.analyses.spend.with_department`).
    start, end
        Days to report (ChargePeriodStart's UTC date), ``end`` exclusive. The baseline also
        reads the ``2 × window + 7 × weeks + 7`` days before ``start``.
    basis
        ``"effective"`` (EffectiveCost, the default) or ``"billed"``.
    window
        Days of the trailing median level and of the residual spread (28: four whole weeks).
    weeks
        Same weekdays that make the weekday profile (8).
    threshold
        Robust sigmas above expected to flag (5.0). Lower finds smaller spikes, with more
        false alarms.
    min_impact
        Dollars above expected to flag (250): a 10-sigma wobble of a $3-a-day series is not
        worth anyone's morning.
    min_relative
        Fraction above expected to flag (0.5: the day costs at least 1.5 × expected).
    min_spread
        Floor of the spread, as a fraction of expected (0.05).
    max_growth
        Cap of the trend's growth over one window (2.0, and 1/2.0 for a decline).

    Returns
    -------
    pl.DataFrame
        One row per anomalous series-day (:data:`COST_ANOMALY_COLUMNS`), largest impact first:
        ``date``, ``department``, ``provider``, ``service``, ``expected`` (Decimal, cents),
        ``actual`` (Decimal, exact), ``impact`` = actual − expected (Decimal), ``score``
        (float, robust sigmas), ``episode`` (same id for consecutive days of one series), and
        per dimension (sub account, resource, SKU) the value whose cost rose most above its
        own baseline, ``top_<dim>``, with its share of the impact ``top_<dim>_share`` (float).

    Why
    ---
    A looping agent or a forgotten GPU endpoint costs money every hour until someone looks;
    the monthly invoice is weeks too late. Seasonality- and trend-aware baselines keep
    Saturdays and growth from crying wolf, and the dollar floor keeps small series quiet.

    Examples
    --------
    The sample company's planted anomaly (``finops demo``), the first of its two days:

    >>> cost_anomalies(wh, config, date(2026, 7, 1), date(2026, 10, 1)).filter(
    ...     pl.col("date") == date(2026, 8, 12)).select("service", "expected", "actual", "top_sku")  # doctest: +SKIP
    Cognitive Services  766.92  4140.8627340000  gpt 4o 0513 Output global Tokens
    """
    _check_range(start, end)
    min_impact = Decimal(str(min_impact))
    if threshold <= 0 or min_impact < 0 or min_relative < 0 or min_spread < 0 or max_growth < 1:
        raise AnalysisError(
            "anomaly thresholds must be positive (threshold > 0, min_impact ≥ 0, min_relative ≥ 0, "
            "min_spread ≥ 0, max_growth ≥ 1)",
            hint="see finops.analyses.anomalies.cost_anomalies for the defaults",
        )
    fetch_start = start - timedelta(days=_history_days(window, weeks))
    with wh.ibis() as con:
        detail_expr = daily_detail_expr(con.table("charges"), config, fetch_start, end, basis=basis)
        # The series first (days × departments × services: thousands of rows), the drill-down
        # detail (per resource: millions at scale) only for the flagged series and days.
        per_day = detail_expr.group_by("date", *SERIES).aggregate(cost=_.cost.sum()).to_polars()
        hits = find_hits(per_day.with_columns(pl.col("cost").cast(_MONEY)), start, end, window=window, weeks=weeks,
                         threshold=threshold, min_impact=min_impact, min_relative=min_relative,
                         min_spread=min_spread, max_growth=max_growth)  # fmt: skip
        if hits.is_empty():
            detail = pl.DataFrame(schema={**per_day.schema, **{c: pl.String for c in DIMENSIONS.values()}})
        else:
            flagged = [ibis.and_(*(detail_expr[c] == v for c, v in zip(SERIES, row, strict=True)))
                       for row in hits.select(*SERIES).unique().iter_rows()]  # fmt: skip
            days = detail_expr.date.between(hits["date"].min() - timedelta(days=window), hits["date"].max())
            detail = detail_expr.filter(days, ibis.or_(*flagged)).to_polars()
    return _explained(hits, detail.with_columns(pl.col("cost").cast(_MONEY)), window)


def daily_detail(
    wh: Warehouse, config: Config, start: date, end: date, *, basis: CostBasis = "effective"
) -> pl.DataFrame:
    """The anomaly detector's input: cost per day and series, with the drill-down dimensions.

    One row per day, department, provider, service, sub account, resource and SKU of charges
    whose charge period starts in [start, end); ``cost`` is DECIMAL (exact). :func:`detect`
    builds the baselines from it; the engines must agree on it to the cent.
    """
    _check_range(start, end)
    with wh.ibis() as con:
        detail = daily_detail_expr(con.table("charges"), config, start, end, basis=basis).to_polars()
    keys = ["date", "department", "provider", "service", "SubAccountId", "ResourceId", "sku"]
    return detail.with_columns(pl.col("cost").cast(_MONEY)).sort(keys)


def detect(detail: pl.DataFrame, start: date, end: date, **thresholds: Any) -> pl.DataFrame:
    """The engine of :func:`cost_anomalies`, on a daily detail frame (no warehouse needed).

    ``detail`` has ``date``, ``department``, ``provider``, ``service``, ``SubAccountId``,
    ``ResourceId``, ``sku`` and ``cost`` (Decimal) — one row per day and dimension values,
    as :func:`daily_detail_expr` gives. Anomalies are reported for days in [start, end).
    ``thresholds``: :func:`find_hits`'s keywords (``window``, ``threshold``, …), with its defaults.
    """
    hits = find_hits(detail, start, end, **thresholds)
    return _explained(hits, detail, thresholds.get("window", WINDOW))


def find_hits(
    daily: pl.DataFrame,
    start: date,
    end: date,
    *,
    window: int = WINDOW,
    weeks: int = 8,
    threshold: float = 5.0,
    min_impact: Decimal = Decimal(250),
    min_relative: float = 0.5,
    min_spread: float = 0.05,
    max_growth: float = 2.0,
) -> pl.DataFrame:
    """The anomalous series-days in [start, end), before :func:`explain`: ``daily`` is the daily
    detail or its sums per day and series (``date``, :data:`SERIES`, ``cost``), same result."""
    scored = baseline(
        daily_series(daily, end), window=window, weeks=weeks, max_growth=max_growth, min_spread=min_spread
    )
    hits = flag(scored, window=window, threshold=threshold, min_impact=min_impact, min_relative=min_relative)
    return hits.filter((pl.col("date") >= start) & (pl.col("date") < end)).rename({"cost": "actual"})


def _explained(hits: pl.DataFrame, detail: pl.DataFrame, window: int) -> pl.DataFrame:
    explained = explain(hits, detail, window=window)
    return explained.select(COST_ANOMALY_COLUMNS).sort(["impact", "date"], descending=[True, False])


# -- agent anomalies ----------------------------------------------------------------------------------


@cache.per_warehouse_state
def agent_anomalies(
    wh: Warehouse,
    start: date,
    end: date,
    *,
    source: str | None = None,
    k: float = 5.0,
    min_ratio: float = 3.0,
    min_tasks: int = 10,
    one_source: bool = False,
) -> pl.DataFrame:
    """Agent tasks in [start, end) with far more model calls or tokens than their agent's typical task.

    Parameters
    ----------
    wh
        The warehouse.
    start, end
        Tasks with a model call starting in this range (``end`` exclusive), as
        :func:`finops.analyses.usage.task_costs` selects them.
    source
        One ``llm_requests`` source ('otel', 'langfuse', 'litellm'); all when omitted. Each
        source is judged on its own: the same run seen by the gateway and by its traces
        appears once per source.
    k
        Robust sigmas above the agent's median to flag (5.0): the bound is
        median + k × 1.4826 × MAD of the agent's tasks in the range.
    min_ratio
        The task must also be at least this multiple of the median (3.0), so an agent whose
        tasks are all alike (MAD 0) does not flag a task one call longer.
    min_tasks
        Agents with fewer tasks in the range have no norm and are skipped (10).
    one_source
        Keep, per agent, only the first source of :data:`finops.analyses.usage.SOURCE_PRIORITY` that
        flagged it (a report lists each runaway task once, not once per source).

    Returns
    -------
    pl.DataFrame
        ``source``, ``agent_id``, ``task_id``, ``day`` (date of the task's first call),
        ``calls``, ``tokens`` (input + cached input + cache writes + output), ``cost``
        (Decimal; NULL when no call had a price), ``unpriced_calls``, ``typical_calls`` and
        ``typical_tokens`` (the agent's median task), ``calls_ratio`` and ``tokens_ratio``
        (task / median, floats), ``ratio`` (the larger of the two), ``reason`` ('calls',
        'tokens' or 'calls, tokens'). Costliest first.

    Why
    ---
    An agent stuck in a retry loop burns tokens until a human notices; one such task can cost
    more than a day of normal runs. Judging each agent against its own median keeps a
    research agent's long tasks from drowning a ticket agent's short ones.
    """
    if k <= 0 or min_ratio < 1 or min_tasks < 1:
        raise AnalysisError(
            f"k={k}, min_ratio={min_ratio}, min_tasks={min_tasks}: need k > 0, min_ratio ≥ 1, min_tasks ≥ 1"
        )
    tasks = task_costs(wh, start, end, source=source)
    found = runaway_tasks(tasks, k=k, min_ratio=min_ratio, min_tasks=min_tasks)
    if not one_source or found.is_empty():
        return found
    rank = {name: i for i, name in enumerate(SOURCE_PRIORITY)}
    ranked = found.with_columns(_rank=pl.col("source").replace_strict(rank, default=len(rank), return_dtype=pl.Int64))
    return ranked.filter(pl.col("_rank") == pl.col("_rank").min().over("agent_id")).drop("_rank")


def runaway_tasks(tasks: pl.DataFrame, *, k: float = 5.0, min_ratio: float = 3.0, min_tasks: int = 10) -> pl.DataFrame:
    """The engine of :func:`agent_anomalies`, on :func:`finops.analyses.usage.task_costs` rows."""
    agent = ["source", "agent_id"]
    t = tasks.select(
        "source",
        "agent_id",
        "task_id",
        day=pl.col("first_call_at").dt.date(),
        calls=pl.col("model_calls").cast(pl.Int64),
        tokens=pl.sum_horizontal("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens").cast(
            pl.Int64
        ),
        cost="cost",
        unpriced_calls="unpriced_calls",
    )
    conditions = []
    for measure in ("calls", "tokens"):
        value = pl.col(measure).cast(pl.Float64)
        median = value.median().over(agent)
        mad = (value - median).abs().median().over(agent)
        t = t.with_columns(
            **{
                f"typical_{measure}": median,
                f"{measure}_ratio": value / median.replace(0, None),
                f"_{measure}_bound": pl.max_horizontal(median + k * MAD_TO_SIGMA * mad, min_ratio * median),
            }
        )
        conditions.append(value > pl.col(f"_{measure}_bound"))
    by_calls, by_tokens = conditions
    reason = (
        pl.when(by_calls & by_tokens)
        .then(pl.lit("calls, tokens"))
        .when(by_calls)
        .then(pl.lit("calls"))
        .otherwise(pl.lit("tokens"))
    )
    return (
        t.filter((pl.len().over(agent) >= min_tasks) & (by_calls | by_tokens))
        .with_columns(ratio=pl.max_horizontal("calls_ratio", "tokens_ratio"), reason=reason)
        .drop("_calls_bound", "_tokens_bound")
        .sort(["cost", "calls", "task_id"], descending=[True, True, False], nulls_last=True)
    )


# -- evaluation -------------------------------------------------------------------------------------


def evaluate(found: pl.DataFrame, truth: pl.DataFrame, on: Sequence[str], *, days: int) -> Evaluation:
    """Score findings against known anomalies, matched on the ``on`` columns.

    Parameters
    ----------
    found
        What a detector reported (duplicates on ``on`` count once, e.g. one run seen by two sources).
    truth
        The known anomalies, with the ``on`` columns.
    on
        The columns that identify one anomaly: ``("date", "department", "service")`` for cost,
        ``("task_id",)`` for agents.
    days
        The number of days the detector looked at, for false alarms per quarter.

    Returns
    -------
    Evaluation
        Counts, precision, recall, false alarms per quarter (a quarter = 365.25 / 4 days),
        and the known anomalies that were missed.
    """
    if days <= 0:
        raise AnalysisError(f"days={days}: the evaluated period must have at least one day")
    keys = list(on)
    got = found.select(keys).unique()
    known = truth.select(keys).unique()
    hit = got.join(known, on=keys, how="semi")
    missed = known.join(got, on=keys, how="anti").sort(keys)
    false_alarms = got.height - hit.height
    return Evaluation(
        found=got.height,
        known=known.height,
        true_positives=hit.height,
        false_alarms=false_alarms,
        missed=tuple(missed.iter_rows()),
        precision=hit.height / got.height if got.height else 1.0,
        recall=hit.height / known.height if known.height else 1.0,
        false_alarms_per_quarter=false_alarms / (days / (365.25 / 4)),
    )
