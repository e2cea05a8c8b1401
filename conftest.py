"""Root pytest setup: the sample company, built once per session with ``finops demo``.

The notebooks (nbval) and the end-to-end demo tests read the same warehouse. nbval starts a
notebook's kernel before any fixture runs, so when notebooks are collected the warehouse is
built as collection finishes and handed to the kernels through the environment they inherit
(``FINOPS_WAREHOUSE``, ``FINOPS_CONFIG``). It is built in a temp dir, never the developer's
data/warehouse.duckdb, so checked outputs cannot depend on what an earlier run left behind.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).parent


@dataclasses.dataclass(frozen=True)
class SampleBuild:
    warehouse: Path
    config: Path
    exports: Path
    demo_output: str


def _sample_build(config: pytest.Config) -> SampleBuild:
    cached = getattr(config, "_finops_sample_build", None)
    if cached is not None:
        return cached
    from click.testing import CliRunner

    from finops.cli import cli

    where = config._tmp_path_factory.mktemp("sample-company")  # type: ignore[attr-defined]
    build = SampleBuild(where / "warehouse.duckdb", PROJECT / "finops.toml", where / "exports", "")
    result = CliRunner().invoke(cli, ["demo", "--out", str(build.exports), "--warehouse", str(build.warehouse)])
    if result.exit_code != 0:
        raise pytest.UsageError(f"could not build the sample company:\n{result.output}")
    build = dataclasses.replace(build, demo_output=result.output)
    config._finops_sample_build = build  # type: ignore[attr-defined]
    return build


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.path.suffix == ".ipynb" for item in session.items):
        build = _sample_build(session.config)
        os.environ["FINOPS_WAREHOUSE"] = str(build.warehouse)
        os.environ["FINOPS_CONFIG"] = str(build.config)


@pytest.fixture(scope="session")
def sample_build(request: pytest.FixtureRequest) -> SampleBuild:
    """The sample company's warehouse as ``finops demo`` builds it (read it, do not write)."""
    return _sample_build(request.config)
