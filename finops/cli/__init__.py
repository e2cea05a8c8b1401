"""The `finops` command: thin wrappers over the library, with friendly output.

Every command takes ``--warehouse PATH`` (else ``$FINOPS_WAREHOUSE``, else
``data/warehouse.duckdb``). Errors print one line and a hint and exit 1; ``--debug`` shows
the traceback.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from finops.exceptions import FinopsError
from finops.periods import Quarter

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

OUTPUT_FORMATS = ("table", "csv", "json")


def warehouse_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--warehouse",
        "warehouse_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="FINOPS_WAREHOUSE",
        default=None,
        help="DuckDB warehouse file [env FINOPS_WAREHOUSE; default data/warehouse.duckdb]",
    )(func)


def config_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="FINOPS_CONFIG",
        default=None,
        help="finops.toml with department mappings [env FINOPS_CONFIG; default ./finops.toml]",
    )(func)


def format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(OUTPUT_FORMATS),
        default="table",
        show_default=True,
        help="How to print the result.",
    )(func)


def _warehouse(path: Path | None, *, lock_timeout: float | None = None):
    from finops.warehouse import Warehouse

    return Warehouse(path, lock_timeout=lock_timeout, on_wait=_say_waiting)


def _say_waiting(why: str) -> None:
    """One line when a command pauses for a lock another process holds, so a wait never looks like a hang."""
    console.print(f"waiting: {escape(why)}", style="yellow")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="ai-finops-workbench")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """AI FinOps workbench: what AI costs, who spends it, and what next quarter will cost.

    \b
    Start with the sample company:
      finops demo                               build data/warehouse.duckdb
      finops report quarterly --quarter 2026Q3  render reports/quarterly-review-2026Q3.html
    """
    ctx.obj = {"debug": debug}


# -- ingest -----------------------------------------------------------------------------


@cli.group()
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
@click.option("--period", "periods", multiple=True, metavar="YYYY-MM", help="Billing period to load (repeat for more) [default: all].")
@click.option("--profile", default=None, help="AWS profile for S3 [default: the default credential chain].")
@click.option("--endpoint-url", default=None, metavar="URL", help="S3 endpoint to call instead of AWS's (e.g. a test server).")
@warehouse_option
def ingest_aws_cur(
    uris: tuple[str, ...], periods: tuple[str, ...], profile: str | None, endpoint_url: str | None, warehouse_path: Path | None
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
@click.option("--project", default=None, help="Project that runs and pays for the query [default: the table's project].")
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
@click.option("--services", required=True, help='Catalog services by name or id, comma-separated: "Vertex AI,Compute Engine".')
@click.option("--billing-account", default=None, help="Also store the projects of this billing account (01F3A2-9B7C4D-E5A610).")
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
@click.option("--overlap", default="1h", show_default=True, help="How far before the watermark each run re-reads (late rows).")
@click.option("--page-size", type=click.IntRange(1), default=200_000, show_default=True, help="Rows per page read from Postgres.")
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
            "--base-url", default=None, metavar="URL", help=f"API root to call instead of {default_url} (e.g. a test server)."
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
        for name in ("model", "call type", "requests", "input", "cached input", "cache write", "output", "cost (USD)", "cost source"):
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
    for file in report.files:
        if file.ignored_columns:
            shown = ", ".join(file.ignored_columns[:6]) + (" …" if len(file.ignored_columns) > 6 else "")
            console.print(f"  {file.path.name}: ignored non-FOCUS columns {shown}", style="dim")
    if report.period_totals.height:
        table = Table(title="Loaded, by billing period", title_justify="left")
        table.add_column("billing period")
        table.add_column("rows", justify="right")
        table.add_column("BilledCost", justify="right")
        table.add_column("EffectiveCost", justify="right")
        for row in report.period_totals.iter_rows(named=True):
            table.add_row(row["billing_period"], f"{row['rows']:,}", _money(row["billed_cost"]), _money(row["effective_cost"]))
        console.print(table)
    if r.rows_quarantined:
        console.print(f"[red]Quarantined rows[/] (first {min(r.rows_quarantined, report.quarantine_sample.height)}):")
        for row in report.quarantine_sample.iter_rows(named=True):
            console.print(f"  {row['file']} row {row['row_number']}: {row['reason']}", markup=False)
        console.print(f"  all of them: finops quarantine --batch {r.batch_id}", style="dim")
    console.print(f"Warehouse: {wh.path}")


# -- demo -------------------------------------------------------------------------------


@cli.command()
@click.option("--seed", type=int, default=None, help="Random seed of the sample company (default: its fixed seed).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/sample"),
    show_default=True,
    help="Where the sample company's exports are written.",
)
@click.option("--fresh", is_flag=True, help="Delete the warehouse file first (waits until no other process has it open).")
@click.option(
    "--exports",
    type=click.Choice(["native", "focus"]),
    default="native",
    show_default=True,
    help="Load the clouds' native exports (CUR 2.0, GCP billing export, Azure cost exports) or their FOCUS files.",
)
@warehouse_option
def demo(seed: int | None, out_dir: Path, fresh: bool, exports: str, warehouse_path: Path | None) -> None:
    """Generate the sample company's exports and load them into the warehouse.

    The company has six departments and 18 months of AI spend on AWS, Google Cloud, Azure,
    OpenAI and Anthropic, ending 2026-09-30, with one month restated after close. Its
    finops.toml is the one at the top of the repository. By default the clouds' spend is
    loaded from their native exports through the same connectors you would use (aws-cur,
    gcp-export, azure); `--exports focus` loads the FOCUS files of the same spend instead.
    Then the gateway's view of 2026-07..2026-09: LiteLLM spend logs (read from a throw-away
    Postgres it starts, or from the same rows on file when none can start), OpenAI usage and
    cost pages, and OTel traces of the support agent, runaway runs included.

    On a busy machine it waits, saying for whom, while another process holds the warehouse or
    another demo writes the same --out folder (up to 15 minutes; FINOPS_LOCK_TIMEOUT sets
    the seconds), then fails with one line naming that process.
    """
    import os

    from finops.demo import company as sample_company
    from finops.warehouse import ENV_LOCK_TIMEOUT

    # The demo is a batch job: on a busy machine it waits for other loads (and another demo
    # writing the same --out) rather than failing after the interactive default of 60 s.
    lock_timeout = float(os.environ.get(ENV_LOCK_TIMEOUT, DEMO_LOCK_TIMEOUT))
    wh = _warehouse(warehouse_path, lock_timeout=lock_timeout)
    with sample_company.output_lock(out_dir, timeout=lock_timeout, on_wait=_say_waiting):
        _demo(wh, seed, out_dir, fresh, exports)


DEMO_LOCK_TIMEOUT = 900.0
"""Seconds `finops demo` waits for a warehouse or --out folder that another process holds (FINOPS_LOCK_TIMEOUT overrides)."""


def _demo(wh: Any, seed: int | None, out_dir: Path, fresh: bool, exports: str) -> None:
    from finops.demo import company as sample_company

    if fresh:
        wh.delete()  # takes the write lock first: never deletes a warehouse another process has open
    started = time.monotonic()
    with console.status("generating the sample company …"):
        company = sample_company.generate(out_dir, **({"seed": seed} if seed is not None else {}))
    deliveries = company.native_deliveries if exports == "native" else company.deliveries
    console.print(f"Generated {sum(len(d.files) for d in deliveries)} {exports} export files in {out_dir}")
    with _progress() as callback:
        for delivery in deliveries:
            results = _load_delivery(wh, delivery, callback)
            loaded = sum(r.rows_loaded for r in results)
            replaced = sum(r.rows_replaced for r in results)
            replaced_text = f", replaced {replaced:,}" if replaced else ""
            console.print(f"  {delivery.label}: {loaded:,} rows loaded{replaced_text}", markup=False)
    _load_gateway(wh, out_dir, seed)
    totals = wh.query(
        "SELECT ProviderName AS provider, count(*) AS rows, sum(BilledCost) AS billed, sum(EffectiveCost) AS effective"
        " FROM charges GROUP BY ALL ORDER BY effective DESC"
    )
    _print_frame(totals, "table", title="The sample company's spend, all periods")
    console.print(f"Warehouse: {wh.path}  ({time.monotonic() - started:.1f}s)")
    console.print("Next: finops report quarterly --quarter 2026Q3")


def _load_gateway(wh: Any, out_dir: Path, seed: int | None) -> None:
    """Write and load the sample company's gateway data (after its bills): LiteLLM, OpenAI usage, OTel."""
    from finops.demo import gateway as sample_gateway

    with console.status("generating the gateway's spend logs, OpenAI usage pages and agent traces …"):
        files = sample_gateway.generate(out_dir, **({"seed": seed} if seed is not None else {}))
    with _progress() as callback:
        loads = sample_gateway.load(wh, files, progress=callback)
    for load in loads:
        replaced_text = f", replaced {load.rows_replaced:,}" if load.rows_replaced else ""
        console.print(f"  {load.label}: {load.rows_loaded:,} rows loaded{replaced_text}", markup=False)
        if load.note:
            console.print(f"    {load.note}", markup=False)


def _load_delivery(wh: Any, delivery: Any, progress: Any) -> list[Any]:
    """Load one sample-company delivery through the registry's connector of its kind; the batches' results.

    AWS and Azure deliveries load from their export root (manifests, export runs); the others from their files.
    """
    from finops.ingest import sources

    uris = [str(delivery.root)] if delivery.kind in ("aws-cur", "azure") else [str(f) for f in delivery.files]
    return list(sources.ingest_report(wh, sources.source(delivery.kind, uris), progress=progress).results)


# -- query ------------------------------------------------------------------------------


@cli.command()
@click.argument("sql")
@format_option
@warehouse_option
def query(sql: str, output_format: str, warehouse_path: Path | None) -> None:
    """Run read-only SQL on the warehouse.

    \b
    Example:
      finops query "SELECT ProviderName, sum(EffectiveCost) FROM charges GROUP BY ALL"
    """
    frame = _warehouse(warehouse_path).query(sql)
    _print_frame(frame, output_format)


@cli.command()
@click.option("--limit", type=int, default=20, show_default=True)
@format_option
@warehouse_option
def batches(limit: int, output_format: str, warehouse_path: Path | None) -> None:
    """List the most recent loads: source, status and row counts."""
    frame = _warehouse(warehouse_path).query(
        "SELECT batch_id, source_kind, status, rows_read, rows_loaded, rows_quarantined, rows_replaced,"
        " len(files) AS files, started_at, round(epoch(ended_at - started_at), 1) AS seconds, message"
        " FROM ingest_batches ORDER BY batch_id DESC LIMIT ?",
        [limit],
    )
    _print_frame(frame, output_format)


@cli.command()
@click.option("--batch", "batch_id", type=int, default=None, help="One batch (default: every batch).")
@click.option("--limit", type=int, default=100, show_default=True)
@format_option
@warehouse_option
def quarantine(batch_id: int | None, limit: int, output_format: str, warehouse_path: Path | None) -> None:
    """Show rows that could not be loaded, with file, row, column and reason."""
    frame = _warehouse(warehouse_path).query(
        "SELECT batch_id, file, row_number, column_name, reason, raw_row FROM quarantine"
        " WHERE ? IS NULL OR batch_id = ? ORDER BY batch_id DESC, file, row_number LIMIT ?",
        [batch_id, batch_id, limit],
    )
    _print_frame(frame, output_format)


@cli.command()
@click.option("--model", default=None, help="Only models whose name contains this text.")
@format_option
@warehouse_option
def prices(model: str | None, output_format: str, warehouse_path: Path | None) -> None:
    """List token prices in USD per 1M tokens (load them with `finops ingest prices`).

    \b
    Example:
      finops prices --model claude
    """
    from connectors import pricing

    frame = pricing.list_prices(_warehouse(warehouse_path), model)
    if output_format == "table":  # every digit of a price: the shared table format rounds to cents
        frame = frame.with_columns(
            pl.col(c).map_elements(lambda v: f"{v.normalize():f}", return_dtype=pl.String)
            for c in pricing.PRICE_COLUMNS
        )
    _print_frame(frame, output_format, title="Prices, USD per 1M tokens")


@cli.command()
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day (YYYY-MM-DD).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Day after the last (exclusive).")
@click.option("--unpriced", is_flag=True, help="List the models without a price and their token volume instead.")
@format_option
@warehouse_option
def reconcile(start: Any, end: Any, unpriced: bool, output_format: str, warehouse_path: Path | None) -> None:
    """Compare gateway/API cost (llm_requests) with the providers' bills (charges), per month.

    difference = billed − gateway; each llm_requests source is its own row (never added up).

    \b
    Examples:
      finops reconcile --start 2026-07-01 --end 2026-10-01
      finops reconcile --start 2026-07-01 --end 2026-10-01 --unpriced
    """
    from finops.analyses import reconcile as reconciling

    wh = _warehouse(warehouse_path)
    if unpriced:
        frame = reconciling.unpriced_usage(wh, start.date(), end.date())
        _print_frame(frame, output_format, title="Model calls without a price")
    else:
        frame = reconciling.gateway_vs_bill(wh, start.date(), end.date())
        _print_frame(frame, output_format, title="Gateway/API cost vs. the bill (USD)")


@cli.command()
@warehouse_option
def migrate(warehouse_path: Path | None) -> None:
    """Upgrade the warehouse's schema to this version of finops."""
    wh = _warehouse(warehouse_path)
    version = wh.migrate()
    console.print(f"{wh.path}: schema version {version}")


# -- chargeback ---------------------------------------------------------------------------


def _quarter(wh: Any, text: str | None, *, default: Callable[[Any], Quarter] | None = None) -> Quarter:
    """``--quarter`` as a Quarter; without it, ``default(wh)``: the last complete quarter in the warehouse
    unless the command plans ahead (forecast, budgets). The one place a command's default quarter is decided:
    analyses take the Quarter."""
    from finops.analyses.quarters import latest_complete_quarter

    if text:
        return Quarter.parse(text)
    return (default or latest_complete_quarter)(wh)


def _basis(config: Any, text: str | None) -> str:
    """``--basis``, else finops.toml's ``[allocation] basis`` (itself ``effective`` by default)."""
    return text or config.basis


@cli.command("chargeback")
@click.option("--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]")
@click.option("--basis", type=click.Choice(["effective", "billed"]), default=None,
              help="EffectiveCost (amortized) or BilledCost (as invoiced) [default: finops.toml's, else effective]")
@click.option("--reconcile", is_flag=True, help="Print the reconciliation to the invoices instead (per provider and month).")
@click.option("--detail", is_flag=True, help="Print every allocation (department, pool, rule, provider, service), unrounded.")
@format_option
@warehouse_option
@config_option
def chargeback_command(
    quarter: str | None, basis: str | None, reconcile: bool, detail: bool, output_format: str,
    warehouse_path: Path | None, config_path: Path | None,
) -> None:
    """Who pays what: one row per department and billing month, shared costs split, to the cent.

    Columns: department, month (YYYY-MM), direct_cost, shared_cost, total_cost. Each month's
    total_cost adds up to that month's bill exactly; Unallocated is a row of its own.

    \b
      finops chargeback --quarter 2026Q3
      finops chargeback --basis billed --format csv > chargeback.csv
      finops chargeback --reconcile
    """
    from finops.analyses import chargeback as charging
    from finops.config import load_config

    wh = _warehouse(warehouse_path)
    config = load_config(config_path)
    chosen = _quarter(wh, quarter)
    shown = _basis(config, basis)
    if reconcile:
        frame = charging.reconciliation(wh, config, chosen, basis=shown)  # type: ignore[arg-type]
        title = f"{chosen} invoices = departments + unallocated ({shown} cost, {config.currency})"
    elif detail:
        frame = charging.allocations(wh, config, chosen, basis=shown)  # type: ignore[arg-type]
        title = f"{chosen} allocations ({shown} cost, {config.currency})"
    else:
        frame = charging.chargeback(wh, config, chosen, basis=shown)  # type: ignore[arg-type]
        title = f"{chosen} chargeback ({shown} cost, {config.currency})"
    _print_frame(frame, output_format, title=title)


# -- forecasts and budgets ------------------------------------------------------------------


@cli.command("forecast")
@click.option("--quarter", default=None, help="Quarter like 2026Q4 [default: the quarter after the data's last day]")
@click.option("--by", type=click.Choice(["department", "workload"]), default="department", show_default=True)
@format_option
@warehouse_option
@config_option
def forecast_command(
    quarter: str | None, by: str, output_format: str, warehouse_path: Path | None, config_path: Path | None
) -> None:
    """Forecast a quarter's spend per department or workload class, with 80%/95% intervals.

    Totals sum the daily forecasts of the model the rolling-origin backtest chose per series
    (AutoETS, a 28-day average or the seasonal-naive baseline); mape is that backtest's error
    on weekly totals (%), beside the baseline's. A past quarter gets the forecast made at its start.

    \b
    Examples:
      finops forecast
      finops forecast --quarter 2026Q3 --by workload --format csv
    """
    from finops.analyses import forecast as forecasting
    from finops.config import load_config

    config = load_config(config_path)
    wh = _warehouse(warehouse_path)
    label = _quarter(wh, quarter, default=forecasting.quarter_to_plan)
    frame = forecasting.quarter_forecast(wh, config, by=by, quarter=label)  # type: ignore[arg-type]
    if output_format == "table":  # the columns that fit a terminal; csv and json keep every one
        frame = frame.select(
            pl.col("series").alias(by),
            "model",
            "forecast",
            "lo_95",
            "hi_95",
            mape_pct=pl.col("mape").round(1),
            baseline_mape_pct=pl.col("baseline_mape").round(1),
        )
    title = f"Forecast of {label} spend by {by} (USD; 95% interval; backtest MAPE of weekly totals)"
    _print_frame(frame, output_format, title=title)


@cli.command("budgets")
@click.option("--quarter", default=None, help="Quarter like 2026Q3 [default: the quarter of --as-of]")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day counted as spent (YYYY-MM-DD) [default: the warehouse's last day]",
)
@format_option
@warehouse_option
@config_option
def budgets_command(
    quarter: str | None, as_of: Any, output_format: str, warehouse_path: Path | None, config_path: Path | None
) -> None:
    """Budgets from finops.toml: burn to date, projected spend, run-out date and alerts.

    \b
    Examples:
      finops budgets --quarter 2026Q3 --as-of 2026-08-15
      finops budgets --quarter 2026Q4 --format json
    """
    from finops.analyses import budgets as budgeting
    from finops.analyses.forecast import data_range
    from finops.config import load_config

    config = load_config(config_path)
    wh = _warehouse(warehouse_path)
    day = as_of.date() if as_of else None
    label = _quarter(wh, quarter, default=lambda wh: Quarter.containing(day or data_range(wh)[1]))
    frame = budgeting.budget_status(wh, config, label, as_of=day)
    as_of_text = f" as of {frame['as_of'][0]}" if frame.height else ""
    if output_format == "table":  # the columns that fit a terminal; csv and json keep every one
        frame = frame.select(
            "department",
            scope=pl.concat_str(pl.col("provider"), pl.col("model"), separator=" ", ignore_nulls=True),
            budget="budget",
            spent="spent",
            burn_pct=pl.col("burn_pct").round(1),
            projected="projected",
            low_95="projected_lo_95",
            high_95="projected_hi_95",
            run_out="run_out_date",
            alerts="alerts",
        )
    _print_frame(frame, output_format, title=f"Budgets {label}{as_of_text} (USD)")


# -- anomalies ------------------------------------------------------------------------------


@cli.command()
@click.option("--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day (YYYY-MM-DD), with --end.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Day after the last (exclusive).")
@click.option("--agents", is_flag=True, help="Runaway agent tasks (llm_requests) instead of daily cost anomalies.")
@click.option("--basis", type=click.Choice(["effective", "billed"]), default=None, help="[default: finops.toml's]")
@click.option("--threshold", type=float, default=5.0, show_default=True, help="Robust sigmas above expected to flag.")
@click.option("--min-impact", type=str, default="250", show_default=True, help="Dollars above expected to flag.")
@format_option
@warehouse_option
@config_option
def anomalies(
    quarter: str | None,
    start: Any,
    end: Any,
    agents: bool,
    basis: str | None,
    threshold: float,
    min_impact: str,
    output_format: str,
    warehouse_path: Path | None,
    config_path: Path | None,
) -> None:
    """Days whose cost of a department × service is far above its baseline, or agent tasks that loop.

    The baseline follows the weekly rhythm and the trend of each series (see
    finops/analyses/anomalies.py); a day is flagged when it is both many robust sigmas and
    --min-impact dollars above expected. Each anomaly names the sub account, resource and
    SKU that explain most of it.

    \b
    Examples:
      finops anomalies --quarter 2026Q3
      finops anomalies --start 2026-08-01 --end 2026-09-01 --format csv
      finops anomalies --quarter 2026Q3 --agents
    """
    from finops.analyses import anomalies as detecting
    from finops.config import load_config, resolve_path
    from finops.exceptions import AnalysisError

    if (start is None) != (end is None) or (quarter and start is not None):
        raise click.UsageError("give either --quarter or both --start and --end (e.g. --quarter 2026Q3)")
    wh = _warehouse(warehouse_path)
    if start is not None:
        first, last = start.date(), end.date()
    else:
        chosen = _quarter(wh, quarter)
        first, last = chosen.start, chosen.end
    if agents:
        frame = detecting.agent_anomalies(wh, first, last)
        _print_frame(frame, output_format, title=f"Runaway agent tasks, {first} to {last} (exclusive)")
        return
    try:
        impact = Decimal(min_impact)
    except ArithmeticError as exc:
        raise AnalysisError(f"--min-impact {min_impact!r} is not a number", hint="e.g. --min-impact 500") from exc
    config = load_config(resolve_path(config_path))
    frame = detecting.cost_anomalies(
        wh, config, first, last, basis=_basis(config, basis), threshold=threshold, min_impact=impact
    )
    if output_format == "table":
        # the explaining resource ids are long: csv and json have them, with every share
        frame = frame.select("date", "department", "service", "expected", "actual", "impact", "score", "top_sku")
    _print_frame(frame, output_format, title=f"Cost anomalies, {first} to {last} (exclusive), USD")


# -- unit economics and savings ---------------------------------------------------------------


def _period(wh: Any, quarter: str | None, start: Any, end: Any) -> tuple[Any, Any, str]:
    """[start, end) from --start/--end, else --quarter, else the last complete quarter."""
    if (start is None) != (end is None):
        raise click.UsageError("give both --start and --end, or neither")
    if start is not None:
        if quarter:
            raise click.UsageError("give --quarter or --start/--end, not both")
        return start.date(), end.date(), f"{start:%Y-%m-%d} … {end:%Y-%m-%d}"
    chosen = _quarter(wh, quarter)
    return chosen.start, chosen.end, str(chosen)


@cli.command("unit-costs")
@click.option("--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day (YYYY-MM-DD), instead of --quarter.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Day after the last (exclusive).")
@click.option("--by", "by", type=click.Choice(["model", "department", "agent", "self-hosted"]), default="model", show_default=True,
              help="model: per provider and model; department; agent: cost per agent task; self-hosted: [[self_hosted]] models.")  # fmt: skip
@click.option("--grain", type=click.Choice(["month", "week"]), default=None, help="Also split by month or week.")
@click.option("--source", default=None, help="Count only this llm_requests source [default: one per provider, litellm first].")
@format_option
@warehouse_option
@config_option
def unit_costs(
    quarter: str | None,
    start: Any,
    end: Any,
    by: str,
    grain: str | None,
    source: str | None,
    output_format: str,
    warehouse_path: Path | None,
    config_path: Path | None,
) -> None:
    """Cost per 1M tokens (blended, input, output), per request, per agent task (USD).

    \b
    Examples:
      finops unit-costs --quarter 2026Q3
      finops unit-costs --quarter 2026Q3 --by department --grain month
      finops unit-costs --start 2026-08-01 --end 2026-09-01 --by agent
    """
    from finops.analyses import unit_economics
    from finops.config import load_config

    wh = _warehouse(warehouse_path)
    first, last, label = _period(wh, quarter, start, end)
    if by == "agent":
        frame = unit_economics.agent_task_unit_costs(wh, first, last, source=source, grain=grain)  # type: ignore[arg-type]
        title = f"Cost per agent task, {label} (USD)"
    elif by == "self-hosted":
        config = load_config(config_path)
        frame = unit_economics.self_hosted_unit_costs(wh, config, first, last, grain, source=source)  # type: ignore[arg-type]
        title = f"Self-hosted models: GPU cost per 1M tokens, {label} (USD)"
    else:
        config = load_config(config_path) if by == "department" else None
        group = ("department",) if by == "department" else ("provider", "model")
        frame = unit_economics.token_unit_costs(wh, first, last, by=group, grain=grain, source=source, config=config)  # type: ignore[arg-type]
        title = f"Unit costs per {by}, {label} (USD; per 1M tokens and per request)"
    if output_format == "table":  # unit costs need more than the shared table format's cents
        frame = frame.with_columns(
            pl.col(c).map_elements(lambda v: f"{v:,.4f}", return_dtype=pl.String)
            for c in frame.columns
            if c.startswith(("cost_per", "mean_task"))
        )
    _print_frame(frame, output_format, title=title)


@cli.command()
@click.option("--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]")
@format_option
@warehouse_option
@config_option
def savings(quarter: str | None, output_format: str, warehouse_path: Path | None, config_path: Path | None) -> None:
    """Savings what-ifs ranked by $ per quarter: caching, routing, batch, GPU tuning, commitments, on-prem.

    Each row states its assumptions (defaults from the seed articles); the savings overlap,
    so do not add them up. Change assumptions from Python: finops.analyses.whatif.savings_opportunities.

    \b
    Example:
      finops savings --quarter 2026Q3 --format csv
    """
    from finops.analyses import whatif
    from finops.config import load_config

    wh = _warehouse(warehouse_path)
    config = load_config(config_path)
    chosen = _quarter(wh, quarter)
    frame = whatif.savings_opportunities(wh, config, chosen)
    if output_format == "table":
        frame = frame.drop("assumptions")
    _print_frame(frame, output_format, title=f"Savings opportunities, {chosen} (USD; overlapping, do not add)")


# -- report -----------------------------------------------------------------------------


@cli.group()
def report() -> None:
    """Render the reports a CFO reads (self-contained HTML)."""


@report.command("quarterly")
@click.option("--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
)
@click.option("--pdf", is_flag=True, help="Also print the review to PDF with headless Chromium.")
@warehouse_option
@config_option
def report_quarterly(
    quarter: str | None, out_dir: Path, pdf: bool, warehouse_path: Path | None, config_path: Path | None
) -> None:
    """Render the quarterly review to OUT/quarterly-review-QUARTER.html (and .pdf with --pdf)."""
    from finops.config import load_config, resolve_path
    from finops.reports import render as reporting

    wh = _warehouse(warehouse_path)
    config_file = resolve_path(config_path)
    load_config(config_file)  # fail here, with the line, rather than inside the notebook
    chosen = _quarter(wh, quarter)
    console.print(f"Rendering the {chosen} quarterly review from {wh.path} …")
    html = reporting.render_quarterly(
        chosen,
        warehouse=wh.path.resolve(),
        config=config_file.resolve() if config_file.exists() else None,
        out_dir=out_dir,
    )
    console.print(f"Quarterly review: [bold]{html}[/]")
    if pdf:
        console.print(f"PDF: [bold]{reporting.print_pdf(html)}[/]")


@report.command("departments")
@click.option("--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]")
@click.option("--department", "departments", multiple=True, help="Only this department (repeat for more) [default: all].")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
)
@warehouse_option
@config_option
def report_departments(
    quarter: str | None, departments: tuple[str, ...], out_dir: Path, warehouse_path: Path | None,
    config_path: Path | None,
) -> None:
    """Render one statement per department to OUT/statements-QUARTER/, with an index.html."""
    from finops.config import resolve_path
    from finops.reports import render as reporting

    wh = _warehouse(warehouse_path)
    chosen = _quarter(wh, quarter)
    started = time.monotonic()
    with _progress() as progress:
        index = reporting.render_departments(
            chosen, warehouse=wh.path.resolve(), config=resolve_path(config_path).resolve(), out_dir=out_dir,
            departments=list(departments) or None,
            progress=lambda name, done, total: progress(f"statement: {name}", done, total),
        )  # fmt: skip
    console.print(f"Department statements {chosen}: [bold]{index}[/]  ({time.monotonic() - started:.0f}s)")


# -- run ----------------------------------------------------------------------------------


@cli.command("run")
@click.option("--quarter", default=None, help="Quarter of the reports, like 2026Q3 [default: the last complete one]")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Where the reports are published.",
)
@click.option("--allow-incomplete", is_flag=True, help="Publish the reports even when their data is incomplete.")
@click.option("--skip-reports", is_flag=True, help="Only ingest the sources.")
@warehouse_option
@config_option
def run_command(
    quarter: str | None,
    out_dir: Path,
    allow_incomplete: bool,
    skip_reports: bool,
    warehouse_path: Path | None,
    config_path: Path | None,
) -> None:
    """Ingest every [[sources]] of finops.toml in order, then publish the quarter's reports.

    A source that fails is reported in one line (secrets masked) and the others still load.
    Then the quarterly review and the department statements of --quarter (default: the last
    complete quarter) are rendered to OUT, unless their data is incomplete (a source failed
    in this run, or a billing account's charges stop short of the quarter's end): then they
    are withheld, unless --allow-incomplete. Relative paths in sources are relative to the
    config file's folder. Exit code 0 when every source loaded and every report was
    published, 1 otherwise. Meant for cron or a systemd timer (see the README).

    \b
    Examples:
      finops run
      finops run --quarter 2026Q3 --out /srv/reports
      finops run --skip-reports
    """
    from finops.analyses import quarters
    from finops.config import load_config, resolve_path
    from finops.exceptions import ConfigError
    from finops.ingest import sources as ingesting
    from finops.periods import Quarter
    from finops.reports import render as reporting

    chosen = Quarter.parse(quarter) if quarter else None  # a typo fails now, not after an hour of loading
    config_file = resolve_path(config_path)
    config = load_config(config_file, required=True)
    if not config.sources:
        raise ConfigError(
            f"{config_file}: no [[sources]] to run",
            hint="declare each export or API to load as a [[sources]] table (see the sample finops.toml)",
        )
    wh = _warehouse(warehouse_path)
    base_dir = config_file.resolve().parent
    runs = []
    for number, source in enumerate(config.sources, 1):
        console.print(f"[{number}/{len(config.sources)}] {escape(source.name)} ({source.kind}) …")
        with _progress() as callback:
            run = ingesting.run_source(wh, source, base_dir=base_dir, progress=callback)
        runs.append(run)
        if run.status == "failed":
            console.print(f"  [bold red]failed[/] after {run.seconds:.1f}s: {escape(run.error or '')}")
        else:
            replaced = f", {run.rows_replaced:,} replaced" if run.rows_replaced else ""
            quarantined = f", [red]{run.rows_quarantined:,} quarantined[/]" if run.rows_quarantined else ""
            note = f"; {escape(run.note)}" if run.note else ""
            console.print(f"  {run.rows_loaded:,} rows loaded{replaced}{quarantined} in {run.seconds:.1f}s{note}")

    published: list[dict[str, str]] = []
    if not skip_reports:
        ready = quarters.readiness(wh, chosen, runs)
        label = str(ready.quarter) if ready.quarter else "(no quarter)"
        for reason in ready.reasons:
            console.print(f"[yellow]incomplete:[/] {escape(reason)}")
        inputs = {"warehouse": wh.path.resolve(), "config": config_file.resolve(), "out_dir": out_dir}
        renders = {  # the cell-by-cell progress bar is for a terminal, not a cron log
            f"quarterly review {label}": lambda: reporting.render_quarterly(
                ready.quarter, **inputs, progress=err_console.is_terminal
            ),
            f"department statements {label}": lambda: reporting.render_departments(ready.quarter, **inputs),
        }
        for name, render in renders.items():
            if ready.quarter is None or (ready.reasons and not allow_incomplete):
                published.append({"report": name, "status": "withheld", "path": "data incomplete (see above)"})
                continue
            console.print(f"Rendering the {name} …")
            try:
                path = render()
            except FinopsError as exc:
                console.print(f"  [bold red]failed:[/] {escape(str(exc))}")
                published.append({"report": name, "status": "failed", "path": "see the error above"})
                continue
            status = "published (data incomplete)" if ready.reasons else "published"
            console.print(f"  {status}: {escape(str(path))}")
            published.append({"report": name, "status": status, "path": str(path)})

    summary = ingesting.runs_frame(runs).drop("kind", "rows_quarantined")
    short = pl.when(pl.col("detail").str.len_chars() > 70).then(pl.col("detail").str.slice(0, 69) + "…")
    _print_frame(summary.with_columns(detail=short.otherwise(pl.col("detail"))), "table", title="Sources")
    if published:
        _print_frame(pl.DataFrame(published), "table", title="Reports")
    failed = any(r.status == "failed" for r in runs) or any(not p["status"].startswith("published") for p in published)
    if failed:
        sys.exit(1)  # not ctx.exit: main() runs click with standalone_mode=False, which returns its code unused


# -- output helpers ---------------------------------------------------------------------


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _print_frame(frame: pl.DataFrame, output_format: str, *, title: str | None = None) -> None:
    if output_format == "csv":
        sys.stdout.write(frame.write_csv())
        return
    if output_format == "json":
        rows = frame.to_dicts()
        sys.stdout.write(json.dumps(rows, default=_json_default, indent=2) + "\n")
        return
    table = Table(title=title, title_justify="left")
    for name, dtype in frame.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    if frame.height == 0:
        console.print("(no rows)", style="dim")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,.2f}" if value == value.quantize(Decimal("0.0000000001")) else str(value)
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: JSON numbers would go through float
    return str(value)


class _progress:
    """A rich progress bar fed by a connector's progress(description, completed, total) calls."""

    def __enter__(self) -> Callable[[str, int, int], None]:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        )
        self._progress.__enter__()
        self._task = self._progress.add_task("loading", total=None)

        def update(description: str, completed: int, total: int) -> None:
            self._progress.update(self._task, description=description, completed=completed, total=total)

        return update

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning finops errors into one clear line and exit 1."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except FinopsError as exc:
        if debug:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        if exc.hint:
            err_console.print(f"[dim]hint: {escape(exc.hint)}[/]")
        sys.exit(1)
    except Exception as exc:  # an error we did not map: still one line unless --debug
        if debug:
            raise
        err_console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))}")
        err_console.print("[dim]hint: run again with --debug for the traceback, and please report it[/]")
        sys.exit(2)
