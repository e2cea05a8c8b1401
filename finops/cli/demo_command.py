"""`finops demo`: generate the sample company and load it through the same connectors as real exports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from finops.cli.options import _say_waiting, _warehouse, warehouse_option
from finops.cli.output import _print_frame, _progress, console


@click.command()
@click.option("--seed", type=int, default=None, help="Random seed of the sample company (default: its fixed seed).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/sample"),
    show_default=True,
    help="Where the sample company's exports are written.",
)
@click.option(
    "--fresh", is_flag=True, help="Delete the warehouse file first (waits until no other process has it open)."
)
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
