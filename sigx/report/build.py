"""``build_report``: one ablation's report assembled from its parts (the analysis declared or chosen, the cell
table, effects, additivity gaps, room, batches and warm start), with the notes a reader needs first (damage,
unfinished and failed runs, the sequential plan's level). The statistics are sigx.report.stats's; the
rendering sigx.report.render's."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from sigx.provenance import provenance
from sigx.report.batches import batch_lines, warm_start_line
from sigx.report.load import Ablation, ReportError, numeric_metrics
from sigx.report.stats import (ALPHA, Effects, additivity_table, cell_table, factorial_effects, fit_model,
                               room_table, seed_fits)

DEFAULT_METRIC, DEFAULT_MARGIN = "final_reward", 0.02


@dataclass
class Replication:
    """A second ablation's check of a reference report's conclusions (sigx.report.replication computes it)."""
    reference: str  # the reference ablation's name
    source: str  # the file it was read from
    table: pd.DataFrame  # sigx.report.replication.COLUMNS
    family: int  # conclusions tested (estimable in the check)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    ablation: Ablation
    metric: str
    margin: float
    cells: pd.DataFrame
    effects: Effects
    additivity: pd.DataFrame
    room: pd.DataFrame
    notes: list[str]
    declaration: str = ""  # the report's first line: is this the analysis the recipe declared?
    alpha: float = ALPHA  # the level of every test (alpha / looks under a sequential plan)
    batches: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)  # what made the report (sigx commit, library versions)
    warm_start: str = ""  # the base model the runs started from
    replication: Replication | None = None  # with --replicates


def declaration_line(ab: Ablation, metric: str, margin: float) -> str:
    declared = ab.declared
    parts = []
    if declared["metric"] is None:
        parts.append(f"metric `{metric}` was NOT declared (the recipe sets no ablation.metric): chosen at report time")
    elif metric != declared["metric"]:
        parts.append(f"metric `{metric}` is NOT the declared one (`{declared['metric']}`, ablation.metric): chosen "
                     "at report time")
    else:
        parts.append(f"metric `{metric}` as declared in the recipe (ablation.metric)")
    if declared["margin"] is None:
        parts.append(f"margin +-{margin} not declared")
    elif margin != declared["margin"]:
        parts.append(f"margin +-{margin} is NOT the declared +-{declared['margin']}")
    else:
        parts.append(f"margin +-{margin} as declared")
    if ab.seed_subset:
        parts.append(ab.seed_subset)
    return "Analysis: " + "; ".join(parts) + "."


def build_report(ab: Ablation, metric: str | None = None, margin: float | None = None) -> Report:
    alpha = ab.alpha
    metric = metric or ab.declared["metric"] or DEFAULT_METRIC
    margin = margin if margin is not None else (ab.declared["margin"] or DEFAULT_MARGIN)
    available = numeric_metrics(ab.runs, ab.factors, ab.room)
    if metric not in available:
        raise ReportError(f"--metric: {metric!r} is no numeric summary key of {ab.name}'s runs; allowed: "
                          f"{', '.join(available)}")
    notes = [f"store damage: {line}" for line in ab.damage]
    missing = ab.runs[ab.runs.status == "missing"]
    failed = ab.runs[ab.runs.status == "failed"]
    if len(missing):
        notes.append(f"incomplete: {len(missing)} of {len(ab.runs)} planned runs have not finished: "
                     + ", ".join(missing.cell))
    if len(failed):
        notes.append(f"{len(failed)} run(s) failed and are left out: "
                     + "; ".join(f"{c} ({e})" for c, e in zip(failed.cell, failed.error)))
    if ab.done[metric].isna().all() and len(ab.done):
        notes.append(f"no finished run reports {metric}")
    model, unpaired = fit_model(ab, metric), fit_model(ab, metric, blocked=False)
    effects = factorial_effects(ab, metric, model, unpaired, margin, alpha)
    fits = seed_fits(ab, metric, model) if model.fit is not None else None
    if ab.sequential:
        notes.append(ab.sequential + f": every test of this report is at {alpha:.4g}")
    if fits is not None and fits.left_out:
        notes.append(f"seed(s) {', '.join(map(str, fits.left_out))} do not hold a full design of finished runs and "
                     "are left out of the seed-paired gap intervals")
    additivity = additivity_table(ab, metric, margin, model, unpaired, fits, alpha)
    return Report(ab, metric, margin, cell_table(ab, metric), effects, additivity, room_table(ab),
                  notes + effects.notes, declaration_line(ab, metric, margin), alpha, batch_lines(ab, metric, model),
                  provenance(threads=False), warm_start_line(ab))
