"""Write a report: markdown / CSV / JSON files under ``results/<ablation>/`` and rich tables in the terminal."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sigx.report.load import METRICS
from sigx.report.stats import Report
from sigx.runs import write_json_atomic, write_text_atomic

SHORT = {"final_reward": "final reward", "reward_auc": "reward AUC",
         "final_critique_accuracy": "critique acc.", "tokens_per_s": "tokens/s"}
VERDICT_STYLE = {"additive": "green", "synergistic": "cyan", "redundant": "magenta", "inconclusive": "yellow"}

HOW_TO_READ = """\
**How to read this report.**
*Cells*: each on/off combination of the techniques, mean over seeds with a 95% t-interval, best first.
*Effects*: the 2^k factorial analysis (OLS on factors coded -1/+1; effect = 2 x coefficient = mean with the term
"on" minus mean with it "off", averaged over the other factors). A main effect is what a technique adds on
average; a 2-way effect A x B is half the difference between A's effect with B on and with B off. p-values
are Holm-corrected over all terms. Orthogonality predicts real main effects and interactions near zero.
*Additivity*: for each set of techniques, the observed gain over the baseline against the sum of its members'
own gains; the gap (observed - sum) with a 95% bootstrap CI over seeds. *additive*: the whole CI lies within
+-{margin} (too small to matter); else *synergistic* / *redundant*: the CI lies above / below zero;
*inconclusive*: neither, and
"seeds to resolve" estimates the seeds per cell that would settle it (detect the gap at 80% power, or bound
it within the margin). With few seeds, bootstrap intervals are optimistic (they cannot be wider than the
spread of the seeds seen); read them together with the effects table's t-based intervals."""


def _num(x: float, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _signed(x: float, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def _mean_ci(row, metric: str) -> str:
    digits = 0 if metric == "tokens_per_s" else 3
    mean, low, high = row[metric], row[f"{metric}_low"], row[f"{metric}_high"]
    if math.isnan(mean):
        return "-"
    if math.isnan(low):
        return _num(mean, digits)
    return f"{_num(mean, digits)} [{_num(low, digits)}, {_num(high, digits)}]"


def _p(p: float) -> str:
    return "-" if math.isnan(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def cell_rows(report: Report) -> list[list[str]]:
    rows = []
    for i, row in report.cells.iterrows():
        runs = f"{row.runs}/{row.planned}" + (f" ({row.failed} failed)" if row.failed else "") + \
               (f" ({row.missing} missing)" if row.missing else "")
        name = row.combination + (f" **({row.mark})**" if row.mark else "")
        rows.append([str(i + 1), name, runs, *[_mean_ci(row, m) for m in METRICS]])
    return rows


def effect_rows(report: Report) -> list[list[str]]:
    rows = []
    for _, row in report.effects.table.iterrows():
        ci = "-" if math.isnan(row.ci_low) else f"[{_signed(row.ci_low)}, {_signed(row.ci_high)}]"
        significant = "" if math.isnan(row.p_holm) else ("yes" if row.p_holm < 0.05 else "no")
        rows.append([row.term, str(row.order), _signed(row.effect), _num(row.se), ci, _p(row.p), _p(row.p_holm),
                     significant])
    return rows


def additivity_rows(report: Report) -> list[list[str]]:
    rows = []
    for _, row in report.additivity.iterrows():
        if "gap" not in row or (isinstance(row.get("gap"), float) and math.isnan(row["gap"])):
            rows.append([row.techniques, "-", "-", "-", "-", row.verdict, "-"])
            continue
        ci = "-" if math.isnan(row.gap_low) else f"[{_signed(row.gap_low)}, {_signed(row.gap_high)}]"
        need = "-" if math.isnan(row.seeds_to_resolve) else f"{int(row.seeds_to_resolve)}"
        rows.append([row.techniques, _signed(row.observed_gain), _signed(row.sum_of_gains), _signed(row.gap), ci,
                     row.verdict, need])
    return rows


CELL_HEADER = ["#", "combination", "runs", *[f"{SHORT[m]} (95% CI)" for m in METRICS]]
EFFECT_HEADER = ["term", "order", "effect", "SE", "95% CI", "p", "p (Holm)", "significant"]
ADDITIVITY_HEADER = ["techniques", "observed gain", "sum of single gains", "gap", "gap 95% CI (bootstrap)",
                     "verdict", "seeds to resolve"]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def headline(report: Report) -> str:
    ab = report.ablation
    done = len(ab.done)
    seeds = sorted(ab.runs.seed.unique())
    return (f"{len(ab.factors)} factors ({', '.join(ab.factors)}), {len(seeds)} seed(s) per cell; "
            f"{done} of {len(ab.runs)} planned runs finished. Metric: `{report.metric}` ({METRICS[report.metric]}); "
            f"additivity margin +-{report.margin}.")


def markdown(report: Report, plots: list[Path]) -> str:
    ab = report.ablation
    parts = [f"# Ablation report: {ab.name}", "", f"Run store: `{ab.root}`. " + headline(report), ""]
    if report.notes:
        parts += ["**Notes.**", ""] + [f"- {n}" for n in report.notes] + [""]
    if report.effects.residual_df > 0:
        parts += [f"Pooled seed-to-seed standard deviation of `{report.metric}`: {report.effects.residual_sd:.4f} "
                  f"({report.effects.residual_df} residual degrees of freedom).", ""]
    parts += [HOW_TO_READ.format(margin=report.margin), "",
              "## Cells", "", _md_table(CELL_HEADER, cell_rows(report)), "",
              f"## Effects on `{report.metric}`", "", _md_table(EFFECT_HEADER, effect_rows(report)), "",
              f"## Additivity of `{report.metric}` gains", "", _md_table(ADDITIVITY_HEADER, additivity_rows(report)), "",
              "## Plots", ""]
    parts += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(parts) + "\n"


def as_json(report: Report) -> dict:
    records = lambda df: json.loads(df.to_json(orient="records"))  # noqa: E731  (NaN -> null)
    return {"ablation": report.ablation.name, "store": str(report.ablation.root), "metric": report.metric,
            "margin": report.margin, "notes": report.notes, "residual_sd": report.effects.residual_sd,
            "residual_df": report.effects.residual_df, "runs": records(report.ablation.runs),
            "cells": records(report.cells), "effects": records(report.effects.table),
            "additivity": records(report.additivity)}


def write_files(report: Report, out: Path, formats: list[str], plots: list[Path]) -> list[Path]:
    written = []
    if "md" in formats:
        write_text_atomic(out / "report.md", markdown(report, plots))
        written.append(out / "report.md")
    if "csv" in formats:
        for name, df in [("runs", report.ablation.runs), ("cells", report.cells), ("effects", report.effects.table),
                         ("additivity", report.additivity)]:
            write_text_atomic(out / f"{name}.csv", df.to_csv(index=False))
            written.append(out / f"{name}.csv")
    if "json" in formats:
        write_json_atomic(out / "report.json", as_json(report))
        written.append(out / "report.json")
    return written


def print_report(report: Report, console: Console) -> None:
    console.print(f"[bold]ablation {report.ablation.name}[/bold]: " + headline(report), highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    for title, header, rows in [("cells (mean [95% CI] over seeds)", CELL_HEADER, cell_rows(report)),
                                (f"effects on {report.metric}", EFFECT_HEADER, effect_rows(report)),
                                (f"additivity of {report.metric} gains", ADDITIVITY_HEADER, additivity_rows(report))]:
        table = Table(title=title, title_justify="left")
        for column in header:
            table.add_column(column)
        for row in rows:
            verdict = row[5] if header is ADDITIVITY_HEADER else None
            if verdict in VERDICT_STYLE:
                row = row[:5] + [f"[{VERDICT_STYLE[verdict]}]{verdict}[/]"] + row[6:]
            table.add_row(*[r.replace("**", "") for r in row])
        console.print(table)
