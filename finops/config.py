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
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
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


RULE_MATCH_KEYS = ("provider", "service", "sku", "usage_type", "resource", "tags")
"""Match keys of a ``[[workload_rules]]`` table (see :func:`finops.classify.rules_from_config`)."""

WORKLOAD_VALUES = ("inference", "training", "development", "other AI", "non-AI")
"""The classes a rule may name; the same as :data:`finops.classify.WORKLOADS`."""


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
    # Filled by _budgets (finops/budgets.py reads them): [[budgets]] and [budget_alerts].
    budgets: tuple[Any, ...] = ()
    budget_alerts: Any = None
    # Filled by _self_hosted: [[self_hosted]] models served from our own GPUs (unit economics).
    self_hosted: tuple[Any, ...] = ()

    @property
    def department_names(self) -> list[str]:
        return [d.name for d in self.departments]

    def sub_account_map(self) -> dict[str, str]:
        """SubAccountId → department name."""
        return {acct: d.name for d in self.departments for acct in d.sub_accounts}

    def tag_value_map(self) -> dict[str, str]:
        """Lower-cased tag value → department name."""
        return {value.lower(): d.name for d in self.departments for value in d.tag_values}


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
        {"company", "allocation", "departments", "workload_rules", "budgets", "budget_alerts", "self_hosted"},
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
        v.keys(dept, at, {"name", "sub_accounts", "tag_values", "owner"})
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
        departments.append(Department(name, tuple(accounts), tuple(values), owner))

    return Config(
        path=path,
        company_name=v.string(company, ("company", "name"), default="Our company"),
        currency=v.string(company, ("company", "currency"), default="USD"),
        basis=basis,  # type: ignore[arg-type]
        tag_keys=tuple(v.strings(allocation, ("allocation", "tag_keys"), default=list(DEFAULT_TAG_KEYS))),
        departments=tuple(departments),
        workload_rules=_workload_rules(raw, v),
        budgets=_budgets(raw, v),
        budget_alerts=_budget_alerts(raw, v),
        self_hosted=_self_hosted(raw, v),
    )


# -- budgets (finops/budgets.py) ----------------------------------------------------------------


def _budgets(raw: dict[str, Any], v: _Validator) -> tuple[Any, ...]:
    return ()


def _budget_alerts(raw: dict[str, Any], v: _Validator) -> Any:
    return None


# -- self-hosted models (unit economics) ---------------------------------------------------------


def _self_hosted(raw: dict[str, Any], v: _Validator) -> tuple[Any, ...]:
    return ()


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
