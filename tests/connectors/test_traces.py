"""OpenTelemetry GenAI and Langfuse trace connectors, and the per-task cost roll-up, end to end.

Fixtures are in the real export shapes: tests/data/otel/agents.jsonl is what the Collector's
file exporter writes (one OTLP/JSON request per line, ids in hex, 64-bit integers as strings,
a metrics line in between); tests/data/langfuse/trace_export.json is a Langfuse trace export
({trace, observations} with content, metadata and cost fields). Both carry a marker string in
every content field. Expected tokens and costs are computed here by hand from the token counts
written in the fixtures and the prices this test inserts.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors import langfuse, otel
from finops.analyses.usage import agent_costs, task_costs
from finops.cli import cli
from finops.exceptions import SourceError
from finops.warehouse import Warehouse
from tests.connectors.priced import priced_warehouse
from tests.rollup import request_rollup_differences

DATA = Path(__file__).parent.parent / "data"
OTEL_FILE = DATA / "otel" / "agents.jsonl"
LANGFUSE_FILE = DATA / "langfuse" / "trace_export.json"
MARKER = "SECRET-PROMPT-MARKER-7f3a"
TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT_A = "00f067aa0ba902b7"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
NOV, DEC = date(2025, 11, 1), date(2025, 12, 1)

D = Decimal
# USD per token: (provider, model, input, cached input, cache write, output)
PRICES = [
    ("openai", "gpt-4o", D("0.0000025"), D("0.00000125"), None, D("0.00001")),
    ("openai", "gpt-4o-2024-08-06", D("0.0000025"), D("0.00000125"), None, D("0.00001")),
    ("openai", "gpt-4o-mini", D("0.00000015"), D("0.000000075"), None, D("0.0000006")),
    ("openai", "o3-mini", D("0.0000011"), D("0.00000055"), None, D("0.0000044")),
    ("openai", "text-embedding-3-small", D("0.00000002"), None, None, None),
    ("anthropic", "claude-sonnet-4-20250514", D("0.000003"), D("0.0000003"), D("0.00000375"), D("0.000015")),
]


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return priced_warehouse(tmp_path / "warehouse.duckdb", PRICES)


def requests(wh: Warehouse, source: str) -> dict[str, dict]:
    frame = wh.query("SELECT * FROM llm_requests WHERE x_Source = ? ORDER BY request_id", [source])
    return {row["span_id"]: row for row in frame.iter_rows(named=True)}


# Trace A by hand (agents.jsonl): gen_ai.usage.input_tokens includes the cached tokens.
CHAT1 = D(1200 - 200) * D("0.0000025") + 200 * D("0.00000125") + 300 * D("0.00001")  # researcher, gpt-4o-2024-08-06
CHAT2 = 800 * D("0.0000025") + 150 * D("0.00001")  # researcher, under a tool span
CHAT3 = (D(2000 - 1500 - 300) * D("0.000003") + 1500 * D("0.0000003") + 300 * D("0.00000375")
         + 400 * D("0.000015"))  # summarizer sub-agent  # fmt: skip
EMBEDDING = 500 * D("0.00000002")


def test_otel_spans_become_priced_model_calls_with_agent_and_task(wh: Warehouse) -> None:
    report = otel.ingest(wh, [OTEL_FILE])
    # 6 model-call spans: 5 loaded, 1 with input_tokens "lots" quarantined; agent/tool spans are not rows.
    assert (report.result.rows_read, report.result.rows_loaded, report.result.rows_quarantined) == (6, 5, 1)
    rows = requests(wh, "otel")
    chat1, chat2, chat3 = rows["a1b2c3d4e5f60001"], rows["a1b2c3d4e5f60003"], rows["a1b2c3d4e5f60005"]
    assert (chat1["input_tokens"], chat1["cached_input_tokens"], chat1["output_tokens"]) == (1000, 200, 300)
    assert (chat3["input_tokens"], chat3["cached_input_tokens"], chat3["cache_write_tokens"]) == (200, 1500, 300)
    assert (chat3["output_tokens"], chat3["reasoning_tokens"]) == (400, 100)
    assert chat1["model"] == "gpt-4o-2024-08-06" and chat1["provider"] == "openai"
    assert (chat1["cost"], chat2["cost"], chat3["cost"]) == (CHAT1, CHAT2, CHAT3)
    assert {r["cost_source"] for r in (chat1, chat2, chat3)} == {"priced"}
    # The nearest invoke_agent ancestor, through a tool span; a sub-agent is its own agent.
    assert (chat1["agent_id"], chat2["agent_id"], chat3["agent_id"]) == ("agent_researcher", "agent_researcher", "agent_summarizer")
    assert {chat1["task_id"], chat2["task_id"], chat3["task_id"]} == {TRACE_A}
    # Trace B: the trace is the task (not gen_ai.conversation.id); the unknown model is unpriced, not 0.
    mystery, embedding = rows["b0b0b0b0b0b00002"], rows["b0b0b0b0b0b00003"]
    assert (mystery["task_id"], mystery["agent_id"], mystery["status"]) == (TRACE_B, "SupportBot", "failure")
    assert (mystery["cost"], mystery["cost_source"], mystery["input_tokens"]) == (None, "unpriced", 640)
    assert embedding["cost"] == EMBEDDING
    sample = report.quarantine_sample.row(0, named=True)
    assert (sample["row_number"], sample["column_name"]) == (3, "gen_ai.usage.input_tokens")
    raw = wh.query("SELECT raw_row FROM quarantine").item()
    assert json.loads(raw) == {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b0b0b0b0b0b00004"}


def test_task_roll_up_equals_its_model_calls_and_agent_spans_do_not_double_count(wh: Warehouse) -> None:
    otel.ingest(wh, [OTEL_FILE])
    tasks = {r["task_id"]: r for r in task_costs(wh, NOV, DEC).iter_rows(named=True)}
    a = tasks[TRACE_A]
    # The root agent span says 99,999 input tokens and the sub-agent 2,000: neither is counted.
    assert a["cost"] == CHAT1 + CHAT2 + CHAT3 == D("0.017425")
    assert (a["model_calls"], a["input_tokens"], a["output_tokens"]) == (3, 1000 + 800 + 200, 300 + 150 + 400)
    assert (a["priced_calls"], a["unpriced_calls"], a["agent_id"]) == (3, 0, "agent_researcher, agent_summarizer")
    conv = tasks[TRACE_B]
    assert (conv["cost"], conv["model_calls"], conv["unpriced_calls"]) == (EMBEDDING, 2, 1)
    agents = {r["agent_id"]: r for r in agent_costs(wh, NOV, DEC).iter_rows(named=True)}
    assert agents["agent_researcher"]["cost"] == CHAT1 + CHAT2
    assert agents["agent_summarizer"]["cost"] == CHAT3
    assert sum(r["cost"] or 0 for r in agents.values()) == CHAT1 + CHAT2 + CHAT3 + EMBEDDING


def _span(trace: str, span: str, parent: str, second: int, attrs: dict) -> dict:
    start = 1763719200_000000000 + second * 1_000_000_000  # 2025-11-21T10:00:00Z
    return {
        "traceId": trace, "spanId": span, "parentSpanId": parent, "name": "span", "kind": 1,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 500_000_000),
        "attributes": [
            {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}} for k, v in attrs.items()
        ],
    }  # fmt: skip


def test_runaway_agent_loop_is_the_top_task(wh: Warehouse, tmp_path: Path) -> None:
    loop_trace = "7d1e" + "0" * 28
    spans = [_span(loop_trace, "1" * 16, "", 0, {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "reconciler"})]
    for i in range(40):  # the agent retries the same tool call and asks the model again, 40 times
        tool = f"{i:04x}" + "a" * 12
        spans.append(_span(loop_trace, tool, "1" * 16, i, {"gen_ai.operation.name": "execute_tool"}))
        spans.append(_span(loop_trace, f"{i:04x}" + "b" * 12, tool, i, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 3000, "gen_ai.usage.output_tokens": 200}))  # fmt: skip
    path = tmp_path / "loop.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]}) + "\n")
    otel.ingest(wh, [OTEL_FILE, path])
    top = task_costs(wh, NOV, DEC).row(0, named=True)
    per_call = 3000 * D("0.00000015") + 200 * D("0.0000006")
    assert (top["task_id"], top["agent_id"], top["model_calls"]) == (loop_trace, "reconciler", 40)
    assert top["cost"] == 40 * per_call == D("0.0228")


def test_reloading_and_overlapping_exports_never_duplicate(wh: Warehouse, tmp_path: Path) -> None:
    otel.ingest(wh, [OTEL_FILE])
    again = otel.ingest(wh, [OTEL_FILE])
    assert again.result.rows_replaced == 5
    assert wh.query("SELECT count(*) FROM llm_requests").item() == 5
    # An overlapping export: chat 1 again without its agent span, plus one new call in trace A.
    lines = [json.loads(line) for line in OTEL_FILE.read_text().splitlines()]
    chat1 = lines[0]["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    new = dict(chat1, spanId="a1b2c3d4e5f60009")
    overlap = tmp_path / "overlap.jsonl"
    overlap.write_text(json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [chat1, new]}]}]}) + "\n")
    otel.ingest(wh, [overlap])
    rows = requests(wh, "otel")
    assert len(rows) == 6
    # The agent found by the first load is kept; the new call's ancestors are in neither export.
    assert rows["a1b2c3d4e5f60001"]["agent_id"] == "agent_researcher"
    assert rows["a1b2c3d4e5f60009"]["task_id"] == TRACE_A
    assert task_costs(wh, NOV, DEC, source="otel").filter(task_id=TRACE_A).item(0, "cost") == 2 * CHAT1 + CHAT2 + CHAT3
    assert request_rollup_differences(wh) == (0, 0)


def test_malformed_line_names_file_and_line_and_writes_nothing(wh: Warehouse, tmp_path: Path) -> None:
    otel.ingest(wh, [OTEL_FILE])
    before = wh.query("SELECT count(*), sum(cost) FROM llm_requests").row(0)
    bad = tmp_path / "broken.jsonl"
    bad.write_text(OTEL_FILE.read_text().splitlines()[0] + "\n" + '{"resourceSpans": [{"scopeSpans": [\n')
    with pytest.raises(SourceError, match=r"broken\.jsonl: line 2 is not valid JSON"):
        otel.ingest(wh, [bad])
    not_otlp = tmp_path / "other.jsonl"
    not_otlp.write_text('{"hello": 1}\n')
    with pytest.raises(SourceError, match=r"other\.jsonl: line 1 is not an OTLP JSON export"):
        otel.ingest(wh, [not_otlp])
    assert wh.query("SELECT count(*), sum(cost) FROM llm_requests").row(0) == before
    assert wh.query("SELECT count(*) FROM ingest_batches WHERE status = 'failed'").item() == 2


def test_single_json_document_is_accepted(wh: Warehouse, tmp_path: Path) -> None:
    doc = json.loads(OTEL_FILE.read_text().splitlines()[0])
    pretty = tmp_path / "one.json"
    pretty.write_text(json.dumps(doc, indent=2))
    report = otel.ingest(wh, [pretty])
    assert report.result.rows_loaded == 1
    # Without its agent span's file, no agent; the trace is the task.
    row = requests(wh, "otel")["a1b2c3d4e5f60001"]
    assert (row["cost"], row["task_id"]) == (CHAT1, TRACE_A)



def test_files_staged_side_by_side_keep_order_and_fit_a_small_memory_limit(
    wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """agents.jsonl's three lines (spans, metrics, spans) as three files, staged two at a time, under a 300 MB memory
    limit: DuckDB's read buffer is sized to each file's longest line (it was 1 GiB per file,
    which failed here). The third, gzipped, has a 3 MB line: a buffer sized too small fails."""
    import gzip

    monkeypatch.setenv("FINOPS_MEMORY_LIMIT", "300MB")
    first, second, third = OTEL_FILE.read_text().splitlines()
    padded = json.loads(third)
    padded["resourceSpans"][0]["resource"]["attributes"].append({"key": "x.padding", "value": {"stringValue": "p" * 3_000_000}})
    files = [tmp_path / "1-first.jsonl", tmp_path / "2-second.jsonl.gz", tmp_path / "3-third.jsonl.gz"]
    files[0].write_text(first + "\n")
    files[1].write_bytes(gzip.compress((second + "\n").encode()))
    files[2].write_bytes(gzip.compress((json.dumps(padded) + "\n").encode()))
    report = otel.ingest(wh, files)
    assert (report.result.rows_read, report.result.rows_loaded, report.result.rows_quarantined) == (6, 5, 1)
    rows = requests(wh, "otel")
    assert (rows["a1b2c3d4e5f60001"]["cost"], rows["a1b2c3d4e5f60005"]["cost"]) == (CHAT1, CHAT3)
    assert rows["b0b0b0b0b0b00003"]["cost"] == EMBEDDING
    # Agents are resolved across files: chat 2's tool span is in file 3, the agent span over it in file 1.
    assert (rows["a1b2c3d4e5f60003"]["agent_id"], rows["a1b2c3d4e5f60003"]["task_id"]) == ("agent_researcher", TRACE_A)
    assert rows["a1b2c3d4e5f60005"]["agent_id"] == "agent_summarizer"
    quarantined = wh.query("SELECT file, row_number, column_name FROM quarantine").row(0)
    assert quarantined == (str(files[2]), 1, "gen_ai.usage.input_tokens")
    per_file = report.per_file.select("file", "calls").rows()
    assert [(Path(f).name, n) for f, n in per_file] == [("1-first.jsonl", 1), ("2-second.jsonl.gz", 0), ("3-third.jsonl.gz", 4)]

    # Two broken files: the first in order is the error, and nothing is written.
    before = wh.query("SELECT count(*), sum(cost) FROM llm_requests").row(0)
    broken = [tmp_path / f"{n}-broken.jsonl" for n in (4, 5)]
    for path in broken:
        path.write_text(first + "\n" + '{"resourceSpans": [\n')
    with pytest.raises(SourceError, match=r"4-broken\.jsonl: line 2 is not valid JSON"):
        otel.ingest(wh, [files[0], broken[0], files[1], broken[1]])
    assert wh.query("SELECT count(*), sum(cost) FROM llm_requests").row(0) == before

    packed = tmp_path / "trace_export.json.gz"
    packed.write_bytes(gzip.compress(LANGFUSE_FILE.read_bytes()))
    langfuse_report = langfuse.ingest(wh, [packed])
    assert (langfuse_report.result.rows_read, langfuse_report.result.rows_loaded) == (5, 4)


def test_a_span_in_several_files_counts_once_as_its_copy_in_the_last_file(wh: Warehouse, tmp_path: Path) -> None:
    """Spans are taken out of each file on its own thread; copies across files (and within one)
    are resolved after: the last file by name, its last line, as one file read whole would be."""
    chat1 = json.loads(OTEL_FILE.read_text().splitlines()[0])["resourceSpans"][0]["scopeSpans"][0]["spans"][1]

    def export(output_tokens: int) -> str:
        span = json.loads(json.dumps(chat1))
        for attr in span["attributes"]:
            if attr["key"] == "gen_ai.usage.output_tokens":
                attr["value"] = {"intValue": str(output_tokens)}
        return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]}) + "\n"

    (tmp_path / "b.jsonl").write_text(export(10) + export(20))
    (tmp_path / "a.jsonl").write_text(export(30))
    (tmp_path / "c.jsonl").write_text(export(40) + export(50))
    report = otel.ingest(wh, [tmp_path / "c.jsonl", tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert report.result.rows_loaded == 1
    row = requests(wh, "otel")["a1b2c3d4e5f60001"]
    assert row["output_tokens"] == 50
    assert row["cost"] == CHAT1 + (50 - 300) * D("0.00001")

# Langfuse by hand (trace_export.json): `input` is uncached already, reasoning is beside output.
GEN1_REPORTED, GEN3_REPORTED = D("0.0055"), D("0.00061")
GEN1_OURS = 1000 * D("0.0000025") + 200 * D("0.00000125") + 250 * D("0.00001")
GEN2 = 400 * D("0.0000011") + (100 + 300) * D("0.0000044")  # o3-mini, no reported cost


def test_langfuse_generations_keep_reported_cost_and_get_priced(wh: Warehouse) -> None:
    report = langfuse.ingest(wh, [LANGFUSE_FILE])
    # 5 GENERATION/EMBEDDING observations; the one with usage input "many" is quarantined.
    assert (report.result.rows_read, report.result.rows_loaded, report.result.rows_quarantined) == (5, 4, 1)
    rows = requests(wh, "langfuse")
    gen1, gen2, gen3, emb = rows["obs-gen-1"], rows["obs-gen-2"], rows["obs-gen-3"], rows["obs-emb-1"]
    assert (gen1["input_tokens"], gen1["cached_input_tokens"], gen1["output_tokens"]) == (1000, 200, 250)
    assert (gen1["cost"], gen1["cost_source"], gen1["priced_cost"]) == (GEN1_REPORTED, "reported", GEN1_OURS)
    assert (gen2["output_tokens"], gen2["reasoning_tokens"], gen2["cost"], gen2["cost_source"]) == (400, 300, GEN2, "priced")
    assert (gen3["input_tokens"], gen3["cached_input_tokens"], gen3["cache_write_tokens"]) == (300, 1200, 100)
    assert gen3["cost"] == GEN3_REPORTED
    assert (emb["cost"], emb["call_type"]) == (EMBEDDING, "embedding")
    # Agent: the AGENT observation above the call, else the trace metadata's agent_id.
    assert (gen1["agent_id"], gen2["agent_id"], gen3["agent_id"], emb["agent_id"]) == ("planner", "planner", "triage-bot", "triage-bot")
    assert (gen1["user_id"], gen1["tags"]) == ("user-77", ["finance", "triage"])
    task = task_costs(wh, NOV, DEC, source="langfuse").row(0, named=True)
    # The AGENT observation's own usage (99,999 tokens) and cost ($99) are not counted.
    assert (task["task_id"], task["model_calls"]) == ("lf-trace-1", 4)
    assert task["cost"] == GEN1_REPORTED + GEN2 + GEN3_REPORTED + EMBEDDING == D("0.00832")
    assert (task["reported_calls"], task["priced_calls"], task["unpriced_calls"]) == (2, 2, 0)
    langfuse.ingest(wh, [LANGFUSE_FILE])
    assert wh.query("SELECT count(*) FROM llm_requests").item() == 4


def test_langfuse_api_shapes_and_trace_as_task(wh: Warehouse, tmp_path: Path) -> None:
    export = json.loads(LANGFUSE_FILE.read_text())
    trace = dict(export["trace"], sessionId="session-9", observations=export["observations"])
    path = tmp_path / "page.json"
    path.write_text(json.dumps({"data": [trace], "meta": {"page": 1, "totalPages": 1}}))
    langfuse.ingest(wh, [path])
    # The trace is the task, not its session (issue 13); request ids are traceId:observationId.
    assert set(wh.query("SELECT DISTINCT task_id FROM llm_requests")["task_id"]) == {"lf-trace-1"}
    assert "lf-trace-1:obs-gen-1" in set(wh.query("SELECT request_id FROM llm_requests")["request_id"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(export) + "\n" + "not json\n")
    with pytest.raises(SourceError, match=r"bad\.jsonl: line 2 is not valid JSON"):
        langfuse.ingest(wh, [bad])



def test_langfuse_observations_take_their_trace_from_another_file(wh: Warehouse, tmp_path: Path) -> None:
    """Each file's traces and observations are taken out on its own thread and joined after, so
    an observation finds its trace in any file of the load; of a trace's copies the last file's
    wins, and so does an observation's."""
    export = json.loads(LANGFUSE_FILE.read_text())
    generation = next(o for o in export["observations"] if o["id"] == "obs-gen-1")
    trace = {k: v for k, v in export["trace"].items() if k not in ("input", "output")}
    (tmp_path / "1-observations.jsonl").write_text(json.dumps(dict(generation, usageDetails={"input": 10})) + "\n")
    (tmp_path / "2-trace.jsonl").write_text(json.dumps({"trace": dict(trace, userId="user-old")}) + "\n")
    (tmp_path / "3-again.jsonl").write_text(
        json.dumps({"trace": dict(trace, userId="user-new"), "observations": [generation]}) + "\n"
    )
    report = langfuse.ingest(wh, sorted(tmp_path.glob("*.jsonl")))
    assert report.result.rows_loaded == 1
    row = wh.query("SELECT * FROM llm_requests").row(0, named=True)
    assert (row["request_id"], row["task_id"], row["user_id"]) == ("lf-trace-1:obs-gen-1", "lf-trace-1", "user-new")
    assert row["input_tokens"] == generation["usageDetails"]["input"] != 10
    (tmp_path / "3-again.jsonl").unlink()
    langfuse.ingest(wh, sorted(tmp_path.glob("*.jsonl")))
    row = wh.query("SELECT * FROM llm_requests").row(0, named=True)
    assert (row["user_id"], row["input_tokens"]) == ("user-old", 10)


def test_a_langfuse_file_larger_than_one_run_of_documents_loads_whole(wh: Warehouse, tmp_path: Path) -> None:
    """A file's documents are taken apart in runs of about 8 MB (each JSON call holds a parse of
    a vector of documents): the calls on either side of a run's end, and a trace in the first
    run, come out as from one run; the 1 MB prompts do not."""
    export = json.loads(LANGFUSE_FILE.read_text())
    generation = next(o for o in export["observations"] if o["id"] == "obs-gen-1")
    trace = {k: v for k, v in export["trace"].items() if k not in ("input", "output")}
    prompt = MARKER + "x" * 1_000_000
    lines = [json.dumps({"trace": trace})]
    for n in range(1, 13):  # 12 generations of 1 MB: runs end near the 8th
        lines.append(json.dumps(dict(generation, id=f"gen-{n:02d}", input=prompt, usageDetails={"input": n, "output": 1})))
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 12_000_000
    report = langfuse.ingest(wh, [path])
    assert (report.result.rows_read, report.result.rows_loaded) == (12, 12)
    rows = wh.query("SELECT span_id, input_tokens, user_id, task_id FROM llm_requests ORDER BY span_id").rows()
    assert rows == [(f"gen-{n:02d}", n, trace["userId"], trace["id"]) for n in range(1, 13)]
    assert wh.query(f"SELECT count(*) FROM llm_requests AS r WHERE r::VARCHAR LIKE '%{MARKER}%'").item() == 0

def test_no_content_reaches_the_warehouse(wh: Warehouse) -> None:
    assert MARKER in OTEL_FILE.read_text() and MARKER in LANGFUSE_FILE.read_text()
    otel.ingest(wh, [OTEL_FILE])
    langfuse.ingest(wh, [LANGFUSE_FILE])
    with wh.writer() as con:
        con.execute("CHECKPOINT")
    files = [p for p in wh.path.parent.iterdir() if p.name.startswith(wh.path.name)]
    assert files
    for path in files:
        assert MARKER.encode() not in path.read_bytes(), path


def test_cli_ingest_otel_and_langfuse(wh: Warehouse) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", "otel", str(OTEL_FILE), "--warehouse", str(wh.path)])
    assert result.exit_code == 0, result.output
    assert "6 model calls read" in result.output and "5 loaded" in result.output
    result = runner.invoke(cli, ["ingest", "langfuse", str(LANGFUSE_FILE), "--warehouse", str(wh.path)])
    assert result.exit_code == 0, result.output
    assert "4 loaded" in result.output


def test_cli_prints_calls_tasks_and_cost_per_file(wh: Warehouse, tmp_path: Path) -> None:
    frameworks = DATA / "langfuse" / "frameworks"
    files = [frameworks / "crewai.jsonl", frameworks / "langgraph.json", frameworks / "traces_api_list.json"]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli, ["ingest", "langfuse", *map(str, files), "--warehouse", str(wh.path)]
    )
    assert result.exit_code == 0, result.output
    printed = {}
    for line in result.output[result.output.index("Per file") :].splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 7 and cells[0].endswith((".json", ".jsonl")):
            printed[cells[0]] = cells[1:]
    # What the warehouse holds per file, counted here with plain SQL.
    expected = wh.query(
        "SELECT x_SourceKey AS file, count(*) AS calls, count(DISTINCT task_id) AS tasks, sum(cost) AS cost"
        " FROM llm_requests WHERE x_Source = 'langfuse' GROUP BY ALL"
    )
    assert expected.height == 2  # the traces list holds no observation
    for row in expected.iter_rows(named=True):
        calls, tasks, _agents, cost, _unpriced, quarantined = printed[Path(row["file"]).name]
        assert (int(calls), int(tasks), quarantined) == (row["calls"], row["tasks"], "0")
        assert Decimal(cost.replace(",", "")) == row["cost"].quantize(Decimal("0.000001"))
    assert printed["traces_api_list.json"][:2] == ["0", "0"]  # a file without model calls is shown, with zeros


def test_gzipped_and_empty_exports(wh: Warehouse, tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "agents.jsonl.gz"
    packed.write_bytes(gzip.compress(OTEL_FILE.read_bytes()))
    assert otel.ingest(wh, [packed]).result.rows_loaded == 5
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(packed.read_bytes()[:-40])
    with pytest.raises(SourceError, match="cut.jsonl.gz"):
        otel.ingest(wh, [truncated])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    report = otel.ingest(wh, [empty])
    assert (report.result.rows_read, report.result.rows_loaded) == (0, 0)
    assert wh.query("SELECT count(*) FROM llm_requests").item() == 5


def test_langfuse_otel_ingested_usage_is_not_double_counted(wh: Warehouse, tmp_path: Path) -> None:
    # Spans ingested by Langfuse's OTel endpoint: `input` includes the cached tokens and `output`
    # the reasoning, and `total` = input + output shows it (langfuse/langfuse#11244).
    export = json.loads(LANGFUSE_FILE.read_text())
    generation = dict(export["observations"][1], id="obs-otel-1", model="o3-mini", costDetails={}, totalCost=None,
                      calculatedTotalCost=None,
                      usageDetails={"input": 2000, "input_cached_tokens": 500, "output": 700, "output_reasoning_tokens": 200,
                                    "total": 2700})  # fmt: skip
    disjoint = dict(generation, id="obs-sdk-1", usageDetails={"input": 1500, "input_cached_tokens": 500, "output": 500,
                                                              "output_reasoning_tokens": 200, "total": 2700})  # fmt: skip
    path = tmp_path / "otel_ingested.json"
    path.write_text(json.dumps({"trace": export["trace"], "observations": [generation, disjoint]}))
    langfuse.ingest(wh, [path])
    rows = requests(wh, "langfuse")
    for observation in ("obs-otel-1", "obs-sdk-1"):  # the same call, both ways: the same tokens and cost
        row = rows[observation]
        assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (1500, 500, 700, 200)
        assert row["cost"] == 1500 * D("0.0000011") + 500 * D("0.00000055") + 700 * D("0.0000044")
