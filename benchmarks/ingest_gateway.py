"""How fast `finops ingest litellm` loads LiteLLM spend logs from a real Postgres.

    uv run python benchmarks/ingest_gateway.py --requests 1000000

1. Starts a throw-away PostgreSQL 15 (tests/servers_postgres.py) and creates "LiteLLM_SpendLogs"
   with LiteLLM's schema and indexes.
2. Fills it with N requests in one `INSERT … SELECT … FROM generate_series` (Postgres SQL only):
   30 days of traffic, three providers, cached-token and cache-write usage details in metadata,
   request tags, team aliases, and messages/response JSON of a few hundred bytes each (which
   the connector must never read).
3. A child process runs `connectors.litellm.ingest` into a fresh warehouse file and reports its
   wall time, requests/s and peak memory (resource.getrusage maxrss of that process; the
   Postgres server's own memory is not counted). A second run (nothing new, the overlap window
   re-read) is timed too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from finops.demo.gateway import CREATE_TABLE_SQL as SPEND_LOGS_DDL
from tests.servers_postgres import running_postgres

FILL_SQL = """
INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, spend, total_tokens, prompt_tokens,
    completion_tokens, "startTime", "endTime", model, model_group, custom_llm_provider, "user", metadata,
    cache_hit, request_tags, team_id, end_user, session_id, status, agent_id, messages, response)
SELECT
    'req-' || lpad(g::text, 10, '0'),
    CASE WHEN g % 10 = 0 THEN 'aembedding' ELSE 'acompletion' END,
    md5('key' || (g % 200)::text),
    round(((g % 1000) * 0.0000137)::numeric, 8)::float8,
    (800 + g % 3000) + (100 + g % 700),
    800 + g % 3000,
    100 + g % 700,
    TIMESTAMP '2026-07-01' + (g * (2592000.0 / %(n)s)) * INTERVAL '1 second',
    TIMESTAMP '2026-07-01' + (g * (2592000.0 / %(n)s) + 2.5) * INTERVAL '1 second',
    (ARRAY['gpt-4o', 'claude-sonnet-4', 'anthropic.claude-3-haiku'])[g % 3 + 1],
    (ARRAY['chat', 'assistant', 'cheap'])[g % 3 + 1],
    (ARRAY['openai', 'anthropic', 'bedrock'])[g % 3 + 1],
    'user-' || (g % 5000),
    jsonb_build_object(
        'user_api_key_team_alias', 'team-' || (g % 40),
        'user_api_key_alias', 'key-' || (g % 200),
        'usage_object', jsonb_build_object(
            'prompt_tokens', 800 + g % 3000,
            'completion_tokens', 100 + g % 700,
            'prompt_tokens_details', jsonb_build_object('cached_tokens', CASE WHEN g % 3 = 0 THEN g % 800 ELSE 0 END),
            'cache_read_input_tokens', CASE WHEN g % 3 = 1 THEN g % 800 ELSE 0 END,
            'cache_creation_input_tokens', CASE WHEN g % 3 = 1 THEN g % 50 ELSE 0 END)),
    'False',
    jsonb_build_array('env:prod', 'project:p' || (g % 25)),
    'team-id-' || (g % 40),
    NULL,
    'session-' || (g / 20),
    'success',
    'agent-' || (g % 12),
    jsonb_build_array(jsonb_build_object('role', 'user', 'content', repeat('lorem ipsum ', 20) || g)),
    jsonb_build_object('choices', jsonb_build_array(jsonb_build_object('message', repeat('dolor sit ', 20))))
FROM generate_series(1, %(n)s) AS g
"""

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, {project!r})
    from connectors import litellm
    from finops.warehouse import Warehouse
    wh = Warehouse({warehouse!r})
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        report = litellm.ingest(wh, {dsn!r}, page_size={page_size})
        runs.append({{"seconds": time.perf_counter() - t0, "rows_read": report.result.rows_read,
                      "loaded": report.result.rows_loaded, "new": report.new_requests, "pages": report.pages}})
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"runs": runs, "peak_mb": peak_kb / 1024}}))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="rows to generate in LiteLLM_SpendLogs")
    parser.add_argument("--page-size", type=int, default=200_000)
    args = parser.parse_args()
    import psycopg

    with running_postgres(settings={"shared_buffers": "512MB", "max_wal_size": "4GB"}) as pg, \
            tempfile.TemporaryDirectory(prefix="finops-bench-") as tmp:  # fmt: skip
        dsn = pg.create_database("litellm")
        t0 = time.perf_counter()
        with psycopg.connect(dsn) as con:
            con.execute(SPEND_LOGS_DDL)
            con.execute(FILL_SQL.replace("%(n)s", str(args.requests)))
            con.commit()
            con.autocommit = True
            con.execute('VACUUM ANALYZE "LiteLLM_SpendLogs"')
            size = con.execute("SELECT pg_size_pretty(pg_total_relation_size('\"LiteLLM_SpendLogs\"'))").fetchone()[0]
        print(f"filled LiteLLM_SpendLogs with {args.requests:,} requests ({size}) in {time.perf_counter() - t0:.1f}s")
        code = CHILD.format(project=str(PROJECT), warehouse=str(Path(tmp) / "wh.duckdb"), dsn=dsn, page_size=args.page_size)
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        first, second = result["runs"]
        assert first["loaded"] == args.requests, first
        print(f"first run: {first['rows_read']:,} requests in {first['pages']} pages, {first['seconds']:.1f}s,"
              f" {first['rows_read'] / first['seconds']:,.0f} requests/s")  # fmt: skip
        print(f"second run (overlap re-read, {second['new']} new): {second['rows_read']:,} requests, {second['seconds']:.1f}s")
        print(f"peak memory of the ingest process: {result['peak_mb']:,.0f} MB")
        print(f"requests/s {first['rows_read'] / first['seconds']:.0f}")


if __name__ == "__main__":
    main()
