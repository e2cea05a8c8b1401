"""Token prices: loaders (LiteLLM map, overrides CSV) and price_staged, each rule against costs
computed here by hand from the published per-1M-token prices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.pricing import BUNDLED_SNAPSHOT, list_prices, load_prices, price_staged
from finops.exceptions import SourceError
from finops.warehouse import LLM_REQUESTS_COLUMNS, Warehouse
from tests.connectors.priced import priced_warehouse

M = Decimal(1_000_000)


def per_m(price: str) -> Decimal:
    """A published price per 1M tokens as USD per token."""
    return Decimal(price) / M


def priced(wh: Warehouse, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stage ``rows`` (llm_requests columns; period_start defaults to 2026-07-15) and price them."""
    columns = {
        "provider": "VARCHAR", "model": "VARCHAR", "period_start": "TIMESTAMP", "request_id": "VARCHAR",
        **{c: LLM_REQUESTS_COLUMNS[c] for c in (
            "requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
            "reasoning_tokens", "service_tier", "reported_cost", "cost_currency", "cache_hit")},
        "cache_write_1h_tokens": "BIGINT",
    }  # fmt: skip
    data = [{"period_start": "2026-07-15 10:00:00", "request_id": f"r{i}", **row} for i, row in enumerate(rows)]
    with wh.load("test", "rows") as batch:
        batch.con.execute(
            "CREATE TEMP TABLE staged AS SELECT * FROM ("
            + " UNION ALL ".join(
                "SELECT " + ", ".join(f"CAST(? AS {t}) AS \"{c}\"" for c, t in columns.items()) for _ in data
            )
            + ")",
            [row.get(c) for row in data for c in columns],
        )
        price_staged(batch, "staged")
        out = batch.execute("SELECT * FROM staged ORDER BY CAST(substr(request_id, 2) AS INT)").pl().to_dicts()
    return out


def one(wh: Warehouse, **row: Any) -> dict[str, Any]:
    return priced(wh, [row])[0]


@pytest.fixture
def prices(wh: Warehouse) -> Warehouse:
    """The warehouse with the bundled LiteLLM snapshot loaded."""
    load_prices(wh)
    return wh


# -- loaders --------------------------------------------------------------------------------


def test_bundled_snapshot_holds_exact_per_token_prices_for_the_common_models(wh):
    calls: list[tuple[str, int, int]] = []
    (load,) = load_prices(wh, progress=lambda *call: calls.append(call))
    assert calls == [("prices litellm_prices_snapshot.json", 0, 1), ("prices", 1, 1)]
    assert load.path == BUNDLED_SNAPSHOT and load.format == "litellm"
    assert load.result.rows_read == load.result.rows_loaded == 16 and load.result.rows_quarantined == 0
    assert load.skipped_entries == 1  # dall-e-3 is priced per pixel, not per token; sample_spec is not a model
    frame = wh.query("SELECT * FROM prices")
    by_model = {row["model"]: row for row in frame.to_dicts()}
    for model in ("gpt-4o", "gpt-4o-mini", "o3", "o4-mini", "text-embedding-3-small", "claude-3-5-sonnet-20241022",
                  "claude-sonnet-4-20250514", "claude-3-5-haiku-20241022", "claude-opus-4-20250514",
                  "gemini-2.5-pro", "gemini-2.5-flash"):  # fmt: skip
        assert by_model[model]["input"] > 0, model
    assert by_model["gpt-4o-mini"]["cached_input"] == Decimal("0.000000075")
    assert by_model["gpt-4o"]["input_priority"] == per_m("4.25")
    sonnet4 = by_model["claude-sonnet-4-20250514"]
    assert (sonnet4["cache_write"], sonnet4["cache_write_1h"], sonnet4["cached_input"]) == (
        per_m("3.75"), per_m("6"), per_m("0.30"))  # fmt: skip
    assert (sonnet4["long_context_threshold"], sonnet4["input_above_threshold"], sonnet4["output_above_threshold"]) == (
        200_000, per_m("6"), per_m("22.50"))  # fmt: skip
    assert by_model["gemini-2.5-flash-preview-04-17"]["reasoning"] == per_m("3.50")
    assert by_model["gpt-4o"]["provider"] == "openai" and by_model["gemini-2.5-pro"]["price_source"] == "litellm"
    # Loading the same map again replaces, never duplicates.
    (again,) = load_prices(wh)
    assert again.result.rows_replaced == 16 and wh.query("SELECT count(*) AS n FROM prices")["n"][0] == 16


def test_overrides_csv_converts_per_million_prices_exactly_and_quarantines_bad_rows(wh, tmp_path):
    csv = tmp_path / "negotiated.csv"
    csv.write_text(
        "provider,model,input,cached_input,output,valid_from,valid_to,currency\n"
        "openai,gpt-4o,2.00,0.075,8,2026-07-01,2026-08-01,USD\n"  # 1: good
        "openai,gpt-4o,2.10,,8.40,2026-08-01,,\n"  # 2: good, open-ended, currency defaults to USD
        "openai,gpt-4o-mini,abc,,1,,,\n"  # 3: not a number
        "anthropic,claude-opus-4-20250514,12,,60,2026-07-01,2026-09-01,EUR\n"  # 4: not USD
        "openai,o3,1.5,,6,2026-13-01,,\n"  # 5: bad date
        "openai,o4-mini,1,,4,2026-07-01,2026-09-01,\n"  # 6: overlaps 7
        "openai,o4-mini,1,,4,2026-08-01,,\n"  # 7: overlaps 6
        "openai,o3,1,,4,2026-09-01,2026-08-01,\n"  # 8: valid_to before valid_from
        ",o3,1,,4,,,\n"  # 9: no provider
        "openai,o3,,,,,,\n"  # 10: no price
        "openai,o3,0.0000000000001,,4,,,\n"  # 11: 13 decimals per 1M: more than fits exactly
    )
    (load,) = load_prices(wh, [csv])
    r = load.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (11, 2, 9)
    reasons = dict(wh.query("SELECT row_number, reason FROM quarantine").iter_rows())
    assert reasons[3].startswith("input is not a price per 1M tokens") and "abc" in reasons[3]
    assert "EUR" in reasons[4] and "USD" in reasons[4]
    assert reasons[5].startswith("valid_from is not a date")
    assert reasons[6] == "validity overlaps row 7 of the same provider and model"
    assert reasons[7] == "validity overlaps row 6 of the same provider and model"
    assert reasons[8] == "valid_to is not after valid_from"
    assert reasons[9] == "provider is empty" and reasons[10] == "no price given"
    assert "up to 12 decimals" in reasons[11]
    rows = wh.query("SELECT * FROM prices ORDER BY valid_from").to_dicts()
    assert [(p["input"], p["cached_input"], p["output"], str(p["valid_from"]), p["valid_to"], p["price_source"])
            for p in rows] == [
        (Decimal("0.000002"), Decimal("0.000000075"), Decimal("0.000008"), "2026-07-01", rows[0]["valid_to"], "override"),
        (Decimal("0.0000021"), None, Decimal("0.0000084"), "2026-08-01", None, "override"),
    ]  # fmt: skip
    assert str(rows[0]["valid_to"]) == "2026-08-01"


def test_overrides_csv_with_an_unknown_column_is_refused_naming_it(wh, tmp_path):
    csv = tmp_path / "typo.csv"
    csv.write_text("provider,model,inptu,output\nopenai,gpt-4o,2,8\n")
    with pytest.raises(SourceError, match="unknown column\\(s\\) inptu") as info:
        load_prices(wh, [csv])
    assert "per 1M tokens" in info.value.hint
    assert not wh.exists() or wh.query("SELECT count(*) AS n FROM prices")["n"][0] == 0


def test_a_ragged_overrides_csv_is_an_error_naming_the_file_and_leaves_prices_as_they_were(wh, tmp_path):
    load_prices(wh)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("provider,model,input,output\nopenai,gpt-4o,2,8\nopenai,gpt-4o-mini,0.1,0.4,extra,fields\n")
    with pytest.raises(SourceError, match="cannot read price overrides .*ragged.csv"):
        load_prices(wh, [ragged])
    assert wh.query("SELECT count(*) AS n FROM prices WHERE price_source = 'override'")["n"][0] == 0
    assert wh.query("SELECT count(*) AS n FROM prices")["n"][0] == 16


def test_litellm_map_bad_json_is_an_error_naming_file_and_line_and_a_bad_entry_is_quarantined(wh, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "gpt-4o": {"input_cost_per_token": 2.5e-06,\n}')
    with pytest.raises(SourceError, match=r"broken.json is not valid JSON: .* line 3"):
        load_prices(wh, [broken])
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({
        "good": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "litellm_provider": "openai"},
        "bad": {"input_cost_per_token": "cheap", "output_cost_per_token": 2e-06, "litellm_provider": "openai"},
        "negative": {"input_cost_per_token": -1e-06, "litellm_provider": "openai"},
        "no-provider": {"input_cost_per_token": 1e-06},
        "image": {"input_cost_per_pixel": 1e-08, "litellm_provider": "openai"},
    }))  # fmt: skip
    (load,) = load_prices(wh, [odd])
    assert (load.result.rows_read, load.result.rows_loaded, load.result.rows_quarantined, load.skipped_entries) == (4, 1, 3, 1)
    reasons = dict(wh.query("SELECT row_number, reason FROM quarantine").iter_rows())
    assert reasons == {
        2: "input_cost_per_token is not a price: cheap",
        3: "input_cost_per_token is not a price: -0.000001",
        4: "litellm_provider is missing",
    }


# -- price_staged: one rule each ---------------------------------------------------------------


def test_cached_input_is_priced_as_cached_not_as_fresh_input(prices):
    # OpenAI gpt-4o: $2.50 input, $1.25 cached, $10 output per 1M. input_tokens is fresh only.
    row = one(prices, provider="openai", model="gpt-4o", input_tokens=1000, cached_input_tokens=3000, output_tokens=200)
    assert row["priced_cost"] == 1000 * per_m("2.50") + 3000 * per_m("1.25") + 200 * per_m("10") == Decimal("0.00825")
    assert (row["cost"], row["cost_source"], row["cost_currency"]) == (Decimal("0.00825"), "priced", "USD")


def test_cached_input_without_a_cached_price_falls_back_to_the_input_price(prices):
    # gpt-4o-2024-05-13 has no cached price in the map: $5 input, $15 output.
    row = one(prices, provider="openai", model="gpt-4o-2024-05-13", input_tokens=100, cached_input_tokens=900, output_tokens=10)
    assert row["priced_cost"] == 1000 * per_m("5") + 10 * per_m("15")


def test_cache_writes_5_minute_and_1_hour_and_cache_reads(prices):
    # claude-sonnet-4: $3 input, $3.75 5m write, $6 1h write, $0.30 read, $15 output.
    row = one(prices, provider="anthropic", model="claude-sonnet-4-20250514", input_tokens=100,
              cache_write_tokens=2000, cache_write_1h_tokens=500, cached_input_tokens=10_000, output_tokens=300)  # fmt: skip
    expected = 100 * per_m("3") + 1500 * per_m("3.75") + 500 * per_m("6") + 10_000 * per_m("0.30") + 300 * per_m("15")
    assert row["priced_cost"] == expected == Decimal("0.016425")
    # Without the 1-hour split every cache write is a 5-minute write.
    row = one(prices, provider="anthropic", model="claude-sonnet-4-20250514", cache_write_tokens=2000)
    assert row["priced_cost"] == 2000 * per_m("3.75")


def test_reasoning_tokens_use_the_reasoning_price_once_else_count_as_output(prices):
    # gemini-2.5-flash-preview-04-17: $0.15 input, $0.60 output, $3.50 reasoning; output includes reasoning.
    row = one(prices, provider="vertex_ai", model="gemini-2.5-flash-preview-04-17", input_tokens=100,
              output_tokens=1000, reasoning_tokens=800)  # fmt: skip
    assert row["priced_cost"] == 100 * per_m("0.15") + 200 * per_m("0.60") + 800 * per_m("3.50") == Decimal("0.002935")
    # o3 has no reasoning price: its 800 reasoning tokens are part of the 1000 output tokens, priced once.
    row = one(prices, provider="openai", model="o3", input_tokens=100, output_tokens=1000, reasoning_tokens=800)
    assert row["priced_cost"] == 100 * per_m("2") + 1000 * per_m("8")


@pytest.mark.parametrize(
    ("model", "tier", "input_price", "output_price"),
    [
        ("gpt-4o", None, "2.50", "10"),
        ("gpt-4o", "default", "2.50", "10"),
        ("gpt-4o", "batch", "1.25", "5"),
        ("gpt-4o", "priority", "4.25", "17"),
        ("o3", "flex", "1", "4"),  # flex is priced like batch
        ("gemini-2.5-flash-preview-04-17", "batch", "0.15", "0.60"),  # no batch price: standard price
    ],
)
def test_service_tiers_use_their_own_prices(prices, model, tier, input_price, output_price):
    row = one(prices, provider="openai", model=model, input_tokens=1000, output_tokens=1000, service_tier=tier)
    assert row["priced_cost"] == 1000 * per_m(input_price) + 1000 * per_m(output_price)


def test_long_context_prices_the_whole_request_above_the_threshold_but_not_buckets(prices):
    # claude-sonnet-4: over 200k input tokens (fresh + cached + cache write) a request costs $6 / $22.50.
    long, exact, bucket = priced(prices, [
        dict(provider="anthropic", model="claude-sonnet-4-20250514", requests=1, input_tokens=150_000,
             cached_input_tokens=60_000, output_tokens=1000),
        dict(provider="anthropic", model="claude-sonnet-4-20250514", requests=1, input_tokens=140_000,
             cached_input_tokens=60_000, output_tokens=1000),
        dict(provider="anthropic", model="claude-sonnet-4-20250514", requests=2, input_tokens=150_000,
             cached_input_tokens=60_000, output_tokens=1000),
    ])  # fmt: skip
    assert long["priced_cost"] == 150_000 * per_m("6") + 60_000 * per_m("0.30") + 1000 * per_m("22.50") == Decimal("0.9405")
    assert exact["priced_cost"] == 140_000 * per_m("3") + 60_000 * per_m("0.30") + 1000 * per_m("15")  # 200k: not above
    assert bucket["priced_cost"] == 150_000 * per_m("3") + 60_000 * per_m("0.30") + 1000 * per_m("15")


def test_prices_valid_on_the_request_date_and_overrides_win_over_litellm(prices, tmp_path):
    csv = tmp_path / "negotiated.csv"
    csv.write_text("provider,model,input,output,valid_from,valid_to\nopenai,gpt-4o,2.00,8.00,2026-07-01,2026-08-01\n")
    load_prices(prices, [csv])
    june, july, last_day, august = priced(prices, [
        dict(provider="openai", model="gpt-4o", period_start="2026-06-30 23:00:00", input_tokens=1000, output_tokens=1000),
        dict(provider="openai", model="gpt-4o", period_start="2026-07-01 00:00:00", input_tokens=1000, output_tokens=1000),
        dict(provider="openai", model="gpt-4o", period_start="2026-07-31 23:59:59", input_tokens=1000, output_tokens=1000),
        dict(provider="openai", model="gpt-4o", period_start="2026-08-01 00:00:00", input_tokens=1000, output_tokens=1000),
    ])  # fmt: skip
    list_price = 1000 * per_m("2.50") + 1000 * per_m("10")
    negotiated = 1000 * per_m("2") + 1000 * per_m("8")
    assert [r["priced_cost"] for r in (june, july, last_day, august)] == [list_price, negotiated, negotiated, list_price]
    # The override's missing cached price falls back to its own input price, not LiteLLM's cached price.
    row = one(prices, provider="openai", model="gpt-4o", cached_input_tokens=1000)
    assert row["priced_cost"] == 1000 * per_m("2")


def test_model_names_are_normalised_and_dated_snapshots_fall_back_to_the_base_model(prices):
    rows = priced(prices, [
        dict(provider="openai", model="openai/gpt-4o", input_tokens=1000),  # 0: provider prefix
        dict(provider="openai", model="gpt-4o-2024-08-06", input_tokens=1000),  # 1: dated, no own price → gpt-4o
        dict(provider="openai", model="gpt-4o-2024-05-13", input_tokens=1000),  # 2: dated with its own price
        dict(provider="anthropic", model="claude-3-5-sonnet-latest", input_tokens=1000),  # 3: alias → newest snapshot
        dict(provider="anthropic", model="anthropic/claude-sonnet-4-20250514", input_tokens=1000),  # 4
        dict(provider="bedrock", model="bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0", input_tokens=1000),  # 5
        dict(provider="azure", model="gpt-4o-mini", input_tokens=1000),  # 6: no Azure price → OpenAI's
        dict(provider="gemini", model="gemini/gemini-2.5-pro", input_tokens=1000),  # 7
        dict(provider="vertex_ai", model="claude-3-5-sonnet@20241022", input_tokens=1000),  # 8: Vertex naming
    ])  # fmt: skip
    assert [r["priced_cost"] for r in rows] == [
        1000 * per_m(p) for p in ("2.50", "2.50", "5", "3", "3", "0.80", "0.15", "1.25", "3")
    ]
    assert all(r["cost_source"] == "priced" for r in rows)


def test_an_unknown_model_is_unpriced_with_cost_null_never_zero(prices):
    unknown, partly = priced(prices, [
        dict(provider="openai", model="my-finetune", input_tokens=1000, output_tokens=10),
        dict(provider="azure", model="prod-deployment-7", input_tokens=0, output_tokens=0),
    ])  # fmt: skip
    for row in (unknown, partly):
        assert (row["priced_cost"], row["cost"], row["cost_source"]) == (None, None, "unpriced")


def test_a_reported_cost_is_kept_and_ours_computed_beside_it(prices):
    usd, eur, cache_hit = priced(prices, [
        dict(provider="openai", model="gpt-4o", input_tokens=1000, reported_cost="0.0030", cost_currency="USD"),
        dict(provider="openai", model="gpt-4o", input_tokens=1000, reported_cost="0.0023", cost_currency="EUR"),
        dict(provider="openai", model="gpt-4o", input_tokens=1000, cache_hit=True),
    ])  # fmt: skip
    assert (usd["cost"], usd["priced_cost"], usd["cost_source"]) == (Decimal("0.003"), 1000 * per_m("2.50"), "reported")
    # A cost in another currency stays in reported_cost; cost (always USD) is our price.
    assert (eur["cost"], eur["reported_cost"], eur["cost_currency"], eur["cost_source"]) == (
        1000 * per_m("2.50"), Decimal("0.0023"), "EUR", "priced")  # fmt: skip
    # A gateway cache hit made no provider call.
    assert (cache_hit["priced_cost"], cache_hit["cost_source"]) == (0, "priced")


def test_embeddings_and_per_request_prices(wh, tmp_path):
    csv = tmp_path / "search.csv"
    csv.write_text("provider,model,input,output,per_request\nopenai,gpt-4o-search,2.50,10,0.025\n")
    load_prices(wh, [BUNDLED_SNAPSHOT, csv])
    embed, search = priced(wh, [
        dict(provider="openai", model="text-embedding-3-small", requests=40, input_tokens=1_000_000),
        dict(provider="openai", model="gpt-4o-search", requests=3, input_tokens=1000, output_tokens=100),
    ])  # fmt: skip
    assert embed["priced_cost"] == Decimal("0.02")
    assert search["priced_cost"] == 1000 * per_m("2.50") + 100 * per_m("10") + 3 * Decimal("0.025")


def test_without_any_loaded_price_the_bundled_snapshot_prices_the_rows(wh):
    row = one(wh, provider="openai", model="gpt-4o-mini", input_tokens=1_000_000, output_tokens=1_000_000)
    assert row["priced_cost"] == Decimal("0.75") and row["cost_source"] == "priced"


def test_price_staged_adds_missing_columns_and_reads_only_what_is_staged(wh):
    with wh.load("test", "minimal") as batch:
        batch.stage("minimal", "SELECT 'anthropic' AS provider, 'claude-3-5-haiku-20241022' AS model,"
                               " TIMESTAMP '2026-07-01' AS period_start, 1000 AS input_tokens, 1000 AS output_tokens")  # fmt: skip
        price_staged(batch, "minimal")
        row = batch.execute("SELECT * FROM minimal").pl().to_dicts()[0]
    assert row["priced_cost"] == row["cost"] == 1000 * per_m("0.80") + 1000 * per_m("4")
    assert row["cost_source"] == "priced" and row["cost_currency"] == "USD"


def test_pricing_is_one_sql_pass_over_many_rows(prices):
    # 200,000 rows over four models, priced in one statement; totals checked against hand math.
    with prices.load("test", "many") as batch:
        batch.stage("many", """
            SELECT 'openai' AS provider, ['gpt-4o', 'gpt-4o-mini', 'o3', 'nope'][1 + i % 4] AS model,
                TIMESTAMP '2026-07-01' + INTERVAL (i % 31) DAY AS period_start, 1 AS requests,
                100 AS input_tokens, 10 AS cached_input_tokens, 20 AS output_tokens
            FROM range(200000) t(i)""")
        price_staged(batch, "many")
        totals = dict(batch.execute("SELECT model, sum(priced_cost) FROM many GROUP BY model").fetchall())
        unpriced = batch.execute("SELECT count(*) FROM many WHERE cost_source = 'unpriced' AND cost IS NULL").fetchone()[0]
    each = {
        "gpt-4o": 100 * per_m("2.50") + 10 * per_m("1.25") + 20 * per_m("10"),
        "gpt-4o-mini": 100 * per_m("0.15") + 10 * per_m("0.075") + 20 * per_m("0.60"),
        "o3": 100 * per_m("2") + 10 * per_m("0.50") + 20 * per_m("8"),
    }
    assert {m: totals[m] for m in each} == {m: 50_000 * cost for m, cost in each.items()}
    assert totals["nope"] is None and unpriced == 50_000


def test_priced_costs_are_rounded_to_10_decimals_alike_under_and_over_one_dollar(tmp_path):
    # Costs under $1 are rounded through a 64-bit decimal, larger ones through the 128-bit cast
    # (connectors.files.round_to_money): both must give the digits exact arithmetic gives.
    models = {
        "digits": Decimal("0.000000111111111115"),  # USD per token, 18 decimals
        "half": Decimal("0.000000000000000005"),  # n × price ends in a 5 at the 11th decimal
        "half-over-1": Decimal("0.100000000005"),
    }
    wh = priced_warehouse(tmp_path / "w.duckdb", [("openai", m, p, None, None, None) for m, p in models.items()])
    calls = [("digits", n) for n in (1, 45, 8_999_999, 9_000_000, 123_456_789)]
    calls += [("half", n) for n in (10_000_000, 30_000_000, 250_000_000)] + [("half-over-1", 10), ("half-over-1", 9)]
    rows = priced(wh, [{"provider": "openai", "model": m, "input_tokens": n} for m, n in calls])
    expected = [(n * models[m]).quantize(Decimal("1e-10"), ROUND_HALF_UP) for m, n in calls]
    assert [r["priced_cost"] for r in rows] == expected
    assert expected[3] == Decimal("1.0000000000") and expected[2] == Decimal("0.9999998889")
    assert expected[5:8] == [Decimal("1E-10"), Decimal("2E-10"), Decimal("1.3E-9")]
    assert expected[8:] == [Decimal("1.0000000001"), Decimal("0.9000000000")]


# -- CLI ------------------------------------------------------------------------------------


def finops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
        timeout=120,
    )


def test_cli_ingest_prices_and_list_them(tmp_path):
    warehouse = str(tmp_path / "w.duckdb")
    run = finops("ingest", "prices", "--warehouse", warehouse)
    assert run.returncode == 0, run.stderr
    assert "16 prices read, 16 loaded, 0 quarantined, 1 entries without a per-token price skipped" in run.stdout
    csv = tmp_path / "negotiated.csv"
    csv.write_text("provider,model,input,output\nopenai,gpt-4o-mini,0.12,0.48\nopenai,bad,x,1\n")
    run = finops("ingest", "prices", str(csv), "--warehouse", warehouse)
    assert run.returncode == 0, run.stderr
    assert "2 prices read, 1 loaded, 1 quarantined" in run.stdout and "row 2: input is not a price" in run.stdout
    run = finops("prices", "--model", "gpt-4o-mini", "--format", "json", "--warehouse", warehouse)
    assert run.returncode == 0, run.stderr
    listed = {(r["price_source"], Decimal(r["input"]), r["cached_input"] and Decimal(r["cached_input"]))
              for r in json.loads(run.stdout)}  # fmt: skip
    assert listed == {("litellm", Decimal("0.15"), Decimal("0.075")), ("override", Decimal("0.12"), None)}
    run = finops("prices", "--model", "gpt-4o-mini", "--warehouse", warehouse)
    assert "0.075" in run.stdout  # every digit, not rounded to cents
    wrong = finops("ingest", "prices", str(tmp_path / "prices.txt"), "--warehouse", warehouse)
    assert wrong.returncode == 1 and "no files match" in wrong.stderr and "Traceback" not in wrong.stderr


def test_loaded_prices_list_in_usd_per_million(prices):
    frame = list_prices(prices, "opus")
    assert frame.height == 1 and frame["output"][0] == Decimal("75") and frame["cache_write_1h"][0] == Decimal("30")


def test_snapshot_file_is_litellm_format(tmp_path):
    document = json.loads(Path(BUNDLED_SNAPSHOT).read_text())
    assert "sample_spec" in document
    assert all("litellm_provider" in entry and "mode" in entry for key, entry in document.items())
