"""The connector registry: one entry per source kind, used by ``finops ingest``, ``finops run`` and ``finops demo``.

A :class:`Connector` says what a kind is to the rest of the workbench: its ``kind`` (the
``finops ingest`` subcommand and the ``kind`` of a ``[[sources]]`` table), the ``options`` it
takes (:data:`finops.config.SOURCE_OPTIONS`), how its loads write to the warehouse
(``write_disposition``), the state key an incremental connector keeps (``cursor``), and
``ingest(wh, spec, progress)``, which returns a :class:`LoadReport`: the same counts for every
kind, with the connector's own report in ``detail`` for the kind-specific tables the CLI prints.

:data:`REGISTRY` holds one :class:`FunctionConnector` per kind; adding a kind is one entry
there (plus its ``SOURCE_URIS``/``SOURCE_OPTIONS`` in finops/config.py and its CLI command).
Every caller resolves a kind with :meth:`Registry.get`, so a kind the registry does not know
fails the same way, with the same :class:`~finops.exceptions.ConfigError`, wherever it starts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from finops.config import SOURCE_OPTIONS, SOURCE_URIS, Source
from finops.exceptions import ConfigError
from finops.ingest.relative import parse_duration, resolve_day, resolve_moment, resolve_months

if TYPE_CHECKING:
    from finops.warehouse import LoadResult, Warehouse

ProgressCallback = Callable[[str, int, int], None]
Ingester = Callable[["Warehouse", Source, "ProgressCallback | None"], Any]
"""A kind's load function: (warehouse, source, progress) → the connector's own report."""

WriteDisposition = Literal["replace-partitions", "replace-keys", "merge-window"]
"""How a load writes: ``replace-partitions``: bills, each (source, account, month) found replaces
what the warehouse held for it; ``replace-keys``: traces and prices, each key (request id, model)
found replaces its row; ``merge-window``: incremental APIs and LiteLLM, the window read (from a
start or a saved watermark) replaces the rows it covers."""

LITELLM_FILE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
"""What the ``litellm-file`` kind takes from a folder: exports of LiteLLM_SpendLogs' rows."""

AZURE_DEFAULT_ENV = "AZURE_STORAGE_CONNECTION_STRING"
"""Where ``azure`` looks for the storage connection string when ``connection_string_env`` is not set."""


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What one source's load did, the same for every kind.

    The totals are sums over ``results`` (one :class:`~finops.warehouse.LoadResult` per
    warehouse batch; none when nothing new was found), so rows read = loaded + quarantined
    holds here as it does per batch. ``detail`` is the connector's own report.
    """

    kind: str
    source: str
    results: tuple[LoadResult, ...]
    files: int = 0
    note: str = ""
    detail: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def rows_read(self) -> int:
        return sum(r.rows_read for r in self.results)

    @property
    def rows_loaded(self) -> int:
        return sum(r.rows_loaded for r in self.results)

    @property
    def rows_quarantined(self) -> int:
        return sum(r.rows_quarantined for r in self.results)

    @property
    def rows_replaced(self) -> int:
        return sum(r.rows_replaced for r in self.results)

    @property
    def batches(self) -> int:
        return len(self.results)


class Connector(Protocol):
    """What the registry knows of a source kind (see the module docstring)."""

    @property
    def kind(self) -> str: ...

    @property
    def options(self) -> tuple[str, ...]: ...

    @property
    def write_disposition(self) -> WriteDisposition: ...

    @property
    def cursor(self) -> str | None: ...

    def ingest(self, wh: Warehouse, spec: Source, progress: ProgressCallback | None = None) -> LoadReport: ...


def _one_result(report: Any) -> list[LoadResult]:
    return [report.result]


def _file_count(report: Any) -> int:
    return len(getattr(report, "files", None) or [])


@dataclasses.dataclass(frozen=True)
class FunctionConnector:
    """A :class:`Connector` made of the kind's load function and how to read its report."""

    kind: str
    write_disposition: WriteDisposition
    load: Ingester
    results: Callable[[Any], list[LoadResult]] = _one_result
    files: Callable[[Any], int] = _file_count
    note: Callable[[Any], str] = lambda report: ""
    cursor: str | None = None

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(SOURCE_OPTIONS[self.kind])

    def ingest(self, wh: Warehouse, spec: Source, progress: ProgressCallback | None = None) -> LoadReport:
        """Load ``spec`` into ``wh`` with this kind's connector; its counts and its own report."""
        detail = self.load(wh, spec, progress)
        return self.report(spec, detail)

    def report(self, spec: Source, detail: Any) -> LoadReport:
        """The :class:`LoadReport` of the connector report ``detail``."""
        return LoadReport(
            self.kind, spec.name, tuple(self.results(detail)), self.files(detail), self.note(detail), detail
        )


class Registry(Mapping[str, FunctionConnector]):
    """Kind → connector. :meth:`get` is how every caller resolves a kind."""

    def __init__(self, connectors: Mapping[str, FunctionConnector]) -> None:
        self._connectors = dict(connectors)

    def __getitem__(self, kind: str) -> FunctionConnector:
        return self._connectors[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._connectors)

    def __len__(self) -> int:
        return len(self._connectors)

    def get(self, kind: str) -> FunctionConnector:  # type: ignore[override]
        """The connector of ``kind``; ConfigError (the same everywhere) when the registry has none."""
        try:
            return self._connectors[kind]
        except KeyError:
            raise ConfigError(
                f"no connector for source kind {kind!r}", hint=f"kinds: {', '.join(self._connectors)}"
            ) from None

    def ingest(self, wh: Warehouse, spec: Source, progress: ProgressCallback | None = None) -> LoadReport:
        """Load ``spec`` with the connector of its kind."""
        return self.get(spec.kind).ingest(wh, spec, progress)

    def set_load(self, kind: str, load: Ingester) -> None:
        """Replace the load function of ``kind`` (what assigning ``sources.INGESTERS[kind]`` does)."""
        self._connectors[kind] = dataclasses.replace(self.get(kind), load=load)

    def add(self, connector: FunctionConnector) -> None:
        self._connectors[connector.kind] = connector

    def remove(self, kind: str) -> FunctionConnector:
        return self._connectors.pop(kind)


class IngesterView(MutableMapping[str, Ingester]):
    """The registry's load functions by kind: ``sources.INGESTERS``, kept for callers (and tests) that patch one."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __getitem__(self, kind: str) -> Ingester:
        return self._registry[kind].load

    def __setitem__(self, kind: str, load: Ingester) -> None:
        self._registry.set_load(kind, load)

    def __delitem__(self, kind: str) -> None:
        self._registry.remove(kind)

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)


# -- one load function per kind -------------------------------------------------------------------


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


def _litellm_file(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    """LiteLLM_SpendLogs rows exported to files (Parquet, CSV, JSON lines), for when the proxy's
    database cannot be reached: one batch per file (:func:`connectors.litellm.ingest_rows`), the
    mapping, pricing and quarantine of the ``litellm`` kind; reloading a file adds nothing."""
    from connectors import litellm
    from connectors.files import expand

    return [
        litellm.ingest_rows(wh, path, progress=progress)
        for path in expand(list(src.uris), suffixes=LITELLM_FILE_SUFFIXES)
    ]


def _openai_usage_files(wh: Warehouse, src: Source, progress: ProgressCallback | None) -> Any:
    """OpenAI Usage / Costs API answers saved as files, one page a file, for the UTC days
    [start, end): loaded as the ``openai`` kind loads the pages it fetches
    (:func:`connectors.openai_usage.load_pages`); the window's days are replaced."""
    from connectors import openai_usage
    from connectors.files import expand

    start, end = (_day_option(src, name) for name in ("start", "end"))
    start, end = openai_usage.window(start, end)
    paths = expand(list(src.uris), suffixes=openai_usage.PAGE_FILE_SUFFIXES)
    if progress:
        progress("reading saved API pages", 0, len(paths))
    usage_pages, cost_pages = openai_usage.read_pages(paths)
    return openai_usage.load_pages(wh, start, end, usage_pages, cost_pages, uri=", ".join(src.uris))


def _day_option(src: Source, name: str) -> Any:
    """A required day option (a date, ``YYYY-MM-DD`` or ``-Nd``); ConfigError as finops.toml gives."""
    value = src.option(name)
    if value is None:
        raise ConfigError(f"{src.kind} needs option {name!r}")
    try:
        return resolve_day(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{src.kind}: option {name} = {value!r} is not a day", hint="YYYY-MM-DD or -Nd") from None


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


# -- reading the connectors' reports ---------------------------------------------------------------


def _period_loads(report: Any) -> list[LoadResult]:
    return [load.result for load in report.loads]


def _period_files(report: Any) -> int:
    return sum(len(load.files) for load in report.loads)


def _items(report: Any) -> list[LoadResult]:
    return [item.result for item in report]


def _catalog_results(report: Any) -> list[LoadResult]:
    return [r for r in (report.prices, report.projects) if r is not None]


def _skipped(what: str) -> Callable[[Any], str]:
    return lambda report: f"{len(report.skipped)} {what} skipped" if report.skipped else ""


def _no_files(report: Any) -> int:
    return 0


REGISTRY = Registry(
    {
        connector.kind: connector
        for connector in (
            FunctionConnector("focus", "replace-partitions", _focus),
            FunctionConnector(
                "aws-cur", "replace-partitions", _aws_cur, _period_loads, _period_files,
                _skipped("period(s) unchanged,"),
            ),
            FunctionConnector("gcp-bigquery", "replace-partitions", _gcp_bigquery, _items, _no_files),
            FunctionConnector("gcp-export", "replace-partitions", _gcp_export),
            FunctionConnector("gcp-catalog", "replace-keys", _gcp_catalog, _catalog_results, _no_files),
            FunctionConnector(
                "azure", "replace-partitions", _azure, _period_loads, _period_files, _skipped("export run(s)")
            ),
            FunctionConnector("litellm", "merge-window", _litellm, files=_no_files, cursor="watermark"),
            FunctionConnector("openai", "merge-window", _model_api("openai_usage"), files=_no_files),
            FunctionConnector("anthropic", "merge-window", _model_api("anthropic_usage"), files=_no_files),
            FunctionConnector("otel", "replace-keys", _otel),
            FunctionConnector("langfuse", "replace-keys", _langfuse),
            FunctionConnector("prices", "replace-keys", _prices, _items, _no_files),
            FunctionConnector("openai-usage-files", "merge-window", _openai_usage_files, files=_no_files),
            FunctionConnector("litellm-file", "merge-window", _litellm_file, _items, len),
        )
    }
)  # fmt: skip
"""The one registry: kind → :class:`FunctionConnector`. ``litellm``'s cursor is the state key
prefix of its watermark (``watermark:<host:port/dbname>`` in ``source_state``).

Two kinds read from files what another kind reads from a service, when the service cannot be
reached (and in ``finops demo``): ``openai-usage-files`` (uris: saved answers of the OpenAI Usage
and Costs APIs, one page a file; options ``start`` and ``end``, required: the UTC days
[start, end) the pages cover, which the load replaces) and ``litellm-file`` (uris: files of
LiteLLM_SpendLogs rows, .parquet/.csv/.jsonl; no options; each file replaces the hours it touches
under the key ``file:<name>``, so reloading it adds nothing)."""

assert set(REGISTRY) == set(SOURCE_URIS), "every kind of finops.config.SOURCE_URIS needs a registry entry"
