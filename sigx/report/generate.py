"""``generate_report``: one ablation store in, ``results/<ablation>/`` out (tables, PNGs) and the terminal view."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from sigx.report.load import load_ablation, load_archive
from sigx.report.plots import write_plots
from sigx.report.render import print_report, write_files
from sigx.report.stats import Report, build_report

FORMATS = ("md", "csv", "json")


def generate_report(store: str | Path, out_base: str | Path = "results", metric: str | None = None,
                    margin: float | None = None, formats: tuple[str, ...] = ("md",),
                    console: Console | None = None, recipe: str | Path | None = None) -> tuple[Report, list[Path]]:
    """``metric`` / ``margin`` None: the ones the recipe declares (else final_reward / 0.02, said so). With
    ``recipe``, ``store`` is an archived runs.csv (or the results folder holding one) made by that recipe."""
    if recipe is not None:
        store = Path(store)
        ablation = load_archive(store / "runs.csv" if store.is_dir() else store, recipe)
    else:
        ablation = load_ablation(store)
    report = build_report(ablation, metric, margin)
    out = Path(out_base) / ablation.name
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, out)
    written = write_files(report, out, list(formats), plots) + plots
    if console is not None:
        print_report(report, console)
    return report, written
