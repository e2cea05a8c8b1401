"""The quarterly review: executed by papermill, published as one offline HTML file.

A small hand-made company is loaded into a real warehouse: a few line items with a fixed
cost per day, so the quarter's AI spend is known from the inputs (daily cost × days) without
asking finops. The review is rendered once per module and read like a CFO's browser would.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import nbformat
import polars as pl
import pytest

from finops.analyses import cache, forecast, spend
from finops.config import load_config
from finops.exceptions import ReportError
from finops.periods import Quarter
from finops.reports import narrative
from finops.reports import render as report
from finops.warehouse import PARTITION_COLUMNS, Warehouse

QUARTER = Quarter(2026, 3)
CHARTS = 7
Q3_START, Q3_END = date(2026, 7, 1), date(2026, 10, 1)

CONFIG = """
[company]
name = "Fixture Robotics"
currency = "USD"

[allocation]
basis = "effective"
tag_keys = ["team"]

[[departments]]
name = "Research"
sub_accounts = ["012345678901"]

[[departments]]
name = "Product"
sub_accounts = ["product-prod"]
tag_values = ["product"]

[[departments]]
name = "Platform"
sub_accounts = ["210987654321"]
"""


@dataclasses.dataclass(frozen=True)
class LineItem:
    """One kind of charge, repeated daily from ``start`` to ``end`` (exclusive) at ``daily`` USD."""

    provider: str
    billing_account: str
    sub_account: str | None
    service: str
    category: str
    sku: str
    daily: Decimal
    start: date
    end: date
    ai: bool
    team: str | None = None

    def cost_between(self, start: date, end: date) -> Decimal:
        days = (min(end, self.end) - max(start, self.start)).days
        return self.daily * max(days, 0)


LINE_ITEMS = [
    LineItem("AWS", "999900001111", "012345678901", "Amazon Bedrock", "AI and Machine Learning",
             "USE1-Claude3Sonnet-input-tokens", Decimal("120.55"), date(2025, 7, 1), Q3_END, ai=True),
    LineItem("AWS", "999900001111", "012345678901", "Amazon SageMaker", "AI and Machine Learning",
             "USE1-Train:ml.p4d.24xlarge", Decimal("310.27"), date(2026, 7, 1), Q3_END, ai=True),
    LineItem("AWS", "999900001111", "012345678901", "Amazon SageMaker", "AI and Machine Learning",
             "USE1-Train:ml.g5.12xlarge", Decimal("95.13"), date(2026, 4, 1), date(2026, 7, 1), ai=True),
    LineItem("AWS", "999900001111", "210987654321", "Amazon SageMaker", "AI and Machine Learning",
             "USE1-Studio:KernelGateway-ml.t3.medium", Decimal("12.34"), date(2025, 7, 1), Q3_END, ai=True),
    LineItem("AWS", "999900001111", "210987654321", "Amazon Simple Storage Service", "Storage",
             "USE1-TimedStorage-ByteHrs", Decimal("40.01"), date(2025, 7, 1), Q3_END, ai=False),
    LineItem("Google Cloud", "01A2B3-C4D5E6-F7G8H9", "product-prod", "Vertex AI", "AI and Machine Learning",
             "Online Prediction: n1-standard-4", Decimal("75.10"), date(2026, 1, 1), Q3_END, ai=True),
    LineItem("OpenAI", "org-fixture", None, "OpenAI API", "AI and Machine Learning",
             "gpt-4o input tokens", Decimal("20.02"), date(2026, 5, 15), Q3_END, ai=True, team="product"),
]  # fmt: skip


def expected_ai_spend(start: date, end: date) -> Decimal:
    """AI spend from the line items themselves: daily cost × days in the period."""
    return sum((item.cost_between(start, end) for item in LINE_ITEMS if item.ai), Decimal(0))


def _sql_text(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def build_review_warehouse(path: Path) -> Warehouse:
    """Load LINE_ITEMS, one row per item and day, into a new warehouse at ``path``."""
    wh = Warehouse(path, lock_timeout=5)
    items = ",\n".join(
        f"({_sql_text(i.provider)}, {_sql_text(i.billing_account)}, {_sql_text(i.sub_account)}, {_sql_text(i.service)},"
        f" {_sql_text(i.category)}, {_sql_text(i.sku)}, {i.daily}, DATE '{i.start}', DATE '{i.end}', {_sql_text(i.team)})"
        for i in LINE_ITEMS
    )

    def rows_sql(batch_id: int) -> str:
        return f"""
            SELECT 'fixture' AS x_Source, {batch_id} AS x_BatchId,
                   li.billing_account AS BillingAccountId, 'USD' AS BillingCurrency,
                   date_trunc('month', d) AS BillingPeriodStart,
                   date_trunc('month', d) + INTERVAL 1 MONTH AS BillingPeriodEnd,
                   d AS ChargePeriodStart, d + INTERVAL 1 DAY AS ChargePeriodEnd,
                   'Usage' AS ChargeCategory, 'Usage-Based' AS ChargeFrequency,
                   li.provider AS ProviderName, li.provider AS InvoiceIssuerName,
                   li.sub_account AS SubAccountId, li.service AS ServiceName, li.category AS ServiceCategory,
                   li.sku AS SkuId, li.sku AS ChargeDescription,
                   CAST(li.daily AS DECIMAL(38, 10)) AS BilledCost,
                   CAST(li.daily AS DECIMAL(38, 10)) AS EffectiveCost,
                   CAST(li.daily * 1.25 AS DECIMAL(38, 10)) AS ListCost,
                   CASE WHEN li.team IS NULL THEN NULL ELSE MAP {{'team': li.team}} END AS Tags
            FROM (VALUES {items}) AS li(provider, billing_account, sub_account, service, category, sku, daily,
                                        start_day, end_day, team)
            CROSS JOIN generate_series(TIMESTAMP '2025-07-01', TIMESTAMP '2026-09-30', INTERVAL 1 DAY) AS days(d)
            WHERE d >= li.start_day AND d < li.end_day
        """

    expected_rows = sum((min(i.end, Q3_END) - i.start).days for i in LINE_ITEMS)
    with wh.load("fixture", "tests/test_report.py") as batch:
        batch.replace_partitions(
            "charges", rows_sql(batch.batch_id), partition_by=PARTITION_COLUMNS, rows_read=expected_rows
        )
    return wh


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> tuple[Warehouse, Path]:
    folder = tmp_path_factory.mktemp("company")
    config = folder / "finops.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return build_review_warehouse(folder / "warehouse.duckdb"), config


@pytest.fixture(scope="module")
def rendered(company, tmp_path_factory) -> tuple[Path, str]:
    wh, config = company
    out_dir = tmp_path_factory.mktemp("reports")
    html_path = report.render_quarterly(QUARTER, warehouse=wh.path, config=config, out_dir=out_dir, progress=False)
    return html_path, html_path.read_text(encoding="utf-8")


def test_review_states_the_quarters_ai_spend(company, rendered):
    wh, config = company
    html_path, html = rendered
    assert html_path == html_path.parent / f"quarterly-review-{QUARTER}.html"
    summary = spend.quarter_summary(wh, load_config(config), QUARTER)
    # The figure the notebook prints is the warehouse's, and the warehouse's is the inputs'.
    assert summary["ai_cost"][0] == expected_ai_spend(Q3_START, Q3_END)
    line = narrative.total_ai_spend_line(summary, "USD")
    assert line == f"Total AI spend {QUARTER}: {narrative.format_money(expected_ai_spend(Q3_START, Q3_END))}"
    assert line in html
    # The executive summary names the change against the quarter before, from the inputs too.
    previous = expected_ai_spend(date(2026, 4, 1), Q3_START)
    assert narrative.format_money(previous) in html
    assert "Research" in html and "Product" in html


def test_review_needs_nothing_from_the_network(rendered):
    _, html = rendered
    external = re.compile(
        r"""<script[^>]*\bsrc\s*=\s*["']?\s*(https?:)?//"""
        r"""|<link[^>]*\bhref\s*=\s*["']?\s*(https?:)?//"""
        r"""|@import\s+(url\()?\s*["']?\s*(https?:)?//"""
        r"""|url\(\s*["']?\s*(https?:)?//""",
        re.IGNORECASE,
    )
    assert external.findall(html) == []
    assert not re.search(r"<script[^>]*\bsrc\s*=", html), "every script is inline"
    assert not re.search(r"<link[^>]*rel=[\"']?stylesheet", html), "every style is inline"


def test_review_inlines_vega_once_and_draws_every_chart_with_it(rendered):
    _, html = rendered
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts.count('<script id="finops-vega-bundle" type="module">') == 1
    assert len(re.findall(r"window\.vegaEmbed\s*=", html)) == 1  # defined once, in that bundle
    bundle = re.search(r'<script id="finops-vega-bundle" type="module">(.*?)</script>', html, re.DOTALL)
    assert bundle and len(bundle.group(1)) > 300_000  # Vega, Vega-Lite and Vega-Embed themselves
    # Seven charts (chargeback, workload by month and by day, provider mix, model mix, unit cost
    # trend, forecast), each a div plus a script waiting for the inlined bundle; none from a CDN.
    assert html.count('<div class="finops-chart"></div>') == CHARTS
    assert "cdn.jsdelivr.net" not in html and "require.js" not in html
    assert len(html) < 3_000_000


def test_review_shows_no_code_prompts_or_stderr(rendered):
    _, html = rendered
    assert "jp-InputArea-editor" not in html  # no code input was rendered
    assert "charts.money(" not in html and "spend.quarter_summary(" not in html
    assert "In&nbsp;[" not in html and "Out[" not in html
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html


def test_money_tables_show_exact_cents(company, rendered):
    wh, config = company
    _, html = rendered
    research = sum(
        (i.cost_between(Q3_START, Q3_END) for i in LINE_ITEMS if i.ai and i.sub_account == "012345678901"), Decimal(0)
    )
    assert f'<td class="num">{narrative.format_money(research)}</td>' in html


def test_failed_run_publishes_nothing_and_names_the_cell(company, tmp_path):
    wh, config = company
    stale = tmp_path / "quarterly-review-1999Q1.html"
    stale.write_text("an old review", encoding="utf-8")
    with pytest.raises(ReportError) as caught:
        report.render_quarterly(Quarter(1999, 1), warehouse=wh.path, config=config, out_dir=tmp_path, progress=False)
    message = str(caught.value)
    assert "spend.quarter_summary" in message  # the failing cell's first line
    assert re.search(r"cell \d+", message)
    assert "AnalysisError" in message and "no charges billed in 1999Q1" in message
    failed = tmp_path / "quarterly-review-1999Q1.failed.ipynb"
    assert str(failed) in message
    assert not stale.exists()
    assert not (tmp_path / "quarterly-review-1999Q1.ipynb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [failed.name]
    errors = [o for c in nbformat.read(failed, as_version=4).cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert [e.ename for e in errors] == ["AnalysisError"]


def test_a_raising_cell_in_another_notebook_is_named(company, tmp_path, monkeypatch):
    wh, config = company
    notebook = nbformat.read(report.notebook_path(report.QUARTERLY_NOTEBOOK), as_version=4)
    # Right after the parameters, so the kernel fails before the slow imports.
    notebook.cells.insert(1, nbformat.v4.new_code_cell('raise RuntimeError("ledger out of balance")\nx = 1'))
    copy = tmp_path / "broken.ipynb"
    nbformat.write(notebook, copy)
    monkeypatch.chdir(tmp_path)  # a relative --out stays relative to where the command ran
    with pytest.raises(ReportError, match=r"cell 2 \('raise RuntimeError.*RuntimeError: ledger out of balance"):
        report.render_quarterly(QUARTER, warehouse=wh.path, config=config, out_dir=Path("out"), progress=False, notebook=copy)
    assert not (tmp_path / "out" / f"quarterly-review-{QUARTER}.html").exists()
    assert (tmp_path / "out" / f"quarterly-review-{QUARTER}.failed.ipynb").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_charts_draw_in_a_browser_without_network(rendered, tmp_path):
    """Chromium with no network draws every chart as SVG (skipped where chromium is missing)."""
    html_path, _ = rendered
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", html_path.as_uri(),
    ]  # fmt: skip
    if shutil.which("unshare"):
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
        if probe.returncode == 0:
            command = ["unshare", "-n", *command]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    assert dom.count('class="finops-chart vega-embed"') == CHARTS  # vega-embed took every chart
    assert len(re.findall(r'<svg[^>]*class="marks"', dom)) == CHARTS  # and drew each as SVG


@pytest.mark.skipif(report.find_browser() is None, reason="chromium is not installed")
def test_the_review_prints_to_pdf(rendered, tmp_path):
    html_path, _ = rendered
    pdf = report.print_pdf(html_path, tmp_path / "review.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page[^s]", data)) >= 2  # the review is several pages long


def _screenshot(url: str, shot: Path, profile: Path) -> bytes:
    """A 1100×2400 PNG of ``url`` from headless Chromium, with no network where unshare allows."""
    command = report.headless_browser_command(url, f"--screenshot={shot}", "--window-size=1100,2400", profile=profile)
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        command = ["unshare", "-n", *command]
    subprocess.run(command, capture_output=True, timeout=120)
    return shot.read_bytes()


@pytest.mark.skipif(report.find_browser() is None, reason="chromium is not installed")
def test_a_screenshot_of_the_review_is_not_blank(rendered, tmp_path):
    """The page a CFO sees, as a picture: headless Chromium with no network takes a screenshot.
    PNG compresses a flat page to almost nothing, so a page with text and drawn charts is many
    times the size of a blank page's screenshot of the same size."""
    import struct

    html_path, _ = rendered
    review = _screenshot(html_path.as_uri(), tmp_path / "review.png", tmp_path / "p1")
    blank_page = tmp_path / "blank.html"
    blank_page.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    blank = _screenshot(blank_page.as_uri(), tmp_path / "blank.png", tmp_path / "p2")
    for png in (review, blank):
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert struct.unpack(">II", png[16:24]) == (1100, 2400)  # IHDR: width, height
    assert len(review) > 10 * len(blank), f"review {len(review):,} bytes vs blank page {len(blank):,} bytes"


def test_the_reviews_numbers_are_the_finops_functions(company, rendered):
    """Each section's figures, as the finops function returns them, appear in the page."""
    from finops.analyses import chargeback

    wh, config_path = company
    config = load_config(config_path)
    _, html = rendered
    money = narrative.format_money
    charged = chargeback.quarter_chargeback(wh, config, QUARTER)
    bill = sum((item.cost_between(Q3_START, Q3_END) for item in LINE_ITEMS), Decimal(0))  # from the inputs
    assert charged["total_cost"].sum() == bill
    for department, total in charged.select("department", "total_cost").iter_rows():
        assert f">{money(total)}<" in html, department
    for invoice in chargeback.reconciliation(wh, config, QUARTER)["invoice_total"]:
        assert f">{money(invoice)}<" in html
    next_quarter = forecast.quarter_forecast(wh, config, by="department", quarter=Quarter(2026, 4))
    outlook = next_quarter.filter(pl.col("series") == "Total")
    assert f"forecast at {narrative.markdown_text(money(outlook['forecast'][0]))}".replace("\\", "") in html.replace("\\", "")
    assert "none are set for this quarter" in html  # the fixture's finops.toml has no budgets
    past = forecast.forecast_vs_actual(wh, config, QUARTER).filter(pl.col("series") == "Total")
    assert past["actual"][0] == bill and f">{money(bill)}<" in html  # last quarter's forecast against its actual


def _notebook_cells(*needles: str) -> str:
    """The review notebook's code cells that contain any of ``needles``, in order, as one source."""
    cells = nbformat.read(report.notebook_path(report.QUARTERLY_NOTEBOOK), as_version=4).cells
    return "\n".join(c.source for c in cells if c.cell_type == "code" and any(n in c.source for n in needles))


def test_the_forecast_helper_fits_what_the_review_then_reads(company, tmp_path, monkeypatch):
    """`finops report quarterly` fits the forecasts in a second process (finops.reports.prefetch):
    the notebook's own forecast cells must then be answered from the cache, with the same figures."""
    wh, config = company
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "cache"))
    helper = [sys.executable, "-m", "finops.reports.prefetch", "--quarter", QUARTER.label,
              "--warehouse", str(wh.path.resolve()), "--config", str(config.resolve()), "--engine", ""]  # fmt: skip
    subprocess.run(helper, check=True, timeout=600)

    # The notebook's setup and forecast cells, run here as the kernel runs them (papermill's parameters).
    cache.clear_memory()
    namespace = {"quarter": QUARTER.label, "warehouse": str(wh.path.resolve()), "config": str(config.resolve()),
                 "engine": "", "currency": "USD", "departments": [], "offline": True}  # fmt: skip
    before = dict(cache.stats)
    exec(_notebook_cells("from finops.analyses import", "forecast.", "budgets."), namespace)  # noqa: S102 (its own cells)
    assert cache.stats["misses"] == before["misses"]  # nothing fitted in the "kernel"
    assert cache.stats["disk_hits"] - before["disk_hits"] == 3  # next quarter, budgets, forecast vs actual

    # The same figures as fitted in this process, without the cache.
    monkeypatch.setenv(cache.ENV_SWITCH, "off")
    cfg = load_config(config)
    fresh = forecast.quarter_forecast(wh, cfg, by="department", quarter=QUARTER.next(), basis=cfg.basis)
    assert namespace["next_quarter"].equals(fresh)
    assert fresh.filter(pl.col("series") == "Total")["forecast"][0] > 0
    past_total = namespace["past"].filter(pl.col("series") == "Total")["actual"][0]
    assert past_total == spend.quarter_summary(wh, cfg, QUARTER)["total_cost"][0]
