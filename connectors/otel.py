"""OpenTelemetry GenAI spans (OTLP JSON file exports) into `llm_requests`, one row per model call.

Input: what the OpenTelemetry Collector's file exporter writes, one OTLP/JSON
``ExportTraceServiceRequest`` per line (``{"resourceSpans": [{resource, scopeSpans: [{scope,
spans: [...]}]}]}``), or a single such document spread over several lines. Lines of the same
exporter holding metrics or logs (``resourceMetrics`` / ``resourceLogs``) are skipped. IDs are
hex strings, ``intValue`` and ``*TimeUnixNano`` are strings (OTLP/JSON encodes 64-bit integers
as text; numbers are accepted too).

What becomes a row
------------------
Only *model-call* spans: ``gen_ai.operation.name`` in :data:`MODEL_CALL_OPERATIONS` (chat,
text_completion, embeddings, generate_content). Agent (``invoke_agent``, ``create_agent``),
tool (``execute_tool``) and any other span are context only and never costed: frameworks put
usage *totals* on agent spans, and summing those beside their model calls double counts.

Attributes read (GenAI semantic conventions; every other attribute is ignored, and content
attributes — ``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions``,
``gen_ai.prompt``, ``gen_ai.completion`` — and span events are dropped inside the parsing query,
before anything is materialised, so no prompt or completion text reaches the warehouse):

* provider ← ``gen_ai.provider.name``, else the older ``gen_ai.system``.
* model ← ``gen_ai.response.model`` (the model that answered), else ``gen_ai.request.model``.
* Tokens. The conventions say ``gen_ai.usage.input_tokens`` "SHOULD include all types of input
  tokens, including cached tokens", and that ``gen_ai.usage.cache_read.input_tokens`` and
  ``gen_ai.usage.cache_creation.input_tokens`` "SHOULD be included in" it. So
  ``input_tokens`` (fresh, uncached) = input − cache read − cache creation. Instrumentations
  that copy Anthropic's uncached count instead report an input *smaller* than its cache parts;
  then the input is taken as already uncached (never a negative count). The deprecated
  ``gen_ai.usage.prompt_tokens`` / ``completion_tokens`` are read when the new names are absent.
  ``output_tokens`` = ``gen_ai.usage.output_tokens`` (which includes reasoning tokens);
  ``reasoning_tokens`` = ``gen_ai.usage.reasoning.output_tokens``, informational.
* ``service_tier`` ← ``openai.response.service_tier``, else ``openai.request.service_tier``.
* ``user_id`` ← ``user.id``, else ``enduser.id``. ``call_type`` = the operation name;
  ``status`` = ``failure`` when the span status code is ERROR, else ``success``.
* period_start/period_end = the span's start and end time (UTC, microseconds).
* The spans carry no cost: every row is priced by :func:`connectors.pricing.price_staged`
  (``cost_source`` 'priced', or 'unpriced' with cost NULL when the model has no price).

Task and agent, from the span tree (SQL, a recursive CTE over traceId/parentSpanId)
---------------------------------------------------------------------------------
* ``task_id`` = the nearest ``gen_ai.conversation.id`` on the span or an ancestor, else the
  ``traceId``. A conversation can outlive one trace (a chat session's turns are separate
  traces), and then it is the unit a user pays for; without one, the trace is the task.
* ``agent_id`` = the span's own ``gen_ai.agent.id`` (or ``gen_ai.agent.name``) if it has one,
  else that of the nearest ancestor ``invoke_agent`` span. A model call outside any agent has
  no agent (NULL).
* Spans of all files of one load form one tree, so load a trace's files together. When a later
  load holds a model call without the ancestors that named its agent or conversation, the
  agent and task saved by the earlier load are kept.

Idempotency: ``request_id`` = ``traceId:spanId``, and each load replaces the rows of the
request ids it holds (partitions ``(x_Source, request_id)``), so loading a file twice or two
overlapping exports never duplicates a model call. A span that appears in several files of one
load is read once (the copy in the last file wins).

Rows read = distinct model-call spans. A model-call span without a traceId/spanId, with a token
count that is not a non-negative integer, or with an unreadable start time is quarantined with
its file, line, trace and span id and the reason (never attribute values). A line that is not
JSON or not an OTLP export is an error naming the file and line; nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from connectors.files import expand, sql_literal, verify_gzip
from connectors.pricing import price_staged
from finops.exceptions import SourceError
from finops.warehouse import LLM_REQUESTS_COLUMNS, LoadBatch, LoadResult, SourceFile, Warehouse

SOURCE_KIND = "otel"


@dataclasses.dataclass
class TraceIngestReport:
    """What a trace load did, for the CLI to print and tests to check."""

    result: LoadResult
    files: list[Path]
    totals: pl.DataFrame  # cost_source, requests, input/cached input/output tokens, cost
    quarantine_sample: pl.DataFrame  # the first quarantined rows: file, row_number, column_name, reason


ProgressCallback = Callable[[str, int, int], None]

MODEL_CALL_OPERATIONS = ("chat", "text_completion", "embeddings", "generate_content")
"""``gen_ai.operation.name`` values of spans that are one call to a model (costed)."""

AGENT_OPERATION = "invoke_agent"

ATTRIBUTES = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.agent.id",
    "gen_ai.agent.name",
    "gen_ai.conversation.id",
    "openai.request.service_tier",
    "openai.response.service_tier",
    "user.id",
    "enduser.id",
)
"""The only span attributes read; every other one (content included) is dropped while parsing."""

# The part of an OTLP/JSON trace export we parse, every leaf as text. Span events (where
# older instrumentations put prompts) are not in it, so they are never parsed.
_ATTR = [{"key": "VARCHAR", "value": {"stringValue": "VARCHAR", "intValue": "VARCHAR", "doubleValue": "VARCHAR", "boolValue": "VARCHAR"}}]
OTLP_FIELDS = {
    "resourceSpans": [
        {
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "VARCHAR",
                            "spanId": "VARCHAR",
                            "parentSpanId": "VARCHAR",
                            "startTimeUnixNano": "VARCHAR",
                            "endTimeUnixNano": "VARCHAR",
                            "attributes": _ATTR,
                            "status": {"code": "VARCHAR"},
                        }
                    ]
                }
            ]
        }
    ]
}


def ingest(
    wh: Warehouse, patterns: Sequence[str | Path], *, progress: ProgressCallback | None = None
) -> TraceIngestReport:
    """Load the model-call spans of OTLP JSON trace exports matching ``patterns`` into ``llm_requests``."""
    paths = expand(patterns, suffixes=(".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz"))
    report = progress or (lambda *_: None)
    sources = []
    for i, path in enumerate(paths):
        report("checksums", i, len(paths))
        sources.append(SourceFile.of(path))
    with wh.load(SOURCE_KIND, ", ".join(str(p) for p in patterns), sources) as batch:
        for i, path in enumerate(paths):
            report(f"reading {path.name}", i, len(paths))
            stage_documents(batch, "otel_docs", path, first=i == 0, accept=_check_otlp_line)
        batch.stage("otel_spans", _with_model_call_flag(_spans_sql("otel_docs")))
        batch.stage("otel_walk", ancestor_walk_sql("otel_spans", "trace_id", "span_id", "parent_span_id"))
        report("resolving agents and tasks", len(paths), len(paths))
        batch.stage("otel_typed", _typed_sql())
        result = finish_load(batch, "otel_typed", SOURCE_KIND)
        sample = batch.quarantine_sample()
    return TraceIngestReport(result, list(paths), request_totals(wh, result.batch_id), sample)


# -- reading files --------------------------------------------------------------------------


def _lines_sql(path: Path) -> str:
    """The file's lines as one text column ``line`` (U+0001 delimiter, no quoting: lines arrive whole)."""
    comp = ", compression = 'gzip'" if path.name.lower().endswith(".gz") else ""
    return (
        f"read_csv({sql_literal(str(path))}, columns = {{'line': 'VARCHAR'}}, header = false, auto_detect = false,"
        f" delim = '{chr(1)}', quote = '', escape = '', max_line_size = 1073741824{comp})"
    )


def stage_documents(
    batch: LoadBatch, table: str, path: Path, *, first: bool, accept: Callable[[LoadBatch, str, Path], None]
) -> int:
    """Stage the JSON documents of one file as (_file, _line, doc JSON) in ``table``.

    JSON lines, one document per line, or the whole file as one JSON document (then _line 1).
    A line that is not JSON (in a file that is not one document either) is a SourceError
    naming the file and line. ``accept`` checks the staged documents' shape and raises.
    """
    name = str(path)
    if path.name.lower().endswith(".gz"):
        verify_gzip(path)  # DuckDB would read a truncated .gz up to the cut and call it done
    try:
        # Staged first: a table keeps the file's line order, so rowid gives the line number.
        batch.stage("_doc_raw", f"SELECT line FROM {_lines_sql(path)}")
        batch.stage("_doc_lines", "SELECT rowid + 1 AS _line, line FROM _doc_raw")
        batch.execute("DROP TABLE _doc_raw")
    except Exception as exc:
        raise SourceError(f"{path}: cannot be read: {str(exc).splitlines()[0]}") from exc
    bad = batch.execute(
        "SELECT min(_line) FROM _doc_lines WHERE nullif(trim(line), '') IS NOT NULL AND NOT json_valid(line)"
    ).fetchone()[0]
    if bad is None:
        select = (
            f"SELECT {sql_literal(name)} AS _file, _line, line::JSON AS doc FROM _doc_lines"
            " WHERE nullif(trim(line), '') IS NOT NULL"
        )
    else:
        whole = batch.execute(
            "SELECT json_valid(string_agg(line, chr(10) ORDER BY _line)) FROM _doc_lines"
        ).fetchone()[0]
        if not whole:
            raise SourceError(
                f"{path}: line {bad} is not valid JSON (nor is the file one JSON document)",
                hint="each line must be one complete JSON export; re-export the file, or remove the broken line",
            )
        select = (
            f"SELECT {sql_literal(name)} AS _file, 1::BIGINT AS _line,"
            " string_agg(line, chr(10) ORDER BY _line)::JSON AS doc FROM _doc_lines"
        )
    staged = batch.stage(f"_{table}_file", select)
    accept(batch, f"_{table}_file", path)
    batch.stage(table, f'SELECT * FROM "_{table}_file"', append=not first)
    batch.execute(f'DROP TABLE "_{table}_file"')
    batch.execute("DROP TABLE _doc_lines")
    return staged


def _check_otlp_line(batch: LoadBatch, table: str, path: Path) -> None:
    bad = batch.execute(
        f'SELECT _line FROM "{table}" WHERE json_type(doc) <> \'OBJECT\' OR NOT (json_exists(doc, \'$.resourceSpans\')'
        " OR json_exists(doc, '$.resourceMetrics') OR json_exists(doc, '$.resourceLogs')) ORDER BY _line LIMIT 1"
    ).fetchone()
    if bad:
        raise SourceError(
            f"{path}: line {bad[0]} is not an OTLP JSON export (no resourceSpans)",
            hint="export traces with the OpenTelemetry Collector's file exporter (OTLP JSON)",
        )


# -- spans -------------------------------------------------------------------------------


def _attr(name: str) -> str:
    """SQL: the text value of attribute ``name`` in the span's filtered attribute list ``a``."""
    return f"list_extract(list_filter(a, x -> x.key = {sql_literal(name)}), 1).v"


def _spans_sql(docs: str) -> str:
    """One row per span (deduplicated by trace and span id), with only :data:`ATTRIBUTES`."""
    wanted = ", ".join(sql_literal(k) for k in ATTRIBUTES)
    return f"""
        WITH d AS (SELECT _file, _line, json_transform(doc, {sql_literal(json.dumps(OTLP_FIELDS))}) AS d FROM {docs}),
        rs AS (SELECT _file, _line, unnest(d.resourceSpans) AS rs FROM d),
        ss AS (SELECT _file, _line, unnest(rs.scopeSpans) AS ss FROM rs),
        sp AS (SELECT _file, _line, unnest(ss.spans) AS s FROM ss),
        flat AS (
            SELECT _file, _line,
                lower(nullif(trim(s.traceId), '')) AS trace_id,
                lower(nullif(trim(s.spanId), '')) AS span_id,
                lower(nullif(trim(s.parentSpanId), '')) AS parent_span_id,
                s.startTimeUnixNano AS start_text, s.endTimeUnixNano AS end_text,
                s.status.code AS status_code,
                list_transform(
                    list_filter(s.attributes, x -> x.key IN ({wanted})),
                    x -> {{'key': x.key, 'v': nullif(trim(coalesce(x.value.stringValue, x.value.intValue,
                                                                  x.value.doubleValue, x.value.boolValue)), '')}}
                ) AS a
            FROM sp
        )
        SELECT _file, _line, trace_id, span_id, parent_span_id, start_text, end_text, status_code,
            {_attr('gen_ai.operation.name')} AS operation,
            coalesce({_attr('gen_ai.provider.name')}, {_attr('gen_ai.system')}) AS provider,
            coalesce({_attr('gen_ai.response.model')}, {_attr('gen_ai.request.model')}) AS model,
            coalesce({_attr('gen_ai.usage.input_tokens')}, {_attr('gen_ai.usage.prompt_tokens')}) AS input_text,
            coalesce({_attr('gen_ai.usage.output_tokens')}, {_attr('gen_ai.usage.completion_tokens')}) AS output_text,
            {_attr('gen_ai.usage.cache_read.input_tokens')} AS cache_read_text,
            {_attr('gen_ai.usage.cache_creation.input_tokens')} AS cache_write_text,
            {_attr('gen_ai.usage.reasoning.output_tokens')} AS reasoning_text,
            coalesce({_attr('gen_ai.agent.id')}, {_attr('gen_ai.agent.name')}) AS agent,
            {_attr('gen_ai.conversation.id')} AS conversation_id,
            coalesce({_attr('openai.response.service_tier')}, {_attr('openai.request.service_tier')}) AS service_tier,
            coalesce({_attr('user.id')}, {_attr('enduser.id')}) AS user_id
        FROM flat
        QUALIFY trace_id IS NULL OR span_id IS NULL
             OR row_number() OVER (PARTITION BY trace_id, span_id ORDER BY _file DESC, _line DESC) = 1
    """


def _with_model_call_flag(spans_sql: str) -> str:
    operations = ", ".join(sql_literal(o) for o in MODEL_CALL_OPERATIONS)
    return f"SELECT *, coalesce(operation IN ({operations}), false) AS is_model_call FROM ({spans_sql})"


def ancestor_walk_sql(spans: str, trace: str, span: str, parent: str, *, max_depth: int = 256) -> str:
    """(trace, span, ancestor, depth): every model call's chain up to the root, depth 0 = itself.

    A recursive CTE over (trace, parent) joins, bounded by ``max_depth`` so a cycle in a
    malformed export ends.
    """
    return f"""
        WITH RECURSIVE walk(trace_key, span_key, ancestor, parent, depth) AS (
            SELECT {trace}, {span}, {span}, {parent}, 0 FROM {spans}
            WHERE is_model_call AND {trace} IS NOT NULL AND {span} IS NOT NULL
            UNION ALL
            SELECT w.trace_key, w.span_key, p.{span}, p.{parent}, w.depth + 1
            FROM walk AS w JOIN {spans} AS p ON p.{trace} = w.trace_key AND p.{span} = w.parent
            WHERE w.depth < {max_depth}
        )
        SELECT trace_key, span_key, ancestor, depth FROM walk
    """


def _token(text: str) -> str:
    return f"try_cast(try_cast({text} AS DOUBLE) AS BIGINT)"


def _typed_sql() -> str:
    """Model-call spans with their task, agent and llm_requests columns, and their errors."""
    token_errors = [
        f"CASE WHEN {t} IS NOT NULL AND ({_token(t)} IS NULL OR {_token(t)} < 0"
        f" OR try_cast({t} AS DOUBLE) <> {_token(t)}) THEN '{label}: not a non-negative integer' END"
        for t, label in (
            ("input_text", "gen_ai.usage.input_tokens"),
            ("output_text", "gen_ai.usage.output_tokens"),
            ("cache_read_text", "gen_ai.usage.cache_read.input_tokens"),
            ("cache_write_text", "gen_ai.usage.cache_creation.input_tokens"),
            ("reasoning_text", "gen_ai.usage.reasoning.output_tokens"),
        )
    ]
    start = "make_timestamp(try_cast(try_cast(start_text AS HUGEINT) // 1000 AS BIGINT))"
    end = "make_timestamp(try_cast(try_cast(end_text AS HUGEINT) // 1000 AS BIGINT))"
    return f"""
        WITH spans AS (SELECT * FROM otel_spans),
        context AS (
            SELECT w.trace_key, w.span_key,
                arg_min(s.agent, w.depth) FILTER (WHERE s.agent IS NOT NULL
                    AND (w.depth = 0 OR s.operation = '{AGENT_OPERATION}')) AS agent,
                arg_min(s.conversation_id, w.depth) FILTER (WHERE s.conversation_id IS NOT NULL) AS conversation_id
            FROM otel_walk AS w JOIN spans AS s ON s.trace_id = w.trace_key AND s.span_id = w.ancestor
            GROUP BY ALL
        ),
        calls AS (
            SELECT m.*, c.agent AS tree_agent, c.conversation_id AS tree_conversation,
                {_token('input_text')} AS input_all, {_token('output_text')} AS output_n,
                coalesce({_token('cache_read_text')}, 0) AS cache_read_n,
                coalesce({_token('cache_write_text')}, 0) AS cache_write_n,
                {_token('reasoning_text')} AS reasoning_n,
                {start} AS started, {end} AS ended,
                list_filter([
                    CASE WHEN trace_id IS NULL THEN 'traceId: missing' END,
                    CASE WHEN span_id IS NULL THEN 'spanId: missing' END,
                    CASE WHEN {start} IS NULL THEN 'startTimeUnixNano: not a time in nanoseconds' END,
                    {', '.join(token_errors)}
                ]::VARCHAR[], e -> e IS NOT NULL) AS _errors
            FROM spans AS m
            LEFT JOIN context AS c ON c.trace_key = m.trace_id AND c.span_key = m.span_id
            WHERE m.is_model_call
        )
        SELECT _file, _line, _errors, trace_id,
            started AS period_start, coalesce(ended, started) AS period_end,
            '{SOURCE_KIND}' AS source, provider, model, user_id,
            coalesce(tree_agent, old.agent_id) AS agent_id,
            coalesce(tree_conversation, old.task_id, trace_id) AS task_id,
            trace_id || ':' || span_id AS request_id,
            1::BIGINT AS requests,
            CASE WHEN input_all >= cache_read_n + cache_write_n THEN input_all - cache_read_n - cache_write_n
                 ELSE input_all END AS input_tokens,
            cache_read_n AS cached_input_tokens, cache_write_n AS cache_write_tokens,
            output_n AS output_tokens, reasoning_n AS reasoning_tokens,
            operation AS call_type,
            CASE WHEN upper(coalesce(status_code, '')) IN ('2', 'STATUS_CODE_ERROR') THEN 'failure' ELSE 'success' END AS status,
            lower(service_tier) AS service_tier,
            span_id, parent_span_id,
            CAST(NULL AS DECIMAL(38, 10)) AS reported_cost,
            _file AS x_SourceKey
        FROM calls
        LEFT JOIN (
            SELECT request_id AS old_request_id, agent_id, task_id FROM llm_requests WHERE x_Source = '{SOURCE_KIND}'
        ) AS old ON old.old_request_id = calls.trace_id || ':' || calls.span_id
    """


# -- shared with the Langfuse connector ----------------------------------------------------


def finish_load(batch: LoadBatch, typed: str, source_kind: str) -> LoadResult:
    """Price the good rows of ``typed`` and replace their request ids in ``llm_requests``.

    ``typed`` has llm_requests columns plus ``_file``, ``_line`` and ``_errors`` (a list of
    reasons, empty when the row is good), ``trace_id`` and ``span_id`` for quarantine.
    """
    rows_read = batch.execute(f'SELECT count(*) FROM "{typed}"').fetchone()[0]
    if rows_read == 0:
        return LoadResult(batch.batch_id, 0, 0, 0, 0, [])
    columns = [c for c in LLM_REQUESTS_COLUMNS if c not in ("cost", "cost_source", "priced_cost", "x_Source", "x_BatchId")]
    present = {row[0] for row in batch.execute(f'DESCRIBE "{typed}"').fetchall()}
    select = ", ".join(
        f'"{c}"' if c in present else f'CAST(NULL AS {LLM_REQUESTS_COLUMNS[c]}) AS "{c}"' for c in columns
    )
    batch.stage("_to_price", f'SELECT {select} FROM "{typed}" WHERE len(_errors) = 0')
    price_staged(batch, "_to_price")
    return batch.replace_partitions(
        "llm_requests",
        f"SELECT * EXCLUDE (cost_currency), coalesce(cost_currency, 'USD') AS cost_currency,"
        f" '{source_kind}' AS x_Source, {batch.batch_id}::BIGINT AS x_BatchId FROM _to_price",
        partition_by=("x_Source", "request_id"),
        rows_read=rows_read,
        quarantine_sql=(
            f"SELECT _file AS file, _line AS row_number, regexp_extract(_errors[1], '^([\\w.]+):', 1) AS column_name,"
            " array_to_string(_errors, '; ') AS reason,"
            " to_json({'trace_id': trace_id, 'span_id': span_id}) AS raw_row"
            f' FROM "{typed}" WHERE len(_errors) > 0'
        ),
    )


def request_totals(wh: Warehouse, batch_id: int) -> pl.DataFrame:
    """What one batch loaded into ``llm_requests``, by cost source: rows, tokens and cost."""
    return wh.query(
        "SELECT cost_source, count(*) AS requests, sum(input_tokens) AS input_tokens,"
        " sum(cached_input_tokens) AS cached_input_tokens, sum(output_tokens) AS output_tokens, sum(cost) AS cost"
        " FROM llm_requests WHERE x_BatchId = ? GROUP BY ALL ORDER BY cost_source",
        [batch_id],
    )

