"""Larkspur Labs' gateway and model-API usage: LiteLLM spend logs, OpenAI usage pages, agent traces.

The cloud bills (:mod:`finops.demo.company`) say what each managed model cost; this module
writes what the company's own gateway, the OpenAI usage API and its agents' traces saw of the
same traffic, for the billing months 2026-07 .. 2026-09, so that ``finops demo`` can fill
`llm_requests` and :func:`finops.analyses.reconcile.gateway_vs_bill` can line them up with the bill.

Everything is derived from the sample company's own daily series (the very numbers its bill
lines were made from: :func:`finops.demo.company._usage` with the same seed), so the same
seed gives the same bytes, and the gateway agrees with the bill by construction:

=====================  ==================================================  ============================
what                   file(s) under ``<out>/gateway/``                    loaded by
=====================  ==================================================  ============================
LiteLLM spend logs     ``litellm/spend_logs.parquet`` (the table's rows)   kind ``litellm`` from a throw-away
                       and ``litellm/create_table.sql``                    Postgres, else ``litellm-file``
OpenAI usage API       ``openai/{completions,costs}_pageN.json``           kind ``openai-usage-files``
OTel agent traces      ``otel/support-ticket-agent.jsonl.gz`` (OTLP JSON)  kind ``otel``
=====================  ==================================================  ============================

LiteLLM (the gateway carries the Bedrock, Azure OpenAI and Vertex AI traffic of Product,
Customer Support, Marketing and Research): per route (:data:`ROUTES`) and day, the bill's
input and output token counts are split over requests (``calls_per_day`` on an average day,
more on busy days: the runaway agent's days have ~6× the calls). A request's ``spend`` is its
tokens at the *billed* unit price (the company configured LiteLLM with its negotiated prices,
e.g. the Azure EA discount), so per provider, model and month the gateway equals the bill to
the micro-dollar, except where stated:

* Customer Support's triage (Bedrock Claude 3.5 Haiku) runs a nightly backfill straight
  against Bedrock: the gateway sees :data:`TRIAGE_COVERAGE` (96 %) of its tokens, so the bill
  is ~4 % above the gateway for that model (≈ 1-2 % of the whole Bedrock bill).
* Bills round each line to the micro-dollar; the gateway's per-request spend is exact.
* Marketing's Imagen 4 images are generated in Vertex AI Studio, not through the gateway (and
  :func:`finops.analyses.reconcile.gateway_vs_bill` counts only Vertex token SKUs on the bill side).
* Cached tokens: ``metadata.usage_object.prompt_tokens_details.cached_tokens`` reports the
  share of the prompt served from the provider's cache (inside prompt_tokens). The sample's
  bills meter no cache discount, so the spend charges them as input, as the bill did.

Sample requests are large (a request stands for a burst of calls) so that three months stay a
few hundred thousand rows at most; ``messages`` and ``response`` hold a fixed placeholder.

OpenAI: the usage pages (completions, grouped by project, model, key and user) carry the bill's
tokens of the OpenAI API series (cached input inside ``input_tokens``, as OpenAI reports it), and
the cost pages carry each bill line's amount as ``"<model>, <kind>"`` line items, so the usage
API's cost equals the OpenAI invoice (gpt-image-1 has no completions usage: its costs load as
cost-only rows).

OTel: the Customer Support ticket agent's runs of 2026-08-10 .. 2026-08-16 (the runaway week)
as OTLP JSON traces: an ``invoke_agent`` root, ``execute_tool`` spans and ``chat`` spans against
Azure gpt-4o, one chat span per LiteLLM request of the run (same tokens, same session id as
task). On 2026-08-12 and 2026-08-13 a few runs looped: :data:`RUNAWAY_MIN_CALLS`+ calls each.
The traces cover that week only: compare them with the bill by task, not by month. The looping
runs are the ground truth of agent anomaly detection: :func:`runaway_tasks`, written to
``gateway/runaway_tasks.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from finops.demo import company

WINDOW_START = date(2026, 7, 1)
WINDOW_END = date(2026, 10, 1)  # exclusive
TRACE_START = date(2026, 8, 10)
TRACE_END = date(2026, 8, 17)  # exclusive
TRIAGE_COVERAGE = 0.96
RUNAWAY_MIN_CALLS = 40
PICO = 10**12  # spend is computed in integer pico-dollars: exact, then written as decimal text
PLACEHOLDER = '{"note": "sample company: content is never stored"}'
OUTPUT_FOLDER = "gateway"
PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
PG_USER = "finops"


@dataclasses.dataclass(frozen=True)
class Route:
    """How one of the company's traffic series reaches its model through the LiteLLM gateway."""

    traffic: str  # the series' traffic key (or series key when it has none)
    provider: str  # custom_llm_provider
    model: str  # model as LiteLLM logs it
    model_group: str  # the alias clients ask for
    teams: tuple[tuple[str, str, float], ...]  # (team_id, team alias, share of requests)
    app: str
    call_type: str = "acompletion"
    coverage: float = 1.0  # share of the bill's usage that goes through the gateway
    cached_share: float = 0.0  # share of prompt tokens served from cache (reported, not discounted)
    agent_id: str | None = None
    calls_per_day: int = 120


_PRODUCT = ("team-product", "product", 1.0)
_SUPPORT = ("team-support", "customer-support", 1.0)
_MARKETING = ("team-marketing", "marketing", 1.0)
ROUTES: tuple[Route, ...] = (
    Route("product-assistant", "bedrock", "bedrock/anthropic.claude-sonnet-4-20250514-v1:0", "assistant-sonnet",
          (_PRODUCT,), "chat-assistant", cached_share=0.2, calls_per_day=160),
    Route("aws-shared-product-embeddings", "bedrock", "bedrock/amazon.titan-embed-text-v2:0", "embeddings",
          (_PRODUCT,), "chat-assistant", call_type="aembedding", calls_per_day=60),
    Route("support-triage", "bedrock", "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0", "triage-haiku",
          (_SUPPORT,), "ticket-triage", coverage=TRIAGE_COVERAGE, calls_per_day=120),
    Route("mktg-content", "bedrock", "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0", "content-haiku",
          (_MARKETING,), "content-generator", calls_per_day=60),
    Route("support-agent", "azure", "azure/gpt-4o-2024-05-13", "gpt-4o", (_SUPPORT,), "ticket-agent",
          cached_share=0.3, agent_id="support-ticket-agent", calls_per_day=150),
    Route("support-router", "azure", "azure/gpt-4o-mini-2024-07-18", "gpt-4o-mini", (_SUPPORT,), "ticket-router",
          calls_per_day=80),
    Route("gcp-gemini-pro", "vertex_ai", "vertex_ai/gemini-2.5-pro", "gemini-pro",
          (("team-product", "product", 0.8), ("team-research", "research", 0.2)), "rerank-and-answer",
          cached_share=0.1, calls_per_day=120),
    Route("gcp-gemini-flash", "vertex_ai", "vertex_ai/gemini-2.5-flash", "gemini-flash", (_PRODUCT,), "chat-assistant",
          calls_per_day=80),
    Route("gcp-mktg-flash", "vertex_ai", "vertex_ai/gemini-2.5-flash", "gemini-flash", (_MARKETING,), "content-studio",
          calls_per_day=40),
)  # fmt: skip
"""Every route the gateway carries. Research's traffic is a fifth of Gemini 2.5 Pro."""

CREATE_TABLE_SQL = """\
CREATE TABLE IF NOT EXISTS "LiteLLM_SpendLogs" (
    request_id TEXT NOT NULL,
    call_type TEXT NOT NULL,
    api_key TEXT NOT NULL DEFAULT '',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    "startTime" TIMESTAMP(3) NOT NULL,
    "endTime" TIMESTAMP(3) NOT NULL,
    "completionStartTime" TIMESTAMP(3),
    model TEXT NOT NULL DEFAULT '',
    model_id TEXT DEFAULT '',
    model_group TEXT DEFAULT '',
    custom_llm_provider TEXT DEFAULT '',
    api_base TEXT DEFAULT '',
    "user" TEXT DEFAULT '',
    metadata JSONB DEFAULT '{}',
    cache_hit TEXT DEFAULT '',
    cache_key TEXT DEFAULT '',
    request_tags JSONB DEFAULT '[]',
    team_id TEXT,
    organization_id TEXT,
    end_user TEXT,
    requester_ip_address TEXT,
    messages JSONB DEFAULT '{}',
    response JSONB DEFAULT '{}',
    session_id TEXT,
    status TEXT,
    mcp_namespaced_tool_name TEXT,
    agent_id TEXT,
    proxy_server_request JSONB DEFAULT '{}',
    CONSTRAINT "LiteLLM_SpendLogs_pkey" PRIMARY KEY (request_id)
);
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_startTime_idx" ON "LiteLLM_SpendLogs"("startTime");
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_startTime_request_id_idx" ON "LiteLLM_SpendLogs"("startTime", request_id);
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_session_id_idx" ON "LiteLLM_SpendLogs"(session_id);
"""
"""The LiteLLM proxy's "LiteLLM_SpendLogs" table (its Prisma schema, the columns this sample fills)."""

SPEND_LOG_COLUMNS = (
    "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
    "startTime", "endTime", "completionStartTime", "model", "model_id", "model_group", "custom_llm_provider",
    "api_base", "user", "metadata", "cache_hit", "cache_key", "request_tags", "team_id", "organization_id",
    "end_user", "requester_ip_address", "messages", "response", "session_id", "status",
    "mcp_namespaced_tool_name", "agent_id", "proxy_server_request",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class GatewayFiles:
    """What :func:`generate` wrote, and the expected totals the loads must reproduce."""

    out_dir: Path
    spend_logs: Path  # Parquet of the "LiteLLM_SpendLogs" rows
    create_table: Path
    openai_completions: list[Path]
    openai_costs: list[Path]
    otel_traces: list[Path]
    expected: pl.DataFrame  # source, provider, model, month, requests, input/output tokens, spend, billed (Decimal text)
    runaway_tasks: Path | None = None  # JSON ground truth: the looping agent runs (task_id, agent_id, day, calls)


# --------------------------------------------------------------------------------------
# The bill's own numbers
# --------------------------------------------------------------------------------------


def bill_usage(seed: int = company.SEED) -> pl.DataFrame:
    """The bill's usage rows of token series (and Imagen's images) in the window, one per series and day.

    Columns: series, traffic, provider (cloud), model (the SKU's model), direction (input,
    output, cached input, …), day, month, quantity (tokens or images, int), billed_micro
    (the bill line's BilledCost in micro-dollars), price_pico (billed price per token/image in
    pico-dollars), account (sub-account name).
    """
    usage, _ = company._usage(np.random.default_rng(seed))  # the numbers the bill lines were made from
    meta = pl.DataFrame(
        {
            "_series": [s.key for s in company.SERIES],
            "traffic": [s.traffic or s.key for s in company.SERIES],
            "model": [(s.sku.details or {}).get("Model") for s in company.SERIES],
            "direction": [(s.sku.details or {}).get("TokenType", "images") for s in company.SERIES],
            "account": [s.account for s in company.SERIES],
            "price_pico": [
                int(Decimal(s.sku.list_price) * Decimal(company.BILLING_ACCOUNTS[s.provider].contract_discount)
                    * PICO / s.sku.per_unit)
                for s in company.SERIES
            ],
        }
    )  # fmt: skip
    return (
        usage.filter((pl.col("_day") >= WINDOW_START) & (pl.col("_day") < WINDOW_END))
        .join(meta, on="_series")
        .filter(pl.col("model").is_not_null())
        .select(
            series="_series",
            traffic="traffic",
            provider="_provider",
            model="model",
            direction="direction",
            day="_day",
            month=pl.col("_day").dt.strftime("%Y-%m"),
            quantity=pl.col("_consumed") // company.MICRO,
            billed_micro="_billed",
            price_pico="price_pico",
            account="account",
        )
        .sort("series", "day")
    )


# --------------------------------------------------------------------------------------
# LiteLLM spend logs
# --------------------------------------------------------------------------------------


def _split(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` split in proportion to ``weights`` as integers that add up to it exactly."""
    if total == 0:
        return np.zeros(len(weights), dtype=np.int64)
    cumulative = np.rint(np.cumsum(weights) / weights.sum() * total).astype(np.int64)
    cumulative[-1] = total
    return np.diff(cumulative, prepend=0)


def _route_days(bill: pl.DataFrame, route: Route) -> pl.DataFrame:
    """Per day of a route: gateway input/output quantity and price per unit (pico-dollars)."""
    rows = bill.filter(pl.col("traffic") == route.traffic)
    if rows.is_empty():
        raise AssertionError(f"route {route.traffic}: no bill usage in the window")
    is_out = pl.col("direction") == "output"
    return (
        rows.group_by("day")
        .agg(
            input_bill=pl.col("quantity").filter(~is_out).sum(),
            output_bill=pl.col("quantity").filter(is_out).sum(),
            price_in=pl.col("price_pico").filter(~is_out).first(),
            price_out=pl.col("price_pico").filter(is_out).first(),
        )
        .sort("day")
        .with_columns(
            input=(pl.col("input_bill") * route.coverage).round(0).cast(pl.Int64),
            output=(pl.col("output_bill") * route.coverage).round(0).cast(pl.Int64),
            price_out=pl.col("price_out").fill_null(0),
        )
    )


def _route_requests(route: Route, days: pl.DataFrame, rng: np.random.Generator, index: int) -> pl.DataFrame:
    """The route's requests: tokens split per day over ``calls`` requests, each with a time and spend."""
    mean_input = max(days["input"].mean() or 1, 1)  # type: ignore[operator]
    parts = []
    for day, qty_in, qty_out in days.select("day", "input", "output").iter_rows():  # one pass per day, not per row
        calls = max(1, round(route.calls_per_day * qty_in / mean_input))
        weights = rng.lognormal(0.0, 0.5, calls)
        seconds = np.sort(rng.integers(6 * 3600, 22 * 3600, calls))
        parts.append(
            pl.DataFrame(
                {
                    "day": [day] * calls,
                    "seq": np.arange(calls),
                    "input": _split(qty_in, weights),
                    "output": _split(qty_out, weights * rng.lognormal(0.0, 0.3, calls)),
                    "second": seconds,
                    "team_pick": rng.random(calls),
                    "cached_pick": rng.random(calls),
                    "latency_ms": rng.integers(400, 9000, calls),
                }
            )
        )
    frame = pl.concat(parts).join(days.select("day", "price_in", "price_out"), on="day")
    team_id = pl.lit(route.teams[-1][0])
    team_alias = pl.lit(route.teams[-1][1])
    bound = 0.0
    for tid, alias, share in route.teams[:-1]:
        bound += share
        team_id = pl.when(pl.col("team_pick") < bound).then(pl.lit(tid)).otherwise(team_id)
        team_alias = pl.when(pl.col("team_pick") < bound).then(pl.lit(alias)).otherwise(team_alias)
    spend = pl.col("input") * pl.col("price_in") + pl.col("output") * pl.col("price_out")
    code = f"r{index:02d}"
    start = pl.col("day").cast(pl.Datetime("ms")) + pl.duration(seconds=pl.col("second"))
    return frame.with_columns(
        route=pl.lit(route.traffic),
        request_id=pl.format("lk-{}-{}-{}", pl.lit(code), pl.col("day").dt.strftime("%Y%m%d"),
                             pl.col("seq").cast(pl.String).str.zfill(5)),
        start=start,
        end=start + pl.duration(milliseconds=pl.col("latency_ms")),
        spend_pico=spend,
        cached=(pl.col("input") * route.cached_share * (pl.col("cached_pick") < 0.6)).floor().cast(pl.Int64),
        team_id=team_id,
        team_alias=team_alias,
    )  # fmt: skip


def _sessions(requests: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Group the agent route's requests of each day into runs (tasks); runaway days loop in a few long runs.

    On a runaway day, the calls beyond the day's normal count (the bill's factor) go to runs of
    at least :data:`RUNAWAY_MIN_CALLS` calls each.
    """
    factors = dict(zip(company.ANOMALY.days, company.ANOMALY.factors, strict=True))
    parts = []
    for (day,), rows in requests.sort("day", "seq").group_by(["day"], maintain_order=True):
        calls = rows.height
        normal = calls if day not in factors else round(calls / factors[day])
        sizes = []
        while sum(sizes) < normal:
            sizes.append(int(rng.integers(2, 7)))
        sizes[-1] -= sum(sizes) - normal
        sizes = [s for s in sizes if s > 0]
        runaway = calls - normal
        loops = max(1, runaway // (RUNAWAY_MIN_CALLS * 2)) if runaway else 0
        sizes_runaway = list(_split(runaway, np.ones(loops))) if loops else []
        labels = np.repeat(np.arange(len(sizes) + loops), [*sizes, *sizes_runaway])
        # interleave: runaway runs take the day's calls from their first call on, like a loop would
        order = rng.permutation(calls) if not loops else np.arange(calls)
        session_of = labels[order]
        parts.append(
            rows.with_columns(
                run=pl.Series(session_of),
                runaway=pl.Series(session_of >= len(sizes)),
            )
        )
    frame = pl.concat(parts)
    session = pl.format("{}{}", pl.col("day").dt.strftime("%Y%m%d"), pl.col("run").cast(pl.String).str.zfill(4))
    # a 32-hex-digit id (OTel trace id) stable from day and run
    return frame.with_columns(session_id=pl.lit("5a6e") + pl.lit("0" * 16) + session.str.zfill(12)).drop("run")


def _pico_text(pico: pl.Expr) -> pl.Expr:
    """Decimal text of an amount in pico-dollars (exact; trailing zeros dropped)."""
    whole = (pico // PICO).cast(pl.String)
    frac = (pico % PICO).cast(pl.String).str.zfill(12).str.strip_chars_end("0")
    return pl.when(frac == "").then(whole).otherwise(pl.format("{}.{}", whole, frac))


def spend_log_rows(bill: pl.DataFrame, seed: int = company.SEED) -> pl.DataFrame:
    """The "LiteLLM_SpendLogs" rows of the window (columns :data:`SPEND_LOG_COLUMNS`, JSON as text)
    plus ``_route``, ``_cached``, ``_runaway`` and ``_spend_pico`` (dropped before writing the table's file)."""
    rng = np.random.default_rng([seed, 5])
    frames = []
    for index, route in enumerate(ROUTES):
        requests = _route_requests(route, _route_days(bill, route), rng, index)
        if route.agent_id:
            requests = _sessions(requests, rng)
        else:
            requests = requests.with_columns(session_id=pl.lit(None, pl.String), runaway=pl.lit(False))
        provider, _, _ = route.model.partition("/")
        key_hash = pl.lit(company._stable_id("litellm-key", route.app, length=64))
        metadata = pl.concat_str(
            pl.lit('{"user_api_key_team_alias": "'), pl.col("team_alias"),
            pl.lit(f'", "user_api_key_alias": "{route.app}-svc", "usage_object": '
                   '{"prompt_tokens_details": {"cached_tokens": '), pl.col("cached").cast(pl.String),
            pl.lit(f'}}}}, "spend_logs_metadata": {{"project_id": "{route.app}"}}}}'),
        )  # fmt: skip
        frames.append(
            requests.select(
                request_id="request_id",
                call_type=pl.lit(route.call_type),
                api_key=key_hash,
                spend=_pico_text(pl.col("spend_pico")),
                total_tokens=(pl.col("input") + pl.col("output")).cast(pl.Int64),
                prompt_tokens=pl.col("input").cast(pl.Int64),
                completion_tokens=pl.col("output").cast(pl.Int64),
                startTime="start",
                endTime="end",
                completionStartTime=pl.col("start") + pl.duration(milliseconds=300),
                model=pl.lit(route.model),
                model_id=pl.lit(company._stable_id("deployment", route.model, length=12)),
                model_group=pl.lit(route.model_group),
                custom_llm_provider=pl.lit(provider),
                api_base=pl.lit(None, pl.String),
                user=pl.lit(f"{route.app}-svc"),
                metadata=metadata,
                cache_hit=pl.lit("False"),
                cache_key=pl.lit(""),
                request_tags=pl.lit(f'["app:{route.app}", "project:{route.app}"]'),
                team_id="team_id",
                organization_id=pl.lit("org-larkspur"),
                end_user=pl.lit(None, pl.String),
                requester_ip_address=pl.lit(None, pl.String),
                messages=pl.lit(PLACEHOLDER),
                response=pl.lit(PLACEHOLDER),
                session_id="session_id",
                status=pl.lit("success"),
                mcp_namespaced_tool_name=pl.lit(None, pl.String),
                agent_id=pl.lit(route.agent_id, pl.String),
                proxy_server_request=pl.lit(PLACEHOLDER),
                _route=pl.lit(route.traffic),
                _cached="cached",
                _runaway="runaway",
                _spend_pico="spend_pico",
            )
        )
    return pl.concat(frames).sort("startTime", "request_id")


# --------------------------------------------------------------------------------------
# OpenAI usage and costs pages
# --------------------------------------------------------------------------------------


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _micro_number(micro: int) -> float:
    """A JSON number whose text is the micro-dollar amount's exact decimal (Python prints floats shortest)."""
    return float(Decimal(micro) / company.MICRO)


def openai_pages(bill: pl.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Completions usage pages and costs pages of the OpenAI API series, as the API answers them."""
    oai = bill.filter(pl.col("provider") == "openai")
    projects = {s.name: s.id for s in company.SUB_ACCOUNTS.values() if s.provider == "openai"}
    oai = oai.with_columns(project_id=pl.col("account").replace_strict(projects))
    kind = pl.col("direction")
    usage = (
        oai.filter(~pl.col("model").str.starts_with("gpt-image"))
        .group_by("day", "project_id", "model")
        .agg(
            input_tokens=pl.col("quantity").filter(kind.is_in(["input", "cached input", "text input"])).sum(),
            input_cached_tokens=pl.col("quantity").filter(kind == "cached input").sum(),
            output_tokens=pl.col("quantity").filter(kind == "output").sum(),
        )
        .sort("day", "project_id", "model")
    )
    usage = usage.with_columns(
        num_model_requests=(pl.col("input_tokens") // 6000 + 1).cast(pl.Int64),
        api_key_id=pl.format("key_{}", pl.col("project_id").str.slice(5, 8)),
    )
    days = sorted(usage["day"].unique())
    usage_pages, cost_pages = [], []
    for first in range(0, len(days), 31):  # the Usage API's 31 daily buckets a page
        chunk = days[first : first + 31]
        buckets = []
        for day in chunk:
            results = [
                {"object": "organization.usage.completions.result", "input_tokens": r["input_tokens"],
                 "output_tokens": r["output_tokens"], "input_cached_tokens": r["input_cached_tokens"],
                 "input_audio_tokens": 0, "output_audio_tokens": 0, "num_model_requests": r["num_model_requests"],
                 "project_id": r["project_id"], "user_id": None, "api_key_id": r["api_key_id"], "model": r["model"],
                 "batch": False, "service_tier": "default"}
                for r in usage.filter(pl.col("day") == day).iter_rows(named=True)
            ]  # fmt: skip
            buckets.append({"object": "bucket", "start_time": _unix(day), "end_time": _unix(day + timedelta(days=1)),
                            "results": results})  # fmt: skip
        more = first + 31 < len(days)
        usage_pages.append({"object": "page", "data": buckets, "has_more": more,
                            "next_page": f"page_{len(usage_pages) + 2}" if more else None})  # fmt: skip
    lines = oai.group_by("day", "project_id", "model", "direction").agg(pl.col("billed_micro").sum()).sort(
        "day", "project_id", "model", "direction"
    )
    cost_days = sorted(lines["day"].unique())
    for first in range(0, len(cost_days), 45):
        chunk = cost_days[first : first + 45]
        buckets = []
        for day in chunk:
            results = [
                {"object": "organization.costs.result", "amount": {"value": _micro_number(r["billed_micro"]), "currency": "usd"},
                 "line_item": f"{r['model']}, {r['direction']}", "project_id": r["project_id"]}
                for r in lines.filter(pl.col("day") == day).iter_rows(named=True)
            ]  # fmt: skip
            buckets.append({"object": "bucket", "start_time": _unix(day), "end_time": _unix(day + timedelta(days=1)),
                            "results": results})  # fmt: skip
        more = first + 45 < len(cost_days)
        cost_pages.append({"object": "page", "data": buckets, "has_more": more,
                           "next_page": f"page_{len(cost_pages) + 2}" if more else None})  # fmt: skip
    return usage_pages, cost_pages


# --------------------------------------------------------------------------------------
# OTel traces of the ticket agent
# --------------------------------------------------------------------------------------


def _attr(key: str, value: str | int) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _nanos(moment: datetime) -> str:
    return str(int(moment.replace(tzinfo=UTC).timestamp() * 1000) * 1_000_000)


def agent_traces(rows: pl.DataFrame) -> list[dict[str, Any]]:
    """OTLP JSON exports (one per day) of the ticket agent's runs in [TRACE_START, TRACE_END)."""
    agent = rows.filter(
        pl.col("agent_id").is_not_null()
        & (pl.col("startTime") >= datetime.combine(TRACE_START, datetime.min.time()))
        & (pl.col("startTime") < datetime.combine(TRACE_END, datetime.min.time()))
    ).sort("session_id", "startTime", "request_id")
    resource = {"attributes": [_attr("service.name", "support-ticket-agent"), _attr("deployment.environment", "prod")]}
    scope = {"name": "opentelemetry.instrumentation.openai_agents", "version": "0.1.0"}
    exports = []
    for (day,), day_rows in agent.with_columns(day=pl.col("startTime").dt.date()).group_by(["day"], maintain_order=True):
        spans: list[dict[str, Any]] = []
        for (session,), calls in day_rows.group_by(["session_id"], maintain_order=True):
            root_id = session[-16:]
            first, last = calls["startTime"].min(), calls["endTime"].max()
            spans.append({"traceId": session, "spanId": root_id, "parentSpanId": "", "name": "invoke_agent ticket-agent",
                          "kind": 1, "startTimeUnixNano": _nanos(first), "endTimeUnixNano": _nanos(last),
                          "attributes": [_attr("gen_ai.operation.name", "invoke_agent"),
                                         _attr("gen_ai.agent.id", "support-ticket-agent"),
                                         _attr("gen_ai.agent.name", "Ticket agent"),
                                         _attr("gen_ai.provider.name", "azure.ai.openai")],
                          "status": {}})  # fmt: skip
            for n, call in enumerate(calls.iter_rows(named=True)):
                span_hex = f"{int(call['request_id'].rsplit('-', 1)[1]):05x}"
                chat_id = f"a{call['startTime']:%m%d}{span_hex}".ljust(16, "0")[:16]
                tool_id = f"b{call['startTime']:%m%d}{span_hex}".ljust(16, "0")[:16]
                spans.append({"traceId": session, "spanId": tool_id, "parentSpanId": root_id,
                              "name": "execute_tool search_knowledge_base", "kind": 1,
                              "startTimeUnixNano": _nanos(call["startTime"] - timedelta(milliseconds=200)),
                              "endTimeUnixNano": _nanos(call["startTime"]),
                              "attributes": [_attr("gen_ai.operation.name", "execute_tool"),
                                             _attr("gen_ai.tool.name", "search_knowledge_base" if n % 3 else "lookup_ticket")],
                              "status": {}})  # fmt: skip
                spans.append({"traceId": session, "spanId": chat_id, "parentSpanId": root_id, "name": "chat gpt-4o",
                              "kind": 3, "startTimeUnixNano": _nanos(call["startTime"]),
                              "endTimeUnixNano": _nanos(call["endTime"]),
                              "attributes": [_attr("gen_ai.operation.name", "chat"),
                                             _attr("gen_ai.provider.name", "azure.ai.openai"),
                                             _attr("gen_ai.request.model", "gpt-4o"),
                                             _attr("gen_ai.response.model", "gpt-4o-2024-05-13"),
                                             _attr("gen_ai.response.id", call["request_id"]),
                                             _attr("gen_ai.usage.input_tokens", call["prompt_tokens"]),
                                             _attr("gen_ai.usage.cache_read.input_tokens", call["_cached"]),
                                             _attr("gen_ai.usage.output_tokens", call["completion_tokens"])],
                              "status": {}})  # fmt: skip
        exports.append({"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]}]})
    return exports


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def expected_totals(rows: pl.DataFrame, bill: pl.DataFrame) -> pl.DataFrame:
    """Per provider, model and month: the gateway's requests, tokens and spend next to the bill's."""
    gateway = (
        rows.with_columns(
            month=pl.col("startTime").dt.strftime("%Y-%m"),
            bill_model=pl.col("model").str.split("/").list.last(),
        )
        .group_by("custom_llm_provider", "_route", "month")
        .agg(
            requests=pl.len(),
            prompt_tokens=pl.col("prompt_tokens").sum(),
            completion_tokens=pl.col("completion_tokens").sum(),
            spend_pico=pl.col("_spend_pico").sum(),
        )
    )
    billed = bill.group_by("traffic", "month").agg(billed_micro=pl.col("billed_micro").sum(),
                                                  bill_quantity=pl.col("quantity").sum())  # fmt: skip
    return gateway.join(billed, left_on=["_route", "month"], right_on=["traffic", "month"], how="left").sort(
        "_route", "month"
    )


def generate(out_dir: Path, seed: int = company.SEED) -> GatewayFiles:
    """Write the gateway, OpenAI usage and OTel files under ``out_dir/gateway`` (deleted first)."""
    root = Path(out_dir) / OUTPUT_FOLDER
    if root.exists():
        shutil.rmtree(root)
    for sub in ("litellm", "openai", "otel"):
        (root / sub).mkdir(parents=True)
    bill = bill_usage(seed)
    rows = spend_log_rows(bill, seed)
    spend_logs = root / "litellm" / "spend_logs.parquet"
    rows.select(SPEND_LOG_COLUMNS).write_parquet(spend_logs, statistics=False)
    create_table = root / "litellm" / "create_table.sql"
    create_table.write_text(CREATE_TABLE_SQL, encoding="utf-8")
    usage_pages, cost_pages = openai_pages(bill)
    completions, costs = [], []
    for number, page in enumerate(usage_pages, 1):
        completions.append(root / "openai" / f"completions_page{number}.json")
        completions[-1].write_text(json.dumps(page, indent=1) + "\n", encoding="utf-8")
    for number, page in enumerate(cost_pages, 1):
        costs.append(root / "openai" / f"costs_page{number}.json")
        costs[-1].write_text(json.dumps(page, indent=1) + "\n", encoding="utf-8")
    traces = root / "otel" / "support-ticket-agent.jsonl.gz"
    lines = "".join(json.dumps(export, separators=(",", ":")) + "\n" for export in agent_traces(rows))
    traces.write_bytes(gzip.compress(lines.encode(), mtime=0))
    expected = expected_totals(rows, bill)
    expected.write_csv(root / "expected_totals.csv")
    runaway = root / "runaway_tasks.json"
    runaway.write_text(json.dumps(runaway_tasks(rows), indent=1) + "\n", encoding="utf-8")
    return GatewayFiles(root, spend_logs, create_table, completions, costs, [traces], expected, runaway)


def runaway_tasks(rows: pl.DataFrame) -> list[dict[str, Any]]:
    """Ground truth for agent anomaly detection: the runs that looped (``_runaway``), one dict each
    with ``task_id`` (the session id: the LiteLLM session and the OTel trace id), ``agent_id``,
    ``day`` and ``calls``, in task id order."""
    runs = (
        rows.filter(pl.col("_runaway"))
        .group_by(task_id="session_id")
        .agg(agent_id=pl.col("agent_id").first(), day=pl.col("startTime").min().dt.date(), calls=pl.len())
        .sort("task_id")
    )
    return [{**r, "day": r["day"].isoformat()} for r in runs.iter_rows(named=True)]


# --------------------------------------------------------------------------------------
# A throw-away Postgres for the demo
# --------------------------------------------------------------------------------------


def pg_bin() -> Path | None:
    """Directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    for candidate in PG_BIN_DIRS:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def _as_server_user(args: list[str]) -> list[str]:
    """As root, run ``args`` as the postgres user (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return args
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in args)]


def start_postgres(
    parent: Path | None = None, *, settings: dict[str, str] | None = None
) -> tuple[str, Callable[[], None]] | tuple[None, str]:
    """Start a fresh PostgreSQL on a free loopback port: ``(dsn, stop)``, or ``(None, why)`` when it cannot.

    The cluster lives in a new temp directory under ``parent`` (default: the system temp dir),
    trusts loopback connections of user ``finops`` and is deleted by ``stop()``. ``settings``
    are extra server settings (e.g. ``{"shared_buffers": "512MB"}``). The tests use it too.
    """
    bindir = pg_bin()
    if bindir is None:
        return None, "PostgreSQL binaries not found (apt-get install postgresql-15)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "the psycopg package is not installed"
    root = Path(tempfile.mkdtemp(prefix="finops-demo-pg-", dir=parent))
    data = root / "data"
    try:
        data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(data, "postgres", "postgres")
            os.chmod(root, 0o755)
        subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER,
                                        "-E", "UTF8", "--locale=C"]), check=True, capture_output=True, timeout=300)  # fmt: skip
        for attempt in range(3):
            # The free port is only free until someone else binds it (a busy machine's test suite
            # starts servers too): on "address already in use", try another one.
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            options = f"-p {port} -k {data} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            options += "".join(f" -c {key}={value}" for key, value in (settings or {}).items())
            log = root / "server.log"
            started = subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                                                      "-o", options, "-w", "-t", "300", "start"]),
                                     capture_output=True, timeout=360, check=False)  # fmt: skip
            if started.returncode == 0:
                break
            in_use = "already in use" in (log.read_text(errors="replace") if log.exists() else "")
            if not in_use or attempt == 2:
                raise subprocess.CalledProcessError(started.returncode, "pg_ctl start", started.stdout, started.stderr)
            log.unlink()
    except (OSError, KeyError, subprocess.SubprocessError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        detail = str(exc)
        if isinstance(exc, subprocess.CalledProcessError) and exc.stderr:
            detail = exc.stderr.decode(errors="replace").strip()[-300:]
        return None, f"PostgreSQL could not start: {detail}"

    def stop() -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), check=False,
                           capture_output=True, timeout=120)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres", stop


def copy_spend_logs(dsn: str, files: GatewayFiles) -> int:
    """Create "LiteLLM_SpendLogs" at ``dsn`` and COPY the spend-log rows into it; the row count."""
    import psycopg

    frame = pl.read_parquet(files.spend_logs)
    text = frame.write_csv(include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.3f", null_value="\\N")
    columns = ", ".join(f'"{c}"' for c in SPEND_LOG_COLUMNS)
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute(files.create_table.read_text(encoding="utf-8"))
        with pg.cursor().copy(f'COPY "LiteLLM_SpendLogs" ({columns}) FROM STDIN (FORMAT csv, NULL \'\\N\')') as copy:
            data = text.encode()
            for offset in range(0, len(data), 1 << 20):
                copy.write(data[offset : offset + (1 << 20)])
    return frame.height


@dataclasses.dataclass(frozen=True)
class GatewayLoad:
    """One gateway delivery as the demo loaded it."""

    label: str
    rows_loaded: int
    rows_replaced: int
    note: str = ""


def load(
    wh: Any,
    files: GatewayFiles,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    use_postgres: bool = True,
) -> list[GatewayLoad]:
    """Load the gateway files into ``wh``: prices, LiteLLM (through Postgres when one starts), OpenAI, OTel.

    Every load is a source like any in finops.toml and goes through the connector registry
    (:mod:`finops.ingest.registry`), as ``finops run`` would. LiteLLM: a throw-away Postgres is
    started, the spend-log rows are COPYed into its "LiteLLM_SpendLogs" and read back by the
    ``litellm`` kind, exactly as from a real proxy database; it is stopped at the end. When no
    Postgres can start (or ``use_postgres`` is false) the same rows are loaded from the Parquet
    file by the ``litellm-file`` kind, and the returned note says so. The OpenAI pages are files
    the API would have returned: the ``openai-usage-files`` kind loads them for the demo's window.
    """
    from finops.ingest import sources

    loads: list[GatewayLoad] = []
    prices = sources.ingest_report(wh, sources.source("prices"), progress=progress)
    loads.append(GatewayLoad("LiteLLM price map (bundled snapshot)", prices.rows_loaded, 0))
    started = start_postgres() if use_postgres else (None, "Postgres not requested")
    if started[0] is not None:
        dsn, stop = started
        try:
            copied = copy_spend_logs(dsn, files)  # type: ignore[arg-type]
            report = sources.ingest_report(wh, sources.source("litellm", [dsn]), progress=progress)  # type: ignore[list-item]
        finally:
            stop()  # type: ignore[operator]
        loads.append(GatewayLoad(f"LiteLLM spend logs ({copied:,} rows via a throw-away Postgres)",
                                 report.rows_loaded, report.rows_replaced))  # fmt: skip
    else:
        why = started[1]
        rows = sources.ingest_report(wh, sources.source("litellm-file", [str(files.spend_logs)]), progress=progress)
        note = f"no Postgres ({why}): loaded the same rows from the file"
        loads.append(GatewayLoad(f"LiteLLM spend logs from {files.spend_logs.name}", rows.rows_loaded,
                                 rows.rows_replaced, note))  # fmt: skip
    pages = sources.source("openai-usage-files", [str(files.out_dir / "openai")], start=WINDOW_START, end=WINDOW_END)
    usage = sources.ingest_report(wh, pages, progress=progress)
    loads.append(GatewayLoad("OpenAI usage and costs API pages", usage.rows_loaded, usage.rows_replaced))
    traces = sources.ingest_report(wh, sources.source("otel", [str(p) for p in files.otel_traces]), progress=progress)
    loads.append(GatewayLoad("OTel traces of the ticket agent", traces.rows_loaded, traces.rows_replaced))
    return loads
