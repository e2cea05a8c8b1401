"""How fast `finops ingest otel` and `finops ingest langfuse` load agent traces, and in how much memory.

    uv run python benchmarks/ingest_traces.py --files 16 --copies 4
    uv run python benchmarks/ingest_traces.py --files 40 --copies 4 --memory-limit 1GB
    uv run python benchmarks/ingest_traces.py --source langfuse --files 16 --copies 4

1. Generates the sample company's support-agent traces (OTLP JSON, one export per day, as
   `finops demo` writes them) and writes ``--files`` gzip JSON lines files, each holding
   ``--copies`` copies of them under new trace ids: the shape of an OpenTelemetry Collector's
   file exporter rotating its output. With ``--source langfuse`` the same runs are written as
   Langfuse exports instead, one trace per line with its observations (the agent, its tools,
   its GENERATIONs with usage), each generation's prompt and completion 1 kB of text.
2. A child process runs the connector's ``ingest`` on the folder into a fresh warehouse, under
   ``FINOPS_MEMORY_LIMIT`` when given, and reports wall time, model calls loaded, when every
   file was read and its spans or observations found (the progress callback's "resolving agents and tasks")
   and peak memory (resource.getrusage maxrss).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from finops.demo import gateway

TRACE_ID_PREFIX = '"5a6e0000'  # the demo's trace ids: 5a6e, 16 zeros, day and run (no other value starts so)

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, {project!r})
    from connectors import {source}
    from finops.warehouse import Warehouse
    wh = Warehouse({warehouse!r})
    started = time.perf_counter()
    spans_found = []
    def progress(description, done, total):
        if description.startswith("resolving"):
            spans_found.append(time.perf_counter() - started)
    report = {source}.ingest(wh, [{folder!r}], progress=progress)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"seconds": seconds, "spans_found": spans_found[0] if spans_found else seconds,
                      "loaded": report.result.rows_loaded, "quarantined": report.result.rows_quarantined,
                      "peak_mb": peak_kb / 1024}}))
    """
)


def generate(folder: Path, files: int, copies: int, source: str) -> tuple[int, int]:
    """Write the trace files; return (bytes of JSON, bytes on disk)."""
    exports = gateway.agent_traces(gateway.spend_log_rows(gateway.bill_usage()))
    documents = exports if source == "otel" else [doc for export in exports for doc in langfuse_traces(export)]
    text = "".join(json.dumps(doc, separators=(",", ":")) + "\n" for doc in documents)
    assert TRACE_ID_PREFIX in text, "the demo's trace ids changed: update TRACE_ID_PREFIX"
    folder.mkdir(parents=True)
    copy = 0
    for n in range(files):
        parts = []
        for _ in range(copies):
            copy += 1
            parts.append(text.replace(TRACE_ID_PREFIX, f'"5a6e{copy:04x}'))
        (folder / f"traces-{n:04d}.jsonl.gz").write_bytes(gzip.compress("".join(parts).encode(), compresslevel=1))
    on_disk = sum(p.stat().st_size for p in folder.iterdir())
    return len(text.encode()) * files * copies, on_disk


def langfuse_traces(export: dict) -> list[dict]:
    """The runs of one OTLP export as Langfuse trace exports: a trace and its observations."""
    kinds = {"invoke_agent": "AGENT", "execute_tool": "TOOL", "chat": "GENERATION"}
    content = "lorem ipsum dolor sit amet " * 38  # about 1 kB: what the connector must never keep
    traces: dict[str, dict] = {}
    for resource in export["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                attrs = {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
                kind = kinds.get(attrs.get("gen_ai.operation.name"), "SPAN")
                doc = traces.setdefault(span["traceId"], {"trace": {"id": span["traceId"]}, "observations": []})
                observation = {
                    "id": span["spanId"], "traceId": span["traceId"], "parentObservationId": span["parentSpanId"] or None,
                    "type": kind, "name": span["name"], "startTime": _iso(span["startTimeUnixNano"]),
                    "endTime": _iso(span["endTimeUnixNano"]), "level": "DEFAULT",
                }  # fmt: skip
                if kind == "AGENT":
                    doc["trace"].update(
                        name=attrs.get("gen_ai.agent.name"), timestamp=observation["startTime"],
                        sessionId=span["traceId"], metadata={"agent_id": attrs.get("gen_ai.agent.id")},
                    )  # fmt: skip
                if kind == "GENERATION":
                    observation.update(
                        model=attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model"),
                        usageDetails={"input": int(attrs.get("gen_ai.usage.input_tokens", 0)),
                                      "output": int(attrs.get("gen_ai.usage.output_tokens", 0))},
                        input=content, output=content,
                    )  # fmt: skip
                doc["observations"].append(observation)
    return list(traces.values())


def _iso(unix_nano: str) -> str:
    return datetime.fromtimestamp(int(unix_nano) / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=["otel", "langfuse"], default="otel", help="the trace format (default otel)")
    parser.add_argument("--files", type=int, default=16, help="trace files to write (default 16)")
    parser.add_argument("--copies", type=int, default=4, help="copies of the sample's traces per file (default 4)")
    parser.add_argument("--memory-limit", default=None, help="FINOPS_MEMORY_LIMIT for the ingest (default: its default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="finops-bench-traces-") as tmp:
        folder = Path(tmp) / args.source
        json_bytes, disk_bytes = generate(folder, args.files, args.copies, args.source)
        print(f"generated {args.files} {args.source} files: {json_bytes / 1e6:,.0f} MB of JSON, {disk_bytes / 1e6:,.0f} MB gzip")
        env = dict(os.environ)
        if args.memory_limit:
            env["FINOPS_MEMORY_LIMIT"] = args.memory_limit
        code = CHILD.format(
            project=str(PROJECT), warehouse=str(Path(tmp) / "wh.duckdb"), folder=str(folder), source=args.source
        )
        done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            sys.exit("ingest failed: " + next((line for line in reversed(lines) if "Error" in line), lines[-1]))
        result = json.loads(done.stdout.strip().splitlines()[-1])
        limit = args.memory_limit or "default"
        print(f"ingest (memory limit {limit}): {result['loaded']:,} model calls ({result['quarantined']:,} quarantined)"
              f" in {result['seconds']:.1f}s"
              f" ({result['loaded'] / result['seconds']:,.0f} calls/s, {json_bytes / 1e6 / result['seconds']:,.0f} MB/s"
              f" of JSON); files read and spans found by {result['spans_found']:.1f}s")  # fmt: skip
        print(f"peak memory of the ingest process: {result['peak_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
