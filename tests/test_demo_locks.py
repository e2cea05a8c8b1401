"""`finops demo` on a busy machine: it waits for whoever holds its folder or warehouse, then
succeeds, or fails with one line naming that process; it never deletes files under another run.

Seen before the fix: three demos started together deleted each other's exports mid-load
("No such file or directory: data/sample/gcp/…"), and `--fresh` unlinked a warehouse that
another process was writing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors import focus
from finops.demo.company import output_lock
from finops.exceptions import FolderBusyError, WarehouseBusyError
from finops.warehouse import Warehouse
from tests.focus_files import make_rows, write_csv

REPO = Path(__file__).resolve().parent.parent


def _python(code: str) -> subprocess.Popen:
    """Run ``code`` in another process; returns once it printed its first line ('holding')."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def hold_folder(folder: Path, seconds: float) -> subprocess.Popen:
    """Another `finops demo` (as far as the lock can tell) writing ``folder``."""
    return _python(f"""
        import time
        from pathlib import Path
        from finops.demo.company import output_lock
        with output_lock(Path({str(folder)!r}), timeout=5):
            print("holding", flush=True)
            time.sleep({seconds})
    """)


def hold_warehouse(path: Path, seconds: float) -> subprocess.Popen:
    return _python(f"""
        import duckdb, time
        con = duckdb.connect({str(path)!r}, read_only=True)
        print("holding", flush=True)
        time.sleep({seconds})
    """)


def finops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The installed `finops` command, as a user runs it (errors printed by its entry point)."""
    command = [str(Path(sys.executable).parent / "finops"), *args]
    return subprocess.run(command, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False)


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)


def test_a_second_run_waits_for_the_folder_then_gets_it(tmp_path):
    holder = hold_folder(tmp_path / "sample", seconds=2)
    told: list[str] = []
    try:
        started = time.monotonic()
        with output_lock(tmp_path / "sample", timeout=30, on_wait=told.append):
            waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert waited >= 1.0  # it really waited for the other process to let go
    assert len(told) == 1  # told once, not once per retry
    assert told[0].startswith(f"{tmp_path / 'sample'} is being written by process {holder.pid} (")


def test_a_dead_holder_does_not_block_the_next_run(tmp_path):
    holder = hold_folder(tmp_path / "sample", seconds=60)
    stop(holder)  # killed without cleaning up: the kernel drops its flock
    with output_lock(tmp_path / "sample", timeout=2):
        pass


def test_demo_fails_with_one_line_naming_the_run_that_holds_its_folder(tmp_path):
    holder = hold_folder(tmp_path / "sample", seconds=60)
    try:
        result = finops(
            "demo", "--out", str(tmp_path / "sample"), "--warehouse", str(tmp_path / "w.duckdb"),
            env={"FINOPS_LOCK_TIMEOUT": "1"},
        )  # fmt: skip
    finally:
        stop(holder)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert f"is being written by process {holder.pid}" in errors[0] and "waited 1s" in errors[0]
    assert "--out DIR" in output  # the hint says how to run beside it
    assert "Traceback" not in output
    assert not (tmp_path / "w.duckdb").exists()  # it gave up before touching anything


def test_fresh_never_deletes_a_warehouse_another_process_has_open(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    focus.ingest(wh, [write_csv(tmp_path / "a.csv", make_rows(7), "1.0").path])
    holder = hold_warehouse(wh.path, seconds=60)
    try:
        result = finops(
            "demo", "--fresh", "--out", str(tmp_path / "sample"), "--warehouse", str(wh.path),
            env={"FINOPS_LOCK_TIMEOUT": "1"},
        )  # fmt: skip
    finally:
        stop(holder)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    lines = output.splitlines()
    assert any(line.startswith("waiting: warehouse") and f"process {holder.pid}" in line for line in lines)
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and f"in use by process {holder.pid}" in errors[0], output
    assert wh.query("SELECT count(*) FROM charges").item() == 7  # still there, untouched


def test_delete_waits_for_the_lock_and_reports_whom_it_waited_for(tmp_path):
    told: list[str] = []
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout=1, on_wait=told.append)
    focus.ingest(wh, [write_csv(tmp_path / "a.csv", make_rows(3), "1.0").path])
    holder = hold_warehouse(wh.path, seconds=60)
    try:
        with pytest.raises(WarehouseBusyError):
            wh.delete()
        assert wh.path.exists()
    finally:
        stop(holder)
    assert len(told) == 1 and f"process {holder.pid}" in told[0] and "\n" not in told[0]
    assert wh.delete() is True and not wh.path.exists()
    assert wh.delete() is False


def test_folder_busy_error_is_a_finops_error_with_a_hint(tmp_path):
    holder = hold_folder(tmp_path / "sample", seconds=60)
    try:
        with pytest.raises(FolderBusyError) as err, output_lock(tmp_path / "sample", timeout=0.5):
            pass
    finally:
        stop(holder)
    assert "--out DIR" in err.value.hint
