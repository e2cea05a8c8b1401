"""Savings what-ifs: what would prompt caching, routing, batch, GPU tuning, commitments or on-prem save?

Each what-if takes the warehouse (or inputs already gathered from it), the period and
overrides of its assumptions, and returns a one-row-per-scenario polars DataFrame:

==================  ===========================================================================
opportunity         what changes (e.g. "model routing: gemini-2.5-pro → gemini-2.5-flash")
current_cost        what the affected spend costs now in the period (USD, cents)
new_cost            what it would cost with the change: always ``current_cost − saving``
saving              ``current_cost − new_cost`` (negative: the change costs more)
saving_per_quarter  the saving scaled to one quarter (the period's months / 3, or days / 91.3125)
assumptions         every assumption with its value and where the value comes from
==================  ===========================================================================

Money is exact: Decimal arithmetic, each figure rounded half up to the cent once, at the end,
so ``new_cost = current_cost − saving`` holds to the cent. Shares and factors are Decimals
too, so an override of 0.45 means exactly 45%.

Default assumptions come from the seed articles (``../shared/seeds``: seed 000 "Inference Now
Costs 80% of AI Budgets: Red Hat's 3x Fix"; 001 "The Inference Revolution"; 002 "The AI
Inference Era"; 003 "The Inference Economics Revolution"; 004 "AI Inference Economics
2026"), cited in each function. Where the seeds give no figure, the default is marked as
ours, or is measured from the warehouse, and says so in ``assumptions``.

Token what-ifs (caching, routing, batch) price the period's gateway tokens at the list
prices in `prices` (``finops ingest prices``), one source per provider as
:mod:`finops.analyses.unit_economics` chooses it: a saving is a list-price difference, so negotiated
discounts scale it down in proportion.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt
import polars as pl

from finops.analyses import cache
from finops.analyses.classify import classify, is_ai, rules_for
from finops.analyses.tables import charges_table
from finops.analyses.unit_economics import (
    check_period,
    choose_sources,
    requests_with_prices,
    resolved_prices,
    self_hosted_charges_expr,
    time_billed_hours,
)
from finops.exceptions import AnalysisError
from finops.periods import Quarter

if TYPE_CHECKING:
    from finops.config import Config
    from finops.warehouse import Warehouse

CENT = Decimal("0.01")
HOURS_PER_MONTH = Decimal(8760) / 12  # 730
DAYS_PER_QUARTER = Decimal("91.3125")  # 365.25 / 4

SCENARIO_SCHEMA = {
    "opportunity": pl.String,
    "current_cost": pl.Decimal(38, 2),
    "new_cost": pl.Decimal(38, 2),
    "saving": pl.Decimal(38, 2),
    "saving_per_quarter": pl.Decimal(38, 2),
    "assumptions": pl.String,
}

# -- defaults, each with its source --------------------------------------------------------------

CACHEABLE_SHARE = Decimal("0.40")
CACHEABLE_SHARE_SOURCE = (
    "seed 002: prompt caching and routing cut inference cost 40-60%; the low end, read as the share of fresh"
    " input tokens that repeat"
)
ROUTING_SHARE = Decimal("0.30")
ROUTING_SHARE_SOURCE = (
    "seed 004: routing simple requests away from the expensive models cuts their load 30-50%; the low end"
)
ASYNC_SHARE = Decimal("0.20")
ASYNC_SHARE_SOURCE = (
    "our assumption: seed 002 makes batch vs real-time a design choice (background work, pre-computation)"
    " but gives no share"
)
BATCH_DISCOUNT = Decimal("0.50")
BATCH_DISCOUNT_SOURCE = (
    "prices.input_batch/output_batch per model where listed; else 50%, the batch discount every model in the"
    " bundled price list has (not in the seeds)"
)
QUANTIZATION_REDUCTION = Decimal("0.50")
QUANTIZATION_SOURCE = (
    "seed 001: quantization and pruning cut model size 50-75%; seed 003: 60-70% lower infrastructure bills"
    " (H100 $2+/h to T4 $0.35/h); the low end"
)
SPECULATIVE_REDUCTION = Decimal("0.20")
SPECULATIVE_SOURCE = (
    "seed 004: speculative decoding cuts latency 20-40%, so fewer GPUs for the same throughput; the low end"
    " (seed 000 claims up to 3x = 67% for Red Hat AI 3.4)"
)
COMMITMENT_COVERAGE = Decimal("0.50")
COMMITMENT_COVERAGE_SOURCE = "our assumption: commit only the steady half of on-demand compute (not in the seeds)"
COMMITMENT_DISCOUNT = Decimal("0.30")
COMMITMENT_DISCOUNT_SOURCE = (
    "measured: 1 - EffectiveCost/ListCost of the period's commitment-covered usage; 30% when there is none"
    " (our assumption, not in the seeds)"
)
GPU_PURCHASE_PRICE = Decimal("35000")
GPU_POWER_W = Decimal("700")
KWH_PRICE = Decimal("0.15")
HARDWARE_SOURCE = "seed 004: H100 $30,000-40,000 (midpoint), 700 W under full load, power $0.10-0.20/kWh (midpoint)"
CLOUD_GPU_HOUR_PRICE = Decimal("2.00")
CLOUD_GPU_HOUR_SOURCE = "seed 003: an H100 costs $2+ per hour in the cloud (sizes how many GPUs to buy)"
UTILISATION = Decimal("0.60")
YEARS = 3
STAFF_MONTHLY = Decimal("15000")
ONPREM_OURS_SOURCE = "our assumption (the seeds name the skills gap, seed 002, but give no figure)"


# -- the scenario row -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One what-if's answer; ``new_cost = current_cost − saving`` to the cent by construction."""

    opportunity: str
    current_cost: Decimal
    new_cost: Decimal
    saving: Decimal
    saving_per_quarter: Decimal
    assumptions: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cents(amount: Decimal) -> Decimal:
    """Round half up to the cent (the one rounding every what-if does, at the end)."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def quarters_in(start: date, end: date) -> Decimal:
    """How many quarters [start, end) is: whole months / 3 when both ends are month starts,
    else days / 91.3125 (an average quarter).

    >>> quarters_in(date(2026, 7, 1), date(2026, 10, 1)), quarters_in(date(2026, 1, 1), date(2027, 1, 1))
    (Decimal('1'), Decimal('4'))
    """
    if not start < end:
        raise AnalysisError(f"empty period: start {start} is not before end {end}", hint="end is exclusive")
    if start.day == 1 and end.day == 1:
        return Decimal((end.year - start.year) * 12 + end.month - start.month) / 3
    return Decimal((end - start).days) / DAYS_PER_QUARTER


def scenario(
    opportunity: str,
    current: Decimal,
    saving: Decimal,
    quarters: Decimal,
    assumptions: Iterable[tuple[str, Any, str]],
) -> Scenario:
    """Build a :class:`Scenario` from exact amounts: rounds current and saving to the cent,
    new = current − saving, per quarter = saving / quarters (to the cent).
    ``assumptions``: (name, value, source) triples."""
    current_c, saving_c = cents(current), cents(saving)
    text = "; ".join(f"{name}={_show(value)} ({source})" for name, value, source in assumptions)
    return Scenario(opportunity, current_c, current_c - saving_c, saving_c, cents(saving / quarters), text)


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


def scenarios_frame(scenarios: Sequence[Scenario]) -> pl.DataFrame:
    """Scenarios as a DataFrame with :data:`SCENARIO_SCHEMA` (money DECIMAL(38, 2))."""
    return pl.DataFrame([s.as_dict() for s in scenarios], schema=SCENARIO_SCHEMA)


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _share(name: str, value: Any) -> Decimal:
    share = _dec(value)
    if not Decimal(0) <= share <= Decimal(1):
        raise AnalysisError(f"{name} must be between 0 and 1, got {value}", hint="write shares as fractions: 0.4 = 40%")
    return share


def _sum(frame: pl.DataFrame, expr: pl.Expr) -> Decimal:
    """Exact Decimal sum of ``expr`` over ``frame`` (0 for an empty frame)."""
    if frame.height == 0:
        return Decimal(0)
    value = frame.select(expr.cast(pl.Decimal(38, 18)).sum()).item()
    return Decimal(0) if value is None else value


# -- inputs gathered from the warehouse -----------------------------------------------------------

USAGE_PRICE_COLUMNS = (
    "price_input",
    "price_cached_input",
    "price_cache_write",
    "price_output",
    "price_input_batch",
    "price_output_batch",
)


def token_usage(wh: Warehouse, start: date, end: date, *, source: str | Sequence[str] | None = None) -> pl.DataFrame:
    """The period's priced gateway tokens per provider, model and list price: the token what-ifs' input.

    One row per provider (one name per provider), model, ``batch_tier`` (the request already
    ran at a batch or flex tier) and price set: ``requests``, ``input_tokens`` (fresh),
    ``cached_input_tokens``, ``cache_write_tokens``, ``output_tokens`` and the standard list
    prices per token of :func:`finops.analyses.unit_economics.requests_with_prices` (DECIMAL(38, 18)).
    Rows of models without a price are left out (a what-if cannot price them).
    """
    with wh.ibis() as con:
        t = choose_sources(requests_with_prices(con, start, end), source)
        t = t.filter(t.price_input.notnull() & t.price_output.notnull())
        tier = t.service_tier.fill_null("").lower()
        t = t.mutate(provider=t.provider_key, batch_tier=tier.isin(["batch", "flex"]))
        return (
            t.group_by(["provider", "model", "batch_tier", *USAGE_PRICE_COLUMNS])
            .aggregate(
                requests=t.requests.fill_null(1).sum(),
                **{c: t[c].fill_null(0).sum() for c in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")},
            )
            .order_by(["provider", "model", "batch_tier"])
            .to_polars()
        )  # fmt: skip


def _part(tokens: str, price: pl.Expr) -> pl.Expr:
    """tokens × price; 0 when no token of that kind was used, even without a price."""
    return pl.when(pl.col(tokens) == 0).then(pl.lit(0, dtype=pl.Decimal(38, 18))).otherwise(pl.col(tokens) * price)


def _list_cost(prefix: str = "price_") -> pl.Expr:
    """List cost of a usage row's tokens at its prices (columns ``{prefix}input`` …); cached
    reads and cache writes at the input price where the model lists none."""
    price_in = pl.col(f"{prefix}input")
    return (
        _part("input_tokens", price_in)
        + _part("cached_input_tokens", pl.coalesce(pl.col(f"{prefix}cached_input"), price_in))
        + _part("cache_write_tokens", pl.coalesce(pl.col(f"{prefix}cache_write"), price_in))
        + _part("output_tokens", pl.col(f"{prefix}output"))
    )


# -- token what-ifs -----------------------------------------------------------------------------------


def prompt_caching(
    usage: pl.DataFrame,
    start: date,
    end: date,
    *,
    cacheable_share: Decimal | float = CACHEABLE_SHARE,
) -> pl.DataFrame:
    """Prompt caching: a share of today's fresh input tokens read from the cache instead.

    ``current_cost`` is the list cost of the period's fresh input tokens (:func:`token_usage`);
    the saving is ``cacheable_share`` × fresh input tokens × (input price − cached input
    price), per model, for models whose cached price is below their input price (the others
    offer no cache discount). Cache writes are not charged: a cached prefix is assumed to be
    read many times.

    Default ``cacheable_share`` 0.40: seed 002 ("The AI Inference Era") says prompt caching
    and routing "can reduce inference costs by 40-60%"; we take the low end as the share of
    input that repeats.

    >>> from decimal import Decimal as D
    >>> usage = pl.DataFrame({"input_tokens": [1_000_000], "price_input": [D("0.000003")],
    ...                       "price_cached_input": [D("0.0000003")]})
    >>> prompt_caching(usage, date(2026, 7, 1), date(2026, 10, 1))["saving"].item()
    Decimal('1.08')
    """
    share = _share("cacheable_share", cacheable_share)
    current = _sum(usage, pl.col("input_tokens") * pl.col("price_input"))
    discount = pl.col("price_input") - pl.col("price_cached_input")
    saving = _sum(usage, pl.when(discount > 0).then(pl.col("input_tokens") * discount).otherwise(0)) * share
    row = scenario(
        "prompt caching",
        current,
        saving,
        quarters_in(start, end),
        [
            ("cacheable_share", share, CACHEABLE_SHARE_SOURCE),
            ("prices", "prices.input vs prices.cached_input per model", "`prices` table"),
        ],
    )
    return scenarios_frame([row])


@dataclasses.dataclass(frozen=True)
class Route:
    """Move ``share`` of ``from_model``'s traffic to ``to_model`` (same provider unless ``provider`` is given)."""

    from_model: str
    to_model: str
    share: Decimal | None = None
    provider: str | None = None


def default_routes(usage: pl.DataFrame) -> list[Route]:
    """For each provider, route every chat model to the cheapest chat model it already uses.

    "Cheapest" by output list price (then input price); chat models are those with output
    tokens in the period. Embedding models stay where they are.
    """
    chat = (
        usage.filter(~pl.col("batch_tier"))
        .group_by("provider", "model")
        .agg(
            pl.col("output_tokens").sum(),
            pl.col("price_output").max(),
            pl.col("price_input").max(),
        )
        .filter(pl.col("output_tokens") > 0)
    )
    cheapest = chat.sort("price_output", "price_input", "model").group_by("provider", maintain_order=True).first()
    pairs = chat.join(cheapest.select("provider", to_model="model", to_price="price_output"), on="provider")
    pairs = pairs.filter((pl.col("model") != pl.col("to_model")) & (pl.col("price_output") > pl.col("to_price")))
    return [
        Route(m, to, provider=p)
        for p, m, to in pairs.sort("provider", "model").select("provider", "model", "to_model").iter_rows()
    ]


def model_prices(usage: pl.DataFrame, provider: str | None, model: str) -> dict[str, Decimal] | None:
    """The standard list prices of ``model`` (of ``provider``) as seen in ``usage``, or None."""
    rows = usage.filter((pl.col("model") == model) & ~pl.col("batch_tier"))
    if provider is not None:
        rows = rows.filter(pl.col("provider") == provider)
    if rows.height == 0:
        return None
    first = rows.row(0, named=True)
    return {c: first[c] for c in USAGE_PRICE_COLUMNS}


def lookup_prices(wh: Warehouse, provider: str, model: str, day: date) -> dict[str, Decimal] | None:
    """List prices of any model from `prices` (as the gateway pricing matches them), or None."""
    day = day.date() if isinstance(day, datetime) else day
    wanted = ibis.memtable({"provider": [provider], "model": [model], "day": [day]},
                           schema={"provider": "string", "model": "string", "day": "date"})  # fmt: skip
    with wh.ibis() as con:
        r = resolved_prices(wanted, con.table("prices"))
        frame = (
            r.filter(r.model_key.notnull())
            .select(
                price_input=r.input, price_cached_input=r.cached_input.fill_null(r.input),
                price_cache_write=r.cache_write.fill_null(r.input), price_output=r.output,
                price_input_batch=r.input_batch, price_output_batch=r.output_batch,
            )
            .to_polars()
        )  # fmt: skip
    if frame.height == 0 or frame["price_input"][0] is None or frame["price_output"][0] is None:
        return None
    return frame.row(0, named=True)


def model_routing(
    usage: pl.DataFrame,
    start: date,
    end: date,
    *,
    routes: Sequence[Route] | None = None,
    share: Decimal | float = ROUTING_SHARE,
    target_prices: dict[str, dict[str, Decimal]] | None = None,
) -> pl.DataFrame:
    """Model routing: move a share of a model's traffic to a cheaper model, at real list prices.

    One scenario per route: ``current_cost`` is the list cost of ``from_model``'s tokens in
    the period; the saving is ``share`` × (that cost − the same tokens at ``to_model``'s list
    prices: fresh input, cached input, cache writes and output each at its own price). Prices
    come from `prices` through :func:`token_usage` (the target's as seen in ``usage``), or
    from ``target_prices`` (model → prices, see :func:`lookup_prices`) for a model the period
    did not use. ``routes`` default to :func:`default_routes`; a route's own ``share``
    overrides ``share``.

    Default ``share`` 0.30: seed 004 ("AI Inference Economics 2026") says routing simple
    requests to smaller models "reduces backbone infrastructure load by 30-50%"; the low end.
    Quality is the analyst's call: the saving assumes the cheaper model is good enough for
    the moved share.
    """
    default_share = _share("share", share)
    routes = default_routes(usage) if routes is None else list(routes)
    quarters = quarters_in(start, end)
    rows = []
    for route in routes:  # one per route: a handful
        route_share = _share("share", route.share) if route.share is not None else default_share
        source_rows = usage.filter((pl.col("model") == route.from_model) & ~pl.col("batch_tier"))
        if route.provider is not None:
            source_rows = source_rows.filter(pl.col("provider") == route.provider)
        provider = route.provider or (source_rows["provider"][0] if source_rows.height else None)
        target = (target_prices or {}).get(route.to_model) or model_prices(usage, provider, route.to_model)
        if target is None:
            raise AnalysisError(
                f"no list price for {route.to_model!r}, the model to route to",
                hint="load its price (`finops ingest prices`) or pass target_prices",
            )
        current = _sum(source_rows, _list_cost())
        target_columns = {
            f"to_{c.removeprefix('price_')}": pl.lit(target[c], dtype=pl.Decimal(38, 18)) for c in USAGE_PRICE_COLUMNS
        }
        at_target = _sum(source_rows.with_columns(**target_columns), _list_cost("to_"))
        rows.append(
            scenario(
                f"model routing: {route.from_model} → {route.to_model}",
                current,
                (current - at_target) * route_share,
                quarters,
                [
                    ("share", route_share, ROUTING_SHARE_SOURCE if route.share is None else "override"),
                    ("prices", f"list prices of both models from `prices` ({provider})", "`prices` table"),
                ],
            )
        )
    return scenarios_frame(rows)


def batch_api(
    usage: pl.DataFrame,
    start: date,
    end: date,
    *,
    async_share: Decimal | float = ASYNC_SHARE,
    batch_discount: Decimal | float | None = None,
) -> pl.DataFrame:
    """Batch API: run a share of today's real-time traffic through the providers' batch APIs.

    ``current_cost`` is the list cost of the fresh input and output tokens of requests not
    already at a batch tier; the saving is ``async_share`` × (that cost − the same tokens at
    the batch prices). A model's batch prices come from `prices` (``input_batch``,
    ``output_batch``); a model without one gets ``batch_discount`` off its standard price.
    Cached reads and cache writes keep their price (the price list has no batch cache prices).

    Defaults: ``async_share`` 0.20 is ours (seed 002, "The AI Inference Era", says background
    processing and asynchronous workflows can move to cheaper tiers but gives no share);
    ``batch_discount`` 0.50 is the discount of every batch price in the bundled LiteLLM
    price list (not a seed figure). Pass ``batch_discount`` to apply it to every model
    instead of the listed batch prices.
    """
    share = _share("async_share", async_share)
    realtime = usage.filter(~pl.col("batch_tier"))
    fresh = pl.col("input_tokens") * pl.col("price_input") + pl.col("output_tokens") * pl.col("price_output")
    if batch_discount is None:
        keep = pl.lit(Decimal(1) - BATCH_DISCOUNT, dtype=pl.Decimal(38, 18))
        batch_in = pl.coalesce(pl.col("price_input_batch"), pl.col("price_input") * keep)
        batch_out = pl.coalesce(pl.col("price_output_batch"), pl.col("price_output") * keep)
        discount_text, discount_source = "listed batch prices, else 0.5", BATCH_DISCOUNT_SOURCE
    else:
        discount = _share("batch_discount", batch_discount)
        keep = pl.lit(Decimal(1) - discount, dtype=pl.Decimal(38, 18))
        batch_in, batch_out = pl.col("price_input") * keep, pl.col("price_output") * keep
        discount_text, discount_source = discount, "override"
    batched = pl.col("input_tokens") * batch_in + pl.col("output_tokens") * batch_out
    current = _sum(realtime, fresh)
    saving = (current - _sum(realtime, batched)) * share
    row = scenario(
        "batch API",
        current,
        saving,
        quarters_in(start, end),
        [("async_share", share, ASYNC_SHARE_SOURCE), ("batch_discount", discount_text, discount_source)],
    )
    return scenarios_frame([row])


# -- GPU what-ifs ----------------------------------------------------------------------------------


def _charges_between(charges: ibis.Table, start: date, end: date) -> ibis.Table:
    low, high = check_period(start, end)
    cp = charges.ChargePeriodStart
    return charges.filter(cp >= ibis.literal(low, type=dt.timestamp), cp < ibis.literal(high, type=dt.timestamp))


def _is_token_meter(t: ibis.Table) -> ibis.expr.types.BooleanValue:
    text = ibis.literal(" ").join(
        [t.x_UsageType.fill_null(""), t.ChargeDescription.fill_null(""), t.SkuMeter.fill_null("")]
    )
    return t.x_Model.notnull() | text.re_search("(?i)tokens?|characters")


def gpu_spend(
    wh: Warehouse, config: Config | None, start: date, end: date, *, workload: str | None = "inference"
) -> tuple[Decimal, str]:
    """The GPU/accelerator spend a GPU what-if acts on, and what it is.

    With ``[[self_hosted]]`` models configured and ``workload`` 'inference': the charges of
    their endpoints (:func:`finops.analyses.unit_economics.self_hosted_charges_expr`). Otherwise the
    AI charges billed by time (instance hours or seconds; token meters excluded) whose
    workload class is ``workload`` (None: every AI class): GPU instances, endpoints, training
    jobs. EffectiveCost, charges starting in [start, end).
    """
    with wh.ibis() as con:
        if workload == "inference" and config is not None and config.self_hosted:
            # Endpoints are found by their resource: the line items, not the daily rollup.
            t = self_hosted_charges_expr(con.table("charges"), config, start, end)
            what = "the GPU charges of the [[self_hosted]] models' endpoints"
        else:
            t = classify(_charges_between(charges_table(con, config), start, end), rules_for(config))
            t = t.filter(is_ai(t) & time_billed_hours(t).notnull() & ~_is_token_meter(t))
            if workload is not None:
                t = t.filter(t.workload == workload)
            what = f"AI {workload + ' ' if workload else ''}charges billed by time (GPU instances, endpoints, jobs)"
        total = t.aggregate(cost=t.EffectiveCost.sum()).to_polars()["cost"][0]
    return (Decimal(0) if total is None else total), what


def _gpu_reduction(
    name: str, current: Decimal, what: str, start: date, end: date, reduction: Decimal, source: str, share: Decimal
) -> pl.DataFrame:
    row = scenario(
        name,
        current,
        current * share * reduction,
        quarters_in(start, end),
        [("reduction", reduction, source), ("applicable_share", share, "share of that spend the technique applies to"),
         ("spend", what, "charges")],
    )  # fmt: skip
    return scenarios_frame([row])


def quantization(
    wh: Warehouse,
    config: Config | None,
    start: date,
    end: date,
    *,
    reduction: Decimal | float = QUANTIZATION_REDUCTION,
    applicable_share: Decimal | float = Decimal(1),
    current: Decimal | None = None,
) -> pl.DataFrame:
    """Quantization of self-hosted models: the same traffic on fewer or smaller GPUs.

    saving = GPU inference spend (:func:`gpu_spend`, or ``current``) × ``applicable_share`` ×
    ``reduction``. Default reduction 0.50: seed 001 ("The Inference Revolution") says
    quantization and pruning cut model size 50-75% with minimal accuracy loss; seed 003 ("The
    Inference Economics Revolution") reports 60-70% lower infrastructure bills (an H100 model
    on a T4: $2+/h to $0.35/h). The low end.
    """
    what = "given"
    if current is None:
        current, what = gpu_spend(wh, config, start, end)
    return _gpu_reduction("quantization (GPU inference)", current, what, start, end,
                          _share("reduction", reduction), QUANTIZATION_SOURCE, _share("applicable_share", applicable_share))  # fmt: skip


def speculative_decoding(
    wh: Warehouse,
    config: Config | None,
    start: date,
    end: date,
    *,
    reduction: Decimal | float = SPECULATIVE_REDUCTION,
    applicable_share: Decimal | float = Decimal(1),
    current: Decimal | None = None,
) -> pl.DataFrame:
    """Speculative decoding on self-hosted models: more tokens per GPU-hour, so fewer GPU-hours.

    saving = GPU inference spend × ``applicable_share`` × ``reduction``. Default reduction
    0.20: seed 004 ("AI Inference Economics 2026") says speculative decoding reduces latency
    20-40%, "allowing better batching and lower GPU counts"; the low end. Seed 000 (Red Hat AI
    3.4) claims up to 3x (67% less compute): pass 0.67 for that case. Quantization and
    speculative decoding compound (1 − (1 − a)(1 − b)), they do not add.
    """
    what = "given"
    if current is None:
        current, what = gpu_spend(wh, config, start, end)
    return _gpu_reduction("speculative decoding (GPU inference)", current, what, start, end,
                          _share("reduction", reduction), SPECULATIVE_SOURCE, _share("applicable_share", applicable_share))  # fmt: skip


def commitment_inputs(wh: Warehouse, start: date, end: date) -> tuple[Decimal, Decimal | None]:
    """On-demand compute spend billed by time, and the discount existing commitments achieve.

    Returns (on-demand EffectiveCost of usage charges billed by time, at PricingCategory
    'Standard' or x_PricingModel 'OnDemand'; ``1 − EffectiveCost / ListCost`` over the
    period's committed usage (PricingCategory 'Committed'), None when there is none).
    """
    with wh.ibis() as con:
        t = _charges_between(charges_table(con), start, end)
        t = t.filter((t.ChargeCategory == "Usage") & time_billed_hours(t).notnull())
        on_demand = (t.PricingCategory == "Standard") | (t.PricingCategory.isnull() & (t.x_PricingModel == "OnDemand"))
        committed = (t.PricingCategory == "Committed") & (t.ListCost > 0)
        row = (
            t.aggregate(
                on_demand=t.EffectiveCost.sum(where=on_demand),
                committed_effective=t.EffectiveCost.sum(where=committed),
                committed_list=t.ListCost.sum(where=committed),
            )
            .to_polars()
            .row(0, named=True)
        )
    on_demand_cost = row["on_demand"] or Decimal(0)
    discount = None
    if row["committed_list"]:
        discount = (1 - row["committed_effective"] / row["committed_list"]).quantize(Decimal("0.0001"), ROUND_HALF_UP)
    return on_demand_cost, discount


def commitment_coverage(
    wh: Warehouse,
    start: date,
    end: date,
    *,
    coverage: Decimal | float = COMMITMENT_COVERAGE,
    discount: Decimal | float | None = None,
    current: Decimal | None = None,
) -> pl.DataFrame:
    """Savings Plans / committed use discounts on today's on-demand compute and accelerators.

    saving = on-demand compute spend billed by time (:func:`commitment_inputs`, or
    ``current``) × ``coverage`` × ``discount``. The seeds give no commitment figures: the
    default discount is the one the company's existing commitments achieve in the period
    (1 − EffectiveCost / ListCost of committed usage), else 0.30; the default coverage 0.50
    (commit only the steady half) is ours.
    """
    share = _share("coverage", coverage)
    measured = None
    if current is None:
        current, measured = commitment_inputs(wh, start, end)
    if discount is not None:
        rate, source = _share("discount", discount), "override"
    elif measured is not None:
        rate, source = measured, COMMITMENT_DISCOUNT_SOURCE
    else:
        rate, source = COMMITMENT_DISCOUNT, COMMITMENT_DISCOUNT_SOURCE
    row = scenario(
        "commitment coverage (Savings Plans / committed use)",
        current,
        current * share * rate,
        quarters_in(start, end),
        [("coverage", share, COMMITMENT_COVERAGE_SOURCE if coverage == COMMITMENT_COVERAGE else "override"),
         ("discount", rate, source), ("spend", "on-demand usage billed by time (compute, GPUs)", "charges")],
    )  # fmt: skip
    return scenarios_frame([row])


# -- on-prem vs cloud GPUs --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Breakeven:
    """On-prem GPUs against the current cloud GPU spend (money exact, to the cent)."""

    monthly_cloud_cost: Decimal
    gpus: int
    purchase_cost: Decimal  # gpus × purchase price, paid up front
    monthly_running_cost: Decimal  # power + staff
    monthly_onprem_cost: Decimal  # purchase spread over the years + running cost
    months_to_breakeven: Decimal | None  # purchase / (cloud − running), None: never
    breakeven_monthly_cloud_spend: Decimal | None  # cloud spend above which on-prem is cheaper, None: never


def breakeven(
    monthly_cloud_cost: Decimal,
    *,
    gpus: int | None = None,
    purchase_price: Decimal = GPU_PURCHASE_PRICE,
    power_w: Decimal = GPU_POWER_W,
    kwh_price: Decimal = KWH_PRICE,
    utilisation: Decimal = UTILISATION,
    years: int = YEARS,
    staff_monthly: Decimal = STAFF_MONTHLY,
    cloud_gpu_hour_price: Decimal = CLOUD_GPU_HOUR_PRICE,
) -> Breakeven:
    """The arithmetic of buying GPUs instead of renting them (see :func:`onprem_breakeven`).

    * GPUs to buy (unless given): the cloud's GPU-hours (monthly cost / ``cloud_gpu_hour_price``)
      over the useful hours one owned GPU gives a month (730 × ``utilisation``), rounded up.
    * Running cost a month: gpus × ``power_w`` / 1000 × 730 h × ``utilisation`` × ``kwh_price``
      (power drawn while busy) + ``staff_monthly``.
    * On-prem cost a month: gpus × ``purchase_price`` / (12 × ``years``) + running cost.
    * Months to breakeven: purchase cost / (cloud cost − running cost); never when the running
      cost alone is higher.
    * Breakeven cloud spend: with the GPU count following the spend, on-prem costs
      k × spend + staff, k = (purchase / (12 × years) + power per GPU) / (cloud $/GPU-hour ×
      730 × utilisation); it wins above staff / (1 − k) (never when k ≥ 1).

    >>> b = breakeven(Decimal("20000"), gpus=8, staff_monthly=Decimal("0"))
    >>> b.monthly_onprem_cost, b.months_to_breakeven
    (Decimal('8145.70'), Decimal('14.3'))
    """
    utilisation, cloud = _share("utilisation", utilisation), _dec(monthly_cloud_cost)
    if utilisation == 0 or years <= 0:
        raise AnalysisError("utilisation and years must be above 0", hint="e.g. utilisation=0.6, years=3")
    useful_hours = HOURS_PER_MONTH * utilisation
    if gpus is None:
        gpus = math.ceil(cloud / _dec(cloud_gpu_hour_price) / useful_hours)
    power_per_gpu = _dec(power_w) / 1000 * useful_hours * _dec(kwh_price)
    purchase = gpus * _dec(purchase_price)
    running = gpus * power_per_gpu + _dec(staff_monthly)
    monthly = purchase / (12 * years) + running
    months = cents(purchase / (cloud - running)).quantize(Decimal("0.1"), ROUND_HALF_UP) if cloud > running else None
    k = (_dec(purchase_price) / (12 * years) + power_per_gpu) / (_dec(cloud_gpu_hour_price) * useful_hours)
    level = cents(_dec(staff_monthly) / (1 - k)) if k < 1 else None
    return Breakeven(cents(cloud), gpus, cents(purchase), cents(running), cents(monthly), months, level)


def onprem_breakeven(
    wh: Warehouse,
    config: Config | None,
    start: date,
    end: date,
    *,
    monthly_cloud_cost: Decimal | None = None,
    **assumptions: Any,
) -> pl.DataFrame:
    """On-prem vs cloud GPUs: monthly on-prem cost, months to breakeven, the spend where on-prem wins.

    The cloud side is the period's AI spend billed by time (:func:`gpu_spend` with every AI
    workload: GPU instances, endpoints, training jobs), per month; or ``monthly_cloud_cost``.
    ``assumptions`` override :func:`breakeven`'s: ``purchase_price`` ($35,000), ``power_w``
    (700 W) and ``kwh_price`` ($0.15): seed 004 ("AI Inference Economics 2026": H100
    $30,000-40,000, 700 W, $0.10-0.20 per kWh, midpoints); ``cloud_gpu_hour_price`` ($2.00:
    seed 003, "cloud $2+/GPU-hour"); ``utilisation`` (0.6), ``years`` (3) and
    ``staff_monthly`` ($15,000) are ours. Cross-check: seed 002 says on-prem pays "when cloud
    costs hit 60-70% of equivalent hardware cost".

    Returns the scenario columns (current: cloud spend in the period; new: on-prem cost a
    month × the period's months; saving may be negative) plus ``gpus``, ``purchase_cost``,
    ``monthly_running_cost``, ``monthly_onprem_cost``, ``months_to_breakeven`` and
    ``breakeven_monthly_cloud_spend`` (Decimal; NULL: never).
    """
    quarters = quarters_in(start, end)
    months = quarters * 3
    what = "given"
    if monthly_cloud_cost is None:
        period_cost, what = gpu_spend(wh, config, start, end, workload=None)
        monthly_cloud_cost = period_cost / months
    known = {
        "gpus",
        "purchase_price",
        "power_w",
        "kwh_price",
        "utilisation",
        "years",
        "staff_monthly",
        "cloud_gpu_hour_price",
    }
    unknown = set(assumptions) - known
    if unknown:
        raise AnalysisError(
            f"unknown on-prem assumption(s): {', '.join(sorted(unknown))}", hint=f"use: {', '.join(sorted(known))}"
        )
    values = {k: (_dec(v) if k not in ("gpus", "years") else v) for k, v in assumptions.items()}
    b = breakeven(_dec(monthly_cloud_cost), **values)
    used = {
        "purchase_price": (values.get("purchase_price", GPU_PURCHASE_PRICE), HARDWARE_SOURCE),
        "power_w": (values.get("power_w", GPU_POWER_W), "seed 004"),
        "kwh_price": (values.get("kwh_price", KWH_PRICE), "seed 004"),
        "cloud_gpu_hour_price": (values.get("cloud_gpu_hour_price", CLOUD_GPU_HOUR_PRICE), CLOUD_GPU_HOUR_SOURCE),
        "utilisation": (values.get("utilisation", UTILISATION), ONPREM_OURS_SOURCE),
        "years": (values.get("years", YEARS), ONPREM_OURS_SOURCE),
        "staff_monthly": (values.get("staff_monthly", STAFF_MONTHLY), ONPREM_OURS_SOURCE),
        "gpus": (b.gpus, "given" if "gpus" in values else "cloud GPU-hours / (730 h × utilisation), rounded up"),
    }
    notes = [(k, v, s if k not in values else "override") for k, (v, s) in used.items()]
    notes.append(("spend", what, "charges"))
    current = _dec(monthly_cloud_cost) * months
    row = scenario("on-prem GPUs instead of cloud", current, current - b.monthly_onprem_cost * months, quarters, notes)
    frame = scenarios_frame([row])
    extra = {k: v for k, v in dataclasses.asdict(b).items() if k != "monthly_cloud_cost"}
    return frame.with_columns(
        pl.lit(extra["gpus"], dtype=pl.Int64).alias("gpus"),
        *(pl.lit(extra[k], dtype=pl.Decimal(38, 2)).alias(k) for k in
          ("purchase_cost", "monthly_running_cost", "monthly_onprem_cost", "breakeven_monthly_cloud_spend")),
        pl.lit(extra["months_to_breakeven"], dtype=pl.Decimal(38, 1)).alias("months_to_breakeven"),
    )  # fmt: skip


# -- all together ----------------------------------------------------------------------------------

OPPORTUNITIES = (
    "prompt_caching",
    "model_routing",
    "batch_api",
    "quantization",
    "speculative_decoding",
    "commitment_coverage",
    "onprem_breakeven",
)


@cache.per_warehouse_state
def savings_opportunities(
    wh: Warehouse, config: Config | None, quarter: Quarter, **overrides: dict[str, Any]
) -> pl.DataFrame:
    """Every what-if for one quarter, ranked by saving per quarter, in one table.

    ``overrides`` maps a what-if's name (:data:`OPPORTUNITIES`) to its keyword overrides,
    e.g. ``savings_opportunities(wh, config, Quarter(2026, 3), prompt_caching={"cacheable_share":
    Decimal("0.6")}, model_routing={"share": Decimal("0.5")})``; ``source`` picks the
    `llm_requests` source of the token what-ifs (``source="litellm"``).

    Returns the scenario columns with ``rank`` (1 = largest saving per quarter) first. Each
    row stands alone: the savings overlap (caching and routing touch the same tokens,
    quantization and on-prem the same GPUs), so they must not be added up.
    """
    unknown = set(overrides) - set(OPPORTUNITIES) - {"source"}
    if unknown:
        raise AnalysisError(
            f"unknown what-if(s): {', '.join(sorted(unknown))}", hint=f"use: {', '.join(OPPORTUNITIES)}"
        )
    start, end = quarter.start, quarter.end
    source = overrides.get("source")
    usage = token_usage(wh, start, end, source=source)  # type: ignore[arg-type]

    def opts(name: str) -> dict[str, Any]:
        return dict(overrides.get(name) or {})

    frames = [
        prompt_caching(usage, start, end, **opts("prompt_caching")),
        model_routing(usage, start, end, **opts("model_routing")),
        batch_api(usage, start, end, **opts("batch_api")),
        quantization(wh, config, start, end, **opts("quantization")),
        speculative_decoding(wh, config, start, end, **opts("speculative_decoding")),
        commitment_coverage(wh, start, end, **opts("commitment_coverage")),
        onprem_breakeven(wh, config, start, end, **opts("onprem_breakeven")).select(list(SCENARIO_SCHEMA)),
    ]
    table = pl.concat(frames, how="vertical")
    return table.sort(["saving_per_quarter", "opportunity"], descending=[True, False]).with_row_index("rank", offset=1)
