"""Where the analyses run: the DuckDB warehouse file, or Apache Spark over the warehouse exported as Parquet.

Every analysis in :mod:`finops.analyses` is an ibis expression over the warehouse's tables, built
inside ``with wh.ibis() as con:`` from ``con.table("charges")`` (and ``llm_requests``, ``prices``,
…) and executed with ``.to_polars()``. ``wh`` is an *engine*: anything with that ``ibis()``
method. Two exist:

- :class:`finops.warehouse.Warehouse` (``engine = "duckdb"``, the default): the DuckDB file.
- :class:`SparkWarehouse` (``engine = "spark"``): a Spark session (Spark Connect: a cluster at
  ``spark_remote = "sc://host:15002"``, or ``"local[*]"`` to run Spark in this process) reading
  the folder ``finops export parquet DIR`` wrote (``spark_data``), or any Parquet/Delta path
  ``[spark_tables]`` names per table.

:func:`open_engine` picks one from finops.toml (``engine``) or the ``--engine`` option. The same
expression gives the same figures on both: tests/test_engine_spark.py runs the review's analyses
on the sample company on both engines and compares them to the cent.

Why Spark Connect: the client is thin (no JVM in the analyst's process when the cluster is
remote), and a Spark cluster, Databricks or Sail all speak it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from finops.config import Config, SparkTable
from finops.exceptions import EngineError
from finops.warehouse.export import EXPORT_MANIFEST, EXPORTED_TABLES, ROLLUP_OF, partition_columns, read_manifest

if TYPE_CHECKING:
    import ibis.backends

    from finops.warehouse import Warehouse

__all__ = ["Engine", "SparkWarehouse", "open_engine", "spark_session"]


class Engine(Protocol):
    """What an analysis needs: ibis tables named as the warehouse's, on some backend."""

    engine: str

    def ibis(self) -> contextlib.AbstractContextManager[ibis.backends.BaseBackend]: ...

    def exists(self) -> bool: ...

    def state_token(self) -> str | None:
        """Changes whenever the data may have changed; None when that cannot be told (then nothing is cached)."""
        ...


def open_engine(
    config: Config,
    warehouse: str | os.PathLike[str] | None = None,
    *,
    engine: str | None = None,
    lock_timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Warehouse | SparkWarehouse:
    """The engine the analyses should run on: ``engine`` if given (``--engine``), else finops.toml's.

    ``"duckdb"`` opens the warehouse file ``warehouse`` (default ``$FINOPS_WAREHOUSE`` or
    data/warehouse.duckdb). ``"spark"`` reads ``spark_data`` / ``[spark_tables]`` through a
    session at ``spark_remote``; relative local paths are taken from the config file's folder.
    """
    from finops.warehouse import Warehouse

    chosen = engine or config.engine
    if chosen == "duckdb":
        return Warehouse(warehouse, lock_timeout=lock_timeout, on_wait=on_wait)
    if chosen == "spark":
        return SparkWarehouse.from_config(config)
    raise EngineError(f"unknown engine {chosen!r}", hint="choose duckdb or spark")


class SparkWarehouse:
    """The warehouse's tables on Spark: Parquet (the export) or Delta paths, as temporary views.

    >>> wh = SparkWarehouse("data/export", remote="local[2]")     # doctest: +SKIP
    >>> chargeback.chargeback(wh, config, Quarter.parse("2026Q3"))  # doctest: +SKIP
    """

    engine = "spark"

    def __init__(
        self,
        data: str | os.PathLike[str] | None,
        *,
        remote: str = "local[*]",
        tables: tuple[SparkTable, ...] = (),
    ) -> None:
        self.data = _location(data) if data is not None else None
        self.remote = remote
        self.tables = {t.table: t for t in tables}

    @classmethod
    def from_config(cls, config: Config) -> SparkWarehouse:
        base = config.path.parent if config.path is not None else Path.cwd()
        data = config.spark_data if _is_uri(config.spark_data) else base / config.spark_data
        tables = tuple(
            t if _is_uri(t.path) else SparkTable(t.table, str(base / t.path), t.format) for t in config.spark_tables
        )
        return cls(data, remote=config.spark_remote, tables=tables)

    def __repr__(self) -> str:
        return f"SparkWarehouse({self.data!r}, remote={self.remote!r})"

    @property
    def path(self) -> str:
        """Where the data is, for messages (the export folder, or the first named table)."""
        if self.data is not None:
            return self.data
        return next(iter(self.tables.values())).path if self.tables else "<no data>"

    def exists(self) -> bool:
        if self.tables or (self.data is not None and _is_uri(self.data)):
            return True
        return self.data is not None and (Path(self.data) / EXPORT_MANIFEST).exists()

    def locations(self) -> dict[str, SparkTable]:
        """Each table the analyses may read, and where: ``[spark_tables]`` first, else the export folder."""
        local_export = self.data is not None and not _is_uri(self.data) and not self.tables
        if local_export and read_manifest(self.data) is None:
            raise EngineError(
                f"no finops export at {self.data}",
                hint=f"write one with `finops export parquet {self.data}`, or set spark_data / [spark_tables]"
                " in finops.toml",
            )
        found: dict[str, SparkTable] = {}
        for name in EXPORTED_TABLES:
            if name in self.tables:
                found[name] = self.tables[name]
            elif self.data is not None:
                path = f"{self.data.rstrip('/')}/{name}"
                if _is_uri(path) or Path(path).exists():
                    found[name] = SparkTable(name, path)
        for name, table in self.tables.items():
            found.setdefault(name, table)
        for rollup, table in ROLLUP_OF.items():
            if table in self.tables and rollup not in self.tables:
                found.pop(rollup, None)  # the export's rollup does not sum the table [spark_tables] names
        if "charges" not in found:
            raise EngineError(f"Spark has no charges table to read at {self.path}")
        return found

    @contextlib.contextmanager
    def ibis(self) -> Iterator[ibis.backends.BaseBackend]:
        """An ibis backend on the Spark session with every table registered as a temporary view."""
        session = spark_session(self.remote)
        _register_views(session, self.locations(), self._signature())
        yield _spark_backend_class()().connect(session=session)

    def state_token(self) -> str | None:
        """The local export's manifest (rewritten by every export) as it stands; None for other data.

        Parquet or Delta paths elsewhere (``[spark_tables]``, an ``s3://`` export) can change
        without this process knowing, so their results are not cached.
        """
        if self.data is None or _is_uri(self.data) or self.tables:
            return None
        try:
            st = (Path(self.data) / EXPORT_MANIFEST).stat()
        except FileNotFoundError:
            return None
        return f"spark:{self.data}|{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"

    def _signature(self) -> str:
        """Changes when the export is rewritten, so views are re-read then and only then."""
        if self.data is not None and not _is_uri(self.data):
            manifest = read_manifest(self.data) or {}
            return f"{self.data}@{manifest.get('written_at')}"
        return repr(sorted((t.table, t.path, t.format) for t in self.tables.values())) + str(self.data)


@functools.cache
def _spark_backend_class() -> type:
    """ibis's PySpark backend, fetching results as Arrow instead of through pandas.

    Why: ibis 12 collects Spark results with ``toPandas()``, which turns timestamps into
    nanoseconds and decimals into Python objects on the way; Spark's ``toArrow()`` keeps
    microsecond timestamps and DECIMAL columns as they are, so polars frames from Spark have
    the dtypes DuckDB's have.
    """
    import polars as pl
    from ibis.backends.pyspark import Backend
    from ibis.formats.pyarrow import PyArrowData

    # What loading the backend as `ibis.pyspark` does: its compiler reads ibis.options.pyspark.
    Backend.register_options()

    class ArrowSparkBackend(Backend):
        def to_pyarrow(self, expr, /, *, params=None, limit=None, **kwargs):  # type: ignore[override]
            table_expr = expr.as_table()
            self._run_pre_execute_hooks(table_expr)
            sql = self.compile(table_expr, params=params, limit=limit, **kwargs)
            with self._safe_raw_sql(sql) as query:
                arrow = query.toArrow()
            return expr.__pyarrow_result__(PyArrowData.convert_table(arrow, table_expr.schema()))

        def to_polars(self, expr, /, *, params=None, limit=None, **kwargs):  # type: ignore[override]
            result = super().to_polars(expr, params=params, limit=limit, **kwargs)
            if not isinstance(result, pl.DataFrame):
                return result
            # ibis types Spark's timestamps without a scale, so polars gets ns; Spark keeps µs, as DuckDB does.
            return result.with_columns(pl.col(pl.Datetime("ns")).dt.cast_time_unit("us"))

    return ArrowSparkBackend


_SESSIONS: dict[str, Any] = {}
_VIEWS: dict[tuple[int, str], str] = {}
_LOCK = threading.Lock()

# Session settings: UTC like the warehouse (dates of timestamps must agree), and fewer shuffle
# partitions than Spark's 200, which only slow down tables of this size.
SPARK_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
}


def spark_session(remote: str = "local[*]") -> Any:
    """One Spark Connect session per ``remote`` per process (starting one takes ~10 s locally)."""
    with _LOCK:
        if remote in _SESSIONS:
            return _SESSIONS[remote]
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:  # pragma: no cover - pyspark is a dependency
            raise EngineError("engine = spark needs pyspark", hint="uv sync installs it") from exc
        if remote.startswith("local") and not (os.environ.get("JAVA_HOME") or shutil.which("java")):
            raise EngineError(
                "Spark in local mode needs Java 17, and no java is on PATH (nor JAVA_HOME set)",
                hint="`make debian-packages` installs openjdk-17-jre-headless; or set spark_remote to a Spark"
                ' Connect server ("sc://host:15002")',
            )
        if remote.startswith("local"):
            # Python UDFs (ibis unwraps JSON with one) run in workers: use this interpreter, with its packages.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # a local server needs no other address
        try:
            if remote.startswith("local"):
                # The Connect client's own builder: pyspark's refuses a remote session beside the local Spark.
                from pyspark.sql.connect.session import SparkSession as ConnectSession

                builder = ConnectSession.builder.remote(_start_local_server(remote))
            else:
                builder = SparkSession.builder.remote(remote)
            for key, value in SPARK_SETTINGS.items():
                builder = builder.config(key, value)
            session = builder.getOrCreate()
        except Exception as exc:
            raise EngineError(f"cannot start a Spark session at {remote}: {exc}") from exc
        _SESSIONS[remote] = session
        return session


def _start_local_server(master: str) -> str:
    """Start Spark (``master``, e.g. ``local[2]``) with a Spark Connect server on a free port; its URL.

    Why not ``remote("local[*]")``: that always binds port 15002, so a second process (a notebook
    kernel beside the CLI, two reports at once) fails to bind or connects to the first one's server.
    """
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = {
        "spark.connect.grpc.binding.port": str(port),
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.ui.enabled": "false",  # no web UI (nor its port) for an in-process Spark
        "spark.ui.showConsoleProgress": "false",  # stage bars would land in CLI output and notebooks' logs
        **SPARK_SETTINGS,
    }
    os.environ["SPARK_LOCAL_REMOTE"] = "1"  # what pyspark's own local start sets around the server start
    try:
        ConnectSession._start_connect_server(master, options)
    finally:
        del os.environ["SPARK_LOCAL_REMOTE"]
    return f"sc://localhost:{port}"


def _register_views(session: Any, locations: dict[str, SparkTable], signature: str) -> None:
    with _LOCK:
        for name, table in locations.items():
            key = (id(session), name)
            wanted = f"{signature}|{table.path}|{table.format}"
            if _VIEWS.get(key) == wanted:
                continue
            try:
                frame = session.read.format(table.format).load(table.path)
                # The export's folder columns are not warehouse columns: drop them, or `month` would clash with
                # the month an analysis computes.
                extra = [c for c in partition_columns(name) if c in frame.columns]
                (frame.drop(*extra) if extra else frame).createOrReplaceTempView(name)
            except Exception as exc:
                raise EngineError(f"Spark cannot read table {name} ({table.format}) at {table.path}: {exc}") from exc
            _VIEWS[key] = wanted


def _is_uri(path: str | os.PathLike[str]) -> bool:
    return "://" in str(path)


def _location(path: str | os.PathLike[str]) -> str:
    return str(path) if _is_uri(path) else str(Path(path).expanduser().resolve())
