"""Langfuse trace exports into `llm_requests`, one row per model call (GENERATION observation).

Input: JSON files of traces with their observations, in any of the shapes Langfuse hands them
out: ``{"trace": {...}, "observations": [...]}`` (the UI's trace export), a trace object with
``observations`` inside it (``GET /api/public/traces/{id}``), a list of either, ``{"data":
[...]}`` (a page of the public API), or one of these per line (JSON lines).

What becomes a row
------------------
Observations of type ``GENERATION`` or ``EMBEDDING`` (Langfuse tracks usage and cost on those
two). ``SPAN``, ``EVENT``, ``AGENT``, ``TOOL`` and other types are context only and never
costed. Only these fields are read (json_transform with a fixed shape; ``input``, ``output``,
``metadata`` of observations, ``statusMessage`` and every other field are never parsed, so
no prompt or completion text reaches the warehouse): observation ``id``, ``traceId``,
``parentObservationId``, ``type``, ``name``, ``startTime``, ``endTime``, ``model``, ``level``,
``usageDetails``, ``usage`` (older exports), ``promptTokens``/``completionTokens`` (oldest),
``costDetails``, ``totalCost``, ``calculatedTotalCost``; trace ``id``, ``name``, ``sessionId``,
``userId``, ``tags`` and the ``metadata`` keys ``agent_id``, ``agent``, ``agent_name`` only.

Tokens. Langfuse usage types are disjoint buckets (it sums them when no ``total`` is given):
its OpenAI integration subtracts ``prompt_tokens_details`` from ``input`` and
``completion_tokens_details`` from ``output``. So:

* ``input_tokens`` = ``input`` (already uncached), ``cached_input_tokens`` =
  ``input_cached_tokens`` | ``cache_read_input_tokens`` | ``input_cache_read``,
  ``cache_write_tokens`` = ``cache_creation_input_tokens`` | ``input_cache_creation`` |
  ``input_cache_write`` (first present).
* ``reasoning_tokens`` = ``output_reasoning_tokens`` | ``output_reasoning`` | ``reasoning_tokens``,
  and ``output_tokens`` = ``output`` + reasoning: `llm_requests` counts reasoning inside output,
  as providers bill it.
* Not every path into Langfuse keeps the buckets disjoint: spans ingested through its OTel
  endpoint carry ``gen_ai.usage.output_tokens`` (which includes reasoning) and
  ``gen_ai.usage.input_tokens`` (which includes cached tokens) as ``output`` / ``input``
  (langfuse/langfuse#11244). The observation's ``total`` tells them apart: when ``total``
  equals the sum of the other buckets they are disjoint (the rules above); when it equals
  that sum minus the reasoning (and/or minus the cache reads and writes), ``output`` already
  holds the reasoning (and/or ``input`` the cached tokens), and they are not added again
  (cached tokens are subtracted from ``input`` instead). Without ``total``, disjoint.

Cost: ``reported_cost`` = ``costDetails.total``, else ``totalCost``, else
``calculatedTotalCost`` (Langfuse's cost is USD, whether ingested or inferred from its model
prices); :func:`connectors.pricing.price_staged` keeps it as ``cost`` and computes our own
``priced_cost`` beside it. A generation without a cost is priced by us. Langfuse exports name
no provider: ``provider`` is NULL and the price is matched on the model name.

Task and agent: ``task_id`` = the trace's ``sessionId`` when it has one (a session groups the
traces of one conversation, the unit a user pays for), else the trace id — the same rule as
the OTel connector's conversation id. ``agent_id`` = the name of the nearest ancestor
``AGENT`` observation (found with a recursive CTE over ``parentObservationId``), else the
trace metadata's ``agent_id`` / ``agent`` / ``agent_name``, else the trace name.
``user_id`` = the trace's ``userId``; ``tags`` = the trace's tags.

Idempotency, quarantine and errors as in :mod:`connectors.otel`: ``request_id`` = observation
id, each load replaces the request ids it holds; a generation without an id, with a usage
value that is not a non-negative integer, a cost that is not a number or an unreadable
startTime is quarantined (file, line, trace id, observation id, reason); a line that is not
JSON or not a trace export is an error naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from connectors.files import expand, sql_literal
from connectors.otel import ProgressCallback, TraceIngestReport, ancestor_walk_sql, finish_load, request_totals, stage_documents
from finops.exceptions import SourceError
from finops.warehouse import MONEY, LoadBatch, SourceFile, Warehouse

SOURCE_KIND = "langfuse"

MODEL_CALL_TYPES = ("GENERATION", "EMBEDDING")
AGENT_TYPE = "AGENT"

CACHE_READ_KEYS = ("input_cached_tokens", "cache_read_input_tokens", "input_cache_read")
CACHE_WRITE_KEYS = ("cache_creation_input_tokens", "input_cache_creation", "input_cache_write")
REASONING_KEYS = ("output_reasoning_tokens", "output_reasoning", "reasoning_tokens")

OBSERVATION_FIELDS = {
    "id": "VARCHAR",
    "traceId": "VARCHAR",
    "parentObservationId": "VARCHAR",
    "type": "VARCHAR",
    "name": "VARCHAR",
    "startTime": "VARCHAR",
    "endTime": "VARCHAR",
    "model": "VARCHAR",
    "level": "VARCHAR",
    "usageDetails": "MAP(VARCHAR, VARCHAR)",
    "usage": {"input": "VARCHAR", "output": "VARCHAR"},
    "promptTokens": "VARCHAR",
    "completionTokens": "VARCHAR",
    "costDetails": "MAP(VARCHAR, VARCHAR)",
    "totalCost": "VARCHAR",
    "calculatedTotalCost": "VARCHAR",
}
TRACE_FIELDS = {"id": "VARCHAR", "name": "VARCHAR", "sessionId": "VARCHAR", "userId": "VARCHAR", "tags": ["VARCHAR"]}


def ingest(
    wh: Warehouse, patterns: Sequence[str | Path], *, progress: ProgressCallback | None = None
) -> TraceIngestReport:
    """Load the GENERATION/EMBEDDING observations of Langfuse trace exports into ``llm_requests``."""
    paths = expand(patterns, suffixes=(".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz"))
    report = progress or (lambda *_: None)
    sources = []
    for i, path in enumerate(paths):
        report("checksums", i, len(paths))
        sources.append(SourceFile.of(path))
    with wh.load(SOURCE_KIND, ", ".join(str(p) for p in patterns), sources) as batch:
        for i, path in enumerate(paths):
            report(f"reading {path.name}", i, len(paths))
            stage_documents(batch, "langfuse_docs", path, first=i == 0, accept=_check_export_line)
        batch.stage("langfuse_observations", _observations_sql("langfuse_docs"))
        batch.stage(
            "langfuse_walk", ancestor_walk_sql("langfuse_observations", "trace_id", "span_id", "parent_span_id")
        )
        report("resolving agents and tasks", len(paths), len(paths))
        batch.stage("langfuse_typed", _typed_sql())
        result = finish_load(batch, "langfuse_typed", SOURCE_KIND)
        sample = batch.quarantine_sample()
    return TraceIngestReport(result, list(paths), request_totals(wh, result.batch_id), sample)


def _check_export_line(batch: LoadBatch, table: str, path: Path) -> None:
    bad = batch.execute(
        f"""SELECT _line FROM "{table}" WHERE NOT (
            (json_type(doc) = 'ARRAY')
            OR (json_type(doc) = 'OBJECT' AND (json_exists(doc, '$.trace') OR json_exists(doc, '$.observations')
                                                OR json_type(doc, '$.data') = 'ARRAY'))
        ) ORDER BY _line LIMIT 1"""
    ).fetchone()
    if bad:
        raise SourceError(
            f"{path}: line {bad[0]} is not a Langfuse trace export (no trace or observations)",
            hint="export traces from Langfuse as JSON ({trace, observations}) or from GET /api/public/traces/{id}",
        )


def _observations_sql(docs: str) -> str:
    """One row per observation (deduplicated by id, the last copy wins), with its trace's fields."""
    return f"""
        WITH items AS (
            SELECT _file, _line, unnest(CASE
                WHEN json_type(doc) = 'ARRAY' THEN json_extract(doc, '$[*]')
                WHEN json_type(doc, '$.data') = 'ARRAY' THEN json_extract(doc, '$.data[*]')
                ELSE [doc] END) AS item
            FROM {docs}
        ),
        traces AS (
            SELECT _file, _line,
                coalesce(json_extract(item, '$.trace'), item) AS trace,
                coalesce(json_extract(item, '$.observations'), json_extract(item, '$.trace.observations')) AS observations
            FROM items
        ),
        obs AS (
            SELECT _file, _line,
                json_transform(trace, {sql_literal(json.dumps(TRACE_FIELDS))}) AS t,
                coalesce(json_extract_string(trace, '$.metadata.agent_id'), json_extract_string(trace, '$.metadata.agent'),
                         json_extract_string(trace, '$.metadata.agent_name')) AS trace_agent,
                json_transform(unnest(json_extract(observations, '$[*]')), {sql_literal(json.dumps(OBSERVATION_FIELDS))}) AS o
            FROM traces WHERE json_type(observations) = 'ARRAY'
        )
        SELECT _file, _line,
            nullif(trim(coalesce(o.traceId, t.id)), '') AS trace_id,
            nullif(trim(o.id), '') AS span_id,
            nullif(trim(o.parentObservationId), '') AS parent_span_id,
            upper(o.type) AS type, o.name, o.startTime AS start_text, o.endTime AS end_text, o.model, o.level,
            o.usageDetails AS ud, o.usage AS legacy_usage, o.promptTokens, o.completionTokens,
            o.costDetails AS cd, o.totalCost, o.calculatedTotalCost,
            t.name AS trace_name, t.sessionId AS session_id, t.userId AS user_id, t.tags, trace_agent,
            coalesce(upper(o.type) IN ({", ".join(sql_literal(t) for t in MODEL_CALL_TYPES)}), false) AS is_model_call
        FROM obs
        QUALIFY span_id IS NULL
             OR row_number() OVER (PARTITION BY span_id ORDER BY _file DESC, _line DESC) = 1
    """


def _first_key(keys: Sequence[str]) -> str:
    return "coalesce(" + ", ".join(f"ud[{sql_literal(k)}]" for k in keys) + ")"


def _token(text: str) -> str:
    return f"try_cast(try_cast({text} AS DOUBLE) AS BIGINT)"


def _money(text: str) -> str:
    return f"coalesce(try_cast({text} AS {MONEY}), try_cast(try_cast({text} AS DOUBLE) AS {MONEY}))"


def _typed_sql() -> str:
    texts = {
        "input_text": ("coalesce(ud['input'], legacy_usage.input, promptTokens)", "usageDetails.input"),
        "output_text": ("coalesce(ud['output'], legacy_usage.output, completionTokens)", "usageDetails.output"),
        "cache_read_text": (_first_key(CACHE_READ_KEYS), "usageDetails." + CACHE_READ_KEYS[0]),
        "cache_write_text": (_first_key(CACHE_WRITE_KEYS), "usageDetails." + CACHE_WRITE_KEYS[0]),
        "reasoning_text": (_first_key(REASONING_KEYS), "usageDetails." + REASONING_KEYS[0]),
    }
    token_errors = [
        f"CASE WHEN {t} IS NOT NULL AND ({_token(t)} IS NULL OR {_token(t)} < 0"
        f" OR try_cast({t} AS DOUBLE) <> {_token(t)}) THEN '{label}: not a non-negative integer' END"
        for t, (_, label) in texts.items()
    ]
    cost_text = "coalesce(cd['total'], totalCost, calculatedTotalCost)"
    start = "try_cast(start_text AS TIMESTAMPTZ)::TIMESTAMP"
    end = "try_cast(end_text AS TIMESTAMPTZ)::TIMESTAMP"
    return f"""
        WITH context AS (
            SELECT w.trace_key, w.span_key,
                arg_min(a.name, w.depth) FILTER (WHERE w.depth > 0 AND a.type = '{AGENT_TYPE}' AND a.name IS NOT NULL) AS agent
            FROM langfuse_walk AS w JOIN langfuse_observations AS a ON a.trace_id = w.trace_key AND a.span_id = w.ancestor
            GROUP BY ALL
        ),
        texts AS (
            SELECT m.*, c.agent AS tree_agent, {", ".join(f"{expr} AS {name}" for name, (expr, _) in texts.items())},
                {cost_text} AS cost_text
            FROM langfuse_observations AS m
            LEFT JOIN context AS c ON c.trace_key = m.trace_id AND c.span_key = m.span_id
            WHERE m.is_model_call
        ),
        calls AS (
            SELECT *,
                {_token('input_text')} AS input_n, {_token('output_text')} AS output_n,
                {_token('cache_read_text')} AS cache_read_n, {_token('cache_write_text')} AS cache_write_n,
                {_token('reasoning_text')} AS reasoning_n, {_money('cost_text')} AS cost_n,
                {_token("ud['total']")} AS total_n,
                list_sum(list_transform(list_filter(map_entries(ud), e -> e.key <> 'total'),
                                        e -> {_token('e.value')})) AS parts_n,
                {start} AS started, {end} AS ended,
                list_filter([
                    CASE WHEN span_id IS NULL THEN 'id: missing' END,
                    CASE WHEN trace_id IS NULL THEN 'traceId: missing' END,
                    CASE WHEN {start} IS NULL THEN 'startTime: not a timestamp' END,
                    CASE WHEN cost_text IS NOT NULL AND {_money('cost_text')} IS NULL THEN 'costDetails.total: not a number' END,
                    {", ".join(token_errors)}
                ]::VARCHAR[], e -> e IS NOT NULL) AS _errors
            FROM texts
        )
        SELECT _file, _line, _errors, trace_id,
            started AS period_start, coalesce(ended, started) AS period_end,
            '{SOURCE_KIND}' AS source, CAST(NULL AS VARCHAR) AS provider, model, calls.user_id,
            coalesce(tree_agent, old.agent_id, trace_agent, trace_name) AS agent_id,
            coalesce(session_id, trace_id) AS task_id,
            span_id AS request_id,
            1::BIGINT AS requests,
            CASE WHEN input_includes_cache THEN input_n - coalesce(cache_read_n, 0) - coalesce(cache_write_n, 0)
                 ELSE input_n END AS input_tokens,
            cache_read_n AS cached_input_tokens, cache_write_n AS cache_write_tokens,
            CASE WHEN output_n IS NULL AND reasoning_n IS NULL THEN NULL
                 WHEN output_includes_reasoning THEN output_n
                 ELSE coalesce(output_n, 0) + coalesce(reasoning_n, 0) END AS output_tokens,
            reasoning_n AS reasoning_tokens,
            CASE type WHEN 'EMBEDDING' THEN 'embedding' ELSE 'generation' END AS call_type,
            CASE WHEN upper(coalesce(level, '')) = 'ERROR' THEN 'failure' ELSE 'success' END AS status,
            tags, span_id, parent_span_id,
            cost_n AS reported_cost, CASE WHEN cost_n IS NOT NULL THEN 'USD' END AS cost_currency,
            _file AS x_SourceKey
        FROM (
            SELECT *,
                -- `total` says whether the buckets overlap (see the module docstring).
                coalesce(total_n <> parts_n AND coalesce(cache_read_n, 0) + coalesce(cache_write_n, 0) > 0
                    AND total_n IN (parts_n - coalesce(cache_read_n, 0) - coalesce(cache_write_n, 0),
                                    parts_n - coalesce(cache_read_n, 0) - coalesce(cache_write_n, 0) - coalesce(reasoning_n, 0))
                    AND input_n >= coalesce(cache_read_n, 0) + coalesce(cache_write_n, 0), false) AS input_includes_cache,
                coalesce(total_n <> parts_n AND coalesce(reasoning_n, 0) > 0
                    AND total_n IN (parts_n - reasoning_n,
                                    parts_n - reasoning_n - coalesce(cache_read_n, 0) - coalesce(cache_write_n, 0))
                    AND output_n >= reasoning_n, false) AS output_includes_reasoning
            FROM calls
        ) AS calls
        LEFT JOIN (
            SELECT request_id AS old_request_id, agent_id FROM llm_requests WHERE x_Source = '{SOURCE_KIND}'
        ) AS old ON old.old_request_id = calls.span_id
    """
