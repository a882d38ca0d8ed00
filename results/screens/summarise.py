"""Each technique's screens in one place: results/screens/<technique>/report.{md,json}.

Why: a technique's regime screen is several stores (a 2 x 2 of technique x staleness, then a larger staleness, a
band, a second warm start), each with its own `sigx report`. This reads those reports' report.json files (nothing
else: every number here is in them) and puts, per store, the term its declaration judges with the store's own
statistics (Holm over the store's terms, TOST at its margin, MDE), the technique's effect inside its regime as a
seed-paired contrast of two cells (same seeds, same warm start, so the seed is a pair; t-interval over seeds), and
the technique's mechanism diagnostics (the report's room rows). Which term and which cells are judged was fixed by
each recipe's declaration (its header); this file only names them.

Verdict of a judged term (the store's Holm): *positive* / *negative* when significant (by its sign); *null* when
shown within the margin (two one-sided tests, Holm); *unresolved* otherwise, with its MDE.

    python results/screens/summarise.py        # rewrites results/screens/<technique>/report.{md,json}
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent

class Screen(NamedTuple):
    """One store's screen: the term its declaration judges and the in-regime contrast of two of its cells (the
    reference cell from ``reference_folder``'s store where it is another's, with the same seeds and warm start)."""
    folder: str  # the store's report folder under results/screens
    regime: str  # as declared
    judged: str  # the term the declaration judges
    treated: str  # combination
    reference: str  # combination
    label: str
    note: str = ""
    reference_folder: str | None = None  # None: the same store
    exploratory: bool = False  # declared after a result: labelled so in the table


# Round 2 only: round 1 ran with the tokenizer bug.
SCREENS = {
    "search_p1": [
        Screen("search_p1/screen2-search_p1", "sparse reward: T2, 77% of episodes fail at step 0", "search_p1",
               "search_p1", "baseline", "Search-P1 vs GRPO, sparse"),
        Screen("search_p1/screen2-search_p1-dense", "dense reward: the same task on T1's 400-step warm start",
               "search_p1", "search_p1", "baseline", "Search-P1 vs GRPO, dense",
               note="the sparse - dense difference of the two effects: Welch, below"),
    ],
    "gcrl": [
        Screen("gcrl/screen2-gcrl", "a warm start whose critic judges above chance (W11)", "gcrl", "gcrl", "baseline",
               "GC-RL vs GRPO"),
    ],
    "sspo": [
        Screen("sspo/screen2-sspo", "staleness 0 vs 4", "sspo x staleness", "sspo+staleness=4", "staleness=4",
               "SSPO vs token-level PPO, 4 stale"),
        Screen("sspo/screen2-sspo-stale8", "staleness 8 (every cell)", "sspo", "sspo", "baseline",
               "SSPO vs token-level PPO, 8 stale"),
        Screen("sspo/screen2-sspo-tau", "a steeper gate (tau 10 / 10.5) at staleness 4; declared after SSPO's report",
               "sspo", "sspo", "baseline", "SSPO (tau 10) vs token-level PPO, 4 stale", exploratory=True),
    ],
    "sorl": [
        Screen("sorl/screen2-sorl", "staleness 0 vs 4", "sorl x staleness", "sorl+staleness=4", "staleness=4",
               "SORL (+-0.2) vs token-level PPO, 4 stale"),
        Screen("sorl/screen2-sorl-band", "SORL's band at staleness 4: +-0.2 (sigx's default) vs +-3e-4 (GSPO's)",
               "clip_eps", "sorl+clip_eps=0.0003", "staleness=4", "SORL (+-3e-4) vs token-level PPO, 4 stale",
               note="the contrast's reference cell is screen2-sorl's (same seeds and warm start)",
               reference_folder="sorl/screen2-sorl"),
        Screen("sorl/screen2-sorl-stale8", "staleness 8 (every cell)", "sorl", "sorl", "baseline",
               "SORL (+-0.2) vs token-level PPO, 8 stale"),
    ],
}


def read(folder: str) -> dict | None:
    path = HERE / folder / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def verdict(term: dict, margin: float, alpha: float) -> str:
    if term["p_holm"] < alpha:
        return "positive" if term["effect"] > 0 else "negative"
    if term.get("p_equivalent_holm", 1.0) < alpha:
        return f"null (within +-{margin:g})"
    return f"unresolved (MDE {term['mde']:.3f})"


def seed_values(report: dict, combination: str, metric: str) -> dict[int, float]:
    return {run["seed"]: run[metric] for run in report["runs"]
            if run["combination"] == combination and run["status"] == "done" and run[metric] is not None}


def paired(treated: dict[int, float], reference: dict[int, float]) -> dict:
    """Mean of the per-seed differences, with its 95% t-interval over the seeds both cells ran (scipy's paired t)."""
    seeds = sorted(set(treated) & set(reference))
    a, b = np.array([treated[s] for s in seeds]), np.array([reference[s] for s in seeds])
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    return {"seeds": seeds, "per_seed": [float(d) for d in a - b], "estimate": float((a - b).mean()),
            "ci_low": float(ci.low), "ci_high": float(ci.high), "treated_mean": float(a.mean()),
            "reference_mean": float(b.mean())}


def welch(a: dict, b: dict) -> dict:
    """The difference of two paired contrasts from independent stores (other warm starts): Welch's interval."""
    x, y = np.array(a["per_seed"]), np.array(b["per_seed"])
    test = stats.ttest_ind(x, y, equal_var=False)
    ci = test.confidence_interval(0.95)
    return {"estimate": float(x.mean() - y.mean()), "ci_low": float(ci.low), "ci_high": float(ci.high),
            "df": float(test.df), "p": float(test.pvalue)}


def screen_entry(screen: Screen) -> dict | None:
    report = read(screen.folder)
    if report is None:  # not run yet
        return None
    reference_report = report if screen.reference_folder is None else read(screen.reference_folder)
    metric, margin = report["metric"], report["margin"]
    term = next(t for t in report["effects"] if t["term"] == screen.judged)
    contrast = paired(seed_values(report, screen.treated, metric),
                      seed_values(reference_report, screen.reference, metric))
    return {"store": report["store"], "report": f"{screen.folder}/report.md", "exploratory": screen.exploratory,
            "regime": screen.regime, "warm_start": report["warm_start"], "metric": metric, "margin": margin,
            "declaration": report["declaration"],
            "runs": f"{sum(r['status'] == 'done' for r in report['runs'])} of {len(report['runs'])}",
            "judged_term": {k: term[k] for k in ("term", "effect", "ci_low", "ci_high", "p_holm",
                                                 "p_equivalent_holm", "mde")},
            "verdict": verdict(term, margin, report.get("alpha", 0.05)),
            "in_regime": {"contrast": screen.label, "treated": f"{report['store']}: {screen.treated}",
                          "reference": f"{reference_report['store']}: {screen.reference}", **contrast},
            "room": report["room"], "room_measures": report["room_measures"], "note": screen.note}


def fmt(x: float, signed: bool = True) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else (f"{x:+.3f}" if signed else f"{x:.3f}")


def markdown(technique: str, entries: list[dict], extra: dict) -> str:
    lines = [f"# {technique}: regime screens (round 2)", "",
             "Generated by `python results/screens/summarise.py` from each store's `sigx report` (report.json); "
             "the write-up is results/screens/README.md. The judged term and the in-regime contrast of each "
             "store are the ones its recipe declared. Verdict of the judged term (the store's Holm over its "
             "terms): positive / negative when significant, null when shown within the margin (TOST, Holm), "
             "unresolved otherwise (with its MDE). The in-regime contrast pairs two cells by seed (same seeds "
             "and warm start): mean of the per-seed differences, 95% t-interval over seeds.", "",
             "| store | regime | runs | judged term | effect, 95% CI | p (Holm) | verdict | in the regime | "
             "technique vs reference | paired difference, 95% CI |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        t, c = e["judged_term"], e["in_regime"]
        lines.append(f"| [{e['store']}]({e['report'].split('/', 1)[1]})"
                     f"{' (**exploratory**)' if e['exploratory'] else ''} | {e['regime']} | {e['runs']} | "
                     f"{t['term']} | {fmt(t['effect'])} [{fmt(t['ci_low'])}, {fmt(t['ci_high'])}] | "
                     f"{t['p_holm']:.3g} | **{e['verdict']}** | {c['contrast']} | "
                     f"{fmt(c['treated_mean'], False)} vs {fmt(c['reference_mean'], False)} | "
                     f"{fmt(c['estimate'])} [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}] |")
    lines.append("")
    for name, w in extra.items():
        lines += [f"{name}: {fmt(w['estimate'])} [{fmt(w['ci_low'])}, {fmt(w['ci_high'])}] (Welch, p "
                  f"{w['p']:.2g}).", ""]
    lines += ["## Mechanism diagnostics (each store's room table)", ""]
    for e in entries:
        measures = list(e["room_measures"])
        lines += [f"**{e['store']}**: {e['warm_start']}. {e['declaration']}", "",
                  "| runs | n | " + " | ".join(measures) + " |", "|---|---|" + "---|" * len(measures)]
        for row in e["room"]:
            lines.append(f"| {row['runs']} | {row['n']} | " + " | ".join(fmt(row.get(m), False) for m in measures)
                         + " |")
        lines.append("")
        if e["note"]:
            lines += [f"Note: {e['note']}.", ""]
    lines += ["Columns: " + "; ".join(f"*{m}*: {about}" for m, about in
                                       {k: v for e in entries for k, v in e["room_measures"].items()}.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    for technique, screens in SCREENS.items():
        entries = [e for screen in screens if (e := screen_entry(screen))]
        extra = {}
        if technique == "search_p1" and len(entries) >= 2:
            extra["Sparse minus dense, the difference of the two in-regime contrasts (other warm starts)"] = welch(
                entries[0]["in_regime"], entries[1]["in_regime"])
        (HERE / technique / "report.json").write_text(json.dumps(
            {"technique": technique, "screens": entries, "contrasts": extra}, indent=1, default=float) + "\n")
        (HERE / technique / "report.md").write_text(markdown(technique, entries, extra))
        print(f"{technique}: {len(entries)} screen(s) -> results/screens/{technique}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
