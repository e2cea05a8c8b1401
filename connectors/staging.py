"""Staging a load's files: one file loop, one way to report an unreadable file, one quarantine select.

The file connectors (FOCUS, GCP billing export, OTel, Langfuse, AWS CUR, Azure exports) all load
the same way: take each file's checksum (the warehouse skips a file it already loaded and
records it with the batch), stage the files into a batch table (one by one, or side by side on
helper threads and appended in order), each with its rows' errors in an ``_errors`` list, then
write the good rows and quarantine the others with their file, row and reason. This module holds the parts they share, so they report progress,
failures and rejected rows alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import duckdb

from connectors.files import (
    EMPTY_QUARANTINE_SQL,
    CsvDialect,
    FileFormat,
    csv_dialect_from_sniff,
    csv_rejects_sql,
    head_contains,
    longest_line,
    read_sql,
    sniff_csv_sql,
    sql_literal,
)
from finops.exceptions import SourceError
from finops.warehouse import LoadBatch, SourceFile

ProgressCallback = Callable[[str, int, int], None]
Item = TypeVar("Item")
Result = TypeVar("Result")
Worker = TypeVar("Worker")
Item_contra = TypeVar("Item_contra", contravariant=True)


class StageApart(Protocol[Item_contra]):
    """Stages one file into tables of its own on a helper batch; returns them (see :class:`StagedRows`)."""

    def __call__(self, helper: LoadBatch, index: int, item: Item_contra) -> StagedRows: ...


def no_progress(*_: Any) -> None:
    """A progress callback that reports nothing (the default of every connector)."""


def checksums(
    paths: Sequence[Path], progress: ProgressCallback | None = None, *, names: Sequence[str] | None = None
) -> list[SourceFile]:
    """The :class:`~finops.warehouse.SourceFile` (path, size, checksum) of each file, in order.

    ``names``: what the warehouse records as each file's path instead of the local one (the
    ``s3://`` or ``az://`` URI of a downloaded copy), in the same order as ``paths``.
    """
    if names is not None and len(names) != len(paths):
        raise ValueError(f"{len(names)} names for {len(paths)} files")
    report = progress or no_progress
    found = []
    for i, path in enumerate(paths):
        report("checksums", i, len(paths))
        source = SourceFile.of(path)
        found.append(source if names is None else dataclasses.replace(source, path=names[i]))
    return found


def files_side_by_side(
    batch: LoadBatch,
    items: Sequence[Item],
    stage_apart: Callable[[LoadBatch, int, Item], Result],
    progress: ProgressCallback | None = None,
    *,
    path: Callable[[Item], Path],
    at_once: int | None = None,
) -> Iterator[Result]:
    """The file loop: ``stage_apart(helper, index, item)`` for each item on ``at_once`` helper
    batches (:meth:`LoadBatch.helper`, default one per core); the results in the items' order.

    DuckDB reads a small file, or any gzip one, in one thread, so two files at once use two
    cores. ``path(item)`` names the file in the progress description ``reading NAME``, given
    as each result is taken. Of several bad files the first in order is raised. Consume the
    results whole (the helpers close after the last).
    """
    report = progress or no_progress
    results = _on_threads(batch.helper, list(enumerate(items)), lambda helper, pair: stage_apart(helper, *pair), at_once)
    for i, item in enumerate(items):
        report(f"reading {path(item).name}", i, len(items))
        yield next(results)


@dataclasses.dataclass(frozen=True)
class StagedRows:
    """One file staged apart by :func:`stage_rows_apart`: its tables, as any connection of the batch names them."""

    rows: str  # the typed rows, with _file, _row, _errors, _raw
    rejects: str | None  # quarantine rows of the lines DuckDB could not parse (CSV)
    rows_read: int  # staged rows plus rejected lines


def stage_files_side_by_side(
    batch: LoadBatch,
    items: Sequence[Item],
    stage_apart: StageApart[Item],
    progress: ProgressCallback | None = None,
    *,
    path: Callable[[Item], Path],
    rows_table: str,
    rejects_table: str | None,
    at_once: int | None = None,
) -> int:
    """Stage files into ``rows_table`` and ``rejects_table`` by :func:`files_side_by_side`; the rows read.

    ``stage_apart(helper, index, item)`` stages each file into tables of its own, on ``at_once``
    threads (default: one per core; three on two cores was no faster); this thread appends them
    to ``rows_table`` and ``rejects_table`` (None when no file is CSV) in the items' order, so
    the staged rows are in file order, as one file at a time would give: the 72 monthly FOCUS
    parts of the 2M benchmark, 17–21 → 12–13 s of staging.
    """
    rows_read = 0
    files = files_side_by_side(batch, items, stage_apart, progress, path=path, at_once=at_once)
    with contextlib.closing(files) as staged_files:
        for i, (item, staged) in enumerate(zip(items, staged_files, strict=True)):
            batch.stage(rows_table, f"SELECT * FROM {staged.rows}", append=i > 0)
            if i == 0 and rejects_table is not None:
                batch.stage(rejects_table, EMPTY_QUARANTINE_SQL)
            if staged.rejects is not None:
                if rejects_table is None:
                    raise ValueError(f"{path(item)}: rejected lines staged, but no rejects_table to keep them in")
                batch.stage(rejects_table, f"SELECT * FROM {staged.rejects}", append=True)
                batch.execute(f"DROP TABLE {staged.rejects}")
            batch.execute(f"DROP TABLE {staged.rows}")
            rows_read += staged.rows_read
    return rows_read


def side_by_side(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[Item],
    work: Callable[[duckdb.DuckDBPyConnection, Item], Result],
    *,
    at_once: int | None = None,
) -> Iterator[Result]:
    """``work(cursor, item)`` for the items on ``at_once`` threads (default: one per core), each
    thread with its own cursor of ``con``; the results in the items' order, and of several
    failures the first item's in that order is raised.

    For looking at files before a load: DuckDB reads a gzip CSV, and Python checks its stream, in
    one thread each (both release the GIL), and a download waits on the network.
    """
    return _on_threads(con.cursor, items, work, at_once)


def _on_threads(
    open_worker: Callable[[], contextlib.AbstractContextManager[Worker]],
    items: Sequence[Item],
    work: Callable[[Worker, Item], Result],
    at_once: int | None,
) -> Iterator[Result]:
    """``work(worker, item)`` on ``at_once`` threads (default: one per core), each thread with a
    worker of its own (a cursor, a helper batch) opened here, on the caller's thread; the results
    in the items' order. After a failure, the items not yet started are not worked on."""
    threads = max(1, min(len(items), at_once or os.cpu_count() or 1))
    with contextlib.ExitStack() as stack:
        idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        for _ in range(threads):
            idle.put(stack.enter_context(open_worker()))

        def one(item: Item) -> Result:
            worker = idle.get()
            try:
                return work(worker, item)
            finally:
                idle.put(worker)

        pool = stack.enter_context(ThreadPoolExecutor(max_workers=threads))
        futures = [pool.submit(one, item) for item in items]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def first_line(exc: BaseException | str) -> str:
    """The first line of an error's message (its type's name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def reading(path: Path | str, *, local: Path | None = None) -> Iterator[None]:
    """Turn any error raised while DuckDB reads ``path`` into ``SourceError("PATH: cannot be read: …")``.

    ``local``: the downloaded copy DuckDB actually reads when ``path`` is a remote URI; the
    message names ``path`` wherever DuckDB's own text names the copy.
    """
    try:
        yield
    except Exception as exc:  # DuckDB's IO, parser and conversion errors all mean the same here
        reason = first_line(exc)
        if local is not None:
            reason = reason.replace(str(local), str(path))
        raise SourceError(f"{path}: cannot be read: {reason}") from exc


@dataclasses.dataclass(frozen=True)
class FileColumns:
    """A file's columns as :func:`connectors.files.read_sql` reads it, and (CSV) how it is written."""

    types: dict[str, str]  # column name → DuckDB type (every CSV column is VARCHAR)
    csv_dialect: CsvDialect | None  # CSV: pass to the stage so the file is not sniffed again


def describe_columns(
    con: duckdb.DuckDBPyConnection,
    local: Path,
    fmt: FileFormat,
    compression: str | None,
    *,
    name: Path | str | None = None,
) -> FileColumns:
    """Each column's name and DuckDB type as :func:`connectors.files.read_sql` reads the file.

    The inspect step of every file connector: nothing is staged, only the header and a sample
    (CSV, sniffed once: the dialect found comes back for the stage, with '"' quoting where the
    sniffer found none, see :func:`_quoted_unless_worse`) or the schema (Parquet) is read.
    ``file_row_number`` (added by the reader) is left out. A file DuckDB cannot read is a
    SourceError naming ``name`` (the ``s3://`` or ``az://`` URI of a downloaded copy; default
    ``local``), never the temp path of the copy.
    """
    shown = str(name if name is not None else local)
    try:
        if fmt == "csv":
            cursor = con.execute(f"SELECT * FROM {sniff_csv_sql(local, compression)}")
            fields = [d[0] for d in cursor.description]
            dialect = csv_dialect_from_sniff(dict(zip(fields, cursor.fetchone(), strict=True)))
            if dialect.quote != '"':
                dialect = _quoted_unless_worse(con, local, compression, dialect)
            return FileColumns(dict.fromkeys(dialect.columns, "VARCHAR"), dialect)
        described = con.execute(f"DESCRIBE SELECT * FROM {read_sql(local, fmt, compression)}").fetchall()
    except duckdb.Error as exc:
        reason = first_line(exc).replace(str(local), shown)
        raise SourceError(f"{shown}: cannot be read as {fmt.upper()}: {reason}") from exc
    return FileColumns({row[0]: row[1] for row in described if row[0] != "file_row_number"}, None)


def _quoted_unless_worse(con: duckdb.DuckDBPyConnection, local: Path, compression: str | None, dialect: CsvDialect) -> CsvDialect:
    """``dialect`` (sniffed with no quoting or with "'") quoted with '"' unless that rejects more lines.

    DuckDB's sniffer drops '"' for the whole file when one quoted value in its sample is broken
    ('"GPU" spot', a quote left open), and takes no quoting or "'" (which the file may not even
    hold): every value whose quotes hold a delimiter or a line break would then be a rejected
    line (a FOCUS file's Tags JSON, on most lines). Bills are written by RFC 4180 writers, and
    '"' reads a file with no quotes the same. When the head of the file has quotes, which may
    be literal text or the sniffed "'" quoting, both are read and the one rejecting fewer lines
    kept ('"' on a tie only when the sniffed quote is not in the file).
    """
    quoted = dataclasses.replace(dialect, quote='"', escape='"', columns=_header_unquoted(dialect.columns))
    unused = not dialect.quote or not head_contains(local, compression, dialect.quote.encode())
    if unused and not head_contains(local, compression, b'"'):
        return quoted
    rejected_quoted, rejected = _rejected_lines(con, local, compression, quoted), _rejected_lines(con, local, compression, dialect)
    return quoted if rejected_quoted < rejected or (rejected_quoted == rejected and unused) else dialect


def _header_unquoted(names: tuple[str, ...]) -> tuple[str, ...]:
    """The column names as '"' quoting reads them: the sniffer kept a quoted header's quotes."""

    def unquoted(name: str) -> str:
        return name[1:-1].replace('""', '"') if len(name) > 1 and name[0] == name[-1] == '"' else name

    names_read = tuple(map(unquoted, names))
    return names_read if len(set(names_read)) == len(names_read) else names


def _rejected_lines(con: duckdb.DuckDBPyConnection, local: Path, compression: str | None, dialect: CsvDialect) -> int:
    """How many lines of the CSV file ``dialect`` cannot read (any that fails to read at all: all)."""
    table = "_dialect_rejects"
    read = read_sql(local, "csv", compression, rejects_table=table, csv_dialect=dialect)
    try:  # fetched whole: DuckDB writes the rejects table only when the result is consumed
        con.execute(f"SELECT max(length(concat(*COLUMNS(*)))) FROM {read}").fetchall()
        return con.execute(f'SELECT count(DISTINCT line) FROM temp.main."{table}"').fetchone()[0]
    except duckdb.Error:
        return 1 << 62
    finally:
        con.execute(f'DROP TABLE IF EXISTS temp.main."{table}"')
        con.execute(f'DROP TABLE IF EXISTS temp.main."{table}_scans"')


def stage_raw(
    batch: LoadBatch,
    raw: str,
    rejects: str,
    local: Path,
    fmt: FileFormat,
    compression: str | None,
    *,
    name: Path | str | None = None,
    rowid: str = "r._rowid",
    csv_dialect: CsvDialect | None = None,
) -> str:
    """Stage a file as read (CSV as text) into table ``raw``; return SQL for each staged row's data row number.

    The CSV lines DuckDB cannot parse are staged in table ``rejects`` (they become quarantine
    rows through :func:`connectors.files.csv_rejects_sql`). Both are the batch's staged tables,
    so SQL on any connection of the load names them by ``batch.table_name`` (DuckDB keeps
    rejects in a temporary table of the connection that read the file). The row number is
    1-based, as a user counts data rows: Parquet gives it (``r.file_row_number``); staged CSV
    rows are in file order but skip the rejected lines, so a row's number is its position
    (``rowid``, 0-based, of the staged row aliased ``r``) plus the rejected lines before it.
    ``csv_dialect``: the one found when the file was inspected (:func:`describe_columns`), so it
    is not sniffed again.
    """
    read_rejects = f"{rejects}_read"
    read = read_sql(local, fmt, compression, rejects_table=read_rejects, csv_dialect=csv_dialect)
    with reading(name if name is not None else local, local=local):
        batch.stage(raw, f"SELECT * FROM {read}")
    if fmt == "parquet":
        return "r.file_row_number + 1"
    if stage_read_rejects(batch, read_rejects, rejects) == 0:
        return f"{rowid} + 1"
    table = batch.table_name(rejects)
    refuse_lines_taken_by_an_open_quote(batch, f'"{raw}"', table, local, compression, csv_dialect, name if name is not None else local)
    return data_row_sql(f"{rowid} + 1", table)


def stage_read_rejects(batch: LoadBatch, read_rejects: str, rejects: str) -> int:
    """Stage the reject errors of a CSV read (DuckDB's ``store_rejects`` table ``read_rejects``,
    a temporary table of the connection that read) as the batch's table ``rejects``, which every
    connection of the load reads; return how many errors there were."""
    rejected = batch.stage(rejects, f'SELECT * FROM temp.main."{read_rejects}"')
    batch.execute(f'DROP TABLE temp.main."{read_rejects}"')
    batch.execute(f'DROP TABLE IF EXISTS temp.main."{read_rejects}_scans"')
    return rejected


def data_row_sql(position: str, rejects: str) -> str:
    """SQL for the data row number (1-based, as a user counts) of the ``position``-th row read
    (1-based) when DuckDB skipped the lines of its reject errors ``rejects``."""
    # Rejected data rows d_0 < d_1 < …; the p-th accepted row sits at p + #{j : d_j - j <= p}.
    return (
        f"({position}) + coalesce((SELECT count(*) FROM (SELECT DISTINCT line - 1 AS d FROM "
        f"{rejects}) q WHERE q.d - (SELECT count(*) FROM (SELECT DISTINCT line - 1 AS d2 FROM {rejects}) q2"
        f" WHERE q2.d2 < q.d) <= ({position})), 0)"
    )


def refuse_lines_taken_by_an_open_quote(
    batch: LoadBatch,
    rows: str,
    rejects: str,
    local: Path,
    compression: str | None,
    dialect: CsvDialect | None,
    shown: Path | str,
) -> None:
    """SourceError when a quote left open took the lines after it into one rejected row.

    Meeting a quoted value that does not close where the value ends ('UNQUOTED VALUE'), DuckDB's
    CSV reader reads on to the next quote that does and rejects all of it as one row: the rows
    on the lines between are neither staged nor among the rejected lines, so "rows read" would
    be short by them and the bill by their cost, silently. They cannot be told apart as rows
    either, so the file is refused. Only a file with such an error is recounted: its lines
    against the rows read (``rows``: the staged table, or the read again; with the line breaks
    inside their quoted values) and the rejected rows (``rejects``: DuckDB's reject errors).
    """
    opened = batch.execute(f"SELECT min(line) FROM {rejects} WHERE error_type = 'UNQUOTED VALUE'").fetchone()[0]
    if opened is None:
        return
    staged, breaks = batch.execute(
        "SELECT count(*), coalesce(sum(length(t) - length(replace(t, chr(10), ''))), 0)"
        f" FROM (SELECT concat(*COLUMNS(*)) AS t FROM {rows})"
    ).fetchone()
    rejected = batch.execute(f"SELECT count(DISTINCT line) FROM {rejects}").fetchone()[0]
    comment = dialect.comment if dialect else ""
    counted = f"count(line) FILTER (WHERE NOT starts_with(line, {sql_literal(comment)}))" if comment else "count(line)"
    with reading(shown, local=local):
        lines = batch.execute(f"SELECT {counted} FROM {lines_sql(local, compression, longest=(1 << 21) - 2)}").fetchone()[0]
    header = 1 + (dialect.skip if dialect else 0)
    taken = lines - header - (staged + breaks + rejected)
    if taken > 0:
        raise SourceError(
            f"{shown}: line {opened} opens a quoted value that does not close where the value ends, so the CSV reader"
            f" took the {taken} line{'s' if taken > 1 else ''} after it into one broken row: their rows can be neither"
            " loaded nor quarantined one by one",
            hint=f"close the quote on line {opened} (or export the file again) and load it again; nothing of this load was written",
        )


def stage_rows_apart(
    helper: LoadBatch,
    index: int,
    local: Path,
    fmt: FileFormat,
    compression: str | None,
    *,
    typed_select: Callable[[str, str], str],
    rows_table: str,
    rejects_table: str,
    name: Path | str | None = None,
    csv_dialect: CsvDialect | None = None,
) -> StagedRows:
    """Stage one file's typed rows and its unparsable CSV lines into tables of the file's own.

    ``typed_select(raw_table, row_number_sql)`` is the connector's mapping: a SELECT over the
    raw table (aliased ``r``) giving each row typed with its ``_errors``. The tables are named
    after ``rows_table`` and ``rejects_table``, to which :func:`stage_files_side_by_side`
    appends them; ``name``: the file as the quarantine names it (default ``local``).
    """
    raw, read_rejects = f"_{rows_table}_raw_{index}", f"_{rows_table}_rejects_{index}"
    row_number = stage_raw(helper, raw, read_rejects, local, fmt, compression, name=name, csv_dialect=csv_dialect)
    rows = f"_{rows_table}_{index}"
    helper.stage(rows, typed_select(raw, row_number))
    rejects, rejected = None, 0
    if fmt == "csv":
        rejects = f"_{rejects_table}_{index}"
        label = str(name if name is not None else local)
        rejected = helper.stage(rejects, csv_rejects_sql(helper.table_name(read_rejects), label))
    staged = helper.execute(f'SELECT count(*) FROM "{raw}"').fetchone()[0]
    helper.execute(f'DROP TABLE "{raw}"')
    if fmt == "csv":
        helper.execute(f"DROP TABLE {helper.table_name(read_rejects)}")
    return StagedRows(helper.table_name(rows), helper.table_name(rejects) if rejects else None, staged + rejected)


def errors_quarantine_sql(
    table: str, *, row: str = "_row", raw: str = "_raw", column_pattern: str = r"[\w.]+", file: str = "_file"
) -> str:
    """The quarantine rows of a staged table's bad rows (``len(_errors) > 0``): file, row, column, reason, raw.

    ``table`` has ``_file``, the row number in column ``row``, ``_errors`` (reasons, each
    ``"column: what is wrong"``) and ``raw`` (an SQL expression for the raw row as JSON). The
    column is the name the first reason starts with (``column_pattern``, before the colon).
    ``file``: an SQL expression for the file's name (default ``_file`` as staged; AWS maps a
    downloaded copy back to its ``s3://`` URI).
    """
    return (
        f"SELECT {file} AS file, {row} AS row_number, regexp_extract(_errors[1], '^({column_pattern}):', 1) AS column_name,"
        f" array_to_string(_errors, '; ') AS reason, {raw} AS raw_row FROM \"{table}\" WHERE len(_errors) > 0"
    )


# -- JSON documents, one per line or one per file -------------------------------------------------


LONGEST_LINE = 1 << 30
"""The longest line :func:`lines_sql` reads (1 GiB): a whole export on one line still loads."""


def lines_sql(
    path: Path, compression: str | None = "auto", *, longest: int | None = None, max_line_size: int = LONGEST_LINE
) -> str:
    """The file's lines as one text column ``line``, one row per line, in order.

    A delimiter that valid JSON cannot contain unescaped (U+0001) and no quoting, so every line
    arrives whole, including lines that are not valid JSON. ``compression``: DuckDB's name
    (``gzip``), None for none, ``"auto"`` for gzip when the name ends in ``.gz``.

    DuckDB's read buffer must hold the longest line, and it is allocated whole for every file
    read: it is sized to ``longest`` (bytes) when given (:func:`connectors.files.longest_line`), to
    the file's size when uncompressed, else to ``max_line_size``, the longest line accepted (a
    longer one is an error). A 1 GiB buffer per file would be half the default memory limit.
    """
    if compression == "auto":
        compression = "gzip" if path.name.lower().endswith(".gz") else None
    if longest is None:
        longest = path.stat().st_size if compression is None else max_line_size
    size = min(max_line_size, max(longest + 2, 1 << 21))  # + CR LF; DuckDB's default is 2 MiB
    comp = f", compression = {sql_literal(compression)}" if compression else ""
    return (
        f"read_csv({sql_literal(str(path))}, columns = {{'line': 'VARCHAR'}}, header = false, auto_detect = false,"
        f" delim = '{chr(1)}', quote = '', escape = '', max_line_size = {size},"
        # DuckDB's default buffer is 16 lines of the longest: far past the warehouse's memory limit.
        f" buffer_size = {size}{comp})"
    )


def stage_documents_apart(
    batch: LoadBatch, index: int, path: Path, *, table: str, accept: Callable[[LoadBatch, str, Path], None]
) -> StagedRows:
    """Stage the JSON documents of one file as (_file, _line, doc JSON) in a table of the file's own.

    JSON lines, one document per line, or the whole file as one JSON document (then _line 1).
    A line that is not JSON (in a file that is not one document either) is a SourceError
    naming the file and line. ``accept(batch, staged_table, path)`` checks the staged
    documents' shape and raises. The tables are named after ``table`` and ``index``, so helper
    batches can stage several files at once (:func:`stage_files_side_by_side`).
    """
    name = str(path)
    raw, lines, docs = f"_{table}_raw_{index}", f"_{table}_lines_{index}", f"_{table}_{index}"
    longest = None
    if path.name.lower().endswith(".gz"):
        # Decompressing it proves the file whole: DuckDB would read a truncated .gz up to the
        # cut and call it done.
        longest = longest_line(path, "gzip")
    with reading(path):
        # Staged first: a table keeps the file's line order, so rowid gives the line number.
        batch.stage(raw, f"SELECT line FROM {lines_sql(path, longest=longest)}")
        batch.stage(lines, f'SELECT rowid + 1 AS _line, line FROM "{raw}"')
        batch.execute(f'DROP TABLE "{raw}"')
    bad = batch.execute(
        f'SELECT min(_line) FROM "{lines}" WHERE nullif(trim(line), \'\') IS NOT NULL AND NOT json_valid(line)'
    ).fetchone()[0]
    if bad is None:
        select = (
            f"SELECT {sql_literal(name)} AS _file, _line, line::JSON AS doc FROM \"{lines}\""
            " WHERE nullif(trim(line), '') IS NOT NULL"
        )
    else:
        whole = batch.execute(
            f'SELECT json_valid(string_agg(line, chr(10) ORDER BY _line)) FROM "{lines}"'
        ).fetchone()[0]
        if not whole:
            raise SourceError(
                f"{path}: line {bad} is not valid JSON (nor is the file one JSON document)",
                hint="each line must be one complete JSON export; re-export the file, or remove the broken line",
            )
        select = (
            f"SELECT {sql_literal(name)} AS _file, 1::BIGINT AS _line,"
            f' string_agg(line, chr(10) ORDER BY _line)::JSON AS doc FROM "{lines}"'
        )
    staged = batch.stage(docs, select)
    batch.execute(f'DROP TABLE "{lines}"')
    accept(batch, docs, path)
    return StagedRows(batch.table_name(docs), None, staged)


def token_sql(text: str) -> str:
    """SQL: a token count given as text (``"12"``, ``"12.0"``, a JSON number) as BIGINT; NULL when unreadable."""
    return f"try_cast(try_cast({text} AS DOUBLE) AS BIGINT)"


def bad_token_sql(text: str) -> str:
    """SQL: true when ``text`` is present but not a non-negative whole number (a quarantine reason)."""
    n = token_sql(text)
    return f"({text} IS NOT NULL AND ({n} IS NULL OR {n} < 0 OR try_cast({text} AS DOUBLE) <> {n}))"
