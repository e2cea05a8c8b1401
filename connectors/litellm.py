"""LiteLLM proxy spend logs (Postgres table "LiteLLM_SpendLogs") → `llm_requests`.

The LiteLLM proxy writes one row per request. This connector reads them incrementally and
never touches content: the SELECT names its columns and a handful of metadata paths, so
``messages``, ``response`` and ``proxy_server_request`` are never read, not even into memory.

How a run reads
    A watermark (the newest "startTime" loaded) is saved in ``source_state`` with the data, per
    database. The next run re-reads from ``watermark - overlap`` (default 1 hour) rounded *down*
    to the hour, to pick up rows that arrived late, and pages through the table by the keyset
    ("startTime", request_id) with ``COPY (SELECT …) TO STDOUT (FORMAT csv)``: Postgres formats
    the rows, DuckDB parses each page from a temp file, Python never loops over rows. All pages
    are read in one REPEATABLE READ snapshot; each page is typed and mapped as it arrives, and
    DuckDB is held to the warehouse's memory limit (``FINOPS_MEMORY_LIMIT``; staged rows spill
    to disk beyond it).

Why re-reading never duplicates
    Every loaded row belongs to an hour bucket of its "startTime", recorded in ``x_SourceKey``
    as ``<host:port/db>#YYYY-MM-DDTHH``. The load replaces, in one transaction, every bucket it
    read, and the read window always starts on a bucket boundary, so each replaced bucket was
    read whole. A request id lives in one bucket only (its "startTime" does not change), so a
    re-run, an overlapping window or ``--since`` in the past replaces rows, never adds them.
    An interrupted run writes nothing (the transaction rolls back) and its re-run starts from
    the old watermark. A row that arrives later than the overlap window is missed until a run
    with an earlier ``--since``.

Mapping (LiteLLM → llm_requests)
    provider = custom_llm_provider; model = model as LiteLLM called it, minus a leading
    "<provider>/" (so it matches the price table's names; model_group, the alias the client
    asked for, is not kept). team = metadata.user_api_key_team_alias, else team_id.
    project_id = metadata.spend_logs_metadata.project_id, else a request tag "project:NAME".
    user_id = "user", else end_user. api_key_id = api_key (LiteLLM stores it hashed; we keep
    the hash). agent_id = agent_id. task_id = session_id, else metadata.trace_id.
    tags = request_tags (a JSON array). requests = 1, status, call_type, cache_hit.
    period_start/end = "startTime"/"endTime" (UTC, as LiteLLM writes them).

Tokens (llm_requests semantics: input_tokens is fresh, uncached input only)
    LiteLLM's prompt_tokens is OpenAI-style total input: cache reads (and, for Anthropic, cache
    writes) are inside it. cached_input_tokens = metadata.usage_object
    .prompt_tokens_details.cached_tokens, else .cache_read_input_tokens; cache_write_tokens =
    .cache_creation_input_tokens. input_tokens = prompt_tokens − cached − cache writes when the
    prompt count holds both, else prompt_tokens − cached (writes reported beside it).
    output_tokens = completion_tokens, which includes reasoning tokens; reasoning_tokens =
    .completion_tokens_details.reasoning_tokens is informational.

Cost
    reported_cost = spend (USD; a Postgres float read as its exact decimal text, never summed as
    a float). A spend of 0 on a successful, non-cached request with tokens is LiteLLM's "no
    price for this model", not a free request: it is left NULL so pricing can price it or mark
    it unpriced. Then ``connectors.pricing.price_staged`` sets priced_cost, cost, cost_source.

Bad rows (negative token counts, metadata that is not a JSON object, usage details that are
not integers, cached tokens above prompt_tokens, a negative or non-numeric spend) are
quarantined with the request id, "startTime", model and provider and the reason, never content.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from connectors.files import CsvDialect, csv_rejects_sql, money_from_text, read_sql, sql_literal
from connectors.staging import data_row_sql, describe_columns, refuse_lines_taken_by_an_open_quote, stage_read_rejects
from finops.exceptions import SourceError
from finops.warehouse import LLM_REQUESTS_COLUMNS, MONEY, LoadBatch, LoadResult, SourceFile, Warehouse

ProgressCallback = Callable[[str, int, int], None]

SOURCE_KIND = "litellm"
TABLE = '"LiteLLM_SpendLogs"'
DEFAULT_OVERLAP = timedelta(hours=1)
DEFAULT_PAGE_SIZE = 200_000

# What is selected from the table, in order: (output name, SQL expression). Nothing else is ever
# read. Optional columns (older LiteLLM versions lack some) are listed in _COLUMN_OF: NULL if absent.
_USAGE = "'{usage_object,%s}'"
_SELECTED: list[tuple[str, str]] = [
    ("request_id", "request_id"),
    ("start_time", '"startTime"::timestamp'),  # UTC wall time even from a timestamptz column
    ("end_time", '"endTime"::timestamp'),
    ("call_type", "call_type"),
    ("api_key", "api_key"),
    ("spend", "spend::text"),
    ("prompt_tokens", "prompt_tokens"),
    ("completion_tokens", "completion_tokens"),
    ("model", "model"),
    ("custom_llm_provider", "custom_llm_provider"),
    ("user_", '"user"'),
    ("end_user", "end_user"),
    ("team_id", "team_id"),
    ("session_id", "session_id"),
    ("agent_id", "agent_id"),
    ("status", "status"),
    ("cache_hit", "cache_hit::text"),
    ("request_tags", "CASE WHEN jsonb_typeof(request_tags::jsonb) = 'array' THEN request_tags::text END"),
    ("metadata_type", "jsonb_typeof(metadata::jsonb)"),
    ("team_alias", "metadata::jsonb ->> 'user_api_key_team_alias'"),
    ("project_meta", "metadata::jsonb #>> '{spend_logs_metadata,project_id}'"),
    ("trace_id", "metadata::jsonb ->> 'trace_id'"),
    ("cached_tokens", "metadata::jsonb #>> " + _USAGE % "prompt_tokens_details,cached_tokens"),
    ("cache_read_tokens", "metadata::jsonb #>> " + _USAGE % "cache_read_input_tokens"),
    ("cache_creation_tokens", "metadata::jsonb #>> " + _USAGE % "cache_creation_input_tokens"),
    ("reasoning_tokens", "metadata::jsonb #>> " + _USAGE % "completion_tokens_details,reasoning_tokens"),
]
_COLUMN_OF = {  # which table column each selected expression needs
    "custom_llm_provider": "custom_llm_provider", "user_": "user", "end_user": "end_user", "team_id": "team_id",
    "session_id": "session_id", "agent_id": "agent_id", "status": "status", "cache_hit": "cache_hit",
    "request_tags": "request_tags", "metadata_type": "metadata", "team_alias": "metadata", "project_meta": "metadata",
    "trace_id": "metadata", "cached_tokens": "metadata", "cache_read_tokens": "metadata",
    "cache_creation_tokens": "metadata", "reasoning_tokens": "metadata",
}  # fmt: skip
_REQUIRED = ("request_id", "startTime", "endTime", "call_type", "api_key", "spend", "prompt_tokens", "completion_tokens", "model")


@dataclasses.dataclass(frozen=True)
class LiteLLMReport:
    """What one run did: the load's counts plus the window it read and the new watermark."""

    result: LoadResult
    source: str  # postgresql://user@host:port/db, never with a password
    since: datetime | None  # the window read: "startTime" >= since (None: the whole table)
    watermark: str | None  # newest "startTime" now loaded
    pages: int
    new_requests: int  # rows_loaded − rows_replaced: requests the warehouse did not have
    totals: pl.DataFrame  # provider, model, requests, input/cached/cache-write/output tokens, cost, per cost_source
    quarantine_sample: pl.DataFrame


@dataclasses.dataclass(frozen=True)
class _Target:
    conninfo: dict[str, Any]
    display: str  # for messages: no password
    key: str  # host:port/dbname, names this database in state and partitions


def _target(dsn: str, password: str | None) -> _Target:
    psycopg = _psycopg()
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise SourceError(  # the original message may quote the DSN, password included
            "litellm: the Postgres DSN cannot be parsed",
            hint="pass postgresql://USER@HOST:PORT/DBNAME and the password via --password-env VAR",
        ) from None
    if password is not None:
        info["password"] = password
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    dbname = info.get("dbname") or info.get("user") or "postgres"
    user = info.get("user") or ""
    key = f"{host}:{port}/{dbname}"
    return _Target(info, f"postgresql://{user + '@' if user else ''}{key}", key)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SourceError(
            "litellm: the Postgres client library psycopg is not installed",
            hint="install it: uv pip install 'psycopg[binary]'",
        ) from exc
    return psycopg


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(re.sub(r"[+-]\d\d(:\d\d)?$", "", text))


def window_start(watermark: str | None, since: date | datetime | None, overlap: timedelta) -> datetime | None:
    """Where a run starts reading: ``since`` if given, else watermark − overlap; on the hour.

    >>> window_start("2026-07-01 10:20:00.123", None, timedelta(hours=1))
    datetime.datetime(2026, 7, 1, 9, 0)
    >>> window_start(None, date(2026, 7, 1), timedelta(hours=1))
    datetime.datetime(2026, 7, 1, 0, 0)
    """
    if since is not None:
        start = since if isinstance(since, datetime) else datetime(since.year, since.month, since.day)
        return _floor_hour(start.replace(tzinfo=None))
    if watermark is None:
        return None
    return _floor_hour(_parse_ts(watermark) - overlap)


def ingest(
    wh: Warehouse,
    dsn: str,
    *,
    password: str | None = None,
    since: date | datetime | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: ProgressCallback | None = None,
) -> LiteLLMReport:
    """Load new LiteLLM spend-log rows from the Postgres at ``dsn`` into ``llm_requests``.

    ``password`` comes from an environment variable the caller names (never the command line);
    a password inside ``dsn`` works but is never shown. ``since`` re-reads from that time on
    instead of from the saved watermark. ``progress(label, rows_done, rows_total)`` is called
    after each page.
    """
    psycopg = _psycopg()
    report = progress or (lambda *_: None)
    target = _target(dsn, password)
    secret = target.conninfo.get("password")
    state_key = f"watermark:{target.key}"
    watermark = wh.source_state(SOURCE_KIND, state_key).get(state_key)
    start = window_start(watermark, since, overlap)
    try:
        with psycopg.connect(**{"connect_timeout": 15, **target.conninfo}, autocommit=False) as pg:
            return _load(wh, pg, target, start, watermark, page_size, state_key, report)
    except psycopg.Error as exc:
        where = f"litellm {target.display}, table {TABLE}"
        hint = "check the DSN, that the LiteLLM database is reachable, and --password-env"
        if isinstance(exc, psycopg.errors.UndefinedTable):
            hint = 'is this the LiteLLM proxy database? it has no table "LiteLLM_SpendLogs"'
        raise SourceError(f"{where}: {_scrub(str(exc).strip(), secret)}", hint=hint) from None


def _load(wh: Warehouse, pg: Any, target: _Target, start: datetime | None, old_watermark: str | None,
          page_size: int, state_key: str, report: ProgressCallback) -> LiteLLMReport:  # fmt: skip
    from psycopg import sql

    pg.execute("SET TimeZone = 'UTC'")
    pg.execute("SET DateStyle = 'ISO, YMD'")
    pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one snapshot for every page
    present = {
        r[0]
        for r in pg.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'LiteLLM_SpendLogs'"
            " AND table_schema = ANY (current_schemas(false))"
        ).fetchall()
    }
    if not present:
        raise SourceError(
            f'litellm {target.display}: no table "LiteLLM_SpendLogs"',
            hint="point the DSN at the LiteLLM proxy's database (its DATABASE_URL, without the password)",
        )
    missing = [c for c in _REQUIRED if c not in present]
    if missing:
        raise SourceError(
            f'litellm {target.display}: "LiteLLM_SpendLogs" lacks column(s) {", ".join(missing)}',
            hint="a LiteLLM proxy version this connector does not know; please report it",
        )
    select = sql.SQL(", ").join(
        sql.SQL(expr if name not in _COLUMN_OF or _COLUMN_OF[name] in present else "NULL")
        + sql.SQL(" AS ") + sql.Identifier(name)
        for name, expr in _SELECTED
    )  # fmt: skip
    outer = sql.SQL(", ").join(sql.Identifier(name) for name, _ in _SELECTED)
    lower = sql.SQL('"startTime" >= {}').format(sql.Literal(start)) if start else sql.SQL("TRUE")
    if start:  # the window: counted with the "startTime" index
        total = pg.execute(sql.SQL("SELECT count(*) FROM " + TABLE + " WHERE {}").format(lower)).fetchone()[0]
    else:  # the whole table: Postgres's estimate is enough for a progress bar, a count would scan it
        total = pg.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass", [TABLE]).fetchone()[0]
        if total == 0:
            total = pg.execute("SELECT count(*) FROM " + TABLE).fetchone()[0]
    columns = "{'page_row': 'BIGINT', " + ", ".join(f"'{name}': 'VARCHAR'" for name, _ in _SELECTED) + "}"
    source_file = f"{target.key}/LiteLLM_SpendLogs"
    with wh.load(SOURCE_KIND, target.display) as batch, tempfile.TemporaryDirectory(prefix="finops-litellm-") as tmp:
        page_path = Path(tmp) / "page.csv"
        rows_read, pages, last, last_text = 0, 0, None, None
        report("reading LiteLLM_SpendLogs", 0, total)
        while True:
            where = lower
            if last is not None:
                where = sql.SQL('{} AND "startTime" >= {} AND ("startTime" > {} OR request_id > {})').format(
                    lower, sql.Literal(last[0]), sql.Literal(last[0]), sql.Literal(last[1])
                )
            # row_number() over the ordered page: the last row is the next page's keyset start,
            # in Postgres's own ordering (its collation of request_id, not ours).
            query = sql.SQL(
                "COPY (SELECT row_number() OVER () AS page_row, {} FROM (SELECT {} FROM " + TABLE
                + ' WHERE {} ORDER BY "startTime", request_id LIMIT {}) AS page) TO STDOUT (FORMAT csv)'
            ).format(outer, select, where, sql.Literal(page_size))
            with open(page_path, "wb") as out, pg.cursor().copy(query) as copy:
                for chunk in copy:
                    out.write(chunk)
            rows = batch.stage(
                "litellm_page",
                f"SELECT {rows_read} + page_row AS _row, * EXCLUDE (page_row) FROM read_csv({sql_literal(str(page_path))},"
                f" header = false, columns = {columns}, quote = '\"', escape = '\"', allow_quoted_nulls = false)",
            ) if page_path.stat().st_size else 0  # fmt: skip
            if rows == 0:
                break
            # Type and map the page at once, so only the compact llm_requests rows are kept.
            mapped = _requests_sql("litellm_page", batch.batch_id, target.key)
            good = batch.stage("litellm_requests", mapped, append=pages > 0)
            _stage_bad_rows(batch, source_file, clean=good == rows, append=pages > 0)
            pages += 1
            last_text, last_id = batch.execute(
                "SELECT start_time, request_id FROM litellm_page WHERE _row = ?", [rows_read + rows]
            ).fetchone()
            last = (_parse_ts(last_text), last_id)
            rows_read += rows
            report("reading LiteLLM_SpendLogs", rows_read, total)
            if rows < page_size:
                break
        pg.rollback()
        if rows_read == 0:
            empty = LoadResult(batch.batch_id, 0, 0, 0, 0, [])
            return LiteLLMReport(empty, target.display, start, old_watermark, 0, 0, _no_totals(), _no_quarantine())
        batch.execute("DROP TABLE litellm_page")
        # Pages are in ("startTime", request_id) order: the last row read has the newest time.
        new_watermark = last_text
        if old_watermark and _parse_ts(old_watermark) > _parse_ts(new_watermark):
            new_watermark = old_watermark
        result, totals, sample = _finish(batch, rows_read, {state_key: new_watermark}, lambda label: report(label, rows_read, total))
    return LiteLLMReport(
        result, target.display, start, new_watermark, pages, result.rows_loaded - result.rows_replaced, totals, sample
    )


def _finish(batch: Any, rows_read: int, state: dict[str, Any], report: Callable[[str], None]) -> tuple[LoadResult, pl.DataFrame, pl.DataFrame]:
    """Price the staged requests and replace their hour buckets in `llm_requests`; quarantine the bad rows."""
    report("pricing")
    _price(batch, "litellm_requests")
    columns_sql = ", ".join(f'"{c}"' for c in LLM_REQUESTS_COLUMNS)
    report("replacing hour buckets")
    result = batch.replace_partitions(
        "llm_requests",
        f"SELECT {columns_sql} FROM litellm_requests",
        partition_by=["x_Source", "x_SourceKey"],
        rows_read=rows_read,
        quarantine_sql="SELECT * FROM litellm_bad",
        state=state,
    )
    totals = batch.execute(
        "SELECT provider, model, cost_source, count(*) AS requests, sum(input_tokens) AS input_tokens,"
        " sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,"
        " sum(output_tokens) AS output_tokens, sum(cost) AS cost FROM llm_requests WHERE x_BatchId = ?"
        " GROUP BY ALL ORDER BY cost DESC NULLS LAST, provider, model",
        [batch.batch_id],
    ).pl()
    return result, totals, batch.quarantine_sample()


# The same selection from a file of the table's rows (Parquet, CSV, JSON lines), in DuckDB SQL:
# metadata and request_tags are JSON text there; text that is not JSON is quarantined.
# The metadata values are read with one parse of each row's JSON (``_metadata``, a list in this
# order): a parse per value was half the time of reading a file.
_METADATA_PATHS: dict[str, str] = {
    "team_alias": "$.user_api_key_team_alias",
    "project_meta": "$.spend_logs_metadata.project_id",
    "trace_id": "$.trace_id",
    "cached_tokens": "$.usage_object.prompt_tokens_details.cached_tokens",
    "cache_read_tokens": "$.usage_object.cache_read_input_tokens",
    "cache_creation_tokens": "$.usage_object.cache_creation_input_tokens",
    "reasoning_tokens": "$.usage_object.completion_tokens_details.reasoning_tokens",
}
_FILE_SELECTED: dict[str, str] = {
    "start_time": 'CAST("startTime" AS VARCHAR)',
    "end_time": 'CAST("endTime" AS VARCHAR)',
    "spend": "CAST(spend AS VARCHAR)",
    "user_": '"user"',
    "request_tags": "CASE WHEN json_valid(request_tags) AND json_type(request_tags) = 'ARRAY' THEN request_tags END",
    "metadata_type": "CASE WHEN metadata IS NULL THEN NULL WHEN json_valid(metadata) THEN lower(json_type(metadata))"
                     " ELSE 'invalid' END",
    **{name: f"_metadata[{i}]" for i, name in enumerate(_METADATA_PATHS, start=1)},
}  # fmt: skip


def _with_metadata_values(relation: str) -> str:
    """``relation`` plus ``_metadata``: the values at _METADATA_PATHS of its JSON metadata (NULL
    where the text is not JSON)."""
    paths = ", ".join(sql_literal(p) for p in _METADATA_PATHS.values())
    valid = "CASE WHEN json_valid(metadata) THEN metadata END"
    return f"(SELECT *, json_extract_string({valid}, [{paths}]) AS _metadata FROM {relation})"


def ingest_rows(wh: Warehouse, path: str | Path, *, progress: ProgressCallback | None = None) -> LiteLLMReport:
    """Load "LiteLLM_SpendLogs" rows from a file (Parquet, CSV or JSON lines with the table's columns).

    For when the proxy database cannot be reached but its rows were exported (or, in the demo,
    when no Postgres can start). Only the named columns are read, never messages or response.
    Mapping, pricing and quarantine are those of :func:`ingest`; the file's rows replace the hour
    buckets they touch under the key ``file:<file name>``, so loading the same file twice adds nothing.
    """
    report = progress or (lambda *_: None)
    path = Path(path)
    if not path.exists():
        raise SourceError(f"litellm: no file {path}", hint="pass the exported spend-log rows (.parquet, .csv, .jsonl)")
    reader = {".parquet": "read_parquet", ".csv": "read_csv", ".jsonl": "read_json", ".json": "read_json"}.get(path.suffix.lower())
    if reader is None:
        raise SourceError(f"litellm: cannot read {path.name}", hint="use a .parquet, .csv or .jsonl file of the table's rows")
    row_number, carried = "row_number() OVER ()", ""  # CSV and JSON lines: rows numbered in the order read
    if reader == "read_parquet":  # Parquet numbers its rows itself: no window over the whole file
        row_number, carried = "file_row_number + 1", ", file_row_number"
    relation = f"{reader}({sql_literal(str(path))}{', file_row_number = true' if carried else ''})"
    csv_dialect = None
    if reader == "read_csv":  # read as the bills are: a line DuckDB cannot parse is quarantined, not the file refused
        with Warehouse.scratch() as con:
            csv_dialect = describe_columns(con, path, "csv", None, name=f"litellm: {path}").csv_dialect
        relation = read_sql(path, "csv", None, rejects_table="litellm_read_rejects", csv_dialect=csv_dialect)
    key = f"file:{path.name}"
    with wh.load(SOURCE_KIND, str(path), [SourceFile.of(path)]) as batch:
        try:
            present = set(csv_dialect.columns) if csv_dialect else {r[0] for r in batch.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
        except duckdb.Error as exc:
            raise SourceError(f"litellm: {path}: {str(exc).splitlines()[0]}", hint="is it an export of LiteLLM_SpendLogs?") from None
        missing = [c for c in _REQUIRED if c not in present]
        if missing:
            raise SourceError(f"litellm: {path} lacks column(s) {', '.join(missing)}", hint="export every column of LiteLLM_SpendLogs but messages/response")
        select = ", ".join(
            f"{_FILE_SELECTED.get(name, expr) if name not in _COLUMN_OF or _COLUMN_OF[name] in present else 'NULL'}"
            f" AS {name}"
            for name, expr in _SELECTED
        )
        columns = ", ".join(f"CAST({name} AS VARCHAR) AS {name}" for name, _ in _SELECTED)
        report(f"reading {path.name}", 0, 1)
        source = _with_metadata_values(relation) if "metadata" in present else relation
        rows = f"SELECT {row_number} AS _row, {columns} FROM (SELECT {select}{carried} FROM {source})"
        if reader == "read_parquet":
            # Mapped straight from the file, as the text a page of the table would hold (staging
            # that text first was a third of a file's time): Parquet counts its rows from its
            # footer, and is read again only to quarantine, when some rows were not mapped.
            rows = f"({rows})"
            rows_read = batch.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
        else:  # CSV and JSON lines are counted only by parsing them: staging the text counts for free
            rows_read, rows = batch.stage("litellm_page", rows), "litellm_page"
        rejected = _stage_csv_rejects(batch, path, csv_dialect) if csv_dialect else 0
        good = batch.stage("litellm_requests", _requests_sql(rows, batch.batch_id, key))
        _stage_bad_rows(batch, str(path), clean=good == rows_read, append=False, raw=rows)
        if rejected:
            batch.stage("litellm_bad", _rejects_quarantine_sql(path), append=True)
            rows_read += rejected
        batch.execute("DROP TABLE IF EXISTS litellm_page")  # its memory, before the insert
        result, totals, sample = _finish(batch, rows_read, {}, lambda label: report(label, 1, 1))
    return LiteLLMReport(result, str(path), None, None, 1, result.rows_loaded - result.rows_replaced, totals, sample)


def _stage_csv_rejects(batch: LoadBatch, path: Path, dialect: CsvDialect) -> int:
    """Stage the lines of the CSV file just read into ``litellm_page`` that DuckDB could not parse
    (as ``litellm_rejects``), number the page's rows as lines of the file again, and return how
    many rows were rejected; a quote left open that took lines with it refuses the file."""
    if stage_read_rejects(batch, "litellm_read_rejects", "litellm_rejects") == 0:
        return 0
    # The recount reads the file again (when a rejected line is a quote error): it counts the
    # line breaks inside every column's values, messages too, without keeping them.
    again = read_sql(path, "csv", None, rejects_table="litellm_recount_rejects", csv_dialect=dialect)
    refuse_lines_taken_by_an_open_quote(batch, again, "litellm_rejects", path, None, dialect, f"litellm: {path}")
    batch.execute('DROP TABLE IF EXISTS temp.main."litellm_recount_rejects"')
    batch.execute('DROP TABLE IF EXISTS temp.main."litellm_recount_rejects_scans"')
    batch.execute(f"UPDATE litellm_page SET _row = {data_row_sql('litellm_page._row', 'litellm_rejects')}")
    return batch.execute("SELECT count(DISTINCT line) FROM litellm_rejects").fetchone()[0]


def _rejects_quarantine_sql(path: Path) -> str:
    """Quarantine rows of the rejected CSV lines: file, row, DuckDB's reason; never the line,
    which may hold a prompt (the messages column)."""
    rejects = csv_rejects_sql("litellm_rejects", str(path))
    return f"SELECT file, row_number, column_name, reason, to_json({{'line': row_number + 1}}) AS raw_row FROM ({rejects})"


def _count(col: str) -> str:
    return f"TRY_CAST({col} AS BIGINT)"


def _usage_check(col: str, path: str) -> tuple[str, str, str]:
    return ("metadata", f"'metadata usage_object.{path} is not a non-negative integer'",
            f"{col} IS NOT NULL AND coalesce(TRY_CAST({col} AS BIGINT) < 0, true)")  # fmt: skip


# What makes a row go to quarantine: (column, reason as SQL, condition over the typed row).
_CHECKS: list[tuple[str, str, str]] = [
    ("startTime", "'startTime is not a timestamp'", "start_ts IS NULL"),
    ("prompt_tokens", "'prompt_tokens is negative or missing'", "prompt_n IS NULL OR prompt_n < 0"),
    ("completion_tokens", "'completion_tokens is negative or missing'", "completion_n IS NULL OR completion_n < 0"),
    ("spend", "'spend is negative, missing or not a number'", "spend_d IS NULL OR spend_d < 0"),
    ("metadata", "CASE metadata_type WHEN 'invalid' THEN 'metadata is not valid JSON'"
                 " ELSE 'metadata is a JSON ' || metadata_type || ', not an object' END",
     "metadata_type IS NOT NULL AND metadata_type NOT IN ('object', 'null')"),
    _usage_check("cached_tokens", "prompt_tokens_details.cached_tokens"),
    _usage_check("cache_read_tokens", "cache_read_input_tokens"),
    _usage_check("cache_creation_tokens", "cache_creation_input_tokens"),
    _usage_check("reasoning_tokens", "completion_tokens_details.reasoning_tokens"),
    ("metadata", "'cached tokens exceed prompt_tokens'", "cached_n > prompt_n"),
]  # fmt: skip


def _typed_sql(raw: str) -> str:
    """Typed values of the raw page rows plus ``_bad``: true when any check fails."""
    bad = " OR ".join(f"coalesce({cond}, false)" for _, _, cond in _CHECKS)
    return f"""
    SELECT *, ({bad}) AS _bad FROM (
        SELECT *,
            TRY_CAST(start_time AS TIMESTAMP) AS start_ts,
            TRY_CAST(end_time AS TIMESTAMP) AS end_ts,
            {_count('prompt_tokens')} AS prompt_n,
            {_count('completion_tokens')} AS completion_n,
            coalesce({_count('cached_tokens')}, {_count('cache_read_tokens')}, 0) AS cached_n,
            coalesce({_count('cache_creation_tokens')}, 0) AS cache_write_n,
            {_count('reasoning_tokens')} AS reasoning_n,
            {money_from_text('spend')} AS spend_d
        FROM {raw}
    )
    """


def _stage_bad_rows(
    batch: LoadBatch, source_file: str, *, clean: bool, append: bool, raw: str = "litellm_page"
) -> None:
    """Stage (or add to) ``litellm_bad``, the quarantine rows of ``raw`` (a page of text rows).

    ``clean``: every row of ``raw`` was mapped, so none can be bad, and ``raw`` is not read and
    typed a second time to find none (2.8 s of the 15 s a clean file of 1.65M rows took).
    """
    if clean and append:
        return
    sql = _quarantine_sql(raw, source_file)
    batch.stage("litellm_bad", f"{sql} LIMIT 0" if clean else sql, append=append)


def _quarantine_sql(raw: str, source_file: str) -> str:
    """Quarantine rows for the page's bad rows: identifiers and every failed check, never content."""
    errors = ", ".join(f"CASE WHEN coalesce({cond}, false) THEN [{sql_literal(col)}, {reason}] END" for col, reason, cond in _CHECKS)
    return f"""
    SELECT {sql_literal(source_file)} AS file, _row AS row_number, _errors[1][1] AS column_name,
        request_id || ': ' || array_to_string(list_transform(_errors, e -> e[2]), '; ') AS reason,
        json_object('request_id', request_id, 'startTime', start_time, 'model', model,
                    'custom_llm_provider', custom_llm_provider) AS raw_row
    FROM (SELECT *, list_filter([{errors}], e -> e IS NOT NULL) AS _errors FROM ({_typed_sql(raw)}) WHERE _bad)
    """


def _requests_sql(raw: str, batch_id: int, key: str) -> str:
    """Rows with the columns of ``llm_requests`` from the page's valid rows."""
    provider = "nullif(custom_llm_provider, '')"
    return f"""
    SELECT
        start_ts AS period_start,
        coalesce(end_ts, start_ts) AS period_end,
        'litellm' AS source,
        {provider} AS provider,
        CASE WHEN {provider} IS NOT NULL AND starts_with(model, {provider} || '/')
             THEN substr(model, length({provider}) + 2) ELSE model END AS model,
        coalesce(nullif(project_meta, ''),
                 list_extract(list_transform(list_filter(tags, t -> starts_with(t, 'project:')), t -> substr(t, 9)), 1))
            AS project_id,
        coalesce(nullif(team_alias, ''), nullif(team_id, '')) AS team,
        coalesce(nullif(user_, ''), nullif(end_user, '')) AS user_id,
        nullif(api_key, '') AS api_key_id,
        nullif(agent_id, '') AS agent_id,
        coalesce(nullif(session_id, ''), nullif(trace_id, '')) AS task_id,
        request_id,
        1::BIGINT AS requests,
        CASE WHEN prompt_n >= cached_n + cache_write_n THEN prompt_n - cached_n - cache_write_n
             ELSE prompt_n - cached_n END AS input_tokens,
        cached_n AS cached_input_tokens,
        cache_write_n AS cache_write_tokens,
        completion_n AS output_tokens,
        reasoning_n AS reasoning_tokens,
        CAST(NULL AS {MONEY}) AS cost,
        'USD' AS cost_currency,
        CAST(NULL AS VARCHAR) AS cost_source,
        'litellm' AS x_Source,
        {batch_id}::BIGINT AS x_BatchId,
        nullif(call_type, '') AS call_type,
        nullif(status, '') AS status,
        CASE lower(cache_hit) WHEN 'true' THEN true WHEN '1' THEN true WHEN 'false' THEN false WHEN '0' THEN false END
            AS cache_hit,
        CAST(NULL AS VARCHAR) AS service_tier,
        tags,
        CAST(NULL AS VARCHAR) AS span_id,
        CAST(NULL AS VARCHAR) AS parent_span_id,
        CASE WHEN spend_d = 0 AND prompt_n + completion_n > 0 AND coalesce(lower(cache_hit), '') NOT IN ('true', '1')
                  AND coalesce(lower(status), 'success') = 'success'
             THEN NULL ELSE spend_d END AS reported_cost,
        CAST(NULL AS {MONEY}) AS priced_cost,
        {sql_literal(key)} || '#' || strftime(start_ts, '%Y-%m-%dT%H') AS x_SourceKey
    FROM (
        SELECT *, CASE WHEN request_tags IS NOT NULL THEN CAST(json_extract_string(request_tags, '$[*]') AS VARCHAR[]) END
            AS tags
        FROM ({_typed_sql(raw)}) WHERE NOT _bad
    )
    """


def _price(batch: Any, table: str) -> None:
    """Price the staged requests with the shared pricing module; without it, cost = reported cost."""
    try:
        from connectors.pricing import price_staged
    except ImportError:  # TODO(issue 5): remove once connectors/pricing.py has landed
        batch.execute(
            f"UPDATE {table} SET cost = reported_cost,"
            " cost_source = CASE WHEN reported_cost IS NULL THEN 'unpriced' ELSE 'reported' END"
        )
        return
    price_staged(batch, table)


def _no_totals() -> pl.DataFrame:
    return pl.DataFrame(schema={"provider": pl.Utf8, "model": pl.Utf8, "cost_source": pl.Utf8, "requests": pl.Int64})


def _no_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema={"file": pl.Utf8, "row_number": pl.Int64, "column_name": pl.Utf8, "reason": pl.Utf8})


def password_from_env(var: str | None) -> str | None:
    """The password in environment variable ``var`` (None when no variable is named)."""
    if not var:
        return None
    value = os.environ.get(var)
    if value is None:
        raise SourceError(
            f"litellm: environment variable {var} is not set",
            hint=f"export {var}=… (the LiteLLM database password) before running, or drop --password-env",
        )
    return value
