"""`finops report …` (the quarterly review, department statements) and `finops run` (ingest all, then publish)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import polars as pl
from rich.markup import escape

from finops.cli.options import _engine, _quarter, _warehouse, config_option, engine_option, warehouse_option
from finops.cli.output import _print_frame, _progress, console, err_console
from finops.exceptions import FinopsError


@click.group()
def report() -> None:
    """Render the reports a CFO reads (self-contained HTML)."""


@report.command("quarterly")
@click.option(
    "--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]"
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
)
@click.option("--pdf", is_flag=True, help="Also print the review to PDF with headless Chromium.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes at once: with 2 or more the forecasts are fitted beside the notebook's kernel "
    "[default: the cores, at most 4].",
)
@warehouse_option
@config_option
@engine_option
def report_quarterly(
    quarter: str | None,
    out_dir: Path,
    pdf: bool,
    jobs: int | None,
    warehouse_path: Path | None,
    config_path: Path | None,
    engine: str | None,
) -> None:
    """Render the quarterly review to OUT/quarterly-review-QUARTER.html (and .pdf with --pdf)."""
    from finops.config import load_config, resolve_path
    from finops.reports import render as reporting

    config_file = resolve_path(config_path)
    config = load_config(config_file)  # fail here, with the line, rather than inside the notebook
    wh = _engine(warehouse_path, config, engine)
    chosen = _quarter(wh, quarter)
    console.print(f"Rendering the {chosen} quarterly review from {wh.path} ({wh.engine}) …")
    html = reporting.render_quarterly(
        chosen,
        warehouse=_warehouse(warehouse_path).path.resolve(),
        config=config_file.resolve() if config_file.exists() else None,
        out_dir=out_dir,
        engine=engine,
        jobs=jobs,
    )
    console.print(f"Quarterly review: [bold]{html}[/]")
    if pdf:
        console.print(f"PDF: [bold]{reporting.print_pdf(html)}[/]")


@report.command("departments")
@click.option(
    "--quarter", default=None, help="Quarter like 2026Q3 [default: the last complete quarter in the warehouse]"
)
@click.option(
    "--department", "departments", multiple=True, help="Only this department (repeat for more) [default: all]."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Statements rendered at once, each in its own kernel [default: the cores, at most 4].",
)
@warehouse_option
@config_option
@engine_option
def report_departments(
    quarter: str | None,
    departments: tuple[str, ...],
    out_dir: Path,
    jobs: int | None,
    warehouse_path: Path | None,
    config_path: Path | None,
    engine: str | None,
) -> None:
    """Render one statement per department to OUT/statements-QUARTER/, with an index.html."""
    from finops.config import load_config, resolve_path
    from finops.reports import render as reporting

    wh = _engine(warehouse_path, load_config(resolve_path(config_path)), engine)
    chosen = _quarter(wh, quarter)
    started = time.monotonic()
    with _progress() as progress:
        index = reporting.render_departments(
            chosen, warehouse=_warehouse(warehouse_path).path.resolve(), config=resolve_path(config_path).resolve(),
            out_dir=out_dir, departments=list(departments) or None, engine=engine, jobs=jobs,
            progress=lambda name, done, total: progress(f"statement: {name}", done, total),
        )  # fmt: skip
    console.print(f"Department statements {chosen}: [bold]{index}[/]  ({time.monotonic() - started:.0f}s)")


# -- run ----------------------------------------------------------------------------------


@click.command("run")
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
@engine_option
def run_command(
    quarter: str | None,
    out_dir: Path,
    allow_incomplete: bool,
    skip_reports: bool,
    warehouse_path: Path | None,
    config_path: Path | None,
    engine: str | None,
) -> None:
    """Ingest every [[sources]] of finops.toml in order, then publish the quarter's reports.

    A source that fails is reported in one line (secrets masked) and the others still load.
    Then the quarterly review and the department statements of --quarter (default: the last
    complete quarter) are rendered to OUT, unless their data is incomplete (a source failed
    in this run, or a billing account's charges stop short of the quarter's end): then they
    are withheld, unless --allow-incomplete. With engine = "spark" the warehouse is first
    exported to spark_data (a local folder), so the reports read what was just loaded. Relative paths in sources are relative to the
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
        if (engine or config.engine) == "spark" and ready.quarter is not None:
            _export_for_spark(wh, config, config_file)
        inputs = {"warehouse": wh.path.resolve(), "config": config_file.resolve(), "out_dir": out_dir, "engine": engine}
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


def _export_for_spark(wh, config, config_file: Path) -> None:
    """Refresh the Parquet export Spark reads, when it is a local folder (a remote one is the lake's job)."""
    from finops.warehouse.export import export_parquet

    if "://" in config.spark_data or config.spark_tables:
        console.print(
            f"engine = spark: reading {config.spark_data or 'the [spark_tables]'} as it is (not a local export)"
        )
        return
    target = config_file.resolve().parent / config.spark_data
    console.print(f"Exporting the warehouse for Spark to {target} …")
    with _progress() as callback:
        export_parquet(wh, target, progress=lambda name, done, total: callback(f"export: {name}", done, total))
