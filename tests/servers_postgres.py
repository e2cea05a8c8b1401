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
from collections.abc import Iterator

import pytest

from finops.demo.gateway import PG_USER, pg_bin, start_postgres

USER = PG_USER


@dataclasses.dataclass(frozen=True)
class Postgres:
    port: int

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


@contextlib.contextmanager
def running_postgres(*, settings: dict[str, str] | None = None) -> Iterator[Postgres]:
    """Start a fresh cluster on a free loopback port (the demo's own starter); stop and delete it on exit."""
    dsn, stop = start_postgres(settings=settings)
    if dsn is None:
        raise RuntimeError(stop)
    try:
        yield Postgres(int(dsn.rsplit(":", 1)[1].split("/", 1)[0]))
    finally:
        stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the test session (skipped when the binaries or psycopg are missing)."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql-15)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (the project needs psycopg[binary])")
    with running_postgres() as server:
        yield server
