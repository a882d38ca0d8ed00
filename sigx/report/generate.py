"""One ablation store in, ``results/<ablation>/`` out (tables, PNGs) and the terminal view: ``prepare_report``
(the analysis, and whether its folder may take it), then ``write_report``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from sigx.report.build import Report, build_report
from sigx.report.keep import check_replaceable, remove_stale, report_record
from sigx.report.load import Ablation, load_ablation, load_archive
from sigx.report.plots import PLOT_FILES, write_plots
from sigx.report.render import print_report, write_files
from sigx.report.replication import read_reference, replication

FORMATS = ("md", "csv", "json")
REPORT_FILES = ("report.md", "runs.csv", "cells.csv", "effects.csv", "additivity.csv", "room.csv", "replication.csv")


def load_store(store: str | Path, recipe: str | Path | None = None) -> Ablation:
    """A run store, or with ``recipe`` an archived runs.csv (or the results folder holding one) made by it."""
    if recipe is not None:
        store = Path(store)
        return load_archive(store / "runs.csv" if store.is_dir() else store, recipe)
    return load_ablation(store)


def prepare_report(ablation: Ablation, out_base: str | Path = "results", metric: str | None = None,
                   margin: float | None = None, replicates: str | Path | None = None,
                   overwrite: bool = False) -> Report:
    """The report of one loaded ablation, after checking that it may be written to OUT/<ablation>/: a report
    already there is replaced only by an update of it, or with ``overwrite`` (sigx.report.keep); else ReportError.
    ``metric`` / ``margin`` None: the ones the recipe declares (else final_reward / 0.02, said so).
    ``replicates``: a reference report.json whose conclusions this ablation checks (sigx.report.replication).
    Separate from :func:`write_report` so that a command reporting several stores checks every folder before it
    writes any (a refusal of the second must not leave the first replaced)."""
    reference = read_reference(replicates) if replicates is not None else None  # a bad one fails first
    report = build_report(ablation, metric, margin)
    if reference is not None:
        report.replication = replication(report, reference, report.alpha)
    check_replaceable(Path(out_base) / ablation.name, "report.json", REPORT_FILES, report_record(report), overwrite)
    return report


def write_report(report: Report, out_base: str | Path = "results", formats: tuple[str, ...] = ("md",),
                 console: Console | None = None) -> tuple[list[Path], list[str]]:
    """Write a prepared report to OUT/<ablation>/ (the files written) and remove the earlier report's files this
    one does not write (their names: see sigx.report.keep.remove_stale)."""
    out = Path(out_base) / report.ablation.name
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, out)
    written = write_files(report, out, list(formats), plots) + plots
    removed = remove_stale(out, ("report.json",) + REPORT_FILES + PLOT_FILES, written)
    if console is not None:
        print_report(report, console)
    return written, removed

