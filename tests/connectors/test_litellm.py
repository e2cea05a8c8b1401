"""The LiteLLM connector against a real PostgreSQL 15 (tests/servers_postgres.py) holding the
real "LiteLLM_SpendLogs" table, into a real DuckDB warehouse file.

Rows are written with psycopg straight into Postgres, never through our code; the expected
token and spend totals are computed here by hand (Python ints and Decimal) from the same rows.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from finops.demo.gateway import CREATE_TABLE_SQL
from finops.exceptions import SourceError
from finops.warehouse import Warehouse
from tests.rollup import request_rollup_differences
from tests.servers_postgres import postgres  # noqa: F401  (a pytest fixture)

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (the project needs psycopg[binary])")

from connectors import litellm

MARKER = "SECRET-PROMPT-MARKER-7f3a9c"

# "LiteLLM_SpendLogs" as LiteLLM's schema.prisma creates it, with its indexes (the demo's copy).
SPEND_LOGS_DDL = CREATE_TABLE_SQL

SPENDS = ["0.1", "0.2", "0.7", "0.000015", "1.15", "0.3", "2.675", "0.0042"]
START = datetime(2026, 7, 1, 8, 0, 0)


def make_rows(n: int, *, start: datetime = START, step: timedelta = timedelta(minutes=7), prefix: str = "req") -> list[dict]:
    """n spend-log rows, as LiteLLM writes them, every kind of usage detail represented."""
    rows = []
    for i in range(n):
        provider = ["openai", "anthropic", "bedrock"][i % 3]
        prompt, completion = 1000 + 37 * i, 200 + 11 * i
        usage: dict = {"prompt_tokens": prompt, "completion_tokens": completion}
        if provider == "openai" and i % 2 == 0:
            usage["prompt_tokens_details"] = {"cached_tokens": 300 + i}
            usage["completion_tokens_details"] = {"reasoning_tokens": 50 + i}
        if provider == "anthropic":
            usage["cache_read_input_tokens"] = 400 + i
            usage["cache_creation_input_tokens"] = 100 + i
        metadata = {"user_api_key_team_alias": f"team-{i % 4}" if i % 5 else None, "usage_object": usage,
                    "spend_logs_metadata": {"project_id": "proj-x"} if i % 6 == 0 else None}  # fmt: skip
        begin = start + i * step
        rows.append({
            "request_id": f"{prefix}-{i:05d}",
            "call_type": "acompletion" if i % 7 else "aembedding",
            "api_key": f"hashed-key-{i % 3}",
            "spend": SPENDS[i % len(SPENDS)],
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "startTime": begin,
            "endTime": begin + timedelta(seconds=3),
            "model": f"{provider}/model-{i % 2}" if i % 4 == 0 else f"model-{i % 2}",
            "custom_llm_provider": provider,
            "user": f"user-{i % 3}" if i % 2 else "",
            "end_user": f"end-{i}",
            "team_id": f"team-id-{i % 4}",
            "session_id": f"session-{i // 5}",
            "agent_id": f"agent-{i % 2}",
            "status": "success",
            "cache_hit": "False",
            "request_tags": ["prod", f"project:tagged-{i % 2}"] if i % 3 == 0 else ["dev"],
            "metadata": metadata,
            "messages": [{"role": "user", "content": f"{MARKER} please summarise {i}"}],
            "response": {"choices": [{"message": {"content": f"{MARKER} answer {i}"}}]},
            "proxy_server_request": {"body": {"messages": [{"content": MARKER}]}},
        })  # fmt: skip
    return rows


JSONB_COLUMNS = {"metadata", "request_tags", "messages", "response", "proxy_server_request"}


def insert(dsn: str, rows: list[dict]) -> None:
    cols = list(rows[0])
    quoted = ", ".join(f'"{c}"' for c in cols)
    values = ", ".join("%s" for _ in cols)
    with psycopg.connect(dsn) as con:
        with con.cursor() as cur:
            cur.executemany(
                f'INSERT INTO "LiteLLM_SpendLogs" ({quoted}) VALUES ({values})',
                [[json.dumps(r[c]) if c in JSONB_COLUMNS else r[c] for c in cols] for r in rows],
            )


def expected(rows: list[dict]) -> dict:
    """Totals computed by hand from the rows: the llm_requests token split and the spend."""
    tot = {"requests": 0, "input": 0, "cached": 0, "write": 0, "output": 0, "reasoning": 0, "spend": Decimal(0)}
    for r in rows:
        usage = r["metadata"]["usage_object"]
        cached = usage.get("prompt_tokens_details", {}).get("cached_tokens") or usage.get("cache_read_input_tokens", 0)
        write = usage.get("cache_creation_input_tokens", 0)
        tot["requests"] += 1
        tot["input"] += r["prompt_tokens"] - cached - write
        tot["cached"] += cached
        tot["write"] += write
        tot["output"] += r["completion_tokens"]
        tot["reasoning"] += usage.get("completion_tokens_details", {}).get("reasoning_tokens", 0)
        tot["spend"] += Decimal(r["spend"])
    return tot


def loaded(wh: Warehouse) -> dict:
    row = wh.query(
        "SELECT count(*) AS requests, count(DISTINCT request_id) AS distinct_ids, sum(input_tokens) AS input,"
        " sum(cached_input_tokens) AS cached, sum(cache_write_tokens) AS write, sum(output_tokens) AS output,"
        " coalesce(sum(reasoning_tokens), 0) AS reasoning, sum(reported_cost) AS spend FROM llm_requests WHERE source = 'litellm'"
    ).row(0, named=True)
    assert row["requests"] == row["distinct_ids"], "duplicate request ids"
    row.pop("distinct_ids")
    return row


@pytest.fixture
def spend_db(postgres, request) -> str:
    dsn = postgres.create_database("t_" + request.node.name[:40].lower())
    with psycopg.connect(dsn) as con:
        con.execute(SPEND_LOGS_DDL)
    return dsn


def test_load_totals_mapping_and_no_content(spend_db, tmp_path):
    rows = make_rows(60)
    insert(spend_db, rows)
    wh = Warehouse(tmp_path / "wh.duckdb")
    progress: list[tuple[str, int, int]] = []
    report = litellm.ingest(wh, spend_db, page_size=7, progress=lambda *a: progress.append(a))

    assert report.result.rows_read == 60 and report.result.rows_loaded == 60 and report.result.rows_quarantined == 0
    assert report.pages == 9  # 8 full pages of 7 + 4
    assert ("reading LiteLLM_SpendLogs", 60, 60) in progress
    assert report.new_requests == 60
    assert report.watermark.startswith("2026-07-01 14:53:00")  # 08:00 + 59 × 7 min
    want = expected(rows)
    assert loaded(wh) == want
    assert want["spend"] == 7 * sum(Decimal(s) for s in SPENDS) + sum(Decimal(s) for s in SPENDS[:4])  # 60 = 7×8 + 4

    # Mapping, checked on single rows.
    one = wh.query("SELECT * FROM llm_requests WHERE request_id = 'req-00000'").row(0, named=True)
    assert one["provider"] == "openai" and one["model"] == "model-0"  # "openai/model-0" without its prefix
    assert one["team"] == "team-id-0"  # no alias on row 0: team_id
    assert one["project_id"] == "proj-x" and one["tags"] == ["prod", "project:tagged-0"]
    assert one["user_id"] == "end-0" and one["api_key_id"] == "hashed-key-0"  # "user" empty: end_user
    assert (one["input_tokens"], one["cached_input_tokens"], one["reasoning_tokens"]) == (700, 300, 50)
    assert one["call_type"] == "aembedding" and one["status"] == "success" and one["cache_hit"] is False
    assert one["period_start"] == START and one["period_end"] == START + timedelta(seconds=3)
    assert one["cost"] == Decimal("0.1") and one["cost_source"] in ("reported",) and one["cost_currency"] == "USD"
    three = wh.query("SELECT * FROM llm_requests WHERE request_id = 'req-00003'").row(0, named=True)
    assert three["project_id"] == "tagged-1" and three["team"] == "team-3" and three["user_id"] == "user-0"
    assert three["task_id"] == "session-0" and three["agent_id"] == "agent-1"
    four = wh.query("SELECT * FROM llm_requests WHERE request_id = 'req-00004'").row(0, named=True)
    assert four["provider"] == "anthropic" and four["model"] == "model-0"
    assert (four["input_tokens"], four["cached_input_tokens"], four["cache_write_tokens"]) == (1148 - 404 - 104, 404, 104)

    # Nothing of the messages, responses or request bodies reached the warehouse file.
    with wh.writer() as con:
        con.execute("CHECKPOINT")
    data = (tmp_path / "wh.duckdb").read_bytes()
    assert MARKER.encode() not in data
    assert b"summarise" not in data


def test_incremental_runs_and_late_rows(spend_db, tmp_path):
    first = make_rows(40)
    insert(spend_db, first)
    wh = Warehouse(tmp_path / "wh.duckdb")
    litellm.ingest(wh, spend_db, page_size=9)
    assert loaded(wh) == expected(first)

    again = litellm.ingest(wh, spend_db, page_size=9)
    assert again.new_requests == 0
    assert again.since == datetime(2026, 7, 1, 11, 0)  # watermark 12:33 − 1h, on the hour
    assert again.result.rows_read == again.result.rows_replaced == 14  # 11:00 … 12:33 re-read, replaced
    assert loaded(wh) == expected(first)

    # New rows after the watermark, and one late row inside the overlap window.
    new = make_rows(5, start=datetime(2026, 7, 1, 13, 0), prefix="new")
    late = make_rows(1, start=datetime(2026, 7, 1, 12, 1), prefix="late")
    insert(spend_db, new + late)
    third = litellm.ingest(wh, spend_db, page_size=9)
    assert third.new_requests == 6
    assert loaded(wh) == expected(first + new + late)

    # An explicit --since far back re-reads everything and still duplicates nothing.
    full = litellm.ingest(wh, spend_db, since=datetime(2026, 6, 30))
    assert full.result.rows_read == 46 and full.new_requests == 0
    assert loaded(wh) == expected(first + new + late)
    assert request_rollup_differences(wh) == (0, 0)


def test_interrupted_run_then_rerun_has_no_duplicates(spend_db, tmp_path):
    rows = make_rows(30)
    insert(spend_db, rows[:10])
    wh = Warehouse(tmp_path / "wh.duckdb")
    litellm.ingest(wh, spend_db, page_size=4)
    insert(spend_db, rows[10:])

    class Interrupted(Exception):
        pass

    def stop_after_two_pages(label: str, done: int, total: int) -> None:
        if label.startswith("reading") and done >= 8:
            raise Interrupted

    with pytest.raises(Interrupted):
        litellm.ingest(wh, spend_db, page_size=4, progress=stop_after_two_pages)
    assert loaded(wh) == expected(rows[:10])  # the interrupted run wrote nothing
    status = wh.query("SELECT status FROM ingest_batches ORDER BY batch_id")["status"].to_list()
    assert status == ["succeeded", "failed"]

    rerun = litellm.ingest(wh, spend_db, page_size=4)
    assert rerun.new_requests == 20
    assert loaded(wh) == expected(rows)
    assert request_rollup_differences(wh) == (0, 0)


def test_bad_rows_quarantined_with_ids_not_content(spend_db, tmp_path):
    rows = make_rows(12)
    rows[2]["completion_tokens"] = -5
    rows[5]["metadata"] = f"not an object {MARKER}"  # JSON, but a string
    rows[8]["metadata"]["usage_object"]["prompt_tokens_details"] = {"cached_tokens": "many"}
    insert(spend_db, rows)
    wh = Warehouse(tmp_path / "wh.duckdb")
    report = litellm.ingest(wh, spend_db, page_size=5)

    r = report.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (12, 9, 3)
    good = [row for i, row in enumerate(rows) if i not in (2, 5, 8)]
    assert loaded(wh) == expected(good)
    q = wh.query("SELECT column_name, reason, raw_row FROM quarantine ORDER BY row_number")
    assert q["column_name"].to_list() == ["completion_tokens", "metadata", "metadata"]
    reasons = q["reason"].to_list()
    assert reasons[0].startswith("req-00002: completion_tokens is negative")
    assert reasons[1] == "req-00005: metadata is a JSON string, not an object"
    assert reasons[2].startswith("req-00008: metadata usage_object.prompt_tokens_details.cached_tokens")
    raw = [json.loads(x) for x in q["raw_row"].to_list()]
    assert set(raw[1]) == {"request_id", "startTime", "model", "custom_llm_provider"}
    assert MARKER not in "".join(q["raw_row"].to_list() + reasons)


def test_a_bad_row_after_clean_pages_is_quarantined(spend_db, tmp_path):
    # A clean page is not searched for bad rows; a later page's bad row must still be found.
    rows = make_rows(12)
    rows[7]["spend"] = -1
    insert(spend_db, rows)
    wh = Warehouse(tmp_path / "wh.duckdb")
    r = litellm.ingest(wh, spend_db, page_size=5).result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (12, 11, 1)
    assert loaded(wh) == expected([row for i, row in enumerate(rows) if i != 7])
    assert wh.query("SELECT row_number, column_name FROM quarantine").row(0) == (8, "spend")


def test_password_never_in_errors(postgres, tmp_path):
    wh = Warehouse(tmp_path / "wh.duckdb")
    dsn = postgres.dsn("no_such_database").replace("finops@", "finops:hunter2-secret@")
    with pytest.raises(SourceError) as err:
        litellm.ingest(wh, dsn, password="hunter2-secret")
    assert "hunter2" not in str(err.value) and "hunter2" not in (err.value.hint or "")
    assert "no_such_database" in str(err.value)
    assert litellm.window_start("2026-07-01 10:20:00.5", None, timedelta(minutes=30)) == datetime(2026, 7, 1, 9, 0)


def test_cli_reads_password_from_env_and_never_prints_it(spend_db, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from finops.cli import cli

    insert(spend_db, make_rows(10))
    monkeypatch.setenv("LITELLM_TEST_DB_PASSWORD", "hunter2-secret")
    dsn_with_password = spend_db.replace("finops@", "finops:hunter2-secret@")  # given anyway: never shown
    args = ["ingest", "litellm", dsn_with_password, "--password-env", "LITELLM_TEST_DB_PASSWORD", "--page-size", "3",
            "--warehouse", str(tmp_path / "wh.duckdb")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert "10 requests read in 4 page(s)" in result.output and "10 new" in result.output
    again = CliRunner().invoke(cli, args[:-2] + ["--warehouse", str(tmp_path / "wh.duckdb"), "--overlap", "2h"])
    assert again.exit_code == 0 and "0 new" in again.output
    missing = CliRunner().invoke(cli, ["ingest", "litellm", spend_db, "--password-env", "NO_SUCH_VAR_FOR_TEST",
                                       "--warehouse", str(tmp_path / "wh.duckdb")])  # fmt: skip
    assert isinstance(missing.exception, SourceError) and "NO_SUCH_VAR_FOR_TEST is not set" in str(missing.exception)


def test_zero_spend_is_priced_or_unpriced_never_free(spend_db, tmp_path):
    from connectors import pricing

    rows = make_rows(4)
    for r in rows:
        r["spend"] = "0"  # LiteLLM writes 0 when it has no price for the model
    rows[3]["cache_hit"] = "True"  # a gateway cache hit really is free
    rows[2]["model"] = "gpt-unknown"  # rows[0] is openai/model-0, rows[1] anthropic model-1
    insert(spend_db, rows)
    prices = tmp_path / "prices.csv"
    prices.write_text("provider,model,input,cached_input,cache_write,output\n"
                      "openai,model-0,2.5,1.25,,10\nanthropic,model-1,3,0.3,3.75,15\n")  # fmt: skip
    wh = Warehouse(tmp_path / "wh.duckdb")
    pricing.load_prices(wh, [prices])
    litellm.ingest(wh, spend_db)

    got = {r["request_id"]: r for r in wh.query("SELECT * FROM llm_requests").iter_rows(named=True)}
    # req-00000: openai/model-0, prompt 1000 with 300 cached, completion 200 (USD per 1M: 2.5 / 1.25 / 10).
    assert got["req-00000"]["cost_source"] == "priced"
    assert got["req-00000"]["cost"] == (700 * Decimal("2.5") + 300 * Decimal("1.25") + 200 * Decimal("10")) / 10**6
    # req-00001: anthropic model-1, prompt 1037 holding 401 cache reads and 101 cache writes, completion 211.
    one = got["req-00001"]
    assert (one["input_tokens"], one["cached_input_tokens"], one["cache_write_tokens"]) == (535, 401, 101)
    assert one["cost_source"] == "priced"
    assert one["cost"] == (535 * Decimal(3) + 401 * Decimal("0.3") + 101 * Decimal("3.75") + 211 * Decimal(15)) / 10**6
    assert got["req-00002"]["cost_source"] == "unpriced" and got["req-00002"]["cost"] is None
    assert got["req-00003"]["cost_source"] == "reported" and got["req-00003"]["cost"] == 0


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_rows_from_a_file_copy_of_the_table(tmp_path, suffix):
    """ingest_rows: the same mapping from a file; text metadata that is not JSON is quarantined."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    rows = make_rows(20)
    records = [{**r, **{c: json.dumps(r[c]) for c in JSONB_COLUMNS}, "spend": float(r["spend"])} for r in rows]
    records[7]["metadata"] = '{"usage_object": {"prompt_tokens": 12'  # cut off: not JSON
    path = tmp_path / f"spend_logs{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    elif suffix == ".csv":
        pa_csv.write_csv(pa.Table.from_pylist(records), path)
    else:
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in records))
    wh = Warehouse(tmp_path / "wh.duckdb")
    report = litellm.ingest_rows(wh, path)
    r = report.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (20, 19, 1)
    assert loaded(wh) == expected(rows[:7] + rows[8:])
    assert wh.query("SELECT row_number, reason FROM quarantine").row(0) == (8, "req-00007: metadata is not valid JSON")
    # The team alias and project id come from the metadata JSON, as from the database.
    got = dict(wh.query("SELECT request_id, team || ' ' || project_id FROM llm_requests"
                        " WHERE request_id IN ('req-00000', 'req-00003', 'req-00006')").rows())
    assert got == {"req-00000": "team-id-0 proj-x", "req-00003": "team-3 tagged-1", "req-00006": "team-2 proj-x"}
    assert MARKER.encode() not in (tmp_path / "wh.duckdb").read_bytes()
    again = litellm.ingest_rows(wh, path)
    assert again.new_requests == 0 and loaded(wh) == expected(rows[:7] + rows[8:])


def test_a_csv_file_with_broken_lines_quarantines_them_without_their_text(tmp_path):
    """A line with a field too many or too few is that row quarantined (by file and row, never
    its text: the messages column holds prompts); the rows after it keep their numbers. A quote
    left open, which takes the next line into a broken row, refuses the file by name and line."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rows = make_rows(20)
    records = [{**r, **{c: json.dumps(r[c]) for c in JSONB_COLUMNS}, "spend": float(r["spend"])} for r in rows]
    records[11]["metadata"] = "not json"
    path = tmp_path / "spend_logs.csv"
    pa_csv.write_csv(pa.Table.from_pylist(records), path)
    written = path.read_text().splitlines()
    lines = list(written)
    lines[6] += ',"extra"'  # data row 6
    lines[9] = ",".join(lines[9].split(",")[:5])  # data row 9, cut at a field boundary
    path.write_text("\n".join(lines) + "\n")
    wh = Warehouse(tmp_path / "wh.duckdb")
    r = litellm.ingest_rows(wh, path).result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (20, 17, 3)
    q = wh.query("SELECT row_number, column_name, reason, raw_row FROM quarantine ORDER BY row_number").rows()
    assert [row[0] for row in q] == [6, 9, 12]
    assert "line 7: TOO MANY COLUMNS" in q[0][2] and "line 10: MISSING COLUMNS" in q[1][2]
    assert q[2][2] == "req-00011: metadata is not valid JSON"  # row 12 keeps its number past the two lines
    assert all(MARKER not in (row[3] or "") for row in q)
    assert loaded(wh) == expected([row for i, row in enumerate(rows) if i not in (5, 8, 11)])
    assert MARKER.encode() not in (tmp_path / "wh.duckdb").read_bytes()

    lines = list(written)
    lines[4] = lines[4][: lines[4].index('""usage_object""')]  # inside the quoted metadata: the quote stays open
    path.write_text("\n".join(lines) + "\n")
    before = loaded(wh)
    with pytest.raises(SourceError, match=r"spend_logs.csv: line 5 opens a quoted value") as err:
        litellm.ingest_rows(wh, path)
    assert MARKER not in str(err.value) and loaded(wh) == before
