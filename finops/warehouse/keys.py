"""SQL expressions every layer shares: model and provider keys, and the price each call resolves to.

Gateways, traces and bills name one model many ways (``openai/gpt-4o``, ``gpt-4o-2024-08-06``,
``bedrock/us.anthropic.claude-…-v1:0``) and one provider many ways (``vertex_ai``,
``gcp.vertex_ai``, ``google_vertex``). Connectors use these expressions to price calls at load
time and analyses use the same ones to join usage to bills and prices, so both sides agree on
what "the same model" is. They are plain SQL text (DuckDB dialect) over column names the
caller passes in.
"""

from __future__ import annotations


def model_key_sql(expr: str) -> str:
    """SQL: a model name lower-cased, without provider prefix, Bedrock region/vendor or version.

    ``openai/gpt-4o`` → ``gpt-4o``; ``bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0`` →
    ``claude-3-5-haiku-20241022``.
    """
    key = f"lower(trim({expr}))"
    key = f"regexp_replace({key}, '^.*/', '')"
    key = f"regexp_replace({key}, '^(us|eu|apac|global|jp|au|ca)\\.', '')"
    key = f"regexp_replace({key}, '^(anthropic|meta|amazon|mistral|cohere|ai21|deepseek|openai|google|writer|qwen)\\.', '')"
    return f"regexp_replace({key}, '-v[0-9]+:[0-9]+$', '')"


def base_model_sql(key_expr: str) -> str:
    """SQL: the base model of a model key, without a snapshot date or ``-latest``.

    ``gpt-4o-2024-08-06`` → ``gpt-4o``; ``claude-sonnet-4-20250514`` → ``claude-sonnet-4``;
    ``claude-3-5-sonnet@20240620`` → ``claude-3-5-sonnet``.
    """
    return f"regexp_replace({key_expr}, '(-[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}|-[0-9]{{8}}|@[0-9]{{8}}|[-@]latest)$', '')"


def provider_key_sql(expr: str) -> str:
    """SQL: one name per provider, whatever the source calls it (LiteLLM provider, OTel name, …)."""
    p = f"lower(trim({expr}))"
    return (
        f"CASE WHEN {p} LIKE 'vertex_ai%' OR {p} IN ('gcp.vertex_ai', 'vertex', 'google_vertex') THEN 'vertex_ai'"
        f" WHEN {p} IN ('gemini', 'google', 'gcp.gemini', 'gcp.gen_ai', 'google_ai_studio') THEN 'gemini'"
        f" WHEN {p} IN ('text-completion-openai', 'openai') THEN 'openai'"
        f" WHEN {p} LIKE 'bedrock%' OR {p} = 'aws.bedrock' THEN 'bedrock'"
        f" WHEN {p} IN ('azure', 'azure_ai', 'azure_openai', 'azure.ai.openai', 'az.ai.openai', 'azure.ai.inference')"
        " THEN 'azure'"
        f" ELSE {p} END"
    )


def resolved_prices_sql(table: str, col, prices: str) -> str:
    """SQL: one price row per distinct (provider, model, day) of the staged table, or none."""
    return f"""
        WITH wanted AS (
            SELECT DISTINCT {col('provider')} AS provider, {col('model')} AS model,
                CAST({col('period_start')} AS DATE) AS day
            FROM "{table}" AS s
        ),
        keyed AS (
            SELECT *, {model_key_sql('model')} AS want_key, {provider_key_sql('provider')} AS want_provider
            FROM wanted
        ),
        candidates AS (
            SELECT k.provider, k.model, k.day,
                p.* EXCLUDE (provider, model, x_Source, x_BatchId),
                p.provider AS price_provider, p.model AS price_model,
                {model_key_sql('p.model')} AS model_key,
                CASE WHEN {model_key_sql('p.model')} = k.want_key THEN 0
                     WHEN {model_key_sql('p.model')} = {base_model_sql('k.want_key')} THEN 1 ELSE 2 END AS model_rank,
                CASE WHEN {provider_key_sql('p.provider')} IS NOT DISTINCT FROM k.want_provider THEN 0 ELSE 1 END
                    AS provider_rank,
                CASE WHEN p.price_source = 'override' THEN 0 ELSE 1 END AS source_rank
            FROM keyed AS k
            JOIN {prices} AS p
              ON {base_model_sql(model_key_sql('p.model'))} = {base_model_sql('k.want_key')}
             AND (p.valid_from IS NULL OR p.valid_from <= k.day)
             AND (p.valid_to IS NULL OR k.day < p.valid_to)
             AND upper(coalesce(p.currency, 'USD')) = 'USD'
        )
        SELECT * FROM candidates
        QUALIFY row_number() OVER (
            PARTITION BY provider, model, day
            ORDER BY model_rank, provider_rank, source_rank, valid_from DESC NULLS LAST,
                     model_key DESC, price_model
        ) = 1
    """
