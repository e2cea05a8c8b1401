"""AWS cost exports (CUR 2.0, legacy CUR, the AWS FOCUS export) into the `charges` table.

How a load goes:

1. For each billing period the newest manifest is the truth: AWS rewrites a period several
   times a day while it is open, and restates it for days after it closes. A manifest whose
   sha256 equals the one saved with the last load of that period is skipped before any data
   file is downloaded (``AwsIngestReport.skipped``).
2. Exactly the files the manifest lists are read (Data Exports ``dataFiles``, legacy
   ``reportKeys``); a listed file that is missing is an error naming it. Every file is checked
   first (readable, complete gzip, the columns a CUR has) and nothing is written for a refused
   period.
3. One SQL statement per period maps the line items to FOCUS columns (see :func:`_focus_sql`)
   and the warehouse replaces the period's (source, payer account, billing period) partitions
   in one transaction, saving the manifest's checksum with them. A restated period therefore
   replaces the old rows — also those of sub accounts that vanished from the restatement —
   and a killed load leaves the previous version in place.
4. Bad rows are quarantined with the column and the reason, never loaded half-right: an
   unreadable amount or date, a missing payer account, a line item type this module does not
   know (its amortization is unknown, so it cannot be given an EffectiveCost), a row whose
   billing period is not the delivery's.

The package, by concern (each module imports only the ones before it):

* :mod:`connectors.aws_cur.discover` — where the export is (S3, a local copy, loose files): listing and reading
  manifests, fetching the files they list;
* :mod:`connectors.aws_cur.inspect` — checking each file before anything is written: which export kind it is and
  which of its columns hold which CUR field;
* :mod:`connectors.aws_cur.map` — the SQL that types line items, finds the bad ones and maps the good ones to the
  FOCUS columns of `charges` (exact money, amortization);
* :mod:`connectors.aws_cur.load` — :func:`ingest` and the load itself: skipping unchanged manifests, staging files,
  one batch per delivery.

The public names below are the package's API; import them from ``connectors.aws_cur``.
"""

from __future__ import annotations

from connectors.aws_cur.discover import DATA_SUFFIXES, SOURCE_KIND, ProgressCallback
from connectors.aws_cur.inspect import REQUIRED_FIELDS, CurFile, Dialect
from connectors.aws_cur.load import AwsIngestReport, PeriodLoad, ingest
from connectors.aws_cur.map import (
    AI_CATEGORY,
    LINE_ITEM_TYPES,
    MAP_FIELDS,
    MONEY_FIELDS,
    NOT_NULL_FIELDS,
    PRODUCT_MAP_KEYS,
    SERVICES,
    TEXT_FIELDS,
    TIME_FIELDS,
)

__all__ = [
    "AI_CATEGORY",
    "DATA_SUFFIXES",
    "LINE_ITEM_TYPES",
    "MAP_FIELDS",
    "MONEY_FIELDS",
    "NOT_NULL_FIELDS",
    "PRODUCT_MAP_KEYS",
    "REQUIRED_FIELDS",
    "SERVICES",
    "SOURCE_KIND",
    "TEXT_FIELDS",
    "TIME_FIELDS",
    "AwsIngestReport",
    "CurFile",
    "Dialect",
    "PeriodLoad",
    "ProgressCallback",
    "ingest",
]
