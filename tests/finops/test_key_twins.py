"""The analyses' ibis keys must agree with the SQL keys the connectors price with (finops.warehouse.keys).

Connectors resolve prices in SQL when they load; analyses join usage to bills and prices with the
ibis twins, on any engine. A model or provider spelled one way by a gateway and another by a bill
must land on the same key in both, or a cost silently goes unmatched.
"""

from __future__ import annotations

import duckdb
import ibis
import pytest

from finops.analyses.reconcile import GATEWAY_PROVIDER_SQL, gateway_provider
from finops.analyses.unit_economics import base_model, model_key, provider_key
from finops.warehouse.keys import base_model_sql, model_key_sql, provider_key_sql

MODELS = [
    "gpt-4o", "openai/gpt-4o-2024-08-06", "GPT-4o-mini ", "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "anthropic.claude-3-haiku-20240307-v1:0", "eu.meta.llama3-1-70b-instruct-v1:0", "claude-sonnet-4@20250514",
    "gemini-2.0-flash-001", "vertex_ai/gemini-1.5-pro", "azure/gpt-4o-mini-2024-07-18", "o3-mini-latest",
    "text-embedding-3-small", "mistral.mistral-large-2407-v1:0", "", None,
]  # fmt: skip
PROVIDERS = [
    "openai", "OpenAI ", "text-completion-openai", "anthropic", "bedrock", "bedrock_converse", "aws.bedrock",
    "azure", "azure_ai", "azure.ai.openai", "az.ai.openai", "vertex_ai", "vertex_ai-language-models", "gcp.vertex_ai",
    "gemini", "google", "gcp.gen_ai", "mistral", "", None,
]  # fmt: skip


def _sql_values(expr_sql: str, values: list[str | None]) -> list[str | None]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    return [row[0] for row in con.execute(f"SELECT {expr_sql} FROM t ORDER BY i").fetchall()]


def _ibis_values(build, values: list[str | None]) -> list[str | None]:
    t = ibis.memtable({"i": list(range(len(values))), "v": values}, schema={"i": "int64", "v": "string"})
    return t.select("i", k=build(t.v)).order_by("i").to_polars()["k"].to_list()


@pytest.mark.parametrize(
    ("name", "sql", "build", "values"),
    [
        ("model key", model_key_sql("v"), model_key, MODELS),
        ("base model", base_model_sql(model_key_sql("v")), lambda v: base_model(model_key(v)), MODELS),
        ("provider key", provider_key_sql("v"), provider_key, PROVIDERS),
        ("gateway family", GATEWAY_PROVIDER_SQL.replace("provider", "v"), gateway_provider, PROVIDERS),
    ],
)
def test_ibis_keys_equal_the_sql_keys(name, sql, build, values):
    from_sql = _sql_values(sql, values)
    assert _ibis_values(build, values) == from_sql, name
    assert len({k for k in from_sql if k}) > 3, "the cases must actually differ from one another"
