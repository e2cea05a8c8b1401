"""The OpenAI and Anthropic usage/cost connectors, end to end into a real DuckDB warehouse file.

The APIs are a local HTTP server (tests/servers_recorded.py) serving recorded responses in
the providers' shapes (tests/data/openai, tests/data/anthropic) over several pages, with a 429
on the way; our client is the real httpx client. Expected token totals and costs are computed
here, by hand, from the same recordings (Decimal, amounts read from the JSON text) and from the
test's own price list, never through our SQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from connectors import anthropic_usage, openai_usage
from connectors.pricing import load_prices
from finops.exceptions import SourceError
from finops.warehouse import Warehouse
from tests.rollup import request_rollup_differences
from tests.servers_recorded import Raw, RecordedServer, Route

DATA = Path(__file__).parent.parent / "data"
OPENAI_KEY = "sk-admin-MARKERk3y0penai7f3a9c1e5d"
ANTHROPIC_KEY = "sk-ant-admin01-MARKERk3yAnthr0pic2b8d4"
KEY_ENV = "FINOPS_TEST_ADMIN_KEY"

COMPLETIONS = "/v1/organization/usage/completions"
EMBEDDINGS = "/v1/organization/usage/embeddings"
COSTS = "/v1/organization/costs"
MESSAGES = "/v1/organizations/usage_report/messages"
COST_REPORT = "/v1/organizations/cost_report"

# Our price list for the test, USD per 1M tokens (the overrides CSV format of connectors/pricing.py).
PRICES_CSV = """provider,model,input,cached_input,cache_write,cache_write_1h,output,input_batch,output_batch,long_context_threshold,input_above_threshold,output_above_threshold
openai,gpt-4o-2024-08-06,2.5,1.25,,,10,1.25,5,,,
openai,gpt-4o-mini-2024-07-18,0.15,0.075,,,0.6,0.075,0.3,,,
openai,o3-mini-2025-01-31,1.1,0.55,,,4.4,0.55,2.2,,,
openai,text-embedding-3-small,0.02,,,,,0.01,,,,
anthropic,claude-sonnet-4-20250514,3,0.3,3.75,6,15,1.5,7.5,200000,6,22.5
anthropic,claude-3-5-haiku-20241022,0.8,0.08,1,1.6,4,0.4,2,,,
"""
M = Decimal(1_000_000)


def recorded(provider: str, name: str) -> dict:
    """A recorded page, numbers as Decimal exactly as written in the JSON."""
    return json.loads((DATA / provider / name).read_text(), parse_float=Decimal)


def day_of(unix: int) -> date:
    return datetime.fromtimestamp(unix, timezone.utc).date()


@pytest.fixture
def priced_wh(wh: Warehouse, tmp_path) -> Warehouse:
    """A warehouse holding only the test's price list."""
    csv = tmp_path / "prices.csv"
    csv.write_text(PRICES_CSV)
    load_prices(wh, [csv])
    return wh


@pytest.fixture
def admin_key(monkeypatch):
    def set_key(key: str) -> str:
        monkeypatch.setenv(KEY_ENV, key)
        return KEY_ENV

    return set_key


class Once:
    """A responder that answers ``status`` (with headers) the first time, then the recorded file."""

    def __init__(self, provider: str, name: str, status: int, headers: dict[str, str]) -> None:
        self.answer = json.loads((DATA / provider / name).read_text())
        self.status, self.headers, self.calls = status, headers, 0

    def __call__(self, request):
        self.calls += 1
        if self.calls == 1:
            return self.status, {"error": {"type": "rate_limit_error", "message": "slow down"}}, self.headers
        return 200, self.answer, {}


def openai_routes(*, throttle: Once | None = None, costs_page_2=None) -> list[Route]:
    routes = [
        Route("GET", COMPLETIONS, throttle or "completions_page2.json", query={"page": "cGFnZV8y"}),
        Route("GET", COMPLETIONS, "completions_page1.json"),
        Route("GET", EMBEDDINGS, "embeddings_page1.json"),
        Route("GET", COSTS, costs_page_2 or "costs_page2.json", query={"page": "Y29zdHNfMg=="}),
        Route("GET", COSTS, "costs_page1.json"),
    ]
    return routes


def windowed(provider: str, names: list[str], *, start_param: str, end_param: str, page_size: int = 2):
    """A responder serving the recorded buckets inside the requested window, ``page_size`` per page."""
    buckets = [b for name in names for b in json.loads((DATA / provider / name).read_text())["data"]]

    def key(bucket):
        value = bucket.get("start_time", bucket.get("starting_at"))
        return value if isinstance(value, int) else int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())

    def parse(value: str) -> int:
        return int(value) if value.isdigit() else int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())

    def respond(request):
        start, end = parse(request.param(start_param)), parse(request.param(end_param))
        chosen = [b for b in buckets if start <= key(b) < end]
        offset = int(request.param("page") or 0)
        more = offset + page_size < len(chosen)
        return 200, {"data": chosen[offset : offset + page_size], "has_more": more,
                     "next_page": str(offset + page_size) if more else None}  # fmt: skip

    return respond


# -- OpenAI: hand-computed expectations from the recordings -------------------------------


def openai_usage_results() -> list[tuple[str, date, dict]]:
    out = []
    for path, names in ((COMPLETIONS, ["completions_page1.json", "completions_page2.json"]),
                        (EMBEDDINGS, ["embeddings_page1.json"])):  # fmt: skip
        for name in names:
            for bucket in recorded("openai", name)["data"]:
                out += [(path, day_of(bucket["start_time"]), r) for r in bucket["results"]]
    return out


def openai_cost_lines() -> list[tuple[date, dict]]:
    return [
        (day_of(bucket["start_time"]), r)
        for name in ("costs_page1.json", "costs_page2.json")
        for bucket in recorded("openai", name)["data"]
        for r in bucket["results"]
    ]


def test_openai_usage_and_costs_over_pages_with_a_429(priced_wh, admin_key):
    wh = priced_wh
    throttle = Once("openai", "completions_page2.json", 429, {"Retry-After": "1"})
    slept: list[float] = []
    with RecordedServer(openai_routes(throttle=throttle), data_dir=DATA / "openai") as server:
        load = openai_usage.ingest(
            wh, date(2026, 7, 1), date(2026, 7, 4), api_key_env=admin_key(OPENAI_KEY), base_url=server.url,
            sleep=slept.append,
        )  # fmt: skip
        # Pages followed with the cursor, the 429 retried once after the Retry-After it asked for.
        completions = server.received("GET", COMPLETIONS)
        assert [r.param("page") for r in completions] == [None, "cGFnZV8y", "cGFnZV8y"]
        assert slept == [1.0] and load.retries == 1
        assert load.pages == {COMPLETIONS: 2, EMBEDDINGS: 1, COSTS: 2}
        first = completions[0]
        assert first.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert first.param("bucket_width") == "1d" and first.param("start_time") == "1782864000"
        assert first.param("end_time") == str(1782864000 + 3 * 86400)
        assert first.query["group_by"] == ["project_id", "model", "api_key_id", "user_id", "batch", "service_tier"]
        assert server.received("GET", COSTS)[0].query["group_by"] == ["project_id", "line_item"]

    usage = openai_usage_results()
    bad = [r for _, _, r in usage
           if r.get("input_cached_tokens", 0) + r.get("input_cache_write_tokens", 0) > r["input_tokens"]]  # fmt: skip
    good = [(p, d, r) for p, d, r in usage if r not in bad]
    lines = openai_cost_lines()
    models_in_usage = {(d, r["project_id"], r["model"]) for _, d, r in good}
    matched = [(d, r) for d, r in lines if (d, r["project_id"], r["line_item"].split(", ")[0]) in models_in_usage
               and ", " in r["line_item"]]  # fmt: skip
    unmatched = [(d, r) for d, r in lines if (d, r) not in matched]
    assert len(bad) == 1 and len(unmatched) == 3  # the web search line of each day

    r = load.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (len(usage) + len(unmatched), len(good) + len(unmatched), 1)
    assert (load.cost_lines, load.cost_lines_matched, load.cost_only_rows) == (len(lines), len(matched), len(unmatched))

    # Per-model token totals: fresh input = input − cached − cache writes (OpenAI's input includes both).
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for _, _, res in good:
        e = expected[res["model"]]
        e[0] += res["num_model_requests"]
        e[1] += res["input_tokens"] - res.get("input_cached_tokens", 0) - res.get("input_cache_write_tokens", 0)
        e[2] += res.get("input_cached_tokens", 0)
        e[3] += res.get("input_cache_write_tokens", 0)
        e[4] += res.get("output_tokens", 0)
    got = wh.query(
        "SELECT model, sum(requests), sum(input_tokens), sum(cached_input_tokens), coalesce(sum(cache_write_tokens), 0),"
        " coalesce(sum(output_tokens), 0) FROM llm_requests WHERE call_type <> 'cost' GROUP BY model"
    ).rows()
    assert {m: [int(v) for v in rest] for m, *rest in got} == expected

    # Every reported dollar once, plus our price of the one usage row the Costs API has no line for:
    # o3-mini on flex (priced like batch): 7,000 fresh input at $0.55/M, 2,000 cached at $0.55/M,
    # 1,000 cache writes at the input price $1.1/M (no write price listed), 50,000 output at $2.2/M.
    o3 = next(res for _, _, res in good if res["model"] == "o3-mini-2025-01-31")
    fresh = o3["input_tokens"] - o3["input_cached_tokens"] - o3["input_cache_write_tokens"]
    o3_price = (fresh * Decimal("0.55") + o3["input_cached_tokens"] * Decimal("0.55")
                + o3["input_cache_write_tokens"] * Decimal("1.1") + o3["output_tokens"] * Decimal("2.2")) / M  # fmt: skip
    assert o3_price == Decimal("0.11605")
    reported_total = sum(res["amount"]["value"] for _, res in lines)
    total, reported, priced = wh.query(
        "SELECT sum(cost), sum(cost) FILTER (cost_source = 'reported'), sum(cost) FILTER (cost_source = 'priced')"
        " FROM llm_requests WHERE period_start >= '2026-07-01' AND period_start < '2026-07-04'"
    ).row(0)
    assert reported == reported_total and priced == o3_price and total == reported_total + o3_price

    # Reported cost per (day, project, model) is exactly the sum of its line items.
    by_group: dict[tuple, Decimal] = defaultdict(Decimal)
    for d, res in matched:
        by_group[(d, res["project_id"], res["line_item"].split(", ")[0])] += res["amount"]["value"]
    got_groups = wh.query(
        "SELECT CAST(period_start AS DATE), project_id, model, sum(reported_cost) FROM llm_requests"
        " WHERE call_type <> 'cost' AND reported_cost IS NOT NULL GROUP BY ALL"
    ).rows()
    assert {(d, p, m): v for d, p, m, v in got_groups} == dict(by_group)

    # Within a group the amount is split in proportion to our price of each row.
    rows = wh.query(
        "SELECT api_key_id, service_tier, input_tokens, cached_input_tokens, output_tokens, priced_cost, reported_cost"
        " FROM llm_requests WHERE period_start = '2026-07-01' AND model = 'gpt-4o-2024-08-06' ORDER BY api_key_id"
    ).rows(named=True)
    batch_row = next(x for x in rows if x["service_tier"] == "batch")
    assert batch_row["priced_cost"] == (Decimal(batch_row["input_tokens"]) * Decimal("1.25")
                                        + Decimal(batch_row["output_tokens"]) * 5) / M  # fmt: skip
    sync_row = next(x for x in rows if x["service_tier"] == "default")
    assert sync_row["priced_cost"] == (Decimal(sync_row["input_tokens"]) * Decimal("2.5")
                                       + Decimal(sync_row["cached_input_tokens"]) * Decimal("1.25")
                                       + Decimal(sync_row["output_tokens"]) * 10) / M  # fmt: skip
    amount = by_group[(date(2026, 7, 1), "proj_alpha", "gpt-4o-2024-08-06")]
    assert sum(x["reported_cost"] for x in rows) == amount
    weights = sum(x["priced_cost"] for x in rows)
    for x in rows:
        assert abs(x["reported_cost"] - amount * x["priced_cost"] / weights) < Decimal("1e-9")

    # Line items without usage are their own rows; the quarantined result names page, row and reason.
    web = wh.query("SELECT sum(cost), count(*), any_value(tags) FROM llm_requests WHERE call_type = 'cost'").row(0)
    assert web[0] == sum(res["amount"]["value"] for _, res in unmatched) and web[1] == 3
    assert web[2] == ["line_item:web search tool calls"]
    quarantined = wh.query("SELECT file, row_number, column_name, reason, raw_row FROM quarantine").rows(named=True)
    assert len(quarantined) == 1
    q = quarantined[0]
    assert q["file"] == f"GET {COMPLETIONS} page 1" and q["row_number"] == 7
    assert q["column_name"] == "input_cached_tokens" and "exceeds" in q["reason"]
    assert json.loads(q["raw_row"])["project_id"] == "proj_gamma"

    # Nothing of the key is stored anywhere in the warehouse file.
    assert OPENAI_KEY.encode() not in wh.path.read_bytes()
    assert wh.query("SELECT count(*) FROM llm_requests WHERE x_SourceKey IS NULL OR x_Source <> 'openai-usage'").item() == 0


def snapshot(wh: Warehouse) -> tuple:
    return wh.query(
        "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cost), sum(reported_cost) FROM llm_requests"
    ).row(0)


def test_openai_reload_and_overlapping_windows_never_duplicate(priced_wh, admin_key):
    wh = priced_wh
    env = admin_key(OPENAI_KEY)
    window = dict(start_param="start_time", end_param="end_time")
    routes = [
        Route("GET", COMPLETIONS, windowed("openai", ["completions_page1.json", "completions_page2.json"], **window)),
        Route("GET", EMBEDDINGS, windowed("openai", ["embeddings_page1.json"], **window)),
        Route("GET", COSTS, windowed("openai", ["costs_page1.json", "costs_page2.json"], **window)),
    ]
    with RecordedServer(routes) as server:
        first = openai_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 4), api_key_env=env, base_url=server.url)
        once = snapshot(wh)
        assert first.pages[COMPLETIONS] == 2  # 3 days, 2 per page
        again = openai_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 4), api_key_env=env, base_url=server.url)
        assert snapshot(wh) == once and again.result.rows_replaced == first.result.rows_loaded
        overlap = openai_usage.ingest(wh, date(2026, 7, 2), date(2026, 7, 5), api_key_env=env, base_url=server.url)
        assert snapshot(wh) == once
        assert overlap.result.partitions == ["openai-usage/2026-07-02", "openai-usage/2026-07-03"]
        day_one = openai_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 2), api_key_env=env, base_url=server.url)
        assert snapshot(wh) == once and day_one.result.partitions == ["openai-usage/2026-07-01"]
    duplicates = wh.query(
        "SELECT count(*) FROM (SELECT period_start, project_id, model, api_key_id, user_id, call_type, service_tier,"
        " tags, count(*) AS n FROM llm_requests GROUP BY ALL HAVING n > 1)"
    ).item()
    assert duplicates == 0
    assert once[0] == first.result.rows_loaded
    assert request_rollup_differences(wh) == (0, 0)


def test_malformed_json_names_the_page_and_keeps_what_was_loaded(priced_wh, admin_key):
    wh = priced_wh
    env = admin_key(OPENAI_KEY)
    with RecordedServer(openai_routes(), data_dir=DATA / "openai") as server:
        openai_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 4), api_key_env=env, base_url=server.url)
        before = snapshot(wh)
        server.use(openai_routes(costs_page_2=Raw('{"object": "page", "data": [{"object": "bucket", "res')))
        with pytest.raises(SourceError) as caught:
            openai_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 4), api_key_env=env, base_url=server.url)
    message = str(caught.value)
    assert f"OpenAI Usage API: GET {COSTS} page 2: the answer is not JSON" in message
    assert snapshot(wh) == before
    assert wh.query("SELECT count(*) FROM ingest_batches WHERE source_kind = 'openai-usage'").item() == 1


def test_refused_key_is_named_by_its_variable_never_shown(wh, admin_key):
    env = admin_key(OPENAI_KEY)
    echo = {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}.", "type": "invalid_request_error",
                      "code": "invalid_api_key"}}  # fmt: skip
    with RecordedServer([Route("GET", COMPLETIONS, echo, status=401)]) as server:
        with pytest.raises(SourceError) as caught:
            openai_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 4), api_key_env=env, base_url=server.url)
        error = caught.value
        assert f"the admin key in ${KEY_ENV} was refused (HTTP 401" in str(error)
        assert f"GET {COMPLETIONS} page 1" in str(error)
        assert "MARKER" not in str(error) + (error.hint or "")
        assert not wh.exists()  # fetched before the warehouse is opened: nothing written

        run = subprocess.run(
            [sys.executable, "-m", "finops.cli", "ingest", "openai", "--start", "2026-07-01", "--end", "2026-07-04",
             "--api-key-env", KEY_ENV, "--base-url", server.url, "--warehouse", str(wh.path)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
    assert run.returncode == 1
    assert f"${KEY_ENV} was refused" in run.stderr
    assert "MARKER" not in run.stdout + run.stderr


def test_missing_variable_and_a_key_on_the_command_line_are_refused(wh, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(SourceError, match=rf"\${KEY_ENV} is not set"):
        anthropic_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 2), api_key_env=KEY_ENV, base_url="http://127.0.0.1:9")
    with pytest.raises(SourceError, match="NAME of an environment variable") as caught:
        openai_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 2), api_key_env=OPENAI_KEY, base_url="http://127.0.0.1:9")
    assert OPENAI_KEY not in str(caught.value)


def test_server_errors_are_retried_then_given_up_and_timeouts_named(wh, admin_key):
    env = admin_key(OPENAI_KEY)
    slept: list[float] = []
    failing = Route("GET", COMPLETIONS, lambda request: (503, {"error": {"message": "overloaded"}}, {"Retry-After": "0"}))
    with RecordedServer([failing]) as server:
        with pytest.raises(SourceError) as caught:
            openai_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 2), api_key_env=env, base_url=server.url,
                                sleep=slept.append)  # fmt: skip
        assert server.count("GET", COMPLETIONS) == 6
    assert "HTTP 503: overloaded; gave up after 6 attempts" in str(caught.value)
    assert slept == []  # Retry-After: 0 → retried at once, 5 times

    def slow(request):
        time.sleep(1.0)
        return 200, {"data": [], "has_more": False, "next_page": None}

    with RecordedServer([Route("GET", COMPLETIONS, slow)]) as server:
        with pytest.raises(SourceError) as caught:
            openai_usage.ingest(wh, date(2026, 7, 1), date(2026, 7, 2), api_key_env=env, base_url=server.url,
                                timeout=0.1, sleep=lambda s: None)  # fmt: skip
    assert f"GET {COMPLETIONS} page 1: timed out after 0.1s" in str(caught.value)


# -- Anthropic -------------------------------------------------------------------------------


def anthropic_routes(*, throttle: Once | None = None) -> list[Route]:
    return [
        Route("GET", MESSAGES, "usage_page2.json", query={"page": "page_2_usage"}),
        Route("GET", MESSAGES, "usage_page1.json"),
        Route("GET", COST_REPORT, throttle or "cost_report_page2.json", query={"page": "page_2_cost"}),
        Route("GET", COST_REPORT, "cost_report_page1.json"),
    ]


def anthropic_price(res: dict) -> Decimal:
    """Our price of one usage result, by hand from PRICES_CSV (per 1M tokens)."""
    sonnet = res["model"].startswith("claude-sonnet-4")
    long = res["context_window"] == "200k-1M"
    fresh, read, out = res["uncached_input_tokens"], res["cache_read_input_tokens"], res["output_tokens"]
    write_5m, write_1h = res["cache_creation"]["ephemeral_5m_input_tokens"], res["cache_creation"]["ephemeral_1h_input_tokens"]
    if sonnet:
        p_in, p_out = (Decimal(6), Decimal("22.5")) if long else (Decimal(3), Decimal(15))
        if res["service_tier"] == "batch":
            p_in, p_out = Decimal("1.5"), Decimal("7.5")
        p_read, p_5m, p_1h = Decimal("0.3"), Decimal("3.75"), Decimal(6)
    else:
        p_in, p_out, p_read, p_5m, p_1h = Decimal("0.8"), Decimal(4), Decimal("0.08"), Decimal(1), Decimal("1.6")
    return (fresh * p_in + read * p_read + write_5m * p_5m + write_1h * p_1h + out * p_out) / M


def test_anthropic_usage_and_cost_report_over_pages_with_a_429(priced_wh, admin_key):
    wh = priced_wh
    throttle = Once("anthropic", "cost_report_page2.json", 429, {"Retry-After": "0"})
    with RecordedServer(anthropic_routes(throttle=throttle), data_dir=DATA / "anthropic") as server:
        load = anthropic_usage.ingest(
            wh, date(2026, 7, 1), date(2026, 7, 3), api_key_env=admin_key(ANTHROPIC_KEY), base_url=server.url
        )
        usage_requests = server.received("GET", MESSAGES)
        assert [r.param("page") for r in usage_requests] == [None, "page_2_usage"]
        assert [r.param("page") for r in server.received("GET", COST_REPORT)] == [None, "page_2_cost", "page_2_cost"]
        first = usage_requests[0]
        assert first.headers["x-api-key"] == ANTHROPIC_KEY and first.headers["anthropic-version"] == "2023-06-01"
        assert first.param("starting_at") == "2026-07-01T00:00:00Z" and first.param("ending_at") == "2026-07-03T00:00:00Z"
        assert first.query["group_by[]"] == ["model", "workspace_id", "api_key_id", "service_tier", "context_window"]
    assert load.retries == 1

    usage = [(b["starting_at"][:10], r) for name in ("usage_page1.json", "usage_page2.json")
             for b in recorded("anthropic", name)["data"] for r in b["results"]]  # fmt: skip
    good = [(d, r) for d, r in usage if isinstance(r["output_tokens"], int)]
    lines = [(b["starting_at"][:10], r) for name in ("cost_report_page1.json", "cost_report_page2.json")
             for b in recorded("anthropic", name)["data"] for r in b["results"]]  # fmt: skip
    groups = {(d, r["workspace_id"], r["model"]) for d, r in good}
    matched = [(d, r) for d, r in lines if r["model"] and (d, r["workspace_id"], r["model"]) in groups]
    unmatched = [(d, r) for d, r in lines if (d, r) not in matched]
    assert len(usage) - len(good) == 1 and len(unmatched) == 2  # the web search line of each day
    r = load.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (len(usage) + len(unmatched), len(good) + len(unmatched), 1)

    # Per-model tokens: uncached input as is, cache writes = 5m + 1h; no request count in the report.
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for _, res in good:
        e = expected[res["model"]]
        e[0] += res["uncached_input_tokens"]
        e[1] += res["cache_read_input_tokens"]
        e[2] += res["cache_creation"]["ephemeral_5m_input_tokens"] + res["cache_creation"]["ephemeral_1h_input_tokens"]
        e[3] += res["output_tokens"]
    got = wh.query(
        "SELECT model, sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens)"
        " FROM llm_requests WHERE call_type = 'completion' GROUP BY model"
    ).rows()
    assert {m: [int(v) for v in rest] for m, *rest in got} == expected
    assert wh.query("SELECT count(requests) FROM llm_requests WHERE call_type = 'completion'").item() == 0

    # Our price of every row, by hand: long-context rows at the above-200k prices, 1-hour cache
    # writes at the 1-hour price, batch at batch prices.
    priced = wh.query(
        "SELECT CAST(period_start AS DATE) AS day, api_key_id, service_tier, input_tokens, priced_cost"
        " FROM llm_requests WHERE call_type = 'completion'"
    ).rows(named=True)
    by_key = {(str(x["day"]), x["api_key_id"], x["service_tier"], x["input_tokens"]): x["priced_cost"] for x in priced}
    tiers = {"standard": "default", "batch": "batch"}
    for d, res in good:
        assert by_key[(d, res["api_key_id"], tiers[res["service_tier"]], res["uncached_input_tokens"])] == anthropic_price(res)

    # Amounts are cents as decimal strings: every reported dollar once, plus our price of the
    # default workspace's haiku on day 2, which the cost report does not cover.
    reported_total = sum(Decimal(res["amount"]) for _, res in lines) / 100
    haiku_day2 = next(res for d, res in good if d == "2026-07-02" and res["model"].startswith("claude-3-5-haiku"))
    total, reported = wh.query(
        "SELECT sum(cost), sum(cost) FILTER (cost_source = 'reported') FROM llm_requests"
    ).row(0)
    assert reported == reported_total and total == reported_total + anthropic_price(haiku_day2)
    by_group: dict[tuple, Decimal] = defaultdict(Decimal)
    for d, res in matched:
        by_group[(d, res["workspace_id"], res["model"])] += Decimal(res["amount"]) / 100
    got_groups = wh.query(
        "SELECT strftime(period_start, '%Y-%m-%d'), project_id, model, sum(reported_cost) FROM llm_requests"
        " WHERE call_type = 'completion' AND reported_cost IS NOT NULL GROUP BY ALL"
    ).rows()
    assert {(d, p, m): v for d, p, m, v in got_groups} == dict(by_group)
    assert by_group[("2026-07-01", "wrkspc_research", "claude-sonnet-4-20250514")] == Decimal("7.32448401")

    quarantined = wh.query("SELECT file, row_number, column_name, reason FROM quarantine").rows()
    assert quarantined == [(f"GET {MESSAGES} page 2", 5, "output_tokens", "output_tokens is not a non-negative whole number")]
    assert ANTHROPIC_KEY.encode() not in wh.path.read_bytes()


def test_anthropic_cli_loads_and_prints_without_the_key(tmp_path, admin_key):
    env_name = admin_key(ANTHROPIC_KEY)
    warehouse = tmp_path / "w.duckdb"
    with RecordedServer(anthropic_routes(), data_dir=DATA / "anthropic") as server:
        run = subprocess.run(
            [sys.executable, "-m", "finops.cli", "ingest", "anthropic", "--start", "2026-07-01", "--end", "2026-07-03",
             "--api-key-env", env_name, "--base-url", server.url, "--warehouse", str(warehouse)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Anthropic 2026-07-01 to 2026-07-03 (exclusive): 11 rows read, 10 loaded, 1 quarantined from 4 pages" in run.stdout
    assert "claude-sonnet-4-20250514" in run.stdout and "Web Search" not in run.stdout
    assert "MARKER" not in run.stdout + run.stderr
    assert f"Warehouse: {warehouse}" in run.stdout
