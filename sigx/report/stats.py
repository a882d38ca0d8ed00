"""The statistics of the report: cell table, factorial effects, additivity gaps. statsmodels and scipy do the
maths; this module only decides what is compared with what.

Conventions, so that the numbers can be read without the code:

- **Effect** (Yates): mean of the metric with the term's sign +1 minus mean with sign -1, in the 2^k design with
  factors coded -1 (off) / +1 (on). A main effect is "on minus off" averaged over every other factor; a 2-way
  effect is half the difference between A's effect with B on and with B off. It is estimated by OLS on the full
  interaction model (effect = 2 x coefficient), so the standard errors come from the pooled within-cell
  (seed-to-seed) variance; p-values are Holm-corrected over all terms.
- **Additivity gap** of a set S of techniques: observed gain of S over the baseline minus the sum of each
  member's own gain over the baseline, mean(S) - mean(0) - sum_f [mean(f) - mean(0)]. Zero when the gains add
  up; positive = synergistic (more than the sum), negative = redundant (less). Its 95% CI is a percentile
  bootstrap over seeds, each cell's seeds resampled independently (``scipy.stats.bootstrap``).
- **Verdict**: *additive* when the whole CI lies within +-margin (an equivalence test at the chosen margin: a gap
  too small to matter is additive even if the CI happens to exclude 0); otherwise *synergistic* / *redundant*
  when the CI lies above / below 0; *inconclusive* otherwise, with the number of seeds per
  cell that would resolve it: enough to detect the observed gap (80% power, two-sided 5%), or to fit the CI
  inside the margin, whichever is fewer, from the pooled seed-to-seed standard deviation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests

from sigx.report.load import METRICS, Ablation

BOOTSTRAP_RESAMPLES = 9999
ALPHA = 0.05
POWER = 0.8


def combination_name(on: tuple[str, ...]) -> str:
    return "+".join(on) or "baseline"


def mean_ci(values: pd.Series) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (NaN bounds with fewer than two values)."""
    values = values.dropna()
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    sem = float(stats.sem(values))
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(1 - ALPHA, len(values) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


# ---------------------------------------------------------------------------------------------- cell table
def cell_table(ab: Ablation, metric: str) -> pd.DataFrame:
    """One row per on/off combination: runs done of planned, and mean / CI of every metric; sorted by ``metric``."""
    rows = []
    all_on = combination_name(tuple(ab.factors))
    for combination, runs in ab.runs.groupby("combination", sort=False):
        done = runs[runs.status == "done"]
        row = {"combination": combination, "runs": len(done), "planned": len(runs),
               "failed": int((runs.status == "failed").sum()), "missing": int((runs.status == "missing").sum()),
               "mark": "baseline" if combination == "baseline" else ("all on" if combination == all_on else "")}
        for m in METRICS:
            row[m], row[f"{m}_low"], row[f"{m}_high"] = mean_ci(done[m])
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(metric, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- effects
def _terms(factors: list[str], max_order: int) -> list[tuple[str, ...]]:
    return [t for k in range(1, max_order + 1) for t in itertools.combinations(factors, k)]


@dataclass
class Effects:
    table: pd.DataFrame  # term, order, effect, se, ci_low, ci_high, p, p_holm
    residual_sd: float  # pooled seed-to-seed standard deviation (NaN without replicates)
    residual_df: int
    notes: list[str] = field(default_factory=list)


def factorial_effects(ab: Ablation, metric: str) -> Effects:
    data = ab.done[ab.factors + [metric]].dropna()
    notes = []
    coded = data.copy()
    for f in ab.factors:
        coded[f] = 2 * coded[f] - 1
    # The full model has 2^k parameters; with missing cells it may not be estimable: drop the highest-order
    # interactions until it is, and say so.
    max_order = len(ab.factors)
    while max_order >= 1:
        terms = _terms(ab.factors, max_order)
        formula = f"{metric} ~ " + " + ".join(":".join(t) for t in terms)
        fit = smf.ols(formula, data=coded).fit() if len(coded) else None
        if fit is not None and np.linalg.matrix_rank(fit.model.exog) == fit.model.exog.shape[1]:
            break
        max_order -= 1
    if max_order < 1:
        return Effects(pd.DataFrame(columns=["term", "order", "effect", "se", "ci_low", "ci_high", "p", "p_holm"]),
                       math.nan, 0, ["no effect is estimable from the finished runs"])
    if max_order < len(ab.factors):
        notes.append(f"incomplete matrix: interactions above order {max_order} are not estimable and were left "
                     "out of the model")
    df_resid = int(round(fit.df_resid))
    conf = fit.conf_int(ALPHA) if df_resid > 0 else None
    rows = []
    for t in terms:
        name = ":".join(t)
        row = {"term": " x ".join(t), "order": len(t), "effect": 2 * fit.params[name],
               "se": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan}
        if df_resid > 0:
            row.update(se=2 * fit.bse[name], ci_low=2 * conf.loc[name, 0], ci_high=2 * conf.loc[name, 1],
                       p=fit.pvalues[name])
        rows.append(row)
    table = pd.DataFrame(rows)
    if df_resid > 0:
        table["p_holm"] = multipletests(table["p"], alpha=ALPHA, method="holm")[1]
        residual_sd = math.sqrt(fit.mse_resid)
    else:
        table["p_holm"] = math.nan
        residual_sd = math.nan
        notes.append("one run per cell: no seed-to-seed variance, so no standard errors or p-values; add seeds")
    return Effects(table, residual_sd, df_resid, notes)


# ---------------------------------------------------------------------------------------------- additivity
def _gap(*samples, axis=-1):
    """samples = (baseline, S, f1, ..., fk): gap = m_S - m_0 - sum(m_f - m_0)."""
    means = [np.mean(s, axis=axis) for s in samples]
    base, combined, singles = means[0], means[1], means[2:]
    return combined - base - sum(m - base for m in singles)


def seeds_to_resolve(gap: float, sd: float, size: int, margin: float) -> float:
    """Seeds per cell to resolve a gap: detect it (power 0.8, two-sided 5%), or bound it within +-margin."""
    if not (sd > 0) or math.isnan(gap):
        return math.nan
    contrast = 1 + size + (size - 1) ** 2  # variance of the gap = contrast * sd^2 / n
    z_alpha, z_power = stats.norm.ppf(1 - ALPHA / 2), stats.norm.ppf(POWER)
    needed = []
    if gap != 0:
        needed.append(contrast * sd**2 * (z_alpha + z_power) ** 2 / gap**2)
    if abs(gap) < margin:
        needed.append(contrast * sd**2 * z_alpha**2 / (margin - abs(gap)) ** 2)
    return float(math.ceil(min(needed))) if needed else math.nan


def verdict(low: float, high: float, margin: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if -margin <= low and high <= margin:  # negligible, even where the CI happens to exclude zero
        return "additive"
    if low > 0:
        return "synergistic"
    if high < 0:
        return "redundant"
    return "inconclusive"


def additivity_table(ab: Ablation, metric: str, margin: float, residual_sd: float, seed: int = 0) -> pd.DataFrame:
    done = ab.done
    values = {c: g[metric].dropna().to_numpy() for c, g in done.groupby("combination")}
    rows = []
    for size in range(2, len(ab.factors) + 1):
        for group in itertools.combinations(ab.factors, size):
            names = ["baseline", combination_name(group)] + [combination_name((f,)) for f in group]
            row = {"techniques": " + ".join(group), "size": size}
            absent = [n for n in names if len(values.get(n, [])) == 0]
            if absent:
                rows.append({**row, "verdict": "missing cell: " + ", ".join(absent)})
                continue
            samples = [values[n] for n in names]
            base = samples[0].mean()
            observed = samples[1].mean() - base
            singles = sum(s.mean() - base for s in samples[2:])
            gap = observed - singles
            low = high = math.nan
            if min(len(s) for s in samples) >= 2:
                ci = stats.bootstrap(samples, _gap, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                                     confidence_level=1 - ALPHA, vectorized=True, paired=False,
                                     rng=np.random.default_rng(seed)).confidence_interval
                low, high = float(ci.low), float(ci.high)
            v = verdict(low, high, margin)
            row.update(observed_gain=observed, sum_of_gains=singles, gap=gap, gap_low=low, gap_high=high,
                       verdict=v, seeds=min(len(s) for s in samples),
                       seeds_to_resolve=seeds_to_resolve(gap, residual_sd, size, margin) if v == "inconclusive"
                       else math.nan)
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- the report
@dataclass
class Report:
    ablation: Ablation
    metric: str
    margin: float
    cells: pd.DataFrame
    effects: Effects
    additivity: pd.DataFrame
    notes: list[str]


def build_report(ab: Ablation, metric: str = "final_reward", margin: float = 0.02) -> Report:
    if metric not in METRICS:
        raise ValueError(f"--metric: unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    notes = []
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
    effects = factorial_effects(ab, metric)
    additivity = additivity_table(ab, metric, margin, effects.residual_sd)
    return Report(ab, metric, margin, cell_table(ab, metric), effects, additivity, notes + effects.notes)
