"""Gateway/API cost against the providers' bills, on a small warehouse with known numbers.

Gateway rows go through the real path: staged in a LoadBatch, priced by price_staged with the
bundled LiteLLM prices, loaded into `llm_requests`. Invoice lines are plain `charges` rows.
Every expected figure is worked out here by hand from the per-1M-token list prices.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connectors.pricing import load_prices, price_staged
from finops.analyses.reconcile import gateway_vs_bill, unpriced_usage
from finops.exceptions import AnalysisError
from finops.warehouse import LLM_REQUESTS_COLUMNS, Warehouse
from tests.finops.warehouse_rows import charge, insert_charges

M = Decimal(1_000_000)
COLUMNS = ("source", "x_Source", "provider", "model", "period_start", "request_id", "requests", "input_tokens",
           "output_tokens", "reported_cost", "cost_currency")  # fmt: skip


def load_requests(wh: Warehouse, rows: list[dict[str, Any]]) -> None:
    """Stage ``rows``, price them with price_staged, load them into llm_requests (merge on request id)."""
    data = [{"requests": 1, "request_id": f"req-{i}", "x_Source": row.get("source", "litellm"),
             "source": "litellm", **row} for i, row in enumerate(rows)]  # fmt: skip
    with wh.load("test-requests", "test") as batch:
        select = ", ".join(f'CAST(? AS {LLM_REQUESTS_COLUMNS[c]}) AS "{c}"' for c in COLUMNS)
        batch.con.execute(
            "CREATE TEMP TABLE staged AS " + " UNION ALL ".join(f"SELECT {select}" for _ in data),
            [row.get(c) for row in data for c in COLUMNS],
        )
        price_staged(batch, "staged")
        batch.replace_partitions(
            "llm_requests", "SELECT * FROM staged", partition_by=["x_Source", "request_id"], rows_read=len(data)
        )


@pytest.fixture
def company(wh: Warehouse) -> Warehouse:
    load_prices(wh)
    july = "2026-07-10 12:00:00"
    load_requests(wh, [
        # AWS Bedrock through the gateway: claude-3-5-haiku $0.80 / $4 per 1M → 4.80, plus a reported 6.00.
        dict(provider="bedrock", model="bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0", period_start=july,
             input_tokens=1_000_000, output_tokens=1_000_000),
        dict(provider="bedrock", model="claude-3-5-haiku-20241022", period_start=july, input_tokens=5,
             output_tokens=5, reported_cost="6.00", cost_currency="USD"),
        # Azure OpenAI gpt-4o at OpenAI's list price ($2.50 / $10): 2.50 + 5.00 = 7.50.
        dict(provider="azure", model="gpt-4o", period_start=july, input_tokens=1_000_000, output_tokens=500_000),
        # Vertex AI gemini-2.5-pro: one request of 2M input tokens is above its 200k long-context
        # threshold, so $2.50 per 1M instead of $1.25: 5.00.
        dict(provider="vertex_ai", model="gemini-2.5-pro", period_start=july, input_tokens=2_000_000, output_tokens=0),
        # OpenAI gpt-4o-mini $0.15 / $0.60: 1.50 + 3.00 = 4.50, and a fine-tune with no price.
        dict(provider="openai", model="gpt-4o-mini", period_start=july, input_tokens=10_000_000, output_tokens=5_000_000),
        dict(provider="openai", model="ft:my-finetune", period_start=july, input_tokens=1000, output_tokens=20),
        # The OpenAI usage API saw the same month: reported 19.00. Compared on its own row, never added.
        dict(source="openai-usage", provider="openai", model="gpt-4o-mini", period_start="2026-07-01 00:00:00",
             requests=None, input_tokens=11_000_000, output_tokens=5_000_000, reported_cost="19.00"),
        # Anthropic direct, a bucket of 10 requests (none above 200k on its own): claude-sonnet-4 $3 input:
        # 3.00. No invoice loaded.
        dict(provider="anthropic", model="claude-sonnet-4-20250514", period_start=july, requests=10,
             input_tokens=1_000_000),
        # OTel saw an unknown model; September is outside the range asked for.
        dict(source="otel", provider="openai", model="mystery-model", period_start=july, input_tokens=400, output_tokens=100),
        dict(provider="openai", model="gpt-4o-mini", period_start="2026-09-02 00:00:00", input_tokens=1_000_000),
    ])  # fmt: skip
    insert_charges(wh, [
        charge(cost="10.00", ProviderName="AWS", ServiceName="Amazon Bedrock", x_Model="claude-3-5-haiku"),
        charge(cost="2.50", ProviderName="AWS", ServiceName="Claude 3.5 Haiku (Amazon Bedrock Edition)"),
        charge(cost="100.00", ProviderName="AWS", ServiceName="Amazon Simple Storage Service"),
        charge(cost="5.00", day="2026-08-03", ProviderName="AWS", ServiceName="Amazon Bedrock"),
        charge(cost="7.00", ProviderName="Microsoft", ServiceName="Azure OpenAI", x_Model="gpt-4o"),
        charge(cost="1.00", ProviderName="Microsoft", ServiceName="Foundry Models"),
        charge(cost="50.00", ProviderName="Microsoft", ServiceName="Virtual Machines"),
        charge(cost="4.00", ProviderName="Google Cloud", ServiceName="Vertex AI",
               x_UsageType="Gemini 2.5 Pro Input Tokens Predictions"),
        charge(cost="300.00", ProviderName="Google Cloud", ServiceName="Vertex AI", x_UsageType="Custom Training: A100 GPU"),
        charge(cost="20.00", ProviderName="OpenAI", ServiceName="OpenAI API", BillingAccountId="org-1"),
    ])  # fmt: skip
    return wh


def test_gateway_cost_against_the_bill_per_provider_month_and_source(company):
    frame = gateway_vs_bill(company, date(2026, 7, 1), date(2026, 9, 1))
    rows = {(r["provider"], str(r["month"]), r["source"]): r for r in frame.to_dicts()}
    assert set(rows) == {
        ("AWS Bedrock", "2026-07-01", "litellm"),
        ("AWS Bedrock", "2026-08-01", None),
        ("Azure OpenAI", "2026-07-01", "litellm"),
        ("Google Vertex AI / Gemini", "2026-07-01", "litellm"),
        ("OpenAI", "2026-07-01", "litellm"),
        ("OpenAI", "2026-07-01", "openai-usage"),
        ("OpenAI", "2026-07-01", "otel"),
        ("Anthropic", "2026-07-01", "litellm"),
    }

    def check(key, gateway, billed, pct, unpriced=0):
        row = rows[key]
        assert row["gateway_cost"] == Decimal(gateway), key
        assert row["billed_cost"] == (None if billed is None else Decimal(billed)), key
        assert row["difference"] == (None if billed is None else Decimal(billed) - Decimal(gateway)), key
        assert row["difference_pct"] == pct, key
        assert row["unpriced_requests"] == unpriced, key

    bedrock_gateway = 1 * Decimal("0.80") + 1 * Decimal("4") + Decimal("6.00")  # 10.80
    check(("AWS Bedrock", "2026-07-01", "litellm"), bedrock_gateway, "12.50", 13.6)  # (12.50 − 10.80) / 12.50
    check(("AWS Bedrock", "2026-08-01", None), "0", "5.00", 100.0)  # billed, never seen by the gateway
    check(("Azure OpenAI", "2026-07-01", "litellm"), "7.50", "8.00", 6.25)  # VM line left out
    # More than billed (the bill's SKU was at the standard rate): a negative difference. Training SKU left out.
    check(("Google Vertex AI / Gemini", "2026-07-01", "litellm"), "5.00", "4.00", -25.0)
    check(("OpenAI", "2026-07-01", "litellm"), "4.50", "20.00", 77.5, unpriced=1)
    check(("OpenAI", "2026-07-01", "openai-usage"), "19.00", "20.00", 5.0)
    check(("OpenAI", "2026-07-01", "otel"), "0", "20.00", 100.0, unpriced=1)
    check(("Anthropic", "2026-07-01", "litellm"), "3.00", None, None)  # no invoice loaded
    assert frame.schema["gateway_cost"].is_decimal() and frame.schema["difference"].is_decimal()
    assert rows[("Azure OpenAI", "2026-07-01", "litellm")]["billed_currency"] == "USD"

    only_usage_api = gateway_vs_bill(company, date(2026, 7, 1), date(2026, 8, 1), source="openai-usage")
    assert [(r["provider"], r["source"]) for r in only_usage_api.to_dicts() if r["source"]] == [("OpenAI", "openai-usage")]


def test_unpriced_usage_lists_models_without_a_price_with_their_token_volume(company):
    frame = unpriced_usage(company, date(2026, 7, 1), date(2026, 8, 1))
    assert frame.select("source", "provider", "model", "rows", "requests", "input_tokens", "output_tokens",
                        "total_tokens").rows() == [
        ("litellm", "openai", "ft:my-finetune", 1, 1, 1000, 20, 1020),
        ("otel", "openai", "mystery-model", 1, 1, 400, 100, 500),
    ]  # fmt: skip
    costs = company.query("SELECT cost, priced_cost FROM llm_requests WHERE model IN ('ft:my-finetune', 'mystery-model')")
    assert costs.rows() == [(None, None), (None, None)]  # never a silent 0
    assert unpriced_usage(company, date(2026, 9, 1), date(2026, 10, 1)).height == 0


def test_an_empty_range_is_refused(company):
    with pytest.raises(AnalysisError, match="empty date range"):
        gateway_vs_bill(company, date(2026, 8, 1), date(2026, 7, 1))


def test_cli_reconcile_prints_the_comparison_and_the_unpriced_models(company):
    import os
    import subprocess
    import sys

    def finops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "finops.cli", *args, "--warehouse", str(company.path)],
                              capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"}, timeout=120)  # fmt: skip

    run = finops("reconcile", "--start", "2026-07-01", "--end", "2026-08-01", "--format", "csv")
    assert run.returncode == 0, run.stderr
    assert "Azure OpenAI,2026-07-01,litellm,7.5000000000,0,8.0000000000,USD,0.5000000000,6.25" in run.stdout
    run = finops("reconcile", "--start", "2026-07-01", "--end", "2026-08-01", "--unpriced")
    assert run.returncode == 0, run.stderr
    assert "ft:my-finetune" in run.stdout and "mystery-model" in run.stdout
    # --quarter, as the other analysis commands take it: the quarter's months, the same rows.
    by_dates = finops("reconcile", "--start", "2026-07-01", "--end", "2026-10-01", "--format", "csv")
    by_quarter = finops("reconcile", "--quarter", "2026Q3", "--format", "csv")
    assert by_quarter.returncode == 0, by_quarter.stderr
    assert by_quarter.stdout == by_dates.stdout and by_quarter.stdout.count("\n") > 2
    assert "Azure OpenAI,2026-07-01,litellm,7.5000000000" in by_quarter.stdout
    both = finops("reconcile", "--quarter", "2026Q3", "--start", "2026-07-01", "--end", "2026-10-01")
    assert both.returncode == 2 and "give --quarter or --start/--end, not both" in both.stderr
