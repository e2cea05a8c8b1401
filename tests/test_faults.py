"""Faults (issue 12, step 4): a load killed at random points, and readers running during a load.

The loads are real ``finops ingest focus`` processes. The expected totals come from the rows
``tests.focus_files`` wrote, summed here in Python Decimal, never from the warehouse's own
report. A load replaces its billing periods in one transaction, so after a SIGKILL the
warehouse must hold, for every billing period, exactly what it held before or exactly what
the killed load was writing; never a mix, never a double count.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

from finops.warehouse import Warehouse
from tests.focus_files import Written, make_rows, write_csv

REPO = Path(__file__).resolve().parent.parent

Totals = dict[str, tuple[int, Decimal]]
"""billing period 'YYYY-MM' → (rows, sum of BilledCost)."""


def _write_version(folder: Path, periods: dict[str, int], scale: str) -> Totals:
    """FOCUS CSV files, one per billing period; their totals computed from the rows written."""
    folder.mkdir(parents=True)
    totals: Totals = {}
    for period, n in periods.items():
        written: Written = write_csv(folder / f"{period}.csv", make_rows(n, period=period, scale=scale))
        totals[period] = (len(written.rows), written.total("BilledCost"))
    return totals


def _ingest(folder: Path, warehouse: Path, **kwargs) -> subprocess.Popen:
    """``finops ingest focus FOLDER`` in its own process, as a scheduled load runs it."""
    env = {**os.environ, "FINOPS_WAREHOUSE": str(warehouse), "FINOPS_LOCK_TIMEOUT": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "finops.cli", "ingest", "focus", str(folder)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _run_to_completion(folder: Path, warehouse: Path) -> float:
    """Load ``folder`` fully; return the wall time it took."""
    started = time.monotonic()
    proc = _ingest(folder, warehouse)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    return time.monotonic() - started


def _opened(proc: subprocess.Popen, warehouse: Path) -> bool:
    """Wait until ``proc`` has the warehouse file open (its batch is about to start); False if it ended first."""
    fd_dir = Path(f"/proc/{proc.pid}/fd")
    while proc.poll() is None:
        for fd in list(fd_dir.iterdir()) if fd_dir.exists() else []:
            try:
                if os.readlink(fd) == str(warehouse):
                    return True
            except OSError:
                pass
        time.sleep(0.01)
    return False


def _warehouse_totals(path: Path) -> Totals:
    """Rows and BilledCost per billing period, read through a read-only connection."""
    with Warehouse(path, lock_timeout=30).reader() as con:
        rows = con.execute(
            "SELECT strftime(BillingPeriodStart, '%Y-%m'), count(*), sum(BilledCost) FROM charges GROUP BY ALL"
        ).fetchall()
    return {period: (n, Decimal(total)) for period, n, total in rows}


def _batches(path: Path) -> list[tuple[int, str]]:
    with Warehouse(path, lock_timeout=30).reader() as con:
        return con.execute("SELECT batch_id, status FROM ingest_batches ORDER BY batch_id").fetchall()


def test_a_load_killed_at_random_points_leaves_old_or_new_data_and_a_rerun_completes(tmp_path):
    # Two versions of a restated quarter: different row counts and costs per month, and the new
    # one adds a month the old one lacks (its partition must be absent or complete, never partial).
    old = _write_version(tmp_path / "old", {"2026-07": 900, "2026-08": 1000}, scale="1")
    new = _write_version(tmp_path / "new", {"2026-07": 1300, "2026-08": 800, "2026-09": 700}, scale="3")
    assert old.keys() != new.keys() and all(old[p] != new[p] for p in old)
    versions = {"old": (tmp_path / "old", old), "new": (tmp_path / "new", new)}
    warehouse = tmp_path / "warehouse.duckdb"

    _run_to_completion(tmp_path / "old", warehouse)
    assert _warehouse_totals(warehouse) == old
    # How long a load holds the warehouse: from opening the file (the batch starts) to its exit.
    # The kills are spread over that time (one that lands after the commit must
    # leave the new data); before the file is open there is nothing to interrupt.
    proc = _ingest(tmp_path / "new", warehouse)
    assert _opened(proc, warehouse)
    opened = time.monotonic()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    full_load = time.monotonic() - opened
    assert _warehouse_totals(warehouse) == new

    rng = random.Random(12)
    state, current, succeeded = "new", new, 2
    mid_batch = after_commit = 0
    kills = 14
    for _ in range(kills):
        # Load the other version each time, so every kill interrupts a real change of the data.
        # Its periods replace those the warehouse holds; others (September, once loaded) stay.
        target = "new" if state == "old" else "old"
        folder = versions[target][0]
        expected = {**current, **versions[target][1]}
        before = _batches(warehouse)
        proc = _ingest(folder, warehouse)
        _opened(proc, warehouse)
        # The first part of a load, about 60% of it here, reads and checks the files before its
        # batch starts: a kill there has nothing to interrupt. Most kills go to the batch and after.
        delay = rng.uniform(0.45 * full_load, 0.98 * full_load)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)

        totals = _warehouse_totals(warehouse)  # the warehouse opens after every kill
        for period, value in expected.items():  # each billing period: exactly its old or its new totals
            assert totals.get(period) in (current.get(period), value), (period, state, target, totals)
        assert totals in (current, expected), (state, target, totals)  # and all periods of one load, or none
        batches = _batches(warehouse)
        new_batches = batches[len(before) :]
        assert batches[: len(before)] == [(b, "interrupted" if s == "running" else s) for b, s in before] or (
            batches[: len(before)] == before
        )
        if totals == expected:  # the kill came after the commit: exactly one more succeeded batch
            assert [s for _, s in new_batches] == ["succeeded"], new_batches
            state, current, succeeded = target, expected, succeeded + 1
            after_commit += 1
        else:  # the killed batch, if it got as far as recording itself, is not succeeded
            assert all(s != "succeeded" for _, s in new_batches), new_batches
            mid_batch += bool(new_batches)
        print(f"kill after {delay:.1f}s of {full_load:.1f}s: {'new data' if totals == expected else 'old data'},"
              f" batches {new_batches}")  # fmt: skip
        assert sum(s == "succeeded" for _, s in batches) == succeeded

    assert mid_batch >= 2, f"only {mid_batch} of {kills} kills landed inside a batch; the loads are too quick"

    # A re-run completes, marks the killed batches interrupted, and leaves the new data once.
    _run_to_completion(tmp_path / "new", warehouse)
    assert _warehouse_totals(warehouse) == new
    statuses = [s for _, s in _batches(warehouse)]
    assert "running" not in statuses
    assert statuses.count("succeeded") == succeeded + 1
    assert statuses.count("interrupted") >= mid_batch
    assert set(statuses) <= {"succeeded", "interrupted"}, statuses


CHARGEBACK = [sys.executable, "-m", "finops.cli", "chargeback", "--quarter", "2026Q3", "--basis", "billed"]
CHARGEBACK += ["--format", "csv"]

READER = """
import sys, time
from datetime import date
from decimal import Decimal
from pathlib import Path
from finops.analyses.spend import monthly_bill
from finops.warehouse import Warehouse

stop = Path(sys.argv[1])
allowed = [eval(arg) for arg in sys.argv[2:]]
wh = Warehouse(lock_timeout=120, on_wait=lambda why: print(f"waiting: {why}", flush=True))
calls = 0
while not stop.exists():
    bill = monthly_bill(wh, date(2026, 7, 1), date(2026, 10, 1))
    seen = {str(r["billing_period"])[:7]: (r["rows"], Decimal(r["billed_cost"])) for r in bill.iter_rows(named=True)}
    assert seen in allowed, seen
    calls += 1
    print(f"call {calls}: {len(seen)} months", flush=True)
    time.sleep(2)  # a dashboard refreshing (readers without a pause: test_a_load_gets_in_between_readers_that_never_pause)
print(f"done {calls}", flush=True)
"""


def test_readers_during_a_long_load_wait_and_never_crash(tmp_path):
    old = _write_version(tmp_path / "old", {"2026-07": 500, "2026-08": 500}, scale="1")
    new = _write_version(tmp_path / "new", {"2026-07": 4000, "2026-08": 3500, "2026-09": 3000}, scale="2")
    warehouse = tmp_path / "warehouse.duckdb"
    _run_to_completion(tmp_path / "old", warehouse)
    stop = tmp_path / "stop"
    env = {**os.environ, "FINOPS_WAREHOUSE": str(warehouse), "FINOPS_LOCK_TIMEOUT": "120"}

    def reader() -> subprocess.Popen:
        args = [sys.executable, "-c", textwrap.dedent(READER), str(stop), repr(old), repr(new)]
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    readers = [reader(), reader()]
    time.sleep(4)  # the readers are reading before the load starts
    load = _ingest(tmp_path / "new", warehouse)
    cli_runs = []
    while load.poll() is None:  # the CLI, too, as someone checking the chargeback during the load would
        cli_runs.append(subprocess.run(CHARGEBACK, cwd=REPO, env=env, capture_output=True, text=True, check=False))
    load_out, load_err = load.communicate(timeout=300)
    time.sleep(2)  # a read or two after the load
    stop.touch()
    outputs = [r.communicate(timeout=300) for r in readers]

    assert load.returncode == 0, load_out + load_err
    assert "10,500 loaded" in load_out
    assert _warehouse_totals(warehouse) == new
    for proc, (out, err) in zip(readers, outputs, strict=True):
        assert proc.returncode == 0, out + err
        assert "Traceback" not in err, err
        calls = int(out.strip().splitlines()[-1].removeprefix("done "))
        assert calls >= 2, out
        for line in out.splitlines():  # a wait is announced with the documented message, nothing else
            assert line.startswith(("call ", "done ", "waiting: warehouse ")), line
            if line.startswith("waiting: "):
                assert f"{warehouse} is in use by process " in line
    assert cli_runs, "the load finished before any CLI reader ran"
    cents = Decimal("0.01")
    allowed = [{p: total.quantize(cents) for p, (_, total) in data.items()} for data in (old, new)]
    for run in cli_runs:
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Traceback" not in run.stderr
        # A wait is announced with the documented line; the rest is the chargeback, old data or new.
        # Waits go to stderr, so stdout is the CSV alone (`finops chargeback --format csv > file` during a load).
        waits = [line for line in run.stderr.splitlines() if line.startswith("waiting: ")]
        assert all(f"{warehouse} is in use by process " in line for line in waits), waits
        rows = list(csv.DictReader(run.stdout.splitlines()))
        assert rows and list(rows[0]) == ["department", "month", "direct_cost", "shared_cost", "total_cost"], run.stdout
        by_month: dict[str, Decimal] = {}
        for row in rows:
            by_month[row["month"]] = by_month.get(row["month"], Decimal(0)) + Decimal(row["total_cost"])
        assert by_month in allowed, by_month  # every month equal to the bill to the cent


BACK_TO_BACK_READER = """
import sys, time
from pathlib import Path
from finops.warehouse import Warehouse

warehouse, stop, offset = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
wh = Warehouse(warehouse, lock_timeout=60, on_wait=lambda why: print(f"waiting: {why}", flush=True))
time.sleep(offset)
reads = 0
while not stop.exists():
    with wh.reader() as con:  # no pause between reads: a busy dashboard
        con.execute("SELECT count(*) FROM charges").fetchone()
        reads += 1
        print(f"read {reads}", flush=True)
        time.sleep(0.3)
print(f"done {reads}", flush=True)
"""


def test_a_load_gets_in_between_readers_that_never_pause(tmp_path):
    """Two readers whose connections overlap keep DuckDB's lock held all the time; DuckDB's lock is
    not fair, so a writer alone would wait until it gives up. A waiting writer leaves a marker, new
    readers wait for it, and it gets the lock as soon as the readers already in are done."""
    warehouse = tmp_path / "warehouse.duckdb"
    with Warehouse(warehouse).writer():
        pass  # the schema, so readers can read
    stop = tmp_path / "stop"
    args = [sys.executable, "-c", textwrap.dedent(BACK_TO_BACK_READER), str(warehouse), str(stop)]
    readers = [
        subprocess.Popen([*args, offset], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for offset in ("0", "0.15")
    ]
    try:
        assert _both_reading(readers)
        waits: list[str] = []
        started = time.monotonic()
        with Warehouse(warehouse, lock_timeout=30, on_wait=waits.append).writer() as con:
            waited = time.monotonic() - started
            con.execute("CREATE TABLE written_between_reads AS SELECT 1 AS x")
        assert list(tmp_path.glob("*.writer-waiting.*")) == []  # the marker goes once the writer is in
        time.sleep(1.5)  # the readers go on after it
    finally:
        stop.touch()
        outputs = [r.communicate(timeout=120) for r in readers]
    assert waits and f"{warehouse} is in use by process " in waits[0], waits
    assert waited < 15, f"the writer waited {waited:.1f}s"
    for proc, (out, err) in zip(readers, outputs, strict=True):
        assert proc.returncode == 0, out + err
        lines = out.splitlines()
        assert lines[-1].startswith("done "), out
        told = [line for line in lines if line.startswith("waiting: ")]
        assert all(f"{warehouse} is in use by process {os.getpid()} (" in line for line in told), told
    # At least one reader was held back for the writer, and said so once, naming it.
    assert any("which is waiting to write; reading after it" in out for out, _ in outputs), outputs
    with Warehouse(warehouse).reader() as con:
        assert con.execute("SELECT x FROM written_between_reads").fetchall() == [(1,)]


def _both_reading(readers: list[subprocess.Popen]) -> bool:
    """True once each reader has printed its first read (the lock is then held all the time)."""
    for proc in readers:
        line = proc.stdout.readline()
        if not line.startswith("read "):
            return False
    return True
