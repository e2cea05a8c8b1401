"""`finops ingest …`: one command per source kind, each a thin call to finops.ingest.sources, and its summary.

Every command resolves its source through the connector registry (finops.ingest.sources) and prints the
load report: rows read, loaded, replaced and quarantined, totals per period, model or cost source.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from finops.cli.options import _warehouse, warehouse_option
from finops.cli.output import _money, _progress, console


@click.group()
def ingest() -> None:
    """Load billing exports and usage logs into the warehouse."""


@ingest.command("focus")
@click.argument("paths", nargs=-1, required=True)
@warehouse_option
def ingest_focus(paths: tuple[str, ...], warehouse_path: Path | None) -> None:
    """Load FOCUS 1.0–1.3 files (CSV, .csv.gz, Parquet): files, directories or globs.

    Each (billing account, billing period) found in the files replaces what the warehouse
    held for it, so loading the same files again, or a restated month, never double counts.
    Load all files of one billing period in the same call.

    \b
    Example:
      finops ingest focus 'exports/focus/2026-0[789]/*.parquet'
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    with _progress() as callback:
        report = sources.ingest(wh, sources.source("focus", paths), progress=callback)
    _print_ingest(report, wh)


@ingest.command("aws-cur")
@click.argument("uris", nargs=-1, required=True)
@click.option(
    "--period",
    "periods",
    multiple=True,
    metavar="YYYY-MM",
    help="Billing period to load (repeat for more) [default: all].",
)
@click.option("--profile", default=None, help="AWS profile for S3 [default: the default credential chain].")
@click.option(
    "--endpoint-url", default=None, metavar="URL", help="S3 endpoint to call instead of AWS's (e.g. a test server)."
)
@warehouse_option
def ingest_aws_cur(
    uris: tuple[str, ...],
    periods: tuple[str, ...],
    profile: str | None,
    endpoint_url: str | None,
    warehouse_path: Path | None,
) -> None:
    """Load an AWS cost export: CUR 2.0, legacy CUR or the AWS FOCUS export.

    URIS is s3://BUCKET/PREFIX/EXPORT_NAME (AWS Data Exports; read with boto3 and the default
    credential chain), a local directory in the same layout, or local export files / globs
    without manifest. Each billing period's newest manifest is loaded and replaces what the
    warehouse held for it; a period whose manifest has not changed since its last load is skipped.

    \b
    Examples:
      finops ingest aws-cur s3://billing-bucket/cur/ai-costs --period 2026-07 --period 2026-08
      finops ingest aws-cur exports/aws/ai-costs
      finops ingest aws-cur 'exports/cur2/*.parquet'
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    source = sources.source("aws-cur", uris, period=periods, profile=profile, endpoint_url=endpoint_url)
    with _progress() as callback:
        report = sources.ingest(wh, source, progress=callback)
    for period, batch_id in report.skipped:
        console.print(f"{period}: manifest unchanged since batch {batch_id}, skipped")
    for load in report.loads:
        title = load.period or "files without manifest"
        if load.manifest:
            title += f" ({load.dialect}, export {load.export_id})"
        _print_ingest(load, wh, title=title)
    if not report.loads:
        console.print(f"Nothing new to load. Warehouse: {wh.path}")


def google_api_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--api-endpoint and --anonymous, shared by the Google Cloud commands."""
    func = click.option(
        "--anonymous",
        is_flag=True,
        help="Send no credentials (a server that needs none). Implied for a loopback http:// --api-endpoint.",
    )(func)
    return click.option(
        "--api-endpoint",
        default=None,
        metavar="URL",
        help="API root to call instead of Google's, e.g. a local test server http://127.0.0.1:PORT.",
    )(func)


@ingest.command("gcp-bigquery")
@click.argument("table")
@click.option(
    "--months",
    "months",
    multiple=True,
    required=True,
    help="Invoice months to load: 2026-07, 2026-07,2026-08 or 2026-01..2026-06 (repeatable).",
)
@click.option(
    "--project", default=None, help="Project that runs and pays for the query [default: the table's project]."
)
@google_api_options
@warehouse_option
def ingest_gcp_bigquery(
    table: str,
    months: tuple[str, ...],
    project: str | None,
    api_endpoint: str | None,
    anonymous: bool,
    warehouse_path: Path | None,
) -> None:
    """Load invoice months of a Google Cloud billing export table in BigQuery (PROJECT.DATASET.TABLE).

    Each month is one query with the month as a bound parameter; it replaces that month (per
    billing account) in the warehouse, whether it came from BigQuery or from export files
    before. Run it again for a month to pick up late rows. Credentials: Application Default
    Credentials (`gcloud auth application-default login`).

    \b
    Example:
      finops ingest gcp-bigquery my-billing.billing.gcp_billing_export_v1_01F3A2_9B7C4D_E5A610 --months 2026-07..2026-09
    """
    from connectors import gcp_billing
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    source = sources.source(
        "gcp-bigquery", [table], months=months, project=project, api_endpoint=api_endpoint, anonymous=anonymous
    )
    with _progress() as callback:
        reports = sources.ingest(wh, source, progress=callback)
    for month, report in zip(gcp_billing.parse_months(months), reports, strict=True):
        _print_ingest(report, wh, title=f"invoice month {month[:4]}-{month[4:]}")


@ingest.command("gcp-export")
@click.argument("paths", nargs=-1, required=True)
@warehouse_option
def ingest_gcp_export(paths: tuple[str, ...], warehouse_path: Path | None) -> None:
    """Load Google Cloud billing export files: newline-delimited JSON (.json, .json.gz) or Parquet.

    The files are the standard or detailed usage cost table as `bq extract` writes it. Each
    (billing account, invoice month) in them replaces what the warehouse held for it, from
    files or from BigQuery. Load all files of one invoice month in the same call.

    \b
    Example:
      finops ingest gcp-export 'exports/gcp/2026-07/*.json.gz'
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    with _progress() as callback:
        report = sources.ingest(wh, sources.source("gcp-export", paths), progress=callback)
    _print_ingest(report, wh)


@ingest.command("gcp-catalog")
@click.option(
    "--services", required=True, help='Catalog services by name or id, comma-separated: "Vertex AI,Compute Engine".'
)
@click.option(
    "--billing-account", default=None, help="Also store the projects of this billing account (01F3A2-9B7C4D-E5A610)."
)
@click.option("--currency", default=None, help="Currency of the prices [default: USD].")
@google_api_options
@warehouse_option
def ingest_gcp_catalog(
    services: str,
    billing_account: str | None,
    currency: str | None,
    api_endpoint: str | None,
    anonymous: bool,
    warehouse_path: Path | None,
) -> None:
    """Store Google Cloud list prices (Cloud Billing Catalog API) in sku_prices, and projects in billing_projects.

    A load replaces the prices stored before for the same services, and the projects of the
    same billing account.

    \b
    Example:
      finops ingest gcp-catalog --services "Vertex AI,Compute Engine" --billing-account 01F3A2-9B7C4D-E5A610
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    source = sources.source(
        "gcp-catalog",
        services=tuple(services.split(",")),
        billing_account=billing_account,
        api_endpoint=api_endpoint,
        anonymous=anonymous,
        currency=currency,
    )
    with _progress() as callback:
        summary = sources.ingest(wh, source, progress=callback)
    prices = summary.prices
    console.print(
        f"[bold]{prices.rows_loaded:,}[/] prices stored for {len(summary.services)} service"
        f"{'s' if len(summary.services) != 1 else ''} (batch {prices.batch_id})"
        + (f", replacing {prices.rows_replaced:,}" if prices.rows_replaced else "")
        + (f", [red]{prices.rows_quarantined:,} quarantined[/]" if prices.rows_quarantined else "")
    )
    table = Table(title="List prices, by service", title_justify="left")
    for name, justify in (("service id", "left"), ("service", "left"), ("SKUs", "right"), ("price rows", "right")):
        table.add_column(name, justify=justify)
    for service in summary.services:
        table.add_row(service.service_id, service.name, f"{service.skus:,}", f"{service.prices:,}")
    console.print(table)
    if summary.projects is not None:
        projects = summary.projects
        console.print(
            f"{projects.rows_loaded:,} projects of billing account {summary.billing_account} stored (batch {projects.batch_id})"
            + (f", replacing {projects.rows_replaced:,}" if projects.rows_replaced else "")
        )
    console.print(f"Warehouse: {wh.path}")


@ingest.command("azure")
@click.argument("uris", nargs=-1, required=True)
@click.option(
    "--connection-string-env",
    "connection_string_env",
    default="AZURE_STORAGE_CONNECTION_STRING",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the storage account's connection string (for az:// URIs).",
)
@warehouse_option
def ingest_azure(uris: tuple[str, ...], connection_string_env: str, warehouse_path: Path | None) -> None:
    """Load Azure Cost Management exports: actual cost, amortized cost and FOCUS (CSV, .csv.gz, Parquet).

    URIS are az://ACCOUNT/CONTAINER/PATH (credentials from the connection string in
    $AZURE_STORAGE_CONNECTION_STRING or --connection-string-env), SAS URLs (…?sv=…&sig=…),
    or local files, directories and globs. Per export and month only the newest run is
    loaded; with both an actual and an amortized export of a month, BilledCost comes from
    the actual one and EffectiveCost from the amortized one, matched line by line.
    The connection string is never printed; there is no option to pass it on the command line.

    \b
    Examples:
      finops ingest azure az://costexports/exports/finops
      finops ingest azure 'https://costexports.blob.core.windows.net/exports/finops?sv=…'
      finops ingest azure downloads/ea-actual/20260701-20260731/
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    source = sources.source("azure", uris, connection_string_env=connection_string_env)
    with _progress() as callback:
        report = sources.ingest(wh, source, progress=callback)
    for load in report.loads:
        _print_ingest(load, wh, title=escape(load.title))
        if len(load.runs) > 1:
            for run in load.runs:
                where = f"{run.export}/{run.folder}" if run.folder else run.export
                console.print(f"  {where} run {run.run_id} ({run.export_type}): {run.rows_read:,} rows read,"
                              f" {run.rows_quarantined:,} quarantined", style="dim", markup=False)  # fmt: skip
        for part in load.partitions.iter_rows(named=True):
            console.print(f"  {part['billing_account']} {part['billing_period']}: costs from the {part['cost_basis']}",
                          style="dim", markup=False)  # fmt: skip
    for skipped in report.skipped:
        console.print(f"skipped {skipped.export} run {skipped.run_id}: {skipped.reason}", style="dim", markup=False)
    if not report.loads:
        console.print("Nothing new to load." if report.skipped else "No export runs found.")


def _parse_overlap(value: str) -> Any:
    """'1h', '30m', '2d', '90s' → timedelta."""
    import re
    from datetime import timedelta

    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", value)
    if not match:
        raise click.BadParameter(f"{value!r}: use a number and a unit, e.g. 30m, 1h, 2d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


@ingest.command("litellm")
@click.argument("dsn")
@click.option("--password-env", default=None, metavar="VAR", help="Environment variable holding the database password.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]), default=None,
              help='Re-read requests from this UTC time on instead of from the saved watermark.')  # fmt: skip
@click.option(
    "--overlap", default="1h", show_default=True, help="How far before the watermark each run re-reads (late rows)."
)
@click.option(
    "--page-size", type=click.IntRange(1), default=200_000, show_default=True, help="Rows per page read from Postgres."
)
@warehouse_option
def ingest_litellm(
    dsn: str, password_env: str | None, since: Any, overlap: str, page_size: int, warehouse_path: Path | None
) -> None:
    """Load LiteLLM proxy spend logs ("LiteLLM_SpendLogs") from its Postgres into llm_requests.

    DSN is postgresql://USER@HOST:PORT/DBNAME, without a password: name the environment
    variable that holds it with --password-env. Each run reads from the saved watermark minus
    --overlap (on the hour) and replaces what it re-read: re-runs never duplicate requests.
    Only counts, costs and identifiers are read; messages and responses never are.

    \b
    Examples:
      finops ingest litellm postgresql://litellm@db.internal:5432/litellm --password-env LITELLM_DB_PASSWORD
      finops ingest litellm postgresql://litellm@127.0.0.1/litellm --since 2026-07-01 --overlap 3h
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    source = sources.source(
        "litellm", [dsn], password_env=password_env, since=since, overlap=_parse_overlap(overlap), page_size=page_size
    )
    with _progress() as callback:
        report = sources.ingest(wh, source, progress=callback)
    r = report.result
    window = f"from {report.since:%Y-%m-%d %H:%M}" if report.since else "whole table"
    console.print(
        f"{escape(report.source)} ({window}): [bold]{r.rows_read:,}[/] requests read in {report.pages} page(s), "
        f"[green]{report.new_requests:,} new[/], {r.rows_replaced:,} re-read and replaced, "
        + (f"[red]{r.rows_quarantined:,} quarantined[/]" if r.rows_quarantined else "0 quarantined")
        + f" (batch {r.batch_id})"
    )
    if report.totals.height:
        table = Table(title="Loaded, by provider and model", title_justify="left")
        for column in ("provider", "model", "cost source", "requests", "input", "cached", "output", "cost (USD)"):
            table.add_column(column, justify="left" if column in ("provider", "model", "cost source") else "right")
        for row in report.totals.iter_rows(named=True):
            table.add_row(
                escape(row["provider"] or ""), escape(row["model"] or ""), row["cost_source"] or "", f"{row['requests']:,}",
                f"{row['input_tokens'] or 0:,}", f"{row['cached_input_tokens'] or 0:,}", f"{row['output_tokens'] or 0:,}",
                _money(row["cost"]),
            )  # fmt: skip
        console.print(table)
    if r.rows_quarantined:
        console.print(f"[red]Quarantined rows[/] (first {report.quarantine_sample.height}):")
        for row in report.quarantine_sample.iter_rows(named=True):
            console.print(f"  row {row['row_number']}: {row['reason']}", markup=False)
        console.print(f"  all of them: finops quarantine --batch {r.batch_id}", style="dim")
    if report.watermark:
        console.print(f"Watermark: {report.watermark} (next run re-reads from {overlap} before it)", style="dim")
    console.print(f"Warehouse: {wh.path}")


@ingest.command("prices")
@click.argument("paths", nargs=-1)
@click.option("--format", "price_format", type=click.Choice(["litellm", "csv"]), default=None,
              help="Price file format [default: by extension: .json litellm, .csv csv].")  # fmt: skip
@warehouse_option
def ingest_prices(paths: tuple[str, ...], price_format: str | None, warehouse_path: Path | None) -> None:
    """Load per-token model prices: a LiteLLM price map or our negotiated-price overrides CSV.

    With no PATH, the LiteLLM snapshot bundled with finops. A LiteLLM map is LiteLLM's
    model_prices_and_context_window.json. The overrides CSV has columns provider, model and
    any of input, cached_input, cache_write, cache_write_1h, output, reasoning, input_batch,
    output_batch, input_priority, output_priority (USD per 1M tokens), long_context_threshold
    (tokens), input_above_threshold, output_above_threshold (per 1M), per_request (USD),
    valid_from, valid_to (YYYY-MM-DD, valid_to exclusive) and currency (USD). Overrides win
    over LiteLLM prices for the same model and date; a CSV is each model's whole price history.

    \b
    Examples:
      finops ingest prices
      finops ingest prices model_prices_and_context_window.json negotiated_prices.csv
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    with _progress() as callback:
        loads = sources.ingest(wh, sources.source("prices", paths, format=price_format), progress=callback)
    for load in loads:
        r = load.result
        console.print(
            f"{escape(str(load.path))} ({load.format}): [bold]{r.rows_read:,}[/] prices read, "
            f"[green]{r.rows_loaded:,} loaded[/], "
            + (f"[red]{r.rows_quarantined:,} quarantined[/]" if r.rows_quarantined else "0 quarantined")
            + (f", {load.skipped_entries:,} entries without a per-token price skipped" if load.skipped_entries else "")
            + f" (batch {r.batch_id})"
        )
        if r.rows_quarantined:
            console.print(f"[red]Quarantined rows[/] (first {load.quarantine_sample.height}):")
            for row in load.quarantine_sample.iter_rows(named=True):
                console.print(f"  {row['file']} row {row['row_number']}: {row['reason']}", markup=False)
            console.print(f"  all of them: finops quarantine --batch {r.batch_id}", style="dim")
    console.print(f"Warehouse: {wh.path}")


@ingest.command("otel")
@click.argument("paths", nargs=-1, required=True)
@warehouse_option
def ingest_otel(paths: tuple[str, ...], warehouse_path: Path | None) -> None:
    """Load model calls from OpenTelemetry GenAI span exports (OTLP JSON): files, directories or globs.

    Every model call is loaded and priced, as the OTel GenAI conventions, OpenLLMetry, OpenInference
    (CrewAI, LlamaIndex, OpenAI Agents SDK, Google ADK, AutoGen, …), PydanticAI/Logfire and the
    Vercel AI SDK write them (gen_ai.usage.input_tokens or prompt_tokens, llm.token_count.*,
    ai.usage.*); agent, workflow and aggregate spans with usage totals are never counted again.
    Each call's task is its trace, its agent the nearest agent span. Load all files of a trace
    together. Re-loading never duplicates a call. No prompt or completion text is read.

    \b
    Example:
      finops ingest otel 'traces/otel-*.jsonl'
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    with _progress() as callback:
        report = sources.ingest(wh, sources.source("otel", paths), progress=callback)
    _print_trace_ingest(report, wh)


@ingest.command("langfuse")
@click.argument("paths", nargs=-1, required=True)
@warehouse_option
def ingest_langfuse(paths: tuple[str, ...], warehouse_path: Path | None) -> None:
    """Load model calls from Langfuse exports (traces, observations; JSON or JSON lines): files, directories or globs.

    Every GENERATION and EMBEDDING observation is loaded with its usage and Langfuse's cost
    (kept as reported; ours is computed beside it); each trace is a task, its nearest AGENT
    observation the agent. Load a trace's files together. Re-loading never duplicates a call.
    No input or output content is read.

    \b
    Example:
      finops ingest langfuse exports/langfuse/*.json
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    with _progress() as callback:
        report = sources.ingest(wh, sources.source("langfuse", paths), progress=callback)
    _print_trace_ingest(report, wh)


def _print_trace_ingest(report: Any, wh: Any) -> None:
    r = report.result
    console.print(
        f"[bold]{r.rows_read:,}[/] model calls read, [green]{r.rows_loaded:,} loaded[/], "
        + (f"[red]{r.rows_quarantined:,} quarantined[/]" if r.rows_quarantined else "0 quarantined")
        + f" from {len(report.files)} file{'s' if len(report.files) != 1 else ''} (batch {r.batch_id})"
    )
    if r.rows_replaced:
        console.print(f"  replaced {r.rows_replaced:,} model calls loaded before (same span/observation ids)")
    if report.totals.height:
        table = Table(title="Loaded, by cost source", title_justify="left")
        for name in ("cost source", "calls", "input", "cached input", "output", "cost (USD)"):
            table.add_column(name, justify="left" if name == "cost source" else "right")
        for row in report.totals.iter_rows(named=True):
            table.add_row(
                row["cost_source"], f"{row['requests']:,}", f"{row['input_tokens'] or 0:,}",
                f"{row['cached_input_tokens'] or 0:,}", f"{row['output_tokens'] or 0:,}",
                f"{row['cost']:,.6f}" if row["cost"] is not None else "unpriced",  # model calls cost fractions of a cent
            )  # fmt: skip
        console.print(table)
    if r.rows_quarantined:
        console.print(f"[red]Quarantined[/] (first {report.quarantine_sample.height}):")
        for row in report.quarantine_sample.iter_rows(named=True):
            console.print(f"  {row['file']} line {row['row_number']}: {row['reason']}", markup=False)
        console.print(f"  all of them: finops quarantine --batch {r.batch_id}", style="dim")
    _print_trace_files(report.per_file)
    console.print(f"Warehouse: {wh.path}")


def _print_trace_files(per_file: Any) -> None:
    """Calls, tasks and cost of each file of a trace load (a file that held no model call shows zeros)."""
    if per_file.height == 0:
        return
    names = [Path(f).name for f in per_file["file"]]
    if len(set(names)) < len(names):  # same file name in several folders: show where
        names = [_display_path(f) for f in per_file["file"]]
    table = Table(title="Per file", title_justify="left")
    table.add_column("file", overflow="fold", min_width=min(max(map(len, names)), 36))
    for name in ("calls", "tasks", "agents", "cost (USD)", "unpriced", "quarantined"):
        table.add_column(name, justify="right", no_wrap=True)
    for name, row in zip(names, per_file.iter_rows(named=True), strict=True):
        table.add_row(
            escape(name), f"{row['calls']:,}", f"{row['tasks']:,}", f"{row['agents']:,}", f"{row['cost']:,.6f}",
            f"{row['unpriced_calls']:,}", f"[red]{row['quarantined']:,}[/]" if row["quarantined"] else "0",
        )  # fmt: skip
    console.print(table)


def _display_path(path: str) -> str:
    """``path`` relative to the working directory when it is under it (shorter in tables)."""
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(Path.cwd()))
    return path


def model_api_options(default_env: str, default_url: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--start, --end, --api-key-env and --base-url, shared by `ingest openai` and `ingest anthropic`."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option(
            "--base-url",
            default=None,
            metavar="URL",
            help=f"API root to call instead of {default_url} (e.g. a test server).",
        )(func)
        func = click.option(
            "--api-key-env",
            "api_key_env",
            required=True,
            metavar="VAR",
            help=f"Environment variable holding an organization admin key, e.g. {default_env} (never the key itself).",
        )(func)
        func = click.option(
            "--end", type=click.DateTime(["%Y-%m-%d"]), default=None,
            help="First UTC day NOT loaded (exclusive) [default: tomorrow, i.e. up to now].",
        )(func)  # fmt: skip
        return click.option(
            "--start", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First UTC day to load (YYYY-MM-DD)."
        )(func)

    return decorate


@ingest.command("openai")
@model_api_options("OPENAI_ADMIN_KEY", "https://api.openai.com")
@warehouse_option
def ingest_openai(start: Any, end: Any, api_key_env: str, base_url: str | None, warehouse_path: Path | None) -> None:
    """Load OpenAI organization usage (completions, embeddings) and costs, per day, project, model, key and user.

    Reads the Usage API and the Costs API for the UTC days [--start, --end). The Costs API's
    amounts are kept as reported cost, split over the usage rows of the same day, project and
    model; line items without usage (tools, fine-tuning, …) are their own rows. The days of the
    window replace what the warehouse held for them: re-running, or overlapping windows, never
    duplicate. The key is read from the variable --api-key-env names, and never printed.

    \b
    Example:
      export OPENAI_ADMIN_KEY=sk-admin-…
      finops ingest openai --start 2026-07-01 --end 2026-10-01 --api-key-env OPENAI_ADMIN_KEY
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    source = sources.source(
        "openai", start=start.date(), end=end.date() if end else None, api_key_env=api_key_env, base_url=base_url
    )
    with _progress() as callback:
        report = sources.ingest(wh, source, progress=callback)
    _print_model_api_ingest(report, wh, "OpenAI")


@ingest.command("anthropic")
@model_api_options("ANTHROPIC_ADMIN_KEY", "https://api.anthropic.com")
@warehouse_option
def ingest_anthropic(start: Any, end: Any, api_key_env: str, base_url: str | None, warehouse_path: Path | None) -> None:
    """Load Anthropic message usage and costs (Admin API), per day, workspace, model, key and tier.

    Reads the usage report (messages) and the cost report for the UTC days [--start, --end).
    Cost report amounts (cents) are kept as reported cost in dollars, split over the usage rows
    of the same day, workspace and model; web search and other non-token costs are their own
    rows. The days of the window replace what the warehouse held for them. The Admin key is read
    from the variable --api-key-env names, and never printed.

    \b
    Example:
      export ANTHROPIC_ADMIN_KEY=sk-ant-admin01-…
      finops ingest anthropic --start 2026-07-01 --end 2026-10-01 --api-key-env ANTHROPIC_ADMIN_KEY
    """
    from finops.ingest import sources

    wh = _warehouse(warehouse_path)
    source = sources.source(
        "anthropic", start=start.date(), end=end.date() if end else None, api_key_env=api_key_env, base_url=base_url
    )
    with _progress() as callback:
        report = sources.ingest(wh, source, progress=callback)
    _print_model_api_ingest(report, wh, "Anthropic")


def _print_model_api_ingest(report: Any, wh: Any, provider: str) -> None:
    r = report.result
    pages = sum(report.pages.values())
    console.print(
        f"{provider} {report.start} to {report.end} (exclusive): [bold]{r.rows_read:,}[/] rows read, "
        f"[green]{r.rows_loaded:,} loaded[/], "
        + (f"[red]{r.rows_quarantined:,} quarantined[/]" if r.rows_quarantined else "0 quarantined")
        + f" from {pages} page{'s' if pages != 1 else ''} (batch {r.batch_id})"
        + (f"; {report.retries} answer{'s' if report.retries != 1 else ''} retried" if report.retries else "")
    )
    console.print(
        f"  {report.usage_rows:,} usage rows; {report.cost_lines:,} cost lines: {report.cost_lines_matched:,} split over"
        f" usage of the same day, project and model, {report.cost_only_rows:,} loaded as cost-only rows",
        style="dim",
    )
    if r.rows_replaced:
        console.print(f"  replaced {r.rows_replaced:,} rows loaded before for the same days")
    if report.by_model.height:
        table = Table(title="Loaded, by model", title_justify="left")
        for name in (
            "model",
            "call type",
            "requests",
            "input",
            "cached input",
            "cache write",
            "output",
            "cost (USD)",
            "cost source",
        ):
            table.add_column(name, justify="left" if name in ("model", "call type", "cost source") else "right")
        for row in report.by_model.iter_rows(named=True):
            table.add_row(
                escape(row["model"] or "-"), row["call_type"] or "-",
                f"{row['requests']:,}" if row["requests"] is not None else "-",
                *(f"{row[c] or 0:,}" for c in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")),
                _money(row["cost"]) if row["cost"] is not None else "unpriced", row["cost_source"] or "-",
            )  # fmt: skip
        console.print(table)
    if r.rows_quarantined:
        console.print(f"[red]Quarantined[/] (first {report.quarantine_sample.height}):")
        for row in report.quarantine_sample.iter_rows(named=True):
            console.print(f"  {row['file']} row {row['row_number']}: {row['reason']}", markup=False)
        console.print(f"  all of them: finops quarantine --batch {r.batch_id}", style="dim")
    console.print(f"Warehouse: {wh.path}")


def _print_ingest(report: Any, wh: Any, *, title: str | None = None) -> None:
    r = report.result
    console.print(
        f"{title + ': ' if title else ''}[bold]{r.rows_read:,}[/] rows read, [green]{r.rows_loaded:,} loaded[/], "
        + (f"[red]{r.rows_quarantined:,} quarantined[/]" if r.rows_quarantined else "0 quarantined")
        + f" from {len(report.files)} file{'s' if len(report.files) != 1 else ''} (batch {r.batch_id})"
    )
    if r.rows_replaced:
        console.print(f"  replaced {r.rows_replaced:,} rows previously loaded for the same billing periods")
    ignored: dict[tuple[str, ...], list[str]] = {}  # one line per set of columns, not per file
    for file in report.files:
        if file.ignored_columns:
            ignored.setdefault(tuple(file.ignored_columns), []).append(file.path.name)
    for columns, names in ignored.items():
        shown = ", ".join(columns[:6]) + (" …" if len(columns) > 6 else "")
        where = names[0] if len(names) == 1 else f"{len(names)} files ({names[0]} …)"
        console.print(f"  {where}: ignored non-FOCUS columns {shown}", style="dim", markup=False)
    if report.period_totals.height:
        table = Table(title="Loaded, by billing period", title_justify="left")
        table.add_column("billing period")
        table.add_column("rows", justify="right")
        table.add_column("BilledCost", justify="right")
        table.add_column("EffectiveCost", justify="right")
        for row in report.period_totals.iter_rows(named=True):
            table.add_row(
                row["billing_period"], f"{row['rows']:,}", _money(row["billed_cost"]), _money(row["effective_cost"])
            )
        console.print(table)
    if r.rows_quarantined:
        console.print(f"[red]Quarantined rows[/] (first {min(r.rows_quarantined, report.quarantine_sample.height)}):")
        for row in report.quarantine_sample.iter_rows(named=True):
            console.print(f"  {row['file']} row {row['row_number']}: {row['reason']}", markup=False)
        console.print(f"  all of them: finops quarantine --batch {r.batch_id}", style="dim")
    console.print(f"Warehouse: {wh.path}")
