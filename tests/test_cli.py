"""The `finops` command as a user runs it: a real subprocess, its output and exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

from tests.focus_files import make_rows, write_csv


def finops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )


def test_ingest_prints_counts_totals_per_period_and_where_the_warehouse_is(tmp_path):
    july = make_rows(30, period="2026-07")
    august = make_rows(20, period="2026-08")
    august[4]["BilledCost"] = "n/a"
    written = write_csv(tmp_path / "focus.csv", july + august, "1.0")
    warehouse = tmp_path / "w.duckdb"
    run = finops("ingest", "focus", str(written.path), "--warehouse", str(warehouse))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "50 rows read, 49 loaded, 1 quarantined" in out
    july_billed = sum(Decimal(r["BilledCost"]) for r in july)
    assert f"{july_billed:,.2f}" in out
    assert "focus.csv row 35: BilledCost: cannot read 'n/a' as a number" in out
    assert f"Warehouse: {warehouse}" in out


def test_warehouse_from_environment_and_query_as_json_keeps_decimals_exact(tmp_path):
    written = write_csv(tmp_path / "focus.csv", make_rows(10), "1.0")
    env = {"FINOPS_WAREHOUSE": str(tmp_path / "env.duckdb")}
    assert finops("ingest", "focus", str(written.path), env=env).returncode == 0
    run = finops("query", "SELECT count(*) AS n, sum(BilledCost) AS billed FROM charges", "--format", "json", env=env)
    assert run.returncode == 0, run.stderr
    [row] = json.loads(run.stdout)
    assert row["n"] == 10 and Decimal(row["billed"]) == written.total("BilledCost")
    csv_run = finops("query", "SELECT count(*) AS n FROM charges", "--format", "csv", env=env)
    assert csv_run.stdout.splitlines() == ["n", "10"]


def test_query_is_read_only(tmp_path):
    written = write_csv(tmp_path / "focus.csv", make_rows(3), "1.0")
    warehouse = str(tmp_path / "w.duckdb")
    finops("ingest", "focus", str(written.path), "--warehouse", warehouse)
    run = finops("query", "DELETE FROM charges", "--warehouse", warehouse)
    assert run.returncode == 1
    assert "read-only" in run.stderr
    assert finops("query", "SELECT count(*) FROM charges", "--warehouse", warehouse, "--format", "csv").stdout.split() == [
        "count_star()", "3"]


def test_errors_are_one_clear_line_with_exit_1_and_no_traceback(tmp_path):
    other = tmp_path / "not-focus.csv"
    other.write_text("a,b\n1,2\n")
    run = finops("ingest", "focus", str(other), "--warehouse", str(tmp_path / "w.duckdb"))
    assert run.returncode == 1
    assert "not a FOCUS file: missing columns BilledCost" in run.stderr
    assert "Traceback" not in run.stderr
    missing = finops("query", "SELECT 1", "--warehouse", str(tmp_path / "none.duckdb"))
    assert missing.returncode == 1 and "no warehouse at" in missing.stderr and "finops demo" in missing.stderr
