"""Langfuse exports of many agent frameworks: every GENERATION/EMBEDDING observation lands (issue 13).

tests/data/langfuse/frameworks/ holds one export per framework, written for these tests in the shape
Langfuse shows that framework's traces (observation types and names, nesting, id formats, usage keys,
metadata and cost fields of its integration); every content field carries the marker. The expected
numbers are not taken from the connector: this module walks the JSON in plain Python (the oracle),
and reads each framework's usage keys with that integration's own meaning, written out per file below.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import langfuse
from finops.warehouse import Warehouse
from tests.connectors.priced import priced_warehouse
from tests.rollup import request_rollup_differences

FRAMEWORKS = Path(__file__).parent.parent / "data" / "langfuse" / "frameworks"
MARKER = "SECRET-PROMPT-MARKER-7f3a"
MODEL_CALL_TYPES = {"GENERATION", "EMBEDDING"}

D = Decimal
# USD per token: (provider, model, input, cached input, cache write, output)
PRICES = [
    ("openai", "gpt-4o", D("0.0000025"), D("0.00000125"), None, D("0.00001")),
    ("openai", "gpt-4o-mini", D("0.00000015"), D("0.000000075"), None, D("0.0000006")),
    ("openai", "o3-mini", D("0.0000011"), D("0.00000055"), None, D("0.0000044")),
    ("openai", "text-embedding-3-small", D("0.00000002"), None, None, None),
    ("anthropic", "claude-sonnet-4-20250514", D("0.000003"), D("0.0000003"), D("0.00000375"), D("0.000015")),
]


def new_warehouse(path: Path) -> Warehouse:
    return priced_warehouse(path, PRICES)


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return new_warehouse(tmp_path / "warehouse.duckdb")


# -- the oracle: plain Python over the JSON ----------------------------------------------------------


def documents(path: Path) -> Iterator[object]:
    text = path.read_text()
    if path.suffix == ".jsonl":
        for line in text.splitlines():
            if line.strip():
                yield json.loads(line, parse_float=Decimal)
    else:
        yield json.loads(text, parse_float=Decimal)


def observations(path: Path) -> dict[tuple[str, str], dict]:
    """Every observation of the file by (trace id, observation id), the last copy winning."""
    found: dict[tuple[str, str], dict] = {}

    def visit(o: dict, trace_id: str | None) -> None:
        trace_id = o.get("traceId") or o.get("trace_id") or trace_id
        found[(trace_id, o["id"])] = o
        for child in o.get("children") or []:
            visit(child, trace_id)

    def item(x: object) -> None:
        if isinstance(x, list):
            for y in x:
                item(y)
        elif isinstance(x, dict) and isinstance(x.get("data"), list):
            item(x["data"])
        elif isinstance(x, dict) and ("trace" in x or "observations" in x):
            trace = x.get("trace") or x
            for o in x.get("observations", trace.get("observations")) or []:
                if isinstance(o, dict):  # the traces list gives observation ids only
                    visit(o, trace["id"])
        elif isinstance(x, dict) and ("type" in x or "traceId" in x or "trace_id" in x):
            visit(x, None)

    for doc in documents(path):
        item(doc)
    return found


def model_calls(path: Path) -> dict[tuple[str, str], dict]:
    return {k: o for k, o in observations(path).items() if o["type"] in MODEL_CALL_TYPES}


def reported_cost(o: dict) -> Decimal | None:
    details = o.get("costDetails") or o.get("cost_details") or {}
    for value in (details.get("total"), o.get("totalCost"), o.get("total_cost"), o.get("calculatedTotalCost")):
        if value is not None:
            return Decimal(value)
    return sum(details.values(), Decimal(0)) if details else None


# Each integration's usage keys, read by hand: (fresh input, cache read, cache write, output with reasoning, reasoning).
Tokens = tuple[int, int, int, int, int]


def _otel_overlapping(inp: str, cached: str, out: str, reasoning: str) -> Callable[[dict], Tokens]:
    # gen_ai.usage.input_tokens includes the cached tokens, output_tokens the reasoning (total = input + output)
    def read(o: dict) -> Tokens:
        u = o["usageDetails"]
        return (u[inp] - u.get(cached, 0), u.get(cached, 0), 0, u[out], u.get(reasoning, 0))

    return read


def _langfuse_disjoint(o: dict) -> Tokens:
    # Langfuse's OpenAI integration / LangChain handler: the buckets are disjoint
    u = o.get("usageDetails") or o.get("usage_details")
    cached = u.get("input_cached_tokens", 0) + u.get("input_cache_read", 0)
    reasoning = u.get("output_reasoning_tokens", 0) + u.get("output_reasoning", 0)
    fresh = u["input"] + u.get("input_audio_tokens", 0) + u.get("input_audio", 0)
    out = u.get("output", 0) + reasoning + u.get("output_audio_tokens", 0) + u.get("output_audio", 0)
    return (fresh, cached, u.get("input_cache_creation", 0), out, reasoning)


def _adk(o: dict) -> Tokens:
    u = o["usageDetails"]
    return (u["input"], 0, 0, u["output"], 0)


def _autogen(o: dict) -> Tokens:
    u = o["usageDetails"]
    if "input_tokens" in u:  # OTel gen_ai.usage.* names, no cache
        return (u["input_tokens"], 0, 0, u["output_tokens"], 0)
    # the Anthropic client: input is uncached, cache reads and writes beside it
    return (u["input"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"], u["output"], 0)


def _llamaindex(o: dict) -> Tokens:
    if o.get("usageDetails"):
        u = o["usageDetails"]
    elif o.get("usage"):
        u = o["usage"]
    else:
        u = {"input": o["promptTokens"], "output": o["completionTokens"]}
    return (u["input"], 0, 0, u["output"], 0)


def _vercel(o: dict) -> Tokens:
    u = o["usageDetails"]
    if "tokens" in u:  # ai.embedMany: one count, all input
        return (u["tokens"], 0, 0, 0, 0)
    # AI SDK: inputTokens includes cachedInputTokens, outputTokens includes reasoningTokens
    return (
        u["inputTokens"] - u["cachedInputTokens"],
        u["cachedInputTokens"],
        0,
        u["outputTokens"],
        u["reasoningTokens"],
    )


CASES: dict[str, tuple[Callable[[dict], Tokens], dict[str | None, int]]] = {
    # file: (its usage reading, calls per agent)
    "openai_agents_sdk.json": (
        _otel_overlapping("input", "input_cache_read", "output", "output_reasoning"),
        {"Triage Agent": 1, "Billing Agent": 2, "Math Tutor": 2, "Research Agent": 3},
    ),
    "crewai.jsonl": (
        _otel_overlapping("prompt_tokens", "cache_read", "completion_tokens", "-"),
        {
            "Senior Research Analyst": 2,
            "Content Writer": 2,
            "Support Representative": 2,
            "City Selector": 1,
            "Local Expert": 1,
            "Travel Concierge": 2,
        },
    ),
    # LangGraph: the embedding sits outside any agent, and the trace metadata names none: the trace name
    "langgraph.json": (_langfuse_disjoint, {"supervisor": 3, "researcher": 6, "writer": 3, "LangGraph": 1}),
    "pydantic_ai.json": (
        _otel_overlapping("input", "cache_read_tokens", "output", "reasoning_tokens"),
        {"support_agent": 6, "weather_agent": 3},
    ),
    "google_adk.json": (_adk, {"invoke_agent coordinator": 4, "invoke_agent weather_agent": 4}),
    # AutoGen: a call whose parent was not exported belongs to the trace's only agent (third trace); in the
    # two-agent traces it has none (the file holds no trace, so no trace metadata or name either)
    "autogen.jsonl": (_autogen, {"invoke_agent assistant": 4, "invoke_agent critic": 2, None: 2}),
    "llamaindex.json": (_llamaindex, {"FunctionAgent": 9}),
    "vercel_ai_sdk.json": (_vercel, {"support-agent": 6, "billing-agent": 3}),  # trace metadata, a JSON string
    "blob_storage_observations.jsonl": (_langfuse_disjoint, {"invoice-agent": 4, "refund-agent": 2}),
    "observations_api_page.json": (_langfuse_disjoint, {None: 6}),  # the traces are in traces_api_list.json
}
TRACE_ONLY_FILES = ("blob_storage_traces.jsonl", "traces_api_list.json")


def expected(names: list[str]) -> dict:
    """calls, tasks, token sums and reported cost of these files, from the oracle."""
    calls: dict[tuple[str, str], tuple[dict, Callable[[dict], Tokens]]] = {}
    for name in names:
        if name in CASES:
            for key, o in model_calls(FRAMEWORKS / name).items():
                calls[key] = (o, CASES[name][0])
    tokens = [read(o) for o, read in calls.values()]
    costs = [reported_cost(o) for o, _ in calls.values()]
    return {
        "calls": len(calls),
        "tasks": len({trace for trace, _ in calls}),
        "tokens": tuple(sum(t[i] for t in tokens) for i in range(5)),
        "reported_cost": sum((c for c in costs if c is not None), Decimal(0)),
        "reported_calls": sum(c is not None for c in costs),
    }


def loaded(wh: Warehouse) -> dict:
    row = wh.query(
        "SELECT count(*) AS calls, count(DISTINCT task_id) AS tasks,"
        " sum(coalesce(input_tokens, 0)) AS i, sum(coalesce(cached_input_tokens, 0)) AS c,"
        " sum(coalesce(cache_write_tokens, 0)) AS w, sum(coalesce(output_tokens, 0)) AS o,"
        " sum(coalesce(reasoning_tokens, 0)) AS r, coalesce(sum(reported_cost), 0) AS cost,"
        " count(reported_cost) AS reported_calls FROM llm_requests WHERE x_Source = 'langfuse'"
    ).row(0, named=True)
    return {
        "calls": row["calls"],
        "tasks": row["tasks"],
        "tokens": (row["i"], row["c"], row["w"], row["o"], row["r"]),
        "reported_cost": row["cost"],
        "reported_calls": row["reported_calls"],
    }


def warehouse_text(wh: Warehouse) -> str:
    return str(wh.query("SELECT * FROM llm_requests").rows()) + str(wh.query("SELECT * FROM quarantine").rows())


# -- per framework -------------------------------------------------------------------------------------


def test_fixtures_are_what_they_claim() -> None:
    assert sorted(p.name for p in FRAMEWORKS.iterdir()) == sorted([*CASES, *TRACE_ONLY_FILES])
    for name in CASES:
        text = (FRAMEWORKS / name).read_text()
        assert MARKER in text, name
        calls = model_calls(FRAMEWORKS / name)
        assert len(calls) >= 6 and len({t for t, _ in calls}) >= 3, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_model_call_of_a_framework_export_lands(wh: Warehouse, name: str) -> None:
    report = langfuse.ingest(wh, [FRAMEWORKS / name])
    want = expected([name])
    assert loaded(wh) == want
    assert (report.result.rows_read, report.result.rows_loaded, report.result.rows_quarantined) == (
        want["calls"], want["calls"], 0)  # fmt: skip
    agents = Counter(wh.query("SELECT agent_id FROM llm_requests")["agent_id"].to_list())
    assert agents == Counter(CASES[name][1])
    # The trace is the task, whatever the session.
    tasks = set(wh.query("SELECT DISTINCT task_id FROM llm_requests")["task_id"])
    assert tasks == {trace for trace, _ in model_calls(FRAMEWORKS / name)}
    assert MARKER not in warehouse_text(wh)


def test_a_few_calls_by_hand(wh: Warehouse) -> None:
    langfuse.ingest(wh, sorted(FRAMEWORKS.iterdir()))
    rows = {r["request_id"]: r for r in wh.query("SELECT * FROM llm_requests").iter_rows(named=True)}

    def only(where: Callable[[dict], bool]) -> dict:
        (row,) = [r for r in rows.values() if where(r)]
        return row

    # OpenAI Agents SDK, o3-mini: input 1320 of which 896 cached, output 410 of which 320 reasoning; no cost.
    o3 = only(lambda r: r["model"] == "o3-mini" and r["input_tokens"] == 1320 - 896)
    assert (o3["cached_input_tokens"], o3["output_tokens"], o3["reasoning_tokens"]) == (896, 410, 320)
    assert (o3["agent_id"], o3["cost_source"]) == ("Math Tutor", "priced")
    assert o3["cost"] == (1320 - 896) * D("0.0000011") + 896 * D("0.00000055") + 410 * D("0.0000044")
    # LangGraph, Anthropic: disjoint buckets, cache write beside; no cost reported, so ours.
    claude = next(
        r for r in rows.values() if r["model"] == "claude-sonnet-4-20250514" and r["cache_write_tokens"] == 1200
    )
    assert (claude["input_tokens"], claude["cached_input_tokens"], claude["output_tokens"]) == (310, 4096, 520)
    assert claude["agent_id"] == "researcher"
    # Google ADK: costDetails without a total: the sum of its parts.
    pro = only(lambda r: r["model"] == "gemini-2.5-pro" and r["input_tokens"] == 2100)
    assert (pro["reported_cost"], pro["agent_id"]) == (D("0.002625") + D("0.0033"), "invoke_agent coordinator")
    # Blob storage: snake_case fields, provided_model_name, audio input beside text, reasoning beside output.
    blob = [r for r in rows.values() if r["input_tokens"] == 1100 + 240 and r["model"] == "gpt-4o"]
    assert len(blob) == 3 and {r["output_tokens"] for r in blob} == {300 + 128}
    assert {r["agent_id"] for r in blob} == {"invoice-agent", "refund-agent"}
    # The observations page, with the traces list loaded beside it: the trace metadata's agent_id and user.
    page = rows["api-trace-1:gen-1"]
    assert (page["agent_id"], page["user_id"], page["task_id"]) == ("checkout-1", "buyer-1", "api-trace-1")
    assert (page["input_tokens"], page["output_tokens"], page["reported_cost"]) == (400 + 150, 90 + 300, D("0.000246"))
    assert rows["api-trace-2:gen-0"]["agent_id"] == "checkout-0"
    # Vercel AI SDK: a start time with a +02:00 offset is stored in UTC.
    vercel = only(lambda r: r["model"] == "o3-mini" and r["input_tokens"] == 2600 - 2048 and r["user_id"] == "shop-1")
    assert str(vercel["period_start"]) == "2025-11-21 12:35:04"


def test_all_files_together_equal_the_sum_of_per_file_loads(tmp_path: Path) -> None:
    names = sorted(p.name for p in FRAMEWORKS.iterdir())
    together = new_warehouse(tmp_path / "together.duckdb")
    report = langfuse.ingest(together, [FRAMEWORKS / n for n in names])
    want = expected(names)
    assert loaded(together) == want
    assert report.result.rows_read == report.result.rows_loaded == want["calls"]
    assert set(report.per_file["calls"]) != {0} and report.per_file["calls"].sum() == want["calls"]
    one_by_one = new_warehouse(tmp_path / "one_by_one.duckdb")
    loaded_per_file = 0
    for name in names:
        loaded_per_file += langfuse.ingest(one_by_one, [FRAMEWORKS / name]).result.rows_loaded
    assert loaded_per_file == want["calls"]
    assert loaded(one_by_one) == want
    # Loading everything again changes nothing.
    again = langfuse.ingest(together, [FRAMEWORKS / n for n in names])
    assert again.result.rows_replaced == want["calls"]
    assert loaded(together) == want
    with together.writer() as con:
        con.execute("CHECKPOINT")
    for path in tmp_path.iterdir():
        if path.name.startswith("together.duckdb"):
            assert MARKER.encode() not in path.read_bytes(), path
    assert MARKER not in warehouse_text(together)


def test_rows_of_the_old_bare_id_version_are_replaced(wh: Warehouse) -> None:
    path = FRAMEWORKS / "langgraph.json"
    langfuse.ingest(wh, [path])
    n = wh.query("SELECT count(*) FROM llm_requests").item()
    with wh.writer() as con:  # as the version that keyed a call by its observation id alone left them
        con.execute("UPDATE llm_requests SET request_id = span_id")
    assert wh.query("SELECT count(*) FROM llm_requests WHERE request_id NOT LIKE '%:%'").item() == n
    report = langfuse.ingest(wh, [path])
    assert report.result.rows_replaced == n
    assert wh.query("SELECT count(*) FROM llm_requests").item() == n == expected([path.name])["calls"]
    assert wh.query("SELECT count(*) FROM llm_requests WHERE request_id = task_id || ':' || span_id").item() == n
    assert request_rollup_differences(wh) == (0, 0)


def test_an_earlier_loads_agent_is_kept_by_the_new_key(wh: Warehouse, tmp_path: Path) -> None:
    langfuse.ingest(wh, [FRAMEWORKS / "langgraph.json"])
    export = json.loads((FRAMEWORKS / "langgraph.json").read_text())[0]
    call = next(o for o in export["observations"] if o["name"] == "ChatAnthropic")
    alone = tmp_path / "alone.json"  # the call again without its ancestors (nor its trace)
    alone.write_text(json.dumps([dict(call, parentObservationId=None)]))
    langfuse.ingest(wh, [alone])
    row = wh.query("SELECT agent_id FROM llm_requests WHERE span_id = ?", [call["id"]])
    assert row["agent_id"].to_list() == ["researcher"]


# -- shapes, timestamps and bad input -----------------------------------------------------------------


def _generation(trace: str, id_: str, start: object, **kw: object) -> dict:
    o = {"id": id_, "traceId": trace, "type": "GENERATION", "name": "llm", "startTime": start, "model": "gpt-4o-mini",
         "usageDetails": {"input": 100, "output": 10}, "input": MARKER, "output": MARKER}  # fmt: skip
    o.update(kw)
    return o


def test_timestamps_in_every_form(wh: Warehouse, tmp_path: Path) -> None:
    starts = {
        "iso-9": ("2025-11-21T10:00:01.123456789Z", "2025-11-21 10:00:01.123456"),
        "iso-1": ("2025-11-21T10:00:01.1Z", "2025-11-21 10:00:01.100000"),
        "offset": ("2025-11-21T15:30:01.5+05:30", "2025-11-21 10:00:01.500000"),
        "blob": ("2025-11-21 10:00:01.250", "2025-11-21 10:00:01.250000"),
        "epoch-s": (1763719201, "2025-11-21 10:00:01"),
        "epoch-s-frac": (1763719201.5, "2025-11-21 10:00:01.500000"),
        "epoch-ms": (1763719201250, "2025-11-21 10:00:01.250000"),
        "epoch-us": ("1763719201250123", "2025-11-21 10:00:01.250123"),
        "epoch-ns": (1763719201250123456, "2025-11-21 10:00:01.250123"),
    }
    path = tmp_path / "times.jsonl"
    path.write_text("".join(json.dumps(_generation("t-times", k, v[0])) + "\n" for k, v in starts.items()))
    report = langfuse.ingest(wh, [path])
    assert report.result.rows_loaded == len(starts)
    got = {r["span_id"]: str(r["period_start"]) for r in wh.query("SELECT * FROM llm_requests").iter_rows(named=True)}
    assert got == {k: v[1].removesuffix(".000000") for k, v in starts.items()}


def test_malformed_observations_are_quarantined_with_file_line_and_reason(wh: Warehouse, tmp_path: Path) -> None:
    huge = {"blob": MARKER * 20000, "nested": [{"deep": [MARKER]}]}
    lines = [
        _generation("t-bad", "ok-1", "2025-11-21T10:00:00Z", metadata=huge),
        _generation("t-bad", "bad-usage", "2025-11-21T10:00:00Z", usageDetails={"input": "many", "output": 3}),
        _generation("t-bad", "bad-time", "yesterday"),
        _generation("t-bad", None, "2025-11-21T10:00:00Z"),
        _generation("t-bad", "bad-audio", "2025-11-21T10:00:00Z", usageDetails={"input": 5, "input_audio_tokens": -5}),
        _generation("t-bad", "bad-cost", "2025-11-21T10:00:00Z", costDetails={"total": "free"}),
        _generation(None, "no-trace", "2025-11-21T10:00:00Z"),
        _generation("t-bad", "bad-shape", "2025-11-21T10:00:00Z", metadata=f"{MARKER} text", usageDetails="n/a"),
        _generation("t-bad", "ok-2", "2025-11-21T10:00:00Z", metadata=[MARKER, None], usageDetails=None),
        _generation("t-bad", "ok-3", "2025-11-21T10:00:00Z", metadata=None, costDetails=None, totalCost=0.5),
        {"id": "span-1", "traceId": "t-bad", "type": "SPAN", "name": "x", "startTime": "never", "metadata": None},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in lines))
    report = langfuse.ingest(wh, [path])
    r = report.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (10, 3, 7)
    assert r.rows_read == r.rows_loaded + r.rows_quarantined
    quarantine = {
        row["row_number"]: (row["file"], row["column_name"], row["reason"])
        for row in wh.query("SELECT * FROM quarantine").iter_rows(named=True)
    }
    f = str(path)
    assert quarantine == {
        2: (f, "usageDetails.input", "usageDetails.input: not a non-negative integer"),
        3: (f, "startTime", "startTime: not a timestamp"),
        4: (f, "id", "id: missing"),
        5: (f, "usageDetails.input_audio_tokens", "usageDetails.input_audio_tokens: not a non-negative integer"),
        6: (f, "costDetails.total", "costDetails.total: not a number"),
        7: (f, "traceId", "traceId: missing"),
        8: (f, "usageDetails", "usageDetails: not an object"),
    }
    rows = {r["span_id"]: r for r in wh.query("SELECT * FROM llm_requests").iter_rows(named=True)}
    assert set(rows) == {"ok-1", "ok-2", "ok-3"}
    # usageDetails null is no usage (not an error); totalCost is the reported cost when costDetails is null.
    assert (rows["ok-2"]["input_tokens"], rows["ok-2"]["output_tokens"]) == (None, None)
    assert rows["ok-3"]["reported_cost"] == D("0.5")
    assert MARKER not in warehouse_text(wh)


def test_list_traces_give_their_fields_to_observations_of_other_files(wh: Warehouse, tmp_path: Path) -> None:
    # GET /api/public/traces lists observation ids only: no error, no rows, but the trace's fields.
    only_traces = langfuse.ingest(wh, [FRAMEWORKS / "traces_api_list.json"])
    assert (only_traces.result.rows_read, only_traces.result.rows_loaded) == (0, 0)
    # Trace metadata as an object with `agent`, in a blob-storage traces line (snake_case).
    trace = {"id": "t-join", "name": "nightly", "user_id": "ops", "session_id": "s-1", "tags": ["batch"],
             "metadata": {"agent": "reconciler", "note": MARKER}}  # fmt: skip
    (tmp_path / "traces.jsonl").write_text(json.dumps(trace) + "\n")
    (tmp_path / "obs.json").write_text(json.dumps({"data": [_generation("t-join", "g1", "2025-11-21T10:00:00Z")]}))
    langfuse.ingest(wh, [tmp_path / "obs.json", tmp_path / "traces.jsonl"])
    row = wh.query("SELECT * FROM llm_requests").row(0, named=True)
    assert (row["agent_id"], row["user_id"], row["tags"], row["task_id"]) == ("reconciler", "ops", ["batch"], "t-join")


# -- any order, missing parents, nesting ---------------------------------------------------------------


def _reshape(observations: list[dict], rnd: random.Random, drop: float, nest: float) -> list[dict]:
    """Drop some non-call observations (their children lose their parent), nest some in `children`, shuffle."""
    kept = [dict(o) for o in observations if o["type"] in MODEL_CALL_TYPES or rnd.random() >= drop]
    by_id = {o["id"]: o for o in kept}
    roots = []
    for o in kept:
        parent = by_id.get(o.get("parentObservationId"))
        if parent is not None and rnd.random() < nest:
            o.pop("parentObservationId")
            o.pop("traceId") if rnd.random() < 0.5 else None
            parent.setdefault("children", []).append(o)
        else:
            roots.append(o)
    for o in kept:
        rnd.shuffle(o.get("children", []))
    rnd.shuffle(roots)
    return roots


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), drop=st.sampled_from([0.0, 0.3, 1.0]), nest=st.sampled_from([0.0, 0.5, 1.0]))
def test_order_missing_parents_and_nesting_keep_calls_tokens_and_cost(seed: int, drop: float, nest: float) -> None:
    rnd = random.Random(seed)
    names = ["openai_agents_sdk.json", "langgraph.json"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name in names:
            exports = json.loads((FRAMEWORKS / name).read_text())
            reshaped = [dict(e, observations=_reshape(e["observations"], rnd, drop, nest)) for e in exports]
            rnd.shuffle(reshaped)
            paths.append(Path(tmp) / name)
            paths[-1].write_text(json.dumps(reshaped))
        warehouse = new_warehouse(Path(tmp) / "w.duckdb")
        report = langfuse.ingest(warehouse, paths)
        assert loaded(warehouse) == expected(names)
        assert report.result.rows_quarantined == 0
        if drop == 0.0:  # nothing removed: every call keeps its agent
            agents = Counter(warehouse.query("SELECT agent_id FROM llm_requests")["agent_id"].to_list())
            assert agents == Counter(CASES[names[0]][1]) + Counter(CASES[names[1]][1])
