"""Finding an AWS export's deliveries: listing manifests, reading them, fetching the files they list.

Where the data comes from (``uri``):

* ``s3://BUCKET/PREFIX/EXPORT_NAME`` — an AWS Data Exports delivery, read with boto3 and the
  default credential chain (``profile`` and ``endpoint_url`` choose another). Layout::

      <export>/data/BILLING_PERIOD=YYYY-MM/*.parquet | *.csv.gz
      <export>/metadata/BILLING_PERIOD=YYYY-MM/[…/]<export-name>-Manifest.json

  Legacy CUR layouts (``<report>/YYYYMMDD-YYYYMMDD/<report>-Manifest.json``) work too.
* a local directory in the same layout (a copy of the bucket, or the sample company), or
* local files or globs of export files without a manifest: billing periods come from the rows.

:class:`_LocalExport` and :class:`_S3Export` list a delivery's manifests with the billing period and time of each
(to pick a period's newest), read a manifest, resolve the files it lists in this copy of the export and fetch them
(downloaded to a temporary directory for S3). S3 errors name the object, never the credentials. Also here: the
connector's source kind and progress callback type, which the other modules share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from finops.exceptions import SourceError

SOURCE_KIND = "aws-cur"


ProgressCallback = Callable[[str, int, int], None]
"""progress(description, completed, total): called as manifests are read and files loaded."""


DATA_SUFFIXES = (".parquet", ".csv.gz", ".csv", ".gz")


# -- export with manifests ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Manifest:
    period: str  # YYYY-MM
    uri: str
    modified: float  # for picking the newest of several in one period


_DATA_EXPORTS_MANIFEST = re.compile(r"^metadata/BILLING_PERIOD=(\d{4}-\d{2})/(.+/)?[^/]*Manifest\.json$", re.I)


_LEGACY_MANIFEST = re.compile(r"^(\d{4})(\d{2})01-\d{8}/[^/]*-Manifest\.json$", re.I)


# Where a listed data file sits below the export root (so a bucket copy or a local mirror
# resolves it even when the manifest names the bucket AWS delivered to).
_DATA_BELOW_ROOT = re.compile(r"(?:^|/)((?:data/BILLING_PERIOD=[^/]+|\d{8}-\d{8})/.+)$")


class _Export:
    """Where an export lives: lists manifests, reads them, fetches the files they list."""

    root: str  # s3://bucket/prefix/export or the directory, for messages and state keys

    def manifests(self) -> list[_Manifest]:
        raise NotImplementedError

    def read(self, uri: str) -> bytes:
        raise NotImplementedError

    def resolve(self, listed: str) -> str:
        """The URI of a file a manifest lists, in this copy of the export."""
        raise NotImplementedError

    @contextlib.contextmanager
    def fetched(self, uris: Sequence[str], progress: ProgressCallback, *, listed_by: str) -> Iterator[dict[str, Path]]:
        """Local paths of ``uris`` (downloaded to a temp dir for S3) for as long as the block runs.

        A file that is not there is an error naming the manifest (``listed_by``) that lists it.
        """
        raise NotImplementedError

    def uri_sql(self, local_path_sql: str) -> str:
        """SQL turning the local path DuckDB read back into the file's URI."""
        return local_path_sql


class _LocalExport(_Export):
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise SourceError(f"{root}: not a directory")
        self.path = root.resolve()
        self.root = str(self.path)

    def manifests(self) -> list[_Manifest]:
        found = []
        for path in self.path.rglob("*anifest.json"):
            rel = path.relative_to(self.path).as_posix()
            period = _manifest_period(rel)
            if period:
                found.append(_Manifest(period, str(path), path.stat().st_mtime))
        return found

    def read(self, uri: str) -> bytes:
        try:
            return Path(uri).read_bytes()
        except OSError as exc:
            raise SourceError(f"{uri}: cannot be read: {exc.strerror}") from exc

    def resolve(self, listed: str) -> str:
        below = _DATA_BELOW_ROOT.search(listed)
        if below:
            return str(self.path / below.group(1))
        candidate = Path(listed)
        return str(candidate if candidate.is_absolute() else self.path / listed)

    @contextlib.contextmanager
    def fetched(self, uris: Sequence[str], progress: ProgressCallback, *, listed_by: str) -> Iterator[dict[str, Path]]:
        missing = [u for u in uris if not Path(u).is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise SourceError(f"{listed_by} lists {missing[0]}, which is not there{more}", hint=_INCOMPLETE_HINT)
        yield {uri: Path(uri) for uri in uris}


class _S3Export(_Export):
    """An export in S3, read with boto3 (list_objects_v2, get_object, download_file)."""

    def __init__(self, uri: str, *, profile: str | None, endpoint_url: str | None) -> None:
        match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri.strip())
        if not match:
            raise SourceError(f"{uri!r} is not an S3 URI", hint="use s3://BUCKET/PREFIX/EXPORT_NAME")
        self.bucket = match.group(1)
        self.prefix = match.group(2).strip("/")
        self.root = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._profile = profile
        self._endpoint_url = endpoint_url
        self._client: Any = None
        self._session: Any = None
        self._download_root: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            import botocore.exceptions

            try:
                self._session = boto3.Session(profile_name=self._profile) if self._profile else boto3.Session()
                self._client = self._session.client("s3", endpoint_url=self._endpoint_url)
            except botocore.exceptions.BotoCoreError as exc:
                raise SourceError(
                    f"cannot set up the S3 client for {self.root}: {self._redact(str(exc))}",
                    hint="check --profile and --endpoint-url, or the AWS_* environment",
                ) from None
        return self._client

    def _redact(self, text: str) -> str:
        """``text`` without the credentials in use (botocore messages should not have them)."""
        secrets: list[str] = []
        with contextlib.suppress(Exception):
            credentials = self._session.get_credentials() if self._session else None
            if credentials is not None:
                frozen = credentials.get_frozen_credentials()
                secrets = [s for s in (frozen.secret_key, frozen.token, frozen.access_key) if s]
        for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
            if os.environ.get(name):
                secrets.append(os.environ[name])
        for secret in sorted(set(secrets), key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "[redacted]")
        return text

    def _call(self, what: str, fn: Callable[[], Any], *, missing: str | None = None) -> Any:
        """Run one S3 call; map botocore's errors to SourceError naming the object, not the keys.

        ``missing`` is the message for an object that is not there (e.g. which manifest listed it).
        """
        import botocore.exceptions

        try:
            return fn()
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "error")
            message = error.get("Message") or ""
            if missing and code in ("404", "NoSuchKey"):
                raise SourceError(missing, hint=_INCOMPLETE_HINT) from None
            hint = {
                "NoSuchBucket": "check the bucket name",
                "NoSuchKey": "the export changed while it was read: run again",
                "404": "the export changed while it was read: run again",
                "AccessDenied": "the credentials need s3:ListBucket and s3:GetObject on the export",
                "403": "the credentials need s3:ListBucket and s3:GetObject on the export",
                "InvalidAccessKeyId": "check the AWS credentials (profile or AWS_* environment)",
                "SignatureDoesNotMatch": "check the AWS credentials (profile or AWS_* environment)",
                "ExpiredToken": "refresh the AWS session credentials",
            }.get(code, "check the S3 URI, the credentials and --endpoint-url")
            raise SourceError(f"S3 {what}: {code} {self._redact(message)}".rstrip(), hint=hint) from None
        except botocore.exceptions.NoCredentialsError:
            raise SourceError(
                f"S3 {what}: no AWS credentials found",
                hint="set AWS_PROFILE or pass --profile, or configure the default credential chain",
            ) from None
        except botocore.exceptions.ProfileNotFound:
            raise SourceError(f"S3 {what}: AWS profile {self._profile!r} not found", hint="check --profile") from None
        except botocore.exceptions.BotoCoreError as exc:  # endpoint unreachable, timeouts, …
            raise SourceError(
                f"S3 {what}: {self._redact(str(exc))}", hint="check the network and --endpoint-url"
            ) from None

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        def pages() -> list[dict[str, Any]]:
            paginator = self.client.get_paginator("list_objects_v2")
            return list(paginator.paginate(Bucket=self.bucket, Prefix=prefix))

        for page in self._call(f"listing s3://{self.bucket}/{prefix}", pages):
            yield from page.get("Contents", [])

    def manifests(self) -> list[_Manifest]:
        root = f"{self.prefix}/" if self.prefix else ""
        found = []
        # Data Exports keep manifests under metadata/; legacy CUR beside the data: list both.
        for obj in [*self._list(f"{root}metadata/"), *self._legacy_candidates(root)]:
            rel = obj["Key"][len(root) :]
            period = _manifest_period(rel)
            if period:
                found.append(_Manifest(period, f"s3://{self.bucket}/{obj['Key']}", obj["LastModified"].timestamp()))
        return found

    def _legacy_candidates(self, root: str) -> Iterator[dict[str, Any]]:
        """Objects directly in legacy period folders (``YYYYMMDD-YYYYMMDD/``), not their data."""

        def folders() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            prefixes = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root, Delimiter="/"):
                prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            return prefixes

        for folder in self._call(f"listing {self.root}", folders):
            if re.fullmatch(r"\d{8}-\d{8}/", folder[len(root) :]):

                def in_folder(folder: str = folder) -> list[dict[str, Any]]:
                    page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=folder, Delimiter="/")
                    return page.get("Contents", [])

                yield from self._call(f"listing s3://{self.bucket}/{folder}", in_folder)

    def read(self, uri: str) -> bytes:
        bucket, key = _split_s3(uri)
        return self._call(f"reading {uri}", lambda: self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def resolve(self, listed: str) -> str:
        below = _DATA_BELOW_ROOT.search(listed)
        if below:
            return f"{self.root}/{below.group(1)}"
        if listed.startswith("s3://"):
            return listed
        return f"s3://{self.bucket}/{listed.lstrip('/')}"  # legacy reportKeys are bucket keys

    @contextlib.contextmanager
    def fetched(self, uris: Sequence[str], progress: ProgressCallback, *, listed_by: str) -> Iterator[dict[str, Path]]:
        with tempfile.TemporaryDirectory(prefix="finops-aws-cur-") as tmp:
            self._download_root = tmp
            local = {}
            for i, uri in enumerate(uris):
                bucket, key = _split_s3(uri)
                target = Path(tmp, bucket, key)
                target.parent.mkdir(parents=True, exist_ok=True)
                progress(f"downloading {PurePosixPath(key).name}", i, len(uris))
                self._call(
                    f"downloading {uri}",
                    lambda b=bucket, k=key, t=target: self.client.download_file(b, k, str(t)),
                    missing=f"{listed_by} lists {uri}, which is not there",
                )
                local[uri] = target
            progress("downloaded", len(uris), len(uris))
            try:
                yield local
            finally:
                self._download_root = None

    def uri_sql(self, local_path_sql: str) -> str:
        assert self._download_root is not None, "uri_sql is only meaningful while files are fetched"
        return f"('s3://' || substr({local_path_sql}, {len(self._download_root) + 2}))"


_INCOMPLETE_HINT = "the delivery is incomplete or being rewritten: wait for AWS to finish, or copy it again"


def _split_s3(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if not match:
        raise SourceError(f"{uri!r} is not an S3 object URI")
    return match.group(1), match.group(2)


def _manifest_period(relative: str) -> str | None:
    """The billing period (YYYY-MM) of a manifest at ``relative`` below the export root."""
    match = _DATA_EXPORTS_MANIFEST.search(relative)
    if match:
        return match.group(1)
    # Legacy CUR: the period folder's manifest is the current one (copies sit in assembly folders).
    match = _LEGACY_MANIFEST.search(relative)
    return f"{match.group(1)}-{match.group(2)}" if match else None


def _has_manifests(path: str) -> bool:
    root = Path(path).expanduser()
    if not root.is_dir():
        return False
    return any(_manifest_period(p.relative_to(root).as_posix()) for p in root.rglob("*anifest.json"))


def _parse_manifest(raw: bytes, uri: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{uri}: not a JSON manifest: {exc}") from None
    if not isinstance(parsed, dict):
        raise SourceError(f"{uri}: not a manifest (expected a JSON object)")
    if "dataFiles" not in parsed and "reportKeys" not in parsed:
        raise SourceError(f"{uri}: not a CUR manifest: it lists no dataFiles (Data Exports) or reportKeys (legacy CUR)")
    return parsed
