"""Finding Azure exports: where files are, which of them make one export run, which run is newest.

Where exports are read from
---------------------------
* ``az://ACCOUNT/CONTAINER/PATH`` with a storage connection string (the CLI reads it from
  ``$AZURE_STORAGE_CONNECTION_STRING`` or the variable ``--connection-string-env`` names);
* a SAS URL: ``az://ACCOUNT/CONTAINER/PATH?sv=…``, ``https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH?sv=…``,
  or the emulator's path style ``http://127.0.0.1:10000/ACCOUNT/CONTAINER/PATH?sv=…``;
* local files, directories (searched recursively) or globs, e.g. a downloaded copy of the container.

Credentials are used, never shown: messages, the warehouse's records (``ingest_batches.uri``,
``x_SourceFile``) and errors name blobs as ``az://ACCOUNT/CONTAINER/NAME``, without a query
string. Azure SDK errors are mapped to :class:`SourceError` here with our own words (the error
code and HTTP status, never the SDK's text or request URL) and without the SDK exception
chained, since its text and URL can carry a SAS token. ``azure-identity`` is not a dependency,
so there is no DefaultAzureCredential: use a connection string or a SAS URL.

Which files make one export run
-------------------------------
Cost Management exports (v2) write every run to
``<directory>/<export-name>/<YYYYMMDD-YYYYMMDD>/<run-id>/part_*.csv|.csv.gz|.parquet`` with a
``manifest.json`` beside the parts. The manifest, in Microsoft's documented shape
(``manifestVersion`` "2024-04-01")::

    {"exportConfig": {"exportName": …, "resourceId": …, "dataVersion": …, "type": "ActualCost"},
     "runInfo": {"runId": …, "submittedTime": "2025-03-21T21:04:06.5234447Z", "startDate": …, "endDate": …},
     "blobs": [{"blobName": "<directory>/<export-name>/…/part_0_0001.csv", "byteCount": …, "dataRowCount": …}]}

names the run's files (``blobName``, relative to the container), the dataset
(``exportConfig.type``: ActualCost, AmortizedCost, FocusCost; Usage is the old name of
ActualCost; other datasets such as PriceSheet are skipped) and when it ran. Older exports
write ``<directory>/<export-name>/<YYYYMMDD-YYYYMMDD>/<export-name>_<guid>.csv`` with no
manifest: each such file is a run of its own, timed by its last-modified time.

An export is identified by the path before its ``YYYYMMDD-YYYYMMDD`` folder. For each export and
date-range folder, only the newest run is loaded (manifest ``runInfo.submittedTime``, else the
blob's last-modified time); older runs are reported as skipped, and a run already loaded
(same run id, remembered in ``source_state``) or older than the loaded one is skipped too.
A manifest run found in two places in one call (a copied folder) is loaded once.
Files outside that layout (a CSV handed over by hand) are grouped per export type: the files
of one type in one call are one run, and a later call replaces what they loaded for the same
billing accounts and months.

Also here: the connector's source kind and progress callback type, which the other modules share.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from connectors.files import expand
from finops.exceptions import SourceError

SOURCE_KIND = "azure"


DEFAULT_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"


ExportType = Literal["actual", "amortized", "focus"]


ProgressCallback = Callable[[str, int, int], None]
"""progress(description, completed, total): called as blobs are listed, downloaded and read."""


DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".parq")


MANIFEST_NAME = "manifest.json"


DATASETS: dict[str, ExportType] = {
    "actualcost": "actual",
    "usage": "actual",
    "amortizedcost": "amortized",
    "focuscost": "focus",
}
"""Manifest ``exportConfig.type`` (lower case) → what we load; other datasets are skipped."""


_RANGE_FOLDER = re.compile(r"^(\d{8})-(\d{8})$")


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclasses.dataclass(frozen=True)
class SkippedRun:
    """An export run found but not loaded, and why."""

    export: str
    run_id: str
    reason: str


# -- where files are -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportObject:
    """A file found in storage: a blob or a local file."""

    uri: str  # az://ACCOUNT/CONTAINER/NAME (never a query string) or a local path
    name: str  # blob name within the container, or the local path
    modified: datetime  # naive UTC
    size: int


@dataclasses.dataclass(frozen=True)
class BlobLocation:
    """``az://ACCOUNT/CONTAINER/PREFIX`` and how to reach it; ``str()`` never shows the SAS."""

    account: str
    container: str
    prefix: str
    account_url: str | None = None  # from an http(s) URL; else https://ACCOUNT.blob.core.windows.net
    sas: str | None = dataclasses.field(default=None, repr=False)

    def __str__(self) -> str:
        return f"az://{self.account}/{self.container}/{self.prefix}".rstrip("/")

    def uri(self, name: str) -> str:
        return f"az://{self.account}/{self.container}/{name}"


def parse_location(text: str) -> BlobLocation | None:
    """The blob location ``text`` names, or None for a local path or glob.

    >>> str(parse_location("az://acct/costs/exports/actual?sv=2024&sig=secret"))
    'az://acct/costs/exports/actual'
    >>> parse_location("https://acct.blob.core.windows.net/costs/x?sv=1&sig=s").account_url
    'https://acct.blob.core.windows.net'
    >>> parse_location("exports/2026-07/*.csv") is None
    True
    """
    if text.startswith("az://"):
        body, _, query = text[len("az://") :].partition("?")
        account, _, rest = body.partition("/")
        container, _, prefix = rest.partition("/")
        if not account or not container:
            raise SourceError(f"{text.split('?')[0]}: expected az://ACCOUNT/CONTAINER[/PATH]")
        return BlobLocation(account, container, prefix.strip("/"), None, query or None)
    if text.startswith(("https://", "http://")):
        url = urlsplit(text)
        host = url.hostname or ""
        segments = [s for s in url.path.split("/") if s]
        is_ip_address = host.replace(".", "").isdigit()
        if host.endswith(".blob.core.windows.net") or ("." in host and not is_ip_address):
            account = host.split(".")[0]
            account_url = f"{url.scheme}://{url.netloc}"
        else:  # path-style, as the storage emulator serves it: http://127.0.0.1:10000/ACCOUNT/CONTAINER/…
            if not segments:
                raise SourceError(f"{url.scheme}://{url.netloc}{url.path}: expected …/ACCOUNT/CONTAINER[/PATH]")
            account, segments = segments[0], segments[1:]
            account_url = f"{url.scheme}://{url.netloc}/{account}"
        if not segments:
            raise SourceError(f"{url.scheme}://{url.netloc}{url.path}: the URL names no container")
        return BlobLocation(account, segments[0], "/".join(segments[1:]), account_url, url.query or None)
    return None


_SAS_QUERY = re.compile(r"\?\S*\bsig=\S*")


_KEY_VALUE = re.compile(r"(?i)\b(accountkey|sharedaccesssignature|sig)=[^;&\s]+")


def _redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` without the given secrets, SAS query strings, or anything shaped like a key.

    >>> _redact("GET https://a.blob.core.windows.net/c?sv=1&sig=abc failed; AccountKey=xyz;", [])
    'GET https://a.blob.core.windows.net/c?*** failed; AccountKey=***;'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SAS_QUERY.sub("?***", text)
    return _KEY_VALUE.sub(r"\1=***", text)


class _BlobStore:
    """One container through azure-storage-blob; every SDK error becomes a clean SourceError."""

    def __init__(self, location: BlobLocation, connection_string: str | None) -> None:
        from azure.storage.blob import BlobServiceClient, ContainerClient

        self.location = location
        self._secrets = [connection_string, location.sas, *_connection_string_secrets(connection_string)]
        if location.sas:
            account_url = location.account_url or f"https://{location.account}.blob.core.windows.net"
            self._client = ContainerClient(account_url, location.container, credential=location.sas.lstrip("?"))
            return
        if not connection_string:
            raise SourceError(
                f"{location}: no credentials for storage account {location.account}",
                hint=f"put the storage account's connection string in ${DEFAULT_CONNECTION_STRING_ENV} (or in the"
                " variable --connection-string-env names), or pass a SAS URL (…?sv=…&sig=…)",
            )
        try:
            service = BlobServiceClient.from_connection_string(connection_string)
        except ValueError:
            raise SourceError(
                f"{location}: the storage connection string is malformed",
                hint="expected DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…[;BlobEndpoint=…]",
            ) from None
        if service.account_name and service.account_name.lower() != location.account.lower():
            raise SourceError(
                f"{location}: the connection string is for storage account {service.account_name}, not {location.account}",
                hint="use the connection string of the account the URI names",
            )
        self._client = service.get_container_client(location.container)

    def _error(self, action: str, exc: Exception) -> SourceError:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        code = getattr(exc, "error_code", None)
        status = getattr(exc, "status_code", None)
        detail = ", ".join(str(x) for x in (f"HTTP {status}" if status else None, code) if x)
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            reason = "access denied"
            hint = (
                "check the account key in the connection string, or the SAS token's permissions (read, list) and expiry"
            )
        elif isinstance(exc, ResourceNotFoundError):
            reason = "not found"
            hint = "check the container and path"
        elif isinstance(exc, ServiceRequestError):
            reason = "the storage endpoint did not answer"
            hint = "check the endpoint and the network"
        elif isinstance(exc, HttpResponseError):
            reason = "the storage service refused the request"
            hint = None
        else:
            reason = type(exc).__name__
            hint = None
        message = f"Azure Blob Storage: cannot {action}: {reason}" + (f" ({detail})" if detail else "")
        return SourceError(_redact(message, self._secrets), hint=hint)

    def list(self) -> list[ExportObject]:
        prefix = self.location.prefix
        try:
            blobs = list(self._client.list_blobs(name_starts_with=prefix or None))
        except Exception as exc:
            raise self._error(f"list {self.location}", exc) from None
        # A prefix is a folder (or one blob), not the start of any name: exports/a must not match exports/ab.
        wanted = [b for b in blobs if not prefix or b.name == prefix or b.name.startswith(prefix.rstrip("/") + "/")]
        return [
            ExportObject(self.location.uri(b.name), b.name, _naive_utc(b.last_modified), b.size or 0) for b in wanted
        ]

    def read(self, obj: ExportObject) -> bytes:
        try:
            return self._client.download_blob(obj.name).readall()
        except Exception as exc:
            raise self._error(f"read {obj.uri}", exc) from None

    def fetch(self, obj: ExportObject, into: Path) -> Path:
        target = into / self.location.account / self.location.container / obj.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, "wb") as handle:
                self._client.download_blob(obj.name).readinto(handle)
        except Exception as exc:
            raise self._error(f"download {obj.uri}", exc) from None
        return target


class _LocalStore:
    """Files, directories and globs on this machine."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = patterns

    def list(self) -> list[ExportObject]:
        objects = []
        for path in expand(self.patterns):
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc).replace(tzinfo=None)
            absolute = path.resolve().as_posix()
            objects.append(ExportObject(absolute, absolute, modified, stat.st_size))
        return objects

    def read(self, obj: ExportObject) -> bytes:
        return Path(obj.name).read_bytes()

    def fetch(self, obj: ExportObject, into: Path) -> Path:
        return Path(obj.name)


def _connection_string_secrets(connection_string: str | None) -> list[str]:
    if not connection_string:
        return []
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    return [v for k, v in parts.items() if k.lower() in ("accountkey", "sharedaccesssignature") and v]


def _naive_utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime(1970, 1, 1)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


# -- runs: which files belong together, and which of them to load ---------------------------


@dataclasses.dataclass
class ExportRun:
    """One run of an export: the files it wrote, when, and (from a manifest) its dataset."""

    store: _BlobStore | _LocalStore
    export_key: str | None  # the path before the YYYYMMDD-YYYYMMDD folder; None outside the layout
    folder: str | None  # the date-range folder (or the manifest's start month)
    run_id: str
    submitted: datetime
    files: list[ExportObject]
    dataset: str | None = None  # manifest exportConfig.type
    missing: list[str] = dataclasses.field(default_factory=list)  # files the manifest lists that are not there
    manifest: str | None = None

    @property
    def export(self) -> str:
        return self.export_key or self.files[0].uri

    def check_complete(self) -> None:
        """Raise unless every file the run's manifest lists is there (checked only for runs we load)."""
        if self.missing:
            verb = "is" if len(self.missing) == 1 else "are"
            raise SourceError(
                f"{self.manifest}: lists {', '.join(repr(m) for m in self.missing)}, which {verb} not there",
                hint="the run may still be being written (load it later), or the copy is incomplete",
            )


def _find_runs(
    store: _BlobStore | _LocalStore, objects: list[ExportObject], skipped: list[SkippedRun]
) -> list[ExportRun]:
    """Group the files found in one place into export runs (manifest runs, then single files)."""
    by_name = {obj.name: obj for obj in objects}
    runs: list[ExportRun] = []
    run_dirs: set[str] = set()
    for manifest in (o for o in objects if posixpath.basename(o.name).lower() == MANIFEST_NAME):
        run_dir = posixpath.dirname(manifest.name)
        run_dirs.add(run_dir)
        try:
            doc = json.loads(store.read(manifest))
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise SourceError(f"{manifest.uri}: not a readable manifest.json: {exc}") from exc
        run_info = doc.get("runInfo") or {}
        export_config = doc.get("exportConfig") or {}
        export_key, folder = _layout(manifest.uri)
        if export_key is None:  # not in the documented layout: the run folder's parent is the export
            export_key = posixpath.dirname(posixpath.dirname(manifest.uri))
            folder = str(run_info.get("startDate") or "")[:7] or None
        run_id = str(run_info.get("runId") or posixpath.basename(run_dir) or manifest.uri)
        dataset = export_config.get("type")
        if dataset and str(dataset).lower() not in DATASETS:
            skipped.append(SkippedRun(export_key, run_id, f"dataset {dataset} is not cost details"))
            continue
        files, missing = [], []
        for blob in doc.get("blobs") or []:
            listed = str(blob.get("blobName") or "").strip().lstrip("/")
            # blobName is relative to the container; a copied folder only has the run's own files.
            found = by_name.get(listed) or by_name.get(f"{run_dir}/{posixpath.basename(listed)}")
            if found is None:
                missing.append(posixpath.basename(listed))
            else:
                files.append(found)
        if not files and not missing:
            skipped.append(SkippedRun(export_key, run_id, "the run exported no rows (its manifest lists no files)"))
            continue
        submitted = _parse_time(run_info.get("submittedTime")) or manifest.modified
        runs.append(ExportRun(store, export_key, folder, run_id, submitted, files, dataset, missing, manifest.uri))
    for obj in objects:
        if posixpath.dirname(obj.name) in run_dirs or not obj.name.lower().endswith(DATA_SUFFIXES):
            continue
        export_key, folder = _layout(obj.uri)
        guid = _GUID.search(posixpath.basename(obj.name))
        run_id = guid.group(0) if guid else posixpath.basename(obj.name)
        runs.append(ExportRun(store, export_key, folder, run_id, obj.modified, [obj]))
    return runs


def _layout(uri: str) -> tuple[str | None, str | None]:
    """(export, date-range folder) of a file in the Cost Management layout, else (None, None).

    >>> _layout("az://acct/c/exports/ea-actual/20260701-20260731/0b1c…/part_0_0001.csv")
    ('az://acct/c/exports/ea-actual', '20260701-20260731')
    """
    parts = uri.split("/")[:-1]
    for i in range(len(parts) - 1, -1, -1):
        if _RANGE_FOLDER.match(parts[i]):
            return "/".join(parts[:i]), parts[i]
    return None, None


def _parse_time(value: Any) -> datetime | None:
    """A manifest time such as 2025-03-21T21:04:06.5234447Z as naive UTC (7-digit fractions too)."""
    if not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value).strip()).replace("Z", "+00:00")
    try:
        return _naive_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _newest_runs(runs: list[ExportRun], loaded: dict[str, Any], skipped: list[SkippedRun]) -> list[ExportRun]:
    """Per export and date-range folder, the newest run, unless it is loaded already or older.

    A manifest's run id is one per run: the same id in two places is one run copied (a backup
    folder, a second root), loaded once, from where it is found first.
    """
    chosen: dict[tuple[str, str], ExportRun] = {}
    others: list[ExportRun] = []
    first_seen: dict[str, ExportRun] = {}
    for run in runs:
        if run.manifest is not None:
            original = first_seen.setdefault(run.run_id, run)
            if original is not run:
                reason = f"{run.folder}: the same run as {original.manifest} (a copy; loaded once)"
                skipped.append(SkippedRun(run.export, run.run_id, reason))
                continue
        if run.export_key is None or run.folder is None:
            others.append(run)
            continue
        key = (run.export_key, run.folder)
        best = chosen.get(key)
        if best is None or (run.submitted, run.run_id) > (best.submitted, best.run_id):
            if best is not None:
                skipped.append(_superseded(best, run))
            chosen[key] = run
        else:
            skipped.append(_superseded(run, best))
    fresh = []
    for (export_key, folder), run in chosen.items():
        state = loaded.get(_run_state_key(export_key, folder))
        if state and state.get("run_id") == run.run_id:
            skipped.append(
                SkippedRun(run.export, run.run_id, f"{folder}: already loaded (batch {state.get('batch_id')})")
            )
        elif state and (_parse_time(state.get("submitted")) or datetime.min) > run.submitted:
            skipped.append(
                SkippedRun(run.export, run.run_id, f"{folder}: older than run {state.get('run_id')}, which is loaded")
            )
        else:
            fresh.append(run)
    return fresh + others


def _superseded(old: ExportRun, new: ExportRun) -> SkippedRun:
    return SkippedRun(
        old.export, old.run_id, f"{old.folder}: superseded by run {new.run_id} ({new.submitted:%Y-%m-%d %H:%M} UTC)"
    )


def _run_state_key(export_key: str, folder: str) -> str:
    return f"run|{export_key}|{folder}"
