"""Sources: one ``finops ingest KIND`` call each, declared in finops.toml and run by ``finops run``.

A :class:`~finops.config.Source` is a kind (``focus``, ``aws-cur``, … the ``finops ingest``
subcommands), its URIs (the command's arguments) and its options (the command's options).
:data:`INGESTERS` maps each kind to the one function that loads it; the ``finops ingest``
commands and ``finops run`` both call :func:`ingest`, so a source behaves the same whichever
way it is started.

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
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from finops.config import DURATION_TEXT, RELATIVE_TIME, SOURCE_OPTIONS, SOURCE_URIS, Source
from finops.exceptions import ConfigError, FinopsError

if TYPE_CHECKING:
    from finops.warehouse import LoadResult, Warehouse

ProgressCallback = Callable[[str, int, int], None]
Ingester = Callable[["Warehouse", Source, "ProgressCallback | None"], Any]

RunStatus = Literal["loaded", "unchanged", "failed"]

AZURE_DEFAULT_ENV = "AZURE_STORAGE_CONNECTION_STRING"
"""Where ``azure`` looks for the storage connection string when ``connection_string_env`` is not set."""

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


# -- one function per kind ----------------------------------------------------------------------


def _focus(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import focus

    return focus.ingest(wh, list(src.uris), progress=progress)


def _aws_cur(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import aws_cur

    target = src.uris[0] if len(src.uris) == 1 else list(src.uris)
    return aws_cur.ingest(
        wh,
        target,
        periods=resolve_months(src.option("period", ())) or None,
        profile=src.option("profile"),
        endpoint_url=src.option("endpoint_url"),
        progress=progress,
    )


def _gcp_bigquery(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import gcp_billing

    return gcp_billing.ingest_bigquery(
        wh,
        src.uris[0],
        resolve_months(src.option("months", ())),
        project=src.option("project"),
        api_endpoint=src.option("api_endpoint"),
        anonymous=bool(src.option("anonymous", False)),
        progress=progress,
    )


def _gcp_export(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import gcp_billing

    return gcp_billing.ingest_export(wh, list(src.uris), progress=progress)


def _gcp_catalog(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import gcp_catalog

    services = src.option("services", ())
    return gcp_catalog.ingest_catalog(
        wh,
        [services] if isinstance(services, str) else list(services),
        billing_account=src.option("billing_account"),
        api_endpoint=src.option("api_endpoint"),
        anonymous=bool(src.option("anonymous", False)),
        currency=src.option("currency"),
        progress=progress,
    )


def _azure(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import azure

    connection_string = os.environ.get(src.option("connection_string_env", AZURE_DEFAULT_ENV)) or None
    return azure.ingest(wh, list(src.uris), connection_string=connection_string, progress=progress)


def _litellm(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import litellm

    options: dict[str, Any] = {}
    if src.option("overlap") is not None:
        options["overlap"] = parse_duration(src.option("overlap"))
    if src.option("page_size") is not None:
        options["page_size"] = src.option("page_size")
    since = src.option("since")
    return litellm.ingest(
        wh,
        src.uris[0],
        password=litellm.password_from_env(src.option("password_env")),
        since=resolve_moment(since) if since is not None else None,
        progress=progress,
        **options,
    )


def _model_api(module: str) -> Ingester:
    def ingest_usage(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
        import importlib

        connector = importlib.import_module(f"connectors.{module}")
        end = src.option("end")
        return connector.ingest(
            wh,
            resolve_day(src.option("start")),
            resolve_day(end) if end is not None else None,
            api_key_env=src.option("api_key_env"),
            base_url=src.option("base_url"),
            progress=progress,
        )

    return ingest_usage


def _otel(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import otel

    return otel.ingest(wh, list(src.uris), progress=progress)


def _langfuse(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import langfuse

    return langfuse.ingest(wh, list(src.uris), progress=progress)


def _prices(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    from connectors import pricing

    return pricing.load_prices(wh, list(src.uris), format=src.option("format"), progress=progress)


INGESTERS: dict[str, Ingester] = {
    "focus": _focus,
    "aws-cur": _aws_cur,
    "gcp-bigquery": _gcp_bigquery,
    "gcp-export": _gcp_export,
    "gcp-catalog": _gcp_catalog,
    "azure": _azure,
    "litellm": _litellm,
    "openai": _model_api("openai_usage"),
    "anthropic": _model_api("anthropic_usage"),
    "otel": _otel,
    "langfuse": _langfuse,
    "prices": _prices,
}
"""Kind → the function that loads a source of that kind and returns its connector's report."""


def ingest(
    wh: Warehouse, src: Source, *, base_dir: Path | None = None, progress: ProgressCallback | None = None
) -> Any:
    """Load ``src`` into ``wh``; return the connector's own report (what ``finops ingest KIND`` prints).

    Parameters
    ----------
    wh
        The warehouse.
    src
        The source; its kind picks the function in :data:`INGESTERS`.
    base_dir
        Folder that relative local paths in ``src.uris`` are relative to (the config file's
        folder for ``finops run``); ``None`` leaves them relative to the working directory.
    progress
        ``progress(description, completed, total)``, passed to the connector.

    Raises
    ------
    FinopsError
        Whatever the connector raises (SourceError, WarehouseError, …).
    """
    if base_dir is not None:
        src = dataclasses.replace(src, uris=resolve_uris(src, base_dir))
    return INGESTERS[src.kind](wh, src, progress)


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


# -- relative dates and durations ------------------------------------------------------------------

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str | timedelta) -> timedelta:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"2d"`` → timedelta (a timedelta passes through).

    >>> parse_duration("3h")
    datetime.timedelta(seconds=10800)
    """
    if isinstance(value, timedelta):
        return value
    match = DURATION_TEXT.match(value)
    if not match:
        raise ConfigError(f"not a duration: {value!r}", hint="write a number and a unit: 30m, 1h, 2d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


_RELATIVE_MONTH = re.compile(r"(?<![0-9])(0|-\d+)m")


def resolve_months(texts: Sequence[str], today: date | None = None) -> list[str]:
    """Month texts with relative months (``0m`` this month, ``-1m`` the one before, UTC) written out.

    >>> resolve_months(["-2m..0m", "2026-01"], today=date(2026, 10, 5))
    ['2026-08..2026-10', '2026-01']
    """
    today = today or datetime.now(UTC).date()

    def month(match: re.Match[str]) -> str:
        index = today.year * 12 + today.month - 1 + int(match[1])
        return f"{index // 12:04d}-{index % 12 + 1:02d}"

    return [_RELATIVE_MONTH.sub(month, text) for text in texts]


def resolve_day(value: date | str, today: date | None = None) -> date:
    """A date, or ``"-Nd"``: N days before ``today`` (default: today in UTC).

    >>> resolve_day("-35d", today=date(2026, 10, 5))
    datetime.date(2026, 8, 31)
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    match = RELATIVE_TIME.match(value)
    if not match or match[2] != "d":
        return date.fromisoformat(value)
    return (today or datetime.now(UTC).date()) - timedelta(days=int(match[1]))


def resolve_moment(value: date | datetime | str, now: datetime | None = None) -> date | datetime:
    """A date or date-time, or ``"-Nd"`` / ``"-Nh"`` before ``now`` (default: now, UTC, naive).

    >>> resolve_moment("-36h", now=datetime(2026, 10, 5, 12))
    datetime.datetime(2026, 10, 4, 0, 0)
    """
    if isinstance(value, date):
        return value
    match = RELATIVE_TIME.match(value)
    if not match:
        return datetime.fromisoformat(value)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return now - timedelta(**{_UNITS[match[2]]: int(match[1])})


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
    if kind in ("aws-cur", "azure"):
        return [load.result for load in report.loads]
    if kind == "gcp-bigquery" or kind == "prices":
        return [item.result for item in report]
    if kind == "gcp-catalog":
        return [r for r in (report.prices, report.projects) if r is not None]
    return [report.result]


def _note(kind: str, report: Any) -> str:
    if kind == "aws-cur" and report.skipped:
        return f"{len(report.skipped)} period(s) unchanged, skipped"
    if kind == "azure" and report.skipped:
        return f"{len(report.skipped)} export run(s) skipped"
    return ""


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
        report = ingest(wh, src, base_dir=base_dir, progress=progress)
    except Exception as exc:
        text = str(exc) if isinstance(exc, FinopsError) else f"{type(exc).__name__}: {exc}"
        hint = exc.hint if isinstance(exc, FinopsError) and exc.hint else ""
        message = " ".join(text.split()) + (f" (hint: {' '.join(hint.split())})" if hint else "")
        return SourceRun(src.name, src.kind, "failed", seconds=time.monotonic() - started, error=redact(message, src))
    results = load_results(src.kind, report)
    return SourceRun(
        src.name,
        src.kind,
        "loaded" if results else "unchanged",
        rows_read=sum(r.rows_read for r in results),
        rows_loaded=sum(r.rows_loaded for r in results),
        rows_quarantined=sum(r.rows_quarantined for r in results),
        rows_replaced=sum(r.rows_replaced for r in results),
        batches=len(results),
        seconds=time.monotonic() - started,
        note=_note(src.kind, report),
        report=report,
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
