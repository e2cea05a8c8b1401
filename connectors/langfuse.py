"""Langfuse exports into `llm_requests`, one row per model call (GENERATION or EMBEDDING observation).

Input: JSON or JSON-lines files in any of the shapes Langfuse hands out, mixed freely in one load:

* ``{"trace": {...}, "observations": [...]}`` (the UI's trace export), or a trace with
  ``observations`` inside it (``GET /api/public/traces/{id}``);
* a trace whose ``observations`` is a list of id strings (``GET /api/public/traces``, a list):
  it brings no observations, only its trace fields, which observations loaded from other
  files or pages of the same load get by trace id;
* observations alone: one per line (the observations export, JSON lines), a JSON list of them,
  or a page of ``GET /api/public/observations`` (``{"data": [...], "meta": {...}}``);
* a trace alone (a row of a traces export: an object with ``id`` and no ``type``/``traceId``);
* a list of any of these, or ``{"data": [...]}``, or one of these per line.

Observations may nest their children in ``children`` arrays, to any depth (flattened with a
recursive CTE over the JSON, bounded at :data:`MAX_DEPTH`): a child without
``parentObservationId`` has the enclosing observation as parent, and inherits its trace id.
Fields are read in camelCase (public API) or snake_case (blob-storage / ClickHouse exports):
``traceId``/``trace_id``, ``parentObservationId``/``parent_observation_id``,
``startTime``/``start_time``, ``endTime``/``end_time``, ``usageDetails``/``usage_details``,
``costDetails``/``cost_details``, ``totalCost``/``total_cost``,
``calculatedTotalCost``/``calculated_total_cost``, ``sessionId``/``session_id``,
``userId``/``user_id``. ``model`` = ``model``, else ``providedModelName`` / ``provided_model_name``.

What becomes a row
------------------
Every observation of type ``GENERATION`` or ``EMBEDDING`` (Langfuse tracks usage and cost on
those two), whatever the framework's nesting, the order of observations, or missing parents.
``SPAN``, ``EVENT``, ``AGENT``, ``TOOL`` and other types are context only and never costed
(frameworks put usage totals on agent observations: counting them double counts). Only the
fields named here are read (json_transform with a fixed shape, in the query that parses the
file; ``input``, ``output``, ``metadata`` of observations, ``statusMessage`` and every other
field are never stored, whatever their shape, so no prompt or completion text reaches the
warehouse); of the trace, ``id``, ``name``, session, user, ``tags`` and the ``metadata`` keys
``agent_id``, ``agent``, ``agent_name`` (metadata may be an object or a JSON-encoded string).

Timestamps: ISO 8601 with any number of fraction digits and any offset (or none: UTC),
``YYYY-MM-DD HH:MM:SS.fff``, or epoch numbers, told apart by magnitude: below 1e11 seconds,
below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.

Tokens
------
Usage comes from ``usageDetails`` (else the older ``usage``, else the oldest top-level
``promptTokens``/``completionTokens``/``totalTokens``). Integrations name the buckets
differently; each key is classified into one kind, and within a kind the first present name of
this table wins (two names for one count are never summed):

=================  =======================================================================================
kind               keys, in order
=================  =======================================================================================
input              input, input_tokens, prompt_tokens, promptTokens, inputTokens,
                   tokens (the Vercel AI SDK's embeddings)
output             output, output_tokens, completion_tokens, completionTokens, outputTokens
cache read         input_cached_tokens, input_cache_read, cache_read_input_tokens, cache_read,
                   cachedInputTokens, input_cached, cached_tokens, cache_read_tokens
cache write        input_cache_creation, cache_creation_input_tokens, input_cache_write, cache_creation,
                   cache_write, cacheCreationInputTokens, cache_creation_tokens, cache_write_tokens;
                   else the sum of the TTL-specific ``input_cache_creation_*`` / ``cache_creation_*`` keys
reasoning          output_reasoning_tokens, output_reasoning, reasoning_tokens, reasoningTokens
total              total, total_tokens, totalTokens
other input        any other ``input_*`` key (``input_audio_tokens``, ``input_audio``, ``input_image`` …):
                   one bucket per name without its ``_tokens`` suffix, added to input
other output       any other ``output_*`` key (``output_audio_tokens`` …): likewise, added to output
=================  =======================================================================================

Langfuse's own OpenAI integration (input, output, total, input_cached_tokens,
output_reasoning_tokens, input_audio_tokens …), the LangChain / LangGraph CallbackHandler
(input, output, total, input_cache_read, input_cache_creation, output_reasoning, input_audio …)
and Anthropic's names (cache_read_input_tokens, cache_creation_input_tokens) keep the buckets
disjoint: Langfuse sums them when no ``total`` is given. So ``input_tokens`` = input + other
input (uncached), ``cached_input_tokens`` = cache read, ``cache_write_tokens`` = cache write,
``reasoning_tokens`` = reasoning and ``output_tokens`` = output + reasoning + other output
(`llm_requests` counts reasoning inside output, as providers bill it).

Not every path into Langfuse keeps the buckets disjoint: spans ingested through its OTel
endpoint (PydanticAI, Vercel AI SDK, Google ADK, OpenAI Agents SDK via OpenInference/Logfire,
CrewAI, LlamaIndex, AutoGen) carry ``gen_ai.usage.output_tokens`` (which includes reasoning)
and ``gen_ai.usage.input_tokens`` (which includes cached tokens) as ``output`` / ``input``
(langfuse/langfuse#11244). The observation's total tells them apart: when it equals the sum
of the classified buckets they are disjoint (the rules above); when it equals that sum minus
the reasoning (and/or minus the cache reads and writes), ``output`` already holds the
reasoning (and/or ``input`` the cached tokens), and they are not added again (cached tokens
are subtracted from ``input`` instead). Without a total, disjoint.

Cost: ``reported_cost`` = ``costDetails.total``, else ``totalCost``, else
``calculatedTotalCost``, else the sum of ``costDetails``' parts (Langfuse's cost is USD,
whether ingested or inferred from its model prices); :func:`connectors.pricing.price_staged`
keeps it as ``cost`` and computes our own ``priced_cost`` beside it. A generation without a
cost is priced by us. Langfuse exports name no provider: ``provider`` is NULL and the price is
matched on the model name.

Task and agent
--------------
``task_id`` = the trace id, always (one trace is one task; a session's traces stay apart).
``agent_id`` = the name of the nearest ancestor ``AGENT`` observation (a recursive CTE over the
parent ids). When the chain of parents breaks at a parent that is in no file of the load (a
partial export) before reaching an ``AGENT``, the call is taken to belong to the trace's agent
if the trace has exactly one ``AGENT`` name (the common single-agent case); a call whose chain
reaches the root without an agent is outside any agent. Then the agent an earlier load found
for the same call, then the trace metadata's ``agent_id`` / ``agent`` / ``agent_name``, else
the trace name. ``user_id`` = the trace's user; ``tags`` = the trace's tags.

Idempotency, quarantine and errors as in :mod:`connectors.otel`: ``request_id`` =
``traceId:observationId`` (observation ids are unique only within a trace when they come from
OTel span ids); each load replaces the request ids it holds, and the rows an older version of
this connector keyed by the bare observation id. An observation that appears in several files
or pages of one load is read once (the copy in the last file and line wins). A generation
without an id or trace id, with a classified usage value that is not a non-negative integer, a
cost that is not a number or an unreadable start time is quarantined (file, line, trace id,
observation id, reason); rows read = loaded + quarantined. A line that is not JSON or not a
Langfuse export is an error naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from connectors.files import expand, money_from_text, sql_literal
from connectors.otel import (
    ProgressCallback,
    TraceIngestReport,
    ancestor_walk_sql,
    file_totals,
    finish_load,
    request_totals,
)
from connectors.staging import (
    StagedRows,
    bad_token_sql,
    checksums,
    no_progress,
    stage_documents_apart,
    stage_files_side_by_side,
    token_sql,
)
from finops.exceptions import SourceError
from finops.warehouse import MONEY, LoadBatch, Warehouse

SOURCE_KIND = "langfuse"

MODEL_CALL_TYPES = ("GENERATION", "EMBEDDING")
AGENT_TYPE = "AGENT"
MAX_DEPTH = 64
"""How deep ``children`` arrays are flattened (a bound, so a pathological file ends)."""

INPUT_KEYS = ("input", "input_tokens", "prompt_tokens", "promptTokens", "inputTokens", "tokens")
OUTPUT_KEYS = ("output", "output_tokens", "completion_tokens", "completionTokens", "outputTokens")
CACHE_READ_KEYS = (
    "input_cached_tokens",
    "input_cache_read",
    "cache_read_input_tokens",
    "cache_read",
    "cachedInputTokens",
    "input_cached",
    "cached_tokens",
    "cache_read_tokens",
)
CACHE_WRITE_KEYS = (
    "input_cache_creation",
    "cache_creation_input_tokens",
    "input_cache_write",
    "cache_creation",
    "cache_write",
    "cacheCreationInputTokens",
    "cache_creation_tokens",
    "cache_write_tokens",
)
CACHE_WRITE_TIER_PATTERN = "^(input_)?cache_(creation|write)_"
"""TTL-specific cache writes (``input_cache_creation_5m`` …), summed when no plain cache-write key is present."""
REASONING_KEYS = ("output_reasoning_tokens", "output_reasoning", "reasoning_tokens", "reasoningTokens")
TOTAL_KEYS = ("total", "total_tokens", "totalTokens")
NAMED_KEYS = INPUT_KEYS + OUTPUT_KEYS + CACHE_READ_KEYS + CACHE_WRITE_KEYS + REASONING_KEYS + TOTAL_KEYS

_USAGE = "MAP(VARCHAR, VARCHAR)"
OBSERVATION_FIELDS = {
    "id": "VARCHAR",
    "traceId": "VARCHAR",
    "trace_id": "VARCHAR",
    "parentObservationId": "VARCHAR",
    "parent_observation_id": "VARCHAR",
    "type": "VARCHAR",
    "name": "VARCHAR",
    "startTime": "VARCHAR",
    "start_time": "VARCHAR",
    "endTime": "VARCHAR",
    "end_time": "VARCHAR",
    "model": "VARCHAR",
    "providedModelName": "VARCHAR",
    "provided_model_name": "VARCHAR",
    "level": "VARCHAR",
    "usageDetails": _USAGE,
    "usage_details": _USAGE,
    "usage": _USAGE,
    "promptTokens": "VARCHAR",
    "completionTokens": "VARCHAR",
    "totalTokens": "VARCHAR",
    "costDetails": _USAGE,
    "cost_details": _USAGE,
    "totalCost": "VARCHAR",
    "total_cost": "VARCHAR",
    "calculatedTotalCost": "VARCHAR",
    "calculated_total_cost": "VARCHAR",
}
TRACE_FIELDS = {
    "id": "VARCHAR",
    "name": "VARCHAR",
    "sessionId": "VARCHAR",
    "session_id": "VARCHAR",
    "userId": "VARCHAR",
    "user_id": "VARCHAR",
    "tags": ["VARCHAR"],
}
TRACE_AGENT_KEYS = ("agent_id", "agent", "agent_name")
SHAPED_PATHS = ["$.usageDetails", "$.usage_details", "$.costDetails", "$.cost_details"]
"""Fields that must be objects when present: another shape is quarantined, never read as "no usage"."""


def ingest(
    wh: Warehouse, patterns: Sequence[str | Path], *, progress: ProgressCallback | None = None
) -> TraceIngestReport:
    """Load the GENERATION/EMBEDDING observations of Langfuse exports into ``llm_requests``."""
    paths = expand(patterns, suffixes=(".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz"))
    report = progress or no_progress
    with wh.load(SOURCE_KIND, ", ".join(str(p) for p in patterns), checksums(paths, report)) as batch:
        stage_files_side_by_side(
            batch, paths, _stage_observations_apart, report, path=lambda p: p, rows_table="langfuse_rows", rejects_table=None
        )
        batch.stage("langfuse_observations", _observations_sql("langfuse_rows"))
        batch.execute("DROP TABLE langfuse_rows")
        batch.stage(
            "langfuse_walk", ancestor_walk_sql("langfuse_observations", "trace_id", "span_id", "parent_span_id")
        )
        report("resolving agents and tasks", len(paths), len(paths))
        batch.stage("langfuse_typed", _typed_sql())
        result = finish_load(
            batch,
            "langfuse_typed",
            SOURCE_KIND,
            # Rows of the version that keyed a call by its bare observation id.
            also_delete_where=f"x_Source = '{SOURCE_KIND}' AND request_id IN (SELECT span_id FROM _to_price)",
        )
        sample = batch.quarantine_sample()
    return TraceIngestReport(
        result, list(paths), request_totals(wh, result.batch_id), sample, file_totals(wh, result.batch_id, paths)
    )


DOCUMENTS_AT_ONCE = 8 << 20
"""Bytes of Langfuse JSON taken apart by one statement (see :func:`_stage_observations_apart`)."""


def _stage_observations_apart(helper: LoadBatch, index: int, path: Path) -> StagedRows:
    """Stage one file's observations and traces (:func:`_file_observations_sql`) into a table of
    its own; the documents read.

    The file's documents are read into a table, what the load needs taken out, and the
    documents (the bulk of an export, and content) dropped, one file per helper thread: 16
    files of 29 MB (457 MB of JSON) ran out of the default 2 GB when every file's documents
    were staged before any observation was taken out.
    """
    docs = stage_documents_apart(helper, index, path, table="langfuse_docs", accept=_check_export_line)
    rows = f"_langfuse_rows_{index}"
    # The documents in runs of about DOCUMENTS_AT_ONCE bytes (a longer one alone): DuckDB's JSON
    # calls each hold a parse of every document of a vector until it is done, about 30 times the
    # text over this query, so a whole 29 MB file took 0.8–1 GB, and two files at once more.
    runs = helper.execute(
        f"SELECT min(_line), max(_line) FROM (SELECT _line, (sum(strlen(doc)) OVER (ORDER BY _line)"
        f" - strlen(doc)) // {DOCUMENTS_AT_ONCE} AS run FROM {docs.rows}) GROUP BY run ORDER BY 1"
    ).fetchall()
    for n, (first, last) in enumerate(runs or [(0, 0)]):
        some = f"(SELECT * FROM {docs.rows} WHERE _line BETWEEN {first} AND {last})"
        helper.stage(rows, _file_observations_sql(some), append=n > 0)
    helper.execute(f"DROP TABLE {docs.rows}")
    return StagedRows(helper.table_name(rows), None, docs.rows_read)


def _check_export_line(batch: LoadBatch, table: str, path: Path) -> None:
    """Accept lists, trace exports, API pages, and single observations or traces; refuse anything else."""
    # One json_type call for every path (a path that is missing has no type): DuckDB keeps each
    # JSON call's parse of a vector of documents until the vector is done; eight calls held eight.
    types = "json_type(doc, ['$', '$.data', '$.trace', '$.observations', '$.type', '$.traceId', '$.trace_id', '$.id'])"
    bad = batch.execute(
        f"""SELECT _line FROM (SELECT _line, {types} AS t FROM "{table}")
        WHERE NOT (t[1] = 'ARRAY' OR (t[1] = 'OBJECT' AND (t[2] = 'ARRAY' OR list_count(t[3:]) > 0)))
        ORDER BY _line LIMIT 1"""
    ).fetchone()
    if bad:
        raise SourceError(
            f"{path}: line {bad[0]} is not a Langfuse trace export (no trace, observations or observation)",
            hint="export traces from Langfuse as JSON ({trace, observations}), from GET /api/public/traces/{id}"
            " or GET /api/public/observations, or as an observations export (JSON lines)",
        )


def _scalar(doc: str, key: str) -> str:
    """SQL: ``doc``'s ``key`` as text when it is a string or a number (objects and lists are not names)."""
    path = sql_literal(f"$.{key}")
    return (
        f"CASE WHEN json_type({doc}, {path}) IN ('VARCHAR', 'BIGINT', 'UBIGINT', 'DOUBLE')"
        f" THEN nullif(trim(json_extract_string({doc}, {path})), '') END"
    )


TRACE_COLUMNS = ("trace_name", "session_id", "user_id", "tags", "trace_agent")
"""What an observation takes from its trace (joined by trace id, perhaps from another file)."""


def _observations_sql(rows: str) -> str:
    """One row per observation (deduplicated by trace and observation id, the last copy wins), with its trace's fields.

    ``rows``: what :func:`_file_observations_sql` took out of every file. A trace's fields are
    the last copy's (the last file by name, its last line), and so is an observation.
    """
    model_types = ", ".join(sql_literal(t) for t in MODEL_CALL_TYPES)
    trace_columns = ", ".join(TRACE_COLUMNS)
    return f"""
        WITH traces AS (
            SELECT trace_id, {trace_columns} FROM {rows} WHERE _is_trace
            QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY _file DESC, _line DESC) = 1
        ),
        obs AS (SELECT * EXCLUDE (_is_trace, {trace_columns}) FROM {rows} WHERE NOT _is_trace)
        SELECT obs.*, {", ".join(f"t.{c}" for c in TRACE_COLUMNS)},
            coalesce(type IN ({model_types}), false) AS is_model_call
        FROM obs LEFT JOIN traces AS t USING (trace_id)
        QUALIFY obs.trace_id IS NULL OR span_id IS NULL
             OR row_number() OVER (PARTITION BY obs.trace_id, span_id ORDER BY _file DESC, _line DESC) = 1
    """


def _file_observations_sql(docs: str) -> str:
    """The observations and the traces of the documents in ``docs``: a row each, ``_is_trace``
    telling which (:func:`_observations_sql` joins them and drops copies, over every file).

    ``items``: each document's items, a trace (``is_trace``: it has ``trace`` or ``observations``,
    or none of ``type``/``traceId``/``trace_id``) or an observation; the paths are extracted in one
    parse of the item. ``children`` arrays are flattened by a recursive CTE. Items hold content:
    only :data:`OBSERVATION_FIELDS` and :data:`TRACE_FIELDS` leave this query.
    """
    paths = ["$.trace", "$.observations", "$.type", "$.traceId", "$.trace_id", "$.trace.observations", "$.trace.id"]
    agent = ", ".join(_scalar("meta", k) for k in TRACE_AGENT_KEYS)
    fields = sql_literal(json.dumps(OBSERVATION_FIELDS))
    shaped = "[" + ", ".join(sql_literal(p) for p in SHAPED_PATHS) + "]"
    own_trace = (
        "nullif(trim(coalesce(json_extract_string(obs, '$.traceId'), json_extract_string(obs, '$.trace_id'))), '')"
    )
    return f"""
        WITH RECURSIVE shapes AS (
            -- One parse for both types: DuckDB keeps each JSON call's parse of a whole vector of
            -- documents until the vector is done, and five calls here held five.
            SELECT _file, _line, doc, json_type(doc, ['$', '$.data']) AS t FROM {docs}
        ),
        raw AS (
            SELECT _file, _line, unnest(CASE
                WHEN t[1] = 'ARRAY' THEN json_extract(doc, '$[*]')
                WHEN t[1] = 'OBJECT' AND t[2] = 'ARRAY' THEN json_extract(doc, '$.data[*]')
                ELSE [doc] END) AS item
            FROM shapes
        ),
        parts AS (
            SELECT _file, _line, item, json_extract(item, [{", ".join(sql_literal(p) for p in paths)}]) AS p
            FROM raw WHERE json_type(item) = 'OBJECT'
        ),
        items AS MATERIALIZED (
            SELECT _file, _line,
                p[1] IS NOT NULL OR p[2] IS NOT NULL OR coalesce(p[3], p[4], p[5]) IS NULL AS is_trace,
                CASE WHEN json_type(p[1]) = 'OBJECT' THEN p[1] ELSE item END AS trace,
                coalesce(p[2], p[6]) AS observations,
                nullif(trim(coalesce(p[7] ->> '$', item ->> '$.id')), '') AS trace_key,
                item
            FROM parts
        ),
        trace_meta AS (
            SELECT _file, _line, json_transform(trace, {sql_literal(json.dumps(TRACE_FIELDS))}) AS t,
                CASE WHEN json_type(trace, '$.metadata') = 'VARCHAR'
                          AND json_valid(json_extract_string(trace, '$.metadata'))
                     THEN json_extract_string(trace, '$.metadata')::JSON
                     ELSE json_extract(trace, '$.metadata') END AS meta
            FROM items WHERE is_trace
        ),
        traces AS (
            SELECT _file, _line, nullif(trim(t.id), '') AS trace_id, t.name AS trace_name,
                coalesce(t.sessionId, t.session_id) AS session_id, coalesce(t.userId, t.user_id) AS user_id, t.tags,
                CASE WHEN json_type(meta) = 'OBJECT' THEN coalesce({agent}) END AS trace_agent
            FROM trace_meta WHERE nullif(trim(t.id), '') IS NOT NULL
        ),
        roots AS (
            SELECT _file, _line, trace_key, unnest(json_extract(observations, '$[*]')) AS obs
            FROM items WHERE is_trace AND json_type(observations) = 'ARRAY'
            UNION ALL
            SELECT _file, _line, NULL, item FROM items WHERE NOT is_trace
        ),
        flat(_file, _line, trace_key, parent_key, obs, depth) AS (
            SELECT _file, _line, trace_key, NULL::VARCHAR, obs, 0 FROM roots WHERE json_type(obs) = 'OBJECT'
            UNION ALL
            SELECT _file, _line, coalesce({own_trace}, trace_key), nullif(trim(json_extract_string(obs, '$.id')), ''),
                unnest(json_extract(obs, '$.children[*]')), depth + 1
            FROM flat WHERE json_type(obs, '$.children') = 'ARRAY' AND depth < {MAX_DEPTH}
        ),
        o AS (
            SELECT _file, _line, trace_key, parent_key, json_transform(obs, {fields}) AS o,
                json_type(obs, {shaped}) AS shapes
            FROM flat WHERE json_type(obs) = 'OBJECT'
        ),
        obs AS (
            SELECT _file, _line,
                nullif(trim(coalesce(o.traceId, o.trace_id, trace_key)), '') AS trace_id,
                nullif(trim(o.id), '') AS span_id,
                nullif(trim(coalesce(o.parentObservationId, o.parent_observation_id, parent_key)), '')
                    AS parent_span_id,
                upper(trim(o.type)) AS type, nullif(trim(o.name), '') AS name,
                coalesce(o.startTime, o.start_time) AS start_text, coalesce(o.endTime, o.end_time) AS end_text,
                coalesce(nullif(trim(o.model), ''), nullif(trim(o.providedModelName), ''),
                         nullif(trim(o.provided_model_name), '')) AS model,
                o.level,
                coalesce(CASE WHEN cardinality(o.usageDetails) > 0 THEN o.usageDetails END,
                         CASE WHEN cardinality(o.usage_details) > 0 THEN o.usage_details END,
                         CASE WHEN cardinality(o.usage) > 0 THEN o.usage END,
                         CASE WHEN coalesce(o.promptTokens, o.completionTokens, o.totalTokens) IS NOT NULL
                              THEN map_from_entries(list_filter(
                                  [('input', o.promptTokens), ('output', o.completionTokens), ('total', o.totalTokens)],
                                  e -> e[2] IS NOT NULL)) END
                ) AS ud,
                coalesce(o.costDetails, o.cost_details) AS cd,
                coalesce(o.totalCost, o.total_cost) AS total_cost,
                coalesce(o.calculatedTotalCost, o.calculated_total_cost) AS calculated_cost,
                -- usage or cost that is there but not an object cannot be read (json_transform made it NULL)
                list_transform(list_filter(list_zip({shaped}, shapes),
                                           x -> x[2] NOT IN ('OBJECT', 'NULL')),
                               x -> substr(x[1], 3) || ': not an object') AS shape_errors
            FROM o
        )
        SELECT *, false AS _is_trace FROM obs
        UNION ALL BY NAME
        SELECT *, true AS _is_trace FROM traces
    """


def _first_key(keys: Sequence[str]) -> str:
    return "coalesce(" + ", ".join(f"ud[{sql_literal(k)}]" for k in keys) + ")"


def _money(text: str) -> str:
    return f"coalesce({money_from_text(text)}, try_cast(try_cast({text} AS DOUBLE) AS {MONEY}))"


def _time(text: str) -> str:
    """SQL: ``text`` as a UTC TIMESTAMP: ISO 8601 / 'YYYY-MM-DD HH:MM:SS', or epoch s/ms/µs/ns by magnitude."""
    num = (
        f"coalesce(try_cast(trim({text}) AS DECIMAL(38, 9)),"
        f" try_cast(try_cast(trim({text}) AS DOUBLE) AS DECIMAL(38, 9)))"
    )
    micros = (
        f"CASE WHEN abs({num}) < 1e11 THEN {num} * 1000000 WHEN abs({num}) < 1e14 THEN {num} * 1000"
        f" WHEN abs({num}) < 1e17 THEN {num} ELSE {num} / 1000 END"
    )
    ts = (
        f"CASE WHEN {num} IS NOT NULL THEN try(make_timestamp(floor({micros})::BIGINT))"
        f" ELSE try_cast({text} AS TIMESTAMPTZ)::TIMESTAMP END"
    )
    # 'infinity' and years past 9999 are not times of a call (and break readers of the table)
    return f"CASE WHEN year({ts}) BETWEEN 1 AND 9999 THEN {ts} END"


def _bucket_sum(prefix: str) -> str:
    """SQL: the sum of the other ``{prefix}_*`` buckets of ``ud`` (one per name without ``_tokens``)."""
    named = ", ".join(sql_literal(k) for k in NAMED_KEYS)
    entries = (
        f"list_transform(list_filter(map_entries(ud), e -> starts_with(e.key, '{prefix}_') AND e.key NOT IN ({named})"
        f" AND NOT regexp_matches(e.key, '{CACHE_WRITE_TIER_PATTERN}') AND e.value IS NOT NULL),"
        f" e -> {{'b': regexp_replace(e.key, '_tokens$', ''), 'v': {token_sql('e.value')}}})"
    )
    return (
        f"list_sum(list_transform(list_distinct(list_transform({entries}, e -> e.b)),"
        f" b -> list_max(list_transform(list_filter({entries}, e -> e.b = b), e -> e.v))))"
    )


def _typed_sql() -> str:
    """Model calls with their task, agent and llm_requests columns, and their errors."""
    named = ", ".join(sql_literal(k) for k in NAMED_KEYS)
    usage_errors = (
        f"list_transform(list_filter(map_entries(ud), e -> (e.key IN ({named}) OR starts_with(e.key, 'input_')"
        f" OR starts_with(e.key, 'output_') OR regexp_matches(e.key, '{CACHE_WRITE_TIER_PATTERN}'))"
        f" AND {bad_token_sql('e.value')}), e -> 'usageDetails.' || e.key || ': not a non-negative integer')"
    )
    tier_write = (
        f"list_sum(list_transform(list_filter(map_entries(ud),"
        f" e -> regexp_matches(e.key, '{CACHE_WRITE_TIER_PATTERN}')),"
        f" e -> {token_sql('e.value')}))"
    )
    parts_money = f"list_transform(list_filter(map_entries(cd), e -> e.value IS NOT NULL), e -> {_money('e.value')})"
    cost_text = "coalesce(cd['total'], total_cost, calculated_cost)"
    start, end = _time("start_text"), _time("end_text")
    return f"""
        WITH context AS (
            SELECT w.trace_key, w.span_key,
                arg_min(a.name, w.depth)
                    FILTER (WHERE w.depth > 0 AND a.type = '{AGENT_TYPE}' AND a.name IS NOT NULL) AS agent,
                -- the topmost observation reached still names a parent: that parent is in no file
                arg_max(a.parent_span_id IS NOT NULL, w.depth) AS broken_chain
            FROM langfuse_walk AS w
            JOIN langfuse_observations AS a ON a.trace_id = w.trace_key AND a.span_id = w.ancestor
            GROUP BY ALL
        ),
        sole_agent AS (
            SELECT trace_id, CASE WHEN count(DISTINCT name) = 1 THEN min(name) END AS agent
            FROM langfuse_observations WHERE type = '{AGENT_TYPE}' AND name IS NOT NULL GROUP BY ALL
        ),
        texts AS (
            SELECT m.*, c.agent AS tree_agent, CASE WHEN c.broken_chain THEN s.agent END AS guessed_agent,
                {_first_key(INPUT_KEYS)} AS input_text, {_first_key(OUTPUT_KEYS)} AS output_text,
                {_first_key(CACHE_READ_KEYS)} AS cache_read_text, {_first_key(CACHE_WRITE_KEYS)} AS cache_write_text,
                {_first_key(REASONING_KEYS)} AS reasoning_text, {_first_key(TOTAL_KEYS)} AS total_text,
                {cost_text} AS cost_text, {_money(cost_text)} AS cost_money,
                CASE WHEN {cost_text} IS NULL AND cardinality(cd) > 0 THEN {parts_money} END AS cost_parts,
                {start} AS started, {end} AS ended
            FROM langfuse_observations AS m
            LEFT JOIN context AS c ON c.trace_key = m.trace_id AND c.span_key = m.span_id
            LEFT JOIN sole_agent AS s ON s.trace_id = m.trace_id
            WHERE m.is_model_call
        ),
        calls AS (
            SELECT *,
                {token_sql("input_text")} AS input_n, {token_sql("output_text")} AS output_n,
                {token_sql("cache_read_text")} AS cache_read_n,
                coalesce({token_sql("cache_write_text")}, {tier_write}) AS cache_write_n,
                {token_sql("reasoning_text")} AS reasoning_n, {token_sql("total_text")} AS total_n,
                {_bucket_sum("input")} AS other_input_n, {_bucket_sum("output")} AS other_output_n,
                coalesce(cost_money, CASE WHEN len(cost_parts) > 0 THEN list_sum(cost_parts) END) AS cost_n,
                list_concat(list_filter([
                    CASE WHEN span_id IS NULL THEN 'id: missing' END,
                    CASE WHEN trace_id IS NULL THEN 'traceId: missing' END,
                    CASE WHEN started IS NULL THEN 'startTime: not a timestamp' END,
                    CASE WHEN cost_text IS NOT NULL AND cost_money IS NULL THEN 'costDetails.total: not a number'
                         WHEN list_contains(cost_parts, NULL) THEN 'costDetails: not a number' END
                ]::VARCHAR[], e -> e IS NOT NULL), shape_errors, coalesce({usage_errors}, [])) AS _errors
            FROM texts
        ),
        sized AS (
            SELECT *,
                coalesce(input_n, 0) + coalesce(output_n, 0) + coalesce(cache_read_n, 0) + coalesce(cache_write_n, 0)
                    + coalesce(reasoning_n, 0) + coalesce(other_input_n, 0) + coalesce(other_output_n, 0) AS parts_n,
                coalesce(cache_read_n, 0) + coalesce(cache_write_n, 0) AS cache_n
            FROM calls
        ),
        judged AS (
            SELECT *,
                -- the total says whether the buckets overlap (see the module docstring)
                coalesce(total_n <> parts_n AND cache_n > 0
                    AND total_n IN (parts_n - cache_n, parts_n - cache_n - coalesce(reasoning_n, 0))
                    AND input_n >= cache_n, false) AS input_includes_cache,
                coalesce(total_n <> parts_n AND coalesce(reasoning_n, 0) > 0
                    AND total_n IN (parts_n - reasoning_n, parts_n - reasoning_n - cache_n)
                    AND output_n >= reasoning_n, false) AS output_includes_reasoning
            FROM sized
        )
        SELECT _file, _line, _errors, trace_id,
            started AS period_start, coalesce(ended, started) AS period_end,
            '{SOURCE_KIND}' AS source, CAST(NULL AS VARCHAR) AS provider, model, judged.user_id,
            coalesce(tree_agent, old.agent_id, guessed_agent, trace_agent, trace_name) AS agent_id,
            trace_id AS task_id,
            trace_id || ':' || span_id AS request_id,
            1::BIGINT AS requests,
            CASE WHEN input_n IS NULL AND other_input_n IS NULL THEN NULL
                 ELSE coalesce(CASE WHEN input_includes_cache THEN input_n - cache_n ELSE input_n END, 0)
                      + coalesce(other_input_n, 0) END AS input_tokens,
            cache_read_n AS cached_input_tokens, cache_write_n AS cache_write_tokens,
            CASE WHEN output_n IS NULL AND reasoning_n IS NULL AND other_output_n IS NULL THEN NULL
                 WHEN output_includes_reasoning THEN output_n + coalesce(other_output_n, 0)
                 ELSE coalesce(output_n, 0) + coalesce(reasoning_n, 0) + coalesce(other_output_n, 0)
                 END AS output_tokens,
            reasoning_n AS reasoning_tokens,
            CASE type WHEN 'EMBEDDING' THEN 'embedding' ELSE 'generation' END AS call_type,
            CASE WHEN upper(coalesce(level, '')) = 'ERROR' THEN 'failure' ELSE 'success' END AS status,
            tags, span_id, parent_span_id,
            cost_n AS reported_cost, CASE WHEN cost_n IS NOT NULL THEN 'USD' END AS cost_currency,
            _file AS x_SourceKey
        FROM judged
        LEFT JOIN (
            SELECT request_id AS old_request_id, agent_id FROM llm_requests WHERE x_Source = '{SOURCE_KIND}'
        ) AS old ON old.old_request_id = judged.trace_id || ':' || judged.span_id
    """
