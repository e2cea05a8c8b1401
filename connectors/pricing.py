"""Token prices: the `prices` table, its loaders, and pricing of staged `llm_requests` rows.

Every gateway and model-API connector stages its rows with `llm_requests` columns and calls
:func:`price_staged` once before loading them. Pricing is one SQL statement over the staged
table (no Python loop over rows), so it costs the same for ten rows or ten million.

What the token columns mean (connectors must split them this way before calling us)
----------------------------------------------------------------------------------
* ``input_tokens``: fresh, *uncached* input only. OpenAI's ``input_tokens`` include the cached
  ones: subtract ``input_cached_tokens``. Anthropic and Langfuse report uncached input apart.
* ``cached_input_tokens``: cache reads. ``cache_write_tokens``: cache creation, all of it
  (Anthropic 5-minute plus 1-hour). A connector that knows the 1-hour part may stage an extra
  column ``cache_write_1h_tokens`` (not stored in `llm_requests`): that part of
  ``cache_write_tokens`` is priced at the 1-hour write price, the rest at the 5-minute one.
* ``output_tokens``: *all* billed output, reasoning/thinking tokens included (OpenAI's
  ``output_tokens`` and Anthropic's already include them; a source that reports reasoning
  beside output, such as Gemini's ``thoughtsTokenCount``, must add it in). ``reasoning_tokens``
  is the part of ``output_tokens`` that was reasoning: informational, unless the model has a
  reasoning price, in which case that part is priced at it and the rest at the output price,
  never both (reasoning is capped at ``output_tokens``).
* ``requests``: how many requests the row stands for (1 for a per-request row, NULL read as 1).

Pricing rules (all per token, USD, DECIMAL(38,18); the result is rounded to MONEY's 10 places)
--------------------------------------------------------------------------------------------
* Which price: the model's price valid on ``period_start``'s date (``valid_from`` ≤ date <
  ``valid_to``; NULL bounds are open). Among matching rows: an exact model name beats the base
  model's price (below); the row's own provider beats another provider's price for the same
  model (e.g. Azure OpenAI or Bedrock falls back to OpenAI's or Anthropic's list price when the
  map has none of its own); an ``override`` (our negotiated prices CSV) beats ``litellm``; then
  the latest ``valid_from``.
* Model names are compared lower-cased without provider prefixes (``openai/gpt-4o``,
  ``vertex_ai/…``, Bedrock's ``us.anthropic.…-v1:0``). A dated snapshot (``gpt-4o-2024-08-06``,
  ``claude-sonnet-4-20250514``, ``claude-3-5-sonnet@20240620``, ``…-latest``) falls back to the
  base model's price (``gpt-4o``) only when no price exists for the snapshot itself: some
  snapshots have their own price (``gpt-4o-2024-05-13`` costs more than ``gpt-4o``). Last
  resort, when neither exists: another snapshot of the same base model, the newest one (a
  bare ``claude-3-5-sonnet`` or ``claude-3-5-sonnet-latest`` takes
  ``claude-3-5-sonnet-20241022``'s price when the map lists only dated names).
* Cached reads at the cached price; when the map has no cached price, at the input price
  (the model offers no cache discount). Cache writes at the cache-write price, else the input
  price; the 1-hour part at the 1-hour price, else the 5-minute one.
* ``service_tier``: ``batch`` (and ``flex``, which OpenAI prices like batch) uses the batch
  input/output prices, ``priority`` the priority ones; without a tier price the standard price
  is used (an upper bound for batch). Cached reads and cache writes keep their standard price
  in every tier: the prices table has no per-tier cache columns.
* Long context: when a *single request's* total input (fresh + cached + cache write) exceeds
  the model's ``long_context_threshold``, its fresh input and output use the above-threshold
  prices (and take precedence over the tier prices). A row standing for several requests
  (``requests`` > 1, e.g. an hourly or daily API usage bucket) cannot tell which request was
  long, so it is priced at the standard tier: for aggregated buckets our price is a lower bound
  when long requests occurred. Cached reads and writes stay at their standard price (the table
  has no above-threshold cache columns).
* ``per_request`` (a fixed price per call) times ``requests``.
* A gateway cache hit (``cache_hit`` true: no provider call was made) costs 0.
* Prices come from the `prices` table (``finops ingest prices``); while it is empty, from the
  bundled LiteLLM snapshot (:data:`BUNDLED_SNAPSHOT`), so a first load is priced at list prices.
* No price for the model, or a price missing for a kind of token the row used (e.g. output
  tokens on a model that only has an input price) → ``priced_cost`` NULL.

Loading prices (``finops ingest prices``)
---------------------------------------
* LiteLLM's ``model_prices_and_context_window.json``: every entry with a per-token input or
  output price (others, e.g. per-image or per-second, are counted as skipped). Numbers are read
  as exact decimals (``2.5e-06`` → 0.0000025), ``litellm_provider`` kept as ``provider``, no
  validity dates (a map is today's list price: give history in the overrides CSV). Fields:
  input_cost_per_token, cache_read_input_token_cost, cache_creation_input_token_cost,
  cache_creation_input_token_cost_above_1hr, output_cost_per_token,
  output_cost_per_reasoning_token, input/output_cost_per_token_batches and _priority, and the
  lowest input/output_cost_per_token_above_<N>k_tokens tier (threshold N×1000). Per-tier cache
  prices (``cache_read_input_token_cost_priority``, ``…_above_200k_tokens``) and ``_flex``
  prices have no column and are not loaded.
* Our overrides CSV (negotiated prices): columns provider, model, then any of input,
  cached_input, cache_write, cache_write_1h, output, reasoning, input_batch, output_batch,
  input_priority, output_priority, input_above_threshold, output_above_threshold in USD *per
  1M tokens* (up to 12 decimals, divided by 10^6 exactly into DECIMAL(38,18)),
  long_context_threshold (tokens), per_request (USD per request), valid_from / valid_to
  (YYYY-MM-DD, valid_to exclusive, empty = open) and currency (USD only). Rows whose validity
  overlaps another row of the same provider and model are quarantined, as are bad numbers and
  dates, each with its row number and reason.
* Each file is one load that replaces, for each (price source, provider, model) it holds,
  the rows loaded before: reloading never duplicates, and a CSV is a model's whole history.

Then ``cost`` = ``reported_cost`` when the source reported one in USD (``cost_currency`` USD
or NULL) and ``cost_source`` = 'reported'; else ``cost`` = ``priced_cost`` and ``cost_source``
= 'priced'; with no price ``cost`` is NULL and ``cost_source`` 'unpriced': never a silent 0.
``cost`` is always USD; ``cost_currency`` keeps the currency of ``reported_cost`` (set to USD
when the row has none). A cost reported in another currency is kept in ``reported_cost`` but
not used as ``cost``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import decimal
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl
import pyarrow as pa

from connectors.files import expand, round_to_money, sql_literal
from finops.exceptions import SourceError
from finops.warehouse import (
    MONEY,
    PRICES_COLUMNS,
    TOKEN_PRICE,
    LoadBatch,
    LoadResult,
    SourceFile,
    Warehouse,
)
from finops.warehouse.keys import resolved_prices_sql

# Columns price_staged reads; any that a connector did not stage are read as NULL.
_INPUT_COLUMNS: dict[str, str] = {
    "provider": "VARCHAR",
    "model": "VARCHAR",
    "period_start": "TIMESTAMP",
    "service_tier": "VARCHAR",
    "requests": "BIGINT",
    "input_tokens": "BIGINT",
    "cached_input_tokens": "BIGINT",
    "cache_write_tokens": "BIGINT",
    "cache_write_1h_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "reasoning_tokens": "BIGINT",
    "cache_hit": "BOOLEAN",
    "reported_cost": MONEY,
    "cost_currency": "VARCHAR",
}
_OUTPUT_COLUMNS = ("priced_cost", "cost", "cost_source")


def price_staged(batch: LoadBatch, table: str) -> None:
    """Price the staged ``llm_requests`` rows in temp table ``table``, in place.

    Sets ``priced_cost`` (our price of the tokens, USD; NULL when the model has no price),
    ``cost`` (the reported USD cost, else ``priced_cost``) and ``cost_source`` ('reported',
    'priced' or 'unpriced'), adding those columns if the table lacks them. Columns the rules
    read (see the module docstring) that are not staged count as NULL. Rows come back in
    another order; load them ``BY NAME``.
    """
    present = {row[0] for row in batch.execute(f'DESCRIBE "{table}"').fetchall()}

    def col(name: str) -> str:
        return f's."{name}"' if name in present else f"CAST(NULL AS {_INPUT_COLUMNS[name]})"

    def tokens(name: str) -> str:
        return f"coalesce(CAST({col(name)} AS BIGINT), 0)"

    def part(count: str, price: str) -> str:
        # A token kind the row did not use costs 0 even without a price; one it used needs a price.
        return f"CASE WHEN {count} = 0 THEN 0 ELSE {count} * {price} END"

    day = f"CAST({col('period_start')} AS DATE)"
    total_input = f"({tokens('input_tokens')} + {tokens('cached_input_tokens')} + {tokens('cache_write_tokens')})"
    requests = f"coalesce(CAST({col('requests')} AS BIGINT), 1)"
    long_context = (
        f"(r.long_context_threshold IS NOT NULL AND {requests} = 1 AND {total_input} > r.long_context_threshold)"
    )
    tier = (
        f"CASE lower(coalesce({col('service_tier')}, '')) WHEN 'batch' THEN 'batch' WHEN 'flex' THEN 'batch'"
        " WHEN 'priority' THEN 'priority' ELSE 'standard' END"
    )
    input_price = (
        f"CASE WHEN {long_context} AND r.input_above_threshold IS NOT NULL THEN r.input_above_threshold"
        f" WHEN {tier} = 'batch' THEN coalesce(r.input_batch, r.input)"
        f" WHEN {tier} = 'priority' THEN coalesce(r.input_priority, r.input) ELSE r.input END"
    )
    output_price = (
        f"CASE WHEN {long_context} AND r.output_above_threshold IS NOT NULL THEN r.output_above_threshold"
        f" WHEN {tier} = 'batch' THEN coalesce(r.output_batch, r.output)"
        f" WHEN {tier} = 'priority' THEN coalesce(r.output_priority, r.output) ELSE r.output END"
    )
    cache_write_5m_price = "coalesce(r.cache_write, r.input)"
    cache_write_1h_price = f"coalesce(r.cache_write_1h, {cache_write_5m_price})"
    cache_write_1h = f"least({tokens('cache_write_1h_tokens')}, {tokens('cache_write_tokens')})"
    reasoning = f"least({tokens('reasoning_tokens')}, {tokens('output_tokens')})"
    output_without_reasoning = f"({tokens('output_tokens')} - {reasoning})"
    cache_write_5m = f"({tokens('cache_write_tokens')} - {cache_write_1h})"
    output_cost = (
        f"CASE WHEN r.reasoning IS NULL THEN {part(tokens('output_tokens'), output_price)}"
        f" ELSE {part(output_without_reasoning, output_price)}"
        f" + {part(reasoning, 'r.reasoning')} END"
    )
    exact = (  # DECIMAL(38, 18): rounded to MONEY once, after the parts are added
        f"CASE WHEN r.model_key IS NULL THEN NULL"
        f" WHEN coalesce(TRY_CAST({col('cache_hit')} AS BOOLEAN), false) THEN 0"
        f" ELSE {part(tokens('input_tokens'), input_price)}"
        f" + {part(tokens('cached_input_tokens'), 'coalesce(r.cached_input, r.input)')}"
        f" + {part(cache_write_5m, cache_write_5m_price)}"
        f" + {part(cache_write_1h, cache_write_1h_price)}"
        f" + {output_cost}"
        f" + coalesce(r.per_request, 0) * {requests} END"
    )
    reported_usd = (
        f"({col('reported_cost')} IS NOT NULL AND upper(coalesce({col('cost_currency')}, 'USD')) = 'USD')"
    )

    resolved = resolved_prices_sql(table, col, _price_relation(batch))
    keep = ", ".join(f'"{c}"' for c in _OUTPUT_COLUMNS + ("cost_currency",) if c in present)
    exclude = f" EXCLUDE ({keep})" if keep else ""
    reported = "reported_cost" in present
    if reported:
        cost = f"CAST(CASE WHEN _reported_usd THEN reported_cost ELSE priced_cost END AS {MONEY})"
        source = "CASE WHEN _reported_usd THEN 'reported' WHEN priced_cost IS NOT NULL THEN 'priced' ELSE 'unpriced' END"
    else:
        cost = "priced_cost"
        source = "CASE WHEN priced_cost IS NOT NULL THEN 'priced' ELSE 'unpriced' END"
    batch.execute(
        f"""CREATE OR REPLACE TEMP TABLE "{table}" AS
        WITH resolved AS ({resolved}),
        exact AS (
            SELECT s.*{exclude},
                coalesce({col('cost_currency')}, 'USD') AS cost_currency,
                CAST({exact} AS {TOKEN_PRICE}) AS _priced_exact
                {f", {reported_usd} AS _reported_usd" if reported else ""}
            FROM "{table}" AS s
            LEFT JOIN resolved AS r
              ON r.provider IS NOT DISTINCT FROM {col('provider')}
             AND r.model IS NOT DISTINCT FROM {col('model')}
             AND r.day IS NOT DISTINCT FROM {day}
        ),
        priced AS (SELECT * EXCLUDE (_priced_exact), {round_to_money('_priced_exact')} AS priced_cost FROM exact)
        SELECT * {"EXCLUDE (_reported_usd)" if reported else ""}, {cost} AS cost, {source} AS cost_source
        FROM priced"""
    )


def _price_relation(batch: LoadBatch) -> str:
    """SQL naming the prices to use: the `prices` table, or the bundled snapshot while it is empty."""
    columns = ", ".join(f'"{c}"' for c in PRICES_COLUMNS)
    if batch.execute("SELECT count(*) FROM prices").fetchone()[0]:
        return f"(SELECT {columns} FROM prices)"
    _stage_litellm(batch.con, BUNDLED_SNAPSHOT, "_bundled_prices")
    columns = ", ".join(
        f'CAST(NULL AS VARCHAR) AS "{c}"' if c == "x_Source" else f'CAST(NULL AS BIGINT) AS "{c}"' if c == "x_BatchId"
        else f'"{c}"' for c in PRICES_COLUMNS
    )
    return f"(SELECT {columns} FROM _bundled_prices WHERE reason IS NULL)"


# -- loading prices --------------------------------------------------------------------------

SOURCE_KIND = "prices"
BUNDLED_SNAPSHOT = Path(__file__).resolve().parent.parent / "finops" / "data" / "litellm_prices_snapshot.json"
"""A small LiteLLM price map shipped with finops (OpenAI, Anthropic, Gemini list prices)."""

PriceFormat = Literal["litellm", "csv"]
ProgressCallback = Callable[[str, int, int], None]
"""progress(description, completed, total): called as files are read."""

PRICE_COLUMNS = (
    "input",
    "cached_input",
    "cache_write",
    "cache_write_1h",
    "output",
    "reasoning",
    "input_batch",
    "output_batch",
    "input_priority",
    "output_priority",
    "input_above_threshold",
    "output_above_threshold",
)
"""The per-token price columns of `prices` (TOKEN_PRICE)."""

# LiteLLM field → `prices` column. The long-context fields (input/output_cost_per_token_above_
# <N>k_tokens) are read separately: the lowest threshold N the entry lists is kept.
LITELLM_FIELDS: dict[str, str] = {
    "input_cost_per_token": "input",
    "cache_read_input_token_cost": "cached_input",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "output_cost_per_token": "output",
    "output_cost_per_reasoning_token": "reasoning",
    "input_cost_per_token_batches": "input_batch",
    "output_cost_per_token_batches": "output_batch",
    "input_cost_per_token_priority": "input_priority",
    "output_cost_per_token_priority": "output_priority",
}
_LONG_CONTEXT_FIELD = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")

CSV_REQUIRED_COLUMNS = ("provider", "model")
CSV_OPTIONAL_COLUMNS = (
    *(c for c in PRICE_COLUMNS if not c.endswith("_above_threshold")),
    "long_context_threshold",
    "input_above_threshold",
    "output_above_threshold",
    "per_request",
    "valid_from",
    "valid_to",
    "currency",
)
CSV_PER_MILLION_DECIMALS = 12
"""A CSV price per 1M tokens may have up to 12 decimals: divided by 10^6 it fits DECIMAL(38,18) exactly."""


@dataclasses.dataclass(frozen=True)
class PriceLoad:
    """One price file loaded: the batch's counts, and the first quarantined entries."""

    path: Path
    format: PriceFormat
    result: LoadResult
    quarantine_sample: pl.DataFrame
    skipped_entries: int = 0  # LiteLLM entries without a per-token price (images, audio seconds, …)


def load_prices(
    wh: Warehouse,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    format: PriceFormat | None = None,
    progress: ProgressCallback | None = None,
) -> list[PriceLoad]:
    """Load token prices into `prices`: LiteLLM price maps (JSON) or our overrides CSV.

    With no ``paths``, the bundled snapshot (:data:`BUNDLED_SNAPSHOT`). ``format`` defaults to
    the file's extension (``.json`` → litellm, ``.csv`` → csv). Each file is one batch that
    replaces, for every (price source, provider, model) it holds, what the warehouse had: a new
    LiteLLM map updates the models it lists, and an overrides CSV is a model's whole price
    history (all its validity periods). Later files win over earlier ones.
    """
    files = expand(paths) if paths else [BUNDLED_SNAPSHOT]
    report = progress or (lambda *_: None)
    loads = []
    for index, path in enumerate(files):
        fmt = format or _detect_price_format(path)
        report(f"prices {path.name}", index, len(files))
        if fmt == "litellm":
            loads.append(_load_litellm(wh, path))
        elif fmt == "csv":
            loads.append(_load_overrides_csv(wh, path))
        else:
            raise SourceError(f"unknown price format {fmt!r} for {path}", hint="use --format litellm or --format csv")
    report("prices", len(files), len(files))
    return loads


def list_prices(wh: Warehouse, model: str | None = None) -> pl.DataFrame:
    """The `prices` table in USD per 1M tokens, optionally for models whose name contains ``model``.

    Columns: provider, model, price_source, valid_from, valid_to, then each price per 1M tokens
    (NULL: no price of that kind), long_context_threshold, per_request.
    """
    per_million = ", ".join(f'CAST("{c}" * 1000000 AS DECIMAL(38, 12)) AS "{c}"' for c in PRICE_COLUMNS)
    where, params = ("", [])
    if model:
        where, params = ("WHERE model ILIKE ?", [f"%{model}%"])
    return wh.query(
        f"SELECT provider, model, price_source, valid_from, valid_to, {per_million},"
        f" long_context_threshold, per_request, currency FROM prices {where}"
        " ORDER BY provider, model, price_source, valid_from NULLS FIRST",
        params,
    )


def _detect_price_format(path: Path) -> PriceFormat:
    name = path.name.lower()
    if name.endswith(".json"):
        return "litellm"
    if name.endswith(".csv"):
        return "csv"
    raise SourceError(
        f"cannot tell the price format of {path} from its name",
        hint="name it .json (LiteLLM price map) or .csv (overrides), or pass --format",
    )


def _read_litellm(path: Path) -> tuple[pa.Table, int]:
    """The token-priced entries of a LiteLLM map as text columns (exact decimals), and how many
    entries had no per-token price."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"), parse_float=decimal.Decimal)
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read LiteLLM price map {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"LiteLLM price map {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            hint="download model_prices_and_context_window.json again",
        ) from exc
    if not isinstance(document, dict):
        raise SourceError(
            f"LiteLLM price map {path} is a JSON {type(document).__name__}, not an object of models",
            hint="expected the format of LiteLLM's model_prices_and_context_window.json",
        )
    columns: dict[str, list[Any]] = {
        name: [] for name in ("row_number", "model", "provider", "mode", "problem", *LITELLM_FIELDS.values(),
                              "long_context_threshold", "input_above_threshold", "output_above_threshold")
    }
    skipped = 0
    for row_number, (key, entry) in enumerate(document.items(), start=1):
        if key == "sample_spec":
            continue
        problem = None
        if not isinstance(entry, dict):
            problem = f"entry is a JSON {type(entry).__name__}, not an object"
            entry = {}
        elif not any(entry.get(field) is not None for field in ("input_cost_per_token", "output_cost_per_token")):
            skipped += 1
            continue
        thresholds = sorted(int(m[1]) for f in entry if (m := _LONG_CONTEXT_FIELD.match(f)))
        tier = f"_above_{thresholds[0]}k_tokens" if thresholds else None
        values = {column: entry.get(field) for field, column in LITELLM_FIELDS.items()}
        values["long_context_threshold"] = thresholds[0] * 1000 if thresholds else None
        values["input_above_threshold"] = entry.get(f"input_cost_per_token{tier}") if tier else None
        values["output_above_threshold"] = entry.get(f"output_cost_per_token{tier}") if tier else None
        columns["row_number"].append(row_number)
        columns["model"].append(key)
        provider = entry.get("litellm_provider")
        columns["provider"].append(provider if isinstance(provider, str) else None)
        mode = entry.get("mode")
        columns["mode"].append(mode if isinstance(mode, str) else None)
        columns["problem"].append(problem)
        for column, value in values.items():
            columns[column].append(_decimal_text(value))
    table = pa.table({name: pa.array(values, pa.int64() if name == "row_number" else pa.string())
                      for name, values in columns.items()})
    return table, skipped


def _decimal_text(value: Any) -> str | None:
    """A JSON number as exact decimal text (``2.5e-06`` → ``0.0000025``); other values as their text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, decimal.Decimal)):
        return format(decimal.Decimal(value), "f")
    if isinstance(value, str):
        with contextlib.suppress(decimal.InvalidOperation):
            return format(decimal.Decimal(value.strip()), "f")
        return value
    return json.dumps(value, default=str)


def _stage_litellm(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> tuple[int, int]:
    """Stage a LiteLLM map's token-priced entries as ``name`` with `prices` columns plus
    ``row_number`` and ``reason`` (NULL when the entry is good). Returns (entries, skipped)."""
    table, skipped = _read_litellm(path)
    view = f"{name}_raw"
    con.register(view, table)
    try:
        casts = ", ".join(f'TRY_CAST("{c}" AS {TOKEN_PRICE}) AS "{c}"' for c in PRICE_COLUMNS)
        checks = " ".join(
            f"WHEN \"{c}\" IS NOT NULL AND (TRY_CAST(\"{c}\" AS {TOKEN_PRICE}) IS NULL"
            f" OR TRY_CAST(\"{c}\" AS {TOKEN_PRICE}) < 0) THEN '{_litellm_field(c)} is not a price: ' || \"{c}\""
            for c in PRICE_COLUMNS
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE "{name}" AS
            SELECT row_number, model, coalesce(provider, '') AS provider, mode, {casts},
                CAST(long_context_threshold AS BIGINT) AS long_context_threshold,
                CAST(NULL AS {MONEY}) AS per_request,
                CAST(NULL AS DATE) AS valid_from, CAST(NULL AS DATE) AS valid_to,
                'USD' AS currency, 'litellm' AS price_source,
                CASE WHEN problem IS NOT NULL THEN problem
                     WHEN provider IS NULL THEN 'litellm_provider is missing'
                     {checks} END AS reason
            FROM "{view}\""""
        )
    finally:
        con.unregister(view)
    return table.num_rows, skipped


def _litellm_field(column: str) -> str:
    for field, target in LITELLM_FIELDS.items():
        if target == column:
            return field
    return f"{column.replace('_above_threshold', '')}_cost_per_token_above_<N>k_tokens"


def _load_litellm(wh: Warehouse, path: Path) -> PriceLoad:
    with wh.load(SOURCE_KIND, str(path), [SourceFile.of(path)]) as batch:
        read, skipped = _stage_litellm(batch.con, path, "_litellm_prices")
        result = _replace_prices(batch, "_litellm_prices", path, read)
        sample = batch.quarantine_sample()
    return PriceLoad(path, "litellm", result, sample, skipped)


def _load_overrides_csv(wh: Warehouse, path: Path) -> PriceLoad:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"cannot read price overrides {path}: {exc}") from exc
    names = [h.strip().lower() for h in header]
    missing = [c for c in CSV_REQUIRED_COLUMNS if c not in names]
    unknown = [h for h, n in zip(header, names) if n not in CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS]
    if missing or unknown:
        problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        )
        raise SourceError(
            f"price overrides {path}: {'; '.join(problems)}",
            hint="columns: provider, model, then any of " + ", ".join(CSV_OPTIONAL_COLUMNS)
            + " (prices in USD per 1M tokens)",
        )

    def raw(column: str) -> str:
        if column not in names:
            return "CAST(NULL AS VARCHAR)"
        return f"nullif(trim(\"{header[names.index(column)]}\"), '')"

    number = f"'^[0-9]+(\\.[0-9]{{0,{CSV_PER_MILLION_DECIMALS}}})?$'"
    price_columns = [c for c in PRICE_COLUMNS]
    per_token = ", ".join(
        f"CAST(CAST({raw(c)} AS DECIMAL(38, {CSV_PER_MILLION_DECIMALS})) * CAST('0.000001' AS DECIMAL(7, 6))"
        f" AS {TOKEN_PRICE}) AS \"{c}\""
        if c in names else f"CAST(NULL AS {TOKEN_PRICE}) AS \"{c}\""
        for c in price_columns
    )
    checks = " ".join(
        f"WHEN NOT regexp_full_match({raw(c)}, {number}) THEN"
        f" '{c} is not a price per 1M tokens (a non-negative number, up to {CSV_PER_MILLION_DECIMALS} decimals): ' || {raw(c)}"
        for c in (*price_columns, "per_request") if c in names
    )
    any_price = " OR ".join(f"{raw(c)} IS NOT NULL" for c in (*price_columns, "per_request") if c in names) or "false"
    columns_spec = "{" + ", ".join(f"{sql_literal(h)}: 'VARCHAR'" for h in header) + "}"
    with wh.load(SOURCE_KIND, str(path), [SourceFile.of(path)]) as batch:
        try:
            batch.con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _override_rows AS
                SELECT row_number() OVER () AS row_number, *
                FROM read_csv({sql_literal(str(path))}, header = true, delim = ',', quote = '"', escape = '"',
                              columns = {columns_spec}, strict_mode = true)"""
            )
        except duckdb.Error as exc:
            raise SourceError(f"cannot read price overrides {path}: {_first_line(exc)}") from exc
        batch.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _override_checked AS
            SELECT row_number, {raw('provider')} AS provider, {raw('model')} AS model,
                CASE WHEN {raw('provider')} IS NULL THEN 'provider is empty'
                     WHEN {raw('model')} IS NULL THEN 'model is empty'
                     WHEN NOT ({any_price}) THEN 'no price given'
                     {checks}
                     WHEN NOT regexp_full_match({raw('long_context_threshold')}, '^[0-9]+$')
                         THEN 'long_context_threshold is not a whole number of tokens: ' || {raw('long_context_threshold')}
                     WHEN {raw('valid_from')} IS NOT NULL AND TRY_CAST({raw('valid_from')} AS DATE) IS NULL
                         THEN 'valid_from is not a date (YYYY-MM-DD): ' || {raw('valid_from')}
                     WHEN {raw('valid_to')} IS NOT NULL AND TRY_CAST({raw('valid_to')} AS DATE) IS NULL
                         THEN 'valid_to is not a date (YYYY-MM-DD): ' || {raw('valid_to')}
                     WHEN TRY_CAST({raw('valid_to')} AS DATE) <= TRY_CAST({raw('valid_from')} AS DATE)
                         THEN 'valid_to is not after valid_from'
                     WHEN upper(coalesce({raw('currency')}, 'USD')) <> 'USD'
                         THEN 'currency ' || {raw('currency')} || ' is not supported: give prices in USD'
                END AS reason
            FROM _override_rows"""
        )
        batch.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _override_prices AS
            WITH typed AS (
                SELECT c.row_number, c.provider, c.model, {per_token},
                    CAST({raw('long_context_threshold')} AS BIGINT) AS long_context_threshold,
                    CAST({raw('per_request')} AS {MONEY}) AS per_request,
                    CAST({raw('valid_from')} AS DATE) AS valid_from,
                    CAST({raw('valid_to')} AS DATE) AS valid_to,
                    'USD' AS currency, 'override' AS price_source, c.reason
                FROM _override_checked AS c JOIN _override_rows USING (row_number)
                WHERE c.reason IS NULL
            ),
            overlapping AS (
                SELECT a.row_number, min(b.row_number) AS other
                FROM typed AS a JOIN typed AS b
                  ON a.provider = b.provider AND a.model = b.model AND a.row_number <> b.row_number
                 AND coalesce(a.valid_from, DATE '0001-01-01') < coalesce(b.valid_to, DATE '9999-12-31')
                 AND coalesce(b.valid_from, DATE '0001-01-01') < coalesce(a.valid_to, DATE '9999-12-31')
                GROUP BY a.row_number
            )
            SELECT typed.* REPLACE (
                CASE WHEN o.other IS NOT NULL
                     THEN 'validity overlaps row ' || o.other || ' of the same provider and model' END AS reason)
            FROM typed LEFT JOIN overlapping AS o USING (row_number)
            UNION ALL BY NAME
            SELECT row_number, provider, model, reason FROM _override_checked WHERE reason IS NOT NULL"""
        )
        read = batch.execute("SELECT count(*) FROM _override_rows").fetchone()[0]
        result = _replace_prices(batch, "_override_prices", path, read)
        sample = batch.quarantine_sample()
    return PriceLoad(path, "csv", result, sample)


def _replace_prices(batch: LoadBatch, staged: str, path: Path, rows_read: int) -> LoadResult:
    columns = ", ".join(f'"{c}"' for c in PRICES_COLUMNS if c not in ("x_Source", "x_BatchId"))
    return batch.replace_partitions(
        "prices",
        f"SELECT {columns}, '{SOURCE_KIND}' AS x_Source, {batch.batch_id} AS x_BatchId"
        f' FROM "{staged}" WHERE reason IS NULL',
        partition_by=["price_source", "provider", "model"],
        rows_read=rows_read,
        quarantine_sql=(
            f"SELECT {sql_literal(str(path))} AS file, row_number, NULL AS column_name, reason,"
            " to_json({'provider': provider, 'model': model}) AS raw_row"
            f' FROM "{staged}" WHERE reason IS NOT NULL'
        ),
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
