"""Sources: one ``finops ingest KIND`` call each, declared in finops.toml and run by ``finops run``.

A :class:`~finops.config.Source` is a kind (``focus``, ``aws-cur``, … the ``finops ingest``
subcommands), its URIs (the command's arguments) and its options (the command's options).
:data:`~finops.ingest.registry.REGISTRY` holds the one connector of each kind; the ``finops
ingest`` commands, ``finops run`` and ``finops demo`` all load through it (:func:`ingest`,
:func:`run_source`), so a source behaves the same whichever way it is started.

:func:`run_source` is what a scheduled run needs around that: it times the load, sums what
it loaded, and turns a failure into a :class:`SourceRun` with a one-line error (secrets
masked) instead of an exception, so the next source still runs. :func:`quarter_coverage` and
:func:`readiness` decide whether a quarter's reports may be published: not when a source
failed in this run, nor when a billing account's charges stop short of the quarter's end.

Secrets never come from finops.toml: options ending in ``_env`` name environment variables,
read here at load time; their values are masked in every message :func:`run_source` returns.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from finops.config import SOURCE_OPTIONS, SOURCE_URIS, Source
from finops.exceptions import ConfigError, FinopsError
from finops.ingest.registry import (
    AZURE_DEFAULT_ENV,
    REGISTRY,
    Ingester,
    IngesterView,
    LoadReport,
    ProgressCallback,
)
from finops.ingest.relative import parse_duration, resolve_day, resolve_moment, resolve_months

if TYPE_CHECKING:
    from finops.warehouse import LoadResult, Warehouse

__all__ = [
    "AZURE_DEFAULT_ENV", "INGESTERS", "REGISTRY", "Ingester", "LoadReport", "ProgressCallback", "SourceRun",
    "ingest", "ingest_report", "load_results", "parse_duration", "redact", "resolve_day", "resolve_moment",
    "resolve_months", "resolve_uris", "run_source", "runs_frame", "secrets_of", "source",
]  # fmt: skip

RunStatus = Literal["loaded", "unchanged", "failed"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PATH_KINDS = frozenset(kind for kind, shape in SOURCE_URIS.items() if shape in ("many", "optional"))
"""Kinds whose URIs may be local paths (gcp-bigquery's is a table id, litellm's a DSN)."""


def source(kind: str, uris: Sequence[str] = (), *, name: str | None = None, **options: Any) -> Source:
    """A :class:`Source` from Python values, as the ``finops ingest`` commands build one.

    Options that are ``None`` or empty are left out (the connector's default applies).

    >>> s = source("aws-cur", ["exports/aws"], period=("2026-07",), profile=None)
    >>> s.name, s.options
    ('aws-cur exports/aws', (('period', ('2026-07',)),))
    """
    if kind not in SOURCE_URIS:
        raise ConfigError(f"unknown source kind {kind!r}", hint=f"kinds: {', '.join(SOURCE_URIS)}")
    unknown = set(options) - set(SOURCE_OPTIONS[kind])
    if unknown:
        raise ConfigError(f"{kind} takes no option {', '.join(sorted(unknown))}")
    kept = tuple((key, value) for key, value in options.items() if value is not None and value != ())
    return Source(kind, tuple(uris), name or (f"{kind} {uris[0]}" if uris else kind), kept)


INGESTERS: MutableMapping[str, Ingester] = IngesterView(REGISTRY)
"""Kind → the function that loads a source of that kind and returns its connector's report: a view
of :data:`~finops.ingest.registry.REGISTRY` (setting an item replaces that kind's load function there)."""


def ingest_report(
    wh: Warehouse, src: Source, *, base_dir: Path | None = None, progress: ProgressCallback | None = None
) -> LoadReport:
    """Load ``src`` into ``wh`` through the registry; its :class:`LoadReport` (see :func:`ingest`)."""
    if base_dir is not None:
        src = dataclasses.replace(src, uris=resolve_uris(src, base_dir))
    return REGISTRY.ingest(wh, src, progress)


def ingest(
    wh: Warehouse, src: Source, *, base_dir: Path | None = None, progress: ProgressCallback | None = None
) -> Any:
    """Load ``src`` into ``wh``; return the connector's own report (what ``finops ingest KIND`` prints).

    Parameters
    ----------
    wh
        The warehouse.
    src
        The source; its kind picks the connector in :data:`~finops.ingest.registry.REGISTRY`.
    base_dir
        Folder that relative local paths in ``src.uris`` are relative to (the config file's
        folder for ``finops run``); ``None`` leaves them relative to the working directory.
    progress
        ``progress(description, completed, total)``, passed to the connector.

    Raises
    ------
    FinopsError
        Whatever the connector raises (SourceError, WarehouseError, …); ConfigError when the
        registry has no connector for the kind.
    """
    return ingest_report(wh, src, base_dir=base_dir, progress=progress).detail


def resolve_uris(src: Source, base_dir: Path) -> tuple[str, ...]:
    """``src.uris`` with relative local paths made absolute against ``base_dir``; URLs, table ids and DSNs unchanged.

    >>> resolve_uris(source("focus", ["exports/*.csv", "s3://b/k", "/abs/x.csv"]), Path("/etc/finops"))
    ('/etc/finops/exports/*.csv', 's3://b/k', '/abs/x.csv')
    """
    if src.kind not in _PATH_KINDS:
        return src.uris
    out = []
    for uri in src.uris:
        expanded = os.path.expanduser(uri)
        out.append(uri if _SCHEME.match(uri) or os.path.isabs(expanded) else str(Path(base_dir) / expanded))
    return tuple(out)


# -- a scheduled run's view of one source ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SourceRun:
    """What happened to one source in a run: status, counts, time, and the error if it failed.

    ``status``: ``loaded`` (at least one batch), ``unchanged`` (the connector found nothing
    new, e.g. every AWS manifest already loaded) or ``failed``. ``error`` is one line with
    every secret the source names masked; ``report`` is the connector's report (None on failure).
    """

    name: str
    kind: str
    status: RunStatus
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_replaced: int = 0
    batches: int = 0
    seconds: float = 0.0
    error: str | None = None
    note: str = ""
    report: Any = dataclasses.field(default=None, repr=False, compare=False)


def load_results(kind: str, report: Any) -> list[LoadResult]:
    """The warehouse batches (:class:`~finops.warehouse.LoadResult`) inside a connector's report."""
    return REGISTRY.get(kind).results(report)


def run_source(
    wh: Warehouse, src: Source, *, base_dir: Path | None = None, progress: ProgressCallback | None = None
) -> SourceRun:
    """Load ``src`` and say how it went; a failure is returned, not raised, so the next source runs.

    Any exception but an interrupt (Ctrl-C, SystemExit) counts as the source failing: a
    connector bug in one source must not stop the others either. The message is one line,
    with the values of the environment variables the source names (``*_env`` options; for
    ``azure`` also $AZURE_STORAGE_CONNECTION_STRING) replaced by ``***``.
    """
    started = time.monotonic()
    try:
        loaded = ingest_report(wh, src, base_dir=base_dir, progress=progress)
    except Exception as exc:
        text = str(exc) if isinstance(exc, FinopsError) else f"{type(exc).__name__}: {exc}"
        hint = exc.hint if isinstance(exc, FinopsError) and exc.hint else ""
        message = " ".join(text.split()) + (f" (hint: {' '.join(hint.split())})" if hint else "")
        return SourceRun(src.name, src.kind, "failed", seconds=time.monotonic() - started, error=redact(message, src))
    return SourceRun(
        src.name,
        src.kind,
        "loaded" if loaded.results else "unchanged",
        rows_read=loaded.rows_read,
        rows_loaded=loaded.rows_loaded,
        rows_quarantined=loaded.rows_quarantined,
        rows_replaced=loaded.rows_replaced,
        batches=loaded.batches,
        seconds=time.monotonic() - started,
        note=loaded.note,
        report=loaded.detail,
    )


def secrets_of(src: Source) -> list[str]:
    """The secret values ``src`` refers to: the environment variables its ``*_env`` options name.

    A connection string's parts (``AccountKey=…``) are listed too, so a message quoting one
    part is masked as well.
    """
    names = [value for key, value in src.options if key.endswith("_env") and isinstance(value, str)]
    if src.kind == "azure" and not src.option("connection_string_env"):
        names.append(AZURE_DEFAULT_ENV)
    secrets = []
    for name in names:
        value = os.environ.get(name)
        if not value:
            continue
        secrets.append(value)
        secrets.extend(part.split("=", 1)[1] for part in value.split(";") if "=" in part)
    return sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)


def redact(text: str, src: Source) -> str:
    """``text`` with every secret of ``src`` (:func:`secrets_of`) replaced by ``***``."""
    for secret in secrets_of(src):
        text = text.replace(secret, "***")
    return text


def runs_frame(runs: Sequence[SourceRun]) -> pl.DataFrame:
    """One row per source run: source, kind, status, rows loaded/quarantined, seconds, error or note.

    ``seconds`` is a float (wall-clock time, rounded to 0.1 s).
    """
    return pl.DataFrame(
        {
            "source": [r.name for r in runs],
            "kind": [r.kind for r in runs],
            "status": [r.status for r in runs],
            "rows_loaded": [r.rows_loaded for r in runs],
            "rows_quarantined": [r.rows_quarantined for r in runs],
            "seconds": [round(r.seconds, 1) for r in runs],
            "detail": [r.error or r.note for r in runs],
        },
        schema={
            "source": pl.String,
            "kind": pl.String,
            "status": pl.String,
            "rows_loaded": pl.Int64,
            "rows_quarantined": pl.Int64,
            "seconds": pl.Float64,
            "detail": pl.String,
        },
    )
