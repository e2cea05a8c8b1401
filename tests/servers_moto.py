"""A real S3 endpoint for tests: `moto_server` over HTTP on 127.0.0.1, one per test session.

boto3 is not patched: connectors talk to this server exactly as they talk to AWS, through
``endpoint_url``. Use the ``moto_s3`` fixture (import it into the test module):

    from tests.servers_moto import moto_s3  # noqa: F401  (a pytest fixture)

    def test_x(moto_s3):
        s3 = moto_s3.client()
        s3.create_bucket(Bucket="exports")
        ...  # then run the code under test with endpoint_url=moto_s3.endpoint_url

The server keeps its buckets for the whole session: give each test its own bucket name.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-access-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""moto accepts any credentials; these keep boto3 from looking for real ones."""


@dataclasses.dataclass(frozen=True)
class MotoS3:
    endpoint_url: str

    def client(self) -> Any:
        """A boto3 S3 client for the server (dummy credentials, region us-east-1)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=DUMMY_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def upload_tree(self, bucket: str, local_root: Path, key_prefix: str = "") -> list[str]:
        """Upload every file under ``local_root`` to ``bucket``, keys relative to it; return the keys."""
        s3 = self.client()
        keys = []
        for path in sorted(p for p in local_root.rglob("*") if p.is_file()):
            key = f"{key_prefix.strip('/')}/{path.relative_to(local_root).as_posix()}".lstrip("/")
            s3.upload_file(str(path), bucket, key)
            keys.append(key)
        return keys


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(port: int) -> list[str]:
    installed = Path(sys.executable).with_name("moto_server")
    exe = str(installed) if installed.exists() else shutil.which("moto_server")
    if exe:
        return [exe, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """Start moto_server on a free loopback port for the session; stop it at the end."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    env = {**os.environ, **DUMMY_CREDENTIALS}
    with open(log, "wb") as out:
        proc = subprocess.Popen(_command(port), stdout=out, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(endpoint + "/", timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not answer on {endpoint} within 30s:\n{log.read_text()}")
            time.sleep(0.1)
        yield MotoS3(endpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
