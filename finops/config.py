"""finops.toml: the one configuration file, validated when it is loaded.

The file maps who pays for what. Every key is documented in the sample ``finops.toml`` at
the top of the repository. A mistake is reported with the file, line and key, e.g.::

    finops.toml:14: departments[2].sub_accounts: expected a list of strings, got 123456

Sections (later versions add more; unknown keys are errors, so typos never pass silently):

``[company]``
    ``name`` (shown in reports), ``currency`` (the billing currency reports expect, "USD").
``[allocation]``
    ``basis``: ``"effective"`` (amortized, the default) or ``"billed"``;
    ``tag_keys``: tag keys that name a department, tried in order; matched in any case.
``[[departments]]`` (one table per department)
    ``name``; ``sub_accounts``: SubAccountId values (AWS account, GCP project, Azure
    subscription) whose whole spend is the department's; ``tag_values``: values of the
    ``tag_keys`` tags that mean this department (matched in any case); ``owner`` (optional).
``[[workload_rules]]`` (one table per rule, tried in file order before the default rules)
    ``id`` (recorded as ``user.<id>`` in ``workload_rule``); ``workload``: inference, training,
    development, other AI or non-AI; ``description`` (optional); match keys ``provider``,
    ``service``, ``sku``, ``usage_type``, ``resource`` and ``tags`` (a table of tag key →
    pattern), at least one. Each pattern is a case-insensitive regular expression searched
    anywhere in the text (anchor with ``^``/``$``); a rule matches when all its keys match.
    Patterns use the syntax DuckDB (RE2) and Python share, without backslashes: write ``[.]``
    for a dot; look-arounds and back-references are rejected.
``[[sources]]`` (one table per source, run in file order by ``finops run``)
    ``kind`` (a ``finops ingest`` subcommand), ``uri`` or ``uris`` (its arguments),
    ``name`` (optional), ``options`` (its options; see :data:`SOURCE_OPTIONS`). Secrets are
    never in the file: ``*_env`` options name environment variables.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from finops.exceptions import ConfigError

DEFAULT_PATH = Path("finops.toml")
ENV_PATH = "FINOPS_CONFIG"
UNALLOCATED = "Unallocated"

CostBasis = Literal["effective", "billed"]
COST_BASES: tuple[CostBasis, ...] = ("effective", "billed")

DEFAULT_TAG_KEYS = ("team", "department", "dept", "cost-center", "cost_center", "costcenter", "owner-team")


@dataclasses.dataclass(frozen=True)
class Department:
    name: str
    sub_accounts: tuple[str, ...] = ()
    tag_values: tuple[str, ...] = ()
    owner: str | None = None
    # Gateway traffic (llm_requests): team ids/aliases, gateway project ids, API key ids or aliases.
    gateway_teams: tuple[str, ...] = ()
    gateway_projects: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = ()


RULE_MATCH_KEYS = ("provider", "service", "sku", "usage_type", "resource", "tags")
"""Match keys of a ``[[workload_rules]]`` table (see :func:`finops.analyses.classify.rules_from_config`)."""

WORKLOAD_VALUES = ("inference", "training", "development", "other AI", "non-AI")
"""The classes a rule may name; the same as :data:`finops.analyses.classify.WORKLOADS`."""


@dataclasses.dataclass(frozen=True)
class WorkloadRuleSpec:
    """A user's classification rule from finops.toml, validated but not yet an ibis predicate.

    Patterns are case-insensitive regular expressions; ``None`` means "any". ``tags`` is a tuple
    of (tag key, value pattern). Kept free of ibis so that loading the config stays cheap.
    """

    id: str
    workload: str
    description: str = ""
    provider: str | None = None
    service: str | None = None
    sku: str | None = None
    usage_type: str | None = None
    resource: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    line: int | None = None  # where it is in finops.toml, for messages


CHARGE_MATCH_KEYS = ("provider", "service", "sku", "usage_type", "resource", "sub_account", "charge_category", "tags", "columns")
"""Match keys of ``[[shared_costs]]`` and ``[[allocation_rules]]``: the workload rules' keys plus
``sub_account`` (SubAccountId and SubAccountName), ``charge_category`` and ``columns`` (a table
of any `charges` column = pattern)."""


@dataclasses.dataclass(frozen=True)
class ChargeMatch:
    """Which charges a pool or an allocation rule takes: every key set must match (AND).

    Each value is a case-insensitive regular expression; ``tags`` and ``columns`` are tuples of
    (tag key or column name, pattern).
    """

    provider: str | None = None
    service: str | None = None
    sku: str | None = None
    usage_type: str | None = None
    resource: str | None = None
    sub_account: str | None = None
    charge_category: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    columns: tuple[tuple[str, str], ...] = ()


SPLIT_RULES = ("even", "proportional", "fixed", "tokens", "gpu_hours")
"""How a shared-cost pool is divided between departments (see finops/analyses/chargeback.py)."""


@dataclasses.dataclass(frozen=True)
class SharedCostPool:
    """A ``[[shared_costs]]`` table: charges that many departments use, split by ``split``."""

    name: str
    split: str
    match: ChargeMatch
    departments: tuple[str, ...] = ()  # who shares it; empty = every department
    shares: tuple[tuple[str, Decimal], ...] = ()  # split = "fixed": department → percent (sum 100)
    description: str = ""
    line: int | None = None


@dataclasses.dataclass(frozen=True)
class AllocationRule:
    """A ``[[allocation_rules]]`` table (a virtual tag): charges it matches go to ``department``."""

    id: str
    department: str
    match: ChargeMatch
    description: str = ""
    line: int | None = None


ENGINES = ("duckdb", "spark")
EngineName = Literal["duckdb", "spark"]
DEFAULT_SPARK_DATA = "data/export"
SPARK_TABLE_FORMATS = ("parquet", "delta")


@dataclasses.dataclass(frozen=True)
class SparkTable:
    """A ``[spark_tables]`` entry: read warehouse table ``table`` from ``path`` (Parquet or Delta) on Spark."""

    table: str
    path: str
    format: str = "parquet"


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated finops.toml."""

    path: Path | None = None
    company_name: str = "Our company"
    currency: str = "USD"
    basis: CostBasis = "effective"
    tag_keys: tuple[str, ...] = DEFAULT_TAG_KEYS
    departments: tuple[Department, ...] = ()
    workload_rules: tuple[WorkloadRuleSpec, ...] = ()
    shared_costs: tuple[SharedCostPool, ...] = ()
    allocation_rules: tuple[AllocationRule, ...] = ()
    # Filled by _budgets (finops/analyses/budgets.py reads them): [[budgets]] and [budget_alerts].
    budgets: tuple[Any, ...] = ()
    budget_alerts: Any = None
    # Filled by _self_hosted: [[self_hosted]] models served from our own GPUs (unit economics).
    self_hosted: tuple[Any, ...] = ()
    # Filled by _sources: [[sources]], what `finops run` ingests (finops/ingest/sources.py).
    sources: tuple[Source, ...] = ()
    # Which engine runs the analyses (finops/warehouse/engine.py): the DuckDB file or Spark over an export.
    engine: EngineName = "duckdb"
    spark_remote: str = "local[*]"
    spark_data: str = DEFAULT_SPARK_DATA
    spark_tables: tuple[SparkTable, ...] = ()

    @property
    def department_names(self) -> list[str]:
        return [d.name for d in self.departments]

    def department(self, name: str) -> Department | None:
        """The department called ``name``, or None (Unallocated is not a department)."""
        return next((d for d in self.departments if d.name == name), None)

    def sub_account_map(self) -> dict[str, str]:
        """SubAccountId → department name."""
        return {acct: d.name for d in self.departments for acct in d.sub_accounts}

    def tag_value_map(self) -> dict[str, str]:
        """Lower-cased tag value → department name."""
        return {value.lower(): d.name for d in self.departments for value in d.tag_values}

    def gateway_team_map(self) -> dict[str, str]:
        """Lower-cased gateway team id or alias → department: ``gateway_teams``, then ``tag_values``
        (a LiteLLM team alias is usually the same word as the team tag)."""
        return {**self.tag_value_map(), **{t.lower(): d.name for d in self.departments for t in d.gateway_teams}}

    def gateway_project_map(self) -> dict[str, str]:
        """Lower-cased gateway/API project id → department: ``gateway_projects`` and ``sub_accounts``
        (OpenAI projects and Anthropic workspaces are sub accounts of their invoices)."""
        accounts = {a.lower(): d.name for d in self.departments for a in d.sub_accounts}
        return {**accounts, **{p.lower(): d.name for d in self.departments for p in d.gateway_projects}}

    def api_key_map(self) -> dict[str, str]:
        """Lower-cased API key id or alias → department."""
        return {k.lower(): d.name for d in self.departments for k in d.api_keys}


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file: the argument, else ``$FINOPS_CONFIG``, else ``./finops.toml``."""
    if path:
        return Path(path)
    env = os.environ.get(ENV_PATH)
    return Path(env) if env else DEFAULT_PATH


def load_config(path: str | os.PathLike[str] | None = None, *, required: bool = False) -> Config:
    """Read and validate a finops.toml. A missing default file gives an empty config.

    ``required`` makes a missing file an error (used when the user named the file).
    """
    resolved = resolve_path(path)
    if not resolved.exists():
        if required or path or os.environ.get(ENV_PATH):
            raise ConfigError(f"config file {resolved} not found", hint="pass --config PATH or create finops.toml")
        return Config()
    text = resolved.read_text(encoding="utf-8")
    return parse_config(text, resolved)


def parse_config(text: str, path: Path | None = None) -> Config:
    """Validate the TOML ``text`` and build a :class:`Config`."""
    where = str(path) if path else "<config>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    v = _Validator(text, where)
    v.keys(
        raw,
        (),
        {
            "company", "allocation", "departments", "workload_rules", "shared_costs", "allocation_rules",
            "budgets", "budget_alerts", "self_hosted", "sources",
            "engine", "spark_remote", "spark_data", "spark_tables",
        },  # fmt: skip
    )

    company = v.table(raw, ("company",))
    v.keys(company, ("company",), {"name", "currency"})
    allocation = v.table(raw, ("allocation",))
    v.keys(allocation, ("allocation",), {"basis", "tag_keys"})

    basis = v.string(allocation, ("allocation", "basis"), default="effective")
    if basis not in COST_BASES:
        v.fail(("allocation", "basis"), f"must be one of {', '.join(COST_BASES)}, got {basis!r}")

    departments: list[Department] = []
    seen_names: dict[str, int] = {}
    seen_accounts: dict[str, str] = {}
    seen_values: dict[str, str] = {}
    dept_list = raw.get("departments", [])
    if not isinstance(dept_list, list):
        v.fail(("departments",), "must be an array of tables: write each as [[departments]]")
    for i, dept in enumerate(dept_list):
        at = ("departments", i)
        if not isinstance(dept, dict):
            v.fail(at, "must be a table with name, sub_accounts, tag_values")
        v.keys(dept, at, {"name", "sub_accounts", "tag_values", "owner", "gateway_teams", "gateway_projects", "api_keys"})
        name = v.string(dept, (*at, "name"), required=True)
        if name.lower() == UNALLOCATED.lower():
            v.fail((*at, "name"), f"{UNALLOCATED!r} is reserved for spend that matches no department")
        if name in seen_names:
            v.fail((*at, "name"), f"department {name!r} is defined twice (also departments[{seen_names[name]}])")
        seen_names[name] = i
        accounts = v.strings(dept, (*at, "sub_accounts"))
        for acct in accounts:
            if acct in seen_accounts:
                v.fail((*at, "sub_accounts"), f"sub account {acct!r} is already mapped to {seen_accounts[acct]!r}")
            seen_accounts[acct] = name
        values = v.strings(dept, (*at, "tag_values"))
        for value in values:
            if value.lower() in seen_values:
                v.fail((*at, "tag_values"), f"tag value {value!r} is already mapped to {seen_values[value.lower()]!r}")
            seen_values[value.lower()] = name
        owner = v.string(dept, (*at, "owner"), default=None)
        gateway = {key: tuple(v.strings(dept, (*at, key))) for key in ("gateway_teams", "gateway_projects", "api_keys")}
        departments.append(Department(name, tuple(accounts), tuple(values), owner, **gateway))

    names = [d.name for d in departments]
    return Config(
        path=path,
        company_name=v.string(company, ("company", "name"), default="Our company"),
        currency=v.string(company, ("company", "currency"), default="USD"),
        basis=basis,  # type: ignore[arg-type]
        tag_keys=tuple(v.strings(allocation, ("allocation", "tag_keys"), default=list(DEFAULT_TAG_KEYS))),
        departments=tuple(departments),
        workload_rules=_workload_rules(raw, v),
        shared_costs=_shared_costs(raw, v, names),
        allocation_rules=_allocation_rules(raw, v, names),
        budgets=_budgets(raw, v),
        budget_alerts=_budget_alerts(raw, v),
        self_hosted=_self_hosted(raw, v),
        sources=_sources(raw, v),
        **_engine(raw, v),
    )


# -- engine (finops/warehouse/engine.py) -------------------------------------------------------------------

def _engine(raw: dict[str, Any], v: _Validator) -> dict[str, Any]:
    """The top-level engine keys: ``engine``, ``spark_remote``, ``spark_data`` and ``[spark_tables]``."""
    engine = v.string(raw, ("engine",), default="duckdb")
    if engine not in ENGINES:
        v.fail(("engine",), f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    remote = v.string(raw, ("spark_remote",), default="local[*]")
    if not (remote.startswith("sc://") or re.fullmatch(r"local(\[(\*|\d+)\])?", remote)):
        v.fail(("spark_remote",), f'expected a Spark Connect URL like "sc://host:15002" or "local[*]", got {remote!r}')
    tables: list[SparkTable] = []
    spark_tables = v.table(raw, ("spark_tables",))
    for name, value in spark_tables.items():
        at = ("spark_tables", name)
        if isinstance(value, str):
            value = {"path": value}
        if not isinstance(value, dict):
            v.fail(at, f'expected a path or {{ path = "...", format = "delta" }}, got {value!r}')
        v.keys(value, at, {"path", "format"})
        fmt = v.string(value, (*at, "format"), default="parquet")
        if fmt not in SPARK_TABLE_FORMATS:
            v.fail((*at, "format"), f"must be one of {', '.join(SPARK_TABLE_FORMATS)}, got {fmt!r}")
        tables.append(SparkTable(name, v.string(value, (*at, "path"), required=True), fmt))
    return {
        "engine": engine,
        "spark_remote": remote,
        "spark_data": v.string(raw, ("spark_data",), default=DEFAULT_SPARK_DATA),
        "spark_tables": tuple(tables),
    }


# -- chargeback (finops/analyses/chargeback.py) ---------------------------------------------------------


def _charge_match(v: _Validator, table: dict[str, Any], at: Path_) -> ChargeMatch:
    """The match keys of a pool or an allocation rule (at least one)."""
    pairs: dict[str, tuple[tuple[str, str], ...]] = {}
    for key in ("tags", "columns"):
        if key in table:
            sub = table[key]
            if not isinstance(sub, dict) or not sub:
                v.fail((*at, key), f"expected a table of name = pattern, got {sub!r}")
            pairs[key] = tuple((name, _pattern(v, sub, (*at, key, name)) or "") for name in sub)
    patterns = {key: _pattern(v, table, (*at, key)) for key in CHARGE_MATCH_KEYS if key not in ("tags", "columns")}
    if not pairs and all(p is None for p in patterns.values()):
        v.fail(at, f"needs at least one match key ({', '.join(CHARGE_MATCH_KEYS)})")
    return ChargeMatch(**patterns, **pairs)


def _check_department(v: _Validator, name: str, path: Path_, names: list[str]) -> str:
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (departments: {', '.join(names) or 'none'})"
        v.fail(path, f"unknown department {name!r}{hint}")
    return name


def _array_of_tables(raw: dict[str, Any], v: _Validator, key: str) -> list[Any]:
    items = raw.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        v.fail((key,), f"must be an array of tables: write each as [[{key}]]")
    return items


def _shared_costs(raw: dict[str, Any], v: _Validator, names: list[str]) -> tuple[SharedCostPool, ...]:
    """The ``[[shared_costs]]`` pools, checked key by key: a pool that silently matched nothing
    would leave its cost on whoever owns the account, and the statement would look right."""
    pools: list[SharedCostPool] = []
    seen: set[str] = set()
    for i, pool in enumerate(_array_of_tables(raw, v, "shared_costs")):
        at: Path_ = ("shared_costs", i)
        v.keys(pool, at, {"name", "split", "departments", "shares", "description", *CHARGE_MATCH_KEYS})
        name = v.string(pool, (*at, "name"), required=True)
        if name in seen:
            v.fail((*at, "name"), f"pool {name!r} is defined twice")
        seen.add(name)
        split = v.string(pool, (*at, "split"), required=True)
        if split not in SPLIT_RULES:
            close = difflib.get_close_matches(split, SPLIT_RULES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            v.fail((*at, "split"), f"must be one of {', '.join(SPLIT_RULES)}, got {split!r}{hint}")
        receivers = v.strings(pool, (*at, "departments"))
        for dept in receivers:
            _check_department(v, dept, (*at, "departments"), names)
        shares: list[tuple[str, Decimal]] = []
        if split == "fixed":
            table = pool.get("shares")
            if not isinstance(table, dict) or not table:
                v.fail((*at, "shares"), 'split = "fixed" needs shares = { "Department" = percent, … } summing to 100')
            for dept, percent in table.items():
                _check_department(v, dept, (*at, "shares", dept), names)
                if isinstance(percent, bool) or not isinstance(percent, int | float | str):
                    v.fail((*at, "shares", dept), f"expected a percentage, got {percent!r}")
                try:
                    value = Decimal(str(percent))
                except ArithmeticError:
                    v.fail((*at, "shares", dept), f"expected a percentage, got {percent!r}")
                if not value.is_finite() or value < 0:
                    v.fail((*at, "shares", dept), f"expected a percentage ≥ 0, got {percent!r}")
                shares.append((dept, value))
            total = sum((value for _, value in shares), Decimal(0))
            if total != 100:
                v.fail((*at, "shares"), f"percentages must sum to 100, they sum to {total}")
        elif "shares" in pool:
            v.fail((*at, "shares"), f'shares is for split = "fixed", this pool splits by {split!r}')
        pools.append(
            SharedCostPool(
                name=name,
                split=split,
                match=_charge_match(v, pool, at),
                departments=tuple(receivers),
                shares=tuple(shares),
                description=v.string(pool, (*at, "description"), default=""),
                line=_line_of(v.lines, at),
            )
        )
    return tuple(pools)


def _allocation_rules(raw: dict[str, Any], v: _Validator, names: list[str]) -> tuple[AllocationRule, ...]:
    """The ``[[allocation_rules]]`` (virtual tags), in file order."""
    rules: list[AllocationRule] = []
    seen: set[str] = set()
    for i, rule in enumerate(_array_of_tables(raw, v, "allocation_rules")):
        at: Path_ = ("allocation_rules", i)
        v.keys(rule, at, {"id", "department", "description", *CHARGE_MATCH_KEYS})
        rule_id = v.string(rule, (*at, "id"), required=True)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", rule_id):
            v.fail((*at, "id"), f"use letters, digits, '.', '-' and '_' only, got {rule_id!r}")
        if rule_id in seen:
            v.fail((*at, "id"), f"rule id {rule_id!r} is used twice")
        seen.add(rule_id)
        rules.append(
            AllocationRule(
                id=rule_id,
                department=_check_department(v, v.string(rule, (*at, "department"), required=True), (*at, "department"), names),
                match=_charge_match(v, rule, at),
                description=v.string(rule, (*at, "description"), default=""),
                line=_line_of(v.lines, at),
            )
        )
    return tuple(rules)


# -- budgets (finops/analyses/budgets.py) ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Budget:
    """A ``[[budgets]]`` table: what a department may spend in a quarter (USD, exact).

    ``provider`` (matched with ProviderName) and ``model`` (matched with x_Model, else
    SkuMeter; ``*`` is a wildcard) narrow it to part of the department's spend.
    """

    department: str
    quarter: str  # normalised label, e.g. "2026Q3"
    amount: Decimal
    provider: str | None = None
    model: str | None = None
    line: int | None = None


@dataclasses.dataclass(frozen=True)
class BudgetAlerts:
    """``[budget_alerts]``: spent-to-date thresholds (fractions of the budget) and the forecast alert."""

    thresholds: tuple[Decimal, ...] = (Decimal("0.8"), Decimal("1"))
    forecast_over_budget: bool = True


_QUARTER_TEXT = re.compile(r"^\s*(\d{4})\s*[-/ ]?\s*[Qq]([1-4])\s*$")


def _amount(v: _Validator, value: Any, path: Path_) -> Decimal:
    """An exact, positive amount from a TOML string or number (floats read through ``str``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        v.fail(path, f"expected an amount (a number or a string like \"12500.00\"), got {value!r}")
    try:
        amount = Decimal(str(value).replace(",", "").replace("_", "").strip())
    except ArithmeticError:
        amount = None
    if amount is None or not amount.is_finite():
        v.fail(path, f"not an amount: {value!r}")
    if amount <= 0:  # type: ignore[operator]
        v.fail(path, f"must be positive, got {value!r}")
    return amount  # type: ignore[return-value]


def _budgets(raw: dict[str, Any], v: _Validator) -> tuple[Budget, ...]:
    """The ``[[budgets]]`` tables (why validated here: a budget for a misspelt department would
    silently track nothing and never alert)."""
    budget_list = raw.get("budgets", [])
    if not isinstance(budget_list, list):
        v.fail(("budgets",), "must be an array of tables: write each as [[budgets]]")
    departments = [d.get("name") for d in raw.get("departments", []) if isinstance(d, dict)]
    budgets: list[Budget] = []
    seen: dict[tuple[str, str, str | None, str | None], int] = {}
    for i, table in enumerate(budget_list):
        at: Path_ = ("budgets", i)
        if not isinstance(table, dict):
            v.fail(at, "must be a table with department, quarter and amount")
        v.keys(table, at, {"department", "quarter", "amount", "provider", "model"})
        department = v.string(table, (*at, "department"), required=True)
        if department not in departments:
            close = difflib.get_close_matches(department, [str(d) for d in departments], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (departments: {', '.join(map(str, departments))})"
            v.fail((*at, "department"), f"unknown department {department!r}{hint}")
        text = v.string(table, (*at, "quarter"), required=True)
        match = _QUARTER_TEXT.match(text)
        if not match:
            v.fail((*at, "quarter"), f"expected a quarter like \"2026Q3\", got {text!r}")
        quarter = f"{match[1]}Q{match[2]}"  # type: ignore[index]
        if "amount" not in table:
            v.fail((*at, "amount"), "is required")
        amount = _amount(v, table["amount"], (*at, "amount"))
        provider = v.string(table, (*at, "provider"), default=None)
        model = v.string(table, (*at, "model"), default=None)
        key = (department, quarter, provider and provider.lower(), model and model.lower())
        if key in seen:
            v.fail(at, f"a budget for {department} {quarter} with the same scope is already budgets[{seen[key]}]")
        seen[key] = i
        budgets.append(Budget(department, quarter, amount, provider, model, line=_line_of(v.lines, at)))
    return tuple(budgets)


def _budget_alerts(raw: dict[str, Any], v: _Validator) -> BudgetAlerts:
    """``[budget_alerts]``, or the defaults (80% and 100% spent, forecast over budget)."""
    table = v.table(raw, ("budget_alerts",))
    v.keys(table, ("budget_alerts",), {"thresholds", "forecast_over_budget"})
    defaults = BudgetAlerts()
    thresholds = defaults.thresholds
    if "thresholds" in table:
        value = table["thresholds"]
        path: Path_ = ("budget_alerts", "thresholds")
        if not isinstance(value, list) or not value:
            v.fail(path, f"expected a list of fractions of the budget like [0.8, 1.0], got {value!r}")
        thresholds = tuple(sorted({_amount(v, x, path) for x in value}))
        if thresholds[-1] > 10:
            v.fail(path, f"thresholds are fractions of the budget (0.8 = 80%), got {value!r}")
    forecast = table.get("forecast_over_budget", defaults.forecast_over_budget)
    if not isinstance(forecast, bool):
        v.fail(("budget_alerts", "forecast_over_budget"), f"expected true or false, got {forecast!r}")
    return BudgetAlerts(thresholds, forecast)


# -- self-hosted models (unit economics) ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SelfHostedModel:
    """A model we serve from our own GPUs (``[[self_hosted]]``): its tokens and its GPU charges.

    ``model`` is the name in `llm_requests`.model (compared in any case); ``resource`` a
    case-insensitive pattern searched in the charges' ResourceId and ResourceName (the
    endpoint, instance or cluster serving it); ``provider`` (optional) limits the model's
    requests to that `llm_requests`.provider when the name alone is ambiguous.
    """

    model: str
    resource: str
    provider: str | None = None
    line: int | None = None


def _self_hosted(raw: dict[str, Any], v: _Validator) -> tuple[SelfHostedModel, ...]:
    """The ``[[self_hosted]]`` tables (why checked: a resource pattern that matches nothing
    would show a model as free, and a model served twice would be counted twice)."""
    entries = raw.get("self_hosted", [])
    if not isinstance(entries, list):
        v.fail(("self_hosted",), "must be an array of tables: write each as [[self_hosted]]")
    models: list[SelfHostedModel] = []
    seen: dict[tuple[str, str | None], int] = {}
    for i, entry in enumerate(entries):
        at: Path_ = ("self_hosted", i)
        if not isinstance(entry, dict):
            v.fail(at, "must be a table with model and resource")
        v.keys(entry, at, {"model", "resource", "provider"})
        model = v.string(entry, (*at, "model"), required=True)
        if "resource" not in entry:
            v.fail((*at, "resource"), "is required")
        resource = _pattern(v, entry, (*at, "resource"))
        provider = v.string(entry, (*at, "provider"), default=None)
        key = (model.strip().lower(), provider.strip().lower() if provider else None)
        if key in seen:
            v.fail((*at, "model"), f"model {model!r} is listed twice (also self_hosted[{seen[key]}])")
        seen[key] = i
        models.append(SelfHostedModel(model.strip(), resource or "", provider, _line_of(v.lines, at)))
    return tuple(models)


# Regex syntax RE2 (DuckDB) does not run or that differs between engines: back-references,
# look-arounds and every backslash escape (write [.] instead of \. and [0-9] instead of \d).
_UNPORTABLE_REGEX = re.compile(r"\\|\(\?<?[=!]")


def _pattern(v: _Validator, table: dict[str, Any], path: Path_) -> str | None:
    """A validated case-insensitive pattern at ``path``, or None when the key is absent."""
    if path[-1] not in table:
        return None
    value = v.string(table, path)
    if _UNPORTABLE_REGEX.search(value):
        v.fail(path, f"pattern {value!r} uses a backslash or a look-around: write [.] for a dot, [0-9] for a digit")
    try:
        re.compile(value)
    except re.error as exc:
        v.fail(path, f"not a valid regular expression {value!r}: {exc}")
    return value


def _workload_rules(raw: dict[str, Any], v: _Validator) -> tuple[WorkloadRuleSpec, ...]:
    """The ``[[workload_rules]]`` tables, checked key by key (why: a typo in a rule would
    otherwise silently classify nothing, and the report would look right)."""
    rule_list = raw.get("workload_rules", [])
    if not isinstance(rule_list, list):
        v.fail(("workload_rules",), "must be an array of tables: write each as [[workload_rules]]")
    rules: list[WorkloadRuleSpec] = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(rule_list):
        at: Path_ = ("workload_rules", i)
        if not isinstance(rule, dict):
            v.fail(at, "must be a table with id, workload and match keys")
        v.keys(rule, at, {"id", "workload", "description", *RULE_MATCH_KEYS})
        rule_id = v.string(rule, (*at, "id"), required=True)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", rule_id):
            v.fail((*at, "id"), f"use letters, digits, '.', '-' and '_' only, got {rule_id!r}")
        if rule_id in seen:
            v.fail((*at, "id"), f"rule id {rule_id!r} is used twice (also workload_rules[{seen[rule_id]}])")
        seen[rule_id] = i
        workload = v.string(rule, (*at, "workload"), required=True)
        if workload not in WORKLOAD_VALUES:
            close = difflib.get_close_matches(workload, WORKLOAD_VALUES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            v.fail((*at, "workload"), f"must be one of {', '.join(WORKLOAD_VALUES)}, got {workload!r}{hint}")
        tags: list[tuple[str, str]] = []
        if "tags" in rule:
            tag_table = rule["tags"]
            if not isinstance(tag_table, dict) or not tag_table:
                v.fail((*at, "tags"), f"expected a table of tag key = pattern, got {tag_table!r}")
            for key in tag_table:
                pattern = _pattern(v, tag_table, (*at, "tags", key))
                tags.append((key, pattern or ""))
        patterns = {key: _pattern(v, rule, (*at, key)) for key in RULE_MATCH_KEYS if key != "tags"}
        if not tags and all(p is None for p in patterns.values()):
            v.fail(at, f"needs at least one match key ({', '.join(RULE_MATCH_KEYS)})")
        rules.append(
            WorkloadRuleSpec(
                id=rule_id,
                workload=workload,
                description=v.string(rule, (*at, "description"), default=""),
                tags=tuple(tags),
                line=_line_of(v.lines, at),
                **patterns,
            )
        )
    return tuple(rules)


# -- sources (finops/ingest/sources.py, `finops run`) ----------------------------------------------

SOURCE_URIS: dict[str, str] = {
    "focus": "many", "aws-cur": "many", "gcp-bigquery": "one", "gcp-export": "many", "gcp-catalog": "none",
    "azure": "many", "litellm": "one", "openai": "none", "anthropic": "none", "otel": "many", "langfuse": "many",
    "prices": "optional", "openai-usage-files": "many", "litellm-file": "many",
}  # fmt: skip
"""What ``uri``/``uris`` of a ``[[sources]]`` table is for each kind: the arguments of its
``finops ingest`` command. ``many``: one or more paths, globs or URLs; ``one``: exactly one (a
BigQuery table, a Postgres DSN); ``none``: the command takes no argument; ``optional``: zero or more."""

SOURCE_OPTIONS: dict[str, dict[str, str]] = {
    "focus": {},
    "aws-cur": {"period": "periods", "profile": "string", "endpoint_url": "string"},
    "gcp-bigquery": {"months": "months", "project": "string", "api_endpoint": "string", "anonymous": "bool"},
    "gcp-export": {},
    "gcp-catalog": {
        "services": "strings", "billing_account": "string", "currency": "string", "api_endpoint": "string",
        "anonymous": "bool",
    },
    "azure": {"connection_string_env": "env"},
    "litellm": {"password_env": "env", "since": "moment", "overlap": "duration", "page_size": "count"},
    "openai": {"start": "day", "end": "day", "api_key_env": "env", "base_url": "string"},
    "anthropic": {"start": "day", "end": "day", "api_key_env": "env", "base_url": "string"},
    "otel": {},
    "langfuse": {},
    "openai-usage-files": {"start": "day", "end": "day"},
    "litellm-file": {},
    "prices": {"format": "price_format"},
}  # fmt: skip
"""The ``options`` each kind accepts (the options of its ``finops ingest`` command, with ``_`` for
``-``) and their type; see :func:`_source_option` for what each type accepts."""

SOURCE_REQUIRED: dict[str, tuple[str, ...]] = {
    "gcp-bigquery": ("months",),
    "gcp-catalog": ("services",),
    "openai": ("start", "api_key_env"),
    "anthropic": ("start", "api_key_env"),
    "openai-usage-files": ("start", "end"),
}

# Keys that would put a secret in the file, and the option that names its variable instead.
_SECRET_KEYS = {
    "password": "password_env", "api_key": "api_key_env", "key": "api_key_env", "token": "api_key_env",
    "secret": "api_key_env", "connection_string": "connection_string_env", "sas": "connection_string_env",
}  # fmt: skip
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RELATIVE_TIME = re.compile(r"^\s*-\s*(\d+)\s*([hd])\s*$")  # "-7d", "-36h": before now (UTC)
DURATION_TEXT = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_MONTH = r"(\d{4}-?(0[1-9]|1[0-2])|0m|-\d+m)"  # 2026-07, 202607, or relative: 0m this month, -1m the one before
_MONTHS = re.compile(rf"^{_MONTH}(\s*\.\.\s*{_MONTH})?$")
_PERIOD = re.compile(r"^(\d{4}-(0[1-9]|1[0-2])|0m|-\d+m)$")


@dataclasses.dataclass(frozen=True)
class Source:
    """A ``[[sources]]`` table: what ``finops run`` ingests, as one ``finops ingest KIND`` call.

    ``uris`` are the command's arguments as written (relative paths are resolved against the
    config file's folder when the source runs); ``options`` its options as (name, value) pairs,
    validated: ``*_env`` values are names of environment variables, never the secrets.
    """

    kind: str
    uris: tuple[str, ...] = ()
    name: str = ""
    options: tuple[tuple[str, Any], ...] = ()
    line: int | None = None

    def option(self, key: str, default: Any = None) -> Any:
        """The value of option ``key``, or ``default`` when it is not set."""
        return next((value for name, value in self.options if name == key), default)


def _sources(raw: dict[str, Any], v: _Validator) -> tuple[Source, ...]:
    """The ``[[sources]]`` tables, in file order (why validated here: a typo in an option would
    otherwise surface at 3 a.m. in the scheduled run, or load the wrong thing silently)."""
    sources: list[Source] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(_array_of_tables(raw, v, "sources")):
        at: Path_ = ("sources", i)
        v.keys(table, at, {"kind", "uri", "uris", "name", "options"})
        kind = v.string(table, (*at, "kind"), required=True)
        if kind not in SOURCE_URIS:
            close = difflib.get_close_matches(kind, list(SOURCE_URIS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (kinds: {', '.join(SOURCE_URIS)})"
            v.fail((*at, "kind"), f"unknown kind {kind!r}{hint}")
        uris = _source_uris(v, table, at, kind)
        name = v.string(table, (*at, "name"), default=None) or (f"{kind} {uris[0]}" if uris else kind)
        if len(uris) > 1 and "name" not in table:
            name += f" (+{len(uris) - 1} more)"
        if name in seen:
            v.fail((*at, "name") if "name" in table else at,
                   f"two sources are named {name!r} (also sources[{seen[name]}]): give each a distinct name")  # fmt: skip
        seen[name] = i
        options = table.get("options", {})
        if not isinstance(options, dict):
            v.fail((*at, "options"), f"must be a table of option = value, got {type(options).__name__}")
        allowed = SOURCE_OPTIONS[kind]
        for key in options:
            if key in _SECRET_KEYS:
                _source_fail(v, i, key, f"secrets never go in finops.toml: set {_SECRET_KEYS[key]} to the name of the"
                                        " environment variable that holds it")  # fmt: skip
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                known = f"{kind} takes {', '.join(sorted(allowed))}" if allowed else f"{kind} takes no options"
                _source_fail(v, i, key, f"unknown option{f' (did you mean {close[0]!r}?)' if close else ''}; {known}")
        for key in SOURCE_REQUIRED.get(kind, ()):
            if key not in options:
                v.fail((*at, "options") if "options" in table else at, f"{kind} needs option {key!r}")
        values = tuple((key, _source_option(v, i, key, allowed[key], options[key])) for key in options)
        sources.append(Source(kind, uris, name, values, _line_of(v.lines, at)))
    return tuple(sources)


def _source_uris(v: _Validator, table: dict[str, Any], at: Path_, kind: str) -> tuple[str, ...]:
    """``uri`` (one string) or ``uris`` (a list), as the kind takes them; no secret in any."""
    if "uri" in table and "uris" in table:
        v.fail((*at, "uris"), "give uri or uris, not both")
    key = "uris" if "uris" in table else "uri"
    if key == "uris":
        uris = v.strings(table, (*at, "uris"))
    else:
        uris = [v.string(table, (*at, "uri"))] if "uri" in table else []
    shape = SOURCE_URIS[kind]
    if shape == "none" and uris:
        v.fail((*at, key), f"{kind} takes no uri: its settings are options")
    if shape in ("one", "many") and not uris:
        v.fail(at, f"{kind} needs uri" + (" (or uris)" if shape == "many" else ""))
    if shape == "one" and len(uris) > 1:
        v.fail((*at, key), f"{kind} takes exactly one uri, got {len(uris)}")
    for uri in uris:
        # The value is a secret: never repeat it in the message.
        if re.match(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", uri, re.IGNORECASE):
            v.fail((*at, key), "a uri must not hold a password: leave it out and set options.password_env")
        if re.search(r"[?&](sig|sv)=", uri, re.IGNORECASE):
            v.fail((*at, key), "a uri must not hold a SAS token: use az://ACCOUNT/CONTAINER/PATH and"
                               " options.connection_string_env")  # fmt: skip
    return tuple(uris)


def _source_fail(v: _Validator, index: int, key: str, message: str) -> None:
    """Fail at ``sources[index].options.KEY``, found as an inline table or a ``[sources.options]`` table."""
    line = _source_option_line(v.lines, index, key)
    loc = f"{v.where}:{line}" if line else v.where
    raise ConfigError(f"{loc}: sources[{index}].options.{key}: {message}")


def _source_option_line(lines: list[str], index: int, key: str) -> int | None:
    start = _find_header(lines, "sources", index)
    if start is None:
        return None
    # Either `options = { key = … }` inside the [[sources]] table, or a [sources.options] table under it.
    for n in range(start, len(lines)):
        match = _HEADER.match(lines[n])
        if match and match.group(2) == "sources":
            break
        if match and match.group(2) == "sources.options":
            return _find_key(lines, n + 1, key) or n + 1
        if re.match(r"^\s*options\s*=", lines[n]):
            return n + 1
    return start


def _source_option(v: _Validator, index: int, key: str, kind: str, value: Any) -> Any:
    """One option's value, checked and normalised by its type.

    ``string``: a non-empty string; ``strings``: a list of strings, or one comma-separated string;
    ``months``: YYYY-MM, a range YYYY-MM..YYYY-MM, or a list of them, where a month may be relative
    (``0m`` this month, ``-1m`` the one before, UTC); ``periods``: the same without ranges;
    ``bool``; ``count``: a positive
    integer; ``env``: the NAME of an environment variable (never its value, which is not repeated
    in errors); ``day``: a date (2026-07-01, quoted or not) or "-Nd" (N days before today, UTC);
    ``moment``: a date, a date-time, or "-Nd" / "-Nh" before now; ``duration``: "90s", "30m", "1h", "2d";
    ``price_format``: "litellm" or "csv".
    """

    from datetime import date, datetime

    def fail(message: str) -> None:
        _source_fail(v, index, key, message)

    def iso(parse: Any, text: str) -> Any:
        try:
            return parse(text.strip())
        except ValueError:
            return None

    if kind == "env":
        if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
            fail("expected the name of an environment variable (letters, digits, _), not its value")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            fail(f"expected true or false, got {value!r}")
        return value
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            fail(f"expected a positive whole number, got {value!r}")
        return value
    if kind in ("strings", "months", "periods"):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip() for x in items):
            fail(f"expected a string or a list of strings, got {value!r}")
        items = [x.strip() for x in items]
        if kind == "months":
            bad = [x for x in items if not _MONTHS.match(x)]
            if bad:
                fail(f"expected months like \"2026-07\", \"2026-01..2026-06\" or \"-2m..0m\", got {bad[0]!r}")
        if kind == "periods":
            bad = [x for x in items if not _PERIOD.match(x)]
            if bad:
                fail(f"expected billing periods like \"2026-07\" or \"-1m\" (last month), got {bad[0]!r}")
        return tuple(items)
    if kind == "day":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            relative = RELATIVE_TIME.match(value)
            if relative and relative[2] == "d":
                return value.strip()
            if (day := iso(date.fromisoformat, value)) is not None:
                return day
        fail(f"expected a date like 2026-07-01 or \"-35d\" (35 days before today), got {value!r}")
    if kind == "moment":
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            if RELATIVE_TIME.match(value):
                return value.strip()
            if (moment := iso(datetime.fromisoformat, value)) is not None:
                return moment
        fail(f"expected a date, a date-time or \"-3d\" / \"-36h\" (before now), got {value!r}")
    if kind == "duration":
        if not isinstance(value, str) or not DURATION_TEXT.match(value):
            fail(f"expected a duration like \"30m\", \"1h\" or \"2d\", got {value!r}")
        return value.strip()
    if kind == "price_format":
        if value not in ("litellm", "csv"):
            fail(f"must be \"litellm\" or \"csv\", got {value!r}")
        return value
    if not isinstance(value, str) or not value.strip():
        fail(f"expected a non-empty string, got {value!r}")
    return value


Path_ = tuple[str | int, ...]


class _Validator:
    """Type checks that raise ConfigError pointing at the offending line."""

    def __init__(self, text: str, where: str) -> None:
        self.lines = text.splitlines()
        self.where = where

    def fail(self, path: Path_, message: str) -> None:
        line = _line_of(self.lines, path)
        loc = f"{self.where}:{line}" if line else self.where
        raise ConfigError(f"{loc}: {_dotted(path)}: {message}")

    def keys(self, table: dict[str, Any], path: Path_, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(allowed))})"
                self.fail((*path, key), f"unknown key{hint}")

    def table(self, raw: dict[str, Any], path: Path_) -> dict[str, Any]:
        value = raw.get(path[-1], {})
        if not isinstance(value, dict):
            self.fail(path, f"must be a table, got {value!r}")
        return value

    def string(self, table: dict[str, Any], path: Path_, *, default: Any = "", required: bool = False) -> Any:
        key = path[-1]
        if key not in table:
            if required:
                self.fail(path, "is required")
            return default
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(path, f"expected a non-empty string, got {value!r}")
        return value

    def strings(self, table: dict[str, Any], path: Path_, *, default: list[str] | None = None) -> list[str]:
        key = path[-1]
        if key not in table:
            return list(default or [])
        value = table[key]
        if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
            self.fail(path, f"expected a list of strings, got {value!r}")
        return value


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")


def _line_of(lines: list[str], path: Path_) -> int | None:
    """1-based line of ``path`` (e.g. ('departments', 2, 'name')) in the TOML text, if found.

    Tracks table headers: the n-th ``[[departments]]`` is index n; a key is found as
    ``key =`` inside its table. Falls back to the table's header line.
    """
    table_parts = [p for p in path if isinstance(p, str)]
    index = next((p for p in path if isinstance(p, int)), None)
    key = path[-1] if isinstance(path[-1], str) else None
    table = table_parts[0] if len(table_parts) > 1 or index is not None else None
    if table is None:  # a top-level key or a table header
        header_line = _find_header(lines, path[0], None)
        if header_line:
            return header_line
        return _find_key(lines, 0, str(path[0]))
    start = _find_header(lines, table, index)
    if start is None:
        return None
    if key is None or key == table:
        return start
    # A key inside an inline table (tags = { team = "…" }) is found by its table's key.
    parents = [p for p in table_parts[1:-1]]
    return _find_key(lines, start, key) or next(
        (n for p in reversed(parents) if (n := _find_key(lines, start, p))), start
    )


def _find_header(lines: list[str], name: Any, index: int | None) -> int | None:
    count = -1
    for n, line in enumerate(lines, start=1):
        m = _HEADER.match(line)
        if m and m.group(2) == name:
            count += 1
            if index is None or count == index:
                return n
    return None


def _find_key(lines: list[str], start: int, key: str) -> int | None:
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for n in range(start, len(lines)):  # lines[start] is the line after the header
        if _HEADER.match(lines[n]):
            return None
        if pattern.match(lines[n]):
            return n + 1
    return None
