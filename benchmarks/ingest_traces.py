"""How fast `finops ingest otel` loads OpenTelemetry trace exports, and in how much memory.

    uv run python benchmarks/ingest_traces.py --files 16 --copies 4
    uv run python benchmarks/ingest_traces.py --files 40 --copies 4 --memory-limit 1GB

1. Generates the sample company's support-agent traces (OTLP JSON, one export per day, as
   `finops demo` writes them) and writes ``--files`` gzip JSON lines files, each holding
   ``--copies`` copies of them under new trace ids: the shape of an OpenTelemetry Collector's
   file exporter rotating its output.
2. A child process runs `connectors.otel.ingest` on the folder into a fresh warehouse, under
   ``FINOPS_MEMORY_LIMIT`` when given, and reports wall time, model calls loaded, when every
   file was read and its spans found (the progress callback's "resolving agents and tasks")
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
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from finops.demo import gateway

TRACE_ID_PREFIX = '"traceId":"5a6e0000'  # the demo's trace ids: 5a6e, 16 zeros, day and run

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, {project!r})
    from connectors import otel
    from finops.warehouse import Warehouse
    wh = Warehouse({warehouse!r})
    started = time.perf_counter()
    spans_found = []
    def progress(description, done, total):
        if description.startswith("resolving"):
            spans_found.append(time.perf_counter() - started)
    report = otel.ingest(wh, [{folder!r}], progress=progress)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"seconds": seconds, "spans_found": spans_found[0] if spans_found else seconds,
                      "loaded": report.result.rows_loaded, "quarantined": report.result.rows_quarantined,
                      "peak_mb": peak_kb / 1024}}))
    """
)


def generate(folder: Path, files: int, copies: int) -> tuple[int, int]:
    """Write the trace files; return (bytes of JSON, bytes on disk)."""
    rows = gateway.spend_log_rows(gateway.bill_usage())
    text = "".join(json.dumps(export, separators=(",", ":")) + "\n" for export in gateway.agent_traces(rows))
    assert TRACE_ID_PREFIX in text, "the demo's trace ids changed: update TRACE_ID_PREFIX"
    folder.mkdir(parents=True)
    copy = 0
    for n in range(files):
        parts = []
        for _ in range(copies):
            copy += 1
            parts.append(text.replace(TRACE_ID_PREFIX, f'"traceId":"5a6e{copy:04x}'))
        (folder / f"traces-{n:04d}.jsonl.gz").write_bytes(gzip.compress("".join(parts).encode(), compresslevel=1))
    on_disk = sum(p.stat().st_size for p in folder.iterdir())
    return len(text.encode()) * files * copies, on_disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=16, help="trace files to write (default 16)")
    parser.add_argument("--copies", type=int, default=4, help="copies of the sample's traces per file (default 4)")
    parser.add_argument("--memory-limit", default=None, help="FINOPS_MEMORY_LIMIT for the ingest (default: its default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="finops-bench-traces-") as tmp:
        folder = Path(tmp) / "otel"
        json_bytes, disk_bytes = generate(folder, args.files, args.copies)
        print(f"generated {args.files} files: {json_bytes / 1e6:,.0f} MB of OTLP JSON, {disk_bytes / 1e6:,.0f} MB gzip")
        env = dict(os.environ)
        if args.memory_limit:
            env["FINOPS_MEMORY_LIMIT"] = args.memory_limit
        code = CHILD.format(project=str(PROJECT), warehouse=str(Path(tmp) / "wh.duckdb"), folder=str(folder))
        done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            sys.exit("ingest failed: " + next((line for line in reversed(lines) if "Error" in line), lines[-1]))
        result = json.loads(done.stdout.strip().splitlines()[-1])
        limit = args.memory_limit or "default"
        print(f"ingest (memory limit {limit}): {result['loaded']:,} model calls in {result['seconds']:.1f}s"
              f" ({result['loaded'] / result['seconds']:,.0f} calls/s, {json_bytes / 1e6 / result['seconds']:,.0f} MB/s"
              f" of JSON); files read and spans found by {result['spans_found']:.1f}s")  # fmt: skip
        print(f"peak memory of the ingest process: {result['peak_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
