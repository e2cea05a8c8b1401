"""The exceptions finops raises, and whose fault each one is.

    FinopsError                  base: the CLI prints one line and exits 1
    ├── ConfigError              finops.toml is wrong: the message names the key and line
    ├── SourceError              an input cannot be read as what it claims to be
    │   └── NotFocusError        a file lacks the columns every FOCUS version has
    ├── WarehouseError           the DuckDB warehouse cannot be used
    │   ├── WarehouseBusyError   another process holds the lock: try again later
    │   └── SchemaVersionError   the file was written by another finops version
    ├── FolderBusyError          another finops process is writing the same folder
    ├── EngineError              the analysis engine (Spark) cannot start or read its data
    ├── AnalysisError            a finops function was asked something it cannot answer
    └── ReportError              a report notebook failed: the message names the cell

Third-party errors (DuckDB, papermill, …) are caught where they happen and re-raised as
one of these, with the original kept as ``__cause__`` for ``--debug``.
"""

from __future__ import annotations


class FinopsError(Exception):
    """Base class: anything finops raises on purpose. ``hint`` says how to fix it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(FinopsError):
    """The configuration file is invalid; the message points at the key and line."""


class SourceError(FinopsError):
    """An input file, export or API cannot be read."""


class NotFocusError(SourceError):
    """A file handed to the FOCUS connector is not FOCUS: required columns are missing."""


class WarehouseError(FinopsError):
    """The warehouse cannot be opened or written."""


class WarehouseBusyError(WarehouseError):
    """Another process holds the warehouse's lock for longer than we were willing to wait."""


class SchemaVersionError(WarehouseError):
    """The warehouse's schema version does not match this version of finops."""


class FolderBusyError(FinopsError):
    """Another finops process (e.g. a second ``finops demo``) is writing the same folder."""


class EngineError(FinopsError):
    """The engine chosen for analyses (``engine = "spark"``) cannot start or cannot read its tables."""


class AnalysisError(FinopsError):
    """An analysis was asked for something the data or parameters cannot give."""


class ReportError(FinopsError):
    """Rendering a report failed; no HTML was published."""
