"""Finding and reading local export files: the part every file-based connector shares."""

from __future__ import annotations

import glob
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finops.exceptions import SourceError
from finops.warehouse import MONEY

FileFormat = Literal["csv", "parquet"]


def expand(patterns: Sequence[str | os.PathLike[str]], *, suffixes: Iterable[str] | None = None) -> list[Path]:
    """Expand files, directories (recursively) and globs into a sorted list of unique files.

    A pattern that matches nothing is an error naming it: a typo must not load "nothing"
    and report success.
    """
    wanted = tuple(suffixes) if suffixes else None
    found: dict[Path, None] = {}
    for pattern in patterns:
        text = os.path.expanduser(str(pattern))
        matches = sorted(glob.glob(text, recursive=True)) if glob.has_magic(text) else [text]
        hits = []
        for match in matches:
            path = Path(match)
            if path.is_dir():
                hits.extend(
                    p for p in sorted(path.rglob("*")) if p.is_file() and (wanted is None or p.name.lower().endswith(wanted))
                )
            elif path.is_file():
                hits.append(path)
        if not hits:
            raise SourceError(f"no files match {str(pattern)!r}")
        for path in hits:
            found.setdefault(path, None)
    return list(found)


def detect_format(path: Path) -> tuple[FileFormat, str | None]:
    """(format, compression) of an export file, by its name, else by its first bytes."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq", ".parq")):
        return "parquet", None
    if name.endswith((".csv.gz", ".tsv.gz")):
        return "csv", "gzip"
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv", None
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == b"PAR1":
        return "parquet", None
    if head[:2] == b"\x1f\x8b":
        return "csv", "gzip"
    return "csv", None


def verify_gzip(path: Path) -> None:
    """Raise SourceError unless ``path`` is a complete gzip stream.

    DuckDB reads a truncated .gz up to the cut and reports success, so a half-downloaded
    export would load half a month. Decompressing once (zlib, in C) proves the file whole.
    """
    for _ in _gunzipped(path):
        pass


def longest_line(path: Path, compression: str | None) -> int:
    """The bytes in the longest line of ``path``, decompressed when ``compression`` is "gzip"
    (which proves the file whole on the way, as :func:`verify_gzip` does).

    For sizing DuckDB's read buffer to the file: it must hold the longest line, and a buffer
    sized for the longest line any file might have (1 GiB) is half the default memory limit.
    """
    longest = run = 0  # run: the bytes of the line still open at the end of the chunks so far
    for chunk in _decompressed(path, compression):
        first = chunk.find(b"\n")
        if first < 0:
            run += len(chunk)
            continue
        last = chunk.rfind(b"\n")
        longest = max(longest, run + first, *map(len, chunk[first + 1 : last].split(b"\n")))
        run = len(chunk) - last - 1
    return max(longest, run)


def head_contains(path: Path, compression: str | None, needle: bytes, *, size: int = 8 << 20) -> bool:
    """Whether ``needle`` is in the first ``size`` bytes of ``path`` (decompressed when gzip)."""
    seen, tail = 0, b""
    for chunk in _decompressed(path, compression):
        if needle in tail + chunk[: len(needle)] or needle in chunk:
            return True
        seen += len(chunk)
        if seen >= size:
            return False
        tail = chunk[-len(needle) :]
    return False


def _decompressed(path: Path, compression: str | None) -> Iterator[bytes]:
    """The file's bytes a chunk at a time, gunzipped when ``compression`` is "gzip"."""
    if compression == "gzip":
        return _gunzipped(path)
    if compression is None:
        return _chunks(path)
    raise ValueError(f"{path}: cannot read {compression} files")


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(1 << 20), b"")


def _gunzipped(path: Path) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file (of one member or several), a chunk at a time;
    SourceError when the data is corrupt or ends before the stream does."""
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        for chunk in _chunks(path):
            while chunk:
                yield decompressor.decompress(chunk, 0)
                if decompressor.eof:  # a member ended; gzip allows another to follow
                    chunk = decompressor.unused_data
                    if chunk:
                        decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
                else:
                    chunk = b""
    except zlib.error as exc:
        raise SourceError(f"{path}: corrupt gzip data: {exc}") from exc
    if not decompressor.eof:
        raise SourceError(f"{path}: truncated gzip file (it ends before the compressed data does)")


def sql_literal(text: str) -> str:
    """A SQL string literal (single quotes doubled) for a path DuckDB must read."""
    return "'" + text.replace("'", "''") + "'"


def money_from_text(text: str) -> str:
    """SQL for exact money (the warehouse's DECIMAL(38, 10)) from decimal text, NULL when the text
    is not a number.

    Text goes to a 64-bit DECIMAL(18, 10) first: parsing straight into the 128-bit
    DECIMAL(38, 10) is about 60× slower (1M amounts: 2.5 s against 0.04 s), and only amounts of
    100 million or more need it. Both round to 10 decimals alike.
    """
    return f"coalesce(CAST(TRY_CAST({text} AS DECIMAL(18, 10)) AS {MONEY}), TRY_CAST({text} AS {MONEY}))"


def round_to_money(amount: str) -> str:
    """SQL for ``amount`` (a DECIMAL of at most 18 decimals, e.g. tokens × a per-token price)
    rounded to the warehouse's DECIMAL(38, 10), as ``CAST(amount AS DECIMAL(38, 10))`` rounds it.

    DuckDB divides 128-bit decimals in software: that cast costs about 0.7 µs a value (1.1 s
    for 1.6M priced calls). Amounts under 1, nearly every call's, fit a 64-bit DECIMAL(18, 18),
    whose rounding to (18, 10) gives the same digits 27× faster. ``amount`` appears twice: pass
    a column, not an expression to compute.
    """
    fast = f"CAST(CAST(CAST({amount} AS DECIMAL(18, 18)) AS DECIMAL(18, 10)) AS {MONEY})"
    return f"CASE WHEN abs({amount}) < 1 THEN {fast} ELSE CAST({amount} AS {MONEY}) END"


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is written, as DuckDB's sniffer found it when the file was inspected.

    Reading with it skips sniffing the file again: for the small monthly parts of a FOCUS
    export, the sniffer is more than half of what reading a part costs (a 10 MB, 11k-line
    part: 0.16 s sniffed, 0.04 s with its dialect given).
    """

    delimiter: str
    quote: str
    escape: str
    comment: str
    skip: int  # lines before the header
    columns: tuple[str, ...]  # as the sniffer named them (duplicates made unique)

    def read_options(self) -> str:
        """read_csv options that read the file as sniffed, every column as text."""
        columns = ", ".join(f"{sql_literal(name)}: 'VARCHAR'" for name in self.columns)
        options = (
            f"auto_detect = false, header = true, columns = {{{columns}}}, delim = {sql_literal(self.delimiter)},"
            f" quote = {sql_literal(self.quote)}, escape = {sql_literal(self.escape)}"
        )
        if self.comment:
            options += f", comment = {sql_literal(self.comment)}"
        if self.skip:
            options += f", skip = {self.skip}"
        return options


def read_sql(
    path: Path,
    fmt: FileFormat,
    compression: str | None,
    *,
    rejects_table: str = "reject_errors",
    csv_dialect: CsvDialect | None = None,
) -> str:
    """The DuckDB table function that reads ``path`` as text columns (CSV) or typed (Parquet).

    CSV is read with every column as VARCHAR so that a bad value becomes a quarantined row,
    not a failed load; malformed lines are kept aside in DuckDB's reject tables. With
    ``csv_dialect`` (from :func:`sniff_csv_sql` when the file was inspected) the file is not
    sniffed again.
    """
    lit = sql_literal(str(path))
    if fmt == "parquet":
        return f"read_parquet({lit}, file_row_number = true)"
    return f"read_csv({lit}, {csv_dialect.read_options() if csv_dialect else _SNIFFED}, {_csv_options(rejects_table, compression)})"


def sniff_csv_sql(path: Path, compression: str | None, *, rejects_table: str = "reject_errors") -> str:
    """DuckDB's sniff_csv of ``path`` with the options :func:`read_sql` reads it with: one row,
    whose ``Columns`` are what a read gives and whose dialect :class:`CsvDialect` keeps."""
    return f"sniff_csv({sql_literal(str(path))}, {_SNIFFED}, {_csv_options(rejects_table, compression)})"


def csv_dialect_from_sniff(row: dict[str, object]) -> CsvDialect:
    """The :class:`CsvDialect` in a row of :func:`sniff_csv_sql` (DuckDB writes '(empty)' for none)."""

    def text(value: object) -> str:
        return "" if value == "(empty)" else str(value)

    return CsvDialect(
        delimiter=text(row["Delimiter"]),
        quote=text(row["Quote"]),
        escape=text(row["Escape"]),
        comment=text(row["Comment"]),
        skip=int(row["SkipRows"]),  # type: ignore[call-overload]
        columns=tuple(column["name"] for column in row["Columns"]),  # type: ignore[attr-defined]
    )


_SNIFFED = "all_varchar = true, header = true"


def _csv_options(rejects_table: str, compression: str | None) -> str:
    comp = f", compression = {sql_literal(compression)}" if compression else ""
    return f"store_rejects = true, rejects_table = '{rejects_table}', rejects_scan = '{rejects_table}_scans'{comp}"


EMPTY_QUARANTINE_SQL = (
    "SELECT CAST(NULL AS VARCHAR) AS file, CAST(NULL AS BIGINT) AS row_number, CAST(NULL AS VARCHAR) AS column_name,"
    " CAST(NULL AS VARCHAR) AS reason, CAST(NULL AS JSON) AS raw_row WHERE false"
)
"""An empty table with the quarantine's columns, to stage rejects into."""


def csv_rejects_sql(rejects_table: str, file_label: str) -> str:
    """Lines DuckDB's CSV reader rejected (``store_rejects``) as quarantine rows: one per line.

    ``row_number`` is the data row (the line minus the header); the raw line is kept, as read.
    """
    return (
        f"SELECT {sql_literal(file_label)} AS file, min(line) - 1 AS row_number, any_value(column_name) AS column_name,"
        " 'line ' || min(line) || ': ' || string_agg(DISTINCT error_type || ': ' || error_message, '; ') AS reason,"
        " to_json({'csv_line': any_value(csv_line)}) AS raw_row"
        f" FROM {rejects_table} GROUP BY line"
    )
