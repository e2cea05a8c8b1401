"""Reading a CSV file with the dialect found when it was inspected, instead of sniffing it again;
sizing the read buffer of a JSON lines file to its longest line."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest

from connectors.files import detect_format, longest_line, read_sql
from connectors.staging import describe_columns, lines_sql
from finops.exceptions import SourceError

# Each: the file's text and the dialect inspect must have found (delimiter, quote, escape). Where the
# sniffer finds no quoting, inspect reads '"' (RFC 4180) unless that rejects more lines.
CSV_FILES = {
    "plain.csv": ("a,b,c\n1,2,3\n4,5,6\n", (",", '"', '"')),
    "bom.csv": ("\ufeffa,b,c\n1,2,3\n", (",", '"', '"')),
    "crlf.csv": ("a,b,c\r\n1,2,3\r\n4,5,6\r\n", (",", '"', '"')),
    "semicolon.csv": ('a;b;c\n1;"2;5";3\n4;5;6\n', (";", '"', "")),
    "tab.tsv": ("a\tb\tc\n1\t2\t3\n", ("\t", '"', '"')),
    "quoted.csv": ('a,b,c\n"x, y","line1\nline2",3\n"he said ""hi""",2,3\n', (",", '"', '"')),
    "backslash.csv": ('a,b\n"x \\"q\\" y",2\n"z",3\n', (",", '"', "\\")),
    "ragged.csv": ("a,b,c\n1,2,3\n1,2\n1,2,3,4\n7,8,9\n", (",", '"', '"')),
    "duplicate-names.csv": ('a,a,b c,"q""x"\n1,2,3,4\n', (",", '"', '"')),
    "no-last-newline.csv": ("a,b\n1,2\n3,4", (",", '"', '"')),
    "header-only.csv": ("a,b,c\n", (",", '"', '"')),
    "unicode.csv": ("名前,値\nä,1\n€,2\n", (",", '"', '"')),
    "padded.csv": (" a , b \n 1 , 2 \n", (",", '"', '"')),
    # Quotes as literal text: read quoted, the second line would be rejected; the sniffer's none is kept.
    "literal-quotes.csv": ('a,b\n1,say "hi"\n2,"Premium" support\n3,x\n', (",", "", "")),
    # Quoted with ', which '"' would read as a field too many: kept.
    "single-quoted.csv": ("a,b\n'x, y',2\n'z',3\n", (",", "'", "")),
}


def _read(con: duckdb.DuckDBPyConnection, path: Path, rejects: str, **dialect) -> tuple[list, list]:
    fmt, compression = detect_format(path)
    rows = con.execute(f"SELECT * FROM {read_sql(path, fmt, compression, rejects_table=rejects, **dialect)}").fetchall()
    rejected = con.execute(f"SELECT line, column_name, error_type, csv_line FROM {rejects} ORDER BY ALL").fetchall()
    return rows, rejected


@pytest.mark.parametrize("name", [*CSV_FILES, "quoted.csv.gz"])
def test_a_file_read_with_its_inspected_dialect_gives_what_a_sniffed_read_gives(tmp_path, name):
    text, (delimiter, quote, escape) = CSV_FILES[name.removesuffix(".gz")]
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    con = duckdb.connect()
    fmt, compression = detect_format(path)
    described = describe_columns(con, path, fmt, compression)
    dialect = described.csv_dialect
    assert dialect is not None
    assert (dialect.delimiter, dialect.quote, dialect.escape) == (delimiter, quote, escape)
    assert list(described.types) == list(dialect.columns)

    sniffed_rows, sniffed_rejects = _read(con, path, "sniffed")
    rows, rejects = _read(con, path, "given", csv_dialect=dialect)
    assert rows == sniffed_rows
    assert rejects == sniffed_rejects
    if name == "ragged.csv":  # the short and the long line are rejected, not loaded
        assert rows == [("1", "2", "3"), ("7", "8", "9")] and [r[0] for r in rejects] == [3, 4]
    if name == "semicolon.csv":
        assert rows[0] == ("1", "2;5", "3")
    if name == "single-quoted.csv":
        assert rows == [("x, y", "2"), ("z", "3")]
    if name == "literal-quotes.csv":
        assert rows[1] == ("2", '"Premium" support') and rejects == []
    if name == "duplicate-names.csv":
        assert list(described.types) == ["a", "a_1", "b c", 'q"x']


def test_parquet_files_have_no_csv_dialect(tmp_path):
    path = tmp_path / "t.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 1 AS a, 'x' AS b) TO '{path}' (FORMAT parquet)")
    described = describe_columns(con, path, "parquet", None)
    assert described.types == {"a": "INTEGER", "b": "VARCHAR"} and described.csv_dialect is None


MIB = 1 << 20
# Lines that cross the 1 MiB chunks longest_line reads in: one of 2.5 chunks, one ending on a
# chunk's last byte, many short ones, and a last line with no newline.
LINES = [b"a" * (5 * MIB // 2), b"b" * (MIB // 2 - 2), *[b"c" * 50] * 30_000, b"d" * (3 * MIB), b"e" * 10]


@pytest.mark.parametrize("packing", ["plain", "gzip", "gzip, two members"])
def test_the_longest_line_is_measured_across_chunks_and_its_read_buffer_holds_it(tmp_path, packing):
    data = b"\n".join(LINES)
    path = tmp_path / ("lines.jsonl" if packing == "plain" else "lines.jsonl.gz")
    if packing == "plain":
        path.write_bytes(data)
    else:
        half = len(data) // 3
        parts = [data] if packing == "gzip" else [data[:half], data[half:]]
        path.write_bytes(b"".join(gzip.compress(part) for part in parts))
    compression = None if packing == "plain" else "gzip"
    assert longest_line(path, compression) == 3 * MIB
    con = duckdb.connect()
    con.execute("SET memory_limit = '200MB'")  # a 1 GiB buffer does not fit
    measured = lines_sql(path, compression, longest=longest_line(path, compression))
    lengths = con.execute(f"SELECT length(line) FROM {measured}").fetchall()
    assert [n for (n,) in lengths] == [len(line) for line in LINES]
    with pytest.raises(duckdb.Error, match="Maximum line size"):  # the buffer is what was measured
        con.execute(f"SELECT count(*) FROM {lines_sql(path, compression, longest=MIB)}").fetchall()


def test_an_empty_unended_or_cut_file_has_a_longest_line_or_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert longest_line(empty, None) == 0
    unended = tmp_path / "unended.jsonl"
    unended.write_bytes(b"ab\n" + b"y" * 5)
    assert longest_line(unended, None) == 5
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b"x" * 100_000 + b"\n")[:-20])
    with pytest.raises(SourceError, match="cut.jsonl.gz: truncated gzip file"):
        longest_line(cut, "gzip")
