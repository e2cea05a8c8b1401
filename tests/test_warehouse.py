"""The warehouse: locking between processes, schema versions and migrations, batch records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from decimal import Decimal

import duckdb
import pytest

from connectors import focus
from finops import warehouse as warehouse_module
from finops.exceptions import SchemaVersionError, WarehouseBusyError, WarehouseError
from finops.warehouse import Warehouse, resolve_path
from tests.focus_files import make_rows, write_csv
from tests.rollup import request_rollup_differences, rollup_differences


def hold_read_only(path, seconds: float) -> subprocess.Popen:
    """Another process (like a notebook kernel) holding a read-only connection open."""
    code = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path)!r}, read_only=True)
        con.execute("SELECT count(*) FROM charges").fetchall()
        print("holding", flush=True)
        time.sleep({seconds})
        con.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_path_comes_from_argument_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.delenv("FINOPS_WAREHOUSE", raising=False)
    assert resolve_path() == warehouse_module.DEFAULT_PATH
    monkeypatch.setenv("FINOPS_WAREHOUSE", str(tmp_path / "env.duckdb"))
    assert resolve_path() == tmp_path / "env.duckdb"
    assert resolve_path(tmp_path / "arg.duckdb") == tmp_path / "arg.duckdb"


def test_a_load_waits_for_a_reader_in_another_process_then_succeeds(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout=30)
    first = write_csv(tmp_path / "a.csv", make_rows(20), "1.0")
    focus.ingest(wh, [first.path])
    holder = hold_read_only(wh.path, seconds=2)
    try:
        started = time.monotonic()
        second = write_csv(tmp_path / "b.csv", make_rows(30, account="B"), "1.0")
        report = focus.ingest(wh, [second.path])
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert report.result.rows_loaded == 30
    assert waited >= 1.0  # it really had to wait for the other process
    assert wh.query("SELECT count(*) FROM charges").item() == 50


def test_a_load_that_cannot_get_the_lock_names_the_process_holding_it(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout=30)
    focus.ingest(wh, [write_csv(tmp_path / "a.csv", make_rows(5), "1.0").path])
    holder = hold_read_only(wh.path, seconds=60)
    try:
        impatient = Warehouse(wh.path, lock_timeout=1)
        with pytest.raises(WarehouseBusyError) as err:
            focus.ingest(impatient, [write_csv(tmp_path / "b.csv", make_rows(5, account="B"), "1.0").path])
    finally:
        holder.kill()
        holder.wait()
    message = str(err.value)
    assert f"process {holder.pid}" in message
    assert "is in use by" in message and "duckdb.connect" in message  # its command line
    assert "Traceback" not in message and "IO Error" not in message


def test_readers_in_two_processes_at_once(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    focus.ingest(wh, [write_csv(tmp_path / "a.csv", make_rows(5), "1.0").path])
    holder = hold_read_only(wh.path, seconds=5)
    try:
        assert wh.query("SELECT count(*) FROM charges").item() == 5
    finally:
        holder.kill()
        holder.wait()


def test_reading_a_missing_warehouse_says_how_to_make_one(tmp_path):
    with pytest.raises(WarehouseError, match="no warehouse at") as err:
        Warehouse(tmp_path / "none.duckdb").query("SELECT 1")
    assert "finops demo" in err.value.hint


def test_money_columns_are_decimal_and_schema_is_versioned(wh):
    wh.migrate()
    types = dict(wh.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'charges'").rows())
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        assert types[column] == "DECIMAL(38,10)"
    assert types["Tags"] == "MAP(VARCHAR, VARCHAR)"
    assert types["ChargePeriodStart"] == "TIMESTAMP"
    llm = dict(wh.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'llm_requests'").rows())
    assert llm["cost"] == "DECIMAL(38,10)" and llm["cached_input_tokens"] == "BIGINT"
    assert wh.query("SELECT max(version) FROM schema_version").item() == warehouse_module.SCHEMA_VERSION


def test_a_new_migration_upgrades_an_existing_warehouse_and_keeps_its_data(tmp_path, monkeypatch):
    wh = Warehouse(tmp_path / "w.duckdb")
    written = write_csv(tmp_path / "a.csv", make_rows(12), "1.0")
    focus.ingest(wh, [written.path])
    # A later version of finops ships migration N+1.
    n = warehouse_module.SCHEMA_VERSION
    monkeypatch.setattr(warehouse_module, "MIGRATIONS",
                        [*warehouse_module.MIGRATIONS, ["ALTER TABLE charges ADD COLUMN x_Future VARCHAR"]])
    monkeypatch.setattr(warehouse_module, "SCHEMA_VERSION", len(warehouse_module.MIGRATIONS))
    with pytest.raises(SchemaVersionError, match=f"has schema version {n}, this finops needs {n + 1}") as err:
        wh.query("SELECT 1")
    assert "finops migrate" in err.value.hint
    wh.migrate()
    assert wh.query("SELECT count(*), count(x_Future), sum(BilledCost) FROM charges").row(0) == (
        12, 0, written.total("BilledCost"))


def test_a_version_1_warehouse_gains_the_native_columns_and_state_tables(tmp_path, monkeypatch):
    wh = Warehouse(tmp_path / "w.duckdb")
    monkeypatch.setattr(warehouse_module, "MIGRATIONS", warehouse_module.MIGRATIONS[:1])
    monkeypatch.setattr(warehouse_module, "SCHEMA_VERSION", 1)
    written = write_csv(tmp_path / "a.csv", make_rows(7), "1.2")
    focus.ingest(wh, [written.path])
    monkeypatch.undo()
    # The connector asks for its state first: that upgrades the warehouse.
    assert wh.source_state("aws-cur") == {}
    columns = set(wh.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'charges'")["column_name"])
    assert set(warehouse_module.CHARGES_COLUMNS) == columns
    assert wh.query("SELECT count(*), sum(BilledCost), count(x_UsageType) FROM charges").row(0) == (
        7, written.total("BilledCost"), 0)
    # The rollup (schema v5) is filled from the charges already loaded.
    assert wh.query("SELECT sum(x_LineItems)::BIGINT, sum(BilledCost) FROM charges_daily").row(0) == (
        7, written.total("BilledCost"))
    assert rollup_differences(wh) == (0, 0)
    assert wh.query("SELECT max(version) FROM schema_version").item() == warehouse_module.SCHEMA_VERSION


def test_the_daily_rollup_sums_every_line_and_follows_each_replaced_partition(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    july = write_csv(tmp_path / "july.csv", make_rows(900, period="2026-07"), "1.0")
    august = write_csv(tmp_path / "august.csv", make_rows(200, period="2026-08"), "1.0")
    other = write_csv(tmp_path / "other.csv", make_rows(50, account="999988887777", period="2026-07"), "1.0")
    focus.ingest(wh, [july.path, august.path, other.path])
    totals = "SELECT {n}, sum(BilledCost), sum(EffectiveCost), sum(ListCost) FROM {t}"
    assert wh.query(totals.format(n="sum(x_LineItems)::BIGINT", t="charges_daily")).row(0) == (
        1150, *(july.total(c) + august.total(c) + other.total(c) for c in ("BilledCost", "EffectiveCost", "ListCost")))
    # make_rows repeats its lines every 420 (days, services, accounts, SKUs, tags) with other resources
    # and amounts: 900 lines of July are 420 rollup rows.
    assert wh.query("SELECT count(*) FROM charges_daily").item() == 420 + 200 + 50
    assert rollup_differences(wh) == (0, 0)

    # A restated July of the first account: its rollup rows are replaced, no other's are touched.
    restated = write_csv(tmp_path / "july-restated.csv", make_rows(120, period="2026-07", scale="3"), "1.0")
    focus.ingest(wh, [restated.path])
    assert rollup_differences(wh) == (0, 0)
    per_month = dict(wh.query(
        "SELECT strftime(BillingPeriodStart, '%Y-%m') || '/' || BillingAccountId, sum(BilledCost) FROM charges_daily"
        " GROUP BY 1").rows())
    assert per_month == {"2026-07/111122223333": restated.total("BilledCost"),
                         "2026-08/111122223333": august.total("BilledCost"),
                         "2026-07/999988887777": other.total("BilledCost")}
    assert wh.query("SELECT sum(x_LineItems)::BIGINT FROM charges_daily").item() == 370

    # Rows another partition loses by ``also_delete_where`` leave its rollup in the same transaction.
    with wh.load("test", "mem://") as batch:
        batch.stage("rows", "SELECT 'test' AS x_Source, 'acct' AS BillingAccountId,"
                            " TIMESTAMP '2026-09-01' AS BillingPeriodStart, TIMESTAMP '2026-09-02 13:00' AS ChargePeriodStart,"
                            " 1.5::DECIMAL(38,10) AS BilledCost")
        batch.replace_partitions("charges", "SELECT * FROM rows", partition_by=warehouse_module.PARTITION_COLUMNS,
                                 rows_read=1, also_delete_where="BillingAccountId = '999988887777'")
    assert rollup_differences(wh) == (0, 0)
    assert wh.query("SELECT count(*) FROM charges_daily WHERE BillingAccountId = '999988887777'").item() == 0
    assert wh.query("SELECT ChargePeriodStart, x_LineItems FROM charges_daily WHERE x_Source = 'test'").row(0) == (
        datetime(2026, 9, 2), 1)

    # A load that writes a few columns is rolled up by those alone: the others are NULL, as a
    # rollup over every column gives them. With 3 threads, its rows are read as 3 scans.
    with wh.load("test", "mem://") as batch:
        batch.execute("SET threads = 3")
        batch.stage("rows", "SELECT 'test' AS x_Source, 'acct' AS BillingAccountId, TIMESTAMP '2026-10-01' AS"
                            " BillingPeriodStart, ('2026-10-0' || (1 + i % 2))::TIMESTAMP AS ChargePeriodStart,"
                            " (i + 0.25)::DECIMAL(38,10) AS BilledCost, 'x' || i % 3 AS SkuId FROM range(12) AS t(i)")
        batch.replace_partitions("charges", "SELECT * FROM rows", partition_by=warehouse_module.PARTITION_COLUMNS,
                                 rows_read=12)
    assert rollup_differences(wh) == (0, 0)
    october = wh.query("SELECT count(*), sum(x_LineItems)::BIGINT, sum(BilledCost), count(ServiceName), count(Tags)"
                       " FROM charges_daily WHERE BillingPeriodStart = '2026-10-01'").row(0)
    assert october == (6, 12, Decimal("69.00"), 0, 0)  # 2 days × 3 SKUs; 0.25 … 11.25


def test_a_new_warehouse_file_is_in_duckdb_1_4_format_and_an_older_file_keeps_its_own(tmp_path):
    storage = "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()"
    new = Warehouse(tmp_path / "new.duckdb")
    written = write_csv(tmp_path / "a.csv", make_rows(40), "1.0")
    focus.ingest(new, [written.path])
    assert new.query(storage).item() == "v1.4.0+"
    # A file in DuckDB's default format, as earlier finops versions made them, is read and loaded as it is.
    with duckdb.connect(str(tmp_path / "old.duckdb")) as con:
        assert con.execute(storage).fetchone()[0] == "v1.0.0+"
    old = Warehouse(tmp_path / "old.duckdb")
    focus.ingest(old, [written.path])
    assert old.query(storage).item() == "v1.0.0+"
    for wh in (new, old):
        assert wh.query("SELECT count(*), sum(BilledCost) FROM charges").row(0) == (40, written.total("BilledCost"))
        assert rollup_differences(wh) == (0, 0)


def _finops(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finops.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "250", **env}, timeout=300)  # fmt: skip


def _fingerprints(path) -> dict[str, tuple]:
    """Every table's row count and sum of row hashes: equal only when the rows are."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
        return {f"{schema}.{t}": con.execute(f'SELECT count(*), sum(hash(t)) FROM "{schema}"."{t}" AS t').fetchone()
                for schema, t in tables}  # fmt: skip


def test_migrate_rewrite_file_moves_an_older_file_to_the_current_format_with_every_row(tmp_path):
    storage = "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()"
    path = tmp_path / "old.duckdb"
    duckdb.connect(str(path)).close()  # DuckDB's default format, as earlier finops versions made them
    wh = Warehouse(path)
    july = make_rows(300, period="2026-07")
    july[7]["BilledCost"] = "n/a"  # one row for the quarantine
    focus.ingest(wh, [write_csv(tmp_path / "july.csv", july, "1.0").path])
    restated = write_csv(tmp_path / "july-restated.csv", make_rows(300, period="2026-07", scale="2"), "1.0")
    focus.ingest(wh, [restated.path])  # the first July's rows are deleted: space the rewrite gives back
    with duckdb.connect(str(path)) as con:  # an analyst's own table and view live in the file too
        con.execute("CREATE SCHEMA scratch; CREATE TABLE scratch.notes AS SELECT 'check July' AS note;"
                    " CREATE VIEW july AS SELECT * FROM charges WHERE BillingPeriodStart = DATE '2026-07-01'")
    before = _fingerprints(path)
    assert before["main.charges"][0] == 300 and before["main.quarantine"][0] == 1
    assert before["main.ingest_batches"][0] == 2 and before["scratch.notes"][0] == 1

    hint = _finops("migrate", "--warehouse", str(path))
    assert hint.returncode == 0, hint.stderr
    assert "v1.0.0+ storage format" in hint.stdout and "finops migrate --rewrite-file" in hint.stdout

    # A reader holding the file makes the rewrite give up after the lock timeout, changing nothing.
    reader = hold_read_only(path, 6)
    busy = _finops("migrate", "--rewrite-file", "--warehouse", str(path), FINOPS_LOCK_TIMEOUT="1")
    reader.wait()
    assert busy.returncode != 0 and "in use by" in busy.stderr
    assert _fingerprints(path) == before and wh.query(storage).item() == "v1.0.0+"

    (tmp_path / "old.duckdb.rewrite").write_text("left by an interrupted rewrite")
    size_before = path.stat().st_size
    run = _finops("migrate", "--rewrite-file", "--warehouse", str(path))
    assert run.returncode == 0, run.stderr
    assert "storage format v1.0.0+ → v1.4.0+" in run.stdout and "each table checked row for row" in run.stdout
    assert wh.query(storage).item() == "v1.4.0+"
    assert _fingerprints(path) == before
    assert wh.query("SELECT count(*) FROM july").item() == 300
    assert path.stat().st_size < size_before
    assert sorted(p.name for p in tmp_path.glob("old.duckdb*")) == ["old.duckdb"]
    assert "storage format" not in _finops("migrate", "--warehouse", str(path)).stdout

    # The rewritten warehouse loads on: the next batch, the same totals per month, the rollup in step.
    august = write_csv(tmp_path / "august.csv", make_rows(50, period="2026-08"), "1.0")
    focus.ingest(wh, [august.path])
    assert wh.query("SELECT max(batch_id) FROM ingest_batches").item() == 3
    assert wh.query("SELECT count(*), sum(BilledCost) FROM charges").row(0) == (
        350, restated.total("BilledCost") + august.total("BilledCost"))
    assert rollup_differences(wh) == (0, 0)


def test_source_state_is_saved_with_the_load_it_describes(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    with wh.load("test", "mem://") as batch:
        batch.stage("rows", "SELECT 'test' AS x_Source, 'acct' AS BillingAccountId, TIMESTAMP '2026-07-01' AS BillingPeriodStart, 1.5::DECIMAL(38,10) AS BilledCost")
        batch.replace_partitions("charges", "SELECT * FROM rows", partition_by=warehouse_module.PARTITION_COLUMNS,
                                 rows_read=1, state={"manifest/2026-07": {"sha256": "abc"}})
    # A load that fails inside its transaction (here: a row unaccounted for) keeps neither.
    with pytest.raises(WarehouseError, match="2 rows read but 1 loaded"), wh.load("test", "mem://") as batch:
        batch.stage("rows", "SELECT 'test' AS x_Source, 'acct' AS BillingAccountId, TIMESTAMP '2026-07-01' AS BillingPeriodStart, 9::DECIMAL(38,10) AS BilledCost")
        batch.replace_partitions("charges", "SELECT * FROM rows", partition_by=warehouse_module.PARTITION_COLUMNS,
                                 rows_read=2, state={"manifest/2026-07": {"sha256": "def"}})
    assert wh.source_state("test", "manifest/") == {"manifest/2026-07": {"sha256": "abc"}}
    assert wh.query("SELECT sum(BilledCost) FROM charges").item() == Decimal("1.5")


def test_helpers_stage_on_other_threads_into_tables_the_batch_reads(tmp_path):
    """LoadBatch.helper: a batch on a cursor of the load's connection, for another thread. Its
    staged tables are seen by the load (temporary ones would not be), it finds its own and the
    warehouse's tables by bare name, and its session is in UTC like the load's."""
    from concurrent.futures import ThreadPoolExecutor

    wh = Warehouse(tmp_path / "my-warehouse.duckdb")  # a database name that needs quoting
    with wh.load("test", "mem://") as batch:
        batch.stage("prices", "SELECT * FROM (VALUES (1, 2.50::DECIMAL(38,10)), (2, 4.00)) AS t(k, price)")
        with batch.helper() as first, batch.helper() as second:

            def stage(pair):
                helper, k = pair
                helper.stage(f"part_{k}", f"SELECT {k} AS k, TIMESTAMPTZ '2026-07-01 00:30:00+02' :: TIMESTAMP AS started")
                # its own staged table and the warehouse's by bare name
                helper.stage(f"part_{k}", f"SELECT k + 10 AS k, started FROM part_{k}", append=True)
                return helper.table_name(f"part_{k}"), helper.execute("SELECT count(*) FROM ingest_batches").fetchone()[0]

            with ThreadPoolExecutor(2) as pool:
                staged = list(pool.map(stage, [(first, 1), (second, 2)]))
        assert [n for _, n in staged] == [1, 1]
        assert batch.table_name("prices") == '"prices"'
        union = " UNION ALL ".join(f"SELECT * FROM {name}" for name, _ in staged)
        rows = batch.execute(f"SELECT k, strftime(started, '%H:%M') FROM ({union}) ORDER BY k").fetchall()
        assert rows == [(1, "22:30"), (2, "22:30"), (11, "22:30"), (12, "22:30")]
        batch.stage(
            "rows",
            "SELECT 'test' AS x_Source, 'acct' AS BillingAccountId, TIMESTAMP '2026-07-01' AS BillingPeriodStart,"
            f" p.price AS BilledCost FROM ({union}) AS s JOIN prices AS p ON p.k = s.k % 10",
        )
        result = batch.replace_partitions("charges", "SELECT * FROM rows", partition_by=warehouse_module.PARTITION_COLUMNS,
                                          rows_read=4)
    assert result.rows_loaded == 4
    assert wh.query("SELECT sum(BilledCost) FROM charges").item() == Decimal("13.00")


def test_a_warehouse_from_a_newer_finops_is_refused(tmp_path, monkeypatch):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.migrate()
    monkeypatch.setattr(warehouse_module, "SCHEMA_VERSION", warehouse_module.SCHEMA_VERSION - 1)
    with pytest.raises(SchemaVersionError, match="newer than this finops"):
        wh.query("SELECT 1")


def test_a_killed_load_leaves_the_previous_data_and_the_next_load_completes(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout=30)
    july = write_csv(tmp_path / "july.csv", make_rows(40), "1.0")
    focus.ingest(wh, [july.path])
    big = write_csv(tmp_path / "restated.csv", make_rows(200_000, scale="2"), "1.0")
    code = textwrap.dedent(f"""
        from connectors import focus
        from finops.warehouse import Warehouse
        import sys
        def progress(description, done, total):
            if description.startswith("reading"):
                print("loading", flush=True)
        focus.ingest(Warehouse({str(wh.path)!r}), [{str(big.path)!r}], progress=progress)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert proc.stdout.readline().strip() == "loading"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wh.query("SELECT count(*), sum(BilledCost) FROM charges").row(0) == (40, july.total("BilledCost"))
    assert rollup_differences(wh) == (0, 0)
    report = focus.ingest(wh, [july.path])  # the next writer marks the dead batch and loads
    assert report.result.rows_loaded == 40
    statuses = wh.query("SELECT status FROM ingest_batches ORDER BY batch_id")["status"].to_list()
    assert statuses == ["succeeded", "interrupted", "succeeded"]


def test_new_readers_wait_for_a_waiting_writer_but_not_for_a_dead_one_or_their_own_reads(tmp_path):
    """The marker a waiting writer leaves (``<warehouse>.writer-waiting.<pid>``) holds new readers
    back until their timeout; a dead writer's marker holds nobody, nor does a read this process
    has open already (the writer waits for that one anyway)."""
    import json

    path = tmp_path / "w.duckdb"
    with Warehouse(path).writer():
        pass
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    marker = tmp_path / f"w.duckdb.writer-waiting.{writer.pid}"
    marker.write_text(json.dumps({"pid": writer.pid, "until": time.time() + 60}))
    told: list[str] = []
    wh = Warehouse(path, lock_timeout=1.5, on_wait=told.append)
    try:
        started = time.monotonic()
        with wh.reader() as con:
            waited = time.monotonic() - started
            nested = time.monotonic()
            with wh.reader() as inner:  # e.g. an analysis that reads inside another's read
                assert inner.execute("SELECT 1").fetchone() == (1,)
            nested = time.monotonic() - nested
            assert con.execute("SELECT count(*) FROM charges").fetchone() == (0,)
    finally:
        writer.kill()
        writer.wait()
    assert 1.4 <= waited < 5, waited
    assert nested < 1, nested
    assert len(told) == 1, told  # said once, naming the writer
    assert told[0].startswith(f"warehouse {path} is in use by process {writer.pid} ("), told
    assert told[0].endswith("import time; time.sleep(60)), which is waiting to write; reading after it"), told
    # The writer is gone: its marker is stale and nobody waits for it.
    started = time.monotonic()
    with wh.reader():
        pass
    assert time.monotonic() - started < 1


def test_memory_limit_holds_every_connection_and_a_bad_value_names_the_variable(tmp_path, monkeypatch):
    """Loads stage millions of rows in temporary tables: DuckDB's default limit (80% of the machine)
    would let them take that much. Every connection gets FINOPS_MEMORY_LIMIT (default 2GB)."""
    wh = Warehouse(tmp_path / "w.duckdb")
    for limit, shown in ((None, "1.8 GiB"), ("300MB", "286.1 MiB")):
        if limit:
            monkeypatch.setenv("FINOPS_MEMORY_LIMIT", limit)
        with wh.writer() as con:
            assert con.execute("SELECT current_setting('memory_limit')").fetchone() == (shown,)
        with wh.reader() as con:
            assert con.execute("SELECT current_setting('memory_limit')").fetchone() == (shown,)
    monkeypatch.setenv("FINOPS_MEMORY_LIMIT", "lots")
    with pytest.raises(WarehouseError, match=r"FINOPS_MEMORY_LIMIT='lots' is not a memory size") as caught:
        with wh.reader():
            pass
    assert "2GB or 500MB" in caught.value.hint


def test_ibis_reads_inline_row_level_subexpressions_and_keep_grouped_ones_computed_once(wh):
    """A relation used twice (rows joined back to a decision over their distinct values) is inlined
    (DuckDB would write every row out first); a grouped one is still computed once. Same figures."""
    with wh.writer() as con:
        con.execute(
            "CREATE TABLE calls AS SELECT i % 7 AS team, CAST(i AS DECIMAL(38, 10)) * 0.01 AS cost FROM range(1000) t(i)"
        )
    with wh.ibis() as backend:
        calls = backend.table("calls").mutate(double=lambda t: t.cost * 2)  # row level, read twice below
        per_team = calls.group_by("team").aggregate(team_cost=calls.cost.sum())  # grouped, read twice below
        joined = calls.join(per_team, "team")
        expr = joined.aggregate(total=joined.double.sum(), teams=joined.team.nunique()).cross_join(
            per_team.aggregate(largest=per_team.team_cost.max(), smallest=per_team.team_cost.min())
        )
        sql = backend.compile(expr)
        got = expr.to_polars().row(0, named=True)
    assert sql.count("NOT MATERIALIZED") == 1 and sql.count(" AS (") >= 1, sql
    team_costs = [sum(Decimal(i) / 100 for i in range(1000) if i % 7 == team) for team in range(7)]
    assert got == {"total": Decimal(9990), "teams": 7, "largest": max(team_costs), "smallest": min(team_costs)}


def test_readers_in_several_processes_spill_past_their_memory_limit_without_crashing(tmp_path):
    """Every process spills to a folder of its own: in DuckDB's shared default (``<warehouse>.tmp``)
    concurrent spills overwrite each other's blocks and the readers die (SIGSEGV), as notebook
    kernels rendering department statements did at 20M line items."""
    wh = Warehouse(tmp_path / "wh.duckdb")
    wh.migrate()
    with wh.writer() as con:
        con.execute("CREATE TABLE big AS SELECT range AS a, md5(range::VARCHAR) AS b FROM range(4000000)")
        expected = con.execute("SELECT sum(hash(a, b)) FROM big").fetchone()[0]
    stale = tmp_path / "wh.duckdb.tmp-999999"  # a killed process's folder (no such pid)
    stale.mkdir()
    code = textwrap.dedent(f"""
        from finops.warehouse import Warehouse
        with Warehouse({str(wh.path)!r}).reader() as con:
            con.execute("SET threads = 1")
            print(con.execute("SELECT sum(hash(a, b)) FROM (SELECT a, b FROM big ORDER BY b, a)").fetchone()[0])
    """)
    env = os.environ | {"FINOPS_MEMORY_LIMIT": "100MB"}
    readers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    results = [(reader.communicate(timeout=300)[0].split()[-1:], reader.returncode) for reader in readers]
    assert results == [([str(expected)], 0)] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wh.duckdb"]  # each removed its own, and the stale one


def _load_calls(wh: Warehouse, calls: list[tuple], **replace) -> None:
    """Load model calls (request_id, start, end, task_id, input, output, cost[, x_Source; else 'otel'])
    as a keyed trace load does."""

    def source(call: tuple) -> str:
        name = call[7] if len(call) > 7 else "otel"
        return "NULL" if name is None else "'" + name.replace("'", "''") + "'"

    values = ", ".join(
        f"('{r}', TIMESTAMP '{s}', TIMESTAMP '{e}', '{t}', {i}, {o}, {c}::DECIMAL(38,10), {source(call)})"
        for call in calls
        for r, s, e, t, i, o, c in [call[:7]]
    )
    with wh.load("otel", "mem://") as batch:
        batch.stage("calls", f"SELECT 'openai' AS provider, 'gpt-test' AS model, 'priced' AS cost_source,"
                             f" * FROM (VALUES {values}) AS v(request_id, period_start, period_end, task_id,"
                             " input_tokens, output_tokens, cost, x_Source)")
        batch.replace_partitions("llm_requests", "SELECT * FROM calls", partition_by=("x_Source", "request_id"),
                                 rows_read=len(calls), **replace)


@pytest.mark.parametrize("days, sources", [(None, None), (1, None), (None, 1)],
                         ids=["days-listed", "days-joined", "sources-joined"])  # fmt: skip
def test_the_request_rollup_sums_each_days_calls_and_follows_every_reload(tmp_path, monkeypatch, days, sources):
    # Past either limit, the rebuild joins the days instead of listing them.
    if days is not None:
        monkeypatch.setattr(warehouse_module, "_LISTED_REQUEST_DAYS", days)
    if sources is not None:
        monkeypatch.setattr(warehouse_module, "_LISTED_REQUEST_SOURCES", sources)
    wh = Warehouse(tmp_path / "w.duckdb")
    calls = [
        ("r1", "2026-07-01 09:00", "2026-07-01 09:00:02", "t1", 100, 10, "0.5"),
        ("r2", "2026-07-01 09:05", "2026-07-01 09:05:03", "t1", 200, 20, "1.25"),
        ("r3", "2026-07-01 23:59", "2026-07-02 00:00:01", "t1", 0, 0, "0.01"),  # no tokens: a row of its own
        ("r4", "2026-07-02 10:00", "2026-07-02 10:00:01", "t1", 50, 5, "0.2"),
        ("r5", "2026-07-02 11:00", "2026-07-02 11:00:01", "t2", 70, 7, "0.3"),
    ]
    _load_calls(wh, calls)
    rows = wh.query("SELECT period_start::DATE::VARCHAR, task_id, x_HasTokens, x_Calls, input_tokens, output_tokens,"
                    " cost, period_start, period_end FROM llm_requests_daily ORDER BY ALL").rows()
    assert [r[:7] for r in rows] == [
        ("2026-07-01", "t1", False, 1, 0, 0, Decimal("0.01")),
        ("2026-07-01", "t1", True, 2, 300, 30, Decimal("1.75")),
        ("2026-07-02", "t1", True, 1, 50, 5, Decimal("0.2")),
        ("2026-07-02", "t2", True, 1, 70, 7, Decimal("0.3")),
    ]
    # A row's period_start is its first call, period_end its last call's end.
    assert rows[1][7:] == (datetime(2026, 7, 1, 9), datetime(2026, 7, 1, 9, 5, 3))
    assert rows[0][8] == datetime(2026, 7, 2, 0, 0, 1)
    assert request_rollup_differences(wh) == (0, 0)

    # r2 restated onto the 3rd: both its old and its new day are rebuilt, no other.
    _load_calls(wh, [("r2", "2026-07-03 08:00", "2026-07-03 08:00:01", "t1", 200, 20, "1.5")])
    assert request_rollup_differences(wh) == (0, 0)
    by_day = dict(wh.query("SELECT period_start::DATE::VARCHAR, sum(cost) FROM llm_requests_daily GROUP BY 1").rows())
    assert by_day == {"2026-07-01": Decimal("0.51"), "2026-07-02": Decimal("0.5"), "2026-07-03": Decimal("1.5")}

    # Calls another load deletes by ``also_delete_where`` leave the rollup in the same transaction.
    _load_calls(wh, [("r6", "2026-07-04 08:00", "2026-07-04 08:00:01", "t3", 1, 1, "0.1")],
                also_delete_where="task_id = 't2'")
    assert request_rollup_differences(wh) == (0, 0)
    assert wh.query("SELECT sum(x_Calls)::BIGINT, sum(cost), count(*) FILTER (task_id = 't2') FROM llm_requests_daily"
                    ).row(0) == (5, Decimal("2.31"), 0)

    # One load's calls from several sources (a quote in one name, none in another), each on its
    # own days: every (source, day) is rebuilt, and only those.
    _load_calls(wh, [("a1", "2026-07-01 12:00", "2026-07-01 12:00:01", "t4", 3, 3, "0.7", "agent's traces"),
                     ("a2", "2026-07-05 12:00", "2026-07-05 12:00:01", "t4", 3, 3, "0.8", None),
                     ("a3", "2026-07-05 13:00", "2026-07-05 13:00:01", "t4", 3, 3, "0.9", "otel")])
    assert request_rollup_differences(wh) == (0, 0)
    # a1 and a2 move, and the otel calls of task t3 go: three sources' days rebuilt in one load.
    _load_calls(wh, [("a1", "2026-07-06 12:00", "2026-07-06 12:00:01", "t4", 3, 3, "0.75", "agent's traces"),
                     ("a2", "2026-07-01 12:00", "2026-07-01 12:00:01", "t4", 3, 3, "0.85", None)],
                also_delete_where="task_id = 't3'")
    assert request_rollup_differences(wh) == (0, 0)
    by_source_day = wh.query("SELECT coalesce(x_Source, '-'), period_start::DATE::VARCHAR, sum(x_Calls)::BIGINT,"
                             " sum(cost) FROM llm_requests_daily GROUP BY ALL ORDER BY ALL").rows()
    assert by_source_day == [
        ("-", "2026-07-01", 1, Decimal("0.85")),
        ("agent's traces", "2026-07-06", 1, Decimal("0.75")),
        ("otel", "2026-07-01", 2, Decimal("0.51")),
        ("otel", "2026-07-02", 1, Decimal("0.2")),
        ("otel", "2026-07-03", 1, Decimal("1.5")),
        ("otel", "2026-07-05", 1, Decimal("0.9")),
    ]

    with wh.load("otel", "mem://") as batch:  # a load of no calls rebuilds no day
        batch.stage("none", "SELECT * FROM llm_requests LIMIT 0")
        empty = batch.replace_partitions("llm_requests", "SELECT * FROM none", partition_by=("x_Source", "request_id"),
                                         rows_read=0)
    assert (empty.rows_loaded, empty.rows_replaced) == (0, 0)
    assert request_rollup_differences(wh) == (0, 0)
    assert wh.query("SELECT sum(x_Calls)::BIGINT, sum(cost) FROM llm_requests_daily").row(0) == (7, Decimal("4.71"))


def test_a_version_5_warehouse_gets_the_request_rollup_of_its_calls(tmp_path, monkeypatch):
    wh = Warehouse(tmp_path / "w.duckdb")
    monkeypatch.setattr(warehouse_module, "MIGRATIONS", warehouse_module.MIGRATIONS[:5])
    monkeypatch.setattr(warehouse_module, "SCHEMA_VERSION", 5)
    _load_calls(wh, [("r1", "2026-07-01 09:00", "2026-07-01 09:00:02", "t1", 100, 10, "0.5"),
                     ("r2", "2026-07-01 10:00", "2026-07-01 10:00:02", "t1", 100, 10, "0.25")])
    assert wh.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'llm_requests_daily'").item() == 0
    monkeypatch.undo()
    wh.migrate()
    assert wh.query("SELECT count(*), sum(x_Calls)::BIGINT, sum(cost) FROM llm_requests_daily").row(0) == (
        1, 2, Decimal("0.75"))
    assert request_rollup_differences(wh) == (0, 0)
