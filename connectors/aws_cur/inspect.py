"""Checking AWS export files before anything is written: which export kind a file is, where its columns are.

Every file is checked first: readable, a complete gzip, and the columns every CUR has
(:data:`REQUIRED_FIELDS`); a file that fails is an error naming it, so nothing is written for a
refused period. Legacy CUR headers (``lineItem/UnblendedCost``) are translated to CUR 2.0's
snake_case names (:func:`_canonical_name`), one-column-per-tag columns to tag keys
(:func:`_tag_key`). A file with the columns FOCUS requires is an AWS FOCUS export, checked by
:mod:`connectors.focus`. One delivery never mixes export kinds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Literal

import duckdb

from connectors import focus
from connectors.aws_cur.discover import ProgressCallback
from connectors.files import CsvDialect, FileFormat, detect_format, verify_gzip
from connectors.staging import describe_columns
from finops.exceptions import SourceError
from finops.warehouse import Warehouse

Dialect = Literal["cur2", "legacy", "focus"]


REQUIRED_FIELDS = {
    "bill_payer_account_id": "bill/PayerAccountId",
    "bill_billing_period_start_date": "bill/BillingPeriodStartDate",
    "bill_billing_period_end_date": "bill/BillingPeriodEndDate",
    "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_usage_start_date": "lineItem/UsageStartDate",
    "line_item_usage_end_date": "lineItem/UsageEndDate",
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "line_item_currency_code": "lineItem/CurrencyCode",
}
"""Columns every CUR has (CUR 2.0 name → legacy header): a file without them is not a CUR."""


@dataclasses.dataclass(frozen=True)
class CurFile:
    """An export file checked to be a CUR (or AWS FOCUS export): where its columns are."""

    uri: str  # where it came from: s3://… or the local path
    path: PurePosixPath | Path  # for display (.name); the local copy for local sources
    local: Path  # the file DuckDB reads (a downloaded copy for S3)
    dialect: Dialect
    format: FileFormat
    compression: str | None
    columns: dict[str, str]  # canonical name → the file's own column name
    types: dict[str, str]  # the file's column name → DuckDB type
    tag_columns: dict[str, str]  # legacy one-column-per-tag: column name → tag key
    ignored_columns: tuple[str, ...] = ()
    focus_file: focus.FocusFile | None = None
    csv_dialect: CsvDialect | None = None  # CSV: as sniffed here, so the stage does not sniff again


# -- checking files -------------------------------------------------------------------------


def _canonical_name(name: str) -> str:
    """CUR 2.0 name of a column: legacy ``lineItem/UnblendedCost`` → ``line_item_unblended_cost``,
    ``savingsPlan/SavingsPlanARN`` → ``savings_plan_savings_plan_a_r_n`` (AWS's own rule)."""
    name = name.strip()
    if "/" not in name:
        return name.lower()
    category, field = name.split("/", 1)
    return f"{_snake(category)}_{_snake(field)}"


def _snake(text: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", text).lower()


def _tag_key(raw: str) -> str:
    """The user's tag key: ``user:team`` / ``user_team`` → ``team``; ``aws:createdBy`` stays,
    ``aws_createdBy`` (CUR 2.0 map key) → ``aws:createdBy``."""
    if raw.startswith(("user:", "user_")):
        return raw[5:]
    if raw.startswith("aws_"):
        return "aws:" + raw[4:]
    return raw


def _inspect_all(files: Sequence[tuple[str, Path]], report: ProgressCallback) -> list[CurFile]:
    checked = []
    with Warehouse.scratch() as con:
        for i, (uri, local) in enumerate(files):
            report(f"checking {PurePosixPath(uri).name}", i, len(files))
            checked.append(_inspect(con, uri, local))
    if not checked:
        return checked
    dialects = {f.dialect for f in checked}
    if len(dialects) > 1:
        raise SourceError(
            f"one delivery mixes export kinds ({', '.join(sorted(dialects))}): "
            + ", ".join(f"{f.path.name} is {f.dialect}" for f in checked[:4]),
            hint="load each export (CUR 2.0, legacy CUR, FOCUS) on its own",
        )
    return checked


def _inspect(con: duckdb.DuckDBPyConnection, uri: str, local: Path) -> CurFile:
    """Check that ``local`` (the copy of ``uri``) is a readable CUR or AWS FOCUS export file."""
    shown = PurePosixPath(uri) if uri.startswith("s3://") else local
    fmt, compression = detect_format(local)
    if compression == "gzip":
        try:
            verify_gzip(local)
        except SourceError as exc:
            raise SourceError(str(exc).replace(str(local), uri)) from None
    described = describe_columns(con, local, fmt, compression, name=uri)
    types = described.types
    lower = {name.strip().lower(): name for name in types}
    if all(c.lower() in lower for c in focus.REQUIRED_COLUMNS):
        focus_file = focus.focus_file(local, fmt, compression, described)  # already checked and sniffed here
        return CurFile(
            uri, shown, local, "focus", fmt, compression, {}, types, {}, focus_file.ignored_columns, focus_file
        )
    legacy = any("/" in name for name in types)
    columns: dict[str, str] = {}
    tag_columns: dict[str, str] = {}
    for name in types:
        stripped = name.strip()
        if stripped.lower().startswith("resourcetags/"):
            tag_columns[name] = _tag_key(stripped.split("/", 1)[1])
        elif stripped.lower().startswith("resource_tags_"):
            tag_columns[name] = _tag_key(stripped[len("resource_tags_") :])
        else:
            columns.setdefault(_canonical_name(name), name)
    missing = [c for c in REQUIRED_FIELDS if c not in columns]
    if missing:
        named = [REQUIRED_FIELDS[c] if legacy else c for c in missing]
        raise SourceError(
            f"{uri}: not an AWS Cost and Usage Report: missing column{'s' if len(missing) > 1 else ''} {', '.join(named)}",
            hint="CUR 2.0, legacy CUR and AWS FOCUS exports are read; a FOCUS file from elsewhere: finops ingest focus",
        )
    kind = "legacy" if legacy or tag_columns else "cur2"
    return CurFile(
        uri, shown, local, kind, fmt, compression, columns, types, tag_columns, csv_dialect=described.csv_dialect
    )
