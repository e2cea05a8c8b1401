"""A real, throw-away PostgreSQL 15 for tests and benchmarks, started from the installed binaries.

``initdb`` refuses to run as root, so as root the cluster directory is created for (and owned
by) the ``postgres`` user and the server runs as that user; as any other user it runs as that
user. It listens on 127.0.0.1 and a free port only, trusts local connections (user ``finops``,
no password) and is stopped and deleted at the end. Use the ``postgres`` fixture:

    from tests.servers_postgres import postgres  # noqa: F401  (a pytest fixture)

    def test_x(postgres):
        dsn = postgres.create_database("test_x")   # a fresh database per test
        ...

Outside pytest (benchmarks), ``with running_postgres() as pg:`` does the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
USER = "finops"


def pg_bin() -> Path | None:
    """Directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    for candidate in PG_BIN_DIRS:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class Postgres:
    port: int
    data_dir: Path

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URI for a database of this server (no password: the cluster trusts loopback)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create (or re-create, empty) database ``name``; return its DSN."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}"')
            con.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)


def _as_server_user(args: list[str]) -> list[str]:
    """Run ``args`` as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return args
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in args)]


@contextlib.contextmanager
def running_postgres(*, settings: dict[str, str] | None = None) -> Iterator[Postgres]:
    """Start a fresh cluster on a free loopback port; stop it and delete its files on exit."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql-15)")
    root = Path(tempfile.mkdtemp(prefix="finops-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
        os.chmod(root, 0o755)
    port = _free_port()
    log = root / "server.log"
    options = f"-p {port} -k {data} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    for key, value in (settings or {}).items():
        options += f" -c {key}={value}"
    try:
        subprocess.run(
            _as_server_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C"]),
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
            check=True, capture_output=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        text = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
        if log.exists():
            text += log.read_text(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {text}") from exc
    try:
        yield Postgres(port, data)
    finally:
        subprocess.run(
            _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the test session (skipped when the binaries or psycopg are missing)."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql-15)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (the project needs psycopg[binary])")
    with running_postgres() as server:
        yield server
