"""Write a report: markdown / CSV / JSON files under ``results/<ablation>/`` and rich tables in the terminal."""

from __future__ import annotations

import math
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from sigx.report.build import Report
from sigx.report.compare import Comparison
from sigx.report.keep import json_value, report_record
from sigx.report.metrics import METRICS, metric_description
from sigx.report.replication import summary_line
from sigx.runs import write_json_atomic, write_text_atomic

SHORT = {"final_reward": "final reward", "reward_auc": "reward AUC",
         "final_critique_accuracy": "critique acc.", "tokens_per_s": "tokens/s"}
VERDICT_STYLE = {"additive": "green", "synergistic": "cyan", "redundant": "magenta", "inconclusive": "yellow"}

HOW_TO_READ = """\
**How to read this report.**
*Cells*: each combination of factor levels, mean over seeds with a 95% t-interval, best first.
*Effects*: the factorial analysis: one OLS fit on factors coded -1 (off / reference level) and +1 (on /
treatment level), with the seed as a block (cells with the same seed share prompts and noise draws);
effect = 2 x coefficient = mean with the term "on" minus mean with it "off", averaged over the other factors.
A main effect is what a factor adds on average; a 2-way effect A x B is half the difference between A's effect
with B on and with B off. Standard errors weigh each run's own noise (HC2, Bell-McCaffrey df: where every run
weighs the same, as in a complete design's terms, the pooled ones). p-values are Holm-corrected over all terms.
*within +-{margin}*: the effect is shown smaller than the margin (equivalence: two one-sided tests, Holm over the
terms); only there does this report claim "no effect". *MDE* is the smallest true effect called significant
with 80% probability under that same Holm rule; an effect that is neither significant nor shown within the
margin is unresolved, not absent.
*Additivity*: for each set of techniques, in each regime, the observed gain over that regime's baseline against
the sum of its members' own gains; the gap (observed - sum) with a seed-paired 95% t-interval (each seed's own
estimate of the gap, so cells of unequal noise are weighed as they are; seeds - 1 degrees of freedom). Over the
family of all gaps (Holm): *additive* when the gap is shown within +-{margin}; else *synergistic* / *redundant*
when it is shown different from zero; else *inconclusive*, with the seeds per cell that would resolve it with the
probability given, if the true gap were the estimate (a guide: the estimate is noisy). With every gap null, a
false synergistic/redundant call anywhere in the table has probability <= 5%; with every gap at the margin, a
false additive call <= 5%. "x unpaired": the width of the same contrast's interval from the pooled fit without
seed blocks, relative to the one shown (above 1: what pairing on the seed buys; below 1, in a gap table: the
pooled variance understates these cells' noise). Tests use alpha = 0.05, or 0.05 / looks under a sequential
plan (the notes say so)."""


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
        rows.append([str(i + 1), name, runs, *[_mean_ci(row, m) for m in shown_metrics(report)]])
    return rows


def shown_metrics(report: Report) -> list[str]:
    """The cell table's metrics: the usual four, and the one analysed when it is another."""
    return list(dict.fromkeys([*METRICS, report.metric]))


def cell_header(report: Report) -> list[str]:
    return ["#", "combination", "runs", *[f"{SHORT.get(m, m)} (95% CI)" for m in shown_metrics(report)]]


def _ratio(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}x"


def _shown(p: float, alpha: float) -> str:
    return "" if math.isnan(p) else ("yes" if p < alpha else "no")


def effect_rows(report: Report) -> list[list[str]]:
    rows = []
    for _, row in report.effects.table.iterrows():
        ci = "-" if math.isnan(row.ci_low) else f"[{_signed(row.ci_low)}, {_signed(row.ci_high)}]"
        rows.append([row.term, row.role, _signed(row.effect), _num(row.se), ci, _p(row.p), _p(row.p_holm),
                     _shown(row.p_holm, report.alpha), _shown(row.p_equivalent_holm, report.alpha), _num(row.mde),
                     _ratio(row.unpaired_width_ratio)])
    return rows


def _seeds(row) -> str:
    need = row.get("seeds_to_resolve", math.nan)
    if need is None or math.isnan(need):
        return "-"
    return "> 1000" if math.isinf(need) else f"{int(need)} (P {row.resolve_probability:.2f})"


def additivity_rows(report: Report) -> list[list[str]]:
    rows = []
    for _, row in report.additivity.iterrows():
        if "gap" not in row or (isinstance(row.get("gap"), float) and math.isnan(row["gap"])):
            rows.append([row.regime, row.techniques, "-", "-", "-", "-", "-", "-", row.verdict, "-", "-", "-"])
            continue
        ci = "-" if math.isnan(row.gap_low) else f"[{_signed(row.gap_low)}, {_signed(row.gap_high)}]"
        rows.append([row.regime, row.techniques, _signed(row.observed_gain), _signed(row.sum_of_gains),
                     _signed(row.gap), ci, _p(row.p_holm), _p(row.p_equivalent_holm), row.verdict, _num(row.mde),
                     _ratio(row.unpaired_width_ratio), _seeds(row)])
    return rows


def room_rows(report: Report) -> list[list[str]]:
    return [[row.runs, str(row.n), *[_num(row[c]) for c in report.ablation.room]] for _, row in report.room.iterrows()]


def room_header(report: Report) -> list[str]:
    return ["runs", "n", *report.ablation.room]


def room_note(report: Report) -> str:
    """What each room column says, as the runs that recorded it described it."""
    return "; ".join(f"*{c}*: {about}" for c, about in report.ablation.room.items()) + "."


EFFECT_HEADER = ["term", "role", "effect", "SE", "95% CI", "p", "p (Holm)", "significant", "within margin",
                 "MDE (80%, Holm)", "x unpaired"]
#: what the additivity section says when the ablation crosses fewer than two techniques (a screen of one)
NO_SETS = "No set of two or more techniques is crossed in this ablation: there is no gain to add up."

ADDITIVITY_HEADER = ["regime", "techniques", "observed gain", "sum of single gains", "gap", "gap 95% CI (seed-paired)",
                     "p (Holm)", "p within margin (Holm)", "verdict", "MDE (80%, Holm)", "x unpaired",
                     "seeds to resolve (P)"]
VERDICT_COLUMN = ADDITIVITY_HEADER.index("verdict")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def headline(report: Report) -> str:
    ab = report.ablation
    done = len(ab.done)
    seeds = sorted(ab.runs.seed.unique())
    described = [f if ab.info[f].kind == "technique" else f"{f} {list(ab.info[f].levels)} ({ab.info[f].role})"
                 for f in ab.factors]
    return (f"{len(ab.factors)} factors ({', '.join(described)}), {len(seeds)} seed(s) per cell; "
            f"{done} of {len(ab.runs)} planned runs finished. Metric: `{report.metric}` ({metric_description(report.metric)}); "
            f"additivity margin +-{report.margin}.")


def control_lines(report: Report) -> list[str]:
    """The positive control(s): is an effect known to be real detected?"""
    lines = []
    for _, row in report.effects.table[report.effects.table.role == "control"].iterrows():
        found = "detected" if row.p_holm < report.alpha else "NOT detected: the set-up could not see a real effect"
        lines.append(f"Positive control `{row.term}`: effect {_signed(row.effect)} "
                     f"[{_signed(row.ci_low)}, {_signed(row.ci_high)}], Holm p {_p(row.p_holm)}: {found}.")
    return lines


def blocking_line(report: Report) -> str:
    ratios = report.effects.table.unpaired_width_ratio.dropna()
    if not len(ratios):
        return ""
    return (f"Blocking on the seed: the same intervals without seed blocks would be {ratios.median():.2f}x as wide "
            f"(median over terms; {ratios.min():.2f}x to {ratios.max():.2f}x).")


REPLICATION_HEADER = ["conclusion", "kind", "reference", "check estimate", "simultaneous 95% CI", "p (Holm)",
                      "outcome"]


def replication_rows(report: Report) -> list[list[str]]:
    rows = []
    for _, row in report.replication.table.iterrows():
        ci = "-" if math.isnan(row.ci_low) else f"[{_signed(row.ci_low)}, {_signed(row.ci_high)}]"
        reference = f"{_signed(row.reference_estimate)} ({row.reference_verdict})"
        rows.append([row.conclusion, row.kind, reference, _signed(row.estimate), ci, _p(row.p_holm), row.outcome])
    return rows


def replication_section(report: Report) -> list[str]:
    r = report.replication
    parts = [f"## Replication of `{r.reference}`'s conclusions", "",
             f"Reference: `{r.source}`. Its conclusions (every term it calls significant, every gap it calls "
             "synergistic or redundant) tested on this ablation: two-sided, Holm over those estimable here; "
             "*confirmed* = significant with the reference's sign, *contradicted* = with the other sign.", "",
             summary_line(r), ""]
    parts += [f"- {n}" for n in r.notes] + ([""] if r.notes else [])
    if len(r.table):
        parts += [_md_table(REPLICATION_HEADER, replication_rows(report)), ""]
    return parts


def markdown(report: Report, plots: list[Path]) -> str:
    ab = report.ablation
    parts = [f"# Ablation report: {ab.name}", "", report.declaration, "", headline(report), ""]
    if report.notes:
        parts += ["**Notes.**", ""] + [f"- {n}" for n in report.notes] + [""]
    if report.effects.residual_df > 0:
        parts += [f"Pooled seed-to-seed standard deviation of `{report.metric}`: {report.effects.residual_sd:.4f} "
                  f"({report.effects.residual_df} residual degrees of freedom).", ""]
    parts += [line for line in control_lines(report) + [blocking_line(report)] if line] + [""]
    parts += [HOW_TO_READ.format(margin=report.margin), "", "## Design", ""]
    parts += [f"- {line}" for line in ab.design.get("description") or ["full factorial"]] + [""]
    if ab.design.get("aliases"):
        parts += ["Aliases (each estimated term and the lowest-order terms it is confounded with):", ""]
        parts += [f"- {line}" for line in ab.design["aliases"]] + [""]
    gaps = additivity_rows(report)
    parts += ["## Cells", "", _md_table(cell_header(report), cell_rows(report)), "",
              "## Room for each mechanism", "", room_note(report), "", _md_table(room_header(report), room_rows(report)), "",
              f"## Effects on `{report.metric}`", "", _md_table(EFFECT_HEADER, effect_rows(report)), "",
              f"## Additivity of `{report.metric}` gains", "",
              _md_table(ADDITIVITY_HEADER, gaps) if gaps else NO_SETS, ""]
    if report.replication is not None:
        parts += replication_section(report)
    parts += ["## Plots", ""]
    parts += [f"![{p.stem}]({p.name})" for p in plots]
    parts += ["", "## Provenance", "", f"- {report.warm_start}"]
    parts += [f"- {line}" for line in report.batches or ["batches: not recorded"]]
    parts += [f"- this report: {_made_with(report)}"]
    if ab.recipe is not None:
        parts += ["", "The recipe, as the store holds it (every default filled in):", "", "```yaml",
                  yaml.safe_dump(ab.recipe, sort_keys=False).rstrip(), "```"]
    return "\n".join(parts) + "\n"


def _made_with(report: Report) -> str:
    made = report.provenance or {}
    libraries = ", ".join(f"{k} {v}" for k, v in (made.get("libraries") or {}).items() if v)
    return f"sigx commit {made.get('commit') or 'unknown'}, python {made.get('python')}, {libraries}"


def _records(df) -> list[dict]:
    """Rows as plain JSON values at full precision (a p-value of 1e-20 stays 1e-20), NaN as null."""
    return [{k: json_value(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def as_json(report: Report) -> dict:
    records = _records
    return {"ablation": report.ablation.name, "store": report.ablation.name, "metric": report.metric,
            "margin": report.margin, "declared": report.ablation.declared, "declaration": report.declaration,
            "batches": report.batches, "warm_start": report.warm_start, "provenance": report.provenance, "recipe": report.ablation.recipe,
            "notes": report.notes, "residual_sd": report.effects.residual_sd,
            "residual_df": report.effects.residual_df, "runs": records(report.ablation.runs),
            "design": report.ablation.design, "cells": records(report.cells),
            "effects": records(report.effects.table), "additivity": records(report.additivity),
            "room": records(report.room), "room_measures": report.ablation.room, "alpha": report.alpha,
            "covers": report_record(report),
            "seeds": report.ablation.seeds_analysed, "seed_subset": report.ablation.seed_subset,
            **({"replication": {"reference": report.replication.reference, "source": report.replication.source,
                                "family": report.replication.family, "notes": report.replication.notes,
                                "rows": records(report.replication.table)}}
               if report.replication is not None else {})}


def write_files(report: Report, out: Path, formats: list[str], plots: list[Path]) -> list[Path]:
    written = []
    if "md" in formats:
        write_text_atomic(out / "report.md", markdown(report, plots))
        written.append(out / "report.md")
    if "csv" in formats:
        for name, df in [("runs", report.ablation.runs), ("cells", report.cells), ("effects", report.effects.table),
                         ("additivity", report.additivity), ("room", report.room)] + \
                        ([("replication", report.replication.table)] if report.replication is not None else []):
            write_text_atomic(out / f"{name}.csv", df.to_csv(index=False))
            written.append(out / f"{name}.csv")
    write_json_atomic(out / "report.json", as_json(report))  # whatever --format asks: it records what the report
    written.append(out / "report.json")                       # covers, which the next report into OUT checks
    return written


def _rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    """One terminal table; a verdict column (additivity's) is coloured, markdown bold is dropped."""
    table = Table(title=title, title_justify="left")
    for column in header:
        table.add_column(column)
    for row in rows:
        verdict = row[VERDICT_COLUMN] if header is ADDITIVITY_HEADER else None
        if verdict in VERDICT_STYLE:
            row = row[:VERDICT_COLUMN] + [f"[{VERDICT_STYLE[verdict]}]{verdict}[/]"] + row[VERDICT_COLUMN + 1:]
        table.add_row(*[r.replace("**", "") for r in row])
    return table


def print_report(report: Report, console: Console) -> None:
    console.print(report.declaration.replace("`", ""), highlight=False)
    console.print(f"[bold]ablation {report.ablation.name}[/bold]: " + headline(report), highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    for line in control_lines(report) + [blocking_line(report)] + report.ablation.design.get("description", []):
        if line:
            console.print(line.replace("`", ""), highlight=False)
    tables = [("cells (mean [95% CI] over seeds)", cell_header(report), cell_rows(report)),
              ("room for each mechanism", room_header(report), room_rows(report)),
              (f"effects on {report.metric}", EFFECT_HEADER, effect_rows(report))]
    gaps = additivity_rows(report)
    for title, header, rows in tables:
        console.print(_rich_table(title, header, rows))
    if gaps:
        console.print(_rich_table(f"additivity of {report.metric} gains", ADDITIVITY_HEADER, gaps))
    else:
        console.print(NO_SETS, highlight=False)
    replication = report.replication
    if replication is not None:
        console.print(summary_line(replication).replace("`", ""), highlight=False)
        for note in replication.notes:
            console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        if len(replication.table):
            console.print(_rich_table(f"replication of {replication.reference}'s conclusions",
                                      REPLICATION_HEADER, replication_rows(report)))


# ------------------------------------------------------------------------------------- two stores compared
COMPARE_HEADER = ["term", "role", "effect in A", "effect in B", "seeds A / B", "B - A [95% CI]", "Holm p (differs)",
                  "Holm p (same)", "verdict"]


def comparison_rows(c: Comparison) -> list[list[str]]:
    rows = []
    for r in c.table.itertuples():
        ci = "" if math.isnan(r.ci_low) else f" [{_signed(r.ci_low)}, {_signed(r.ci_high)}]"
        rows.append([r.term, r.role, _signed(r.effect_a), _signed(r.effect_b), f"{r.seeds_a} / {r.seeds_b}",
                     _signed(r.difference) + ci, _p(r.p_holm), _p(r.p_same_holm), r.verdict])
    return rows


def comparison_lines(c: Comparison) -> list[str]:
    counts = c.table.verdict.value_counts()
    told = ", ".join(f"{counts[v]} {v}" for v in counts.index)
    lines = [f"A = `{c.a}`, B = `{c.b}`; metric `{c.metric}`, margin {c.margin:g}, alpha {c.alpha:g}. Each term's "
             "effect in B minus its effect in A, Welch's 95% interval over the two stores' per-seed estimates; "
             "verdicts Holm over the terms: *same within +-margin* (shown inside it, TOST), else *differs* (shown "
             f"non-zero), else *inconclusive*. {len(c.table)} term(s) compared: {told or 'none'}."]
    lines += [f"Only in `{name}` (not compared): {', '.join(terms)}." for name, terms in c.only_in.items()]
    return lines + c.notes


def comparison_markdown(c: Comparison) -> str:
    parts = [f"# `{c.b}` against `{c.a}`", ""] + [f"{line}\n" for line in comparison_lines(c)]
    parts += [_md_table(COMPARE_HEADER, comparison_rows(c)) if len(c.table) else "No term is estimated by both.", ""]
    return "\n".join(parts)


def comparison_json(c: Comparison) -> dict:
    return {"a": c.a, "b": c.b, "metric": c.metric, "margin": c.margin, "alpha": c.alpha, "only_in": c.only_in,
            "notes": c.notes, "rows": _records(c.table), "covers": c.covers}


COMPARISON_FILES = ("compare.md", "compare.csv")  # beside compare.json, which every comparison writes


def write_comparison(c: Comparison, out: Path, formats: list[str]) -> list[Path]:
    written = []
    if "md" in formats:
        write_text_atomic(out / "compare.md", comparison_markdown(c))
        written.append(out / "compare.md")
    if "csv" in formats:
        write_text_atomic(out / "compare.csv", c.table.to_csv(index=False))
        written.append(out / "compare.csv")
    write_json_atomic(out / "compare.json", comparison_json(c))  # whatever --format asks: see write_files
    written.append(out / "compare.json")
    return written


def print_comparison(c: Comparison, console: Console) -> None:
    for line in comparison_lines(c):
        console.print(line.replace("`", "").replace("*", ""), highlight=False)
    if len(c.table):
        console.print(_rich_table(f"{c.b} against {c.a}: {c.metric}", COMPARE_HEADER, comparison_rows(c)))
