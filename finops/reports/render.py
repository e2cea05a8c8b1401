"""Reports: run a notebook with parameters, publish it as one self-contained HTML file.

:func:`render_quarterly` is ``finops report quarterly``. It executes
``notebooks/quarterly_review.ipynb`` with papermill in a kernel on this interpreter, then
converts the executed notebook with the ``finops_report`` nbconvert template
(``finops/reports/templates/finops_report``): no code, no prompts, Vega inlined once so the charts
draw with no network, a stylesheet that reads like a report.

A failed run publishes nothing: the HTML of that quarter is removed (a stale one would be
mistaken for this run's), the executed notebook is kept as ``….failed.ipynb`` for the
analyst, and :class:`~finops.exceptions.ReportError` names the cell and the error.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import finops
from finops.exceptions import ReportError
from finops.periods import Quarter

QUARTERLY_NOTEBOOK = "quarterly_review.ipynb"
STATEMENT_NOTEBOOK = "department_statement.ipynb"
KERNEL_NAME = "finops"
TEMPLATE_NAME = "finops_report"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def notebook_path(name: str) -> Path:
    """A report notebook shipped with finops: ``notebooks/NAME`` in the repository.

    From an editable install (the repository) that is ``<repo>/notebooks``; a wheel carries
    the same files as ``finops/_notebooks``.
    """
    package_dir = Path(finops.__file__).resolve().parent
    for folder in (package_dir.parent / "notebooks", package_dir / "_notebooks"):
        if (folder / name).is_file():
            return folder / name
    raise ReportError(f"report notebook {name} not found next to the finops package ({package_dir})")


def report_paths(out_dir: Path, stem: str) -> dict[str, Path]:
    """Where a report's files go: ``html``, the executed ``notebook``, the ``failed`` notebook."""
    return {
        "html": out_dir / f"{stem}.html",
        "notebook": out_dir / f"{stem}.ipynb",
        "failed": out_dir / f"{stem}.failed.ipynb",
    }


def kernel_for_this_python() -> str:
    """A kernel name whose kernel runs on this interpreter (``sys.executable``).

    The venv's ``python3`` spec qualifies when its command is a bare ``python``/``python3``
    (jupyter_client replaces that with ``sys.executable``) or this interpreter itself.
    Otherwise (a ``python3`` spec of some other Python shadows it) a ``finops`` spec is
    installed into ``sys.prefix`` once and used.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    ours = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    for name in ("python3", KERNEL_NAME):
        with contextlib.suppress(NoSuchKernel):
            command = manager.get_kernel_spec(name).argv[0]
            if command in ours or _same_file(command, sys.executable):
                return name
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name=f"finops ({Path(sys.prefix).name})", prefix=sys.prefix)
    return KERNEL_NAME


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def render_quarterly(
    quarter: Quarter,
    *,
    warehouse: Path,
    config: Path | None,
    out_dir: Path,
    progress: bool = True,
    kernel_name: str | None = None,
    notebook: Path | None = None,
    timeout: int | None = 900,
    engine: str | None = None,
    jobs: int | None = None,
) -> Path:
    """Execute the quarterly review for ``quarter`` and publish it as HTML; return the HTML path.

    Parameters
    ----------
    quarter
        The quarter; passed to the notebook as its label, ``"2026Q3"`` (papermill parameters are text).
    warehouse
        The warehouse file the notebook reads.
    config
        The finops.toml to use; ``None`` runs with the defaults (no departments mapped).
    out_dir
        Folder for ``quarterly-review-<quarter>.html`` and the executed ``.ipynb``.
    progress
        Show papermill's cell progress bar.
    kernel_name
        Jupyter kernel to run; default: one running on this Python (:func:`kernel_for_this_python`).
    notebook
        Another notebook to run instead of ``notebooks/quarterly_review.ipynb`` (tests).
    timeout
        Seconds one cell may run; ``None`` for no limit.
    engine
        ``"duckdb"`` or ``"spark"`` for the notebook's analyses; default finops.toml's ``engine``
        (see :mod:`finops.warehouse.engine`).
    jobs
        Processes at once (default as :func:`render_departments`). With two or more, the
        review's forecasts are fitted in a second process while the kernel runs the cells
        before them (:mod:`finops.reports.prefetch`); the figures are the same.

    Raises
    ------
    ReportError
        The notebook failed: the message names the cell and the error. No HTML is left for
        that quarter; the executed notebook is kept as ``quarterly-review-<quarter>.failed.ipynb``.
    """
    label = quarter.label
    parameters = {
        "quarter": label,
        "warehouse": str(Path(warehouse).resolve()),
        "config": str(Path(config).resolve()) if config else "",
        "engine": engine or "",
        "offline": True,
    }
    helper = _start_forecasts(parameters) if notebook is None and _jobs(jobs, 2) > 1 else None
    try:
        return render_notebook(
            notebook or notebook_path(QUARTERLY_NOTEBOOK),
            f"quarterly-review-{label}",
            parameters,
            out_dir=out_dir,
            title=f"Quarterly AI spend review {label}",
            progress=progress,
            kernel_name=kernel_name,
            timeout=timeout,
        )
    finally:
        if helper is not None:
            _stop(helper)


def _start_forecasts(parameters: dict[str, Any]) -> subprocess.Popen[bytes] | None:
    """Start :mod:`finops.reports.prefetch` with the notebook's parameters; None if it cannot start."""
    command = [sys.executable, "-m", "finops.reports.prefetch"]
    for name in ("quarter", "warehouse", "config", "engine"):
        command += [f"--{name}", str(parameters[name])]
    try:
        # Its output is not the report's: a failed helper only means the kernel fits the forecasts itself.
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _stop(helper: subprocess.Popen[bytes]) -> None:
    """The notebook is done, so whatever the helper has not finished is no longer needed."""
    if helper.poll() is None:
        helper.terminate()
        try:
            helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()


def render_departments(
    quarter: Quarter,
    *,
    warehouse: Path,
    config: Path,
    out_dir: Path,
    departments: list[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    kernel_name: str | None = None,
    timeout: int | None = 900,
    engine: str | None = None,
    jobs: int | None = None,
) -> Path:
    """One statement per department for ``quarter``, and an index page linking them; return the index.

    Runs ``notebooks/department_statement.ipynb`` through papermill once per department of
    ``config`` (or the ``departments`` named) into ``out_dir/statements-QUARTER/``, as
    self-contained HTML, then writes ``index.html`` there: each department's charged total,
    direct and shared cost and change, with links, and the month's bill they add up to.

    A statement that fails stops the run with :class:`~finops.exceptions.ReportError` (see
    :func:`render_notebook`); the index is written only when every statement rendered.
    ``progress(department, done, total)`` is called as each statement is done. ``engine`` as in
    :func:`render_quarterly`.

    ``jobs``: statements rendered at once, each in its own process and kernel (default: the
    cores, at most 4; ``FINOPS_REPORT_JOBS``). The quarter's chargeback is computed once, here,
    before any kernel starts: the kernels read it from the result cache
    (:mod:`finops.analyses.cache`) instead of each computing the whole quarter again.
    """
    from finops.analyses import chargeback
    from finops.config import load_config
    from finops.warehouse.engine import open_engine

    label = quarter.label
    cfg = load_config(config, required=True)
    names = departments or cfg.department_names
    unknown = [n for n in names if n not in cfg.department_names]
    if unknown:
        raise ReportError(f"no department {', '.join(map(repr, unknown))} in {config}",
                          hint=f"departments: {', '.join(cfg.department_names)}")  # fmt: skip
    if not names:
        raise ReportError(f"{config} defines no departments", hint="add [[departments]] tables to finops.toml")
    folder = Path(out_dir) / f"statements-{label}"
    index_path = folder / "index.html"
    index_path.unlink(missing_ok=True)  # a stale index would link this run's half-made set
    wh = open_engine(cfg, warehouse, engine=engine)
    rows = chargeback.chargeback(wh, cfg, quarter)  # also warms the cache every statement reads
    previous = chargeback.chargeback(wh, cfg, quarter.previous())
    chargeback.allocations(wh, cfg, quarter)
    chargeback.allocations(wh, cfg, quarter.previous())
    common = {"quarter": label, "warehouse": str(Path(warehouse).resolve()), "config": str(Path(config).resolve()),
              "engine": engine or "", "offline": True}  # fmt: skip
    def task(name: str) -> dict[str, Any]:
        return {"notebook": notebook_path(STATEMENT_NOTEBOOK), "stem": f"statement-{label}-{_slug(name)}",
                "parameters": {"department": name, **common}, "out_dir": folder,
                "title": f"{name}: spend statement {label}", "progress": False, "kernel_name": kernel_name,
                "timeout": timeout}  # fmt: skip

    tasks = [(name, task(name)) for name in names]
    pages = _render_all(tasks, _jobs(jobs, len(tasks)), progress)
    _write_atomically(index_path, _statement_index(label, cfg.company_name, cfg.currency, rows, previous, pages))
    return index_path


def _jobs(jobs: int | None, tasks: int) -> int:
    if jobs is None:
        jobs = int(os.environ.get("FINOPS_REPORT_JOBS") or min(4, os.cpu_count() or 1))
    return max(1, min(jobs, tasks))


def _render_all(
    tasks: list[tuple[str, dict[str, Any]]], jobs: int, progress: Callable[[str, int, int], None] | None
) -> dict[str, Path]:
    """:func:`render_notebook` for each task, ``jobs`` at a time; the pages by name, in the tasks' order.

    Processes, not threads: papermill changes the working directory of its process while a
    notebook runs. The first failure cancels what has not started and is raised as it was.
    """
    import concurrent.futures
    import multiprocessing

    done: dict[str, Path] = {}
    if jobs == 1:
        for name, kwargs in tasks:
            done[name] = render_notebook(**kwargs)
            if progress:
                progress(name, len(done), len(tasks))
        return done
    # spawn: a fork of this process would copy DuckDB's and polars' threads in whatever state they are
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(_render_in_worker, kwargs): name for name, kwargs in tasks}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future]
            page, error = future.result()
            if error is not None:
                for other in futures:
                    other.cancel()
                raise ReportError(error[0], hint=error[1])
            done[name] = page
            if progress:
                progress(name, len(done), len(tasks))
    return {name: done[name] for name, _ in tasks}


def _render_in_worker(kwargs: dict[str, Any]) -> tuple[Path | None, tuple[str, str | None] | None]:
    """:func:`render_notebook` in a pool's process: the page, or the ReportError's message and hint
    (returned, not raised: an exception with keyword arguments does not cross processes intact)."""
    try:
        return render_notebook(**kwargs), None
    except ReportError as exc:
        return None, (str(exc), exc.hint)


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "department"


def _statement_index(label: str, company: str, currency: str, rows: Any, previous: Any, pages: dict[str, Path]) -> str:
    """The statements' index page: one self-contained HTML table, no scripts."""
    import html

    import polars as pl

    from finops.reports.narrative import format_money, format_percent

    quarter = rows.group_by("department").agg(
        pl.col("direct_cost").sum(), pl.col("shared_cost").sum(), pl.col("total_cost").sum()
    )
    before = dict(previous.group_by("department").agg(pl.col("total_cost").sum()).iter_rows())
    quarter = quarter.sort("total_cost", descending=True)
    body = []
    for name, direct, shared, total in quarter.iter_rows():
        page = pages.get(name)
        cell = f'<a href="{html.escape(page.name)}">{html.escape(name)}</a>' if page else html.escape(name)
        change = ""
        if before.get(name):
            change = format_percent(float((total - before[name]) / before[name] * 100), signed=True)
        body.append(
            f"<tr><td>{cell}</td><td>{format_money(direct, currency)}</td><td>{format_money(shared, currency)}</td>"
            f"<td>{format_money(total, currency)}</td><td>{change}</td></tr>"
        )
    bill = format_money(quarter["total_cost"].sum(), currency)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Department statements {label}</title>
<style>
body {{ font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ padding: .35rem .6rem; border-bottom: 1px solid #ddd; }}
th {{ text-align: left; }} td + td, th + th {{ text-align: right; font-variant-numeric: tabular-nums; }}
tfoot td {{ font-weight: 600; border-top: 2px solid #999; }} footer {{ color: #777; font-size: 12px; margin-top: 2rem; }}
</style></head><body>
<h1>Department statements, {label}</h1>
<p>{html.escape(company)} · what each department is charged for the quarter: its own spend (direct) and its
part of the shared pools. The rows add up to the quarter's bills; Unallocated is spend no rule places.</p>
<table><thead><tr><th>Department</th><th>Direct</th><th>Shared</th><th>Charged</th><th>Change vs previous quarter</th></tr></thead>
<tbody>{"".join(body)}</tbody>
<tfoot><tr><td>Total (the bills)</td><td></td><td></td><td>{bill}</td><td></td></tr></tfoot></table>
<footer>Generated {generated} by finops {_version()}</footer>
</body></html>
"""


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The headless browser PDFs and checks use: the first of :data:`BROWSERS` on PATH."""
    import shutil

    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def headless_browser_command(url: str, *actions: str, profile: Path) -> list[str]:
    """A headless Chromium command line that opens ``url``, lets scripts run (10 s of virtual
    time: the charts draw) and then does ``actions`` (``--print-to-pdf=…``, ``--screenshot=…``,
    ``--dump-dom``). Background network (updates, sync) is off; the report needs none."""
    browser = find_browser()
    if browser is None:
        raise ReportError("no Chromium found to print the PDF", hint="install chromium (Debian: apt-get install chromium)")
    return [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=10000", *actions, url,
    ]  # fmt: skip


def print_pdf(html_path: Path, pdf_path: Path | None = None, *, timeout: int = 180) -> Path:
    """Print a published report to PDF with headless Chromium (the same page a reader opens).

    Returns the PDF's path (default: the HTML's with ``.pdf``). Written atomically: a failed
    print leaves no PDF.
    """
    import subprocess

    html_path = Path(html_path).resolve()
    pdf_path = Path(pdf_path or html_path.with_suffix(".pdf")).resolve()
    with tempfile.TemporaryDirectory(prefix="finops-pdf-") as scratch:
        partial = Path(scratch) / pdf_path.name
        command = headless_browser_command(
            html_path.as_uri(), f"--print-to-pdf={partial}", "--no-pdf-header-footer", profile=Path(scratch) / "profile"
        )
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ReportError(f"printing {html_path.name} to PDF took over {timeout} s; no PDF was written") from None
        if not partial.exists() or partial.stat().st_size == 0:
            detail = _one_line(done.stderr.strip().splitlines()[-1]) if done.stderr.strip() else f"exit {done.returncode}"
            raise ReportError(f"Chromium could not print {html_path.name} to PDF: {detail}")
        _write_atomically(pdf_path, partial.read_bytes())
    return pdf_path


def render_notebook(
    notebook: Path,
    stem: str,
    parameters: dict[str, Any],
    *,
    out_dir: Path,
    title: str,
    progress: bool = True,
    kernel_name: str | None = None,
    timeout: int | None = 900,
) -> Path:
    """Run ``notebook`` with ``parameters`` and publish ``out_dir/STEM.html``; see :func:`render_quarterly`."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # Absolute: papermill changes the working directory to `cwd` while the notebook runs.
    out_dir = Path(out_dir).resolve()
    notebook = Path(notebook).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = report_paths(out_dir, stem)
    # Our own ipykernel: keep its start-up chatter (a warning about local TCP) off the terminal.
    quiet = {} if kernel_name else {"extra_arguments": ["--IPKernelApp.log_level=ERROR"]}
    try:
        papermill.execute_notebook(
            input_path=str(notebook),
            output_path=str(paths["notebook"]),
            parameters=parameters,
            kernel_name=kernel_name or kernel_for_this_python(),
            progress_bar=progress,
            cwd=str(notebook.parent),  # the notebook's own relative paths work as in JupyterLab
            execution_timeout=timeout,
            **quiet,
        )
    except PapermillExecutionError as exc:
        failed = _keep_failed(paths)
        raise ReportError(
            f"{notebook.name}: cell {exc.cell_index} ({_first_line(exc.source)}) failed with "
            f"{exc.ename}: {_one_line(exc.evalue)}. Nothing was published; the executed notebook, "
            f"with the traceback, is {failed}",
            hint="open that notebook in JupyterLab to see the failing cell in context",
        ) from exc
    except Exception as exc:  # kernel died, cell timeout, kernel not found, …
        failed = _keep_failed(paths)
        where = f"; the executed notebook is {failed}" if failed.exists() else ""
        raise ReportError(
            f"{notebook.name} could not be run: {type(exc).__name__}: {_one_line(str(exc))}."
            f" Nothing was published{where}",
            hint="check that the notebook's kernel starts (`jupyter kernelspec list`) and the notebook opens",
        ) from exc
    except BaseException:  # Ctrl-C: an interrupted run is a failed run
        _keep_failed(paths)
        raise

    paths["failed"].unlink(missing_ok=True)
    try:
        html = export_html(paths["notebook"], title=title)
    except Exception as exc:
        paths["html"].unlink(missing_ok=True)
        raise ReportError(
            f"{notebook.name} ran, but converting it to HTML failed: {type(exc).__name__}: {_one_line(str(exc))}."
            f" Nothing was published; the executed notebook is {paths['notebook']}",
        ) from exc
    _write_atomically(paths["html"], html)
    return paths["html"]


def export_html(executed: Path, *, title: str) -> str:
    """An executed notebook as the report page: outputs only, Vega inlined once."""
    import nbformat

    from finops.reports.charts import vega_javascript

    nb = nbformat.read(executed, as_version=4)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    resources = {
        "metadata": {"name": title},
        "finops_vega_js": vega_javascript(),
        "finops_footer": f"{title} · generated {generated} by finops {_version()}",
    }
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    return body


def _exporter() -> Any:
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    return HTMLExporter(
        # Pygments styles are for code, and the report shows none.
        config=Config({"CSSHTMLHeaderPreprocessor": {"enabled": False}}),
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(TEMPLATES_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        # Chart outputs are our own scripts; sanitising would strip them.
        sanitize_html=False,
    )


def _keep_failed(paths: dict[str, Path]) -> Path:
    """After a failed run: no HTML for the quarter; the executed notebook renamed ``.failed.ipynb``."""
    paths["html"].unlink(missing_ok=True)
    if paths["notebook"].exists():
        os.replace(paths["notebook"], paths["failed"])
    return paths["failed"]


def _write_atomically(path: Path, content: str | bytes) -> None:
    """Write a temp file beside ``path`` and rename it over: a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _first_line(source: str) -> str:
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return repr(line if len(line) <= 80 else line[:77] + "...")


def _one_line(text: str) -> str:
    from papermill.exceptions import strip_color

    flat = " ".join(strip_color(str(text)).split())
    return flat if len(flat) <= 300 else flat[:297] + "..."


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-finops-workbench")
    except PackageNotFoundError:
        return "dev"
