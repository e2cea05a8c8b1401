"""OpenTelemetry GenAI spans (OTLP JSON file exports) into `llm_requests`, one row per model call.

Input: what the OpenTelemetry Collector's file exporter writes, one OTLP/JSON
``ExportTraceServiceRequest`` per line (``{"resourceSpans": [{resource, scopeSpans: [{scope,
spans: [...]}]}]}``; ``instrumentationLibrarySpans`` in place of ``scopeSpans`` from collectors
before OTLP 0.15), or a single such document spread over several lines. Lines of the same
exporter holding metrics or logs (``resourceMetrics`` / ``resourceLogs``) are skipped. Attribute
values may be ``stringValue``, ``intValue`` (text, as OTLP/JSON encodes 64-bit integers, or a
JSON number), ``doubleValue`` (a token count of 12.0 is 12) or ``boolValue``. IDs are hex in
any case (stored lower-case) or base64 (what some exporters write; decoded to the same hex);
an all-zero parent id means no parent.

Spans are written by several kinds of instrumentation, all read: the OTel GenAI semantic
conventions (``gen_ai.*``, OpenAI/Anthropic/… contrib instrumentations, PydanticAI/Logfire,
Google ADK), OpenLLMetry/Traceloop (``gen_ai.usage.prompt_tokens``, ``llm.request.type``,
``traceloop.span.kind``), OpenInference (Arize; CrewAI, LlamaIndex, OpenAI Agents SDK, Google
ADK, AutoGen, smolagents: ``openinference.span.kind``, ``llm.token_count.*``) and the Vercel AI
SDK (``ai.*`` spans, ``ai.usage.*``).

Which spans are model calls (rows)
----------------------------------
1. ``gen_ai.operation.name`` set: a call when it is one of :data:`MODEL_CALL_OPERATIONS`
   (chat, text_completion, embeddings, generate_content); any other operation (``invoke_agent``,
   ``create_agent``, ``execute_tool``, …) is never a call.
2. No operation name: a call when its instrumentation's kind says so — ``llm.request.type``
   chat/completion/embedding, ``openinference.span.kind`` LLM/EMBEDDING, a Vercel
   ``ai.*.doGenerate`` / ``doStream`` / ``doEmbed`` span — or, failing a kind, when it has a model
   and a token count and is not an agent (``openinference.span.kind`` other than LLM/EMBEDDING,
   ``traceloop.span.kind`` workflow/task/agent/tool) span (e.g. Google ADK's ``call_llm``).
3. Of nested call-like spans only the innermost counts: a span with a call-like span below it
   is a wrapper or an aggregate of the same calls (Vercel's ``ai.generateText`` over its
   ``doGenerate``, a framework's chat span over the client library's, usage totals on a step).
   Frameworks put usage *totals* on agent and workflow spans too (PydanticAI's "agent run",
   OTel ``invoke_agent``); those are never rows, so nothing is counted twice.

Attributes read (every other attribute is ignored; content attributes — ``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.prompt``, ``llm.input_messages``, ``ai.prompt``, … — and span
events are dropped inside the parsing query, before anything is materialised, so no prompt or
completion text reaches the warehouse). For each field the first present name of
:data:`PROVIDER_KEYS`, :data:`MODEL_KEYS`, :data:`INPUT_KEYS`, … wins, in the order listed:

* provider ← ``gen_ai.provider.name`` | ``gen_ai.system`` | ``llm.provider`` | ``llm.system`` |
  ``ai.model.provider``, lower-cased (OpenLLMetry writes "OpenAI"); a Vercel provider id (also in
  ``gen_ai.system`` on its ``ai.*`` spans) loses
  its API suffix ("openai.chat" → openai, "anthropic.messages" → anthropic, "amazon-bedrock" →
  bedrock) so that prices match (:func:`finops.warehouse.keys.provider_key_sql`).
* model ← ``gen_ai.response.model`` (the model that answered) | ``gen_ai.request.model`` |
  ``llm.model_name`` | ``embedding.model_name`` | ``ai.response.model`` | ``ai.model.id``.
* input ← ``gen_ai.usage.input_tokens`` | ``gen_ai.usage.prompt_tokens`` | ``llm.token_count.prompt``
  | ``ai.usage.inputTokens`` | ``ai.usage.promptTokens`` | ``ai.usage.tokens`` (embeddings).
  All of these *include* the cached tokens: the conventions say ``input_tokens`` "SHOULD include
  all types of input tokens, including cached tokens"; OpenLLMetry's ``prompt_tokens`` is
  OpenAI's prompt count, or for Anthropic input + cache read + cache creation; OpenInference's
  prompt count includes cache reads (and writes); the AI SDK's ``inputTokens`` includes
  ``cachedInputTokens``. So ``input_tokens`` (fresh, uncached) = input − cache read − cache
  creation. An input *smaller* than its cache parts was already uncached (Anthropic's own
  count, copied by some instrumentations): then it is taken as is, never a negative count.
* cache read ← ``gen_ai.usage.cache_read.input_tokens`` | ``gen_ai.usage.cache_read_input_tokens``
  | ``llm.token_count.prompt_details.cache_read`` | ``ai.usage.cachedInputTokens``; cache write ←
  ``gen_ai.usage.cache_creation.input_tokens`` | ``gen_ai.usage.cache_creation_input_tokens`` |
  ``llm.token_count.prompt_details.cache_write``.
* output ← ``gen_ai.usage.output_tokens`` | ``gen_ai.usage.completion_tokens`` |
  ``llm.token_count.completion`` | ``ai.usage.outputTokens`` | ``ai.usage.completionTokens``: all
  billed output, reasoning included. reasoning ← ``gen_ai.usage.reasoning.output_tokens`` |
  ``gen_ai.usage.reasoning_tokens`` | ``llm.token_count.completion_details.reasoning`` |
  ``ai.usage.reasoningTokens``: the reasoning part of output (see :mod:`connectors.pricing`).
* ``service_tier`` ← ``openai.response.service_tier``, else ``openai.request.service_tier``.
* ``user_id`` ← ``user.id``, else ``enduser.id``. ``call_type`` = the operation name, else what the
  instrumentation's kind stands for (chat, text_completion, embeddings), else NULL;
  ``status`` = ``failure`` when the span status code is ERROR, else ``success``.
* period_start/period_end = the span's start and end time (UTC, microseconds).
* The spans carry no cost: every row is priced by :func:`connectors.pricing.price_staged`
  (``cost_source`` 'priced', or 'unpriced' with cost NULL when the model has no price).

Task and agent, from the span tree (SQL, a recursive CTE over traceId/parentSpanId)
---------------------------------------------------------------------------------
* ``task_id`` = the ``traceId``, always: the trace is the unit of work a user pays for.
  (``gen_ai.conversation.id`` is not used: a conversation spans many tasks.)
* ``agent_id`` = the call span's own ``gen_ai.agent.id`` (else ``gen_ai.agent.name``), else that
  of the nearest ancestor agent span: ``gen_ai.operation.name`` invoke_agent / create_agent,
  ``openinference.span.kind`` AGENT, ``traceloop.span.kind`` agent, or a span without operation
  or kind that names an agent (PydanticAI's "agent run": ``gen_ai.agent.name`` / ``agent_name``).
  Its name: ``gen_ai.agent.id`` | ``gen_ai.agent.name`` | ``agent.name`` | ``agent_name`` |
  ``traceloop.entity.name`` | the span's ``name``. A model call outside any agent has none (NULL).
* A missing parent (not in the load) ends the walk there: the call still lands, with the agent
  found below the gap, else none; its task is still its trace. Spans of all files of one load
  form one tree whatever their order, so load a trace's files together. When a later load
  holds a model call without the ancestors that named its agent, the agent saved by the
  earlier load is kept.

Idempotency: ``request_id`` = ``traceId:spanId``, and each load replaces the rows of the
request ids it holds (partitions ``(x_Source, request_id)``), so loading a file twice or two
overlapping exports never duplicates a model call. A span that appears in several files of one
load is read once (the copy in the last file wins).

Rows read = distinct model-call spans. A model-call span without a traceId/spanId, with a token
count that is not a non-negative integer, or with an unreadable start time is quarantined with
its file, line, trace and span id and the reason naming the attribute (never attribute values).
A line that is not JSON or not an OTLP export is an error naming the file and line; nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from connectors.files import expand, sql_literal
from connectors.pricing import price_staged
from connectors.staging import (
    StagedRows,
    bad_token_sql,
    checksums,
    errors_quarantine_sql,
    no_progress,
    stage_documents_apart,
    stage_files_side_by_side,
    token_sql,
)
from finops.exceptions import SourceError
from finops.warehouse import LLM_REQUESTS_COLUMNS, LoadBatch, LoadResult, Warehouse

SOURCE_KIND = "otel"


@dataclasses.dataclass
class TraceIngestReport:
    """What a trace load did, for the CLI to print and tests to check."""

    result: LoadResult
    files: list[Path]
    totals: pl.DataFrame  # cost_source, requests, input/cached input/output tokens, cost
    quarantine_sample: pl.DataFrame  # the first quarantined rows: file, row_number, column_name, reason
    per_file: pl.DataFrame  # file, calls, tasks, agents, tokens, reported cost, cost, quarantined (see file_totals)


ProgressCallback = Callable[[str, int, int], None]

MODEL_CALL_OPERATIONS = ("chat", "text_completion", "embeddings", "generate_content")
"""``gen_ai.operation.name`` values of spans that are one call to a model (costed)."""

AGENT_OPERATION = "invoke_agent"
AGENT_OPERATIONS = (AGENT_OPERATION, "create_agent")
"""``gen_ai.operation.name`` values of agent spans (the agent of the model calls below them)."""

REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
"""OpenLLMetry's ``llm.request.type`` of a model-call span → the call type it stands for."""

OPENINFERENCE_CALL_KINDS = {"LLM": "chat", "EMBEDDING": "embeddings"}
"""OpenInference ``openinference.span.kind`` of a model-call span → call type; every other kind is context."""

TRACELOOP_CONTEXT_KINDS = ("workflow", "task", "agent", "tool")
"""OpenLLMetry's ``traceloop.span.kind`` values: never a model call (``agent`` names an agent)."""

VERCEL_CALL_SPAN = r"ai\.\w+\.do(Generate|Stream|Embed)"
"""Span names of the Vercel AI SDK's provider calls (``ai.generateText.doGenerate``, ``ai.embed.doEmbed``, …)."""

# Synonyms, first present wins: the OTel GenAI names, the deprecated ones, OpenLLMetry's,
# OpenInference's and the Vercel AI SDK's.
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider")
MODEL_KEYS = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.model_name",
    "embedding.model_name",
    "ai.response.model",
    "ai.model.id",
)
INPUT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
    "ai.usage.tokens",  # ai.embed / ai.embedMany
)
OUTPUT_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "ai.usage.outputTokens",
    "ai.usage.completionTokens",
)
CACHE_READ_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "ai.usage.cachedInputTokens",
)
CACHE_WRITE_KEYS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
    "ai.usage.reasoningTokens",
)
OWN_AGENT_KEYS = ("gen_ai.agent.id", "gen_ai.agent.name")
AGENT_NAME_KEYS = ("gen_ai.agent.id", "gen_ai.agent.name", "agent.name", "agent_name", "traceloop.entity.name")

ATTRIBUTES = (
    "gen_ai.operation.name",
    "openinference.span.kind",
    "traceloop.span.kind",
    "llm.request.type",
    *PROVIDER_KEYS,
    *MODEL_KEYS,
    *INPUT_KEYS,
    *OUTPUT_KEYS,
    *CACHE_READ_KEYS,
    *CACHE_WRITE_KEYS,
    *REASONING_KEYS,
    *AGENT_NAME_KEYS,
    "openai.request.service_tier",
    "openai.response.service_tier",
    "user.id",
    "enduser.id",
)
"""The only span attributes read; every other one (content included) is dropped while parsing."""

# The part of an OTLP/JSON trace export we parse, every leaf as text. Span events (where
# older instrumentations put prompts) are not in it, so they are never parsed.
_VALUE = {"stringValue": "VARCHAR", "intValue": "VARCHAR", "doubleValue": "VARCHAR", "boolValue": "VARCHAR"}
_ATTR = [{"key": "VARCHAR", "value": _VALUE}]
_SPANS = [
    {
        "traceId": "VARCHAR",
        "spanId": "VARCHAR",
        "parentSpanId": "VARCHAR",
        "name": "VARCHAR",
        "startTimeUnixNano": "VARCHAR",
        "endTimeUnixNano": "VARCHAR",
        "attributes": _ATTR,
        "status": {"code": "VARCHAR"},
    }
]
# ``instrumentationLibrarySpans``: what OTLP called ``scopeSpans`` before 0.15 (older collectors).
OTLP_FIELDS = {
    "resourceSpans": [{"scopeSpans": [{"spans": _SPANS}], "instrumentationLibrarySpans": [{"spans": _SPANS}]}]
}


def ingest(
    wh: Warehouse, patterns: Sequence[str | Path], *, progress: ProgressCallback | None = None
) -> TraceIngestReport:
    """Load the model-call spans of OTLP JSON trace exports matching ``patterns`` into ``llm_requests``."""
    paths = expand(patterns, suffixes=(".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz"))
    report = progress or no_progress
    with wh.load(SOURCE_KIND, ", ".join(str(p) for p in patterns), checksums(paths, report)) as batch:
        stage_files_side_by_side(
            batch, paths, _stage_spans_apart, report, path=lambda p: p, rows_table="otel_span_rows", rejects_table=None
        )
        batch.stage("otel_spans", _with_model_call_flag(_latest_copies_sql("otel_span_rows")))
        batch.execute("DROP TABLE otel_span_rows")
        batch.stage("otel_walk", ancestor_walk_sql("otel_spans", "trace_id", "span_id", "parent_span_id"))
        report("resolving agents and tasks", len(paths), len(paths))
        batch.stage("otel_typed", _typed_sql())
        result = finish_load(batch, "otel_typed", SOURCE_KIND)
        sample = batch.quarantine_sample()
    return TraceIngestReport(
        result, list(paths), request_totals(wh, result.batch_id), sample, file_totals(wh, result.batch_id, paths)
    )


# -- reading files --------------------------------------------------------------------------


def _stage_spans_apart(helper: LoadBatch, index: int, path: Path) -> StagedRows:
    """Stage one file's spans (:func:`_spans_sql`) into a table of its own; the documents read.

    A file's documents are read into a table, its spans taken out, and the documents dropped,
    one file per helper thread: the documents (the bulk of an export, and content) never pile
    up for the whole load. 40 files of 13 MB (538 MB of JSON) ran out of the default 2 GB when they did.
    """
    docs = stage_documents_apart(helper, index, path, table="otel_docs", accept=_check_otlp_line)
    spans = f"_otel_span_rows_{index}"
    helper.stage(spans, _spans_sql(docs.rows))
    helper.execute(f"DROP TABLE {docs.rows}")
    return StagedRows(helper.table_name(spans), None, docs.rows_read)


def _check_otlp_line(batch: LoadBatch, table: str, path: Path) -> None:
    # One json_type call for every path: DuckDB keeps each JSON call's parse of a vector of
    # documents until the vector is done.
    types = "json_type(doc, ['$', '$.resourceSpans', '$.resourceMetrics', '$.resourceLogs'])"
    bad = batch.execute(
        f'SELECT _line FROM (SELECT _line, {types} AS t FROM "{table}")'
        " WHERE t[1] IS DISTINCT FROM 'OBJECT' OR list_count(t[2:]) = 0 ORDER BY _line LIMIT 1"
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


def _first(keys: Sequence[str]) -> str:
    """SQL: {key, v} of the first of ``keys`` the span has a value for (``a`` is in :data:`ATTRIBUTES` order)."""
    names = ", ".join(sql_literal(k) for k in keys)
    return f"list_extract(list_filter(a, x -> x.key IN ({names}) AND x.v IS NOT NULL), 1)"


def _id(text: str) -> str:
    """SQL: a trace or span id as lower-case hex; NULL when empty or all zeros (OTLP's "no parent").

    Hex ids (16 or 32 digits, any case) are lower-cased; base64 ids of 8 or 16 bytes (what some
    exporters write) are decoded to the same hex, so both encodings of one id agree; anything
    else is kept as written (lower-casing it could merge different ids).
    """
    t = f"nullif(trim({text}), '')"
    return f"""nullif(CASE
        WHEN regexp_full_match({t}, '[0-9a-fA-F]{{16}}|[0-9a-fA-F]{{32}}') THEN lower({t})
        WHEN regexp_full_match({t}, '[A-Za-z0-9+/]{{11}}=|[A-Za-z0-9+/]{{22}}==') THEN lower(hex(from_base64({t})))
        ELSE {t} END, repeat('0', length({t})))"""


def _vercel_provider(text: str) -> str:
    """SQL: the provider of a Vercel AI SDK ``ai.model.provider`` ("openai.chat" → openai, "amazon-bedrock" → bedrock)."""
    p = f"split_part({text}, '.', 1)"
    return (
        f"CASE {p} WHEN 'amazon-bedrock' THEN 'bedrock' WHEN 'azure-openai' THEN 'azure'"
        f" WHEN 'google-vertex' THEN 'vertex_ai' ELSE {p} END"
    )


def _latest_copies_sql(spans: str) -> str:
    """The spans of ``spans`` with one row per trace and span id: a span exported twice (in two
    files, or twice in one) is the copy in the last file by name, and its last line there."""
    return (
        f"SELECT * FROM {spans} QUALIFY trace_id IS NULL OR span_id IS NULL"
        " OR row_number() OVER (PARTITION BY trace_id, span_id ORDER BY _file DESC, _line DESC) = 1"
    )


def _spans_sql(docs: str) -> str:
    """One row per span of the documents in ``docs``, with only :data:`ATTRIBUTES`, read as described above.

    Copies of a span (in other files too) are removed after, by :func:`_latest_copies_sql`.

    ``call_like``: the span says it is a model call (operation name, instrumentation kind) or
    looks like one (a model and token counts, not an agent/workflow/chain/tool span); whether it
    counts is decided over the tree by :func:`_with_model_call_flag`.
    """
    wanted = ", ".join(sql_literal(k) for k in ATTRIBUTES)
    operations = ", ".join(sql_literal(o) for o in MODEL_CALL_OPERATIONS)
    agent_ops = ", ".join(sql_literal(o) for o in AGENT_OPERATIONS)
    context_kinds = ", ".join(sql_literal(k) for k in TRACELOOP_CONTEXT_KINDS)

    def mapping(expr: str, pairs: dict[str, str]) -> str:
        return (
            f"CASE {expr} "
            + " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in pairs.items())
            + " END"
        )

    return f"""
        WITH d AS (SELECT _file, _line, json_transform(doc, {sql_literal(json.dumps(OTLP_FIELDS))}) AS d FROM {docs}),
        rs AS (SELECT _file, _line, unnest(d.resourceSpans) AS rs FROM d),
        ss AS (
            SELECT _file, _line, unnest(list_concat(coalesce(rs.scopeSpans, []), coalesce(rs.instrumentationLibrarySpans, [])))
                AS ss
            FROM rs
        ),
        sp AS (SELECT _file, _line, unnest(ss.spans) AS s FROM ss),
        flat AS (
            SELECT _file, _line,
                {_id("s.traceId")} AS trace_id, {_id("s.spanId")} AS span_id, {_id("s.parentSpanId")} AS parent_span_id,
                nullif(trim(s.name), '') AS name,
                s.startTimeUnixNano AS start_text, s.endTimeUnixNano AS end_text,
                s.status.code AS status_code,
                list_sort(list_transform(
                    list_filter(s.attributes, x -> x.key IN ({wanted})),
                    x -> {{'p': list_position([{wanted}], x.key), 'key': x.key,
                           'v': nullif(trim(coalesce(x.value.stringValue, x.value.intValue,
                                                     x.value.doubleValue, x.value.boolValue)), '')}}
                )) AS a
            FROM sp
        ),
        attrs AS (
            SELECT _file, _line, trace_id, span_id, parent_span_id, name, start_text, end_text, status_code,
                lower({_attr("gen_ai.operation.name")}) AS operation,
                upper({_attr("openinference.span.kind")}) AS oi_kind,
                lower({_attr("traceloop.span.kind")}) AS tl_kind,
                lower({_attr("llm.request.type")}) AS request_type,
                coalesce(regexp_full_match(name, {sql_literal(VERCEL_CALL_SPAN)}), false) AS vercel_call,
                {_first(PROVIDER_KEYS)} AS provider_attr,
                {_first(MODEL_KEYS)}.v AS model,
                {_first(INPUT_KEYS)} AS input_attr,
                {_first(OUTPUT_KEYS)} AS output_attr,
                {_first(CACHE_READ_KEYS)} AS cache_read_attr,
                {_first(CACHE_WRITE_KEYS)} AS cache_write_attr,
                {_first(REASONING_KEYS)} AS reasoning_attr,
                {_first(OWN_AGENT_KEYS)}.v AS agent,
                {_first(AGENT_NAME_KEYS)}.v AS agent_attr,
                {_attr("agent_name")} IS NOT NULL AS has_agent_name,
                coalesce({_attr("openai.response.service_tier")}, {_attr("openai.request.service_tier")}) AS service_tier,
                coalesce({_attr("user.id")}, {_attr("enduser.id")}) AS user_id
            FROM flat
        ),
        kinds AS (
            SELECT *,
                coalesce(operation IN ({agent_ops}) OR oi_kind = 'AGENT' OR tl_kind = 'agent', false) AS explicit_agent,
                CASE WHEN operation IS NOT NULL THEN CASE WHEN operation IN ({operations}) THEN operation END
                     ELSE coalesce({mapping("request_type", REQUEST_TYPES)}, {mapping("oi_kind", OPENINFERENCE_CALL_KINDS)},
                                   CASE WHEN vercel_call THEN CASE WHEN name LIKE '%.doEmbed' THEN 'embeddings'
                                                                   ELSE 'chat' END END)
                END AS call_type
            FROM attrs
        ),
        roles AS (
            SELECT *,
                explicit_agent OR (operation IS NULL AND call_type IS NULL AND oi_kind IS NULL AND tl_kind IS NULL
                                   AND (agent IS NOT NULL OR has_agent_name)) AS agent_span_kind,
                call_type IS NOT NULL OR coalesce(
                    operation IS NULL AND NOT explicit_agent AND coalesce(oi_kind = 'UNKNOWN', true)
                    AND coalesce(tl_kind NOT IN ({context_kinds}), true)
                    AND model IS NOT NULL AND (input_attr.v IS NOT NULL OR output_attr.v IS NOT NULL), false
                ) AS call_like
            FROM kinds
        )
        SELECT _file, _line, trace_id, span_id, parent_span_id, name, start_text, end_text, status_code,
            operation, call_type,
            CASE WHEN provider_attr.key = 'ai.model.provider' OR name LIKE 'ai.%'  -- Vercel writes its ids to gen_ai.system
                 THEN {_vercel_provider("lower(provider_attr.v)")}
                 ELSE lower(provider_attr.v) END AS provider,
            model,
            input_attr.key AS input_key, input_attr.v AS input_text,
            output_attr.key AS output_key, output_attr.v AS output_text,
            cache_read_attr.key AS cache_read_key, cache_read_attr.v AS cache_read_text,
            cache_write_attr.key AS cache_write_key, cache_write_attr.v AS cache_write_text,
            reasoning_attr.key AS reasoning_key, reasoning_attr.v AS reasoning_text,
            agent, agent_span_kind AS is_agent_span,
            CASE WHEN agent_span_kind THEN coalesce(agent_attr, name) END AS agent_span_name,
            service_tier, user_id, call_like
        FROM roles
    """


def _with_model_call_flag(spans_sql: str) -> str:
    """``spans_sql`` plus ``is_model_call``: call-like spans with no call-like span below them.

    A span above another call-like span is a wrapper or an aggregate of the same calls (the
    Vercel AI SDK's ``ai.generateText`` over its ``doGenerate``, a framework's chat span over
    the client library's, usage totals on a step): counting it too would double count. The walk
    goes up from every call-like span; UNION keeps each (trace, ancestor) once, so shared
    ancestors are walked once and a cycle in a malformed export ends.
    """
    return f"""
        WITH RECURSIVE s AS MATERIALIZED (SELECT * FROM ({spans_sql})),
        up(trace_id, parent) AS (
            SELECT trace_id, parent_span_id FROM s
            WHERE call_like AND trace_id IS NOT NULL AND span_id IS NOT NULL AND parent_span_id IS NOT NULL
            UNION
            SELECT u.trace_id, p.parent_span_id FROM up AS u
            JOIN s AS p ON p.trace_id = u.trace_id AND p.span_id = u.parent
            WHERE p.parent_span_id IS NOT NULL
        )
        SELECT s.*, s.call_like AND c.span_id IS NULL AS is_model_call
        FROM s LEFT JOIN (SELECT DISTINCT trace_id, parent AS span_id FROM up) AS c
            ON c.trace_id = s.trace_id AND c.span_id = s.span_id
    """


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


def _typed_sql() -> str:
    """Model-call spans with their task, agent and llm_requests columns, and their errors."""
    token_errors = [
        f"CASE WHEN {bad_token_sql(t + '_text')} THEN {t}_key || ': not a non-negative integer' END"
        for t in ("input", "output", "cache_read", "cache_write", "reasoning")
    ]
    start = "make_timestamp(try_cast(try_cast(start_text AS HUGEINT) // 1000 AS BIGINT))"
    end = "make_timestamp(try_cast(try_cast(end_text AS HUGEINT) // 1000 AS BIGINT))"
    return f"""
        WITH spans AS (SELECT * FROM otel_spans),
        context AS (
            SELECT w.trace_key, w.span_key,
                arg_min(CASE WHEN w.depth = 0 THEN s.agent ELSE s.agent_span_name END, w.depth)
                    FILTER (WHERE CASE WHEN w.depth = 0 THEN s.agent ELSE s.agent_span_name END IS NOT NULL) AS agent
            FROM otel_walk AS w JOIN spans AS s ON s.trace_id = w.trace_key AND s.span_id = w.ancestor
            GROUP BY ALL
        ),
        calls AS (
            SELECT m.*, c.agent AS tree_agent,
                {token_sql("input_text")} AS input_all, {token_sql("output_text")} AS output_n,
                coalesce({token_sql("cache_read_text")}, 0) AS cache_read_n,
                coalesce({token_sql("cache_write_text")}, 0) AS cache_write_n,
                {token_sql("reasoning_text")} AS reasoning_n,
                {start} AS started, {end} AS ended,
                list_filter([
                    CASE WHEN trace_id IS NULL THEN 'traceId: missing' END,
                    CASE WHEN span_id IS NULL THEN 'spanId: missing' END,
                    CASE WHEN {start} IS NULL THEN 'startTimeUnixNano: not a time in nanoseconds' END,
                    {", ".join(token_errors)}
                ]::VARCHAR[], e -> e IS NOT NULL) AS _errors
            FROM spans AS m
            LEFT JOIN context AS c ON c.trace_key = m.trace_id AND c.span_key = m.span_id
            WHERE m.is_model_call
        )
        SELECT _file, _line, _errors, trace_id,
            started AS period_start, coalesce(ended, started) AS period_end,
            '{SOURCE_KIND}' AS source, provider, model, user_id,
            coalesce(tree_agent, old.agent_id) AS agent_id,
            trace_id AS task_id,
            trace_id || ':' || span_id AS request_id,
            1::BIGINT AS requests,
            CASE WHEN input_all >= cache_read_n + cache_write_n THEN input_all - cache_read_n - cache_write_n
                 ELSE input_all END AS input_tokens,
            cache_read_n AS cached_input_tokens, cache_write_n AS cache_write_tokens,
            output_n AS output_tokens, reasoning_n AS reasoning_tokens,
            call_type,
            CASE WHEN upper(coalesce(status_code, '')) IN ('2', 'STATUS_CODE_ERROR') THEN 'failure' ELSE 'success' END
                AS status,
            lower(service_tier) AS service_tier,
            span_id, parent_span_id,
            CAST(NULL AS DECIMAL(38, 10)) AS reported_cost,
            _file AS x_SourceKey
        FROM calls
        LEFT JOIN (
            SELECT request_id AS old_request_id, agent_id FROM llm_requests WHERE x_Source = '{SOURCE_KIND}'
        ) AS old ON old.old_request_id = calls.trace_id || ':' || calls.span_id
    """


# -- shared with the Langfuse connector ----------------------------------------------------


def finish_load(
    batch: LoadBatch, typed: str, source_kind: str, *, also_delete_where: str | None = None
) -> LoadResult:
    """Price the good rows of ``typed`` and replace their request ids in ``llm_requests``.

    ``typed`` has llm_requests columns plus ``_file``, ``_line`` and ``_errors`` (a list of
    reasons, empty when the row is good), ``trace_id`` and ``span_id`` for quarantine. The
    priced rows are in the temp table ``_to_price``, which ``also_delete_where`` (more
    ``llm_requests`` rows to delete in the same transaction) may name.
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
        also_delete_where=also_delete_where,
        quarantine_sql=errors_quarantine_sql(
            typed, row="_line", raw="to_json({'trace_id': trace_id, 'span_id': span_id})"
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



def file_totals(wh: Warehouse, batch_id: int, paths: Sequence[Path]) -> pl.DataFrame:
    """What one batch loaded from each file: model calls, tasks, agents, tokens and cost, and rows quarantined.

    Every file of the load has a row, a file without model calls too (all zeros), so a user sees
    at once which export held nothing. ``cost`` is what the warehouse counts (reported, else
    priced); ``unpriced_calls`` have no cost at all.
    """
    files = pl.DataFrame({"file": [str(p) for p in paths]}, schema={"file": pl.String})
    with wh.reader() as con:
        con.register("_load_files", files.to_arrow())
        return con.execute(
            """
            WITH calls AS (
                SELECT x_SourceKey AS file, count(*) AS calls, count(DISTINCT task_id) AS tasks,
                    count(DISTINCT agent_id) AS agents,
                    sum(coalesce(input_tokens, 0) + coalesce(cached_input_tokens, 0) + coalesce(cache_write_tokens, 0))
                        AS input_tokens,
                    sum(coalesce(output_tokens, 0)) AS output_tokens, sum(reported_cost) AS reported_cost,
                    sum(cost) AS cost, count(*) FILTER (WHERE cost IS NULL) AS unpriced_calls
                FROM llm_requests WHERE x_BatchId = ? GROUP BY ALL
            ),
            quarantined AS (SELECT file, count(*) AS quarantined FROM quarantine WHERE batch_id = ? GROUP BY ALL)
            SELECT f.file, coalesce(c.calls, 0) AS calls, coalesce(c.tasks, 0) AS tasks, coalesce(c.agents, 0) AS agents,
                coalesce(c.input_tokens, 0)::BIGINT AS input_tokens, coalesce(c.output_tokens, 0)::BIGINT AS output_tokens,
                c.reported_cost, coalesce(c.cost, 0)::DECIMAL(38, 10) AS cost,
                coalesce(c.unpriced_calls, 0) AS unpriced_calls, coalesce(q.quarantined, 0) AS quarantined
            FROM _load_files AS f LEFT JOIN calls AS c USING (file) LEFT JOIN quarantined AS q USING (file)
            ORDER BY f.file
            """,
            [batch_id, batch_id],
        ).pl()
