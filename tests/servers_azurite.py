"""Azurite, Microsoft's Azure Storage emulator, as a real Blob Storage endpoint on 127.0.0.1.

Tests talk to it with the real azure-storage-blob client over HTTP, so the connector's listing,
downloads, errors and credential handling are exercised end to end. Azurite is a Node package:
it is installed into ``.tools/azurite`` in the project when missing (``make test`` does the
same beforehand), started once per test session on a free port with its data in a temp dir,
and stopped when the session ends.

Use it by importing the fixture into a test module::

    from tests.servers_azurite import azurite  # noqa: F401  (a pytest fixture)
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

AZURITE_VERSION = "3.37.0"
PROJECT = Path(__file__).resolve().parent.parent
INSTALL_DIR = PROJECT / ".tools" / "azurite"
AZURITE_BLOB = INSTALL_DIR / "node_modules" / ".bin" / "azurite-blob"

# Azurite's single built-in account: a published, well-known development key, not a secret.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class Azurite:
    """A running Azurite blob endpoint."""

    port: int

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, account_key: str = ACCOUNT_KEY) -> str:
        """A connection string for the emulator (another ``account_key`` makes requests fail auth)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={account_key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )


def _install() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("Azurite is not installed and npm is not on PATH: install Node.js 20+ (or run `make test`)")
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--prefix", str(INSTALL_DIR), "--no-audit", "--no-fund", f"azurite@{AZURITE_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 or not AZURITE_BLOB.exists():
        pytest.fail(f"npm could not install azurite@{AZURITE_VERSION}:\n{done.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service on a free loopback port, for the whole test session."""
    if not AZURITE_BLOB.exists():
        _install()
    data = tmp_path_factory.mktemp("azurite")
    port = _free_port()
    log = (data / "azurite.log").open("w")
    process = subprocess.Popen(
        [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(data / "store"),
         "--silent", "--skipApiVersionCheck", "--loose"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(port):
            if process.poll() is not None:
                pytest.fail(f"Azurite exited with {process.returncode}: {(data / 'azurite.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"Azurite did not answer on 127.0.0.1:{port} within {STARTUP_TIMEOUT:g}s")
            time.sleep(0.1)
        yield Azurite(port)
    finally:
        # Azurite waits for idle keep-alive connections before it exits; its data is throw-away.
        process.terminate()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
