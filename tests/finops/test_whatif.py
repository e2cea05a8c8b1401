"""Savings what-ifs: hand-checked arithmetic on small inputs, and one run on the sample company.

Every expected Decimal is worked out in the comment beside it from the inputs of the test.
Prices are per token: ``3 * M`` is $3 per 1M tokens.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from finops.analyses.whatif import (
    Route,
    batch_api,
    breakeven,
    commitment_coverage,
    default_routes,
    model_routing,
    onprem_breakeven,
    prompt_caching,
    quantization,
    quarters_in,
    savings_opportunities,
    speculative_decoding,
)
from finops.config import load_config
from finops.exceptions import AnalysisError
from finops.periods import Quarter
from finops.warehouse import Warehouse
from tests.finops.warehouse_rows import charge, insert_charges

M = Decimal("0.000001")
Q3 = (date(2026, 7, 1), date(2026, 10, 1))
JULY = (date(2026, 7, 1), date(2026, 8, 1))
PRICE = pl.Decimal(38, 18)


def usage(*rows: dict[str, Any]) -> pl.DataFrame:
    """A token_usage-shaped frame: every token and price column, zero/None unless given."""
    base = {"provider": "p", "model": "m", "batch_tier": False, "requests": 1, "input_tokens": 0,
            "cached_input_tokens": 0, "cache_write_tokens": 0, "output_tokens": 0, "price_input": None,
            "price_cached_input": None, "price_cache_write": None, "price_output": None,
            "price_input_batch": None, "price_output_batch": None}  # fmt: skip
    frame = pl.DataFrame([{**base, **row} for row in rows], infer_schema_length=None)
    return frame.with_columns(pl.col(c).cast(PRICE) for c in frame.columns if c.startswith("price_"))


def only(frame: pl.DataFrame) -> dict[str, Any]:
    assert frame.height == 1
    return frame.row(0, named=True)


def test_quarters_in_a_period() -> None:
    assert quarters_in(*Q3) == 1
    assert quarters_in(*JULY) == Decimal(1) / 3
    assert quarters_in(date(2026, 7, 1), date(2026, 7, 31)) == Decimal(30) / Decimal("91.3125")


def test_prompt_caching() -> None:
    tokens = usage(
        dict(model="a", input_tokens=10_000_000, price_input=2 * M, price_cached_input=Decimal("0.5") * M),
        dict(model="b", input_tokens=5_000_000, price_input=1 * M, price_cached_input=1 * M),  # no cache discount
    )
    row = only(prompt_caching(tokens, *Q3))
    # current: 10M × $2 + 5M × $1 per 1M = 25.00; saving: 40% × 10M × ($2 − $0.50) per 1M = 6.00.
    assert (row["current_cost"], row["saving"], row["new_cost"]) == (
        Decimal("25.00"),
        Decimal("6.00"),
        Decimal("19.00"),
    )
    assert row["saving_per_quarter"] == Decimal("6.00")
    assert "cacheable_share=0.4 (seed 002" in row["assumptions"]
    july = only(prompt_caching(tokens, *JULY, cacheable_share=Decimal("0.6")))
    # 60% × 15.00 = 9.00 in one month: 27.00 a quarter.
    assert (july["saving"], july["saving_per_quarter"]) == (Decimal("9.00"), Decimal("27.00"))
    with pytest.raises(AnalysisError, match="between 0 and 1"):
        prompt_caching(tokens, *Q3, cacheable_share=40)


ROUTING = (
    dict(model="big", input_tokens=1_000_000, cached_input_tokens=2_000_000, output_tokens=500_000,
         price_input=3 * M, price_cached_input=Decimal("0.3") * M, price_cache_write=Decimal("3.75") * M,
         price_output=15 * M),
    dict(model="small", input_tokens=10, output_tokens=100_000, price_input=1 * M,
         price_cached_input=Decimal("0.1") * M, price_cache_write=Decimal("1.25") * M, price_output=5 * M),
    dict(model="embed", input_tokens=9_000_000, price_input=Decimal("0.02") * M, price_cached_input=Decimal("0.02") * M,
         price_cache_write=Decimal("0.02") * M, price_output=0 * M),
)  # fmt: skip


def test_model_routing() -> None:
    tokens = usage(*ROUTING)
    assert default_routes(tokens) == [Route("big", "small", provider="p")]  # embeddings stay put
    row = only(model_routing(tokens, *Q3))
    # big's tokens at its prices: 1M × $3 + 2M × $0.30 + 0.5M × $15 = 11.10;
    # at small's: 1M × $1 + 2M × $0.10 + 0.5M × $5 = 3.70; 30% of the 7.40 difference = 2.22.
    assert row["opportunity"] == "model routing: big → small"
    assert (row["current_cost"], row["saving"], row["new_cost"]) == (Decimal("11.10"), Decimal("2.22"), Decimal("8.88"))
    half = only(model_routing(tokens, *Q3, routes=[Route("big", "small", share=Decimal("0.5"))]))
    assert half["saving"] == Decimal("3.70")
    other = {"price_input": Decimal("0.5") * M, "price_cached_input": Decimal("0.05") * M,
             "price_cache_write": None, "price_output": 2 * M, "price_input_batch": None, "price_output_batch": None}  # fmt: skip
    tiny = only(model_routing(tokens, *Q3, routes=[Route("big", "tiny")], target_prices={"tiny": other}))
    # at tiny's: 0.50 + 0.10 + 1.00 = 1.60; 30% × (11.10 − 1.60) = 2.85.
    assert tiny["saving"] == Decimal("2.85")
    with pytest.raises(AnalysisError, match="no list price for 'unknown'"):
        model_routing(tokens, *Q3, routes=[Route("big", "unknown")])


def test_batch_api() -> None:
    tokens = usage(
        dict(model="listed", input_tokens=2_000_000, cached_input_tokens=1_000_000, output_tokens=1_000_000,
             price_input=2 * M, price_cached_input=Decimal("0.5") * M, price_output=8 * M,
             price_input_batch=1 * M, price_output_batch=4 * M),
        dict(model="unlisted", input_tokens=1_000_000, output_tokens=1_000_000, price_input=1 * M, price_output=2 * M),
        dict(model="listed", batch_tier=True, input_tokens=10_000_000, price_input=2 * M, price_output=8 * M),
    )  # fmt: skip
    row = only(batch_api(tokens, *Q3))
    # real-time fresh input + output at list: 2M × $2 + 1M × $8 + 1M × $1 + 1M × $2 = 15.00;
    # at batch prices: 2M × $1 + 1M × $4 + (unlisted at 50% off) 0.50 + 1.00 = 7.50; 20% of 7.50 = 1.50.
    assert (row["current_cost"], row["saving"], row["new_cost"]) == (
        Decimal("15.00"),
        Decimal("1.50"),
        Decimal("13.50"),
    )
    flat = only(batch_api(tokens, *Q3, batch_discount=Decimal("0.4"), async_share=Decimal("0.5")))
    assert flat["saving"] == Decimal("3.00")  # 50% × 40% × 15.00


def test_gpu_reductions_on_given_spend() -> None:
    spend = Decimal("1000")
    q = only(quantization(None, None, *Q3, current=spend))  # type: ignore[arg-type]
    assert (q["saving"], q["new_cost"]) == (Decimal("500.00"), Decimal("500.00"))  # seeds 001/003: 50%
    s = only(speculative_decoding(None, None, *Q3, current=spend))  # type: ignore[arg-type]
    assert s["saving"] == Decimal("200.00")  # seed 004: 20%
    half = only(speculative_decoding(None, None, *Q3, current=spend, applicable_share=Decimal("0.5")))  # type: ignore[arg-type]
    assert half["saving"] == Decimal("100.00")


@pytest.fixture
def cloud(wh: Warehouse) -> Warehouse:
    hours = dict(ConsumedQuantity=Decimal(24), ConsumedUnit="Hrs", PricingCategory="Standard")
    insert_charges(wh, [
        charge(cost="1000", ServiceName="Amazon Elastic Compute Cloud", x_UsageType="USE1-BoxUsage:m6i.8xlarge", **hours),
        charge(cost="70", ListCost=Decimal("100"), ServiceName="Amazon Elastic Compute Cloud",
               x_UsageType="USE1-BoxUsage:m6i.8xlarge", ConsumedQuantity=Decimal(24), ConsumedUnit="Hrs",
               PricingCategory="Committed"),
        charge(cost="300", ServiceName="Amazon SageMaker", x_UsageType="USE1-TrSpt:ml.g5.12xlarge",
               ConsumedQuantity=Decimal(24), ConsumedUnit="Hrs", PricingCategory="Dynamic"),
        charge(cost="400", ServiceName="Amazon SageMaker", x_UsageType="USE1-Host:ml.g5.2xlarge", **hours),
        charge(cost="600", ServiceName="Amazon SageMaker", x_UsageType="USE1-Train:ml.p4d.24xlarge", **hours),
        charge(cost="100", ServiceName="Amazon Bedrock", x_UsageType="USE1-Claude-input-tokens",
               ConsumedQuantity=Decimal(1000), ConsumedUnit="tokens", PricingCategory="Standard"),
    ])  # fmt: skip
    return wh


def test_commitment_coverage(cloud: Warehouse) -> None:
    row = only(commitment_coverage(cloud, *Q3))
    # on demand, billed by time: 1000 (EC2) + 400 + 600 (SageMaker) = 2000 (spot and tokens are not);
    # existing commitments save 1 − 70/100 = 30%; 50% coverage × 30% × 2000 = 300.00.
    assert (row["current_cost"], row["saving"], row["new_cost"]) == (
        Decimal("2000.00"),
        Decimal("300.00"),
        Decimal("1700.00"),
    )
    assert "discount=0.3 (measured" in row["assumptions"]
    assert only(commitment_coverage(cloud, *Q3, coverage=1, discount=Decimal("0.2")))["saving"] == Decimal("400.00")


def test_gpu_reductions_on_the_warehouse(cloud: Warehouse) -> None:
    # Inference billed by time: the SageMaker endpoint (400); the token meter and training are not.
    assert only(quantization(cloud, None, *Q3))["current_cost"] == Decimal("400.00")
    assert only(quantization(cloud, None, *Q3))["saving"] == Decimal("200.00")


def test_breakeven_arithmetic() -> None:
    b = breakeven(Decimal("87600"))
    # $87,600 a month at $2 per GPU-hour = 43,800 GPU-hours; one GPU gives 730 × 0.6 = 438: 100 GPUs.
    assert b.gpus == 100 and b.purchase_cost == Decimal("3500000.00")
    # power: 100 × 0.7 kW × 438 h × $0.15 = 4,599.00, + staff 15,000 = 19,599.00 a month.
    assert b.monthly_running_cost == Decimal("19599.00")
    # 3,500,000 / 36 months = 97,222.22 + 19,599.00.
    assert b.monthly_onprem_cost == Decimal("116821.22")
    assert b.months_to_breakeven == Decimal("51.5")  # 3,500,000 / (87,600 − 19,599) = 51.47
    # Per GPU: 972.22 + 45.99 a month on-prem against 2 × 438 = 876 of cloud: never cheaper.
    assert b.breakeven_monthly_cloud_spend is None

    cheap = breakeven(Decimal("30000"), gpus=10, purchase_price=Decimal("20000"), cloud_gpu_hour_price=Decimal("4"))
    # running 10 × 45.99 + 15,000 = 15,459.90; monthly 200,000 / 36 + 15,459.90 = 21,015.46;
    # months 200,000 / (30,000 − 15,459.90) = 13.76; k = (555.56 + 45.99) / 1,752 = 0.34335,
    # on-prem wins above 15,000 / (1 − k) = 22,843.15 a month.
    assert (cheap.monthly_running_cost, cheap.monthly_onprem_cost) == (Decimal("15459.90"), Decimal("21015.46"))
    assert cheap.months_to_breakeven == Decimal("13.8")
    assert cheap.breakeven_monthly_cloud_spend == Decimal("22843.15")


def test_onprem_breakeven_row(cloud: Warehouse) -> None:
    row = only(onprem_breakeven(cloud, None, *Q3, monthly_cloud_cost=Decimal("30000"), gpus=10,
                                purchase_price=Decimal("20000"), cloud_gpu_hour_price=Decimal("4")))  # fmt: skip
    # a quarter: cloud 90,000.00 against 3 × 21,015.46 = 63,046.38.
    assert (row["current_cost"], row["new_cost"], row["saving"]) == (
        Decimal("90000.00"), Decimal("63046.38"), Decimal("26953.62"))  # fmt: skip
    assert row["months_to_breakeven"] == Decimal("13.8") and row["gpus"] == 10
    assert "purchase_price=20000 (override)" in row["assumptions"]
    # From the warehouse: every AI charge billed by time (spot training 300, endpoint 400, training 600).
    assert only(onprem_breakeven(cloud, None, *Q3))["current_cost"] == Decimal("1300.00")
    with pytest.raises(AnalysisError, match="unknown on-prem assumption"):
        onprem_breakeven(cloud, None, *Q3, watts=700)


def test_sample_company_opportunities(sample_build) -> None:
    wh = Warehouse(sample_build.warehouse)
    table = savings_opportunities(wh, load_config(sample_build.config), Quarter(2026, 3))
    assert table["rank"].to_list() == list(range(1, table.height + 1))
    per_quarter = table["saving_per_quarter"].to_list()
    assert per_quarter == sorted(per_quarter, reverse=True)
    for row in table.iter_rows(named=True):
        assert row["new_cost"] == row["current_cost"] - row["saving"], row["opportunity"]
        assert row["saving_per_quarter"] == row["saving"]  # the period is one quarter
        assert row["assumptions"]
    kinds = {o.split(":")[0].split(" (")[0] for o in table["opportunity"]}
    assert kinds == {"prompt caching", "model routing", "batch API", "quantization", "speculative decoding",
                     "commitment coverage", "on-prem GPUs instead of cloud"}  # fmt: skip
    # Routes go to the cheapest model each provider already uses, at real list prices.
    assert "model routing: gemini-2.5-pro → gemini-2.5-flash" in set(table["opportunity"])
    # Measured discount of the sample's commitments (EffectiveCost / ListCost of committed usage in
    # Q3): the Compute Savings Plan 60,727.36 / 92,011.16, the Azure reservation 682.54 / 741.89 and
    # the RDS reservation 529.92 / 816.96: 1 − 61,939.82 / 93,570.01 = 0.3380.
    commitment = table.filter(pl.col("opportunity").str.starts_with("commitment")).row(0, named=True)
    assert "discount=0.338 (measured" in commitment["assumptions"]
    overridden = savings_opportunities(wh, None, Quarter(2026, 3), prompt_caching={"cacheable_share": Decimal("0.8")})
    caching = {r["opportunity"]: r["saving"] for r in overridden.iter_rows(named=True)}["prompt caching"]
    base = {r["opportunity"]: r["saving"] for r in table.iter_rows(named=True)}["prompt caching"]
    assert abs(caching - 2 * base) <= Decimal("0.01")


def test_savings_command(sample_build) -> None:
    import json

    from click.testing import CliRunner

    from finops.cli import cli

    args = ["savings", "--quarter", "2026Q3", "--warehouse", str(sample_build.warehouse),
            "--config", str(sample_build.config), "--format", "json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(Decimal(r["new_cost"]) == Decimal(r["current_cost"]) - Decimal(r["saving"]) for r in rows)
