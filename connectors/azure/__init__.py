"""Azure Cost Management exports (actual cost, amortized cost, FOCUS) into the `charges` table.

:func:`ingest` finds the export runs in Blob Storage or local files, picks the newest run of each
export and date-range folder, checks every file before anything is written, and loads the runs:
actual and amortized exports are matched line by line into one row of `charges` (BilledCost from
the actual export, EffectiveCost from the amortized one); FOCUS exports go through
:mod:`connectors.focus`.

The package, by concern (each module imports only the ones before it):

* :mod:`connectors.azure.discover` — where exports are read from (``az://``, SAS URLs, local
  files), keeping credentials out of every message, and which files make one export run;
* :mod:`connectors.azure.inspect` — checking files: Azure cost details or FOCUS, which column
  holds each field, actual or amortized;
* :mod:`connectors.azure.map` — the SQL that types a native line, finds its errors and maps it
  to a row of `charges`, and the SQL that matches actual with amortized lines;
* :mod:`connectors.azure.load` — :func:`ingest` and the load itself: staging, rebuilding each
  month from every current export's lines, the state that says which lines are current.

The public names below are the package's API; import them from ``connectors.azure``.
"""

from __future__ import annotations

from connectors.azure.discover import (
    DATA_SUFFIXES,
    DATASETS,
    DEFAULT_CONNECTION_STRING_ENV,
    MANIFEST_NAME,
    SOURCE_KIND,
    BlobLocation,
    ExportObject,
    ExportRun,
    ExportType,
    ProgressCallback,
    SkippedRun,
    parse_location,
)
from connectors.azure.inspect import COLUMN_ALIASES, REQUIRED_FIELDS, AzureFile, NotAzureExportError
from connectors.azure.load import AzureIngestReport, AzureLoad, LoadedRun, ingest
from connectors.azure.map import CHARGE_CATEGORIES, DATE_FIELDS, DECIMAL_FIELDS

__all__ = [
    "CHARGE_CATEGORIES",
    "COLUMN_ALIASES",
    "DATASETS",
    "DATA_SUFFIXES",
    "DATE_FIELDS",
    "DECIMAL_FIELDS",
    "DEFAULT_CONNECTION_STRING_ENV",
    "MANIFEST_NAME",
    "REQUIRED_FIELDS",
    "SOURCE_KIND",
    "AzureFile",
    "AzureIngestReport",
    "AzureLoad",
    "BlobLocation",
    "ExportObject",
    "ExportRun",
    "ExportType",
    "LoadedRun",
    "NotAzureExportError",
    "ProgressCallback",
    "SkippedRun",
    "ingest",
    "parse_location",
]
