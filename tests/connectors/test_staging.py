"""Reading a CSV file with the dialect found when it was inspected, instead of sniffing it again."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest

from connectors.files import detect_format, read_sql
from connectors.staging import describe_columns

# Each: the file's text and what the sniffer must have found (delimiter, quote, escape).
CSV_FILES = {
    "plain.csv": ("a,b,c\n1,2,3\n4,5,6\n", (",", "", "")),
    "bom.csv": ("\ufeffa,b,c\n1,2,3\n", (",", "", "")),
    "crlf.csv": ("a,b,c\r\n1,2,3\r\n4,5,6\r\n", (",", "", "")),
    "semicolon.csv": ('a;b;c\n1;"2;5";3\n4;5;6\n', (";", '"', "")),
    "tab.tsv": ("a\tb\tc\n1\t2\t3\n", ("\t", "", "")),
    "quoted.csv": ('a,b,c\n"x, y","line1\nline2",3\n"he said ""hi""",2,3\n', (",", '"', '"')),
    "backslash.csv": ('a,b\n"x \\"q\\" y",2\n"z",3\n', (",", '"', "\\")),
    "ragged.csv": ("a,b,c\n1,2,3\n1,2\n1,2,3,4\n7,8,9\n", (",", "", "")),
    "duplicate-names.csv": ('a,a,b c,"q""x"\n1,2,3,4\n', (",", '"', '"')),
    "no-last-newline.csv": ("a,b\n1,2\n3,4", (",", "", "")),
    "header-only.csv": ("a,b,c\n", (",", "", "")),
    "unicode.csv": ("名前,値\nä,1\n€,2\n", (",", "", "")),
    "padded.csv": (" a , b \n 1 , 2 \n", (",", "", "")),
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
    if name == "duplicate-names.csv":
        assert list(described.types) == ["a", "a_1", "b c", 'q"x']


def test_parquet_files_have_no_csv_dialect(tmp_path):
    path = tmp_path / "t.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 1 AS a, 'x' AS b) TO '{path}' (FORMAT parquet)")
    described = describe_columns(con, path, "parquet", None)
    assert described.types == {"a": "INTEGER", "b": "VARCHAR"} and described.csv_dialect is None
