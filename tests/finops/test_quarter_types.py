"""Analyses and reports take a Quarter: the default quarter is decided at the edge (CLI, notebook parameters).

Every public function (and public method of a public class) of finops.analyses and finops.reports
with a parameter named ``quarter`` must annotate it ``Quarter``: never ``str`` (parsing is the CLI's
job) and never ``None`` (a None that means "the latest complete quarter" hides the decision inside
an analysis). The few exceptions are listed in :data:`MAY_BE_NONE`, each with why.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import pkgutil
import types
import typing
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import polars as pl
import pytest
from click.testing import CliRunner

import finops.analyses
import finops.reports
from finops.analyses import chargeback, quarters
from finops.cli import cli
from finops.config import parse_config
from finops.exceptions import AnalysisError
from finops.periods import Quarter
from finops.warehouse import Warehouse
from tests.finops.warehouse_rows import charge, insert_charges

# Qualified name -> why ``quarter`` may be None there. Only readiness (finops run's decision point) reads None as
# "the latest complete quarter"; in the chargeback functions None means start and end give the months.
MAY_BE_NONE = {
    "finops.analyses.chargeback.allocations": "None: the billing months are start and end instead",
    "finops.analyses.chargeback.chargeback": "None: the billing months are start and end instead",
    "finops.analyses.chargeback.reconciliation": "None: the billing months are start and end instead",
    "finops.analyses.quarters.readiness": "finops run picks the quarter after loading; none complete is a reason",
    "finops.analyses.quarters.Readiness.__init__": "readiness's result: None when no quarter could be chosen",
}


def _type_checking_names(module: types.ModuleType) -> dict[str, object]:
    """The names a module imports under ``if TYPE_CHECKING:``, so its string annotations resolve."""
    names: dict[str, object] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            exec(compile(ast.Module(body=node.body, type_ignores=[]), module.__name__, "exec"), names)  # noqa: S102
    return names


def _public_callables() -> Iterator[tuple[str, Callable[..., object], dict[str, object]]]:
    """(qualified name, function, extra names for its annotations) of every public function and method."""
    for package in (finops.analyses, finops.reports):
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            if info.name.rsplit(".", 1)[1].startswith("_"):
                continue
            module = importlib.import_module(info.name)
            extra = _type_checking_names(module)
            for name, obj in vars(module).items():
                if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                    continue
                if inspect.isfunction(obj):
                    yield f"{module.__name__}.{name}", obj, extra
                elif inspect.isclass(obj):
                    for method_name, method in vars(obj).items():
                        if inspect.isfunction(method) and (
                            method_name == "__init__" or not method_name.startswith("_")
                        ):
                            yield f"{module.__name__}.{name}.{method_name}", method, extra


def _quarter_parameters() -> dict[str, object]:
    """Qualified name -> the resolved annotation of its ``quarter`` parameter."""
    found: dict[str, object] = {}
    for qualified, function, extra in _public_callables():
        if "quarter" in inspect.signature(function).parameters:
            hints = typing.get_type_hints(function, localns=extra)
            found[qualified] = hints.get("quarter", inspect.Parameter.empty)
    return found


def test_the_scan_finds_the_analyses_that_take_a_quarter() -> None:
    found = _quarter_parameters()
    # The scan is not vacuous: it sees the functions this rule is about, in both packages.
    for name in (
        "finops.analyses.spend.quarter_summary",
        "finops.analyses.chargeback.department_statement",
        "finops.analyses.forecast.quarter_forecast",
        "finops.analyses.budgets.budget_status",
        "finops.analyses.whatif.savings_opportunities",
        "finops.analyses.quarters.quarter_coverage",
        "finops.reports.render.render_quarterly",
        "finops.reports.narrative.heading",
        *MAY_BE_NONE,
    ):
        assert name in found, name


def _breaks_the_rule(name: str, hint: object) -> bool:
    """True when ``quarter`` of ``name`` is not a plain Quarter: text, None (outside MAY_BE_NONE), anything else."""
    parts = set(typing.get_args(hint)) or {hint}
    if str in parts or (type(None) in parts and name not in MAY_BE_NONE):
        return True
    return hint not in ({Quarter, Quarter | None} if name in MAY_BE_NONE else {Quarter})


def test_every_quarter_parameter_is_a_quarter_not_text_or_none() -> None:
    wrong = {name: hint for name, hint in _quarter_parameters().items() if _breaks_the_rule(name, hint)}
    assert not wrong, f"annotate quarter as Quarter (the CLI or the notebook decides the default): {wrong}"


@pytest.mark.parametrize(
    ("name", "annotation"),
    [
        ("finops.analyses.spend.quarter_summary", "Quarter | str"),
        ("finops.analyses.spend.quarter_summary", "Quarter | str | None"),
        ("finops.analyses.spend.quarter_summary", "Quarter | None"),
        ("finops.analyses.spend.quarter_summary", "str"),
        ("finops.analyses.spend.quarter_summary", "typing.Any"),
        ("finops.analyses.chargeback.chargeback", "Quarter | str | None"),  # the exception allows None only
    ],
)
def test_the_rule_catches_text_and_none(name: str, annotation: str) -> None:
    namespace: dict[str, object] = {"Quarter": Quarter, "typing": typing}
    exec(f"def f(quarter: {annotation}) -> None: ...", namespace)  # noqa: S102
    assert _breaks_the_rule(name, typing.get_type_hints(namespace["f"])["quarter"])
    assert not _breaks_the_rule(name, Quarter)


CONFIG = '[[departments]]\nname = "Research"\nsub_accounts = ["research"]\n'


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    """Every day of 2026Q3 billed 10.00 to research: 2026Q3 is complete and the latest complete quarter."""
    wh = Warehouse(tmp_path / "wh.duckdb")
    days = [date(2026, 7, 1) + timedelta(days=i) for i in range(92)]
    insert_charges(wh, [charge(day=d.isoformat(), cost="10.00", SubAccountId="research") for d in days])
    return wh


def test_none_is_never_the_latest_quarter(wh) -> None:
    """Without a quarter or a range, chargeback says so instead of picking one; readiness picks the latest itself."""
    config = parse_config(CONFIG)
    with pytest.raises(AnalysisError, match="no billing months"):
        chargeback.chargeback(wh, config)
    with pytest.raises(AnalysisError, match="both"):
        chargeback.chargeback(wh, config, Quarter(2026, 3), start=date(2026, 7, 1), end=date(2026, 8, 1))
    rows = chargeback.chargeback(wh, config, Quarter(2026, 3))
    assert rows["total_cost"].sum() == 920  # 92 days x 10.00
    assert quarters.readiness(wh, None).quarter == Quarter(2026, 3)


def test_the_cli_parses_the_quarter_and_picks_the_default(wh, tmp_path) -> None:
    (tmp_path / "finops.toml").write_text(CONFIG, encoding="utf-8")
    common = ["--warehouse", str(wh.path), "--config", str(tmp_path / "finops.toml")]
    typo = CliRunner().invoke(cli, ["chargeback", "--quarter", "2026-07", *common])
    assert typo.exit_code != 0 and isinstance(typo.exception, AnalysisError)  # main() prints it, with the hint
    assert str(typo.exception) == "not a quarter: '2026-07'"
    # No --quarter: the last complete quarter, 2026Q3: its three months, 31 + 31 + 30 days x 10.00.
    default = CliRunner().invoke(cli, ["chargeback", "--format", "csv", *common])
    assert default.exit_code == 0, default.output
    rows = pl.read_csv(io.StringIO(default.output))
    assert rows["month"].to_list() == ["2026-07", "2026-08", "2026-09"]
    assert rows["total_cost"].to_list() == [310.0, 310.0, 300.0]
