"""The layers' import directions, checked on the source (as import-linter's contracts would).

Data flows one way: connectors → warehouse → analyses → reports → CLI. Each rule below names
what a layer may import from the project; anything else is a violation, reported with file
and line. Imports inside functions count too (they are how heavy modules load lazily, and a
lazy import in the wrong direction is still a wrong dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CORE = ("finops.config", "finops.periods", "finops.exceptions")
"""Shared by every layer: the validated finops.toml, quarters and months, the error types."""

ALLOWED: dict[str, tuple[str, ...]] = {
    # layer (module prefix): what it may import from the project
    "finops.exceptions": (),
    "finops.periods": ("finops.exceptions",),
    "finops.config": ("finops.exceptions", "finops.periods"),
    "finops.warehouse": CORE,
    "connectors": (*CORE, "finops.warehouse", "connectors"),
    "finops.ingest": (*CORE, "finops.warehouse", "connectors", "finops.ingest"),
    "finops.analyses": (*CORE, "finops.warehouse", "finops.analyses"),
    "finops.reports": (*CORE, "finops.warehouse", "finops.analyses", "finops.reports"),
    # the demo loads its sample sources through the connector registry, as `finops ingest` / `finops run` do
    "finops.demo": (*CORE, "finops.warehouse", "connectors", "finops.ingest", "finops.demo"),
    "finops.cli": (*CORE, "finops.warehouse", "connectors", "finops.ingest", "finops.analyses", "finops.reports",
                   "finops.demo", "finops.cli"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a project module in ``path``, top level or not."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from finops import chargeback` imports the module finops.chargeback
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, m) for line, m in found if m.split(".")[0] in ("finops", "connectors")]


def source_files() -> list[Path]:
    return sorted([*ROOT.joinpath("finops").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")])


def test_every_module_belongs_to_a_layer():
    orphans = [module_name(p) for p in source_files() if layer_of(module_name(p)) is None]
    assert orphans == ["finops"], f"modules outside every layer (add them to ALLOWED): {orphans}"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_go_one_way(layer):
    violations = []
    for path in source_files():
        if layer_of(module_name(path)) != layer:
            continue
        for line, imported in project_imports(path):
            target = layer_of(imported)
            if target is None:  # `finops` itself, or a name imported from a module (not a module)
                continue
            if target != layer and target not in ALLOWED[layer]:
                violations.append(f"{path.relative_to(ROOT)}:{line}: {layer} imports {imported} ({target})")
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


def test_the_rules_catch_a_wrong_import(tmp_path):
    """The checker itself: an analysis importing a connector is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from connectors import focus\n")
    imports = project_imports(bad)
    assert imports == [(2, "connectors"), (2, "connectors.focus")]
    assert layer_of("connectors.focus") not in ALLOWED["finops.analyses"]
