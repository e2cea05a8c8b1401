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


def test_ingest_names_ignored_columns_once_per_set_of_columns_not_once_per_file(tmp_path):
    """Hive-style exports (one part-0.csv per billing_period= folder) would repeat one line per month."""
    paths = []
    for n, period in enumerate(["2026-05", "2026-06", "2026-07", "2026-08"]):
        folder = tmp_path / f"billing_period={period}"
        folder.mkdir()
        written = write_csv(folder / "part-0.csv", make_rows(3, period=period), "1.0")
        extra = ["billing_period"] + (["x_note"] if n == 3 else [])
        lines = written.path.read_text().splitlines()
        values = ",".join([period, "hi"][: len(extra)])
        lines = [lines[0] + "," + ",".join(extra)] + [line + "," + values for line in lines[1:]]
        written.path.write_text("\n".join(lines) + "\n")
        paths.append(str(written.path))
    run = finops("ingest", "focus", *paths, "--warehouse", str(tmp_path / "w.duckdb"))
    assert run.returncode == 0, run.stderr
    notes = [line.strip() for line in run.stdout.splitlines() if "ignored non-FOCUS" in line]
    assert notes == [
        "3 files (part-0.csv …): ignored non-FOCUS columns billing_period",
        "part-0.csv: ignored non-FOCUS columns billing_period, x_note",
    ]
    assert "12 rows read, 12 loaded, 0 quarantined from 4 files" in run.stdout


def test_tables_in_a_log_keep_whole_cells_and_times_to_the_second(tmp_path):
    """A scheduled run's output goes to a log, not a terminal: rich would cut it at 80 columns."""
    import re

    written = write_csv(tmp_path / "focus.csv", make_rows(4), "1.0")
    warehouse = str(tmp_path / "w.duckdb")
    assert finops("ingest", "focus", str(written.path), "--warehouse", warehouse).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    run = subprocess.run([sys.executable, "-m", "finops.cli", "batches", "--warehouse", warehouse],
                         capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    [row] = [line for line in run.stdout.splitlines() if "focus" in line]
    assert "│ succeeded │" in row and "rows_quarantined" in run.stdout
    assert re.search(r"│ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d │", row), row
