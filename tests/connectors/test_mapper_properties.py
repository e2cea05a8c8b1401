"""Property-based tests (issue 12, step 4): random and malformed rows through every file mapper.

Each example starts from valid rows written by the connectors' own test builders (the
independent side), then overwrites a few fields per row with hostile values: unreadable
numbers and dates, empty required values, huge strings, unicode, negative amounts and tokens.
Whatever the values, a load must either account for every row written (read = loaded +
quarantined, each quarantined row with a reason that names its column) or refuse the whole
file with a finops error naming it. No other exception may reach the user.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from connectors import anthropic_usage, aws_cur, azure, focus, gcp_billing, langfuse, litellm, openai_usage, otel
from connectors.http_api import Page
from finops.exceptions import FinopsError
from finops.warehouse import Warehouse
from tests.connectors import test_aws_cur as cur_builders
from tests.connectors import test_azure as azure_builders
from tests.connectors import test_gcp as gcp_builders
from tests.connectors import test_litellm as litellm_builders
from tests.connectors import test_traces as trace_builders
from tests.focus_files import make_rows, write_csv

SETTINGS = settings(
    max_examples=15,
    derandomize=True,  # the same examples on every run: CI stays stable
    deadline=None,  # a load takes a while on a busy machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is a whole load, too slow to shrink
)

HOSTILE = [
    "", " ", "NULL", "null", "n/a", "-", "12,50", "1.2.3", "1e400", "-1e400", "NaN", "inf", "-Infinity", "0x1F",
    "-1", "-0.0000000001", "99999999999999999999999999999999999999", "1.00000000000000000001", " 7.5 ", "1_000",
    "2026-13-45", "31/07/2026", "07/32/2026", "last tuesday", "2026-07-01T25:61:00Z", "0000-00-00", "9999-12-31",
    "{", "{}", '{"team": ', '"team": "a"', "[1,2]", "'", '"', "\\", "a,b", "line\nbreak", "tab\there",
    "💸💸", "Ωmega", "ﬀ", "\u200b", "Z" * 5000,
]  # fmt: skip
hostile = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=12).map(str),
)


def mutations(fields: list[str]) -> st.SearchStrategy[list[dict[str, str]]]:
    """1–6 rows, each with up to 3 of ``fields`` overwritten by a hostile value."""
    return st.lists(st.dictionaries(st.sampled_from(fields), hostile, max_size=3), min_size=1, max_size=6)


def check_load(
    path: Path | str,
    rows_written: int,
    load: Callable[[Warehouse], object],
    *,
    table: str = "charges",
    lines: int | None = None,
    marker: str | None = None,
) -> None:
    """Load ``path`` into a new warehouse; every row is accounted for, or the file is refused by name.

    ``lines``: when the rows share lines (spans of one OTLP document), quarantine row numbers are
    lines of the file, at most this many; otherwise each bad row is quarantined once under its own
    (file or page, number). ``marker``: content text that must not be in the warehouse's files afterwards.
    """
    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(Path(tmp) / "w.duckdb", lock_timeout=30)
        wh.migrate()
        try:
            try:
                load(wh)
            finally:
                if marker:
                    assert_no_marker(wh, marker)
        except FinopsError as exc:  # refused whole: say which file, and write nothing
            assert str(getattr(path, "name", path)) in str(exc), exc
            assert wh.query(f"SELECT count(*) FROM {table}").item() == 0
            assert wh.query("SELECT count(*) FROM ingest_batches WHERE status = 'succeeded'").item() == 0
            return
        read, loaded, quarantined = wh.query(
            "SELECT sum(rows_read)::BIGINT, sum(rows_loaded)::BIGINT, sum(rows_quarantined)::BIGINT"
            " FROM ingest_batches WHERE status = 'succeeded'"
        ).row(0)
        assert read == rows_written, (read, rows_written)
        assert loaded + quarantined == read, (loaded, quarantined, read)
        assert wh.query(f"SELECT count(*) FROM {table}").item() == loaded
        assert len(wh.query(f"SELECT * FROM {table}").rows()) == loaded  # what loaded reads back (no year 99999)
        q = wh.query("SELECT file, row_number, column_name, reason FROM quarantine")
        assert q.height == quarantined
        if lines is None:  # one entry per bad row, each row once
            assert q.select("file", "row_number").n_unique() == quarantined, q
        assert all(1 <= n <= (lines or rows_written) for n in q["row_number"]), q
        for column, reason in zip(q["column_name"], q["reason"], strict=True):
            assert column, reason  # the reason names a column
            assert reason and reason.strip(), column


def assert_no_marker(wh: Warehouse, marker: str) -> None:
    """Checkpoint ``wh`` and scan its files: the content marker is in none of them."""
    with wh.writer() as con:
        con.execute("CHECKPOINT")
    files = [p for p in wh.path.parent.iterdir() if p.name.startswith(wh.path.name)]
    assert files
    for file in files:
        assert marker.encode() not in file.read_bytes(), file


def apply(rows: list[dict], edits: list[dict[str, str]]) -> list[dict]:
    """The valid rows with the edits laid over them (row i gets edit i; extra rows repeat row 0)."""
    out = []
    for i, edit in enumerate(edits):
        row = dict(rows[i % len(rows)])
        row.update(edit)
        out.append(row)
    return out


# -- FOCUS ---------------------------------------------------------------------------------

FOCUS_FIELDS = list(make_rows(1)[0])


@SETTINGS
@given(edits=mutations(FOCUS_FIELDS))
def test_focus_csv_rows_are_loaded_or_quarantined(edits):
    with tempfile.TemporaryDirectory() as tmp:
        rows = apply(make_rows(3), edits)
        path = write_csv(Path(tmp) / "focus.csv", rows, "1.2").path
        check_load(path, len(rows), lambda wh: focus.ingest(wh, [path]))


@SETTINGS
@given(line=st.integers(min_value=1, max_value=6), at=st.integers(min_value=1, max_value=420), damage=st.sampled_from(["cut", '"']))
def test_a_focus_csv_line_cut_short_or_given_a_stray_quote_is_quarantined_or_the_file_refused(line, at, damage):
    """Damage below the row level: a line cut short (inside a quoted Tags value, a quote left
    open; never to nothing, a blank line, which is no row) or a quote put anywhere in it. Every
    row written is read, or the file refused by name."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(Path(tmp) / "focus.csv", make_rows(6), "1.2").path
        lines = path.read_text().splitlines()
        at = min(at, len(lines[line]))
        lines[line] = lines[line][:at] if damage == "cut" else lines[line][:at] + '"' + lines[line][at:]
        path.write_text("\n".join(lines) + "\n")
        check_load(path, 6, lambda wh: focus.ingest(wh, [path]))


# -- AWS CUR 2.0 CSV and legacy CUR CSV ----------------------------------------------------

CUR_FIELDS = [*cur_builders.TEXT, *cur_builders.MONEY, *cur_builders.TIMES]


@SETTINGS
@given(edits=mutations(CUR_FIELDS))
def test_aws_cur2_csv_rows_are_loaded_or_quarantined(edits):
    with tempfile.TemporaryDirectory() as tmp:
        rows = apply([cur_builders.line("Usage", "1.25"), cur_builders.line("Tax", "0.10", day=3)], edits)
        path = cur_builders.write_cur2_csv(Path(tmp) / "cur" / "cur2.csv.gz", rows)
        check_load(path, len(rows), lambda wh: aws_cur.ingest(wh, str(path)))


@SETTINGS
@given(edits=mutations([f for f in cur_builders.LEGACY if not f.startswith("product_")]))
def test_aws_legacy_cur_csv_rows_are_loaded_or_quarantined(edits):
    with tempfile.TemporaryDirectory() as tmp:
        rows = apply([cur_builders.line("Usage", "1.25"), cur_builders.line("Usage", "2.50", day=9)], edits)
        path = cur_builders.write_legacy_csv(Path(tmp) / "cur" / "legacy-1.csv.gz", rows)
        check_load(path, len(rows), lambda wh: aws_cur.ingest(wh, str(path)))


# -- Azure cost exports ----------------------------------------------------------------------


@SETTINGS
@given(edits=mutations(list(azure_builders.EA)))
def test_azure_export_rows_are_loaded_or_quarantined(edits):
    with tempfile.TemporaryDirectory() as tmp:
        rows = apply([azure_builders.line("1.00"), azure_builders.line("2.25", date="07/05/2026")], edits)
        path = azure_builders.write_export(Path(tmp) / "actual.csv", rows)
        check_load(path, len(rows), lambda wh: azure.ingest(wh, str(path)), table="azure_export_lines")


# -- GCP billing export (JSON lines) ---------------------------------------------------------

GCP_FIELDS = ["billing_account_id", "usage_start_time", "usage_end_time", "export_time", "cost", "currency",
              "currency_conversion_rate", "cost_type", "cost_at_list", "invoice.month", "usage.amount",
              "credits.amount", "service.description", "sku.id", "project.id"]  # fmt: skip
json_hostile = st.one_of(
    hostile,
    st.none(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just({"nested": 1}),
    st.just([1]),
)


def _set(doc: dict, field: str, value: object) -> None:
    """Set a dotted field; credits.amount sets the first credit's amount (adding one if none)."""
    if field == "credits.amount":
        credits = doc.get("credits") or [{"name": "x", "type": "PROMOTION"}]
        credits[0]["amount"] = value
        doc["credits"] = credits
        return
    head, _, rest = field.partition(".")
    if rest:
        if not isinstance(doc.get(head), dict):
            doc[head] = {}
        doc[head][rest] = value
    else:
        doc[head] = value


@SETTINGS
@given(edits=st.lists(st.dictionaries(st.sampled_from(GCP_FIELDS), json_hostile, max_size=3), min_size=1, max_size=6))
def test_gcp_export_rows_are_loaded_or_quarantined(edits):
    with tempfile.TemporaryDirectory() as tmp:
        path = gcp_builders.write_ndjson(Path(tmp) / "export.json", gcp_builders.export_rows(len(edits)))
        docs = [json.loads(line) for line in path.read_text().splitlines()]
        for doc, edit in zip(docs, edits, strict=True):
            for field, value in edit.items():
                _set(doc, field, value)
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        check_load(path, len(docs), lambda wh: gcp_billing.ingest_export(wh, [path]))


# -- LiteLLM spend-log rows (a file copy of the table) ----------------------------------------

LITELLM_FIELDS = ["request_id", "call_type", "api_key", "spend", "prompt_tokens", "completion_tokens", "total_tokens",
                  "startTime", "endTime", "model", "custom_llm_provider", "user", "team_id", "status", "cache_hit",
                  "metadata", "request_tags"]  # fmt: skip


@SETTINGS
@given(edits=mutations(LITELLM_FIELDS))
def test_litellm_rows_are_loaded_or_quarantined(edits):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        rows = litellm_builders.make_rows(len(edits))
        records = [
            {k: json.dumps(v) if k in litellm_builders.JSONB_COLUMNS else str(v) for k, v in row.items()} | edit
            for row, edit in zip(rows, edits, strict=True)
        ]
        path = Path(tmp) / "spend_logs.parquet"
        pq.write_table(pa.Table.from_pylist(records), path)
        check_load(path, len(records), lambda wh: litellm.ingest_rows(wh, path), table="llm_requests")


# -- OpenTelemetry GenAI spans ---------------------------------------------------------------

OTEL_ATTRIBUTES = [
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.request.model",
    "gen_ai.provider.name",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.agent.id",
    "user.id",
]
OTEL_FIELDS = ["spanId", "startTimeUnixNano", "endTimeUnixNano", *OTEL_ATTRIBUTES]


@SETTINGS
@given(edits=mutations(OTEL_FIELDS))
def test_otel_model_calls_are_loaded_or_quarantined(edits):
    with tempfile.TemporaryDirectory() as tmp:
        spans = []
        for i, edit in enumerate(edits):
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                     "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 300 + i,
                     "gen_ai.usage.output_tokens": 20 + i}  # fmt: skip
            attrs |= {k: v for k, v in edit.items() if k in OTEL_ATTRIBUTES}
            span = trace_builders._span("4bf92f3577b34da6a3ce929d0e0e4736", f"{i + 1:016x}", "", i, attrs)
            span |= {k: v for k, v in edit.items() if k not in OTEL_ATTRIBUTES}
            spans.append(span)
        path = Path(tmp) / "spans.jsonl"
        doc = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]}
        path.write_text(json.dumps(doc) + "\n")
        check_load(path, len(spans), lambda wh: otel.ingest(wh, [path]), table="llm_requests", lines=1)


# -- OpenAI usage pages (as the Admin API answers them) ---------------------------------------

OPENAI_PAGE = Path(__file__).parent.parent / "data" / "openai" / "completions_page1.json"
OPENAI_FIELDS = ["input_tokens", "output_tokens", "input_cached_tokens", "num_model_requests", "model", "project_id",
                 "user_id", "api_key_id", "batch", "service_tier"]  # fmt: skip


@SETTINGS
@given(edits=st.lists(st.dictionaries(st.sampled_from(OPENAI_FIELDS), json_hostile, max_size=3), max_size=8))
def test_openai_usage_results_are_loaded_or_quarantined(edits):
    page = json.loads(OPENAI_PAGE.read_text())
    results = [r for bucket in page["data"] for r in bucket["results"]]
    for result, edit in zip(results, edits, strict=False):
        result.update(edit)
    usage = [Page(openai_usage.COMPLETIONS_PATH, 1, json.dumps(page))]
    check_load(
        "page 1",
        len(results),
        lambda wh: openai_usage.load_pages(wh, date(2026, 7, 1), date(2026, 8, 1), usage, [], uri="pages"),
        table="llm_requests",
        lines=len(results),
    )


def _json_edits(fields: list[str], *, max_size: int = 8) -> st.SearchStrategy[list[dict[str, object]]]:
    """Up to ``max_size`` records' edits, each up to 3 of ``fields`` (dotted: nested) set to a hostile JSON value."""
    return st.lists(st.dictionaries(st.sampled_from(fields), json_hostile, max_size=3), max_size=max_size)


def _edit_pages(pages: list[dict], edits: list[dict[str, object]], bucket_edits: dict[str, object]) -> int:
    """Lay ``edits`` over the pages' results in order and ``bucket_edits`` over the first bucket; the results' count."""
    results = [r for page in pages for bucket in page["data"] for r in bucket["results"]]
    for result, edit in zip(results, edits, strict=False):
        for field, value in edit.items():
            _set(result, field, value)
    for field, value in bucket_edits.items():
        pages[0]["data"][0][field] = value
    return len(results)


# -- OpenAI cost pages (organization/costs) ----------------------------------------------------

OPENAI_COSTS = [Path(__file__).parent.parent / "data" / "openai" / f"costs_page{n}.json" for n in (1, 2)]
OPENAI_COST_FIELDS = ["amount", "amount.value", "amount.currency", "line_item", "project_id", "object"]


@SETTINGS
@given(
    edits=_json_edits(OPENAI_COST_FIELDS, max_size=21),
    bucket=st.dictionaries(st.sampled_from(["start_time", "end_time"]), json_hostile, max_size=2),
)
@example(edits=[], bucket={"start_time": 10**15})  # past TIMESTAMP's range: it failed the whole load
@example(edits=[{"amount.value": "1e400"}], bucket={"end_time": 2**62})
def test_openai_cost_lines_are_loaded_or_quarantined(edits, bucket):
    pages = [json.loads(p.read_text()) for p in OPENAI_COSTS]
    lines = _edit_pages(pages, edits, bucket)
    costs = [Page(openai_usage.COSTS_PATH, n, json.dumps(page)) for n, page in enumerate(pages, 1)]
    # Cost pages alone: no usage row to split a line over, so every line is a row of its own or quarantined.
    check_load(
        openai_usage.COSTS_PATH,
        lines,
        lambda wh: openai_usage.load_pages(wh, date(2026, 7, 1), date(2026, 7, 4), [], costs, uri="pages"),
        table="llm_requests",
    )


def test_an_openai_bucket_before_1970_is_quarantined_not_loaded(tmp_path):
    pages = [json.loads(p.read_text()) for p in OPENAI_COSTS]
    pages[0]["data"][0]["start_time"] = -1  # Unix seconds, but 1969-12-31: no usage API reports that
    lines = len(pages[0]["data"][0]["results"])
    costs = [Page(openai_usage.COSTS_PATH, n, json.dumps(page)) for n, page in enumerate(pages, 1)]
    wh = Warehouse(tmp_path / "w.duckdb")
    report = openai_usage.load_pages(wh, date(2026, 7, 1), date(2026, 7, 4), [], costs, uri="pages")
    assert report.result.rows_quarantined == lines
    reasons = wh.query("SELECT DISTINCT column_name, reason FROM quarantine").rows()
    assert reasons == [("start_time", "bucket start_time is missing or not Unix seconds")]
    assert wh.query("SELECT count(*) FROM llm_requests WHERE period_start < '2000-01-01'").item() == 0


# -- Anthropic usage and cost report pages ----------------------------------------------------

ANTHROPIC = Path(__file__).parent.parent / "data" / "anthropic"
ANTHROPIC_USAGE_FIELDS = ["uncached_input_tokens", "cache_read_input_tokens", "cache_creation",
                          "cache_creation.ephemeral_5m_input_tokens", "cache_creation.ephemeral_1h_input_tokens",
                          "output_tokens", "model", "workspace_id", "api_key_id", "service_tier",
                          "context_window"]  # fmt: skip
ANTHROPIC_COST_FIELDS = ["amount", "currency", "workspace_id", "description", "cost_type", "model", "service_tier",
                         "token_type", "context_window"]  # fmt: skip
ANTHROPIC_BUCKET = st.dictionaries(st.sampled_from(["starting_at", "ending_at"]), json_hostile, max_size=2)


@SETTINGS
@given(edits=_json_edits(ANTHROPIC_USAGE_FIELDS, max_size=9), bucket=ANTHROPIC_BUCKET)
@example(edits=[{"output_tokens": -1}], bucket={"starting_at": "infinity"})  # was loaded as an infinite day
@example(edits=[], bucket={"starting_at": "99999-01-01T00:00:00Z"})
def test_anthropic_usage_results_are_loaded_or_quarantined(edits, bucket):
    pages = [json.loads((ANTHROPIC / f"usage_page{n}.json").read_text()) for n in (1, 2)]
    results = _edit_pages(pages, edits, bucket)
    usage = [Page(anthropic_usage.USAGE_PATH, n, json.dumps(page)) for n, page in enumerate(pages, 1)]
    check_load(
        anthropic_usage.USAGE_PATH,
        results,
        lambda wh: anthropic_usage.load_pages(wh, date(2026, 7, 1), date(2026, 7, 3), usage, [], uri="pages"),
        table="llm_requests",
    )


@SETTINGS
@given(edits=_json_edits(ANTHROPIC_COST_FIELDS, max_size=17), bucket=ANTHROPIC_BUCKET)
def test_anthropic_cost_lines_are_loaded_or_quarantined(edits, bucket):
    pages = [json.loads((ANTHROPIC / f"cost_report_page{n}.json").read_text()) for n in (1, 2)]
    lines = _edit_pages(pages, edits, bucket)
    costs = [Page(anthropic_usage.COST_PATH, n, json.dumps(page)) for n, page in enumerate(pages, 1)]
    check_load(
        anthropic_usage.COST_PATH,
        lines,
        lambda wh: anthropic_usage.load_pages(wh, date(2026, 7, 1), date(2026, 7, 3), [], costs, uri="pages"),
        table="llm_requests",
    )


@SETTINGS
@given(
    usage_edits=_json_edits(ANTHROPIC_USAGE_FIELDS, max_size=9),
    cost_edits=_json_edits(ANTHROPIC_COST_FIELDS, max_size=17),
)
def test_anthropic_usage_and_costs_together_count_every_reported_line_once(usage_edits, cost_edits):
    """Usage and costs in one load: matched lines are folded into usage rows, the rest are rows or quarantined."""
    usage_docs = [json.loads((ANTHROPIC / f"usage_page{n}.json").read_text()) for n in (1, 2)]
    cost_docs = [json.loads((ANTHROPIC / f"cost_report_page{n}.json").read_text()) for n in (1, 2)]
    results, lines = _edit_pages(usage_docs, usage_edits, {}), _edit_pages(cost_docs, cost_edits, {})
    usage = [Page(anthropic_usage.USAGE_PATH, n, json.dumps(d)) for n, d in enumerate(usage_docs, 1)]
    costs = [Page(anthropic_usage.COST_PATH, n, json.dumps(d)) for n, d in enumerate(cost_docs, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(Path(tmp) / "w.duckdb", lock_timeout=30)
        wh.migrate()
        load = anthropic_usage.load_pages(wh, date(2026, 7, 1), date(2026, 7, 3), usage, costs, uri="pages")
        res = load.result
        quarantined = wh.query("SELECT count(*) FROM quarantine").item()
        assert res.rows_quarantined == quarantined
        assert res.rows_read == res.rows_loaded + res.rows_quarantined
        # Every usage result and cost line is a usage row, a cost-only row, a line folded into usage rows, or quarantined.
        assert results + lines == load.usage_rows + load.cost_lines + quarantined
        assert res.rows_read == results + lines - load.cost_lines_matched
        calls = wh.query(
            "SELECT count(*) FILTER (call_type = 'cost'), count(*) FILTER (call_type <> 'cost') FROM llm_requests"
        )
        assert calls.row(0) == (load.cost_only_rows, load.usage_rows)
        # Every USD cent of the lines not quarantined is in reported_cost once, however it was split.
        bad = set(wh.query("SELECT file, row_number FROM quarantine").rows())
        expected = sum(
            (_dollars(line["amount"]) for n, doc in enumerate(cost_docs, 1)
             for i, line in enumerate((r for b in doc["data"] for r in b["results"]), 1)
             if (f"GET {anthropic_usage.COST_PATH} page {n}", i) not in bad and _is_usd(line.get("currency"))),
            Decimal(0),
        )  # fmt: skip
        reported = wh.query("SELECT sum(reported_cost) FROM llm_requests WHERE cost_currency = 'USD'").item()
        assert (reported or Decimal(0)) == expected, (reported, expected)


def _dollars(amount: object) -> Decimal:
    """A cost report amount (cents, as JSON text) in dollars: read to 12 places, then to MONEY's 10."""
    text = amount if isinstance(amount, str) else json.dumps(amount)
    cents = Decimal(text.strip()).quantize(Decimal("1e-12"), rounding=ROUND_HALF_UP)
    return (cents / 100).quantize(Decimal("1e-10"), rounding=ROUND_HALF_UP)


def _is_usd(currency: object) -> bool:
    """Whether the connector reads ``currency`` as USD (absent means USD)."""
    return currency is None or (isinstance(currency, str) and currency.upper() == "USD")


# -- Langfuse trace exports --------------------------------------------------------------------

LANGFUSE_FILE = trace_builders.LANGFUSE_FILE
MARKER = trace_builders.MARKER
LANGFUSE_FIELDS = ["id", "traceId", "parentObservationId", "type", "startTime", "endTime", "model", "level",
                   "usageDetails", "usageDetails.input", "usageDetails.output", "usageDetails.total",
                   "usageDetails.input_cached_tokens", "usageDetails.cache_read_input_tokens",
                   "usageDetails.output_reasoning_tokens", "usageDetails.input_audio_tokens", "costDetails",
                   "costDetails.total", "costDetails.input", "totalCost", "calculatedTotalCost", "children"]  # fmt: skip
CONTENT_FIELDS = ["input", "output", "metadata", "statusMessage"]
TRACE_FIELDS = ["id", "name", "userId", "sessionId", "tags", "metadata"]


def _content(value: object) -> object:
    """A content value of any shape that carries the marker."""
    if isinstance(value, dict | list):
        return {"content": MARKER, "nested": value, "list": [MARKER, value]}
    return f"{MARKER} {value}"


def _text(value: object) -> str | None:
    """How the connector reads an id or type: JSON text of non-strings, spaces trimmed, empty as missing."""
    text = value if isinstance(value, str) else None if value is None else json.dumps(value, separators=(",", ":"))
    return (text.strip(" ") or None) if text is not None else None


def _langfuse_calls(doc: dict) -> int:
    """Model calls in a {trace, observations} export, by hand: the last copy of a (trace, id) pair counts once."""
    trace_key = _text(doc["trace"].get("id"))
    keys = []
    for o in doc["observations"]:
        trace = o.get("traceId")
        trace_id = _text(trace) if trace is not None else trace_key
        is_call = (_text(o.get("type")) or "").upper() in ("GENERATION", "EMBEDDING")
        keys.append((trace_id, _text(o.get("id")), is_call))
    last = {(t, i): call for t, i, call in keys if t is not None and i is not None}
    return sum(call for t, i, call in keys if t is None or i is None) + sum(last.values())


@SETTINGS
@given(
    edits=st.lists(
        st.dictionaries(st.sampled_from(LANGFUSE_FIELDS + CONTENT_FIELDS), json_hostile, max_size=3), max_size=8
    ),
    trace_edits=st.dictionaries(st.sampled_from(TRACE_FIELDS), json_hostile, max_size=3),
)
@example(edits=[{}, {"startTime": "infinity"}, {"startTime": -(10**20)}], trace_edits={})  # were loaded, unreadable
@example(edits=[{}, {"id": "-", "usageDetails.input": 10**20}, {"id": "-"}], trace_edits={"id": None, "tags": "x"})
def test_langfuse_observations_are_loaded_or_quarantined(edits, trace_edits):
    doc = json.loads(LANGFUSE_FILE.read_text())
    for obs, edit in zip(doc["observations"], edits, strict=False):
        for field, value in edit.items():
            _set(obs, field, _content(value) if field in CONTENT_FIELDS else value)
    for field, value in trace_edits.items():
        doc["trace"][field] = _content(value) if field == "metadata" else value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace_export.json"
        path.write_text(json.dumps(doc))
        assert MARKER in path.read_text()
        check_load(
            path,
            _langfuse_calls(doc),
            lambda wh: langfuse.ingest(wh, [path]),
            table="llm_requests",
            lines=1,
            marker=MARKER,
        )
