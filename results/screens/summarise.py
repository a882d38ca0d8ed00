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

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent

# technique -> its screens: (report folder, regime as declared, judged term, in-regime contrast (treated, reference)
# as (folder, combination) pairs, label of the contrast, note). Round 2 only: round 1 ran with the tokenizer bug.
SCREENS = {
    "search_p1": [
        ("search_p1/screen2-search_p1", "sparse reward: T2, 77% of episodes fail at step 0", "search_p1",
         (("search_p1/screen2-search_p1", "search_p1"), ("search_p1/screen2-search_p1", "baseline")),
         "Search-P1 vs GRPO, sparse", ""),
        ("search_p1/screen2-search_p1-dense", "dense reward: the same task on T1's 400-step warm start",
         "search_p1",
         (("search_p1/screen2-search_p1-dense", "search_p1"), ("search_p1/screen2-search_p1-dense", "baseline")),
         "Search-P1 vs GRPO, dense", "the sparse - dense difference of the two effects: Welch, below"),
    ],
    "gcrl": [
        ("gcrl/screen2-gcrl", "a warm start whose critic judges above chance (W11)", "gcrl",
         (("gcrl/screen2-gcrl", "gcrl"), ("gcrl/screen2-gcrl", "baseline")), "GC-RL vs GRPO", ""),
    ],
    "sspo": [
        ("sspo/screen2-sspo", "staleness 0 vs 4", "sspo x staleness",
         (("sspo/screen2-sspo", "sspo+staleness=4"), ("sspo/screen2-sspo", "staleness=4")),
         "SSPO vs token-level PPO, 4 stale", ""),
        ("sspo/screen2-sspo-stale8", "staleness 8 (every cell)", "sspo",
         (("sspo/screen2-sspo-stale8", "sspo"), ("sspo/screen2-sspo-stale8", "baseline")),
         "SSPO vs token-level PPO, 8 stale", ""),
    ],
    "sorl": [
        ("sorl/screen2-sorl", "staleness 0 vs 4", "sorl x staleness",
         (("sorl/screen2-sorl", "sorl+staleness=4"), ("sorl/screen2-sorl", "staleness=4")),
         "SORL (+-0.2) vs token-level PPO, 4 stale", ""),
        ("sorl/screen2-sorl-band", "SORL's band at staleness 4: +-0.2 (sigx's default) vs +-3e-4 (GSPO's)",
         "clip_eps",
         (("sorl/screen2-sorl-band", "sorl+clip_eps=0.0003"), ("sorl/screen2-sorl", "staleness=4")),
         "SORL (+-3e-4) vs token-level PPO, 4 stale", "the contrast's reference cell is screen2-sorl's (same seeds "
         "and warm start)"),
        ("sorl/screen2-sorl-stale8", "staleness 8 (every cell)", "sorl",
         (("sorl/screen2-sorl-stale8", "sorl"), ("sorl/screen2-sorl-stale8", "baseline")),
         "SORL (+-0.2) vs token-level PPO, 8 stale", ""),
    ],
}

#: exploratory screens, declared after a result; listed apart, labelled
EXPLORATORY = {
    "sspo": [
        ("sspo/screen2-sspo-tau", "a steeper gate (tau 10 / 10.5) at staleness 4; declared after SSPO's report",
         "sspo", (("sspo/screen2-sspo-tau", "sspo"), ("sspo/screen2-sspo-tau", "baseline")),
         "SSPO (tau 10) vs token-level PPO, 4 stale", ""),
    ],
}


def read(folder: str) -> dict | None:
    path = HERE / folder / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def verdict(term: dict, margin: float) -> str:
    if term["p_holm"] < 0.05:
        return "positive" if term["effect"] > 0 else "negative"
    if term.get("p_equivalent_holm", 1.0) < 0.05:
        return f"null (within +-{margin:g})"
    return f"unresolved (MDE {term['mde']:.3f})"


def seed_values(report: dict, combination: str, metric: str) -> dict[int, float]:
    return {run["seed"]: run[metric] for run in report["runs"]
            if run["combination"] == combination and run["status"] == "done" and run[metric] is not None}


def paired(treated: dict[int, float], reference: dict[int, float]) -> dict:
    """Mean of the per-seed differences, with its 95% t-interval over the seeds both cells ran."""
    seeds = sorted(set(treated) & set(reference))
    diffs = np.array([treated[s] - reference[s] for s in seeds])
    n = len(diffs)
    mean = float(diffs.mean()) if n else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * diffs.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {"seeds": seeds, "per_seed": [float(d) for d in diffs], "estimate": mean, "ci_low": mean - half,
            "ci_high": mean + half, "treated_mean": float(np.mean([treated[s] for s in seeds])) if n else math.nan,
            "reference_mean": float(np.mean([reference[s] for s in seeds])) if n else math.nan}


def welch(a: dict, b: dict) -> dict:
    """The difference of two paired contrasts from independent stores (other warm starts): Welch's interval."""
    x, y = np.array(a["per_seed"]), np.array(b["per_seed"])
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))
    diff, half = float(x.mean() - y.mean()), float(stats.t.ppf(0.975, df) * math.sqrt(va + vb))
    return {"estimate": diff, "ci_low": diff - half, "ci_high": diff + half, "df": float(df),
            "p": float(2 * stats.t.sf(abs(diff) / math.sqrt(va + vb), df))}


def screen_entry(spec, exploratory: bool) -> dict | None:
    folder, regime, judged, (treated, reference), label, note = spec
    report = read(folder)
    if report is None:
        return None
    metric, margin = report["metric"], report["margin"]
    term = next(t for t in report["effects"] if t["term"] == judged)
    contrast = paired(seed_values(read(treated[0]), treated[1], metric),
                      seed_values(read(reference[0]), reference[1], metric))
    return {"store": report["store"], "report": f"{folder}/report.md", "exploratory": exploratory,
            "regime": regime, "warm_start": report["warm_start"], "metric": metric, "margin": margin,
            "declaration": report["declaration"],
            "runs": f"{sum(r['status'] == 'done' for r in report['runs'])} of {len(report['runs'])}",
            "judged_term": {k: term[k] for k in ("term", "effect", "ci_low", "ci_high", "p_holm",
                                                 "p_equivalent_holm", "mde")},
            "verdict": verdict(term, margin),
            "in_regime": {"contrast": label, "treated": f"{treated[0].split('/')[-1]}: {treated[1]}",
                          "reference": f"{reference[0].split('/')[-1]}: {reference[1]}", **contrast},
            "room": report["room"], "room_measures": report["room_measures"], "note": note}


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
    for technique, specs in SCREENS.items():
        entries = [e for spec in specs if (e := screen_entry(spec, False))]
        entries += [e for spec in EXPLORATORY.get(technique, []) if (e := screen_entry(spec, True))]
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
