"""`finops ingest otel` over spans as each GenAI instrumentation writes them (issue 13): every model call lands.

One OTLP/JSON fixture per instrumentation or framework in tests/data/otel/instrumentations/
(written from the frameworks' docs by make_fixtures.py there): OTel GenAI contrib (new names),
OpenLLMetry (prompt_tokens), OpenInference for CrewAI / LlamaIndex / OpenAI Agents SDK / Google
ADK / AutoGen, PydanticAI with Logfire, Vercel AI SDK. Each has several traces, agent and
aggregate spans with usage totals, content attributes and span events with the marker.

The expected values are counted here from the JSON in plain Python, independently of the
connector: which spans are model calls is written by hand per fixture (their names), and the
token attributes each instrumentation writes are named per fixture too.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import otel
from finops.warehouse import Warehouse
from tests.connectors.priced import priced_warehouse
from tests.rollup import request_rollup_differences

DATA = Path(__file__).parent.parent / "data" / "otel" / "instrumentations"
MARKER = "SECRET-PROMPT-MARKER-7f3a"

D = Decimal
# USD per token: (provider, model, input, cached input, cache write, output). Dated versions priced like the alias.
PRICES = [
    ("openai", "gpt-4o", D("0.0000025"), D("0.00000125"), None, D("0.00001")),
    ("openai", "gpt-4o-2024-08-06", D("0.0000025"), D("0.00000125"), None, D("0.00001")),
    ("openai", "gpt-4o-mini", D("0.00000015"), D("0.000000075"), None, D("0.0000006")),
    ("openai", "gpt-4o-mini-2024-07-18", D("0.00000015"), D("0.000000075"), None, D("0.0000006")),
    ("openai", "o3-mini", D("0.0000011"), D("0.00000055"), None, D("0.0000044")),
    ("openai", "o3-mini-2025-01-31", D("0.0000011"), D("0.00000055"), None, D("0.0000044")),
    ("openai", "text-embedding-3-small", D("0.00000002"), None, None, None),
    ("anthropic", "claude-sonnet-4-20250514", D("0.000003"), D("0.0000003"), D("0.00000375"), D("0.000015")),
    ("gemini", "gemini-2.0-flash", D("0.0000001"), D("0.000000025"), None, D("0.0000004")),
]
PRICE = {model: (inp, cached, write, out) for _, model, inp, cached, write, out in PRICES}


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return _warehouse(tmp_path)


def _warehouse(folder: Path) -> Warehouse:
    return priced_warehouse(folder / "warehouse.duckdb", PRICES)


# -- the oracle: what each fixture holds, read from the JSON by hand-written rules ------------------------------


@dataclass
class Spec:
    """How one instrumentation writes a model call: which spans are calls, where tokens and model are."""

    is_call: Callable[[dict], bool]  # by span name (and, where needed, its trace)
    model: tuple[str, ...]  # the attribute naming the model the call was priced by, first present
    input: tuple[str, ...]
    output: tuple[str, ...] = ()
    cache_read: tuple[str, ...] = ()
    cache_write: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = ()
    agents: dict[str, str | None] = field(default_factory=dict)  # span id → expected agent


GENAI = {
    "model": ("gen_ai.response.model", "gen_ai.request.model"),
    "input": ("gen_ai.usage.input_tokens",),
    "output": ("gen_ai.usage.output_tokens",),
    "cache_read": ("gen_ai.usage.cache_read.input_tokens",),
    "cache_write": ("gen_ai.usage.cache_creation.input_tokens",),
    "reasoning": ("gen_ai.usage.reasoning.output_tokens",),
}
OPENINFERENCE = {
    "model": ("llm.model_name", "embedding.model_name"),
    "input": ("llm.token_count.prompt",),
    "output": ("llm.token_count.completion",),
    "cache_read": ("llm.token_count.prompt_details.cache_read",),
    "cache_write": ("llm.token_count.prompt_details.cache_write",),
    "reasoning": ("llm.token_count.completion_details.reasoning",),
}


def named(*names: str) -> Callable[[dict], bool]:
    return lambda span: span["name"] in names


SPECS = {
    # Agent spans (invoke_agent with 50,000 input tokens of totals), tools: only the chat and embeddings spans.
    "genai_openai.jsonl": Spec(
        is_call=lambda s: s["name"].startswith(("chat ", "embeddings ")),
        **GENAI,
        agents={
            "0100000000000002": "asst_planner",  # gen_ai.agent.id wins over the name
            "0100000000000004": "asst_planner",  # under a tool span
            "0100000000000006": "Summarizer",  # a create_agent span
            "0101000000000001": None,  # outside any agent
            "0101000000000002": None,  # its parent was never exported
            "0102000000000002": "Triage",  # ids in base64
        },
    ),
    # workflow / agent / task / tool spans (the task span with 99,999 tokens of totals) are context.
    "openllmetry.jsonl": Spec(
        is_call=named("openai.chat", "anthropic.chat", "openai.embeddings"),
        model=("gen_ai.response.model", "gen_ai.request.model"),
        input=("gen_ai.usage.prompt_tokens",),
        output=("gen_ai.usage.completion_tokens",),
        cache_read=("gen_ai.usage.cache_read_input_tokens",),
        cache_write=("gen_ai.usage.cache_creation_input_tokens",),
        agents={"0200000000000004": "researcher", "0200000000000006": "researcher", "0201000000000007": None},
    ),
    # The Crew.kickoff CHAIN span carries the crew's totals.
    "openinference_crewai.jsonl": Spec(
        is_call=named("completion"),
        **OPENINFERENCE,
        agents={
            "0300000000000003": "Senior Researcher",
            "0300000000000005": "Senior Researcher",
            "0301000000000009": "Reporting Analyst",
        },
    ),
    "openinference_llamaindex.jsonl": Spec(
        is_call=named("OpenAI.achat", "OpenAIEmbedding.get_query_embedding"),
        **OPENINFERENCE,
        agents={
            "0400000000000003": "FunctionAgent.take_step",
            "0400000000000005": "FunctionAgent.take_step",
            "0402000000000006": None,
        },
    ),
    "openinference_openai_agents.jsonl": Spec(
        is_call=named("response"),
        **OPENINFERENCE,
        agents={
            "0500000000000003": "Triage Agent",
            "0500000000000006": "Billing Agent",
            "0502000000000008": "Billing Agent",
        },
    ),
    # Two traces from OpenInference's ADK instrumentation, one from ADK's own spans (no operation name).
    "openinference_google_adk.jsonl": Spec(
        is_call=named("call_llm"),
        model=("llm.model_name", "gen_ai.request.model"),
        input=("llm.token_count.prompt", "gen_ai.usage.input_tokens"),
        output=("llm.token_count.completion", "gen_ai.usage.output_tokens"),
        cache_read=("llm.token_count.prompt_details.cache_read",),
        agents={"0600000000000003": "weather_agent", "0602000000000002": "weather_agent"},
    ),
    "openinference_autogen.jsonl": Spec(
        is_call=named("OpenAIChatCompletionClient.create"),
        **OPENINFERENCE,
        agents={"0700000000000003": "writer", "0700000000000005": "critic", "0701000000000005": "critic"},
    ),
    # "agent run" spans carry the run's totals. In the third trace Logfire's OpenAI instrumentation
    # wrote the client's span inside PydanticAI's chat span: one call, counted once (the inner span).
    "pydantic_ai_logfire.jsonl": Spec(
        is_call=lambda s: (
            (s["name"].startswith("chat ") and not s["traceId"].startswith("0802"))
            or s["name"] == "Chat Completion with 'gpt-4o'"
        ),
        **GENAI,
        agents={
            "0800000000000002": "support_agent",
            "0801000000000002": "router",
            "0801000000000005": "math_agent",
            "0802000000000003": "support_agent",
        },
    ),
    # ai.generateText / ai.streamText / ai.embedMany carry their steps' totals: only the do* spans are calls.
    "vercel_ai_sdk.jsonl": Spec(
        is_call=lambda s: s["name"].endswith((".doGenerate", ".doStream", ".doEmbed")),
        model=("gen_ai.response.model", "ai.response.model", "ai.model.id"),
        input=("ai.usage.promptTokens", "ai.usage.inputTokens", "ai.usage.tokens"),
        output=("ai.usage.completionTokens", "ai.usage.outputTokens"),
        cache_read=("ai.usage.cachedInputTokens",),
        reasoning=("ai.usage.reasoningTokens",),
        agents={"0900000000000002": None, "0901000000000002": None},
    ),
}


def spans_of(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [s for doc in lines for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def hex_id(value: str) -> str:
    try:
        return binascii.unhexlify(value).hex()
    except binascii.Error:
        return base64.b64decode(value).hex()


def value(span: dict, keys: tuple[str, ...]):
    attrs = {a["key"]: a["value"] for a in span["attributes"]}
    for key in keys:
        if key in attrs:
            v = next(iter(attrs[key].values()))
            return int(float(v)) if key.startswith(("gen_ai.usage", "llm.token_count", "ai.usage")) else v
    return None


TOKEN_KINDS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")


def expected(name: str) -> dict:
    """Calls, tasks, token sums and cost of a fixture, from its JSON."""
    spec = SPECS[name]
    calls = [s for s in spans_of(DATA / name) if spec.is_call(s)]
    totals = {"calls": len(calls), "tasks": {hex_id(s["traceId"]) for s in calls}, "cost": D(0)}
    totals |= dict.fromkeys(TOKEN_KINDS, 0)
    for s in calls:
        inp, cr, cw = (value(s, k) or 0 for k in (spec.input, spec.cache_read, spec.cache_write))
        out, reasoning = value(s, spec.output) or 0, value(s, spec.reasoning) or 0
        fresh = inp - cr - cw if inp >= cr + cw else inp  # input includes its cache parts, unless smaller
        p_in, p_cached, p_write, p_out = PRICE[value(s, spec.model)]
        totals["cost"] += fresh * p_in + cr * (p_cached or 0) + cw * (p_write or 0) + out * (p_out or 0)
        for key, n in zip(TOKEN_KINDS, (fresh, cr, cw, out, reasoning), strict=True):
            totals[key] += n
    return totals


def test_oracle_counts_what_the_fixtures_hold() -> None:
    # Each fixture: several traces, agent or aggregate spans with usage totals, and the marker.
    for name in SPECS:
        text = (DATA / name).read_text()
        assert MARKER in text, name
        assert len(expected(name)["tasks"]) >= 2, name
    assert sorted(p.name for p in DATA.glob("*.jsonl")) == sorted(SPECS)
    assert expected("vercel_ai_sdk.jsonl")["calls"] == 5 and expected("pydantic_ai_logfire.jsonl")["calls"] == 5


# -- every model call lands ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
def test_every_model_call_lands_once(wh: Warehouse, name: str) -> None:
    want = expected(name)
    report = otel.ingest(wh, [DATA / name])
    result = report.result
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (want["calls"], want["calls"], 0)
    got = wh.query(
        "SELECT count(*) AS calls, list(DISTINCT task_id) AS tasks, sum(input_tokens) AS input_tokens,"
        " sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,"
        " sum(output_tokens) AS output_tokens, coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,"
        " sum(cost) AS cost, count(*) FILTER (WHERE cost_source <> 'priced') AS not_priced FROM llm_requests"
    ).row(0, named=True)
    assert got.pop("not_priced") == 0
    got["tasks"] = set(got["tasks"])
    assert got == want
    rows = {r["span_id"]: r for r in wh.query("SELECT * FROM llm_requests").iter_rows(named=True)}
    for span_id, agent in SPECS[name].agents.items():
        assert rows[span_id]["agent_id"] == agent, span_id
    assert all(r["task_id"] == r["request_id"].split(":")[0] for r in rows.values())


def test_providers_and_call_types_are_normalised(wh: Warehouse) -> None:
    otel.ingest(wh, [DATA / "vercel_ai_sdk.jsonl", DATA / "openllmetry.jsonl", DATA / "openinference_llamaindex.jsonl"])
    rows = {r["span_id"]: r for r in wh.query("SELECT * FROM llm_requests").iter_rows(named=True)}
    # Vercel's "openai.chat" / "openai.responses" / "openai.embedding", OpenLLMetry's "OpenAI" / "Anthropic".
    assert {rows[s]["provider"] for s in ("0900000000000002", "0901000000000002", "0902000000000002")} == {"openai"}
    assert (rows["0200000000000004"]["provider"], rows["0200000000000006"]["provider"]) == ("openai", "anthropic")
    assert (rows["0902000000000002"]["call_type"], rows["0900000000000002"]["call_type"]) == ("embeddings", "chat")
    assert rows["0201000000000007"]["call_type"] == "embeddings"  # llm.request.type embedding
    assert rows["0400000000000003"]["call_type"] == "embeddings"  # openinference EMBEDDING
    # The AI SDK 5 stream: 4,000 input with 2,048 cached, 600 of the 900 output tokens were reasoning.
    stream = rows["0901000000000002"]
    assert (stream["model"], stream["input_tokens"], stream["cached_input_tokens"]) == (
        "o3-mini-2025-01-31",
        1952,
        2048,
    )
    assert (stream["output_tokens"], stream["reasoning_tokens"]) == (900, 600)
    assert stream["cost"] == 1952 * D("0.0000011") + 2048 * D("0.00000055") + 900 * D("0.0000044")


def test_anthropic_cache_parts_through_each_shape(wh: Warehouse) -> None:
    otel.ingest(wh, [DATA / "genai_openai.jsonl", DATA / "openllmetry.jsonl"])
    rows = {r["span_id"]: r for r in wh.query("SELECT * FROM llm_requests").iter_rows(named=True)}
    # OTel names with Anthropic's own uncached count (40 < 3,000 + 500): taken as already uncached.
    genai = rows["0100000000000006"]
    assert (genai["input_tokens"], genai["cached_input_tokens"], genai["cache_write_tokens"]) == (40, 3000, 500)
    # OpenLLMetry's prompt_tokens 2,400 = 100 input + 2,000 cache read + 300 cache creation.
    llmetry = rows["0200000000000006"]
    assert (llmetry["input_tokens"], llmetry["cached_input_tokens"], llmetry["cache_write_tokens"]) == (100, 2000, 300)
    assert llmetry["cost"] == 100 * D("0.000003") + 2000 * D("0.0000003") + 300 * D("0.00000375") + 400 * D("0.000015")
    # A failed call is still a call (status failure); a double 700.0 is 700 tokens.
    assert rows["0101000000000002"]["status"] == "failure" and rows["0100000000000004"]["output_tokens"] == 700


def test_all_fixtures_together_loading_twice_changes_nothing(wh: Warehouse) -> None:
    paths = [DATA / name for name in SPECS]
    calls = sum(expected(name)["calls"] for name in SPECS)
    cost = sum(expected(name)["cost"] for name in SPECS)
    first = otel.ingest(wh, paths)
    before = wh.query(
        "SELECT request_id, agent_id, task_id, input_tokens, output_tokens, cost FROM llm_requests ORDER BY 1"
    )
    assert (first.result.rows_loaded, before.height, before["cost"].sum()) == (calls, calls, cost)
    again = otel.ingest(wh, list(reversed(paths)))
    assert (again.result.rows_read, again.result.rows_replaced) == (calls, calls)
    after = wh.query(
        "SELECT request_id, agent_id, task_id, input_tokens, output_tokens, cost FROM llm_requests ORDER BY 1"
    )
    assert after.equals(before)
    assert request_rollup_differences(wh) == (0, 0)


def test_no_content_reaches_the_warehouse(wh: Warehouse, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    span = {"traceId": "ee" * 16, "spanId": "ee" * 8, "name": "openai.chat", "startTimeUnixNano": "1763719200000000000",
            "attributes": [{"key": "llm.request.type", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.usage.prompt_tokens", "value": {"stringValue": MARKER}}]}  # fmt: skip
    bad.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")
    report = otel.ingest(wh, [*(DATA / name for name in SPECS), bad])
    assert report.result.rows_quarantined == 1  # its prompt_tokens is the marker: quarantined, value not kept
    for table in ("llm_requests", "quarantine"):
        assert MARKER not in wh.query(f"SELECT to_json(list(t))::VARCHAR AS j FROM {table} AS t").item(), table
    with wh.writer() as con:
        con.execute("CHECKPOINT")
    for path in (p for p in wh.path.parent.iterdir() if p.name.startswith(wh.path.name)):
        assert MARKER.encode() not in path.read_bytes(), path


# -- order and bad input -------------------------------------------------------------------------------------

ALL_SPANS = [s for name in SPECS for s in spans_of(DATA / name)]
COLUMNS = ("request_id, task_id, agent_id, provider, model, call_type, status, period_start, input_tokens,"
           " cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost")  # fmt: skip


@pytest.fixture(scope="module")
def in_order(tmp_path_factory: pytest.TempPathFactory):
    wh = _warehouse(tmp_path_factory.mktemp("in_order"))
    otel.ingest(wh, [DATA / name for name in SPECS])
    return wh.query(f"SELECT {COLUMNS} FROM llm_requests ORDER BY request_id")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    order=st.permutations(range(len(ALL_SPANS))),
    files=st.lists(st.integers(0, 2), min_size=len(ALL_SPANS), max_size=len(ALL_SPANS)),
    per_line=st.integers(1, 7),
)
def test_span_order_within_and_across_lines_and_files_does_not_matter(in_order, order, files, per_line) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        buckets: list[list[dict]] = [[], [], []]
        for i in order:
            buckets[files[i]].append(ALL_SPANS[i])
        paths = []
        for n, bucket in enumerate(buckets):
            path = tmp / f"part{n}.jsonl"
            chunks = [bucket[i : i + per_line] for i in range(0, len(bucket), per_line)]
            path.write_text(
                "".join(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": c}]}]}) + "\n" for c in chunks)
            )
            paths.append(path)
        wh = _warehouse(tmp)
        otel.ingest(wh, paths)
        assert wh.query(f"SELECT {COLUMNS} FROM llm_requests ORDER BY request_id").equals(in_order)


def test_malformed_spans_are_quarantined_with_file_line_and_reason(wh: Warehouse, tmp_path: Path) -> None:
    def call(span_id: str, **changes) -> dict:
        attrs = changes.pop("attrs", {})
        span = {"traceId": "ab" * 16, "spanId": span_id, "parentSpanId": "", "name": "openai.chat",
                "startTimeUnixNano": "1763719200000000000", "endTimeUnixNano": "1763719201000000000",
                "attributes": [{"key": "llm.request.type", "value": {"stringValue": "chat"}},
                               {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}}]
                + [{"key": k, "value": v} for k, v in attrs.items()]}  # fmt: skip
        return span | changes

    lines = [
        [call("0000000000000001", attrs={"gen_ai.usage.prompt_tokens": {"intValue": 10}}),  # good: JSON number
         call("0000000000000002", traceId=""),  # no trace id
         call("0000000000000003", attrs={"gen_ai.usage.prompt_tokens": {"stringValue": "lots"}})],
        [call("0000000000000004", attrs={"gen_ai.usage.completion_tokens": {"intValue": "-3"}}),
         call("0000000000000005", attrs={"gen_ai.usage.input_tokens": {"doubleValue": 12.5}}),
         call("0000000000000006", startTimeUnixNano="yesterday"),
         call("0000000000000007", attrs={"gen_ai.usage.input_tokens": {"doubleValue": 12.0}}),  # good: whole
         # An OpenInference LLM span with a broken count; an agent span with broken totals is not a call.
         call("0000000000000008", name="response", attributes=[
             {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
             {"key": "llm.token_count.completion", "value": {"stringValue": "1e400"}}]),
         call("0000000000000009", name="agent", attributes=[
             {"key": "openinference.span.kind", "value": {"stringValue": "AGENT"}},
             {"key": "llm.token_count.prompt", "value": {"stringValue": "oops"}}])],
    ]  # fmt: skip
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": s}]}]}) + "\n" for s in lines))
    result = otel.ingest(wh, [path]).result
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (8, 2, 6)
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    rows = wh.query("SELECT file, row_number, column_name, reason FROM quarantine ORDER BY row_number, reason").rows()
    assert {r[0] for r in rows} == {str(path)}
    assert [(r[1], r[2], r[3]) for r in rows] == [
        (1, "gen_ai.usage.prompt_tokens", "gen_ai.usage.prompt_tokens: not a non-negative integer"),
        (1, "traceId", "traceId: missing"),
        (2, "gen_ai.usage.completion_tokens", "gen_ai.usage.completion_tokens: not a non-negative integer"),
        (2, "gen_ai.usage.input_tokens", "gen_ai.usage.input_tokens: not a non-negative integer"),
        (2, "llm.token_count.completion", "llm.token_count.completion: not a non-negative integer"),
        (2, "startTimeUnixNano", "startTimeUnixNano: not a time in nanoseconds"),
    ]
    good = wh.query("SELECT input_tokens FROM llm_requests ORDER BY span_id")["input_tokens"].to_list()
    assert good == [10, 12]


def test_ids_in_any_case_or_base64_and_numbers_as_json_numbers_join_up(wh: Warehouse, tmp_path: Path) -> None:
    trace, agent_span, call_span = "4BF92F3577B34DA6A3CE929D0E0E4736", "00F067AA0BA902B7", "A1B2C3D4E5F60001"
    agent = {"traceId": trace, "spanId": agent_span, "name": "invoke_agent", "startTimeUnixNano": 1763719200000000000,
             "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                            {"key": "gen_ai.agent.name", "value": {"stringValue": "Upper"}}]}  # fmt: skip
    b64 = lambda h: base64.b64encode(bytes.fromhex(h)).decode()
    call = {"traceId": b64(trace), "spanId": b64(call_span), "parentSpanId": b64(agent_span), "name": "chat",
            "startTimeUnixNano": 1763719201000000000, "endTimeUnixNano": 1763719202000000000,
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 100}},
                           {"key": "gen_ai.usage.output_tokens", "value": {"doubleValue": 10.0}}]}  # fmt: skip
    # The same span once more in lower-case hex in another file: one call, not two.
    again = dict(call, traceId=trace.lower(), spanId=call_span.lower(), parentSpanId=agent_span.lower())
    paths = []
    for n, spans in enumerate(([call], [agent], [again])):
        paths.append(tmp_path / f"{n}.json")
        paths[-1].write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}, indent=1))
    result = otel.ingest(wh, paths).result
    assert (result.rows_read, result.rows_loaded) == (1, 1)
    row = wh.query("SELECT * FROM llm_requests").row(0, named=True)
    assert (row["request_id"], row["agent_id"]) == (f"{trace.lower()}:{call_span.lower()}", "Upper")
    assert (row["input_tokens"], row["output_tokens"], str(row["period_start"])) == (100, 10, "2025-11-21 10:00:01")


def test_exports_from_collectors_before_otlp_0_15_are_read(wh: Warehouse, tmp_path: Path) -> None:
    # instrumentationLibrarySpans was OTLP's name for scopeSpans until 0.15.
    spans = spans_of(DATA / "openinference_autogen.jsonl")
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"instrumentationLibrarySpans": [{"spans": spans}]}]}) + "\n")
    assert otel.ingest(wh, [path]).result.rows_loaded == expected("openinference_autogen.jsonl")["calls"] == 4
