"""The FOCUS connector, end to end into a real DuckDB warehouse file."""

from __future__ import annotations

import csv
import gzip
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from connectors import focus
from finops.exceptions import NotFocusError, SourceError
from tests.focus_files import make_rows, write_csv, write_parquet


def totals(wh, where: str = "true") -> tuple[int, Decimal, Decimal]:
    row = wh.query(f"SELECT count(*) AS n, sum(BilledCost) AS b, sum(EffectiveCost) AS e FROM charges WHERE {where}").row(0)
    return row[0], row[1] or Decimal(0), row[2] or Decimal(0)


def test_focus_1_0_csv_counts_and_totals_match_the_file(wh, tmp_path):
    written = write_csv(tmp_path / "focus10.csv", make_rows(250), "1.0")
    report = focus.ingest(wh, [written.path])
    assert report.files[0].version == "1.0"
    assert (report.result.rows_read, report.result.rows_loaded, report.result.rows_quarantined) == (250, 250, 0)
    assert totals(wh) == (250, written.total("BilledCost"), written.total("EffectiveCost"))
    # Columns FOCUS 1.0 lacks are NULL, not invented.
    assert wh.query("SELECT count(*) FROM charges WHERE ServiceSubcategory IS NOT NULL OR InvoiceId IS NOT NULL").item() == 0
    [period] = report.period_totals.to_dicts()
    assert period["billing_period"] == "2026-07" and period["billed_cost"] == written.total("BilledCost")


def test_focus_1_2_parquet_typed_columns(wh, tmp_path):
    written = write_parquet(tmp_path / "focus12.parquet", make_rows(120, period="2026-08"), "1.2")
    report = focus.ingest(wh, [written.path])
    assert report.files[0].version == "1.2"
    assert totals(wh) == (120, written.total("BilledCost"), written.total("EffectiveCost"))
    tagged = wh.query("SELECT Tags['team'] AS team, count(*) AS n FROM charges GROUP BY ALL ORDER BY team NULLS LAST")
    expected_research = sum(1 for r in written.rows if r["Tags"] and '"research"' in r["Tags"])
    assert tagged.filter(tagged["team"] == "research")["n"].item() == expected_research
    first = wh.query("SELECT ChargePeriodStart, BillingPeriodStart FROM charges WHERE x_SourceRow = 1").row(0)
    assert str(first[0]) == "2026-08-01 00:00:00" and str(first[1]) == "2026-08-01 00:00:00"


def test_gzip_csv_mixed_case_headers_and_1_3_provider_column(wh, tmp_path):
    rows = make_rows(40, provider="OpenAI")
    for r in rows:
        r["ServiceProviderName"] = r.pop("ProviderName")
    written = write_csv(tmp_path / "f13.csv.gz", rows, "1.3", header_case=str.lower, gzip_it=True)
    focus.ingest(wh, [written.path])
    assert totals(wh)[1] == written.total("BilledCost")
    assert wh.query("SELECT DISTINCT ProviderName, ServiceProviderName FROM charges").rows() == [("OpenAI", "OpenAI")]


def test_null_text_empty_strings_and_braceless_tags(wh, tmp_path):
    rows = make_rows(3)
    rows[0]["Tags"] = "NULL"
    rows[1]["Tags"] = '"team": "ml","cost-center": "42"'  # Azure writes tags without braces
    rows[2]["RegionId"] = "NULL"
    rows[2]["ListCost"] = ""
    write_csv(tmp_path / "nulls.csv", rows, "1.0")
    focus.ingest(wh, [tmp_path / "nulls.csv"])
    got = wh.query("SELECT x_SourceRow, Tags, RegionId, ListCost FROM charges ORDER BY x_SourceRow").rows()
    assert got[0][1] is None
    assert got[1][1] == {"team": "ml", "cost-center": "42"}
    assert got[2][2] is None and got[2][3] is None


def test_money_text_of_any_size_is_read_to_the_last_decimal(wh, tmp_path):
    # Amounts below 100 million parse through a 64-bit decimal, larger ones through the 128-bit one.
    amounts = ["99999999.9999999999", "100000000.5", "123456789012.3456789012", "-0.0000000001", "1e3", "7"]
    rows = make_rows(len(amounts))
    for row, amount in zip(rows, amounts, strict=True):
        row["BilledCost"] = amount
    write_csv(tmp_path / "amounts.csv", rows, "1.0")
    focus.ingest(wh, [tmp_path / "amounts.csv"])
    got = [r[0] for r in wh.query("SELECT BilledCost FROM charges ORDER BY x_SourceRow").rows()]
    assert got == [Decimal("99999999.9999999999"), Decimal("100000000.5"), Decimal("123456789012.3456789012"),
                   Decimal("-0.0000000001"), Decimal(1000), Decimal(7)]


def test_loading_twice_leaves_totals_unchanged(wh, tmp_path):
    written = write_csv(tmp_path / "f.csv", make_rows(100), "1.0")
    focus.ingest(wh, [written.path])
    once = totals(wh)
    second = focus.ingest(wh, [written.path])
    assert totals(wh) == once
    assert second.result.rows_replaced == 100


def test_restated_period_replaces_old_rows_and_leaves_other_periods(wh, tmp_path):
    july = write_csv(tmp_path / "july.csv", make_rows(50, period="2026-07"), "1.0")
    august = write_csv(tmp_path / "august.csv", make_rows(60, period="2026-08"), "1.0")
    focus.ingest(wh, [july.path, august.path])
    restated = write_csv(tmp_path / "august-restated.csv", make_rows(45, period="2026-08", scale="1.1"), "1.0")
    report = focus.ingest(wh, [restated.path])
    assert report.result.rows_replaced == 60
    assert totals(wh, "BillingPeriodStart = '2026-08-01'") == (
        45, restated.total("BilledCost"), restated.total("EffectiveCost"))
    assert totals(wh, "BillingPeriodStart = '2026-07-01'") == (50, july.total("BilledCost"), july.total("EffectiveCost"))


def test_other_billing_accounts_are_separate_partitions(wh, tmp_path):
    a = write_csv(tmp_path / "a.csv", make_rows(10, account="A"), "1.0")
    b = write_csv(tmp_path / "b.csv", make_rows(20, account="B"), "1.0")
    focus.ingest(wh, [a.path])
    focus.ingest(wh, [b.path])
    assert totals(wh)[:2] == (30, a.total("BilledCost") + b.total("BilledCost"))


def test_bad_rows_are_quarantined_with_file_row_column_and_reason(wh, tmp_path):
    rows = make_rows(20)
    rows[3]["BilledCost"] = "12,50 EUR"
    rows[7]["ChargePeriodStart"] = "last tuesday"
    rows[11]["EffectiveCost"] = ""
    rows[15]["Tags"] = "{not json"
    written = write_csv(tmp_path / "bad.csv", rows, "1.0")
    # A line with an extra field: DuckDB cannot parse it as a row at all.
    text = written.path.read_text().splitlines()
    text[18] = text[18] + ",surplus"  # line 19 = data row 18
    written.path.write_text("\n".join(text) + "\n")

    report = focus.ingest(wh, [written.path])
    r = report.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (20, 15, 5)
    q = wh.query("SELECT row_number, column_name, reason, raw_row FROM quarantine ORDER BY row_number")
    assert q["row_number"].to_list() == [4, 8, 12, 16, 18]
    assert q["column_name"].to_list()[:4] == ["BilledCost", "ChargePeriodStart", "EffectiveCost", "Tags"]
    assert "cannot read '12,50 EUR' as a number" in q["reason"][0]
    assert "as a date-time" in q["reason"][1]
    assert "FOCUS requires a value" in q["reason"][2]
    assert "not a JSON object" in q["reason"][3]
    assert "line 19" in q["reason"][4] and "surplus" in q["raw_row"][4]
    assert '"12,50 EUR"' in q["raw_row"][0]
    # The rows after the broken line keep their own row numbers.
    loaded_rows = wh.query("SELECT x_SourceRow FROM charges ORDER BY 1")["x_SourceRow"].to_list()
    assert loaded_rows == [n for n in range(1, 21) if n not in (4, 8, 12, 16, 18)]
    good = [row for i, row in enumerate(rows) if i + 1 not in (4, 8, 12, 16, 18)]
    assert totals(wh)[1] == sum(Decimal(row["BilledCost"]) for row in good)


def test_a_file_that_is_not_focus_is_refused_and_nothing_is_written(wh, tmp_path):
    good = write_csv(tmp_path / "good.csv", make_rows(5), "1.0")
    focus.ingest(wh, [good.path])
    before = totals(wh)
    batches_before = wh.query("SELECT count(*) FROM ingest_batches").item()
    other = tmp_path / "invoice.csv"
    other.write_text("date,amount,BilledCost\n2026-07-01,3.50,3.50\n")
    with pytest.raises(NotFocusError) as err:
        focus.ingest(wh, [good.path, other])
    message = str(err.value)
    assert "invoice.csv" in message
    for column in ("EffectiveCost", "BillingAccountId", "BillingPeriodStart", "ChargePeriodStart"):
        assert column in message
    assert "BilledCost," not in message  # present columns are not listed as missing
    assert totals(wh) == before
    assert wh.query("SELECT count(*) FROM ingest_batches").item() == batches_before


def test_a_truncated_gzip_is_refused_before_anything_is_written(wh, tmp_path):
    july = write_csv(tmp_path / "july.csv", make_rows(30), "1.0")
    focus.ingest(wh, [july.path])
    before = totals(wh)
    big = write_csv(tmp_path / "big.csv", make_rows(5000, scale="2"), "1.0")
    payload = gzip.compress(big.path.read_bytes())
    truncated = tmp_path / "restated.csv.gz"
    truncated.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(SourceError, match="restated.csv.gz: truncated gzip"):
        focus.ingest(wh, [truncated])
    assert totals(wh) == before
    # Files are inspected side by side; the error is the first bad file's in the order given.
    other = tmp_path / "invoice.csv"
    other.write_text("date,amount\n2026-07-01,3.50\n")
    with pytest.raises(SourceError, match="restated.csv.gz: truncated gzip"):
        focus.ingest(wh, [july.path, truncated, big.path, other])
    with pytest.raises(NotFocusError, match="invoice.csv"):
        focus.ingest(wh, [big.path, other, july.path, truncated])
    assert totals(wh) == before


def test_a_failure_half_way_keeps_previous_data_and_marks_the_batch_failed(wh, tmp_path):
    july = write_csv(tmp_path / "july.csv", make_rows(30), "1.0")
    focus.ingest(wh, [july.path])
    before = totals(wh)
    # The second file of the delivery has a valid footer but a corrupt data page: it passes
    # inspection and fails while loading, after the first file was staged.
    restated = write_csv(tmp_path / "july-restated.csv", make_rows(40, scale="3"), "1.0")
    whole = write_parquet(tmp_path / "whole.parquet", make_rows(5000, account="B"), "1.2")
    pq.write_table(pq.read_table(whole.path), tmp_path / "groups.parquet", row_group_size=500)
    data = bytearray((tmp_path / "groups.parquet").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2000] = b"\xab" * 2000
    (tmp_path / "corrupt.parquet").write_bytes(bytes(data))
    with pytest.raises(SourceError, match="corrupt.parquet"):
        focus.ingest(wh, [restated.path, tmp_path / "corrupt.parquet"])
    assert totals(wh) == before
    status = wh.query("SELECT status, message FROM ingest_batches ORDER BY batch_id DESC LIMIT 1").row(0)
    assert status[0] == "failed" and "corrupt.parquet" in status[1]
    assert wh.query("SELECT count(*) FROM quarantine").item() == 0


def test_globs_and_directories_expand_and_a_pattern_matching_nothing_is_an_error(wh, tmp_path):
    (tmp_path / "exports" / "2026-07").mkdir(parents=True)
    a = write_csv(tmp_path / "exports" / "2026-07" / "a.csv", make_rows(10, account="A"), "1.0")
    b = write_parquet(tmp_path / "exports" / "b.parquet", make_rows(10, account="B"), "1.2")
    report = focus.ingest(wh, [str(tmp_path / "exports")])
    assert len(report.files) == 2
    assert totals(wh)[1] == a.total("BilledCost") + b.total("BilledCost")
    with pytest.raises(SourceError, match="no files match"):
        focus.ingest(wh, [str(tmp_path / "nothing-*.csv")])


def test_a_semicolon_export_is_staged_with_the_dialect_found_when_it_was_inspected(wh, tmp_path):
    """The stage reads each CSV with the dialect its inspection sniffed; a European export
    (semicolons, a quoted description holding one) loads, and its broken line is quarantined."""
    rows = make_rows(20)
    rows[2]["ChargeDescription"] = "GPU; on demand"
    comma = write_csv(tmp_path / "comma.csv", rows, "1.0")
    path = tmp_path / "semicolon.csv"
    with open(comma.path, newline="") as source, open(path, "w", newline="") as target:
        lines = list(csv.reader(source))
        lines[19].append("surplus")  # line 20 = data row 19: one field too many
        csv.writer(target, delimiter=";").writerows(lines)

    report = focus.ingest(wh, [path])
    assert report.files[0].csv_dialect is not None and report.files[0].csv_dialect.delimiter == ";"
    r = report.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (20, 19, 1)
    q = wh.query("SELECT row_number, reason FROM quarantine")
    assert q["row_number"].to_list() == [19] and "line 20" in q["reason"][0]
    good = [row for i, row in enumerate(rows) if i != 18]
    assert totals(wh) == (19, sum(Decimal(row["BilledCost"]) for row in good), sum(Decimal(row["EffectiveCost"]) for row in good))
    assert wh.query("SELECT ChargeDescription FROM charges WHERE x_SourceRow = 3").item() == "GPU; on demand"


def test_files_staged_side_by_side_keep_their_order_row_numbers_and_quarantine(wh, tmp_path):
    """Files are staged two at a time on helper threads and appended in order: each row keeps
    its file and row number, bad rows and broken lines are quarantined under the right file."""
    written = []
    for n in range(6):
        rows = make_rows(30 + n, account=f"A{n}")
        if n == 2:
            rows[4]["BilledCost"] = "n/a"
        name = f"part-{n}.csv.gz" if n % 2 else f"part-{n}.csv"
        path = write_csv(tmp_path / name, rows, "1.0", gzip_it=n % 2 == 1).path
        if n == 3:  # a line with a field too many: data row 10
            with gzip.open(path, "rt", newline="") as handle:
                lines = handle.read().splitlines()
            lines[10] += ",surplus"
            with gzip.open(path, "wt", newline="") as handle:
                handle.write("\n".join(lines) + "\n")
        written.append((path, rows))

    report = focus.ingest(wh, [p for p, _ in written])
    r = report.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (195, 193, 2)
    q = wh.query("SELECT file, row_number, column_name FROM quarantine ORDER BY file")
    assert q.rows() == [(str(written[2][0]), 5, "BilledCost"), (str(written[3][0]), 10, None)]
    order = wh.query("SELECT x_SourceFile AS f, x_SourceRow AS r FROM charges ORDER BY rowid").rows()
    expected = [(str(p), i) for p, rows in written for i in range(1, len(rows) + 1)
                if (str(p), i) not in {(str(written[2][0]), 5), (str(written[3][0]), 10)}]
    assert order == expected
    good = sum(Decimal(row["BilledCost"]) for n, (_, rows) in enumerate(written) for i, row in enumerate(rows, 1)
               if (n, i) not in {(2, 5), (3, 10)})
    assert totals(wh)[:2] == (193, good)


def test_a_quote_left_open_that_takes_the_lines_after_it_refuses_the_file_and_writes_nothing(wh, tmp_path):
    """DuckDB's CSV reader reads an unclosed quote on to the next quote that closes and rejects
    all of it as one row: the rows on the lines between would be neither loaded nor quarantined.
    The break is past the sniffer's sample (20,480 lines), so the file is read as quoted."""
    july = write_csv(tmp_path / "july.csv", make_rows(30), "1.0")
    focus.ingest(wh, [july.path])
    before = totals(wh)
    batches = wh.query("SELECT count(*) FROM ingest_batches").item()
    big = write_csv(tmp_path / "big.csv", make_rows(21000, account="B"), "1.0")
    lines = big.path.read_text().splitlines()
    whole = lines[20600]
    assert whole.endswith('"')  # its last field is quoted Tags JSON: cutting it leaves the quote open
    lines[20600] = whole.rsplit(",", 1)[0]
    big.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError) as err:
        focus.ingest(wh, [july.path, big.path])
    assert str(err.value).startswith(f"{big.path}: line 20601 opens a quoted value")
    assert "took the 2 lines after it" in str(err.value) and "line 20601" in err.value.hint
    assert totals(wh) == before
    assert wh.query("SELECT count(*) FROM quarantine").item() == 0
    status = wh.query("SELECT status FROM ingest_batches ORDER BY batch_id DESC LIMIT 1").item()
    assert status == "failed" and wh.query("SELECT count(*) FROM ingest_batches").item() == batches + 1

    lines[20600] = whole  # mended: every row counts
    big.path.write_text("\n".join(lines) + "\n")
    r = focus.ingest(wh, [big.path]).result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (21000, 21000, 0)
    assert totals(wh, "BillingAccountId = 'B'")[:2] == (21000, big.total("BilledCost"))


def test_a_quote_error_on_one_line_is_that_row_quarantined(wh, tmp_path):
    """A quote that closes within its line ('"x" y') breaks only its own row: it is quarantined
    and the file loads, beside a quoted value that rightly spans lines and a blank last line.
    (DuckDB's sniffer reads no quoting into such a file: 26 of the 30 rows were rejected.)"""
    rows = make_rows(30)
    rows[5]["ChargeDescription"] = "GPU\non demand"
    rows[12]["ChargeDescription"] = "BROKEN"
    written = write_csv(tmp_path / "july.csv", rows, "1.0")
    written.path.write_text(written.path.read_text().replace("BROKEN", '"GPU" spot') + "\n")
    r = focus.ingest(wh, [written.path]).result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (30, 29, 1)
    q = wh.query("SELECT row_number, reason FROM quarantine").rows()
    assert len(q) == 1 and q[0][0] == 13 and "UNQUOTED VALUE" in q[0][1]
    assert wh.query("SELECT ChargeDescription FROM charges WHERE x_SourceRow = 6").item() == "GPU\non demand"
    good = [row for i, row in enumerate(rows) if i != 12]
    assert totals(wh)[:2] == (29, sum(Decimal(row["BilledCost"]) for row in good))
