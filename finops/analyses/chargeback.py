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
import ibis.expr.types as ir
import polars as pl

from finops.analyses.classify import accelerator_instance, drop_rule_inputs, rule_inputs, search
from finops.analyses.reconcile import BILLED_PROVIDER_SQL, GATEWAY_PROVIDER_SQL
from finops.analyses.spend import _check_basis, _lookup, with_department
from finops.analyses.usage import SOURCE_PRIORITY
from finops.config import UNALLOCATED, ChargeMatch, Config, CostBasis
from finops.exceptions import AnalysisError, ConfigError
from finops.periods import Quarter
from finops.warehouse import Warehouse
from finops.warehouse.keys import base_model_sql, model_key_sql

_FRACTION = "DECIMAL(18, 12)"
_MONEY = "DECIMAL(38, 10)"


# -- who made a gateway call -------------------------------------------------------------------


def with_request_department(requests: ibis.Table, config: Config) -> ibis.Table:
    """Add ``department`` to gateway/API calls (``llm_requests``): who made each call.

    In order, first hit wins (compared without case): ``team`` is one of a department's
    ``gateway_teams`` or ``tag_values`` (a LiteLLM team alias is usually the team tag's
    word); ``project_id`` is one of its ``gateway_projects`` or ``sub_accounts`` (an OpenAI
    project, an Anthropic workspace); ``api_key_id`` is one of its ``api_keys``; else
    :data:`~finops.config.UNALLOCATED`.
    """
    department = ibis.coalesce(
        _lookup(requests.team.strip().lower(), config.gateway_team_map()),
        _lookup(requests.project_id.strip().lower(), config.gateway_project_map()),
        _lookup(requests.api_key_id.strip().lower(), config.api_key_map()),
        ibis.literal(UNALLOCATED),
    )
    return requests.mutate(department=department)


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


def _charge_lines(con, config: Config, start: date, end: date, basis: CostBasis) -> str:
    """SQL of the billing months' charges with cost, owner, pool, allocation rule and GPU hours."""
    charges = con.table("charges")
    low = ibis.timestamp(start.isoformat())
    high = ibis.timestamp(end.isoformat())
    t = charges.filter((charges.BillingPeriodStart >= low) & (charges.BillingPeriodStart < high))
    t = with_department(t, config)
    staged, inputs = rule_inputs(t)
    pools = [
        (_match_predicate(staged, inputs, pool.match, _where(config, f"shared_costs {pool.name!r}", pool.line)), pool.name)
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
    gpu_hours = ibis.cases(
        (accelerator_instance(inputs) & hours_unit, staged.ConsumedQuantity.cast("float64")), else_=0.0
    )
    cost = staged.EffectiveCost if basis == "effective" else staged.BilledCost
    lines = drop_rule_inputs(
        staged.mutate(
            month=staged.BillingPeriodStart.date(),
            cost=cost.fill_null(0),
            pool=pool,
            rule_id=rule_id,
            rule_department=rule_department,
            gpu_hours=gpu_hours,
        )
    ).select(
        "month", "ProviderName", "ServiceName", "x_Model", "x_UsageType", "ChargeDescription",
        "department", "pool", "rule_id", "rule_department", "gpu_hours", "cost",
    )  # fmt: skip
    return ibis.to_sql(lines, dialect="duckdb")


def _request_lines(con, config: Config, start: date, end: date) -> str:
    """SQL of the months' gateway/API calls with their department (every source)."""
    requests = con.table("llm_requests")
    low = ibis.timestamp(start.isoformat())
    high = ibis.timestamp(end.isoformat())
    t = with_request_department(requests.filter((requests.period_start >= low) & (requests.period_start < high)), config)
    t = t.select(
        month=t.period_start.truncate("M").date(),
        source=t.x_Source,
        provider=t.provider,
        model=t.model,
        department=t.department,
        tokens=t.input_tokens.fill_null(0) + t.output_tokens.fill_null(0),
    )
    return ibis.to_sql(t, dialect="duckdb")


def _split_sql(source: str, keys: str) -> str:
    """SQL: the rows of ``source`` (``amount`` to split, ``department``, ``weight`` > 0) with
    ``amount`` replaced by the department's part. Parts of one ``keys`` group add up to its
    amount exactly: the department with the largest weight takes the sub-cent residue."""
    return f"""
        SELECT * EXCLUDE (part, rn, amount),
            CASE WHEN rn = 1 THEN amount - (sum(part) OVER k - part) ELSE part END AS amount
        FROM (
            SELECT *,
                CAST(amount * CAST(CAST(weight AS DOUBLE) / sum(CAST(weight AS DOUBLE)) OVER k AS {_FRACTION})
                     AS {_MONEY}) AS part,
                row_number() OVER (PARTITION BY {keys} ORDER BY weight DESC, department) AS rn
            FROM {source}
            WINDOW k AS (PARTITION BY {keys})
        )
        WINDOW k AS (PARTITION BY {keys})"""


def _largest_remainder_sql(source: str, value: str, keys: str, order: str) -> str:
    """SQL: ``source`` plus ``{value}_cents``: ``value`` rounded to the cent so that, per ``keys``
    group, the rounded values add up to the group's exact total rounded to the cent.

    Each value is rounded down; the cents still missing go, one each, to the largest remainders
    (ties by ``order``). Written with floor division so a (theoretical) surplus is taken back
    from the smallest remainders instead.
    """
    return f"""
        SELECT * EXCLUDE (_floor, _missing, _rank, _n),
            CAST(_floor + 0.01 * (floor(_missing / _n) + CASE WHEN _rank <= _missing - _n * floor(_missing / _n)
                                                               THEN 1 ELSE 0 END) AS DECIMAL(38, 2)) AS {value}_cents
        FROM (
            SELECT *,
                CAST(round(sum({value}) OVER g, 2) * 100 - sum(_floor) OVER g * 100 AS BIGINT) AS _missing,
                row_number() OVER (PARTITION BY {keys} ORDER BY {value} - _floor DESC, {order}) AS _rank,
                count(*) OVER g AS _n
            FROM (SELECT *, floor({value} * 100) / 100 AS _floor FROM ({source}))
            WINDOW g AS (PARTITION BY {keys})
        )"""


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def _receivers_sql(config: Config) -> str:
    """SQL rows (pool, split, department, fixed_weight) of who shares each pool."""
    rows = []
    names = config.department_names
    for pool in config.shared_costs:
        if pool.split == "fixed":
            members = [(dept, str(percent)) for dept, percent in pool.shares]
        else:
            members = [(dept, None) for dept in (pool.departments or names)]
        rows += [f"({_literal(pool.name)}, {_literal(pool.split)}, {_literal(dept)}, {w or 'NULL'})" for dept, w in members]
    if not rows:
        return "SELECT NULL::VARCHAR AS pool, NULL::VARCHAR AS split, NULL::VARCHAR AS department, NULL::DOUBLE AS fixed_weight WHERE false"
    return f"SELECT * FROM (VALUES {', '.join(rows)}) AS r(pool, split, department, fixed_weight)"


def one_source_per_provider_sql(source: str = "x_Source", time: str = "period_start") -> str:
    """SQL: a QUALIFY clause keeping, over `llm_requests` rows, one source per provider (as
    billed) and month: the first of :data:`finops.analyses.usage.SOURCE_PRIORITY` present. ``source`` and
    ``time`` name the rows' source and timestamp columns; ``provider`` must be a column too."""
    cases = " ".join(f"WHEN {_literal(s)} THEN {i}" for i, s in enumerate(SOURCE_PRIORITY))
    rank = f"(CASE {source} {cases} ELSE {len(SOURCE_PRIORITY)} END)"
    return f"QUALIFY {rank} = min({rank}) OVER (PARTITION BY date_trunc('month', {time}), {GATEWAY_PROVIDER_SQL})"


def _allocations_sql(lines: str, requests: str, config: Config) -> str:
    """SQL of every allocation: month, provider, service, department, kind, pool, method, amount."""
    unallocated = _literal(UNALLOCATED)
    return f"""
    WITH lines AS ({lines}),
    lines_k AS (
        SELECT *, {BILLED_PROVIDER_SQL} AS family, {bill_model_key_sql('x_Model')} AS model_key FROM lines
    ),
    requests AS ({requests}),
    usage AS (
        SELECT month, family, model_key, department, sum(tokens) AS tokens
        FROM (
            SELECT month, department, tokens, {GATEWAY_PROVIDER_SQL} AS family, {bill_model_key_sql('model')} AS model_key
            FROM requests
            {one_source_per_provider_sql('source', 'month')}
        )
        GROUP BY ALL
    ),
    owned AS (
        SELECT DISTINCT month, family, model_key, department FROM lines_k
        WHERE pool IS NULL AND department <> {unallocated} AND family IS NOT NULL AND model_key IS NOT NULL
    ),
    model_weights AS (
        SELECT month, family, model_key, department, weight
        FROM (
            SELECT u.month, u.family, u.model_key, u.department, u.tokens AS weight,
                (o.department IS NULL OR u.department = {unallocated}) AS unbilled
            FROM usage AS u LEFT JOIN owned AS o
                ON o.month = u.month AND o.family = u.family AND o.model_key = u.model_key AND o.department = u.department
            WHERE u.tokens > 0 AND u.model_key IS NOT NULL
        )
        QUALIFY unbilled OR NOT bool_or(unbilled) OVER (PARTITION BY month, family, model_key)
    ),
    provider_weights AS (
        SELECT month, family, department, sum(tokens) AS weight FROM usage GROUP BY ALL HAVING sum(tokens) > 0
    ),
    unowned AS (
        SELECT month, ProviderName, ServiceName, family, model_key, sum(cost) AS amount FROM lines_k
        WHERE pool IS NULL AND department = {unallocated} AND family IS NOT NULL
        GROUP BY ALL
    ),
    gateway_input AS (
        SELECT u.*, w.department, w.weight, 'gateway tokens of the model' AS method
        FROM unowned AS u JOIN model_weights AS w
            ON w.month = u.month AND w.family = u.family AND w.model_key = u.model_key
        UNION ALL
        SELECT u.*, w.department, w.weight, 'gateway tokens of the provider' AS method
        FROM unowned AS u JOIN provider_weights AS w ON w.month = u.month AND w.family = u.family
        WHERE NOT EXISTS (
            SELECT 1 FROM model_weights AS m
            WHERE m.month = u.month AND m.family = u.family AND m.model_key IS NOT DISTINCT FROM u.model_key
        )
    ),
    gateway AS ({_split_sql('gateway_input', 'month, ProviderName, ServiceName, family, model_key')}),
    direct AS (
        SELECT month, ProviderName, ServiceName, department, 'account or tag' AS method, sum(cost) AS amount
        FROM lines_k WHERE pool IS NULL AND department <> {unallocated}
        GROUP BY ALL
        UNION ALL
        SELECT month, ProviderName, ServiceName, department, method, amount FROM gateway
        UNION ALL
        SELECT month, ProviderName, ServiceName, coalesce(rule_department, {unallocated}) AS department,
            CASE WHEN rule_id IS NULL THEN 'no match' ELSE 'allocation rule ' || rule_id END AS method,
            sum(cost) AS amount
        FROM lines_k AS l
        WHERE pool IS NULL AND department = {unallocated} AND NOT EXISTS (
            SELECT 1 FROM gateway_input AS g
            WHERE g.month = l.month AND g.ProviderName IS NOT DISTINCT FROM l.ProviderName
              AND g.ServiceName IS NOT DISTINCT FROM l.ServiceName AND g.family = l.family
              AND g.model_key IS NOT DISTINCT FROM l.model_key
        )
        GROUP BY ALL
    ),
    pooled AS (
        SELECT month, ProviderName, ServiceName, pool, sum(cost) AS amount FROM lines_k
        WHERE pool IS NOT NULL GROUP BY ALL
    ),
    receivers AS ({_receivers_sql(config)}),
    direct_totals AS (
        SELECT month, department, sum(amount) AS total FROM direct WHERE department <> {unallocated} GROUP BY ALL
    ),
    token_totals AS (SELECT month, department, sum(tokens) AS tokens FROM usage GROUP BY ALL),
    gpu_totals AS (
        SELECT month, CASE WHEN department <> {unallocated} THEN department ELSE rule_department END AS department,
            sum(gpu_hours) AS hours
        FROM lines_k WHERE pool IS NULL GROUP BY ALL
    ),
    pool_weights AS (
        SELECT m.month, r.pool, r.split, r.department,
            CASE r.split WHEN 'even' THEN 1.0
                         WHEN 'fixed' THEN r.fixed_weight
                         WHEN 'proportional' THEN greatest(CAST(coalesce(d.total, 0) AS DOUBLE), 0)
                         WHEN 'tokens' THEN CAST(coalesce(t.tokens, 0) AS DOUBLE)
                         WHEN 'gpu_hours' THEN coalesce(g.hours, 0) END AS weight
        FROM (SELECT DISTINCT month, pool FROM pooled) AS m
        JOIN receivers AS r ON r.pool = m.pool
        LEFT JOIN direct_totals AS d ON d.month = m.month AND d.department = r.department
        LEFT JOIN token_totals AS t ON t.month = m.month AND t.department = r.department
        LEFT JOIN gpu_totals AS g ON g.month = m.month AND g.department = r.department
    ),
    pool_input AS (
        SELECT p.*, w.department, w.weight, w.split FROM pooled AS p
        JOIN pool_weights AS w ON w.month = p.month AND w.pool = p.pool
        WHERE w.weight > 0
    ),
    shared AS ({_split_sql('pool_input', 'month, ProviderName, ServiceName, pool')})
    SELECT month, ProviderName AS provider, ServiceName AS service, department, 'direct' AS kind,
        NULL::VARCHAR AS pool, method, amount
    FROM direct
    UNION ALL
    SELECT month, ProviderName, ServiceName, department, 'shared', pool, split, amount FROM shared
    UNION ALL
    SELECT month, ProviderName, ServiceName, {unallocated}, 'shared', pool,
        'no weights for ' || (SELECT any_value(split) FROM receivers AS r WHERE r.pool = p.pool) || ' this month',
        amount
    FROM pooled AS p
    WHERE NOT EXISTS (SELECT 1 FROM pool_input AS i WHERE i.month = p.month AND i.pool = p.pool)
    """


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


def _allocations_query(
    wh: Warehouse,
    config: Config,
    quarter: Quarter | None,
    basis: CostBasis | None,
    start: date | None,
    end: date | None,
) -> str:
    """The SQL of :func:`allocations` for the chosen billing months and basis."""
    low, high = _months(quarter, start, end)
    chosen = _basis(config, basis)
    with wh.ibis() as con:
        lines, requests = _charge_lines(con, config, low, high, chosen), _request_lines(con, config, low, high)
    return _allocations_sql(lines, requests, config)


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
    sql = _allocations_query(wh, config, quarter, basis, start, end)
    return wh.query(f"SELECT * FROM ({sql}) ORDER BY month, department, kind, pool NULLS FIRST, provider, service, method")


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
    sql = _allocations_query(wh, config, quarter, basis, start, end)
    per_department = f"""
        SELECT month, department,
            coalesce(sum(amount) FILTER (WHERE kind = 'direct'), 0) AS direct, sum(amount) AS total
        FROM ({sql}) GROUP BY ALL"""
    rounded = _largest_remainder_sql(
        _largest_remainder_sql(per_department, "total", "month", "department"), "direct", "month", "department"
    )
    return wh.query(
        f"""
        SELECT department, strftime(month, '%Y-%m') AS month, direct_cents AS direct_cost,
            total_cents - direct_cents AS shared_cost, total_cents AS total_cost
        FROM ({rounded})
        ORDER BY month, department = {_literal(UNALLOCATED)}, total_cost DESC, department
        """
    )


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
    sql = _allocations_query(wh, config, quarter, basis, start, end)
    unallocated = _literal(UNALLOCATED)
    per_side = f"""
        SELECT month, provider, department = {unallocated} AS is_unallocated, sum(amount) AS amount
        FROM ({sql}) GROUP BY ALL
        UNION ALL  -- both sides of every provider month, so each gets its cents
        SELECT DISTINCT month, provider, NOT (department = {unallocated}), CAST(0 AS {_MONEY}) FROM ({sql})"""
    summed = f"SELECT month, provider, is_unallocated, sum(amount) AS amount FROM ({per_side}) GROUP BY ALL"
    bills = f"""
        SELECT CAST(BillingPeriodStart AS DATE) AS month, ProviderName AS provider,
            round(sum({'EffectiveCost' if basis == 'effective' else 'BilledCost'}), 2) AS invoice_total
        FROM charges WHERE BillingPeriodStart >= ? AND BillingPeriodStart < ? GROUP BY ALL"""
    rounded = _largest_remainder_sql(summed, "amount", "month, provider", "is_unallocated")
    return wh.query(
        f"""
        SELECT r.provider, strftime(r.month, '%Y-%m') AS month, b.invoice_total,
            sum(amount_cents) FILTER (WHERE NOT is_unallocated) AS departments,
            sum(amount_cents) FILTER (WHERE is_unallocated) AS unallocated,
            b.invoice_total - sum(amount_cents) AS difference
        FROM ({rounded}) AS r
        LEFT JOIN ({bills}) AS b ON b.month = r.month AND b.provider IS NOT DISTINCT FROM r.provider
        GROUP BY r.provider, r.month, b.invoice_total
        ORDER BY r.month, r.provider
        """,
        [low, high],
    )


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
            for c in ("direct_cost", "shared_cost", "total_cost", "previous_quarter_total", "placed_by_gateway",
                      "previous_placed_by_gateway")
        },  # fmt: skip
    )
    direct = (
        mine.filter(pl.col("kind") == "direct")
        .group_by("provider", "service", "method")
        .agg(cost=pl.col("amount").sum())
        .with_columns(pl.col("cost").round(2).cast(pl.Decimal(38, 2)))
        .sort("cost", descending=True)
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
        .sort("cost", descending=True)
    )
    usage = gateway_usage(wh, config, quarter, department=department)
    return DepartmentStatement(department, quarter, basis, months, totals, direct, shared, usage)


def _placed_by_gateway(rows: pl.DataFrame) -> Decimal:
    """What gateway token counts placed on a department (model invoices with no team), to the cent."""
    placed = rows.filter(pl.col("method").str.starts_with("gateway tokens"))["amount"].sum()
    return Decimal(placed or 0).quantize(Decimal("0.01"))


def gateway_usage(wh: Warehouse, config: Config, quarter: Quarter, *, department: str | None = None) -> pl.DataFrame:
    """Gateway and model-API calls of ``quarter`` by department, provider and model.

    One source per provider and month (:data:`SOURCE_PRIORITY`), so calls a gateway and a
    usage API both saw count once. Columns: department, provider, model, requests,
    input_tokens, output_tokens, cost (DECIMAL; NULL parts of unpriced calls are left out),
    unpriced_requests.
    """
    with wh.ibis() as con:
        requests = con.table("llm_requests")
        low, high = ibis.timestamp(quarter.start.isoformat()), ibis.timestamp(quarter.end.isoformat())
        t = with_request_department(requests.filter((requests.period_start >= low) & (requests.period_start < high)), config)
        sql = ibis.to_sql(t, dialect="duckdb")
    return wh.query(
        f"""
        SELECT department, provider, model, CAST(sum(coalesce(requests, 1)) AS BIGINT) AS requests,
            CAST(sum(input_tokens) AS BIGINT) AS input_tokens, CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
            sum(cost) AS cost, count(*) FILTER (WHERE cost IS NULL) AS unpriced_requests
        FROM (
            SELECT * FROM ({sql})
            {one_source_per_provider_sql()}
        )
        WHERE CAST(? AS VARCHAR) IS NULL OR department = ?
        GROUP BY ALL
        ORDER BY department, cost DESC NULLS LAST, provider, model
        """,
        [department, department],
    )


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
                / pl.col("previous_total_cost").cast(pl.Float64) * 100
            ).round(1),
        )
        .sort(pl.col("department") == UNALLOCATED, pl.col("total_cost"), descending=[False, True])
        .select("department", *money, "share", "previous_total_cost", "change_pct")
    )
