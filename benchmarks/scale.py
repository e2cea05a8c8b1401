"""Scale on one machine: build a large sample company, ingest it, run and render the quarterly review.

    uv run python benchmarks/scale.py --line-items 2000000 --requests 5000000
    uv run python benchmarks/scale.py --line-items 2000000 --requests 5000000 --sizes --json scale.json
    uv run python benchmarks/scale.py --reuse /tmp/scale-20000000-50000000-x  # a --keep work dir: from the ingest on
    uv run python benchmarks/scale.py --reuse /tmp/scale-20000000-50000000-x --from "review analytics"  # its warehouse

1. generate: the sample company (finops/demo/company.py and gateway.py, its fixed seed) is written
   once, small, then scaled in DuckDB SQL (COPY … TO, no Python row loops) to about N bill line
   items and M gateway requests, same shape: every bill row is copied k_b = round(N / sample rows)
   times (copies > 0 get their own line item id and resource id: more resources, same accounts,
   tags, services, SKUs and departments of finops.toml), every LiteLLM request k_r = round(M /
   sample requests) times (own request, session and user ids; tokens and spend split so the
   gateway stays k_b × the sample's, as the bill does, and gateway vs bill still reconciles).
   AWS is CUR 2.0 Parquet in the Data Exports layout (one file and manifest a month, 2026-08 as
   first delivered); Google Cloud, Azure, OpenAI and Anthropic are their FOCUS files; the AWS
   2026-08 restatement is a second export root; the requests are LiteLLM_SpendLogs Parquet files
   (kind ``litellm-file``), split by day ranges of about 2M rows each.
2. ingest bills: ``aws-cur`` on the CUR root, then ``focus`` on the FOCUS files (the registry).
3. ingest requests: ``litellm-file`` on the spend-log folder.
4. reload restated month: ``aws-cur`` on the 2026-08 restatement (replaces that month).
5. review analytics: the calls notebooks/quarterly_review.ipynb makes, in its order (no charts).
6. render review: ``finops report quarterly``, with an empty result cache (:mod:`finops.analyses.cache`),
   then again over the cache it left; 7. render statements: ``finops report departments``.

Every stage is its own child process. Peak RSS is the largest sum of RSS over the child's process
tree (the child and its descendants, e.g. the papermill kernel), polled with psutil every 50 ms,
or the child's own ru_maxrss (resource.getrusage) when that is larger. ``rows`` is what the stage
works on: rows written (generate), rows read (ingest, reload), warehouse rows (analytics, renders).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
QUARTER = "2026Q3"
RESTATED_MONTH = "2026-08"
EXPORT = "larkspur-cur2"
FOCUS_PROVIDERS = ("gcp", "azure", "openai", "anthropic")
REQUESTS_PER_FILE = 2_000_000
GATEWAY_START = "2026-07-01"
GATEWAY_DAYS = 92
STAGES = (
    "generate",
    "ingest bills",
    "ingest requests",
    "reload restated month",
    "review analytics",
    "render review",
    "render review again",
    "render statements",
)
CACHE_OF = {"render review again": "render review"}
"""Every stage starts with an empty result cache (finops.analyses.cache) of its own, so its figure is
the cold one, except ``render review again``: the same render over the cache the first one left,
what a second reader of an unchanged warehouse waits."""


# -- generate -------------------------------------------------------------------------------------


def _copies(target: int, sample: int) -> int:
    return max(1, round(target / sample))


def generate(work: Path, line_items: int, requests: int) -> dict:
    """Write the sample company under work/seed, then the scaled exports under work/big; their counts."""
    import duckdb

    sys.path.insert(0, str(PROJECT))
    from finops.demo import company, gateway

    seed, big = work / "seed", work / "big"
    t0 = time.perf_counter()
    company.generate(seed)
    gateway.generate(seed)
    seed_seconds = time.perf_counter() - t0
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # bounded memory: the copies stream to Parquet/CSV (row order inside a file does not matter)
    con.execute("SET memory_limit = '2GB'")
    con.execute("SET preserve_insertion_order = false")
    cur_root = seed / "aws" / "cur" / EXPORT
    original_root = seed / "aws" / "cur-2026-08-original" / EXPORT
    focus_files = sorted(p for prov in FOCUS_PROVIDERS for p in (seed / "focus" / prov).rglob("part-0.csv*"))
    months = sorted(p.name.split("=")[1] for p in (cur_root / "data").iterdir())
    month_root = {m: (original_root if m == RESTATED_MONTH else cur_root) for m in months}
    cur_rows = sum(_count(con, f"read_parquet('{_cur_data(month_root[m], m)}/*.parquet')") for m in months)
    focus_rows = sum(_count(con, _read_csv(p)) for p in focus_files)
    k_bill = _copies(line_items, cur_rows + focus_rows)

    bill_rows = 0
    for m in months:
        bill_rows += _write_cur(con, month_root[m], big / "aws" / "cur" / EXPORT, m, k_bill, f"scale-{m}-{k_bill}")
    restated = _write_cur(
        con, cur_root, big / "aws" / "restated" / EXPORT, RESTATED_MONTH, k_bill, f"restated-{k_bill}"
    )
    for path in focus_files:
        out = big / path.relative_to(seed)
        out.parent.mkdir(parents=True, exist_ok=True)
        gz = path.name.endswith(".gz")
        con.execute(
            f"COPY (SELECT * EXCLUDE (_c) REPLACE ({_suffixed('ResourceId')}) FROM {_read_csv(path)}, range({k_bill}) r(_c))"
            f" TO '{out}' (FORMAT csv, HEADER{', COMPRESSION gzip' if gz else ''})"
        )
        bill_rows += _count(con, _read_csv(out))

    spend_logs = seed / "gateway" / "litellm" / "spend_logs.parquet"
    sample_requests = _count(con, f"read_parquet('{spend_logs}')")
    k_req = _copies(requests, sample_requests)
    files = max(1, math.ceil(sample_requests * k_req / REQUESTS_PER_FILE))
    out_dir = big / "gateway" / "litellm"
    out_dir.mkdir(parents=True)
    con.execute(f"CREATE TEMP VIEW scaled_requests AS {_requests_sql(spend_logs, k_bill, k_req, files)}")
    for n in range(files):
        con.execute(
            f"COPY (SELECT * EXCLUDE (_file) FROM scaled_requests WHERE _file = {n})"
            f" TO '{out_dir / f'spend_logs-{n:03d}.parquet'}' (FORMAT parquet, ROW_GROUP_SIZE 122880)"
        )
    request_rows = _count(con, f"read_parquet('{out_dir}/*.parquet')")
    size = sum(p.stat().st_size for p in big.rglob("*") if p.is_file())
    return {
        "rows": bill_rows + restated + request_rows,
        "line_items": bill_rows,
        "restated_month_rows": restated,
        "requests": request_rows,
        "request_files": files,
        "bill_copies": k_bill,
        "request_copies": k_req,
        "sample_line_items": cur_rows + focus_rows,
        "sample_requests": sample_requests,
        "megabytes": round(size / 1e6, 1),
        "sample_seconds": round(seed_seconds, 1),
    }


def _count(con, relation: str) -> int:
    return con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]


def _read_csv(path: Path) -> str:
    # all VARCHAR: the copies keep the sample's text exactly (money, timestamps, JSON tags)
    return f"read_csv('{path}', all_varchar = true, header = true)"


def _cur_data(root: Path, month: str) -> Path:
    return root / "data" / f"BILLING_PERIOD={month}"


def _suffixed(column: str) -> str:
    """Copy _c > 0 of a row gets ``<value>-<c>`` (empty and NULL values stay as they are)."""
    return f"CASE WHEN _c = 0 OR coalesce({column}, '') = '' THEN {column} ELSE {column} || '-' || _c END AS {column}"


def _write_cur(con, source_root: Path, out_root: Path, month: str, copies: int, execution_id: str) -> int:
    """One month of the CUR export copied ``copies`` times: one Parquet file and its Data Exports manifest."""
    data = _cur_data(out_root, month)
    meta = out_root / "metadata" / f"BILLING_PERIOD={month}"
    data.mkdir(parents=True)
    meta.mkdir(parents=True)
    name = f"{EXPORT}-00001.snappy.parquet"
    replace = f"{_suffixed('identity_line_item_id')}, {_suffixed('line_item_resource_id')}"
    con.execute(
        f"COPY (SELECT * EXCLUDE (_c) REPLACE ({replace}) FROM read_parquet('{_cur_data(source_root, month)}/*.parquet'),"
        f" range({copies}) r(_c)) TO '{data / name}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)"
    )
    [manifest_path] = (source_root / "metadata" / f"BILLING_PERIOD={month}").glob("*Manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["executionId"] = execution_id
    manifest["dataFiles"] = [f"s3://{manifest['bucket']}/cur/{EXPORT}/data/BILLING_PERIOD={month}/{name}"]
    (meta / manifest_path.name).write_text(json.dumps(manifest, indent=2))
    return _count(con, f"read_parquet('{data / name}')")


def _requests_sql(spend_logs: Path, k_bill: int, k_req: int, files: int) -> str:
    """The spend logs, each request copied ``k_req`` times carrying ``k_bill / k_req`` of its tokens and spend.

    Integer split (copy 0 takes the remainder), spend in integer pico-dollars: the copies add up
    exactly to ``k_bill`` × the sample, as the scaled bill does. ``_file`` is a contiguous day range.
    """

    def split(expr: str) -> str:
        return f"(({expr}) * {k_bill}) // {k_req} + CASE WHEN _c = 0 THEN (({expr}) * {k_bill}) % {k_req} ELSE 0 END"

    pico = "CAST(CAST(spend AS DECIMAL(38, 12)) * 1000000000000 AS HUGEINT)"
    cached = "TRY_CAST(json_extract_string(metadata, '$.usage_object.prompt_tokens_details.cached_tokens') AS BIGINT)"
    return f"""
    WITH split AS (
        SELECT *, {split(pico)} AS _pico, {split("prompt_tokens")} AS _prompt, {split("completion_tokens")} AS _completion,
               {split(cached)} AS _cached,
               least({files - 1}, (date_diff('day', DATE '{GATEWAY_START}', "startTime"::DATE) * {files}) // {GATEWAY_DAYS}) AS _file
        FROM read_parquet('{spend_logs}'), range({k_req}) r(_c)
    )
    SELECT * EXCLUDE (_c, _pico, _prompt, _completion, _cached) REPLACE (
        {_suffixed("request_id")}, {_suffixed("session_id")}, {_suffixed("end_user")}, {_suffixed('"user"')},
        CAST(_pico // 1000000000000 AS VARCHAR) || '.' || lpad(CAST(_pico % 1000000000000 AS VARCHAR), 12, '0') AS spend,
        _prompt AS prompt_tokens, _completion AS completion_tokens, _prompt + _completion AS total_tokens,
        CASE WHEN _cached IS NULL THEN metadata
             ELSE replace(metadata, '"cached_tokens": ' || {cached}, '"cached_tokens": ' || _cached) END AS metadata)
    FROM split
    """


# -- the other stages (each runs in its own child) ------------------------------------------------


def _warehouse(work: Path):
    from finops.warehouse import Warehouse

    return Warehouse(str(work / "warehouse.duckdb"))


def _ingest(work: Path, kind: str, uris: list[str]) -> dict:
    from finops.ingest import sources

    report = sources.ingest_report(_warehouse(work), sources.source(kind, uris))
    return {"rows": report.rows_read, "loaded": report.rows_loaded, "quarantined": report.rows_quarantined,
            "replaced": report.rows_replaced}  # fmt: skip


def ingest_bills(work: Path) -> dict:
    big = work / "big"
    aws = _ingest(work, "aws-cur", [str(big / "aws" / "cur" / EXPORT)])
    focus = _ingest(work, "focus", [str(p) for p in sorted((big / "focus").rglob("part-0.csv*"))])
    return {k: aws[k] + focus[k] for k in aws} | {"aws_cur_rows": aws["rows"], "focus_rows": focus["rows"]}


def ingest_requests(work: Path) -> dict:
    return _ingest(work, "litellm-file", [str(work / "big" / "gateway" / "litellm")])


def reload_month(work: Path) -> dict:
    return _ingest(work, "aws-cur", [str(work / "big" / "aws" / "restated" / EXPORT)])


def warehouse_rows(work: Path) -> int:
    import duckdb

    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        return sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("charges", "llm_requests"))


def review_analytics(work: Path, config: Path) -> dict:
    """The analyses of notebooks/quarterly_review.ipynb, called as it calls them, in its order (charts left out)."""
    from finops.analyses import (
        anomalies,
        budgets,
        chargeback,
        forecast,
        quarters,
        reconcile,
        spend,
        unit_economics,
        whatif,
    )
    from finops.config import load_config
    from finops.periods import Quarter
    from finops.warehouse.engine import open_engine

    cfg = load_config(config)
    wh = open_engine(cfg, str(work / "warehouse.duckdb"))
    q = Quarter.parse(QUARTER) if QUARTER else quarters.latest_complete_quarter(wh)
    basis = cfg.basis
    timings: dict[str, float] = {}

    def timed(name: str, call):
        t0 = time.perf_counter()
        out = call()
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 3)
        return out

    timed("spend.quarter_summary", lambda: spend.quarter_summary(wh, cfg, q, basis=basis))
    timed("spend.top_departments", lambda: spend.top_departments(wh, cfg, q, n=5, basis=basis))
    timed("forecast.quarter_forecast", lambda: forecast.quarter_forecast(wh, cfg, by="department", quarter=q.next(), basis=basis))  # fmt: skip
    timed("budgets.budget_status", lambda: budgets.budget_status(wh, cfg, q, missing_ok=True))
    timed("chargeback.chargeback", lambda: chargeback.chargeback(wh, cfg, q, basis=basis))
    timed("chargeback.quarter_chargeback", lambda: chargeback.quarter_chargeback(wh, cfg, q, basis=basis))
    timed("chargeback.reconciliation", lambda: chargeback.reconciliation(wh, cfg, q, basis=basis))
    timed("spend.workload_split", lambda: spend.workload_split(wh, q.year_ago().end, q.end, basis=basis, grain="month", config=cfg))  # fmt: skip
    timed("spend.daily_spend", lambda: spend.daily_spend(wh, q.start, q.end, basis=basis, by="workload", config=cfg))
    timed("spend.spend_by_provider_service", lambda: spend.spend_by_provider_service(wh, q.start, q.end, basis=basis, ai_only=True, config=cfg))  # fmt: skip
    timed("chargeback.gateway_usage", lambda: chargeback.gateway_usage(wh, cfg, q))
    timed("unit_economics.token_unit_costs", lambda: unit_economics.token_unit_costs(wh, q.start, q.end))
    timed("unit_economics.token_unit_costs", lambda: unit_economics.token_unit_costs(wh, q.year_ago().end, q.end, grain="month"))  # fmt: skip
    timed("unit_economics.agent_task_unit_costs", lambda: unit_economics.agent_task_unit_costs(wh, q.start, q.end))
    timed("anomalies.cost_anomalies", lambda: anomalies.cost_anomalies(wh, cfg, q.start, q.end, basis=basis))
    timed("anomalies.agent_anomalies", lambda: anomalies.agent_anomalies(wh, q.start, q.end, one_source=True))
    timed("whatif.savings_opportunities", lambda: whatif.savings_opportunities(wh, cfg, q))
    timed("forecast.forecast_vs_actual", lambda: forecast.forecast_vs_actual(wh, cfg, q, by="department", basis=basis))
    timed("spend.classification_coverage", lambda: spend.classification_coverage(wh, cfg, q.start, q.end, basis=basis))
    timed("reconcile.unpriced_usage", lambda: reconcile.unpriced_usage(wh, q.start, q.end))
    timed("spend.data_freshness", lambda: spend.data_freshness(wh))
    timed("reconcile.gateway_vs_bill", lambda: reconcile.gateway_vs_bill(wh, q.start, q.end))
    return {"rows": warehouse_rows(work), "functions": timings}


def _child_main(stage: str, work: Path, config: Path) -> None:
    """Run one stage in this (child) process; print its figures as the last line of JSON."""
    import resource

    sys.path.insert(0, str(PROJECT))
    t0 = time.perf_counter()
    if stage == "generate":
        spec = json.loads(os.environ["SCALE_SIZE"])
        figures = generate(work, spec["line_items"], spec["requests"])
    elif stage == "ingest bills":
        figures = ingest_bills(work)
    elif stage == "ingest requests":
        figures = ingest_requests(work)
    elif stage == "reload restated month":
        figures = reload_month(work)
    elif stage == "review analytics":
        figures = review_analytics(work, config)
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    figures["seconds"] = time.perf_counter() - t0
    figures["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


# -- the parent: run each stage in a child, measure it -------------------------------------------


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_stage(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``args``; its wall seconds, the peak RSS (MB) of its process tree, and its stdout."""
    import psutil

    t0 = time.perf_counter()
    child = subprocess.Popen(args, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(child.pid)
    peak = [0]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(watched))
            stop.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out, err = child.communicate()
    seconds = time.perf_counter() - t0
    stop.set()
    poller.join()
    if child.returncode != 0:
        sys.exit(f"stage failed: {' '.join(args)}\n{err[-4000:]}")
    return seconds, peak[0] / 2**20, out


def run_size(
    line_items: int,
    requests: int,
    work: Path,
    config: Path,
    skip_render: bool,
    reuse: bool = False,
    from_stage: str = "ingest bills",
    on_stage: Callable[[list[dict]], None] = lambda results: None,
) -> list[dict]:
    """All stages for one size in ``work``; one dict of figures per stage (printed as they finish,
    and handed to ``on_stage`` after each, so a failing stage loses none of the earlier figures).

    ``reuse``: ``work`` holds exports generated before (its ``generate.json``); start at
    ``from_stage``: the ingest, into a new warehouse, or a later stage on the warehouse there."""
    env = os.environ | {"SCALE_SIZE": json.dumps({"line_items": line_items, "requests": requests}),
                        "FINOPS_WAREHOUSE": str(work / "warehouse.duckdb"), "FINOPS_CONFIG": str(config)}  # fmt: skip
    results: list[dict] = []
    rows = 0
    print(f"\n== {line_items:,} line items, {requests:,} requests (work dir {work}) ==")
    print(f"{'stage':<24}{'rows':>14}{'seconds':>10}{'rows/s':>14}{'peak RSS MB':>13}{'load avg':>10}")
    skipped = set(STAGES[: STAGES.index(from_stage)]) if reuse else set()
    if reuse:
        keep_warehouse = "ingest bills" in skipped
        stale = [work / "cache", work / "reports", *([] if keep_warehouse else work.glob("warehouse.duckdb*"))]
        for path in stale:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        generated = json.loads((work / "generate.json").read_text())
        results.append(generated)
        print(f"{'generate':<24}{generated['rows']:>14,}{'(reused)':>10}")
        if keep_warehouse:
            rows = warehouse_rows(work)
    for stage in STAGES:
        if skip_render and stage.startswith("render") or stage in skipped:
            continue
        cache = work / "cache" / CACHE_OF.get(stage, stage).replace(" ", "-")
        stage_env = env | {"FINOPS_CACHE_DIR": str(cache)}
        if stage.startswith("render"):
            which = "departments" if stage == "render statements" else "quarterly"
            cmd = [sys.executable, "-m", "finops.cli", "report", which, "--quarter", QUARTER, "--out", str(work / "reports"),
                   "--warehouse", str(work / "warehouse.duckdb"), "--config", str(config)]  # fmt: skip
            seconds, peak, _ = run_stage(cmd, stage_env)
            figures = {"rows": rows}
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--_stage", stage, "--workdir", str(work),
                   "--config", str(config)]  # fmt: skip
            seconds, peak, out = run_stage(cmd, stage_env)
            figures = json.loads(out.strip().splitlines()[-1])
            peak = max(peak, figures.pop("self_maxrss_mb"))
            seconds = figures.pop("seconds")  # the stage's own time, imports left out
            if stage == "review analytics":
                rows = figures["rows"]
        row = {
            "stage": stage,
            "rows": figures.pop("rows"),
            "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak),
            "load_average": round(os.getloadavg()[0], 1),
        }  # other work on the machine inflates the seconds
        row["rows_per_s"] = round(row["rows"] / seconds) if seconds else None
        row |= figures
        results.append(row)
        if stage == "generate":
            (work / "generate.json").write_text(json.dumps(row))  # for --reuse
        on_stage(results)
        rate = f"{row['rows_per_s']:,}" if row["rows_per_s"] else "-"
        print(
            f"{stage:<24}{row['rows']:>14,}{row['seconds']:>10.1f}{rate:>14}{row['peak_rss_mb']:>13,}{row['load_average']:>10}",
            flush=True,
        )
    by = {r["stage"]: r for r in results}
    gen = by["generate"]
    print(f"generated: {gen['line_items']:,} line items (sample ×{gen['bill_copies']}), {gen['requests']:,} requests "
          f"(sample ×{gen['request_copies']}, {gen['request_files']} files), {gen['megabytes']:,} MB; "
          f"writing the sample company itself took {gen.get('sample_seconds', 0):.0f}s of it")  # fmt: skip
    if "ingest bills" in by and "reload restated month" in by:
        bills, reload = by["ingest bills"], by["reload restated month"]
        month_share = reload["rows"] / bills["rows"]
        print(f"reload of one restated month: {reload['seconds']:.1f}s for {month_share:.1%} of the bill rows "
              f"(ingest of all bills at that rate: {bills['seconds'] * month_share:.1f}s)")  # fmt: skip
    if "review analytics" in by:
        slow = sorted(by["review analytics"]["functions"].items(), key=lambda kv: -kv[1])[:5]
        print("slowest analyses: " + ", ".join(f"{name} {s:.1f}s" for name, s in slow))
    if not skip_render and "render review" in by:
        # The cold render computes the analytics itself; adding the analytics stage to it would count them twice.
        cold, again = by["render review"]["seconds"], by["render review again"]["seconds"]
        line = f"the review (target: 60 s): {cold:.1f}s cold (its analytics and the HTML, empty result cache)"
        if "review analytics" in by:
            line += f"; the analytics alone {by['review analytics']['seconds']:.1f}s"
        print(line + f"; again over the cache {again:.1f}s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--line-items", type=int, default=2_000_000, help="bill line items (default 2,000,000)")
    parser.add_argument("--requests", type=int, default=5_000_000, help="gateway requests (default 5,000,000)")
    parser.add_argument("--sizes", action="store_true", help="run 1/4, 1/2 and the full size; print how stages grow")
    parser.add_argument("--workdir", type=Path, default=None, help="where work dirs are made (default: the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dirs (exports, warehouse, reports)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    parser.add_argument("--skip-render", action="store_true", help="leave out the render stages")
    parser.add_argument("--reuse", type=Path, default=None, metavar="WORK",
                        help="a kept work dir: reuse its generated exports, start at the ingest (new warehouse)")  # fmt: skip
    parser.add_argument("--from", dest="from_stage", default="ingest bills", choices=STAGES[1:], metavar="STAGE",
                        help="with --reuse: the first stage to run; from 'review analytics' on, the work dir's "
                             "warehouse is kept (default: 'ingest bills', a new warehouse)")  # fmt: skip
    parser.add_argument("--config", type=Path, default=PROJECT / "finops.toml", help=argparse.SUPPRESS)
    parser.add_argument("--_stage", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._stage:
        _child_main(args._stage, args.workdir, args.config)
        return

    if args.from_stage != "ingest bills" and not args.reuse:
        parser.error("--from needs --reuse WORK")
    fractions = (0.25, 0.5, 1.0) if args.sizes else (1.0,)
    runs: list[dict] = []

    def write_json(growth: list[dict]) -> None:
        if args.json:
            payload = {"cores": os.cpu_count(), "quarter": QUARTER, "runs": runs, "growth": growth,
                       "rss": "peak sum of RSS over the stage's process tree (psutil, 50 ms) or its ru_maxrss if larger"}  # fmt: skip
            args.json.write_text(json.dumps(payload, indent=2, default=str))

    def size_run(fraction: float, n: int, m: int, work: Path, **options: Any) -> None:
        run = {"fraction": fraction, "line_items": n, "requests": m, "work": str(work), "stages": []}
        runs.append(run)

        def on_stage(results: list[dict]) -> None:
            run["stages"] = list(results)
            write_json([])

        run_size(n, m, work, args.config.resolve(), args.skip_render, on_stage=on_stage, **options)

    if args.reuse:
        work = args.reuse.resolve()
        generated = json.loads((work / "generate.json").read_text())
        size_run(1.0, generated["line_items"], generated["requests"], work, reuse=True, from_stage=args.from_stage)
        fractions = ()
    for fraction in fractions:
        n, m = round(args.line_items * fraction), round(args.requests * fraction)
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"scale-{n}-{m}-", dir=args.workdir))
        try:
            size_run(fraction, n, m, work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    growth = _growth(runs) if len(runs) > 1 else []
    if growth:
        print("\n== growth (seconds ratio next to rows ratio; 1.0 = linear) ==")
        print(f"{'stage':<24}" + "".join(f"{f'x{r}':>22}" for r in ("1/4→1/2", "1/2→full")))
        for g in growth:
            cells = "".join(f"{f'{s:.2f}s / {r:.2f}r = {s / r:.2f}':>22}" for s, r in g["steps"])
            print(f"{g['stage']:<24}{cells}")
    if args.json:
        write_json(growth)
        print(f"\nJSON: {args.json}")


def _growth(runs: list[dict]) -> list[dict]:
    """Per stage, for each step between sizes: (seconds ratio, rows ratio)."""
    out = []
    for i, stage in enumerate(r["stage"] for r in runs[0]["stages"]):
        steps = []
        for a, b in itertools.pairwise(runs):
            sa, sb = a["stages"][i], b["stages"][i]
            steps.append((sb["seconds"] / sa["seconds"], sb["rows"] / sa["rows"] if sa["rows"] else float("nan")))
        out.append({"stage": stage, "steps": steps})
    return out


if __name__ == "__main__":
    main()
