"""Unit economics: what a million tokens, a request, an agent task and a self-hosted model cost.

Gateway and model-API usage (`llm_requests`) carries tokens and a cost per request; this
module turns them into unit costs a CFO can compare across models, teams and months:

* :func:`token_unit_costs`: per provider and model (or team, project, department, agent …),
  requests, tokens, cost, cost per 1M tokens (blended), per 1M input and per 1M output
  tokens, and per request; optionally per month or week.
* :func:`agent_task_unit_costs`: the distribution of the cost of one agent task (median,
  p90, mean, max) per agent, built on :func:`finops.analyses.usage.task_costs`.
* :func:`self_hosted_unit_costs`: for models served from our own GPUs (``[[self_hosted]]``
  in finops.toml), the GPU charges of their endpoint divided by the tokens they served.

One source per provider
-----------------------
The same calls can reach `llm_requests` twice: through the LiteLLM gateway and as OTel
traces of the agent that made them, or through the gateway and the provider's usage API.
Adding them would double count. For each provider (named as
:func:`finops.warehouse.keys.provider_key_sql` names it, so Azure OpenAI's ``azure`` and OTel's
``azure.ai.openai`` are one provider) and calendar month, only the rows of one source are
kept: the first of :data:`SOURCE_PRIORITY` that has rows (the gateway sees every call; a
provider's usage API sees all of that provider's; traces see one agent). ``source`` overrides
the order, or keeps a single source.

Money and ratios
----------------
``cost`` sums stay exact (DECIMAL). Unit costs are exact decimal divisions of those sums
(DECIMAL(38, 10), rounded half up). The split of a cost into its input and its output part
is an *estimate*: in proportion to the list prices of its model in `prices` (``input_tokens``
× input price + cached × cached price + cache writes × write price, against ``output_tokens``
× output price), a float ratio rounded to 10 decimals; the two parts always add up to the cost
exactly. It is made per row of the daily rollup `llm_requests_daily`: one day's calls of one
model by one caller and task at one tier, from their summed tokens (per call where there is no
rollup). Where a source's own prices differ from the list by token kind, this differs from a
per-call split by a fraction of a percent (0.3% at most on the sample company); total cost and
cost per 1M tokens do not depend on it. A model without a price in `prices` has no split
(NULL), never a guess. Requests without a cost (unpriced models) are counted in
``unpriced_requests`` and left out of every unit cost, so a unit cost is never diluted by
tokens nobody priced.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import polars as pl

from finops.analyses import cache
from finops.analyses.tables import call_count, requests_table
from finops.analyses.usage import SOURCE_PRIORITY, keep_best, task_costs
from finops.exceptions import AnalysisError

if TYPE_CHECKING:
    from finops.config import Config
    from finops.warehouse import Warehouse


UnitBy = Literal["provider", "model", "source", "team", "project_id", "agent_id", "department", "call_type"]
UNIT_BYS: tuple[UnitBy, ...] = (
    "provider",
    "model",
    "source",
    "team",
    "project_id",
    "agent_id",
    "department",
    "call_type",
)
TimeGrain = Literal["month", "week"]
TIME_GRAINS: tuple[TimeGrain, ...] = ("month", "week")

MONEY = dt.Decimal(38, 10)
PRICE = dt.Decimal(38, 18)
"""The type of `prices`' per-token prices."""
# Exact list costs on every engine (see requests_with_prices_expr): up to 10^15 tokens a row,
# a price up to 9999 USD a token, a part up to 10^12 USD.
_TOKEN_COUNT = dt.Decimal(15, 0)
_UNIT_PRICE = dt.Decimal(22, 18)
_PART = dt.Decimal(30, 18)
_MONEY_OPERAND = dt.Decimal(37, 10)


def minus(a: ir.DecimalValue, b: ir.DecimalValue) -> ir.DecimalValue:
    """``a - b`` of two money values as exact DECIMAL(38, 10) on every engine.

    Spark types DECIMAL(38, 10) − DECIMAL(38, 10) as DECIMAL(38, 9) (it rounds the last digit
    away to make room for a carry); operands of precision 37 leave that room.
    """
    return (a.cast(_MONEY_OPERAND) - b.cast(_MONEY_OPERAND)).cast(MONEY)


PER_MILLION = 1_000_000

_TOKEN_COLUMNS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")


# -- small helpers: parameters ----------------------------------------------------------------


def _moment(day: date) -> datetime:
    return day if isinstance(day, datetime) else datetime.combine(day, time.min)


def check_period(start: date, end: date) -> tuple[datetime, datetime]:
    """[start, end) as midnight datetimes; AnalysisError when it is empty."""
    if not start < end:
        raise AnalysisError(f"empty period: start {start} is not before end {end}", hint="end is exclusive")
    return _moment(start), _moment(end)


def _check_grain(grain: str | None) -> None:
    if grain is not None and grain not in TIME_GRAINS:
        raise AnalysisError(f"unknown grain {grain!r}", hint=f"use one of: {', '.join(TIME_GRAINS)}, or None")


def _check_by(by: Sequence[str]) -> tuple[str, ...]:
    by = (by,) if isinstance(by, str) else tuple(by)
    unknown = [b for b in by if b not in UNIT_BYS]
    if unknown:
        raise AnalysisError(f"cannot group unit costs by {', '.join(map(repr, unknown))}",
                            hint=f"use any of: {', '.join(UNIT_BYS)}")  # fmt: skip
    return by


# -- shared keys, as ibis (the same rules as finops.warehouse.keys' SQL) ------------------------

_REGION_PREFIX = "^(us|eu|apac|global|jp|au|ca)[.]"
_VENDOR_PREFIX = "^(anthropic|meta|amazon|mistral|cohere|ai21|deepseek|openai|google|writer|qwen)[.]"
_BASE_SUFFIX = "(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8}|[-@]latest)$"


def model_key(model: ir.StringValue) -> ir.StringValue:
    """A model name lower-cased, without provider prefix, Bedrock region/vendor or version.

    The ibis twin of :func:`finops.warehouse.keys.model_key_sql` (connectors price with the SQL,
    analyses join with this; both must agree): ``openai/gpt-4o`` → ``gpt-4o``.
    """
    key = model.strip().lower().re_replace("^.*/", "")
    key = key.re_replace(_REGION_PREFIX, "").re_replace(_VENDOR_PREFIX, "")
    return key.re_replace("-v[0-9]+:[0-9]+$", "")


def base_model(key: ir.StringValue) -> ir.StringValue:
    """The base model of a model key, without a snapshot date or ``-latest`` (as ``base_model_sql``)."""
    return key.re_replace(_BASE_SUFFIX, "")


def provider_key(provider: ir.StringValue) -> ir.StringValue:
    """One name per provider, whatever the source calls it (as ``provider_key_sql``)."""
    p = provider.strip().lower()
    return ibis.cases(
        (p.like("vertex_ai%") | p.isin(["gcp.vertex_ai", "vertex", "google_vertex"]), "vertex_ai"),
        (p.isin(["gemini", "google", "gcp.gemini", "gcp.gen_ai", "google_ai_studio"]), "gemini"),
        (p.isin(["text-completion-openai", "openai"]), "openai"),
        (p.like("bedrock%") | (p == "aws.bedrock"), "bedrock"),
        (
            p.isin(["azure", "azure_ai", "azure_openai", "azure.ai.openai", "az.ai.openai", "azure.ai.inference"]),
            "azure",
        ),
        else_=p,
    )


def resolved_prices(wanted: ibis.Table, prices: ibis.Table) -> ibis.Table:
    """One price row per distinct (provider, model, day) of ``wanted``, or none: the model's list price.

    As :mod:`connectors.pricing` matches (``resolved_prices_sql``): the exact model key, else its
    base model; the caller's own provider first; overrides before the bundled map; the latest
    ``valid_from``; only USD prices valid on ``day``. Returns provider, model, day (the keys),
    ``model_key`` (the price's) and the price columns.
    """
    keyed = wanted.select("provider", "model", "day").distinct()
    keyed = keyed.mutate(_want_key=model_key(keyed.model), _want_provider=provider_key(keyed.provider))
    keyed = keyed.mutate(_want_base=base_model(keyed._want_key))
    p = prices.filter(prices.currency.fill_null("USD").upper() == "USD")
    p = p.select(
        _price_provider=p.provider, _price_model=p.model, model_key=model_key(p.model),
        input=p.input, cached_input=p.cached_input, cache_write=p.cache_write, output=p.output,
        input_batch=p.input_batch, output_batch=p.output_batch, valid_from=p.valid_from, valid_to=p.valid_to,
        price_source=p.price_source,
    )  # fmt: skip
    p = p.mutate(_base=base_model(p.model_key))
    joined = keyed.join(
        p,
        [
            p._base == keyed._want_base,
            p.valid_from.isnull() | (p.valid_from <= keyed.day),
            p.valid_to.isnull() | (keyed.day < p.valid_to),
        ],
    )
    ranked = joined.mutate(
        _model_rank=ibis.cases(
            (joined.model_key == joined._want_key, 0), (joined.model_key == joined._want_base, 1), else_=2
        ),
        _provider_rank=ibis.ifelse(provider_key(joined._price_provider).identical_to(joined._want_provider), 0, 1),
        _source_rank=ibis.ifelse(joined.price_source == "override", 0, 1),
    )
    order = [
        ranked._model_rank, ranked._provider_rank, ranked._source_rank,
        ibis.desc(ranked.valid_from, nulls_first=False), ibis.desc(ranked.model_key, nulls_first=False),
        ranked._price_model,
    ]  # fmt: skip
    window = ibis.window(group_by=[ranked.provider, ranked.model, ranked.day], order_by=order)
    ranked = ranked.mutate(_n=ibis.row_number().over(window))
    best = ranked.filter(ranked._n == 0)
    return best.select(
        "provider", "model", "day", "model_key", "input", "cached_input", "cache_write", "output",
        "input_batch", "output_batch",
    )  # fmt: skip


# -- small helpers: table -> table ------------------------------------------------------------


def requests_with_prices(con: ibis.BaseBackend, start: date, end: date) -> ibis.Table:
    """`llm_requests_daily` rows (see :func:`finops.analyses.tables.requests_table`) starting in
    [start, end) with the list-price split of their cost.

    Adds ``provider_key`` (one name per provider), ``month``, ``input_cost`` and
    ``output_cost`` (DECIMAL; the cost split in proportion to the model's list prices, NULL
    when the model has no price or the row no tokens), ``tokens`` (all input-side tokens
    plus output) and the model's standard list prices per token (``price_input``,
    ``price_cached_input`` and ``price_cache_write`` (the input price where the model has no
    such price), ``price_output``, ``price_input_batch``, ``price_output_batch``; NULL
    without a price). Prices are matched as :mod:`connectors.pricing` matches them (exact model,
    else its base model; own provider first; valid on the request's day).
    """
    return requests_with_prices_expr(requests_table(con), con.table("prices"), start, end)


def requests_with_prices_expr(requests: ibis.Table, prices: ibis.Table, start: date, end: date) -> ibis.Table:
    """The expression behind :func:`requests_with_prices`, over `llm_requests` and `prices` tables."""
    low, high = check_period(start, end)
    ps = requests.period_start
    selected = requests.filter(ps >= ibis.literal(low, type=dt.timestamp), ps < ibis.literal(high, type=dt.timestamp))
    columns = selected.columns
    s = selected.mutate(_day=selected.period_start.date())
    wanted = s.select(provider=s.provider, model=s.model, day=s._day)
    r = resolved_prices(wanted, prices)
    r = r.rename({f"_p_{c}": c for c in r.columns})
    j = s.left_join(
        r,
        [r._p_provider.identical_to(s.provider), r._p_model.identical_to(s.model), r._p_day == s._day],
    )
    count = {c: j[c].fill_null(0) for c in _TOKEN_COLUMNS}

    def part(n: ir.IntegerValue, price: ir.DecimalValue) -> ir.DecimalValue:
        # Narrow operand types keep the product exact on every engine: Spark would round
        # BIGINT × DECIMAL(38, 18) (precision 59) to 6 decimals, DuckDB would not.
        product = (n.cast(_TOKEN_COUNT) * price.cast(_UNIT_PRICE)).cast(_PART)
        return ibis.ifelse(n == 0, ibis.literal(Decimal(0), type=_PART), product)

    cached_price = j._p_cached_input.fill_null(j._p_input)
    write_price = j._p_cache_write.fill_null(j._p_input)
    list_input = (
        part(count["input_tokens"], j._p_input)
        + part(count["cached_input_tokens"], cached_price)
        + part(count["cache_write_tokens"], write_price)
    )
    list_output = part(count["output_tokens"], j._p_output)
    list_total = list_input + list_output
    input_share = ibis.cases(
        (j._p_model_key.isnull(), ibis.null(dt.float64)),
        (list_total > 0, list_input.cast(dt.float64) / list_total.cast(dt.float64)),
        else_=ibis.null(dt.float64),
    )
    input_cost = (j.cost.cast(dt.float64) * input_share).round(10).cast(MONEY)
    out = j.select(
        *columns,
        provider_key=provider_key(j.provider),
        month=j.period_start.truncate("M").date(),
        tokens=count["input_tokens"]
        + count["cached_input_tokens"]
        + count["cache_write_tokens"]
        + count["output_tokens"],
        input_cost=input_cost,
        price_input=j._p_input,
        price_cached_input=cached_price,
        price_cache_write=write_price,
        price_output=j._p_output,
        price_input_batch=j._p_input_batch,
        price_output_batch=j._p_output_batch,
    )
    return out.mutate(output_cost=minus(out.cost, out.input_cost))


def choose_sources(requests: ibis.Table, source: str | Sequence[str] | None = None) -> ibis.Table:
    """Keep one `llm_requests` source per provider and month, so no call is counted twice.

    ``source`` None: the first of :data:`SOURCE_PRIORITY` present for that provider and month;
    a string: only that source (``x_Source``); a sequence: that priority order.
    ``requests`` needs ``x_Source``, ``provider_key`` and ``month`` (see
    :func:`requests_with_prices`).
    """
    if isinstance(source, str):
        return requests.filter(requests.x_Source == source)
    order = tuple(source) if source is not None else SOURCE_PRIORITY
    rank = requests.x_Source.substitute({s: i for i, s in enumerate(order)}, else_=len(order))
    # Unknown sources rank after the listed ones, in name order (a stable, visible choice).
    ranked = requests.mutate(_rank=rank, _name=requests.x_Source.fill_null(""))
    kept = keep_best(ranked, ["provider_key", "month"], "_rank", tie="_name")
    return kept.drop("_rank", "_name")


def _with_time(requests: ibis.Table, grain: TimeGrain | None) -> ibis.Table:
    if grain is None:
        return requests
    unit = "M" if grain == "month" else "W"
    return requests.mutate(period=requests.period_start.truncate(unit).date())


def _with_group_columns(requests: ibis.Table, by: tuple[str, ...], config: Config | None) -> ibis.Table:
    """Rename/derive the grouping columns: provider is the provider key, source the loader."""
    t = requests.mutate(provider=requests.provider_key, source=requests.x_Source)
    if "department" in by:
        if config is None:
            raise AnalysisError("unit costs per department need the configuration", hint="pass config=")
        t = _with_request_department(t, config)
    return t


def _with_request_department(requests: ibis.Table, config: Config) -> ibis.Table:
    try:
        from finops.analyses.chargeback import with_request_department
    except ImportError:  # the chargeback module is written in parallel (issue 6)
        raise AnalysisError(
            "per-department unit costs need finops.analyses.chargeback.with_request_department, which is not there yet",
            hint="group by team or project_id instead",
        ) from None
    return with_request_department(requests, config)


def token_unit_costs_expr(requests: ibis.Table, by: tuple[str, ...], grain: TimeGrain | None) -> ibis.Table:
    """The aggregation behind :func:`token_unit_costs`: sums per group, ratios left to polars.

    Besides the shown sums it returns ``_priced_*`` sums (only rows with a cost and tokens)
    and ``_split_missing`` (such rows without an input/output split) for the unit costs.
    """
    keys = (["period"] if grain else []) + list(by)
    priced = requests.cost.notnull()
    with_tokens = priced & (requests.tokens > 0)
    requests_n = requests.requests.fill_null(1)
    input_side = requests.tokens - requests.output_tokens.fill_null(0)
    sums = {name: requests[name].fill_null(0).sum() for name in _TOKEN_COLUMNS}
    grouped = requests.group_by(keys) if keys else requests
    out = grouped.aggregate(
        requests=requests_n.sum(),
        **sums,
        cost=requests.cost.sum(),
        unpriced_requests=requests_n.sum(where=~priced).fill_null(0),
        _priced_requests=requests_n.sum(where=priced),
        _token_cost=requests.cost.sum(where=with_tokens),
        _priced_input_tokens=input_side.sum(where=with_tokens),
        _priced_output_tokens=requests.output_tokens.fill_null(0).sum(where=with_tokens),
        _input_cost=requests.input_cost.sum(where=with_tokens),
        _output_cost=requests.output_cost.sum(where=with_tokens),
        _split_missing=call_count(requests, where=with_tokens & requests.input_cost.isnull()),
    )
    return out.order_by(keys) if keys else out


def _per(amount: pl.Expr, count: pl.Expr, scale: int = 1) -> pl.Expr:
    """``amount × scale / count``: an exact decimal division, NULL when count is 0 or NULL."""
    divisor = pl.when(count > 0).then(count)
    return (amount.cast(pl.Decimal(38, 10)) * scale / divisor).cast(pl.Decimal(38, 10))


def with_unit_costs(sums: pl.DataFrame) -> pl.DataFrame:
    """Unit costs from the sums of :func:`token_unit_costs_expr` (exact decimal divisions)."""
    zero = pl.lit(0, dtype=pl.Int64)
    input_tokens = pl.col("_priced_input_tokens").fill_null(zero)
    output_tokens = pl.col("_priced_output_tokens").fill_null(zero)
    split_ok = pl.col("_split_missing") == 0
    money = pl.Decimal(38, 10)
    return sums.with_columns(
        pl.col("cost").cast(money),
        cost_per_1m_tokens=_per(pl.col("_token_cost"), input_tokens + output_tokens, PER_MILLION),
        cost_per_1m_input=pl.when(split_ok).then(_per(pl.col("_input_cost"), input_tokens, PER_MILLION)),
        cost_per_1m_output=pl.when(split_ok).then(_per(pl.col("_output_cost"), output_tokens, PER_MILLION)),
        cost_per_request=_per(pl.col("cost"), pl.col("_priced_requests")),
    ).drop(c for c in sums.columns if c.startswith("_"))


# -- public functions -------------------------------------------------------------------------


@cache.per_warehouse_state
def token_unit_costs(
    wh: Warehouse,
    start: date,
    end: date,
    *,
    by: Sequence[UnitBy] | UnitBy = ("provider", "model"),
    grain: TimeGrain | None = None,
    source: str | Sequence[str] | None = None,
    config: Config | None = None,
) -> pl.DataFrame:
    """Cost per 1M tokens, per 1M input and output tokens, and per request, in [start, end).

    Parameters
    ----------
    wh
        The warehouse (`llm_requests`, and `prices` for the input/output split).
    start, end
        The period, ``end`` exclusive, by the request's ``period_start`` (UTC).
    by
        Grouping columns, any of :data:`UNIT_BYS`: ``provider`` (one name per provider:
        ``azure`` covers Azure OpenAI whatever the source calls it), ``model``, ``source``,
        ``team``, ``project_id``, ``agent_id``, ``department`` (needs ``config``; from
        :func:`finops.analyses.chargeback.with_request_department`), ``call_type``.
    grain
        None for the whole period, or ``"month"`` / ``"week"`` (ISO weeks from Monday) to add
        a ``period`` column (the first day) for the same figures over time.
    source
        Which `llm_requests` source to count (see the module docstring): None picks one per
        provider and month by :data:`SOURCE_PRIORITY`; a name keeps only that source; a
        sequence is the priority order to use.
    config
        The validated finops.toml, for ``department``.

    Returns
    -------
    polars.DataFrame
        One row per group (and period): the group columns, ``requests``, ``input_tokens``
        (fresh input), ``cached_input_tokens``, ``cache_write_tokens``, ``output_tokens``,
        ``cost`` (exact sum), ``unpriced_requests``, then the unit costs (DECIMAL(38, 10),
        USD): ``cost_per_1m_tokens`` (cost of the requests that used tokens over all their
        tokens), ``cost_per_1m_input`` (the input part of their cost over fresh + cached +
        cache-write tokens), ``cost_per_1m_output`` (output part over output tokens) and
        ``cost_per_request``. A request's split follows its model's list prices (module
        docstring); a group with a request that has no split shows NULL input/output costs.
        Cost lines without tokens (e.g. images billed per image) count in ``cost`` and
        ``cost_per_request`` only.

    Why
    ---
    Price lists say what a token should cost; this says what it did cost, with caching,
    batch tiers and negotiated prices in it, so models and teams can be compared per unit
    rather than by total.

    >>> token_unit_costs(wh, date(2026, 7, 1), date(2026, 10, 1)).select(  # doctest: +SKIP
    ...     "provider", "model", "cost", "cost_per_1m_input", "cost_per_1m_output")
    │ azure  ┆ gpt-4o-2024-05-13 ┆ 57541.64… ┆ 4.1… ┆ 12.4… │
    """
    by = _check_by(by)
    _check_grain(grain)
    with wh.ibis() as con:
        requests = choose_sources(requests_with_prices(con, start, end), source)
        requests = _with_time(_with_group_columns(requests, by, config), grain)
        sums = token_unit_costs_expr(requests, by, grain).to_polars()
    return with_unit_costs(sums)


@cache.per_warehouse_state
def agent_task_unit_costs(
    wh: Warehouse,
    start: date,
    end: date,
    *,
    source: str | None = None,
    grain: TimeGrain | None = None,
) -> pl.DataFrame:
    """The cost of one agent task, per agent: how many tasks, and the median, p90, mean and max.

    Built on :func:`finops.analyses.usage.task_costs` (one row per task: its model calls and cost).
    A task belongs to the period (and ``grain`` period) of its first model call. Each source
    stays on its own rows (a task seen by the gateway and by the agent's traces is the same
    task: never add the two); ``source`` keeps one.

    Returns
    -------
    polars.DataFrame
        One row per source, agent_id (and ``period`` with ``grain``): ``tasks``,
        ``model_calls``, ``calls_per_task`` (float), ``cost`` (exact sum), ``unpriced_tasks``
        (tasks with an unpriced call: their cost is a lower bound), ``mean_task_cost`` (exact
        decimal), ``median_task_cost`` and ``p90_task_cost`` (float, linear interpolation:
        distribution figures), ``max_task_cost`` (exact). Costliest agent first.

    Why
    ---
    Agents multiply calls (10–50 per task, a 5–10× cost multiplier: seed 002); the p90 and max
    against the median show the runaway tasks a mean hides.
    """
    _check_grain(grain)
    tasks = task_costs(wh, start, end, source=source)
    keys = ["source", "agent_id"]
    if grain is not None:
        tasks = tasks.with_columns(
            period=pl.col("first_call_at").dt.truncate("1mo" if grain == "month" else "1w").dt.date()
        )
        keys = ["period", *keys]
    as_float = pl.col("cost").cast(pl.Float64)
    out = tasks.group_by(keys).agg(
        tasks=pl.len(),
        model_calls=pl.col("model_calls").sum(),
        cost=pl.col("cost").sum(),
        unpriced_tasks=(pl.col("unpriced_calls") > 0).sum(),
        median_task_cost=as_float.median(),
        p90_task_cost=as_float.quantile(0.9, interpolation="linear"),
        max_task_cost=pl.col("cost").max(),
        _priced_tasks=pl.col("cost").is_not_null().sum(),
    )
    columns = ["tasks", "model_calls", "calls_per_task", "cost", "unpriced_tasks", "mean_task_cost",
               "median_task_cost", "p90_task_cost", "max_task_cost"]  # fmt: skip
    order = [*keys[:-2], "cost", "source", "agent_id"]
    return (
        out.with_columns(
            calls_per_task=pl.col("model_calls") / pl.col("tasks"),
            mean_task_cost=_per(pl.col("cost"), pl.col("_priced_tasks")),
        )
        .select(*keys, *columns)
        .sort(order, descending=[c == "cost" for c in order], nulls_last=True)
    )


# -- self-hosted models -----------------------------------------------------------------------

_HOUR_UNITS = "(^|[^a-z])(hrs?|hours?)([^a-z]|$)"
_SECOND_UNITS = "(^|[^a-z])(s|secs?|seconds?)([^a-z]|$)"


def time_billed_hours(charges: ibis.Table) -> ir.NumericValue:
    """ConsumedQuantity in hours when its unit is a time (hours or seconds), else NULL."""
    unit = charges.ConsumedUnit.fill_null(charges.PricingUnit).fill_null("").lower()
    qty = charges.ConsumedQuantity.cast(dt.float64)
    return ibis.cases((unit.re_search(_HOUR_UNITS), qty), (unit.re_search(_SECOND_UNITS), qty / 3600))


def self_hosted_charges_expr(charges: ibis.Table, config: Config, start: date, end: date) -> ibis.Table:
    """Charges in [start, end) (by ChargePeriodStart) that serve a ``[[self_hosted]]`` model.

    Adds ``model`` (the first entry whose ``resource`` pattern matches ResourceId or
    ResourceName: a charge is never counted for two models) and ``instance_hours``.
    """
    low, high = check_period(start, end)
    cp = charges.ChargePeriodStart
    t = charges.filter(cp >= ibis.literal(low, type=dt.timestamp), cp < ibis.literal(high, type=dt.timestamp))

    def matches(pattern: str) -> ir.BooleanValue:
        return t.ResourceId.fill_null("").re_search(f"(?i){pattern}") | t.ResourceName.fill_null("").re_search(
            f"(?i){pattern}"
        )

    model = ibis.cases(*((matches(m.resource), m.model) for m in config.self_hosted))
    t = t.mutate(model=model, instance_hours=time_billed_hours(t))
    return t.filter(t.model.notnull())


def self_hosted_unit_costs(
    wh: Warehouse,
    config: Config,
    start: date,
    end: date,
    grain: TimeGrain | None = "month",
    *,
    source: str | Sequence[str] | None = None,
) -> pl.DataFrame:
    """Cost per 1M tokens of the models we serve ourselves: their GPU charges over their tokens.

    Parameters
    ----------
    wh
        The warehouse: `charges` (the GPUs) and `llm_requests` (the tokens served).
    config
        finops.toml's ``[[self_hosted]]`` entries: ``model`` (as in `llm_requests`),
        ``resource`` (pattern on ResourceId / ResourceName), optional ``provider``.
    start, end
        The period (``end`` exclusive): charges by ChargePeriodStart, requests by period_start.
    grain
        ``"month"`` (default), ``"week"`` or None for the whole period.
    source
        Which `llm_requests` source counts the tokens (as in :func:`token_unit_costs`).

    Returns
    -------
    polars.DataFrame
        One row per model (and ``period``): ``gpu_cost`` (EffectiveCost of the matched
        charges, exact), ``charges`` (rows matched), ``instance_hours`` (float; charges billed
        by time), ``requests``, ``tokens`` (input-side + output), ``cost_per_1m_tokens``
        (DECIMAL; NULL without tokens), ``tokens_per_instance_hour`` (float) and
        ``busy_hour_share`` (float: clock hours with at least one request over 24 × the days
        the GPUs were billed, a utilisation proxy; NULL without charges). A model whose
        endpoint is billed but that served no recorded token shows its cost with NULL unit
        cost: idle GPUs are visible, never divided away.

    Why
    ---
    A self-hosted model looks free on the gateway; its GPUs are on the cloud bill. Cost per
    1M tokens puts it beside the API price of the model it replaces (FORMATS.md: vLLM's token
    counters with the GPU's hourly cost give the same figure).
    """
    _check_grain(grain)
    if not config.self_hosted:
        raise AnalysisError(
            "no self-hosted models are configured",
            hint="add [[self_hosted]] tables (model, resource) to finops.toml",
        )
    keys = (["period"] if grain else []) + ["model"]
    with wh.ibis() as con:
        charges = self_hosted_charges_expr(con.table("charges"), config, start, end)
        if grain:
            charges = charges.mutate(period=charges.ChargePeriodStart.truncate("M" if grain == "month" else "W").date())
        gpu = charges.group_by(keys).aggregate(
            gpu_cost=charges.EffectiveCost.sum(),
            charges=charges.count(),
            instance_hours=charges.instance_hours.sum(),
            _charge_days=charges.ChargePeriodStart.date().nunique(),
        )
        # The calls themselves, not the daily rollup: busy hours need each call's hour.
        calls = requests_with_prices_expr(con.table("llm_requests"), con.table("prices"), start, end)
        requests = choose_sources(calls, source)
        wanted = ibis.or_(*(
            (requests.model.lower() == m.model.lower())
            & (ibis.literal(True) if m.provider is None else requests.provider.lower() == m.provider.lower())
            for m in config.self_hosted
        ))  # fmt: skip
        served = requests.filter(wanted)
        canonical = {m.model.lower(): m.model for m in config.self_hosted}
        served = served.mutate(model=served.model.lower().substitute(canonical))
        served = _with_time(served, grain)
        tokens = served.group_by(keys).aggregate(
            requests=served.requests.fill_null(1).sum(),
            tokens=served.tokens.sum(),
            _busy_hours=served.period_start.truncate("h").nunique(),
        )
        gpu_frame = gpu.to_polars()
        token_frame = tokens.to_polars()
    models = pl.DataFrame({"model": [m.model for m in config.self_hosted]})
    both = gpu_frame.join(token_frame, on=keys, how="full", coalesce=True)
    if not grain:
        both = models.join(both, on="model", how="left")
    both = both.with_columns(
        gpu_cost=pl.col("gpu_cost").fill_null(Decimal(0)).cast(pl.Decimal(38, 10)),
        charges=pl.col("charges").fill_null(0),
        requests=pl.col("requests").fill_null(0),
        tokens=pl.col("tokens").fill_null(0),
    )
    columns = ["gpu_cost", "charges", "instance_hours", "requests", "tokens", "cost_per_1m_tokens",
               "tokens_per_instance_hour", "busy_hour_share"]  # fmt: skip
    return (
        both.with_columns(
            cost_per_1m_tokens=_per(pl.col("gpu_cost"), pl.col("tokens"), PER_MILLION),
            tokens_per_instance_hour=pl.col("tokens")
            / pl.when(pl.col("instance_hours") > 0).then(pl.col("instance_hours")),
            busy_hour_share=pl.col("_busy_hours").fill_null(0)
            / pl.when(pl.col("_charge_days") > 0).then(pl.col("_charge_days") * 24),
        )
        .select(*keys, *columns)
        .sort(keys)
    )
