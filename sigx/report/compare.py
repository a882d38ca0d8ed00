"""Does an effect differ between two ablations? (``sigx compare STORE_A STORE_B``)

Why: one store has one shared engine, so one model, one task and one warm start; a factor of those (reward
sparsity through the warm start's strength, a second SFT seed, another task size) is two stores. Whether a
technique's effect is the same in both is then a question about two stores, and comparing their reports by eye
has no error rate. ``--replicates`` asks a narrower question (do the reference's conclusions hold in the check?);
this one asks, for every term both stores estimate: is its effect different in B than in A, the same within the
margin, or can the data not tell?

How. Each store's seeds are independent replicates of its own setting, and the two stores share nothing but the
recipe's shape, so the comparison is unpaired: a term's effect is estimated once per seed in each store (the
report's per-seed fit: the same coded model on that seed's cells; its mean over seeds is the report's effect in a
complete store), and the difference of the two means gets Welch's interval and test on those per-seed values,
which assumes neither equal noise in the two stores nor equal seed counts. Each term's 95% interval is shown;
the verdicts are family-wise over the terms compared (Holm, as the report's own effects): *same within +-margin*
(shown inside +-margin by two one-sided Welch tests, TOST; negligible even if also shown non-zero), else
*differs* (the difference shown non-zero), else *inconclusive*. With every difference truly zero, the chance of
any *differs* call is <= alpha; with every difference at the margin, of any *same* call (simulation on planted
stores whose noise differs 13-fold: tests/report/test_compare.py). A term either store cannot estimate is listed,
not tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from sigx.report.batches import warm_start_line
from sigx.report.build import DEFAULT_MARGIN, DEFAULT_METRIC
from sigx.report.keep import analysed, covers
from sigx.report.load import Ablation, ReportError
from sigx.report.stats import ALPHA, fit_model, holm, seed_fits, term_name, tost_p

COLUMNS = ["term", "order", "role", "effect_a", "effect_b", "seeds_a", "seeds_b", "difference", "se", "df",
           "ci_low", "ci_high", "p", "p_holm", "p_same", "p_same_holm", "verdict"]


@dataclass
class Comparison:
    a: str
    b: str
    metric: str
    margin: float
    alpha: float
    table: pd.DataFrame  # COLUMNS, one row per term both stores estimate
    only_in: dict[str, list[str]] = field(default_factory=dict)  # store name -> terms the other lacks
    notes: list[str] = field(default_factory=list)
    covers: dict = field(default_factory=dict)  # the analysis and each side's finished runs (sigx.report.keep)


def per_seed_effects(ab: Ablation, metric: str) -> tuple[dict[str, tuple[int, str, np.ndarray]], list[str]]:
    """term -> (order, role, the term's effect estimated on each seed's cells alone), and notes on seeds left out.
    Effects are on the report's scale: 2 x the coefficient of a -1/+1 coded term, the control's own shift."""
    model = fit_model(ab, metric, blocked=True)
    fits = seed_fits(ab, metric, model)
    notes = [f"{ab.name}: seeds {fits.left_out} left out (their finished cells do not hold the whole design)"] \
        if fits.left_out else []
    effects = {}
    for i, t in enumerate(model.terms):
        role = ab.info[t[0]].role if len(t) == 1 else "interaction"
        effects[term_name(t)] = (len(t), role, 2.0 * fits.coefficients[:, 1 + i])
    for j, c in enumerate(model.controls):
        effects[c] = (1, "control", fits.coefficients[:, 1 + len(model.terms) + j])
    return effects, notes


def welch_difference(x: np.ndarray, y: np.ndarray, margin: float) -> dict[str, float]:
    """mean(y) - mean(x): Welch's 95% interval and two-sided p (scipy), and the TOST p of |difference| < margin
    on the same standard error and Welch-Satterthwaite degrees of freedom."""
    test = stats.ttest_ind(y, x, equal_var=False)
    ci = test.confidence_interval(1 - ALPHA)
    difference = float(y.mean() - x.mean())
    se = math.sqrt(y.var(ddof=1) / len(y) + x.var(ddof=1) / len(x))
    df = float(test.df)
    if not se > 0:  # both stores without seed-to-seed variation in this term: nothing to test
        return {"difference": difference, "se": se, "df": df, "ci_low": math.nan, "ci_high": math.nan,
                "p": math.nan, "p_same": math.nan}
    return {"difference": difference, "se": se, "df": df, "ci_low": float(ci.low), "ci_high": float(ci.high),
            "p": float(test.pvalue), "p_same": tost_p(difference, se, df, margin)}


def verdict(p_holm: float, p_same_holm: float, margin: float, alpha: float) -> str:
    """As the report's additivity verdicts: shown inside the margin is 'the same' (negligible) even where it is
    also shown non-zero."""
    if p_same_holm < alpha:
        return f"same within +-{margin:g}"
    if p_holm < alpha:
        return "differs"
    return "inconclusive"


def declaration_notes(a: Ablation, b: Ablation, metric: str | None,
                      margin: float | None) -> tuple[str, float, list[str]]:
    """The metric and margin compared (A's declared ones unless given) and what the reader must know of them."""
    declared_a, declared_b = a.declared, b.declared
    chosen_metric = metric or declared_a["metric"] or DEFAULT_METRIC
    chosen_margin = margin if margin is not None else (declared_a["margin"] or DEFAULT_MARGIN)
    notes = []
    for name, value, declared in (("metric", chosen_metric, declared_a["metric"]),
                                  ("margin", chosen_margin, declared_a["margin"])):
        if declared is None:
            notes.append(f"{a.name} declares no {name}: {value} is the default, chosen at comparison time")
        elif value != declared:
            notes.append(f"{name} {value} is NOT {a.name}'s declared {declared}: chosen at comparison time")
        if declared_b[name] is not None and declared_b[name] != value:
            notes.append(f"{b.name} declares {name} {declared_b[name]}, not the {value} compared here")
    return chosen_metric, chosen_margin, notes


def compare(a: Ablation, b: Ablation, metric: str | None = None, margin: float | None = None) -> Comparison:
    """Every term both stores estimate: its effect in B minus its effect in A, Welch over their seeds. Metric and
    margin: A's declared ones unless given (a note says when they are not). The level: 0.05, or the smaller of
    the stores' levels where one was filled by a sequential rule (its seeds depend on its looks)."""
    metric, margin, declared = declaration_notes(a, b, metric, margin)
    alpha = min(ALPHA, a.alpha, b.alpha)
    if alpha < ALPHA:
        declared.append(f"tests at {alpha:.4g}, the smaller store level (a sequential plan's alpha / looks)")
    for ab in (a, b):
        if metric not in ab.runs.columns or ab.done[metric].dropna().empty:
            raise ReportError(f"{ab.name}: no finished run reports {metric!r}; compare on a metric both stores "
                              "report (--metric)")
    crossed_a, crossed_b = (set(ab.of_role("technique", "regime")) for ab in (a, b))
    if crossed_a != crossed_b:
        declared.append(f"the stores cross different factors ({', '.join(sorted(crossed_a)) or 'none'} against "
                        f"{', '.join(sorted(crossed_b)) or 'none'}): a shared term averages over different "
                        "settings of the others, so it may not mean the same in both")
    for name in sorted(crossed_a & crossed_b):
        if a.info[name].levels != b.info[name].levels:
            declared.append(f"{name}: levels {list(a.info[name].levels)} in {a.name} but "
                            f"{list(b.info[name].levels)} in {b.name}: its terms compare different contrasts")
    effects_a, notes_a = per_seed_effects(a, metric)
    effects_b, notes_b = per_seed_effects(b, metric)
    subsets = [f"{ab.name}: {ab.seed_subset}" for ab in (a, b) if ab.seed_subset]
    rows, notes = [], ([f"{ab.name}: {warm_start_line(ab)}" for ab in (a, b)] + subsets + declared + notes_a
                       + notes_b)
    for term, (order, role, x) in effects_a.items():
        if term not in effects_b:
            continue
        y = effects_b[term][2]
        if len(x) < 2 or len(y) < 2:
            notes.append(f"{term}: fewer than 2 complete seeds in a store ({len(x)} in {a.name}, {len(y)} in "
                         f"{b.name}): not tested")
            continue
        rows.append({"term": term, "order": order, "role": role, "effect_a": float(x.mean()),
                     "effect_b": float(y.mean()), "seeds_a": len(x), "seeds_b": len(y),
                     **welch_difference(x, y, margin)})
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_holm", "p_same_holm", "verdict")])
    table["p_holm"] = holm(table["p"]) if len(table) else pd.Series(dtype=float)
    table["p_same_holm"] = holm(table["p_same"]) if len(table) else pd.Series(dtype=float)
    table["verdict"] = [verdict(r.p_holm, r.p_same_holm, margin, alpha) for r in table.itertuples()]
    only_in = {a.name: [t for t in effects_a if t not in effects_b],
               b.name: [t for t in effects_b if t not in effects_a]}
    record = covers({"metric": metric, "margin": margin, "seeds_a": analysed(a), "seeds_b": analysed(b)},
                    {"A": a.runs, "B": b.runs})
    return Comparison(a.name, b.name, metric, margin, alpha, table[COLUMNS], {k: v for k, v in only_in.items() if v},
                      notes, record)
