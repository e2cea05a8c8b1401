"""The connector registry: one entry per source kind, and the one way the CLI, `finops run` and the demo load.

The FOCUS files are written by tests/focus_files.py (csv module, never our code); the counts
below are the files' own: 30 July rows and 20 August rows, one of them with a cost that is
not a number.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from finops.cli import _load_delivery, cli
from finops.config import SOURCE_OPTIONS, SOURCE_URIS, load_config
from finops.demo import gateway as sample_gateway
from finops.demo.company import Delivery
from finops.exceptions import ConfigError, SourceError
from finops.ingest import sources
from finops.ingest.registry import REGISTRY, LoadReport
from finops.warehouse import LoadResult, Warehouse
from tests.focus_files import make_rows, write_csv

DISPOSITIONS = {
    # bills: each (source, account, month) found replaces what the warehouse held for it
    "focus": "replace-partitions", "aws-cur": "replace-partitions", "gcp-bigquery": "replace-partitions",
    "gcp-export": "replace-partitions", "azure": "replace-partitions",
    # traces by request id, prices by model, the GCP catalog by service
    "otel": "replace-keys", "langfuse": "replace-keys", "prices": "replace-keys", "gcp-catalog": "replace-keys",
    # incremental: a window of the API / the gateway's database
    "litellm": "merge-window", "openai": "merge-window", "anthropic": "merge-window",
    # the same from files: saved API pages (the window given), exported spend-log rows (the hours they touch)
    "openai-usage-files": "merge-window", "litellm-file": "merge-window",
}  # fmt: skip
UNKNOWN = "no connector for source kind 'focus'"


@pytest.fixture
def focus_file(tmp_path: Path) -> Any:
    august = make_rows(20, period="2026-08")
    august[4]["BilledCost"] = "n/a"
    return write_csv(tmp_path / "focus.csv", make_rows(30, period="2026-07") + august, "1.0")


@pytest.fixture
def without_focus():
    """The registry without its FOCUS connector (SOURCE_URIS still knows the kind)."""
    connector = REGISTRY.remove("focus")
    try:
        yield
    finally:
        REGISTRY.add(connector)


def test_every_kind_has_one_entry_with_its_options_and_write_disposition():
    assert sorted(REGISTRY) == sorted(SOURCE_URIS) == sorted(DISPOSITIONS)
    for kind, connector in REGISTRY.items():
        assert connector.kind == kind
        assert connector.options == tuple(SOURCE_OPTIONS[kind]), kind
        assert connector.write_disposition == DISPOSITIONS[kind], kind
    assert REGISTRY["aws-cur"].options == ("period", "profile", "endpoint_url")
    assert {k: c.cursor for k, c in REGISTRY.items() if c.cursor} == {"litellm": "watermark"}


def test_ingesters_is_a_view_of_the_registry(monkeypatch):
    def fake(wh: Any, src: Any, progress: Any) -> None:
        raise RuntimeError("patched")

    monkeypatch.setitem(sources.INGESTERS, "otel", fake)
    assert REGISTRY["otel"].load is fake and sources.INGESTERS["otel"] is fake
    run = sources.run_source(Warehouse(Path("unused.duckdb")), sources.source("otel", ["x.json"]))
    assert run.status == "failed" and run.error == "RuntimeError: patched"
    monkeypatch.undo()
    assert REGISTRY["otel"].load is not fake


def test_a_load_report_s_totals_are_the_sums_of_its_batches():
    report = LoadReport(
        "aws-cur", "cur", (LoadResult(1, 10, 9, 1, 0, ["a"]), LoadResult(2, 5, 5, 0, 3, ["b"])), files=4
    )
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined, report.rows_replaced) == (15, 14, 1, 3)
    assert report.batches == 2
    assert LoadReport("aws-cur", "cur", ()).rows_read == 0


def test_a_real_load_reports_its_files_rows_and_quarantine_and_reloads_without_double_counting(tmp_path, focus_file):
    wh = Warehouse(tmp_path / "w.duckdb")
    src = sources.source("focus", [str(focus_file.path)])
    first = sources.ingest_report(wh, src)
    assert (first.kind, first.source, first.files, first.batches) == ("focus", f"focus {focus_file.path}", 1, 1)
    assert (first.rows_read, first.rows_loaded, first.rows_quarantined, first.rows_replaced) == (50, 49, 1, 0)
    assert first.rows_read == sum(r.rows_read for r in first.results)
    assert first.detail.result == first.results[0]  # the connector's own report, for the CLI's tables
    again = sources.ingest_report(wh, src)
    assert (again.rows_loaded, again.rows_replaced) == (49, 49)
    billed = focus_file.total("BilledCost", "2026-07") + sum(
        (Decimal(r["BilledCost"]) for r in focus_file.rows if r["BillingPeriodStart"].startswith("2026-08")
         and r["BilledCost"] != "n/a"), Decimal(0),
    )  # fmt: skip
    assert wh.query("SELECT sum(BilledCost) AS b, count(*) AS n FROM charges").row(0) == (billed, 49)


def test_the_demo_s_deliveries_load_through_the_registry(tmp_path, focus_file):
    wh = Warehouse(tmp_path / "w.duckdb")
    results = _load_delivery(wh, Delivery("OpenAI FOCUS", [focus_file.path], "focus"), None)
    assert [(r.rows_read, r.rows_loaded, r.rows_quarantined) for r in results] == [(50, 49, 1)]


def test_a_kind_the_registry_lacks_fails_the_same_way_from_cli_run_and_demo(tmp_path, focus_file, without_focus):
    warehouse = str(tmp_path / "w.duckdb")
    ingest = CliRunner().invoke(cli, ["ingest", "focus", str(focus_file.path), "--warehouse", warehouse])
    assert isinstance(ingest.exception, ConfigError) and str(ingest.exception) == UNKNOWN

    config = tmp_path / "finops.toml"
    config.write_text(f'[[sources]]\nkind = "focus"\nuri = "{focus_file.path}"\n', encoding="utf-8")
    run = CliRunner().invoke(cli, ["run", "--skip-reports", "--config", str(config), "--warehouse", warehouse])
    assert run.exit_code == 1
    assert "failed after" in run.output and UNKNOWN in run.output

    with pytest.raises(ConfigError) as demo:
        _load_delivery(Warehouse(tmp_path / "w.duckdb"), Delivery("FOCUS", [focus_file.path], "focus"), None)
    assert str(demo.value) == UNKNOWN
    assert not (tmp_path / "w.duckdb").exists()  # nothing was loaded, from any of the three


def test_the_demo_s_gateway_resolves_its_kinds_in_the_same_registry(tmp_path):
    prices = REGISTRY.remove("prices")
    try:
        with pytest.raises(ConfigError, match="no connector for source kind 'prices'"):
            sample_gateway.load(Warehouse(tmp_path / "w.duckdb"), None, use_postgres=False)  # type: ignore[arg-type]
    finally:
        REGISTRY.add(prices)


# -- the demo's file kinds: saved OpenAI API pages and exported LiteLLM rows ----------------------------


@pytest.fixture(scope="module")
def gateway_files(tmp_path_factory: pytest.TempPathFactory) -> sample_gateway.GatewayFiles:
    """The sample company's gateway files (OpenAI pages, LiteLLM spend-log rows), written once."""
    return sample_gateway.generate(tmp_path_factory.mktemp("demo"))


def _requests(wh: Warehouse) -> Any:
    """`llm_requests` without the batch id (the two warehouses number their batches apart), in a fixed order."""
    frame = wh.query("SELECT * EXCLUDE (x_BatchId) FROM llm_requests")
    return frame.sort(frame.columns, nulls_last=True)


def test_saved_openai_pages_load_through_the_registry_as_the_direct_call_loads_them(tmp_path, gateway_files):
    from connectors import openai_usage
    from connectors.http_api import Page

    start, end = sample_gateway.WINDOW_START, sample_gateway.WINDOW_END
    direct = Warehouse(tmp_path / "direct.duckdb")
    usage_pages = [Page(openai_usage.COMPLETIONS_PATH, n, p.read_text(encoding="utf-8"))
                   for n, p in enumerate(gateway_files.openai_completions, 1)]  # fmt: skip
    cost_pages = [Page(openai_usage.COSTS_PATH, n, p.read_text(encoding="utf-8"))
                  for n, p in enumerate(gateway_files.openai_costs, 1)]  # fmt: skip
    expected = openai_usage.load_pages(direct, start, end, usage_pages, cost_pages, uri="pages")

    wh = Warehouse(tmp_path / "w.duckdb")
    src = sources.source("openai-usage-files", [str(gateway_files.out_dir / "openai")], start=start, end=end)
    report = sources.ingest_report(wh, src)
    assert (report.kind, report.batches) == ("openai-usage-files", 1)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (
        expected.result.rows_read, expected.result.rows_loaded, expected.result.rows_quarantined,
    )  # fmt: skip
    assert report.rows_loaded > 0 and report.detail.pages == expected.pages
    assert _requests(wh).equals(_requests(direct))

    # By hand from the pages: OpenAI's input_tokens include the cached reads; cost amounts are exact decimals.
    results = [r for p in gateway_files.openai_completions
               for b in json.loads(p.read_text(encoding="utf-8"))["data"] for r in b["results"]]  # fmt: skip
    amounts = [r["amount"]["value"] for p in gateway_files.openai_costs
               for b in json.loads(p.read_text(encoding="utf-8"), parse_float=Decimal)["data"] for r in b["results"]]  # fmt: skip
    totals = wh.query(
        "SELECT sum(input_tokens + cached_input_tokens) AS i, sum(output_tokens) AS o, sum(requests) AS n,"
        " sum(cost) AS c FROM llm_requests"
    ).row(0)
    assert totals[:3] == (
        sum(r["input_tokens"] for r in results), sum(r["output_tokens"] for r in results),
        sum(r["num_model_requests"] for r in results),
    )  # fmt: skip
    assert totals[3] == sum(amounts, Decimal(0))

    again = sources.ingest_report(wh, src)  # the window's days are replaced: nothing doubles
    assert (again.rows_loaded, again.rows_replaced) == (report.rows_loaded, report.rows_loaded)
    assert wh.query("SELECT sum(cost) AS c FROM llm_requests").item() == totals[3]


def test_saved_pages_are_numbered_per_endpoint_in_natural_order(tmp_path):
    from connectors import openai_usage

    empty = '{"object": "page", "data": [], "has_more": false}'
    cost = '{"object": "page", "data": [{"results": [{"object": "organization.costs.result"}]}]}'
    for name, text in [("completions_page10.json", empty), ("completions_page2.json", empty), ("a.json", cost)]:
        (tmp_path / name).write_text(text, encoding="utf-8")
    usage, costs = openai_usage.read_pages(sorted(tmp_path.iterdir()))
    assert [(p.path, p.number, p.text) for p in usage] == [
        (openai_usage.COMPLETIONS_PATH, 1, empty), (openai_usage.COMPLETIONS_PATH, 2, empty),
    ]  # fmt: skip
    assert [(p.path, p.number) for p in costs] == [(openai_usage.COSTS_PATH, 1)]
    (tmp_path / "other.json").write_text(empty, encoding="utf-8")
    with pytest.raises(SourceError, match="other.json: not one OpenAI usage or costs API page"):
        openai_usage.read_pages([tmp_path / "other.json"])


def test_exported_litellm_rows_load_through_the_registry_as_the_direct_call_loads_them(tmp_path, gateway_files):
    import polars as pl

    from connectors import litellm

    direct = Warehouse(tmp_path / "direct.duckdb")
    expected = litellm.ingest_rows(direct, gateway_files.spend_logs)
    wh = Warehouse(tmp_path / "w.duckdb")
    src = sources.source("litellm-file", [str(gateway_files.spend_logs)])
    report = sources.ingest_report(wh, src)
    rows = pl.read_parquet(gateway_files.spend_logs).height  # the file's own row count
    assert (report.kind, report.files, report.batches) == ("litellm-file", 1, 1)
    assert report.rows_read == rows == expected.result.rows_read
    assert (report.rows_loaded, report.rows_quarantined) == (
        expected.result.rows_loaded, expected.result.rows_quarantined,
    )  # fmt: skip
    assert report.rows_loaded + report.rows_quarantined == rows
    assert _requests(wh).equals(_requests(direct))
    # messages / response hold the demo's placeholder: it never reaches the warehouse
    for table in ("llm_requests", "quarantine"):
        dumped = wh.query(f"SELECT CAST(list(t) AS VARCHAR) AS v FROM {table} AS t").item() or ""
        assert "content is never stored" not in dumped, table
    again = sources.ingest_report(wh, src)
    assert (again.rows_loaded, again.rows_replaced) == (report.rows_loaded, report.rows_loaded)
    assert wh.query("SELECT count(*) AS n FROM llm_requests").item() == report.rows_loaded


def test_the_file_kinds_bad_specs_fail_with_config_errors(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    with pytest.raises(ConfigError, match="openai-usage-files needs option 'end'"):
        sources.ingest_report(wh, sources.source("openai-usage-files", ["pages"], start="2026-07-01"))
    with pytest.raises(ConfigError, match="option start = 'July' is not a day"):
        sources.ingest_report(wh, sources.source("openai-usage-files", ["pages"], start="July", end="2026-08-01"))
    with pytest.raises(ConfigError, match="litellm-file takes no option since"):
        sources.source("litellm-file", ["rows.parquet"], since="-1d")
    config = tmp_path / "finops.toml"
    config.write_text('[[sources]]\nkind = "openai-usage-files"\nuri = "pages"\noptions = { start = "2026-07-01" }\n')
    with pytest.raises(ConfigError, match="openai-usage-files needs option 'end'"):
        load_config(config)
    assert not (tmp_path / "w.duckdb").exists()
