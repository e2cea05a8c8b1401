"""The result cache (finops.analyses.cache): kept per warehouse state, never served for another.

Expected amounts are the rows this test writes, summed by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from finops.analyses import cache, forecast
from finops.analyses import chargeback as cb
from finops.config import parse_config
from finops.periods import Quarter
from finops.warehouse import Warehouse
from tests.finops.warehouse_rows import BASE_CONFIG, charge, insert_charges

Q3 = Quarter.parse("2026Q3")
CONFIG = parse_config(BASE_CONFIG)


@pytest.fixture
def wh(tmp_path: Path, monkeypatch) -> Warehouse:
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "cache"))
    cache.clear_memory()
    return Warehouse(tmp_path / "wh.duckdb")


def _totals(frame: pl.DataFrame) -> dict[str, Decimal]:
    return {r["department"]: r["total_cost"] for r in frame.iter_rows(named=True)}


def _counts() -> dict[str, int]:
    return dict(cache.stats)


def test_a_result_is_computed_once_per_warehouse_state_and_again_after_a_load(wh):
    insert_charges(wh, [charge(cost="100.25", SubAccountId="acct-a"), charge(cost="40.10", SubAccountId="acct-b")])
    before = _counts()
    first = cb.quarter_chargeback(wh, CONFIG, Q3)
    assert _totals(first) == {"Alpha": Decimal("100.25"), "Beta": Decimal("40.10")}
    misses = cache.stats["misses"] - before["misses"]
    assert misses >= 1

    again = cb.quarter_chargeback(wh, CONFIG, Q3)
    assert again.equals(first)
    assert cache.stats["misses"] - before["misses"] == misses  # nothing computed the second time
    assert cache.stats["hits"] > before["hits"]

    # A load changes the state: the next answer has the new row, not the kept one.
    token = wh.state_token()
    insert_charges(wh, [charge(cost="9.65", SubAccountId="acct-a", day="2026-08-03")])
    assert wh.state_token() != token
    after = cb.quarter_chargeback(wh, CONFIG, Q3)
    assert _totals(after) == {"Alpha": Decimal("109.90"), "Beta": Decimal("40.10")}
    assert cache.stats["misses"] - before["misses"] > misses


def test_another_process_reads_the_kept_result_from_disk(wh, tmp_path):
    insert_charges(wh, [charge(cost="12.34", SubAccountId="acct-c")])
    computed = cb.chargeback(wh, CONFIG, Q3)
    entries = list((tmp_path / "cache").glob("??/*.parquet"))
    assert entries, "nothing was written to the cache folder"

    cache.clear_memory()  # as a new process (the next department statement's kernel) starts
    before = _counts()
    read = cb.chargeback(wh, CONFIG, Q3)
    assert read.equals(computed)
    assert cache.stats["disk_hits"] > before["disk_hits"]
    assert cache.stats["misses"] == before["misses"]

    # A torn entry is computed again, with the same figures, and rewritten.
    for entry in entries:
        entry.write_bytes(b"PAR1 not parquet")
    cache.clear_memory()
    again = cb.chargeback(wh, CONFIG, Q3)
    assert again.equals(computed)
    assert cache.stats["misses"] > before["misses"]
    assert _totals(again) == {"Gamma": Decimal("12.34")}


def test_the_cli_in_another_process_reads_the_same_figures(wh, tmp_path):
    insert_charges(wh, [charge(cost="7.77", SubAccountId="acct-b", day="2026-09-30")])
    frame = cb.chargeback(wh, CONFIG, Q3)
    config = tmp_path / "finops.toml"
    config.write_text(BASE_CONFIG)
    command = [sys.executable, "-m", "finops.cli", "chargeback", "--quarter", "2026Q3", "--format", "csv",
               "--warehouse", str(wh.path), "--config", str(config)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "Beta" in out.stdout and "7.77" in out.stdout
    assert frame["total_cost"].sum() == Decimal("7.77")


def test_off_switch_keeps_nothing(wh, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_SWITCH, "off")
    insert_charges(wh, [charge(cost="5", SubAccountId="acct-a")])
    before = _counts()
    assert _totals(cb.chargeback(wh, CONFIG, Q3)) == {"Alpha": Decimal("5.00")}
    assert _counts() == before
    assert not (tmp_path / "cache").exists()


def test_other_arguments_and_other_configs_are_other_entries(wh):
    insert_charges(wh, [charge(cost="3", SubAccountId="acct-a"), charge(cost="4", Tags={"team": "beta"})])
    assert _totals(cb.chargeback(wh, CONFIG, Q3)) == {"Alpha": Decimal("3.00"), "Beta": Decimal("4.00")}
    no_beta = parse_config(BASE_CONFIG.replace('tag_values = ["beta"]', "tag_values = []"))
    assert _totals(cb.chargeback(wh, no_beta, Q3)) == {"Alpha": Decimal("3.00"), "Unallocated": Decimal("4.00")}
    assert cb.chargeback(wh, CONFIG, Quarter.parse("2026Q2")).is_empty()


def test_a_caller_renaming_a_result_does_not_change_the_kept_one(wh):
    insert_charges(wh, [charge(cost="2.50", SubAccountId="acct-a")])
    first = cb.chargeback(wh, CONFIG, Q3)
    first.columns = [c.upper() for c in first.columns]  # polars renames in place
    assert "department" in cb.chargeback(wh, CONFIG, Q3).columns


def test_only_arguments_whose_repr_pins_them_make_a_key():
    assert cache._pinned((Q3, CONFIG, date(2026, 7, 1), Decimal("1.5"), "effective", None, 3))
    assert not cache._pinned(pl.DataFrame({"a": [1]}))
    assert not cache._pinned({1, 2})
    assert not cache._pinned(lambda: 1)


def test_state_token_follows_the_file(tmp_path):
    wh = Warehouse(tmp_path / "none.duckdb")
    assert wh.state_token() is None
    insert_charges(wh, [charge(cost="1")])
    token = wh.state_token()
    assert token is not None and token == wh.state_token()
    with wh.reader() as con:  # reading does not change it
        con.execute("SELECT count(*) FROM charges").fetchone()
    assert wh.state_token() == token


def test_a_forecast_fit_is_kept_by_its_series(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "cache"))
    cache.clear_memory()
    start = date(2026, 1, 1)
    days = [start + timedelta(days=i) for i in range(42)]
    train = pl.DataFrame({"unique_id": ["a"] * 42, "ds": days, "y": [10.0 + (i % 7) for i in range(42)]})
    before = _counts()
    fitted = forecast._fit_forecast(train, 14, (80, 95))
    assert fitted.height == 14 * 2  # AutoETS and SeasonalNaive, 14 days each
    again = forecast._fit_forecast(train, 14, (80, 95))
    assert again.equals(fitted)
    assert cache.stats["misses"] - before["misses"] == 1
    changed = train.with_columns(pl.when(pl.col("ds") == days[-1]).then(50.0).otherwise(pl.col("y")).alias("y"))
    refit = forecast._fit_forecast(changed, 14, (80, 95))
    assert cache.stats["misses"] - before["misses"] == 2
    assert not refit.equals(fitted)


# A process that computes one entry: its compute appends a line to `marks` (so a test counts the
# computations), then sleeps, then returns a frame that says which process made it.
_COMPUTE_ONE_ENTRY = """
import os, sys, time
import polars as pl
from finops.analyses import cache

marks, seconds = sys.argv[1], float(sys.argv[2])

def compute():
    with open(marks, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(seconds)
    return pl.DataFrame({"made_by": [os.getpid()], "total": [123.45]})

frame = cache.cached_frame(cache.key_of("one entry"), compute)
print(frame["made_by"][0], frame["total"][0])
"""


def _start(tmp_path: Path, seconds: float) -> subprocess.Popen[str]:
    env = {**os.environ, cache.ENV_DIR: str(tmp_path / "cache")}
    command = [sys.executable, "-c", _COMPUTE_ONE_ENTRY, str(tmp_path / "marks"), str(seconds)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_marks(tmp_path: Path, lines: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (tmp_path / "marks").exists() and len((tmp_path / "marks").read_text().splitlines()) >= lines:
            return
        time.sleep(0.05)
    raise AssertionError(f"no process started computing {lines} time(s)")


def test_two_processes_asking_for_one_entry_at_once_compute_it_once(tmp_path):
    first = _start(tmp_path, 2.0)
    _wait_for_marks(tmp_path, 1)  # the first is computing: the second must wait for it, not compute too
    second = _start(tmp_path, 2.0)
    outputs = [p.communicate(timeout=120) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    assert (tmp_path / "marks").read_text().splitlines() == [str(first.pid)]
    assert outputs[0][0] == outputs[1][0] == f"{first.pid} 123.45\n"  # the second read the first's entry
    leftovers = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(leftovers) == 1 and leftovers[0].endswith(".parquet")  # the lock file went with the entry


def test_a_process_killed_while_computing_an_entry_leaves_it_to_the_next(tmp_path):
    first = _start(tmp_path, 60.0)
    _wait_for_marks(tmp_path, 1)
    second = _start(tmp_path, 0.0)
    time.sleep(1.0)
    assert second.poll() is None  # waiting for the first
    first.kill()
    first.wait()
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert out == f"{second.pid} 123.45\n"  # computed by the second, after the first died
    assert (tmp_path / "marks").read_text().splitlines() == [str(first.pid), str(second.pid)]
