"""Chargeback: every dollar of the bill on a department, shared costs split by rule, to the cent.

Each charge of a billing month goes, in this order, to:

1. a **shared-cost pool** (``[[shared_costs]]`` in finops.toml) when one matches it: the GPU
   cluster, the gateway platform, support, tax. The pool is split between departments by its
   rule (below) and shows as their ``shared_cost``;
2. otherwise its **owner**: the department of its sub account, else of its tags (the aliases
   in ``[allocation] tag_keys``), see :func:`finops.analyses.spend.with_department`;
3. otherwise, for a managed model's invoice line (Bedrock, Azure OpenAI, Vertex AI / Gemini,
   OpenAI, Anthropic) with no owner, the **gateway teams** that used that model that month,
   by token share in ``llm_requests`` (see :func:`with_request_department`). Teams whose
   department already pays for the model from its own account that month are left out, since
   their calls are on their own bill; the model is matched by name (``Claude3.5Haiku`` on the
   bill is ``anthropic.claude-3-5-haiku-20241022-v1:0`` at the gateway), else the provider's
   traffic of the month is used;
4. otherwise the first **allocation rule** (``[[allocation_rules]]``, a virtual tag) that
   matches it;
5. otherwise **Unallocated**, a row of its own: shown, never spread silently.

Pools split by ``even`` (equal parts), ``proportional`` (to each department's direct cost
that month), ``fixed`` (percentages), ``tokens`` (gateway tokens that month) or ``gpu_hours``
(accelerator instance-hours each department ran that month). Only the pool's ``departments``
take part (every department when it names none). A pool month with nothing to weigh by (no
tokens yet, say) stays Unallocated, with the reason.

Amounts are DECIMAL throughout. A split multiplies the cost by each department's fraction
(12 decimals) and gives the last sub-cent residue to the department with the largest weight,
so the parts add up to the pooled cost exactly. Reported amounts are rounded per month by the
**largest-remainder** method: each department gets its amount rounded down to the cent, and
the cents still missing to reach the month's bill (rounded to the cent) go one each to the
largest remainders, so the rows of a month always add up to its bill exactly.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import polars as pl

from finops.analyses import cache
from finops.analyses.classify import accelerator_instance, decide_per_distinct, drop_rule_inputs, rule_inputs, search
from finops.analyses.reconcile import GATEWAY_PROVIDER_SQL, billed_provider, gateway_provider
from finops.analyses.spend import _check_basis, _lookup, with_department
from finops.analyses.tables import call_count, charges_table, requests_table
from finops.analyses.unit_economics import base_model, model_key
from finops.analyses.usage import SOURCE_PRIORITY, keep_best
from finops.config import UNALLOCATED, ChargeMatch, Config, CostBasis
from finops.exceptions import AnalysisError, ConfigError
from finops.periods import Quarter
from finops.warehouse import Warehouse
from finops.warehouse.keys import base_model_sql, model_key_sql

_FRACTION = dt.Decimal(18, 12)  # a department's fraction of a split, as the SQL version kept it
_UNIT_FRACTION = dt.Decimal(13, 12)  # the same value (a fraction is at most 1), narrow for exact products
_MONEY = dt.Decimal(38, 10)  # amounts, as in `charges`
# Operands of a product, narrow enough that the exact product fits DECIMAL(38) on every engine (Spark
# otherwise cuts the scale of a too-wide product to 6); same scale, as ibis types a product of decimals
# only when one operand's type holds the other's.
_SPLIT_AMOUNT = dt.Decimal(24, 12)  # up to 10^12 per pool, provider, service and month
_MONEY_FACTOR = dt.Decimal(24, 10)
_PART = dt.Decimal(24, 10)  # a part of a split: its sums and differences stay within DECIMAL(38) on every engine
_CENTS = dt.Decimal(38, 2)
_CENTS_INT = dt.Decimal(20, 2)  # a whole number of cents, about to be multiplied by 0.01
_CENT = dt.Decimal(3, 2)


# -- who made a gateway call -------------------------------------------------------------------


def with_request_department(requests: ibis.Table, config: Config) -> ibis.Table:
    """Add ``department`` to gateway/API calls (``llm_requests``): who made each call.

    In order, first hit wins (compared without case): ``team`` is one of a department's
    ``gateway_teams`` or ``tag_values`` (a LiteLLM team alias is usually the team tag's
    word); ``project_id`` is one of its ``gateway_projects`` or ``sub_accounts`` (an OpenAI
    project, an Anthropic workspace); ``api_key_id`` is one of its ``api_keys``; else
    :data:`~finops.config.UNALLOCATED`.
    """
    # Once per distinct caller (tens), not per call (millions). NULL is kept apart as "": the
    # config's names are never empty, so "" matches nothing, as NULL does.
    callers = {f"_caller_{name}": requests[name].fill_null("") for name in ("team", "project_id", "api_key_id")}

    def department(t: ibis.Table) -> ir.StringValue:
        return ibis.coalesce(
            _lookup(t._caller_team.strip().lower(), config.gateway_team_map()),
            _lookup(t._caller_project_id.strip().lower(), config.gateway_project_map()),
            _lookup(t._caller_api_key_id.strip().lower(), config.api_key_map()),
            ibis.literal(UNALLOCATED),
        )

    return decide_per_distinct(requests, callers, department=department)


def bill_model_key_sql(expr: str) -> str:
    """SQL: a model name reduced to letters and digits without vendor, version or date, so that a
    bill's ``Claude3.5Haiku`` and a gateway's ``bedrock/anthropic.claude-3-5-haiku-20241022-v1:0``
    meet as ``claude35haiku``."""
    return f"nullif(regexp_replace({base_model_sql(model_key_sql(expr))}, '[^a-z0-9]', '', 'g'), '')"


# -- matching pools and allocation rules -------------------------------------------------------


def _match_predicate(staged: ibis.Table, inputs, match: ChargeMatch, where: str) -> ir.BooleanValue:
    """Every key ``match`` sets must match (AND); see :data:`finops.config.CHARGE_MATCH_KEYS`."""
    text = (
        (inputs.provider, match.provider),
        (inputs.service, match.service),
        (inputs.sku, match.sku),
        (inputs.usage, match.usage_type),
        (inputs.resource, match.resource),
        (
            ibis.literal(" | ").join([staged.SubAccountId.fill_null(""), staged.SubAccountName.fill_null("")]),
            match.sub_account,
        ),
        (staged.ChargeCategory.fill_null(""), match.charge_category),
    )
    parts = [search(value, pattern) for value, pattern in text if pattern is not None]
    parts += [inputs.tag_matches(key, pattern) for key, pattern in match.tags]
    for column, pattern in match.columns:
        if column not in staged.columns or column.startswith("_rule_"):
            raise ConfigError(
                f"{where}: columns.{column}: `charges` has no column {column!r}",
                hint="use a FOCUS column name such as ChargeDescription, ResourceName, x_UsageType",
            )
        parts.append(search(staged[column].cast("string").fill_null(""), pattern))
    return ibis.and_(*parts)


def _where(config: Config, kind: str, line: int | None) -> str:
    return f"{config.path or 'finops.toml'}:{line or '?'}: {kind}"


def _charge_lines(con, config: Config, start: date, end: date, basis: CostBasis) -> ibis.Table:
    """The billing months' charges with cost, owner, pool, allocation rule and GPU hours, summed per
    month, provider, service, department, pool, rule, family and model key."""
    charges = charges_table(con, config)
    low = ibis.timestamp(start.isoformat())
    high = ibis.timestamp(end.isoformat())
    t = charges.filter((charges.BillingPeriodStart >= low) & (charges.BillingPeriodStart < high))
    t = with_department(t, config)
    staged, inputs = rule_inputs(t)
    pools = [
        (
            _match_predicate(staged, inputs, pool.match, _where(config, f"shared_costs {pool.name!r}", pool.line)),
            pool.name,
        )
        for pool in config.shared_costs
    ]
    rules = [
        (_match_predicate(staged, inputs, rule.match, _where(config, f"allocation_rules {rule.id!r}", rule.line)), rule)
        for rule in config.allocation_rules
    ]
    null = ibis.null("string")
    pool = ibis.cases(*pools, else_=null) if pools else null
    rule_id = ibis.cases(*((cond, rule.id) for cond, rule in rules), else_=null) if rules else null
    rule_department = ibis.cases(*((cond, rule.department) for cond, rule in rules), else_=null) if rules else null
    hours_unit = staged.ConsumedUnit.fill_null("").lower().re_search("^(hours?|hrs?)$")
    # Exact (DECIMAL) hours: a sum of doubles depends on the order, which differs between engines.
    gpu_hours = ibis.cases(
        (accelerator_instance(inputs) & hours_unit, staged.ConsumedQuantity.cast(_MONEY)),
        else_=ibis.literal(0).cast(_MONEY),
    )
    cost = staged.EffectiveCost if basis == "effective" else staged.BilledCost
    lines = drop_rule_inputs(
        staged.mutate(
            month=staged.BillingPeriodStart.date(),
            cost=cost.fill_null(0).cast(_MONEY),
            pool=pool,
            rule_id=rule_id,
            rule_department=rule_department,
            gpu_hours=gpu_hours,
        )
    ).select(
        "month", "ProviderName", "ServiceName", "x_Model", "x_UsageType", "ChargeDescription",
        "department", "pool", "rule_id", "rule_department", "gpu_hours", "cost",
    )  # fmt: skip
    keyed = lines.mutate(family=billed_provider(lines), model_key=_bill_model_key(lines.x_Model))
    # One row per distinct key: every later step sums cost (exactly) over coarser groups, so the
    # result is the same, and the engines work on a few thousand rows instead of every charge.
    return keyed.group_by(
        "month", "ProviderName", "ServiceName", "department", "pool", "rule_id", "rule_department", "family",
        "model_key",
    ).agg(gpu_hours=keyed.gpu_hours.sum().cast(_MONEY), cost=keyed.cost.sum().cast(_MONEY))  # fmt: skip


def _request_lines(con, config: Config, start: date, end: date) -> ibis.Table:
    """The months' gateway/API call tokens by month, source, provider, model and department (every source)."""
    requests = requests_table(con)
    low = ibis.timestamp(start.isoformat())
    high = ibis.timestamp(end.isoformat())
    t = with_request_department(
        requests.filter((requests.period_start >= low) & (requests.period_start < high)), config
    )
    t = t.select(
        month=t.period_start.truncate("M").date(),
        source=t.x_Source,
        provider=t.provider,
        model=t.model,
        department=t.department,
        tokens=t.input_tokens.fill_null(0) + t.output_tokens.fill_null(0),
    )
    # One row per key: later steps only sum tokens over coarser groups.
    return t.group_by("month", "source", "provider", "model", "department").agg(tokens=t.tokens.sum().cast("int64"))


# -- provider families and model keys (ibis twins of finops.warehouse.keys / reconcile SQL) -----


def _bill_model_key(model: ir.StringValue) -> ir.StringValue:
    """:func:`bill_model_key_sql` in ibis: the base model key without punctuation, so a bill's model
    name and a gateway's meet (``us.anthropic.claude-3-5-sonnet-20241022-v2:0`` → ``claude35sonnet``)."""
    return base_model(model_key(model)).re_replace("[^a-z0-9]", "").nullif("")


def one_source_per_provider(t: ibis.Table, source: str = "x_Source", time: str = "period_start") -> ibis.Table:
    """The rows of ``t`` (`llm_requests` rows with a ``provider`` column) of one source per provider
    (as billed) and month: the first of :data:`finops.analyses.usage.SOURCE_PRIORITY` present.
    The ibis form of :func:`one_source_per_provider_sql`, for any engine."""
    # Decided over the distinct (month, provider, source) present, a few rows, and joined back:
    # the provider's family per call (tens of millions) cost minutes.
    keyed = t.mutate(_month_key=t[time].truncate("M"))
    present = keyed.select("_month_key", "provider", source).distinct()
    rank = ibis.cases(*((present[source] == s, i) for i, s in enumerate(SOURCE_PRIORITY)), else_=len(SOURCE_PRIORITY))
    ranked = present.mutate(_source_rank=rank, _provider_key=gateway_provider(present.provider))
    chosen = keep_best(ranked, ["_month_key", "_provider_key"], "_source_rank")
    kept = keyed.semi_join(chosen, [keyed[c].identical_to(chosen[c]) for c in ("_month_key", "provider", source)])
    return kept.drop("_month_key")


# -- splitting and rounding -----------------------------------------------------------------------


def _split(t: ibis.Table, keys: list[str]) -> ibis.Table:
    """The rows of ``t`` (``amount`` to split, ``department``, ``weight`` > 0) with ``amount``
    replaced by the department's part. Parts of one ``keys`` group add up to its amount exactly:
    the department with the largest weight (then the first by name) takes the sub-cent residue.

    The part is ``amount`` × the weight's fraction (12 decimals), kept to 10 decimals. The
    operands are cast narrow enough (14 integer digits of money, a fraction ≤ 1) that the exact
    product fits DECIMAL(38) on every engine (Spark would otherwise cut it to 6 decimals).
    """
    group = ibis.window(group_by=keys)
    weight = t.weight.cast("float64")
    fraction = (weight / weight.sum().over(group)).cast(_FRACTION).cast(_UNIT_FRACTION)
    with_part = t.mutate(
        _part=(t.amount.cast(_SPLIT_AMOUNT) * fraction).cast(_PART),
        _rn=ibis.row_number().over(ibis.window(group_by=keys, order_by=[t.weight.desc(), t.department.asc()])),
    )
    # Narrow operands again: DECIMAL(38, 10) - DECIMAL(38, 10) needs 39 digits, and Spark would cut the scale.
    residue = with_part.amount.cast(_PART) - (with_part._part.sum().over(group) - with_part._part)
    return with_part.mutate(amount=ibis.ifelse(with_part._rn == 0, residue, with_part._part).cast(_MONEY)).drop(
        "_part", "_rn"
    )


def _largest_remainder(t: ibis.Table, value: str, keys: list[str], order: str) -> ibis.Table:
    """``t`` plus ``{value}_cents``: ``value`` rounded to the cent so that, per ``keys`` group,
    the rounded values add up to the group's exact total rounded to the cent.

    Each value is rounded down; the cents still missing go, one each, to the largest remainders
    (ties by ``order``). Written with floor division so a (theoretical) surplus is taken back
    from the smallest remainders instead. Cents are integers and remainders exact decimals, so
    the ranking is the same on every engine.
    """
    group = ibis.window(group_by=keys)
    cents = t[value].cast(_MONEY_FACTOR) * 100
    staged = t.mutate(_floor=cents.floor().cast("int64"), _cents=cents)
    staged = staged.mutate(
        _remainder=staged._cents - staged._floor,
        _missing=(staged[value].sum().over(group).round(2) * 100).cast("int64") - staged._floor.sum().over(group),
        _n=staged._floor.count().over(group),
    )
    staged = staged.mutate(
        _rank=ibis.row_number().over(ibis.window(group_by=keys, order_by=[staged._remainder.desc(), staged[order]]))
        + 1,
        _each=(staged._missing.cast("float64") / staged._n.cast("float64")).floor().cast("int64"),
    )
    extra = ibis.ifelse(staged._rank <= staged._missing - staged._n * staged._each, 1, 0)
    result = (staged._floor + staged._each + extra).cast(_CENTS_INT) * ibis.literal(Decimal("0.01"), type=_CENT)
    return staged.mutate(**{f"{value}_cents": result.cast(_CENTS)}).drop(
        "_floor", "_cents", "_remainder", "_missing", "_n", "_rank", "_each"
    )


def _receivers(config: Config) -> ibis.Table:
    """Rows (pool, split, department, fixed_weight) of who shares each pool."""
    rows: dict[str, list] = {"pool": [], "split": [], "department": [], "fixed_weight": []}
    names = config.department_names
    for pool in config.shared_costs:
        if pool.split == "fixed":
            members = [(dept, float(percent)) for dept, percent in pool.shares]
        else:
            members = [(dept, None) for dept in (pool.departments or names)]
        for dept, weight in members:
            rows["pool"].append(pool.name)
            rows["split"].append(pool.split)
            rows["department"].append(dept)
            rows["fixed_weight"].append(weight)
    schema = {"pool": "string", "split": "string", "department": "string", "fixed_weight": "float64"}
    return ibis.memtable(pl.DataFrame(rows, schema={"pool": pl.String, "split": pl.String, "department": pl.String,
                                                    "fixed_weight": pl.Float64}), schema=schema)  # fmt: skip


def _allocations_expr(lines: ibis.Table, requests: ibis.Table, config: Config) -> ibis.Table:
    """Every allocation: month, provider, service, department, kind, pool, method, amount (unordered)."""
    un = ibis.literal(UNALLOCATED)
    keyed = requests.mutate(family=gateway_provider(requests.provider), model_key=_bill_model_key(requests.model))
    chosen = one_source_per_provider(keyed, "source", "month")
    usage = chosen.group_by("month", "family", "model_key", "department").agg(tokens=chosen.tokens.sum())

    unpooled = lines.filter(lines.pool.isnull())
    owned = (
        unpooled.filter((unpooled.department != un) & unpooled.family.notnull() & unpooled.model_key.notnull())
        .select(o_month="month", o_family="family", o_model_key="model_key", o_department="department")
        .distinct()
        .mutate(o_owned=ibis.literal(True))
    )
    used = usage.filter((usage.tokens > 0) & usage.model_key.notnull())
    joined = used.left_join(
        owned,
        [
            used.month == owned.o_month,
            used.family == owned.o_family,
            used.model_key == owned.o_model_key,
            used.department == owned.o_department,
        ],
    )
    joined = joined.select(
        "month", "family", "model_key", "department", weight="tokens",
        unbilled=joined.o_owned.isnull() | (joined.department == un),
    )  # fmt: skip
    joined = joined.mutate(
        _any_unbilled=joined.unbilled.any().over(ibis.window(group_by=["month", "family", "model_key"]))
    )
    model_weights = joined.filter(joined.unbilled | ~joined._any_unbilled).select(
        "month", "family", "model_key", "department", "weight"
    )
    provider_weights = (
        usage.group_by("month", "family", "department").agg(weight=usage.tokens.sum()).filter(ibis._.weight > 0)
    )

    unowned_lines = unpooled.filter((unpooled.department == un) & unpooled.family.notnull())
    unowned = unowned_lines.group_by("month", "ProviderName", "ServiceName", "family", "model_key").agg(
        amount=unowned_lines.cost.sum()
    )
    by_model = unowned.join(model_weights, ["month", "family", "model_key"]).mutate(
        method=ibis.literal("gateway tokens of the model")
    )
    model_keys = model_weights.select("month", "family", "model_key").distinct()
    no_model = unowned.anti_join(model_keys, ["month", "family", "model_key"])
    by_provider = no_model.join(provider_weights, ["month", "family"]).mutate(
        method=ibis.literal("gateway tokens of the provider")
    )
    columns = [
        "month",
        "ProviderName",
        "ServiceName",
        "family",
        "model_key",
        "amount",
        "department",
        "weight",
        "method",
    ]
    gateway_input = ibis.union(
        by_model.select(*columns).mutate(weight=ibis._.weight.cast("int64")),
        by_provider.select(*columns).mutate(weight=ibis._.weight.cast("int64")),
    )
    gateway = _split(gateway_input, ["month", "ProviderName", "ServiceName", "family", "model_key"])

    owner_lines = unpooled.filter(unpooled.department != un)
    by_owner = owner_lines.group_by("month", "ProviderName", "ServiceName", "department").agg(
        amount=owner_lines.cost.sum()
    )
    placed = gateway_input.select(
        g_month="month", g_provider="ProviderName", g_service="ServiceName", g_family="family", g_model_key="model_key"
    ).distinct()
    left = unpooled.filter(unpooled.department == un)
    left = left.anti_join(
        placed,
        [
            left.month == placed.g_month,
            left.ProviderName.identical_to(placed.g_provider),
            left.ServiceName.identical_to(placed.g_service),
            left.family == placed.g_family,  # NULL never equals: lines with no family stay
            left.model_key.identical_to(placed.g_model_key),
        ],
    )
    by_rule = left.group_by(
        "month",
        "ProviderName",
        "ServiceName",
        department=left.rule_department.fill_null(UNALLOCATED),
        method=ibis.ifelse(left.rule_id.isnull(), "no match", "allocation rule " + left.rule_id),
    ).agg(amount=left.cost.sum())
    direct_columns = ["month", "ProviderName", "ServiceName", "department", "method", "amount"]
    direct = ibis.union(
        by_owner.mutate(method=ibis.literal("account or tag")).select(*direct_columns),
        gateway.select(*direct_columns),
        by_rule.select(*direct_columns),
    )

    pooled_lines = lines.filter(lines.pool.notnull())
    pooled = pooled_lines.group_by("month", "ProviderName", "ServiceName", "pool").agg(amount=pooled_lines.cost.sum())
    receivers = _receivers(config)
    allocated = direct.filter(direct.department != un)
    direct_totals = allocated.group_by(d_month="month", d_department="department").agg(d_total=allocated.amount.sum())
    token_totals = usage.group_by(t_month="month", t_department="department").agg(t_tokens=usage.tokens.sum())
    gpu_totals = unpooled.group_by(
        h_month="month",
        h_department=ibis.ifelse(unpooled.department != un, unpooled.department, unpooled.rule_department),
    ).agg(h_hours=unpooled.gpu_hours.sum())
    pool_months = pooled.select("month", "pool").distinct()
    w = pool_months.join(receivers, "pool")
    w = w.left_join(direct_totals, [w.month == direct_totals.d_month, w.department == direct_totals.d_department])
    w = w.left_join(token_totals, [w.month == token_totals.t_month, w.department == token_totals.t_department])
    w = w.left_join(gpu_totals, [w.month == gpu_totals.h_month, w.department == gpu_totals.h_department])
    weight = ibis.cases(
        (w.split == "even", ibis.literal(1.0)),
        (w.split == "fixed", w.fixed_weight),
        (w.split == "proportional", ibis.greatest(w.d_total.fill_null(0).cast("float64"), 0.0)),
        (w.split == "tokens", w.t_tokens.fill_null(0).cast("float64")),
        (w.split == "gpu_hours", w.h_hours.cast("float64").fill_null(0.0)),
        else_=ibis.null("float64"),
    )
    pool_weights = w.select("month", "pool", "split", "department", weight=weight)
    pool_input = pooled.join(pool_weights, ["month", "pool"]).filter(ibis._.weight > 0)
    shared = _split(pool_input, ["month", "ProviderName", "ServiceName", "pool"])

    splits = {pool.name: pool.split for pool in config.shared_costs if pool.split != "fixed" or pool.shares}
    weighed = pool_input.select("month", "pool").distinct()
    unweighed = pooled.anti_join(weighed, ["month", "pool"])
    no_weights = unweighed.pool.substitute(splits, else_=ibis.null("string")) if splits else ibis.null("string")
    out = {"provider": "ProviderName", "service": "ServiceName"}
    return ibis.union(
        direct.select(
            "month", **out, department="department", kind=ibis.literal("direct"), pool=ibis.null("string"),
            method="method", amount="amount",
        ),
        shared.select(
            "month", **out, department="department", kind=ibis.literal("shared"), pool="pool", method="split",
            amount="amount",
        ),
        unweighed.select(
            "month", **out, department=un, kind=ibis.literal("shared"), pool="pool",
            method="no weights for " + no_weights + " this month", amount="amount",
        ),
    ).mutate(amount=ibis._.amount.cast(_MONEY))  # fmt: skip


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def one_source_per_provider_sql(source: str = "x_Source", time: str = "period_start") -> str:
    """SQL: a QUALIFY clause keeping, over `llm_requests` rows, one source per provider (as
    billed) and month: the first of :data:`finops.analyses.usage.SOURCE_PRIORITY` present. ``source`` and
    ``time`` name the rows' source and timestamp columns; ``provider`` must be a column too."""
    cases = " ".join(f"WHEN {_literal(s)} THEN {i}" for i, s in enumerate(SOURCE_PRIORITY))
    rank = f"(CASE {source} {cases} ELSE {len(SOURCE_PRIORITY)} END)"
    return f"QUALIFY {rank} = min({rank}) OVER (PARTITION BY date_trunc('month', {time}), {GATEWAY_PROVIDER_SQL})"


# -- public functions --------------------------------------------------------------------------


def _months(quarter: Quarter | None, start: date | None, end: date | None) -> tuple[date, date]:
    """The billing months [start, end): the quarter's, or the range given instead (never both, never neither)."""
    if start is not None or end is not None:
        if quarter is not None:
            raise AnalysisError(f"both {quarter} and {start} … {end} given", hint="give a quarter or start and end")
        if start is None or end is None or end <= start:
            raise AnalysisError(f"bad range {start} … {end}", hint="give both start and an exclusive end after it")
        return start, end
    if quarter is None:
        raise AnalysisError(
            "no billing months given",
            hint="pass a Quarter (finops.analyses.quarters.latest_complete_quarter(wh) picks the last complete one)"
            " or start and end",
        )
    return quarter.start, quarter.end


def _basis(config: Config, basis: CostBasis | None) -> CostBasis:
    chosen = basis or config.basis
    _check_basis(chosen)
    return chosen


def _allocations_table(
    wh: Warehouse,
    con,
    config: Config,
    quarter: Quarter | None,
    basis: CostBasis | None,
    start: date | None,
    end: date | None,
) -> ibis.Table:
    """The expression of :func:`allocations` (unordered) for the chosen billing months and basis."""
    low, high = _months(quarter, start, end)
    chosen = _basis(config, basis)
    lines, requests = _charge_lines(con, config, low, high, chosen), _request_lines(con, config, low, high)
    # Built once (a few thousand rows): the expression below uses the lines a dozen times, and an
    # engine that inlines them (Spark) would otherwise scan the charges and run every rule's regex each time.
    # Kept per warehouse state: the review and every department statement ask for the same months.
    state = wh.state_token()
    key = None if state is None else cache.key_of("chargeback inputs", state, config, low, high, chosen)
    lines_frame = cache.cached_frame(key and f"{key}-lines", lines.to_polars)
    requests_frame = cache.cached_frame(key and f"{key}-requests", requests.to_polars)
    lines = ibis.memtable(lines_frame, schema=lines.schema())
    requests = ibis.memtable(requests_frame, schema=requests.schema())
    return _allocations_expr(lines, requests, config)


@cache.per_warehouse_state
def allocations(
    wh: Warehouse,
    config: Config,
    quarter: Quarter | None = None,
    *,
    basis: CostBasis | None = None,
    start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """Every allocation behind the chargeback, unrounded: who pays what, and why.

    Parameters
    ----------
    wh, config
        The warehouse and finops.toml (departments, ``[[shared_costs]]``, ``[[allocation_rules]]``).
    quarter
        Billing months of this quarter; or leave it out and pass ``start`` and ``end``
        (exclusive) for other billing months. One of the two is required: the default quarter
        is the caller's choice (:func:`finops.analyses.quarters.latest_complete_quarter`).
    basis
        ``"effective"`` (EffectiveCost, amortized) or ``"billed"`` (BilledCost); default the
        config's ``[allocation] basis``.

    Returns
    -------
    pl.DataFrame
        month (first day of the billing month), provider, service, department, kind
        (``direct`` or ``shared``), pool (the shared-cost pool, for ``shared``), method (how:
        ``account or tag``, ``gateway tokens of the model``, ``allocation rule <id>``,
        ``no match``, or the pool's split rule) and amount (DECIMAL, exact). Per month the
        amounts add up to the bill exactly.
    """
    with wh.ibis() as con:
        t = _allocations_table(wh, con, config, quarter, basis, start, end)
        return t.order_by(
            "month", "department", "kind", t.pool.asc(nulls_first=True), "provider", "service", "method"
        ).to_polars()


@cache.per_warehouse_state
def chargeback(
    wh: Warehouse,
    config: Config,
    quarter: Quarter | None = None,
    *,
    basis: CostBasis | None = None,
    start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """One row per department and billing month: direct_cost, shared_cost, total_cost, in cents.

    See :func:`allocations` for the parameters and the module docstring for the rules. Columns:
    department, month (``YYYY-MM``), direct_cost, shared_cost, total_cost (DECIMAL(38, 2)).
    Unallocated is a department row when anything is unallocated.

    Why
    ---
    For each month ``total_cost`` adds up to the bill rounded to the cent (largest-remainder
    rounding), so finance can post the chargeback against the invoice without a rounding line;
    ``direct_cost`` is rounded the same way and ``shared_cost`` is the difference.
    """
    with wh.ibis() as con:
        t = _allocations_table(wh, con, config, quarter, basis, start, end)
        per_department = t.group_by("month", "department").agg(
            direct=t.amount.sum(where=t.kind == "direct").fill_null(0).cast(_MONEY), total=t.amount.sum().cast(_MONEY)
        )
        rounded = _largest_remainder(
            _largest_remainder(per_department, "total", ["month"], "department"), "direct", ["month"], "department"
        )
        result = rounded.select(
            "department",
            month=rounded.month.strftime("%Y-%m"),
            direct_cost=rounded.direct_cents,
            shared_cost=(rounded.total_cents - rounded.direct_cents).cast(_CENTS),
            total_cost=rounded.total_cents,
        )
        return result.order_by(
            "month", result.department == UNALLOCATED, result.total_cost.desc(), "department"
        ).to_polars()


@cache.per_warehouse_state
def reconciliation(
    wh: Warehouse,
    config: Config,
    quarter: Quarter | None = None,
    *,
    basis: CostBasis | None = None,
    start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """Invoice total = departments + unallocated, per provider and billing month (cents).

    Columns: provider, month (``YYYY-MM``), invoice_total (the provider's charges of the month
    on the chosen basis, rounded to the cent), departments (allocated to departments, directly
    or through pools), unallocated, difference (invoice_total − departments − unallocated).
    Departments and unallocated are rounded together by largest remainder, so ``difference``
    is 0.00 unless an allocation was lost: the check finance asks for.
    """
    low, high = _months(quarter, start, end)
    basis = _basis(config, basis)
    with wh.ibis() as con:
        t = _allocations_table(wh, con, config, quarter, basis, start, end)
        side = t.department == UNALLOCATED
        per_side = t.group_by("month", "provider", is_unallocated=side).agg(amount=t.amount.sum().cast(_MONEY))
        # Both sides of every provider month, so each gets its cents.
        both = (
            t.select("month", "provider", is_unallocated=~side).distinct().mutate(amount=ibis.literal(0).cast(_MONEY))
        )
        sides = ibis.union(per_side, both)
        summed = sides.group_by("month", "provider", "is_unallocated").agg(amount=sides.amount.sum().cast(_MONEY))
        rounded = _largest_remainder(summed, "amount", ["month", "provider"], "is_unallocated")
        charges = charges_table(con)
        in_months = (charges.BillingPeriodStart >= ibis.timestamp(low.isoformat())) & (
            charges.BillingPeriodStart < ibis.timestamp(high.isoformat())
        )
        billed = charges.filter(in_months)
        cost = billed.EffectiveCost if basis == "effective" else billed.BilledCost
        bills = billed.group_by(b_month=billed.BillingPeriodStart.date(), b_provider=billed.ProviderName).agg(
            invoice_total=cost.sum().round(2).cast(_CENTS)
        )
        joined = rounded.left_join(
            bills, [rounded.month == bills.b_month, rounded.provider.identical_to(bills.b_provider)]
        )
        cents = joined.amount_cents
        per_provider = joined.group_by("provider", "month", "invoice_total").agg(
            departments=cents.sum(where=~joined.is_unallocated).cast(_CENTS),
            unallocated=cents.sum(where=joined.is_unallocated).cast(_CENTS),
            _allocated=cents.sum(),
        )
        result = per_provider.order_by("month", "provider").select(
            "provider",
            month=per_provider.month.strftime("%Y-%m"),
            invoice_total="invoice_total",
            departments="departments",
            unallocated="unallocated",
            difference=(per_provider.invoice_total - per_provider._allocated).cast(_CENTS),
        )
        return result.to_polars()


@dataclasses.dataclass(frozen=True)
class DepartmentStatement:
    """What one department is charged for a quarter, and why (the data of its statement).

    ``months``: :func:`chargeback`'s rows of the department (month, direct_cost, shared_cost,
    total_cost). ``totals``: one row, the quarter's direct, shared and total cost, the previous
    quarter's total and the change (``change_pct`` NULL without a previous quarter), and what
    gateway token counts placed on it this quarter and the previous one (a change in gateway
    coverage explains a jump that is not a change in spend).
    ``direct``: its direct costs by provider, service and method. ``shared``: its part of each
    pool with the split rule, the pool's total and its share of it (%). ``gateway``: its calls
    through the gateway and model APIs by provider and model: requests, tokens, cost.
    """

    department: str
    quarter: Quarter
    basis: str
    months: pl.DataFrame
    totals: pl.DataFrame
    direct: pl.DataFrame
    shared: pl.DataFrame
    gateway: pl.DataFrame


def department_statement(
    wh: Warehouse,
    config: Config,
    department: str,
    quarter: Quarter,
    *,
    basis: CostBasis | None = None,
) -> DepartmentStatement:
    """The data of ``department``'s statement for ``quarter``.

    Its months add up to its rows in :func:`chargeback`; ``direct`` and ``shared`` are the
    unrounded :func:`allocations` grouped and rounded to the cent for display.
    """
    names = [*config.department_names, UNALLOCATED]
    if department not in names:
        raise AnalysisError(f"unknown department {department!r}", hint=f"one of: {', '.join(names)}")
    basis = _basis(config, basis)
    months = chargeback(wh, config, quarter, basis=basis).filter(pl.col("department") == department).drop("department")
    previous_rows = chargeback(wh, config, quarter.previous(), basis=basis).filter(pl.col("department") == department)
    previous = previous_rows["total_cost"].sum() if previous_rows.height else None
    total = months["total_cost"].sum() if months.height else None
    rows = allocations(wh, config, quarter, basis=basis)
    mine = rows.filter(pl.col("department") == department)
    earlier = allocations(wh, config, quarter.previous(), basis=basis).filter(pl.col("department") == department)
    totals = pl.DataFrame(
        {
            "quarter": [quarter.label],
            "direct_cost": [months["direct_cost"].sum() if months.height else None],
            "shared_cost": [months["shared_cost"].sum() if months.height else None],
            "total_cost": [total],
            "previous_quarter_total": [previous],
            "change_pct": [
                round(float((total - previous) / previous * 100), 1) if total is not None and previous else None
            ],
            "placed_by_gateway": [_placed_by_gateway(mine)],
            "previous_placed_by_gateway": [_placed_by_gateway(earlier)],
        },
        schema_overrides={
            c: pl.Decimal(38, 2)
            for c in (
                "direct_cost",
                "shared_cost",
                "total_cost",
                "previous_quarter_total",
                "placed_by_gateway",
                "previous_placed_by_gateway",
            )
        },
    )
    direct = (
        mine.filter(pl.col("kind") == "direct")
        .group_by("provider", "service", "method")
        .agg(cost=pl.col("amount").sum())
        .with_columns(pl.col("cost").round(2).cast(pl.Decimal(38, 2)))
        .sort(["cost", "provider", "service", "method"], descending=[True, False, False, False], nulls_last=True)
    )
    pools = rows.filter(pl.col("kind") == "shared").group_by("pool").agg(pool_total=pl.col("amount").sum())
    shared = (
        mine.filter(pl.col("kind") == "shared")
        .group_by("pool", "method")
        .agg(cost=pl.col("amount").sum())
        .join(pools, on="pool")
        .with_columns(
            share_pct=(pl.col("cost").cast(pl.Float64) / pl.col("pool_total").cast(pl.Float64) * 100).round(1),
            cost=pl.col("cost").round(2).cast(pl.Decimal(38, 2)),
            pool_total=pl.col("pool_total").round(2).cast(pl.Decimal(38, 2)),
        )
        .rename({"method": "split"})
        .sort(["cost", "pool", "split"], descending=[True, False, False], nulls_last=True)
    )
    usage = gateway_usage(wh, config, quarter, department=department)
    return DepartmentStatement(department, quarter, basis, months, totals, direct, shared, usage)


def _placed_by_gateway(rows: pl.DataFrame) -> Decimal:
    """What gateway token counts placed on a department (model invoices with no team), to the cent."""
    placed = rows.filter(pl.col("method").str.starts_with("gateway tokens"))["amount"].sum()
    return Decimal(placed or 0).quantize(Decimal("0.01"))


@cache.per_warehouse_state
def gateway_usage(wh: Warehouse, config: Config, quarter: Quarter, *, department: str | None = None) -> pl.DataFrame:
    """Gateway and model-API calls of ``quarter`` by department, provider and model.

    One source per provider and month (:data:`SOURCE_PRIORITY`), so calls a gateway and a
    usage API both saw count once. Columns: department, provider, model, requests,
    input_tokens, output_tokens, cost (DECIMAL; NULL parts of unpriced calls are left out),
    unpriced_requests.
    """
    with wh.ibis() as con:
        requests = requests_table(con)
        low, high = ibis.timestamp(quarter.start.isoformat()), ibis.timestamp(quarter.end.isoformat())
        calls = requests.filter((requests.period_start >= low) & (requests.period_start < high))
        # Summed first per caller, source, provider, model and month (what the department and the
        # source choice read): they are then decided over that small table, not per call.
        calls = calls.mutate(_month=calls.period_start.truncate("M"))
        callers = ("team", "project_id", "api_key_id", "x_Source", "provider", "model", "_month")
        rolled = calls.group_by(*callers).agg(
            requests=calls.requests.fill_null(1).sum(),
            input_tokens=calls.input_tokens.sum(),
            output_tokens=calls.output_tokens.sum(),
            cost=calls.cost.sum(),
            unpriced_requests=call_count(calls, where=calls.cost.isnull()),
        )
        t = one_source_per_provider(with_request_department(rolled, config), time="_month")
        if department is not None:
            t = t.filter(t.department == department)
        result = t.group_by("department", "provider", "model").agg(
            requests=t.requests.sum().cast("int64"),
            input_tokens=t.input_tokens.sum().cast("int64"),
            output_tokens=t.output_tokens.sum().cast("int64"),
            cost=t.cost.sum().cast(_MONEY),
            unpriced_requests=t.unpriced_requests.sum().cast("int64"),
        )
        return result.order_by("department", result.cost.desc(nulls_first=False), "provider", "model").to_polars()


@cache.per_warehouse_state
def quarter_chargeback(
    wh: Warehouse, config: Config, quarter: Quarter, *, basis: CostBasis | None = None
) -> pl.DataFrame:
    """Per department, the quarter's chargeback beside the previous quarter's: the review's table.

    Columns: department, direct_cost, shared_cost, total_cost (cents, sums of the months of
    :func:`chargeback`), share (of the quarter's bill, a fraction), previous_total_cost (NULL
    without one) and change_pct. Largest first, Unallocated last.
    """
    money = ("direct_cost", "shared_cost", "total_cost")
    now = chargeback(wh, config, quarter, basis=basis).group_by("department").agg(pl.col(money).sum())
    before = (
        chargeback(wh, config, quarter.previous(), basis=basis)
        .group_by("department")
        .agg(previous_total_cost=pl.col("total_cost").sum())
    )
    total = now["total_cost"].sum()
    return (
        now.join(before, on="department", how="left")
        .with_columns(
            share=pl.col("total_cost").cast(pl.Float64) / float(total) if total else pl.lit(None, pl.Float64),
            change_pct=(
                (pl.col("total_cost") - pl.col("previous_total_cost")).cast(pl.Float64)
                / pl.col("previous_total_cost").cast(pl.Float64)
                * 100
            ).round(1),
        )
        .sort(pl.col("department") == UNALLOCATED, pl.col("total_cost"), descending=[False, True])
        .select("department", *money, "share", "previous_total_cost", "change_pct")
    )
