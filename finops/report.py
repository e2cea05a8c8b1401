"""Reports: run a notebook with parameters, publish it as one self-contained HTML file.

:func:`render_quarterly` is ``finops report quarterly``. It executes
``notebooks/quarterly_review.ipynb`` with papermill in a kernel on this interpreter, then
converts the executed notebook with the ``finops_report`` nbconvert template
(``finops/templates/finops_report``): no code, no prompts, Vega inlined once so the charts
draw with no network, a stylesheet that reads like a report.

A failed run publishes nothing: the HTML of that quarter is removed (a stale one would be
mistaken for this run's), the executed notebook is kept as ``….failed.ipynb`` for the
analyst, and :class:`~finops.exceptions.ReportError` names the cell and the error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import finops
from finops.exceptions import ReportError

QUARTERLY_NOTEBOOK = "quarterly_review.ipynb"
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
    quarter: str,
    *,
    warehouse: Path,
    config: Path | None,
    out_dir: Path,
    progress: bool = True,
    kernel_name: str | None = None,
    notebook: Path | None = None,
    timeout: int | None = 900,
) -> Path:
    """Execute the quarterly review for ``quarter`` and publish it as HTML; return the HTML path.

    Parameters
    ----------
    quarter
        A quarter label, ``"2026Q3"``; passed to the notebook as a string.
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

    Raises
    ------
    ReportError
        The notebook failed: the message names the cell and the error. No HTML is left for
        that quarter; the executed notebook is kept as ``quarterly-review-<quarter>.failed.ipynb``.
    """
    from finops.periods import Quarter

    label = Quarter.parse(quarter).label
    parameters = {
        "quarter": label,
        "warehouse": str(Path(warehouse).resolve()),
        "config": str(Path(config).resolve()) if config else "",
        "offline": True,
    }
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

    from finops.charts import vega_javascript

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


def _write_atomically(path: Path, text: str) -> None:
    """Write a temp file beside ``path`` and rename it over: a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
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
