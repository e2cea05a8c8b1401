"""`finops run`: the sources of finops.toml loaded in order, then the quarter's reports.

The sources are the sample company's own export files (what `finops demo` writes and loads:
AWS CUR 2.0 with 2026-08 first as delivered then restated, the Google Cloud billing export,
the Azure cost exports, the OpenAI and Anthropic FOCUS files, the bundled prices, the OTel
traces), so the loaded warehouse must equal the sample company's ground truth. The quarterly
review is rendered for real once; the department statements (six notebooks, minutes) are
replaced by a recorder here: `finops report departments` has its own tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from finops.analyses import quarters
from finops.cli import cli
from finops.config import parse_config
from finops.exceptions import ConfigError
from finops.ingest import sources
from finops.periods import Quarter
from finops.reports import render as report
from finops.warehouse import Warehouse
from tests.finops.warehouse_rows import charge, insert_charges

PROJECT = Path(__file__).resolve().parents[1]

SAMPLE_SOURCES = """
[[sources]]
name = "AWS CUR 2.0, 2026-08 as first delivered"
kind = "aws-cur"
uri = "exports/aws/cur-2026-08-original/larkspur-cur2"

[[sources]]
kind = "gcp-export"
uri = "exports/gcp/billing_export"

[[sources]]
kind = "azure"
uri = "exports/azure"

[[sources]]
name = "OpenAI and Anthropic FOCUS"
kind = "focus"
uris = ["exports/focus/openai", "exports/focus/anthropic"]

[[sources]]
name = "AWS CUR 2.0, 2026-08 restated"
kind = "aws-cur"
uri = "exports/aws/cur/larkspur-cur2"

[[sources]]
kind = "prices"

[[sources]]
name = "agent traces"
kind = "otel"
uri = "exports/gateway/otel/*.jsonl.gz"
"""

SECRET = "pg-s3cret-Xy7-never-printed"


@dataclasses.dataclass
class Run:
    root: Path
    warehouse: Path
    out: Path
    result: Result
    statements: list[dict[str, Any]]


def _config(root: Path, sources_toml: str) -> Path:
    """The repository's finops.toml (the sample company's mapping) plus ``sources_toml``."""
    path = root / "finops.toml"
    path.write_text((PROJECT / "finops.toml").read_text(encoding="utf-8") + sources_toml, encoding="utf-8")
    return path


def _invoke(root: Path, config: Path, warehouse: Path, *args: str, statements: list | None = None) -> Result:
    """`finops run` in this process, the department statements recorded instead of rendered."""

    def record_statements(quarter: Quarter, *, warehouse: Path, config: Path, out_dir: Path, **_: Any) -> Path:
        index = Path(out_dir) / f"statements-{quarter}" / "index.html"
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text("statements", encoding="utf-8")
        (statements if statements is not None else []).append(
            {"quarter": str(quarter), "config": config, "warehouse": warehouse}
        )
        return index

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "render_departments", record_statements)
        return CliRunner().invoke(
            cli, ["run", "--config", str(config), "--warehouse", str(warehouse), "--out", str(root / "reports"), *args]
        )


@pytest.fixture(scope="module")
def full_run(sample_build, tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("run")
    (root / "exports").symlink_to(sample_build.exports)  # relative paths resolve against the config's folder
    config = _config(root, SAMPLE_SOURCES)
    statements: list[dict[str, Any]] = []
    result = _invoke(root, config, root / "warehouse.duckdb", statements=statements)
    return Run(root, root / "warehouse.duckdb", root / "reports", result, statements)


@pytest.fixture(scope="module")
def truth(sample_build) -> dict[str, Any]:
    return json.loads((sample_build.exports / "ground_truth.json").read_text(encoding="utf-8"))


def test_every_source_loads_and_the_warehouse_equals_the_sample_company(full_run, truth):
    assert full_run.result.exit_code == 0, full_run.result.output
    out = full_run.result.output
    for n, name in enumerate(["AWS CUR 2.0, 2026-08 as first delivered", "gcp-export exports/gcp/billing_export",
                              "azure exports/azure", "OpenAI and Anthropic FOCUS", "AWS CUR 2.0, 2026-08 restated",
                              "prices", "agent traces"], 1):  # fmt: skip
        assert f"[{n}/7] {name} (" in out
    assert "failed" not in out
    wh = Warehouse(full_run.warehouse)
    loaded = wh.query(
        "SELECT strftime(BillingPeriodStart, '%Y-%m') AS month, ProviderName AS provider,"
        " sum(BilledCost) AS billed, sum(EffectiveCost) AS effective FROM charges GROUP BY ALL"
    )
    names = {key: p["provider_name"] for key, p in truth["providers"].items()}
    got = {(r["month"], r["provider"]): (r["billed"], r["effective"]) for r in loaded.iter_rows(named=True)}
    expected = {
        (month, names[key]): (Decimal(t["billed_cost"]), Decimal(t["effective_cost"]))
        for month, per_provider in truth["monthly_totals"].items()
        for key, t in per_provider.items()
    }
    assert got == expected  # 18 months × 5 providers, the AWS restatement replacing the first delivery
    [q3] = wh.query(
        "SELECT sum(BilledCost) AS billed FROM charges WHERE BillingPeriodStart >= '2026-07-01'"
        " AND BillingPeriodStart < '2026-10-01'"
    )["billed"]
    assert q3 == Decimal(truth["headline"]["total"]["billed_cost"])
    traces = wh.query("SELECT count(*) AS n FROM llm_requests WHERE source = 'otel'")["n"][0]
    assert traces > 0
    assert wh.query("SELECT count(*) AS n FROM ingest_batches WHERE status <> 'succeeded'")["n"][0] == 0


def test_the_quarterly_review_and_statements_of_the_last_complete_quarter_are_published(full_run):
    html = full_run.out / "quarterly-review-2026Q3.html"
    assert html.is_file()
    page = html.read_text(encoding="utf-8")
    assert "Larkspur Labs" in page and "2026Q3" in page
    assert full_run.statements == [
        {
            "quarter": "2026Q3",
            "config": (full_run.root / "finops.toml").resolve(),
            "warehouse": full_run.warehouse.resolve(),
        }
    ]
    out = full_run.result.output
    assert "quarterly review 2026Q3" in out and "published" in out and "withheld" not in out


@pytest.fixture
def complete_copy(sample_build, tmp_path) -> Path:
    """A copy of the sample company's warehouse (2026Q3 complete for every account)."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(sample_build.warehouse, copy)
    return copy


BROKEN_SOURCES = """
[[sources]]
name = "missing FOCUS files"
kind = "focus"
uri = "exports/focus/no-such-provider/*.csv"

[[sources]]
name = "gateway database"
kind = "litellm"
uri = "postgresql://litellm@127.0.0.1:9/litellm"
options = { password_env = "FINOPS_TEST_PG_PASSWORD" }

[[sources]]
name = "agent traces"
kind = "otel"
uri = "{exports}/gateway/otel/*.jsonl.gz"
"""


def test_a_failed_source_is_reported_the_others_load_and_the_reports_are_withheld(
    sample_build, complete_copy, tmp_path
):
    config = _config(tmp_path, BROKEN_SOURCES.replace("{exports}", str(sample_build.exports)))
    before = Warehouse(complete_copy).query("SELECT count(*) AS n FROM ingest_batches WHERE source_kind = 'otel'")["n"][
        0
    ]
    run = subprocess.run(
        [sys.executable, "-m", "finops.cli", "run", "--config", str(config), "--warehouse", str(complete_copy),
         "--out", str(tmp_path / "reports")],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200", "FINOPS_TEST_PG_PASSWORD": SECRET},
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    out = run.stdout
    assert SECRET not in out and SECRET not in run.stderr
    failed = [line for line in out.splitlines() if line.strip().startswith("failed after")]
    assert len(failed) == 2, out
    assert "no files match" in failed[0] and "no-such-provider" in failed[0]
    assert "litellm" in failed[1] and "127.0.0.1" in failed[1]
    after = Warehouse(complete_copy).query("SELECT count(*) AS n FROM ingest_batches WHERE source_kind = 'otel'")["n"][
        0
    ]
    assert after == before + 1  # the third source still loaded
    assert "source 'missing FOCUS files' failed in this run" in out
    assert "withheld" in out
    assert not (tmp_path / "reports").exists()  # nothing rendered, nothing published


def test_allow_incomplete_publishes_anyway_but_the_failure_still_exits_1(
    sample_build, complete_copy, tmp_path, monkeypatch
):
    config = _config(tmp_path, BROKEN_SOURCES.replace("{exports}", str(sample_build.exports)))
    rendered: list[Quarter] = []

    def record_quarterly(quarter: Quarter, *, out_dir: Path, **_: Any) -> Path:
        rendered.append(quarter)
        return Path(out_dir) / f"quarterly-review-{quarter}.html"

    monkeypatch.setattr(report, "render_quarterly", record_quarterly)
    statements: list[dict[str, Any]] = []
    result = _invoke(tmp_path, config, complete_copy, "--allow-incomplete", statements=statements)
    assert result.exit_code == 1
    assert [str(q) for q in rendered] == ["2026Q3"] and [s["quarter"] for s in statements] == ["2026Q3"]
    assert "  published (data incomplete): " in result.output


def test_a_quarter_whose_charges_are_missing_is_withheld_unless_allowed(complete_copy, tmp_path, monkeypatch):
    config = _config(tmp_path, '\n[[sources]]\nkind = "prices"\n')
    rendered: list[Quarter] = []
    monkeypatch.setattr(report, "render_quarterly", lambda quarter, **_: rendered.append(quarter) or Path("q.html"))
    statements: list[dict[str, Any]] = []
    withheld = _invoke(tmp_path, config, complete_copy, "--quarter", "2026Q4", statements=statements)
    assert withheld.exit_code == 1
    assert (
        "2026Q4: AWS account 849302117465: no charges in 2026Q4 (last billing month loaded: 2026-09)" in withheld.output
    )
    assert rendered == [] and statements == []
    allowed = _invoke(
        tmp_path, config, complete_copy, "--quarter", "2026Q4", "--allow-incomplete", statements=statements
    )
    assert allowed.exit_code == 0, allowed.output
    assert [str(q) for q in rendered] == ["2026Q4"] and len(statements) == 1


def test_coverage_flags_an_account_whose_last_month_stops_short(wh):
    days = [f"2026-{m:02d}-{d:02d}" for m in (7, 8) for d in (1, 15, 28)]
    rows = [charge(day=day) for day in [*days, "2026-09-01", "2026-09-30"]]  # payer-1: the whole quarter
    rows += [charge(day=day, BillingAccountId="payer-2") for day in [*days, "2026-09-14"]]  # stops on 2026-09-14
    rows += [charge(day="2026-05-10", BillingAccountId="payer-3")]  # billed last quarter, nothing since
    rows += [charge(day="2025-01-10", BillingAccountId="payer-4")]  # closed long ago: not judged
    insert_charges(wh, rows)
    coverage = quarters.quarter_coverage(wh, Quarter(2026, 3))
    by_account = {r["billing_account"]: r for r in coverage.iter_rows(named=True)}
    assert sorted(by_account) == ["payer-1", "payer-2", "payer-3"]
    assert by_account["payer-1"]["complete"] and by_account["payer-1"]["reason"] is None
    assert not by_account["payer-2"]["complete"]
    assert by_account["payer-2"]["reason"] == "charges reach only 2026-09-14 23:59"
    assert by_account["payer-3"]["months"] == 0 and not by_account["payer-3"]["complete"]
    ready = quarters.readiness(wh, Quarter(2026, 3))
    assert len(ready.reasons) == 2 and not ready.complete


# -- finops.toml -------------------------------------------------------------------------------


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("finops.toml"))
    return str(caught.value)


def test_sources_are_read_with_their_options_in_file_order():
    config = parse_config(
        '[[sources]]\nkind = "aws-cur"\nuri = "s3://bills/cur/export"\n'
        '[sources.options]\nperiod = ["2026-07", "2026-08"]\nprofile = "billing"\n\n'
        '[[sources]]\nname = "OpenAI"\nkind = "openai"\noptions = { start = "-35d", api_key_env = "OPENAI_ADMIN_KEY" }\n\n'
        '[[sources]]\nkind = "gcp-bigquery"\nuri = "p.d.t"\noptions = { months = "-2m..0m" }\n\n'
        '[[sources]]\nkind = "litellm"\nuri = "postgresql://litellm@db:5432/litellm"\n'
        'options = { since = 2026-07-01, overlap = "3h", password_env = "LITELLM_DB_PASSWORD" }\n'
    )
    aws, openai, bigquery, gateway = config.sources
    assert (aws.kind, aws.uris, aws.name, aws.line) == (
        "aws-cur",
        ("s3://bills/cur/export",),
        "aws-cur s3://bills/cur/export",
        1,
    )
    assert aws.option("period") == ("2026-07", "2026-08") and aws.option("profile") == "billing"
    assert openai.name == "OpenAI" and openai.uris == () and openai.option("start") == "-35d"
    assert str(gateway.option("since")) == "2026-07-01" and gateway.option("overlap") == "3h"
    assert sources.resolve_months(bigquery.option("months"), today=date(2027, 1, 9)) == ["2026-11..2027-01"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('# bills\n[[sources]]\nkind = "aws-curr"\nuri = "a"\n',
         "finops.toml:3: sources[0].kind: unknown kind 'aws-curr' (did you mean 'aws-cur'?)"),
        ('[[sources]]\nkind = "focus"\nuri = "a"\n\n[[sources]]\nkind = "aws-cur"\nuri = "b"\noptions = { profil = "x" }\n',
         "finops.toml:8: sources[1].options.profil: unknown option (did you mean 'profile'?); aws-cur takes endpoint_url"),
        ('[[sources]]\nkind = "aws-cur"\nuri = "b"\n[sources.options]\nprofile = "x"\nperiods = "2026-07"\n',
         "finops.toml:6: sources[0].options.periods: unknown option (did you mean 'period'?)"),
        ('[[sources]]\nkind = "focus"\n', "finops.toml:1: sources[0]: focus needs uri (or uris)"),
        ('[[sources]]\nkind = "openai"\nuri = "https://api.openai.com"\n',
         "finops.toml:3: sources[0].uri: openai takes no uri"),
        ('[[sources]]\nkind = "anthropic"\noptions = { start = "2026-07-01" }\n',
         "finops.toml:3: sources[0].options: anthropic needs option 'api_key_env'"),
        ('[[sources]]\nkind = "gcp-bigquery"\nuri = "p.d.t"\noptions = { months = "July" }\n',
         "finops.toml:4: sources[0].options.months: expected months like"),
        ('[[sources]]\nkind = "focus"\nuri = "a"\n[[sources]]\nkind = "focus"\nuri = "a"\n',
         "finops.toml:4: sources[1]: two sources are named 'focus a' (also sources[0])"),
        ('[[sources]]\nkind = "focus"\nurl = "a"\n', "finops.toml:3: sources[0].url: unknown key (did you mean 'uri'?)"),
        ('[[sources]]\nkind = "aws-cur"\nuri = "b"\noptions = { period = "2026-01..2026-03" }\n',
         "finops.toml:4: sources[0].options.period: expected billing periods like"),
        ('[[sources]]\nkind = "litellm"\nuri = "postgresql://u@h/db"\noptions = { since = "yesterday" }\n',
         "finops.toml:4: sources[0].options.since: expected a date, a date-time"),
    ],
)  # fmt: skip
def test_source_mistakes_are_reported_with_their_line(text, expected):
    assert expected in _error(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'[[sources]]\nkind = "litellm"\nuri = "postgresql://u@h/db"\noptions = {{ password = "{SECRET}" }}\n',
         "finops.toml:4: sources[0].options.password: secrets never go in finops.toml: set password_env"),
        (f'[[sources]]\nkind = "openai"\noptions = {{ start = "-7d", api_key_env = "{SECRET}" }}\n',
         "finops.toml:3: sources[0].options.api_key_env: expected the name of an environment variable"),
        (f'[[sources]]\nkind = "litellm"\nuri = "postgresql://litellm:{SECRET}@db/litellm"\n',
         "finops.toml:3: sources[0].uri: a uri must not hold a password"),
        (f'[[sources]]\nkind = "azure"\nuri = "https://acct.blob.core.windows.net/c/p?sv=2024&sig={SECRET}"\n',
         "finops.toml:3: sources[0].uri: a uri must not hold a SAS token"),
    ],
)  # fmt: skip
def test_a_secret_written_in_the_file_is_refused_without_being_repeated(text, expected):
    message = _error(text)
    assert expected in message
    assert SECRET not in message


def test_run_without_sources_says_how_to_declare_them(tmp_path):
    config = _config(tmp_path, "")
    result = CliRunner().invoke(cli, ["run", "--config", str(config), "--warehouse", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 1
    assert isinstance(result.exception, ConfigError) and "no [[sources]] to run" in str(result.exception)


def test_a_failing_source_s_message_has_its_secrets_masked(monkeypatch):
    monkeypatch.setenv("FINOPS_TEST_PG_PASSWORD", SECRET)

    def leaky(wh: Any, src: Any, progress: Any) -> None:
        raise RuntimeError(f"server said: password {SECRET!r} rejected for user litellm")

    monkeypatch.setitem(sources.INGESTERS, "litellm", leaky)
    src = sources.source("litellm", ["postgresql://litellm@db/litellm"], password_env="FINOPS_TEST_PG_PASSWORD")
    run = sources.run_source(Warehouse(Path("unused.duckdb")), src)
    assert run.status == "failed" and run.rows_loaded == 0
    assert run.error == "RuntimeError: server said: password '***' rejected for user litellm"
