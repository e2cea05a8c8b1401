"""How fast `finops ingest aws-cur` loads a CUR 2.0 export, next to a plain DuckDB copy.

    uv run python benchmarks/ingest_cur.py --rows 1000000

1. Generates a CUR 2.0 Data Exports delivery of N line items in DuckDB SQL (Parquet files
   under data/BILLING_PERIOD=2026-07/ and a manifest under metadata/), with the columns a real
   export has: DOUBLE amounts, TIMESTAMP periods, the `product` and `resource_tags` maps, a mix
   of line item types (Usage, Savings Plans, Reserved Instances, fees, tax, credits).
2. Baseline: a child process runs `CREATE TABLE t AS SELECT * FROM read_parquet(...)` of the same
   files into a fresh DuckDB file — the fastest load DuckDB itself can do, with no mapping. A
   second child does the same into a file of the warehouse's format (STORAGE_VERSION), for a
   like-for-like comparison.
3. The ingest: a child process runs `connectors.aws_cur.ingest` on the local export directory
   into a fresh warehouse (checksums, checks, FOCUS mapping, exact money, partition replace).

Each child reports its wall time and peak memory (resource.getrusage maxrss). The last line
is ``ratio R``: ingest rows/s divided by baseline rows/s (1.0 = as fast as a plain copy); the
lines before it give the same ratio in CPU seconds, which other work on the machine disturbs less,
and against the copy in the warehouse's file format.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[1]
EXPORT = "bench-cur"
PERIOD = "2026-07"


def generate(root: Path, rows: int, files: int) -> list[Path]:
    """Write the export under ``root`` (DuckDB SQL only); return the data files."""
    data = root / EXPORT / "data" / f"BILLING_PERIOD={PERIOD}"
    meta = root / EXPORT / "metadata" / f"BILLING_PERIOD={PERIOD}"
    data.mkdir(parents=True)
    meta.mkdir(parents=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    paths = []
    per_file = -(-rows // files)
    for n in range(files):
        first, last = n * per_file, min(rows, (n + 1) * per_file)
        if first >= last:
            break
        path = data / f"{EXPORT}-{n + 1:05d}.snappy.parquet"
        con.execute(
            f"COPY ({_rows_sql(first, last)}) TO '{path}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)"
        )
        paths.append(path)
    manifest = {
        "executionId": f"bench-{rows}",
        "exportArn": f"arn:aws:bcm-data-exports:us-east-1:111122223333:export/{EXPORT}",
        "billingPeriod": PERIOD,
        "dataFiles": [f"s3://bench-bucket/cur/{EXPORT}/data/BILLING_PERIOD={PERIOD}/{p.name}" for p in paths],
    }
    (meta / f"{EXPORT}-Manifest.json").write_text(json.dumps(manifest, indent=2))
    return paths


def _rows_sql(first: int, last: int) -> str:
    """N line items in one billing period; amounts are exact to 4–10 decimals like AWS's."""
    return f"""
    WITH base AS (
        SELECT i, hash(i) AS h, (hash(i) % 1000)::INTEGER AS kind FROM range({first}, {last}) AS t(i)
    ), typed AS (
        SELECT *, CASE
            WHEN kind < 800 THEN 'Usage'
            WHEN kind < 880 THEN 'SavingsPlanCoveredUsage'
            WHEN kind < 920 THEN 'DiscountedUsage'
            WHEN kind < 940 THEN 'SavingsPlanNegation'
            WHEN kind < 950 THEN 'SavingsPlanRecurringFee'
            WHEN kind < 960 THEN 'RIFee'
            WHEN kind < 970 THEN 'Tax'
            WHEN kind < 980 THEN 'Credit'
            WHEN kind < 990 THEN 'Fee'
            ELSE 'EdpDiscount' END AS line_type,
            (['AmazonEC2', 'AmazonSageMaker', 'AmazonBedrock', 'AmazonS3', 'AmazonRDS', 'AWSLambda'])[(h % 6)::INTEGER + 1] AS code,
            round(((h >> 8) % 10000000) / 1e4, 6) AS cost
        FROM base
    )
    SELECT
        'Anniversary' AS bill_bill_type,
        'AWS' AS bill_billing_entity,
        TIMESTAMP '{PERIOD}-01' + INTERVAL 1 MONTH AS bill_billing_period_end_date,
        TIMESTAMP '{PERIOD}-01' AS bill_billing_period_start_date,
        'INV-' || (h % 3)::VARCHAR AS bill_invoice_id,
        'Amazon Web Services, Inc.' AS bill_invoicing_entity,
        '111122223333' AS bill_payer_account_id,
        'Bench payer' AS bill_payer_account_name,
        MAP {{'team': 'platform'}} AS cost_category,
        'i-' || i::VARCHAR AS identity_line_item_id,
        '{PERIOD}-01T00:00:00Z/{PERIOD}-02T00:00:00Z' AS identity_time_interval,
        'us-east-1a' AS line_item_availability_zone,
        (CASE WHEN line_type = 'Tax' THEN 0 ELSE cost * 1.07 END) AS line_item_blended_cost,
        cost AS line_item_blended_rate,
        'USD' AS line_item_currency_code,
        'line item ' || line_type AS line_item_line_item_description,
        line_type AS line_item_line_item_type,
        CASE WHEN line_type IN ('SavingsPlanNegation', 'Credit', 'EdpDiscount') THEN -cost ELSE cost END AS line_item_unblended_cost,
        CASE WHEN line_type IN ('SavingsPlanNegation', 'Credit', 'EdpDiscount') THEN -cost ELSE cost END * 0.97 AS line_item_net_unblended_cost,
        round(cost / 3, 6) AS line_item_unblended_rate,
        'Amazon Web Services, Inc.' AS line_item_legal_entity,
        'RunInstances' AS line_item_operation,
        code AS line_item_product_code,
        'arn:aws:ec2:us-east-1:444455556666:instance/i-' || (h % 5000)::VARCHAR AS line_item_resource_id,
        (h % 1000)::DOUBLE / 10 AS line_item_usage_amount,
        (['444455556666', '555566667777', '666677778888'])[(h % 3)::INTEGER + 1] AS line_item_usage_account_id,
        'member ' || (h % 3)::VARCHAR AS line_item_usage_account_name,
        TIMESTAMP '{PERIOD}-01' + to_hours((i % 720)::INTEGER) + INTERVAL 1 HOUR AS line_item_usage_end_date,
        TIMESTAMP '{PERIOD}-01' + to_hours((i % 720)::INTEGER) AS line_item_usage_start_date,
        CASE code WHEN 'AmazonEC2' THEN 'USE1-BoxUsage:' || (['p5.48xlarge', 'g5.xlarge', 'm5.large', 'inf2.xlarge'])[(h % 4)::INTEGER + 1]
                  WHEN 'AmazonSageMaker' THEN (['USE1-Host:ml.g5.2xlarge', 'USE1-Train:ml.p4d.24xlarge', 'USE1-Notebk:ml.t3.medium'])[(h % 3)::INTEGER + 1]
                  WHEN 'AmazonBedrock' THEN (['USE1-Claude3Sonnet-input-tokens', 'USE1-Claude3Sonnet-output-tokens'])[(h % 2)::INTEGER + 1]
                  ELSE 'USE1-Requests-Tier1' END AS line_item_usage_type,
        CASE WHEN line_type = 'Usage' THEN round(cost * 1.1, 6) END AS pricing_public_on_demand_cost,
        round(cost / 3 * 1.1, 6) AS pricing_public_on_demand_rate,
        'OnDemand' AS pricing_term,
        'Hrs' AS pricing_unit,
        MAP {{'servicename': code, 'instance_type': 'm5.large', 'region': 'us-east-1', 'product_family': 'Compute Instance'}} AS product,
        'Compute Instance' AS product_product_family,
        'us-east-1' AS product_region_code,
        code AS product_servicecode,
        'SKU' || (h % 97)::VARCHAR AS product_sku,
        MAP {{'user_team': (['ml', 'web', 'data'])[(h % 3)::INTEGER + 1], 'user_env': 'prod'}} AS resource_tags,
        CASE WHEN line_type = 'DiscountedUsage' THEN round(cost * 0.6, 6) END AS reservation_effective_cost,
        CASE WHEN line_type IN ('DiscountedUsage', 'RIFee') THEN 'arn:aws:ec2:us-east-1:111122223333:reserved-instances/r-1' END AS reservation_reservation_a_r_n,
        CASE WHEN line_type = 'RIFee' THEN round(cost * 0.1, 6) END AS reservation_unused_amortized_upfront_fee_for_billing_period,
        CASE WHEN line_type = 'RIFee' THEN round(cost * 0.05, 6) END AS reservation_unused_recurring_fee,
        CASE WHEN line_type LIKE 'SavingsPlan%' THEN 'arn:aws:savingsplans::111122223333:savingsplan/sp-1' END AS savings_plan_savings_plan_a_r_n,
        CASE WHEN line_type = 'SavingsPlanCoveredUsage' THEN round(cost * 0.7, 6) END AS savings_plan_savings_plan_effective_cost,
        CASE WHEN line_type = 'SavingsPlanRecurringFee' THEN cost END AS savings_plan_total_commitment_to_date,
        CASE WHEN line_type = 'SavingsPlanRecurringFee' THEN round(cost * 0.9, 6) END AS savings_plan_used_commitment
    FROM typed
    """


def _plain_copy(path: Path, listed: str, *, warehouse_format: bool = False) -> str:
    """Child code: CREATE TABLE AS of the Parquet files into a new DuckDB file at ``path``, in
    DuckDB's default file format or in the warehouse's."""
    from finops.warehouse import STORAGE_VERSION  # here, not in the child: its memory is measured

    config = {"storage_compatibility_version": STORAGE_VERSION} if warehouse_format else {}
    return f"""
        import duckdb
        started, cpu_started = time.perf_counter(), cpu()
        con = duckdb.connect({str(path)!r}, config={config!r})
        con.execute({f"CREATE TABLE t AS SELECT * FROM read_parquet({listed})"!r})
        extra = {{"rows": con.execute("SELECT count(*) FROM t").fetchone()[0]}}
        con.close()
    """


def run_child(code: str) -> dict:
    """Run ``code`` in a fresh Python; it prints one JSON line with its figures.

    ``code`` restarts the clock (``started``) after its imports: the figures time the load.
    """
    wrapper = textwrap.dedent(
        """
        import json, resource, sys, time
        def cpu():
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime
        started, cpu_started = time.perf_counter(), cpu()
        {body}
        elapsed = time.perf_counter() - started
        cpu_seconds = cpu() - cpu_started
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"seconds": elapsed, "cpu_seconds": cpu_seconds, "peak_mb": peak_kb / 1024, **extra}}))
        """
    ).format(body=textwrap.dedent(code).strip())
    done = subprocess.run([sys.executable, "-c", wrapper], check=False, capture_output=True, text=True, cwd=PROJECT)
    if done.returncode != 0:
        sys.exit(f"child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="line items to generate (default 1,000,000)")
    parser.add_argument("--files", type=int, default=None, help="Parquet files (default: one per 1M rows)")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed after)")
    args = parser.parse_args()
    files = args.files or max(1, args.rows // 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="bench-cur-", dir=args.dir))
    try:
        started = time.perf_counter()
        paths = generate(work / "export", args.rows, files)
        size = sum(p.stat().st_size for p in paths)
        print(
            f"generated {args.rows:,} CUR 2.0 line items in {len(paths)} Parquet file(s), "
            f"{size / 1e6:,.0f} MB, in {time.perf_counter() - started:.1f}s"
        )
        listed = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
        baseline = run_child(_plain_copy(work / "baseline.duckdb", listed))
        # The warehouse writes DuckDB 1.4's file format (finops.warehouse.STORAGE_VERSION), which
        # compresses faster than the default the baseline gets: the same copy in it, for comparison.
        same_format = run_child(_plain_copy(work / "baseline-format.duckdb", listed, warehouse_format=True))
        ingest = run_child(f"""
            from connectors import aws_cur
            from finops.warehouse import Warehouse
            started, cpu_started = time.perf_counter(), cpu()
            report = aws_cur.ingest(Warehouse({str(work / "warehouse.duckdb")!r}), {str(work / "export" / EXPORT)!r})
            [load] = report.loads
            extra = {{"rows": load.result.rows_loaded, "quarantined": load.result.rows_quarantined}}
        """)
        if ingest["rows"] != args.rows or baseline["rows"] != args.rows:
            sys.exit(f"row counts differ: generated {args.rows}, baseline {baseline['rows']}, ingest {ingest['rows']}")
        cores = os.cpu_count()
        stages = (
            ("plain DuckDB CTAS", baseline),
            ("CTAS, warehouse format", same_format),
            ("finops ingest aws-cur", ingest),
        )
        for label, figures in stages:
            rate = figures["rows"] / figures["seconds"]
            print(
                f"{label:>22}: {figures['seconds']:7.2f}s  {rate:>12,.0f} rows/s  peak memory {figures['peak_mb']:,.0f} MB"
                f"  (CPU {figures['cpu_seconds']:.2f}s)"
            )
        print(f"({cores} cores; the ingest includes checksums, checks, the FOCUS mapping and exact DECIMAL money)")
        ratio = (ingest["rows"] / ingest["seconds"]) / (baseline["rows"] / baseline["seconds"])
        # Other work on the machine stretches wall times; the CPU ratio shows what the code costs.
        cpu_ratio = baseline["cpu_seconds"] / ingest["cpu_seconds"]
        print(f"CPU-time ratio {cpu_ratio:.2f} (baseline CPU seconds / ingest CPU seconds, same rows)")
        same = (ingest["rows"] / ingest["seconds"]) / (same_format["rows"] / same_format["seconds"])
        print(f"ratio against the CTAS in the warehouse's file format {same:.2f}")
        print(f"ratio {ratio:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
