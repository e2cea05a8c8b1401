"""Spend views: who spent what, on which provider and workload, per month or day.

Every public function takes the warehouse and parameters and returns a polars DataFrame.
Each is built in two halves:

* an ``*_expr`` function that takes ibis tables and returns an ibis expression. It runs on
  any ibis backend: DuckDB today, Spark when the warehouse outgrows one machine (the tests
  compile every expression to Spark SQL). Small private helpers take and return ibis tables.
* the public function, which opens a short-lived read-only connection, builds the
  expression over the warehouse's charges (the daily rollup `charges_daily` unless a rule
  needs the resource: :mod:`finops.analyses.tables`) and materialises it once, to polars.

Conventions shared by all views:

* ``basis`` picks the cost column: ``"effective"`` (EffectiveCost, amortized: what chargeback
  uses) or ``"billed"`` (BilledCost: what the invoice says).
* ``start``/``end`` are dates, ``end`` exclusive. Monthly and quarterly views select and group
  by BillingPeriodStart, the invoice month, so their totals match invoices; daily views by
  the date of ChargePeriodStart (UTC).
* Money columns stay exact: polars ``Decimal(38, 10)``. Shares (fractions of one) and
  ``*_pct`` changes (percent) are floats, for display.
* "AI spend" is every charge whose :func:`finops.analyses.classify.classify` workload is not non-AI.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import polars as pl
from ibis import _

from finops.analyses import cache
from finops.analyses.classify import WORKLOADS, classify, decide_per_distinct, is_ai, is_fallback_rule, rules_for
from finops.analyses.tables import charges_table, line_count
from finops.config import COST_BASES, UNALLOCATED, Config, CostBasis
from finops.exceptions import AnalysisError
from finops.periods import Quarter

if TYPE_CHECKING:
    from finops.warehouse import Warehouse

Grain = Literal["day", "month", "quarter"]
GRAINS: tuple[Grain, ...] = ("day", "month", "quarter")
SpendBy = Literal["workload", "department", "provider"]
SPEND_BYS: tuple[SpendBy, ...] = ("workload", "department", "provider")

MONEY = dt.Decimal(38, 10)
"""The warehouse's money type; sums keep it."""

_COST_COLUMNS: dict[str, str] = {"effective": "EffectiveCost", "billed": "BilledCost"}


# -- small helpers: parameters ------------------------------------------------------------


def _check_basis(basis: str) -> str:
    if basis not in COST_BASES:
        raise AnalysisError(f"unknown cost basis {basis!r}", hint=f"use one of: {', '.join(COST_BASES)}")
    return _COST_COLUMNS[basis]


def _check_grain(grain: str) -> None:
    if grain not in GRAINS:
        raise AnalysisError(f"unknown grain {grain!r}", hint=f"use one of: {', '.join(GRAINS)}")


def _check_range(start: date, end: date) -> None:
    if not start < end:
        raise AnalysisError(f"empty period: start {start} is not before end {end} (end is exclusive)")


def _timestamp(day: date) -> ir.TimestampScalar:
    """A date as a midnight timestamp literal, to compare with the warehouse's TIMESTAMP columns."""
    moment = day if isinstance(day, datetime) else datetime.combine(day, time.min)
    return ibis.literal(moment, type=dt.timestamp)


def _zero() -> ir.DecimalScalar:
    return ibis.literal(Decimal(0), type=MONEY)


def _as_float(value: ir.NumericValue) -> ir.FloatingValue:
    # Float literals are avoided on purpose: ibis's Spark compiler needs pyspark installed to write them.
    return value.cast(dt.float64)


def _share(part: ir.NumericValue, whole: ir.NumericValue) -> ir.FloatingValue:
    """``part / whole`` as a float, NULL when ``whole`` is zero or unknown."""
    return _as_float(part) / _as_float(whole.nullif(0))


def _change_pct(current: ir.NumericValue, previous: ir.NumericValue) -> ir.FloatingValue:
    """Change from ``previous`` to ``current`` in percent; NULL when there is nothing to compare with."""
    return (_as_float(current) - _as_float(previous)) / _as_float(previous.abs().nullif(0)) * 100


def _lookup(value: ir.StringValue, mapping: dict[str, str]) -> ir.StringValue:
    """``mapping[value]`` as a CASE expression; NULL when the value is not in the mapping."""
    if not mapping:
        return ibis.null(dt.string)
    return value.substitute(mapping, else_=ibis.null(dt.string))


def _tag_value(tags: ir.MapValue, key: str) -> ir.StringValue:
    """The value of tag ``key``, whatever the case of the key in the data (``Team``, ``TEAM``…).

    If a row carries the key in several cases, the smallest value wins (a stable choice).
    Built from array functions that DuckDB and Spark both have, without indexing an
    array that may be empty.
    """
    wanted = key.lower()
    pairs = tags.keys().zip(tags.values())
    return pairs.filter(lambda pair: pair.f1.lower() == wanted).map(lambda pair: pair.f2).mins()


# -- small helpers: table -> table ------------------------------------------------------------


def _billed_between(charges: ibis.Table, start: date, end: date) -> ibis.Table:
    """Charges whose billing period (invoice month) starts in [start, end)."""
    bp = charges.BillingPeriodStart
    return charges.filter(bp >= _timestamp(start), bp < _timestamp(end))


def _charged_between(charges: ibis.Table, start: date, end: date) -> ibis.Table:
    """Charges whose charge period starts in [start, end): the daily views' selection."""
    cp = charges.ChargePeriodStart
    return charges.filter(cp >= _timestamp(start), cp < _timestamp(end))


def _select_for_grain(charges: ibis.Table, start: date, end: date, grain: Grain) -> ibis.Table:
    return _charged_between(charges, start, end) if grain == "day" else _billed_between(charges, start, end)


def _with_period(charges: ibis.Table, grain: Grain) -> ibis.Table:
    """Add ``period`` (date): the charge's day, or its invoice month or quarter's first day."""
    if grain == "day":
        period = charges.ChargePeriodStart.date()
    else:
        period = charges.BillingPeriodStart.truncate("M" if grain == "month" else "Q").date()
    return charges.mutate(period=period)


def _with_cost(charges: ibis.Table, basis: CostBasis) -> ibis.Table:
    """Add ``_cost``: the chosen cost basis column, so later steps need not know which it was."""
    return charges.mutate(_cost=charges[_check_basis(basis)])


def _ai_only(classified: ibis.Table) -> ibis.Table:
    return classified.filter(is_ai(classified))


def _workload_rank(workload: ir.StringValue) -> ir.IntegerValue:
    """Position of a workload in :data:`WORKLOADS`, to list them in that order."""
    return workload.substitute({w: i for i, w in enumerate(WORKLOADS)}, else_=len(WORKLOADS))


def _in_quarter(charges: ibis.Table, quarter: Quarter) -> ir.BooleanValue:
    bp = charges.BillingPeriodStart
    return (bp >= _timestamp(quarter.start)) & (bp < _timestamp(quarter.end))


def with_department(charges: ibis.Table, config: Config) -> ibis.Table:
    """Add ``department``: who pays for each charge, by sub account first, then by tags.

    Parameters
    ----------
    charges
        An ibis table of FOCUS charges (any backend).
    config
        The validated finops.toml: departments with their ``sub_accounts`` and
        ``tag_values``, and the ``tag_keys`` to read, in order.

    Returns
    -------
    ibis.Table
        ``charges`` plus ``department``. Rules, first hit wins:

        1. SubAccountId is one of a department's ``sub_accounts`` (compared without case
           and without an Azure ``/subscriptions/`` prefix, since exports differ);
        2. for each of ``config.tag_keys`` in order, the row's tag with that key in any
           case (``team``, ``Team``, ``TEAM``) has a value (trimmed, any case) that is one
           of a department's ``tag_values``;
        3. otherwise :data:`finops.config.UNALLOCATED`.

    Why
    ---
    Accounts are the surest sign of ownership, so they win; tags cover shared accounts.
    Spend that matches nothing stays visible as Unallocated instead of being spread
    silently, so the gap in tagging is a number someone owns.
    """
    value_map = config.tag_value_map()
    # The rules run once per distinct owner (sub account and tags: tens or hundreds), not once per
    # line item (millions), and the answer is joined back. A map is not a grouping or join key on
    # every engine, so the tags are keyed by their key and value arrays; a NULL becomes empty, which
    # decides the same (no account, no tags).
    owner_keys = {"_dept_sub_account": charges.SubAccountId.fill_null("")}
    if value_map:
        empty = ibis.literal([], type="array<string>")
        owner_keys |= {"_dept_tag_keys": charges.Tags.keys().fill_null(empty),
                       "_dept_tag_values": charges.Tags.values().fill_null(empty)}  # fmt: skip

    def department(owners: ibis.Table) -> ir.StringValue:
        tags = ibis.map(owners._dept_tag_keys, owners._dept_tag_values) if value_map else None
        return _department(owners._dept_sub_account, tags, config)

    return decide_per_distinct(charges, owner_keys, department=department)


def _department(sub_account: ir.StringValue, tags: ir.MapValue | None, config: Config) -> ir.StringValue:
    """:func:`with_department`'s rules for one owner (a sub account and its tags)."""
    account_map = {_account_key_text(acct): name for acct, name in config.sub_account_map().items()}
    value_map = config.tag_value_map()
    by_account = _lookup(_account_key(sub_account), account_map)
    by_tags = []
    if tags is not None:
        by_tags = [_lookup(_tag_value(tags, key).strip().lower(), value_map)
                   for key in dict.fromkeys(k.lower() for k in config.tag_keys)]  # fmt: skip
    return ibis.coalesce(by_account, *by_tags, ibis.literal(UNALLOCATED))


_AZURE_SUBSCRIPTION_PREFIX = "/subscriptions/"


def _account_key_text(account: str) -> str:
    account = account.strip().lower()
    return account.removeprefix(_AZURE_SUBSCRIPTION_PREFIX)


def _account_key(account: ir.StringValue) -> ir.StringValue:
    return account.strip().lower().re_replace("^/subscriptions/", "")


# -- expressions ------------------------------------------------------------------------------


def spend_by_department_expr(
    charges: ibis.Table,
    config: Config,
    start: date,
    end: date,
    *,
    basis: CostBasis = "effective",
    grain: Grain = "month",
    ai_only: bool = False,
) -> ibis.Table:
    """The expression behind :func:`spend_by_department`, over any ibis ``charges`` table."""
    _check_grain(grain)
    _check_range(start, end)
    t = _with_cost(_select_for_grain(charges, start, end, grain), basis)
    if ai_only:
        t = _ai_only(classify(t, rules_for(config)))
    t = _with_period(with_department(t, config), grain)
    return (
        t.group_by("period", "department")
        .aggregate(cost=_._cost.sum())
        .order_by("period", ibis.desc("cost"), "department")
    )


def spend_by_provider_service_expr(
    charges: ibis.Table,
    start: date,
    end: date,
    *,
    basis: CostBasis = "effective",
    ai_only: bool = False,
    config: Config | None = None,
) -> ibis.Table:
    """The expression behind :func:`spend_by_provider_service` (``config``: its workload rules)."""
    _check_range(start, end)
    t = _with_cost(_billed_between(charges, start, end), basis)
    if ai_only:
        t = _ai_only(classify(t, rules_for(config)))
    per_service = t.group_by(provider=t.ProviderName, service=t.ServiceName).aggregate(cost=_._cost.sum())
    return per_service.mutate(share=_share(_.cost, _.cost.sum().over())).order_by(
        ibis.desc("cost"), "provider", "service"
    )


def workload_split_expr(
    charges: ibis.Table,
    start: date,
    end: date,
    *,
    basis: CostBasis = "effective",
    grain: Grain = "month",
    config: Config | None = None,
) -> ibis.Table:
    """The expression behind :func:`workload_split` (``config``: its workload rules come first)."""
    _check_grain(grain)
    _check_range(start, end)
    selected = _with_cost(_select_for_grain(charges, start, end, grain), basis)
    t = _with_period(classify(selected, rules_for(config)), grain)
    per_workload = t.group_by("period", "workload").aggregate(cost=_._cost.sum())
    return per_workload.order_by("period", _workload_rank(per_workload.workload))


def daily_spend_expr(
    charges: ibis.Table,
    start: date,
    end: date,
    *,
    basis: CostBasis = "effective",
    by: SpendBy = "workload",
    config: Config | None = None,
) -> ibis.Table:
    """The expression behind :func:`daily_spend`."""
    _check_range(start, end)
    t = _with_cost(_charged_between(charges, start, end), basis)
    if by == "workload":
        t = classify(t, rules_for(config))
    elif by == "department":
        if config is None:
            raise AnalysisError("daily spend by department needs the configuration", hint="pass config=")
        t = with_department(t, config)
    elif by == "provider":
        t = t.mutate(provider=t.ProviderName)
    else:
        raise AnalysisError(f"cannot split daily spend by {by!r}", hint=f"use one of: {', '.join(SPEND_BYS)}")
    per_day = t.group_by(date=t.ChargePeriodStart.date(), **{by: t[by]}).aggregate(cost=_._cost.sum())
    return per_day.order_by("date", by)


def daily_scope_spend_expr(
    charges: ibis.Table, start: date, end: date, *, basis: CostBasis, config: Config, departments: list[str]
) -> ibis.Table:
    """Daily spend of ``departments`` in [start, end) by ``department``, ``provider`` and ``model`` (both lower case).

    The grain budgets are scoped at (:mod:`finops.analyses.budgets`): one scan of the charges
    serves every budget, however many, instead of one scan per budget. ``model`` is ``x_Model``
    where the bill names one, else ``SkuMeter`` (OpenAI and Anthropic FOCUS lines name the
    model there).
    """
    _check_range(start, end)
    t = with_department(_with_cost(_charged_between(charges, start, end), basis), config)
    t = t.filter(t.department.isin(departments))
    return t.group_by(
        date=t.ChargePeriodStart.date(),
        department=t.department,
        provider=t.ProviderName.lower(),
        model=t.x_Model.coalesce(t.SkuMeter).lower(),
    ).aggregate(cost=_._cost.sum())


def quarter_summary_expr(
    charges: ibis.Table, config: Config, quarter: Quarter, *, basis: CostBasis = "effective"
) -> ibis.Table:
    """The expression behind :func:`quarter_summary` (plus ``charge_rows``, the quarter's row count)."""
    previous, year_ago = quarter.previous(), quarter.year_ago()
    relevant = charges.filter(
        _in_quarter(charges, quarter) | _in_quarter(charges, previous) | _in_quarter(charges, year_ago)
    )
    t = with_department(classify(_with_cost(relevant, basis), rules_for(config)), config)
    in_q, in_prev, in_year_ago, ai = (
        _in_quarter(t, quarter),
        _in_quarter(t, previous),
        _in_quarter(t, year_ago),
        is_ai(t),
    )
    totals = t.aggregate(
        charge_rows=line_count(t, in_q),
        total_cost=t._cost.sum(where=in_q),
        ai_cost=t._cost.sum(where=in_q & ai),
        previous_rows=line_count(t, in_prev),
        previous_ai_cost=t._cost.sum(where=in_prev & ai),
        year_ago_rows=line_count(t, in_year_ago),
        year_ago_ai_cost=t._cost.sum(where=in_year_ago & ai),
        inference_cost=t._cost.sum(where=in_q & (t.workload == "inference")),
        training_cost=t._cost.sum(where=in_q & (t.workload == "training")),
    )
    departments = (
        t.filter(in_q & ai & (t.department != UNALLOCATED))
        .group_by("department")
        .aggregate(cost=_._cost.sum())
        .filter(_.cost != 0)
        .aggregate(departments=_.count())
    )
    row = totals.cross_join(departments)
    ai_cost = row.ai_cost.coalesce(_zero())
    # A quarter with no rows at all is "unknown", not zero: no comparison is made with it.
    previous_ai = ibis.ifelse(row.previous_rows > 0, row.previous_ai_cost.coalesce(_zero()), ibis.null(MONEY))
    year_ago_ai = ibis.ifelse(row.year_ago_rows > 0, row.year_ago_ai_cost.coalesce(_zero()), ibis.null(MONEY))
    inference = row.inference_cost.coalesce(_zero())
    training = row.training_cost.coalesce(_zero())
    return row.select(
        quarter=ibis.literal(quarter.label),
        total_cost=row.total_cost.coalesce(_zero()),
        ai_cost=ai_cost,
        previous_ai_cost=previous_ai,
        ai_change_pct=_change_pct(ai_cost, previous_ai),
        year_ago_ai_cost=year_ago_ai,
        ai_change_yoy_pct=_change_pct(ai_cost, year_ago_ai),
        inference_cost=inference,
        inference_share=_share(inference, ai_cost),
        training_cost=training,
        training_share=_share(training, ai_cost),
        departments=row.departments,
        charge_rows=row.charge_rows,
    )


def top_departments_expr(
    charges: ibis.Table, config: Config, quarter: Quarter, *, n: int = 5, basis: CostBasis = "effective"
) -> ibis.Table:
    """The expression behind :func:`top_departments`."""
    if n < 1:
        raise AnalysisError(f"top_departments needs n >= 1, got {n}")
    previous = quarter.previous()
    relevant = charges.filter(_in_quarter(charges, quarter) | _in_quarter(charges, previous))
    t = with_department(classify(_with_cost(relevant, basis), rules_for(config)), config)
    in_q, in_prev = _in_quarter(t, quarter), _in_quarter(t, previous)
    previous_known = t.aggregate(previous_rows=line_count(t, in_prev))
    per_department = (
        _ai_only(t)
        .group_by("department")
        .aggregate(ai_cost=_._cost.sum(where=in_q), previous_ai_cost=_._cost.sum(where=in_prev))
        .mutate(ai_cost=_.ai_cost.coalesce(_zero()), previous_ai_cost=_.previous_ai_cost.coalesce(_zero()))
        .filter(_.ai_cost != 0)
    )
    ranked = per_department.cross_join(previous_known).mutate(
        share=_share(_.ai_cost, _.ai_cost.sum().over()),
        previous_ai_cost=ibis.ifelse(_.previous_rows > 0, _.previous_ai_cost, ibis.null(MONEY)),
    )
    return (
        ranked.mutate(change_pct=_change_pct(_.ai_cost, _.previous_ai_cost))
        .order_by(ibis.desc("ai_cost"), "department")
        .limit(n)
        .select("department", "ai_cost", "share", "previous_ai_cost", "change_pct")
    )


def monthly_bill_expr(charges: ibis.Table, start: date, end: date) -> ibis.Table:
    """The expression behind :func:`monthly_bill`."""
    _check_range(start, end)
    t = _billed_between(charges, start, end)
    return (
        t.group_by(
            billing_period=t.BillingPeriodStart.truncate("M").date(),
            provider=t.ProviderName,
            currency=t.BillingCurrency,
        )
        .aggregate(
            rows=line_count(t),
            billed_cost=_.BilledCost.sum(),
            effective_cost=_.EffectiveCost.sum(),
            list_cost=_.ListCost.sum(),
        )
        .order_by("billing_period", "provider", "currency")
    )


def data_freshness_expr(charges: ibis.Table, batches: ibis.Table, quarantine: ibis.Table) -> ibis.Table:
    """The expression behind :func:`data_freshness`, over ``charges``, ``ingest_batches`` and ``quarantine``."""
    succeeded = batches.filter(batches.status == "succeeded")
    loads = succeeded.select(load_batch_id=succeeded.batch_id, loaded_at=succeeded.ended_at)
    loaded = charges.left_join(loads, charges.x_BatchId == loads.load_batch_id)
    no_time = ibis.null(charges.BillingPeriodStart.type())
    from_charges = loaded.group_by(source=loaded.x_Source, provider=loaded.ProviderName).aggregate(
        rows=_.count(),
        first_billing_period=_.BillingPeriodStart.min(),
        last_billing_period=_.BillingPeriodStart.max(),
        last_charge_end=_.ChargePeriodEnd.max(),
        last_loaded_at=_.loaded_at.max(),
        quarantined_rows=ibis.literal(0, type=dt.int64),
    )
    # A quarantined row never reached `charges`: its provider is read from the raw row, if it has one.
    rejected = quarantine.join(succeeded, quarantine.batch_id == succeeded.batch_id)
    # The cast is a no-op on DuckDB (JSON already); Spark reads the exported JSON column as text.
    raw_provider = rejected.raw_row.cast(dt.json)["ProviderName"].str
    from_quarantine = rejected.group_by(source=rejected.source_kind, provider=raw_provider).aggregate(
        rows=ibis.literal(0, type=dt.int64),
        first_billing_period=no_time,
        last_billing_period=no_time,
        last_charge_end=ibis.null(charges.ChargePeriodEnd.type()),
        last_loaded_at=_.ended_at.max(),
        quarantined_rows=_.count(),
    )
    both = from_charges.union(from_quarantine, distinct=False)
    return (
        both.group_by("source", "provider")
        .aggregate(
            rows=_.rows.sum(),
            first_billing_period=_.first_billing_period.min().date(),
            last_billing_period=_.last_billing_period.max().date(),
            last_charge_end=_.last_charge_end.max(),
            last_loaded_at=_.last_loaded_at.max(),
            quarantined_rows=_.quarantined_rows.sum(),
        )
        .order_by("source", "provider")
    )


# -- public functions ---------------------------------------------------------------------------


def spend_by_department(
    wh: Warehouse,
    config: Config,
    start: date,
    end: date,
    *,
    basis: CostBasis = "effective",
    grain: Grain = "month",
    ai_only: bool = False,
) -> pl.DataFrame:
    """Spend per department and period: the chargeback table.

    Parameters
    ----------
    wh
        The warehouse.
    config
        Departments, their sub accounts and tag values (see :func:`with_department`).
    start, end
        The periods to include, ``end`` exclusive: billing months starting in the range
        for ``grain="month"``/``"quarter"``, charge days for ``grain="day"``.
    basis
        ``"effective"`` (amortized, for chargeback) or ``"billed"`` (as invoiced).
    grain
        ``"month"`` (invoice month), ``"quarter"`` or ``"day"`` (ChargePeriodStart's date).
    ai_only
        Only AI spend (workload other than non-AI).

    Returns
    -------
    pl.DataFrame
        ``period`` (date: first day of the month/quarter, or the day), ``department``
        (Unallocated for spend no rule assigns), ``cost`` (Decimal). Sorted by period, then
        largest cost first.

    Why
    ---
    Department owners are asked to own their spend; monthly totals by invoice month add up
    to the invoices, so the chargeback and the bill never disagree.
    """
    with wh.ibis() as con:
        expr = spend_by_department_expr(
            charges_table(con, config), config, start, end, basis=basis, grain=grain, ai_only=ai_only
        )
        return expr.to_polars()


@cache.per_warehouse_state
def spend_by_provider_service(
    wh: Warehouse,
    start: date,
    end: date,
    *,
    basis: CostBasis = "effective",
    ai_only: bool = False,
    config: Config | None = None,
) -> pl.DataFrame:
    """Spend per provider and service over billing months in [start, end), largest first.

    Parameters
    ----------
    wh
        The warehouse.
    start, end
        Billing months starting in this range (``end`` exclusive).
    basis
        ``"effective"`` or ``"billed"``.
    ai_only
        Only AI spend.
    config
        The finops.toml, whose ``[[workload_rules]]`` are tried before the default rules
        (optional: without it only :data:`finops.analyses.classify.RULES` classify).

    Returns
    -------
    pl.DataFrame
        ``provider``, ``service``, ``cost`` (Decimal), ``share`` (float, fraction of the
        total of all rows returned; NULL if that total is zero).

    Why
    ---
    Shows where the money goes before asking who spent it: a few services usually carry
    most of the bill.
    """
    with wh.ibis() as con:
        expr = spend_by_provider_service_expr(
            charges_table(con, config), start, end, basis=basis, ai_only=ai_only, config=config
        )
        return expr.to_polars()


@cache.per_warehouse_state
def workload_split(
    wh: Warehouse,
    start: date,
    end: date,
    *,
    basis: CostBasis = "effective",
    grain: Grain = "month",
    config: Config | None = None,
) -> pl.DataFrame:
    """Spend per period and workload class (inference, training, development, other AI, non-AI).

    Parameters
    ----------
    wh
        The warehouse.
    start, end
        Periods to include, ``end`` exclusive (billing months, or charge days for ``grain="day"``).
    basis
        ``"effective"`` or ``"billed"``.
    grain
        ``"month"``, ``"quarter"`` or ``"day"``.
    config
        The finops.toml, whose ``[[workload_rules]]`` are tried before the default rules
        (optional: without it only :data:`finops.analyses.classify.RULES` classify).

    Returns
    -------
    pl.DataFrame
        ``period`` (date), ``workload``, ``cost`` (Decimal), in :data:`finops.analyses.classify.WORKLOADS`
        order within each period. Non-AI spend is included: filter it out for an AI-only chart.

    Why
    ---
    Inference grows with users, training with ambition: the split tells a CFO which lever
    moves the AI bill.
    """
    with wh.ibis() as con:
        expr = workload_split_expr(charges_table(con, config), start, end, basis=basis, grain=grain, config=config)
        return expr.to_polars()


@cache.per_warehouse_state
def daily_spend(
    wh: Warehouse,
    start: date,
    end: date,
    *,
    basis: CostBasis = "effective",
    by: SpendBy = "workload",
    config: Config | None = None,
) -> pl.DataFrame:
    """Spend per day (ChargePeriodStart's UTC date), split by workload, department or provider.

    Parameters
    ----------
    wh
        The warehouse.
    start, end
        Days to include, ``end`` exclusive, selected on ChargePeriodStart.
    basis
        ``"effective"`` or ``"billed"``.
    by
        ``"workload"``, ``"department"`` (needs ``config``) or ``"provider"``.
    config
        Needed when ``by="department"``.

    Returns
    -------
    pl.DataFrame
        ``date``, the ``by`` column, ``cost`` (Decimal), sorted by date.

    Why
    ---
    Spikes show by the day, long before the monthly invoice: a forgotten endpoint or a
    runaway training job.
    """
    with wh.ibis() as con:
        expr = daily_spend_expr(charges_table(con, config), start, end, basis=basis, by=by, config=config)
        return expr.to_polars()


@cache.per_warehouse_state
def quarter_summary(wh: Warehouse, config: Config, quarter: Quarter, *, basis: CostBasis = "effective") -> pl.DataFrame:
    """The quarter's headline numbers, in one row: the first screen of the quarterly review.

    Parameters
    ----------
    wh
        The warehouse.
    config
        Departments (to count those with AI spend).
    quarter
        The :class:`~finops.periods.Quarter`. Selected by billing
        month (BillingPeriodStart), so totals match the quarter's invoices.
    basis
        ``"effective"`` or ``"billed"``.

    Returns
    -------
    pl.DataFrame
        One row: ``quarter`` (label), ``total_cost`` (all cloud spend), ``ai_cost``,
        ``previous_ai_cost`` and ``year_ago_ai_cost`` (NULL when the warehouse has no
        charges at all for that quarter, 0 when it has charges but no AI),
        ``ai_change_pct`` and ``ai_change_yoy_pct`` (percent; NULL without a non-zero
        comparison), ``inference_cost``, ``inference_share``, ``training_cost``,
        ``training_share`` (fractions of ``ai_cost``), ``departments`` (configured
        departments with non-zero AI spend; Unallocated is not counted). Money is Decimal.

    Raises
    ------
    AnalysisError
        The warehouse has no charges for the quarter: a summary of nothing would read as
        zero spend.

    Why
    ---
    One row that the narrative, the charts' captions and the tests all read, so the
    review states each number once.
    """
    with wh.ibis() as con:
        row = quarter_summary_expr(charges_table(con, config), config, quarter, basis=basis).to_polars()
    if row["charge_rows"][0] == 0:
        raise AnalysisError(
            f"no charges billed in {quarter} (billing periods {quarter.start} to {quarter.end}) in warehouse {wh.path}",
            hint="load that quarter's bills, or choose a quarter the warehouse holds",
        )
    return row.drop("charge_rows")


@cache.per_warehouse_state
def top_departments(
    wh: Warehouse, config: Config, quarter: Quarter, *, n: int = 5, basis: CostBasis = "effective"
) -> pl.DataFrame:
    """The departments with the most AI spend in a quarter, with their change from the quarter before.

    Parameters
    ----------
    wh
        The warehouse.
    config
        Departments, sub accounts and tag values.
    quarter
        The :class:`~finops.periods.Quarter` (by billing month).
    n
        How many departments to return at most.
    basis
        ``"effective"`` or ``"billed"``.

    Returns
    -------
    pl.DataFrame
        ``department``, ``ai_cost`` (Decimal), ``share`` (fraction of the quarter's AI
        spend over all departments, not only those returned), ``previous_ai_cost``
        (Decimal; NULL when the warehouse has no charges for the previous quarter),
        ``change_pct`` (percent; NULL when the previous cost is NULL or zero). Largest
        first; departments without AI spend this quarter are left out. Unallocated is
        ranked like a department, so untagged AI spend is seen.

    Why
    ---
    The review names who drives AI spend and how fast it grows, so the conversation starts
    with the right owners.
    """
    with wh.ibis() as con:
        return top_departments_expr(charges_table(con, config), config, quarter, n=n, basis=basis).to_polars()


def monthly_bill(wh: Warehouse, start: date, end: date) -> pl.DataFrame:
    """The invoice view: billed, effective and list cost per billing month, provider and currency.

    Parameters
    ----------
    wh
        The warehouse.
    start, end
        Billing months starting in this range (``end`` exclusive).

    Returns
    -------
    pl.DataFrame
        ``billing_period`` (date), ``provider``, ``currency``, ``rows``, ``billed_cost``,
        ``effective_cost``, ``list_cost`` (Decimal; NULL where no row has that cost).

    Why
    ---
    Reconciliation: billed cost per month must equal the provider's invoice before anyone
    trusts a chargeback; effective and list cost beside it show amortization and discounts.
    """
    with wh.ibis() as con:
        return monthly_bill_expr(charges_table(con), start, end).to_polars()


@cache.per_warehouse_state
def data_freshness(wh: Warehouse) -> pl.DataFrame:
    """What the warehouse holds per source and provider, and when it was last loaded.

    Parameters
    ----------
    wh
        The warehouse.

    Returns
    -------
    pl.DataFrame
        ``source`` (x_Source), ``provider`` (ProviderName), ``rows``,
        ``first_billing_period``/``last_billing_period`` (dates), ``last_charge_end``
        (latest ChargePeriodEnd: how far the data reaches), ``last_loaded_at`` (end time of
        the latest succeeded load of these rows, UTC), ``quarantined_rows`` (rows that
        succeeded loads of this source rejected; their provider is read from the raw row,
        NULL when it cannot be).

    Why
    ---
    A report is only as current as its oldest source: this table says which bills are
    stale or incomplete before anyone reads a number.
    """
    with wh.ibis() as con:
        expr = data_freshness_expr(con.table("charges"), con.table("ingest_batches"), con.table("quarantine"))
        return expr.to_polars()


def classification_coverage_expr(
    charges: ibis.Table, config: Config, start: date, end: date, *, basis: CostBasis | None = None
) -> ibis.Table:
    """The expression behind :func:`classification_coverage`."""
    _check_range(start, end)
    t = _with_cost(_billed_between(charges, start, end), basis or config.basis)
    t = _ai_only(classify(t, rules_for(config)))
    fallback = is_fallback_rule(t.workload_rule)
    per_source = t.group_by("x_Source").aggregate(
        ai_cost=t._cost.sum(),
        specific_cost=t._cost.sum(where=~fallback).coalesce(_zero()),
        fallback_cost=t._cost.sum(where=fallback).coalesce(_zero()),
        fallback_rules=t.workload_rule.collect(where=fallback, distinct=True).sort(),
    )
    # None fired: NULL on every engine (Spark's collect_set gives [] where DuckDB gives NULL).
    rules = per_source.fallback_rules
    return per_source.mutate(
        fallback_rules=ibis.ifelse(rules.length() > 0, rules, ibis.null(rules.type())),
        specific_share=_share(per_source.specific_cost, per_source.ai_cost),
        fallback_share=_share(per_source.fallback_cost, per_source.ai_cost),
    ).order_by("x_Source")


@cache.per_warehouse_state
def classification_coverage(
    wh: Warehouse, config: Config, start: date, end: date, *, basis: CostBasis | None = None
) -> pl.DataFrame:
    """How much AI spend a specific rule classified, and how much a fallback, per source.

    Parameters
    ----------
    wh
        The warehouse.
    config
        The finops.toml: its ``[[workload_rules]]`` come first, its basis is the default.
    start, end
        Billing months starting in this range (``end`` exclusive).
    basis
        ``"effective"`` or ``"billed"``; the config's basis when omitted.

    Returns
    -------
    pl.DataFrame
        One row per ``x_Source`` with AI spend: ``ai_cost``, ``specific_cost`` and
        ``fallback_cost`` (Decimal, summing exactly to ``ai_cost``), ``fallback_rules`` (the
        fallback rule ids that fired), ``specific_share`` and ``fallback_share`` (floats of
        ``ai_cost``; NULL when it is zero). A fallback is a rule of
        :func:`finops.analyses.classify.is_fallback_rule`.

    Why
    ---
    A workload split is only as good as its rules: the fallback share says how much of it is
    a guess, and per source where a ``[[workload_rules]]`` entry would pay off most.
    """
    with wh.ibis() as con:
        return classification_coverage_expr(charges_table(con, config), config, start, end, basis=basis).to_polars()
