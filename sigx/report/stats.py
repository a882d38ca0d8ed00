"""The statistics of the report: cell table, factorial effects, additivity gaps, each mechanism's room.
statsmodels and scipy do the maths; this module only decides what is compared with what.

Conventions, so that the numbers can be read without the code:

- **The model.** One OLS fit of the metric on the factors coded -1 (reference / off) / +1 (treatment / on): every
  interaction for a full factorial (its cell means are then fitted exactly), main effects and 2-factor
  interactions for a fraction of resolution >= V (higher orders are aliased with them and assumed negligible),
  plus **seed as a block** (one dummy per seed). Cells with the same seed share their prompts and noise draws
  (common random numbers), so seed-to-seed variation common to all cells is taken out of the error.
- **Effect** (Yates): 2 x coefficient = mean with the term's sign +1 minus mean with it -1, averaged over the
  other factors. Standard errors from the residual variance (``residual_df`` degrees of freedom), 95% t-intervals,
  p-values Holm-corrected over all terms, and the **minimum detectable effect** (80% power, two-sided 5%):
  (t_0.975 + t_0.8) x SE, the smallest true effect the design would call significant four times in five.
- **Additivity gap** of a set S of techniques, in a regime R (the regime factors set as named, every other factor
  at its reference): mu(S+R) - mu(R) - sum_f [mu(f+R) - mu(R)], with mu the model's cell mean. Zero when gains add
  up; > 0 synergistic, < 0 redundant. It is a linear contrast of the coefficients, so its 95% interval is the
  exact t-interval of that contrast from the same blocked fit (``t_test``), which keeps its level at any number
  of seeds (the test suite checks the coverage by simulation). For a full factorial with every cell present it
  equals the contrast of the cell means.
- **Verdict**: *additive* when the whole CI lies within +-margin (an equivalence test at the chosen margin);
  otherwise *synergistic* / *redundant* when the CI lies above / below 0; *inconclusive* otherwise, with the seeds
  per cell that would resolve it (detect the gap at 80% power, or fit its CI inside the margin, whichever is
  fewer), from the contrast's standard error.
- **Paired vs unpaired**: the same contrasts from the fit without seed blocks; the report gives how much wider
  those intervals are, i.e. what blocking on the seed buys.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from sigx.report.load import METRICS, ROOM, Ablation

ALPHA = 0.05
POWER = 0.8


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


def detectable(se: float, df: int) -> float:
    """Minimum detectable effect at 80% power, two-sided 5%: (t_{1-a/2} + t_{power}) x SE."""
    if not (se > 0) or df <= 0:
        return math.nan
    return float((stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df)) * se)


# ---------------------------------------------------------------------------------------------- cell table
def cell_table(ab: Ablation, metric: str) -> pd.DataFrame:
    """One row per combination: runs done of planned, and mean / CI of every metric; sorted by ``metric``."""
    rows = []
    all_on = ab.combination(set(ab.factors))
    for combination, runs in ab.runs.groupby("combination", sort=False):
        done = runs[runs.status == "done"]
        row = {"combination": combination, "runs": len(done), "planned": len(runs),
               "failed": int((runs.status == "failed").sum()), "missing": int((runs.status == "missing").sum()),
               "mark": "baseline" if combination == ab.combination(set()) else ("all on" if combination == all_on else "")}
        for m in METRICS:
            row[m], row[f"{m}_low"], row[f"{m}_high"] = mean_ci(done[m])
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(metric, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- the model
def term_name(term: tuple[str, ...]) -> str:
    return " x ".join(term)


@dataclass
class Model:
    """An OLS fit on coded factors (and seed blocks), with what is needed to evaluate contrasts of it."""

    fit: object | None  # statsmodels RegressionResults
    factors: list[str]  # the crossed factors (coded -1 / +1)
    terms: list[tuple[str, ...]]
    blocked: bool
    notes: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)  # positive controls: a 0/1 indicator each

    @property
    def df(self) -> int:
        return int(round(self.fit.df_resid)) if self.fit is not None else 0

    def coded(self, on) -> np.ndarray:
        """The model's columns (intercept, terms, controls) for the combination with ``on`` at treatment and the
        rest at reference."""
        level = {f: (1.0 if f in on else -1.0) for f in self.factors}
        return np.array([1.0] + [math.prod(level[f] for f in t) for t in self.terms]
                        + [1.0 if c in on else 0.0 for c in self.controls])

    def contrast(self, weights: np.ndarray) -> np.ndarray:
        """A contrast on the intercept and terms, padded with zeros for the seed blocks (they cancel)."""
        c = np.zeros(len(self.fit.params))
        c[: len(weights)] = weights
        return c

    def estimate(self, weights: np.ndarray) -> dict[str, float]:
        """value, se, 95% CI and p of a linear contrast of the model's cell means (NaN without replicates)."""
        c = self.contrast(weights)
        value = float(c @ self.fit.params.to_numpy())
        if self.df <= 0:
            return {"value": value, "se": math.nan, "low": math.nan, "high": math.nan, "p": math.nan}
        test = self.fit.t_test(c)
        low, high = np.asarray(test.conf_int(alpha=ALPHA)).ravel()
        return {"value": value, "se": float(np.asarray(test.sd).ravel()[0]), "low": float(low), "high": float(high),
                "p": float(np.asarray(test.pvalue).ravel()[0])}


def design_matrix(data: pd.DataFrame, factors: list[str], terms: list[tuple[str, ...]], blocked: bool,
                  controls: list[str] = ()) -> pd.DataFrame:
    coded = {f: 2.0 * data[f].to_numpy() - 1.0 for f in factors}
    columns = {"const": np.ones(len(data))}
    for t in terms:
        columns[term_name(t)] = np.prod([coded[f] for f in t], axis=0)
    for c in controls:  # a control's cells: its own level shift over the model's baseline
        columns[f"control[{c}]"] = data[c].to_numpy().astype(float)
    if blocked:
        for seed in sorted(data.seed.unique())[1:]:
            columns[f"seed[{seed}]"] = (data.seed.to_numpy() == seed).astype(float)
    return pd.DataFrame(columns, index=data.index)


def fit_model(ab: Ablation, metric: str, blocked: bool = True) -> Model:
    """The report's model (see the module docstring). With missing cells a full factorial's highest-order
    interactions may not be estimable: they are dropped until the fit is, and a note says so."""
    data = ab.done[ab.factors + ["seed", metric]].dropna()
    factors = ab.of_role("technique", "regime")
    controls = [c for c in ab.of_role("control") if len(data) and data[c].any()]  # a control not run yet: no term
    top = len(factors) if ab.full else min(2, len(factors))
    notes = []
    for order in range(top, 0, -1):
        terms = [t for k in range(1, order + 1) for t in itertools.combinations(factors, k)]
        if not len(data):
            break
        exog = design_matrix(data, factors, terms, blocked, controls)
        if np.linalg.matrix_rank(exog.to_numpy()) == exog.shape[1]:
            if order < top:
                notes.append(f"incomplete matrix: interactions above order {order} are not estimable and were "
                             "left out of the model")
            return Model(sm.OLS(data[metric].to_numpy(), exog).fit(), factors, terms, blocked, notes, controls)
    return Model(None, factors, [], blocked, ["no effect is estimable from the finished runs"], controls)


# ---------------------------------------------------------------------------------------------- effects
@dataclass
class Effects:
    table: pd.DataFrame  # term, order, role, effect, se, ci_low, ci_high, p, p_holm, mde, unpaired_width_ratio
    residual_sd: float  # seed-to-seed standard deviation left after the model and the seed blocks
    residual_df: int
    notes: list[str] = field(default_factory=list)


COLUMNS = ["term", "order", "role", "effect", "se", "ci_low", "ci_high", "p", "p_holm", "mde", "unpaired_width_ratio"]


def factorial_effects(ab: Ablation, metric: str, model: Model | None = None, unpaired: Model | None = None) -> Effects:
    model = model or fit_model(ab, metric)
    unpaired = unpaired or fit_model(ab, metric, blocked=False)
    if model.fit is None:
        return Effects(pd.DataFrame(columns=COLUMNS), math.nan, 0, model.notes)
    rows = []
    width = 1 + len(model.terms) + len(model.controls)
    estimated = [(t, 1 + i, 2.0) for i, t in enumerate(model.terms)]  # effect = 2 x coefficient (-1/+1 coding)
    estimated += [((c,), 1 + len(model.terms) + i, 1.0) for i, c in enumerate(model.controls)]  # 0/1: itself
    for t, index, scale in estimated:
        weights = np.zeros(width)
        weights[index] = scale
        e = model.estimate(weights)
        same = unpaired.fit is not None and unpaired.terms == model.terms
        u = unpaired.estimate(weights) if same else None
        ratio = (u["high"] - u["low"]) / (e["high"] - e["low"]) if u and e["high"] > e["low"] else math.nan
        role = ab.info[t[0]].role if len(t) == 1 else "interaction"
        rows.append({"term": term_name(t), "order": len(t), "role": role, "effect": e["value"], "se": e["se"],
                     "ci_low": e["low"], "ci_high": e["high"], "p": e["p"], "mde": detectable(e["se"], model.df),
                     "unpaired_width_ratio": ratio})
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "p_holm"])
    notes = list(model.notes)
    if model.df > 0:
        table["p_holm"] = multipletests(table["p"], alpha=ALPHA, method="holm")[1]
        residual_sd = math.sqrt(model.fit.mse_resid)
    else:
        table["p_holm"] = math.nan
        residual_sd = math.nan
        notes.append("one run per cell: no seed-to-seed variance, so no standard errors or p-values; add seeds")
    if not ab.full:
        notes.append(f"fractional design (resolution {ab.design.get('resolution')}): main effects and 2-factor "
                     "interactions are estimated assuming interactions of order 3 and more are negligible; "
                     "aliases are listed below")
    return Effects(table[COLUMNS], residual_sd, model.df, notes)


# ---------------------------------------------------------------------------------------------- additivity
def seeds_to_resolve(gap: float, se: float, seeds: int, margin: float) -> float:
    """Seeds per cell to resolve a gap: detect it (power 0.8, two-sided 5%), or bound it within +-margin; the
    standard error shrinks as 1/sqrt(seeds)."""
    if not (se > 0) or math.isnan(gap):
        return math.nan
    z_alpha, z_power = stats.norm.ppf(1 - ALPHA / 2), stats.norm.ppf(POWER)
    needed = []
    if gap != 0:
        needed.append(seeds * (se * (z_alpha + z_power) / gap) ** 2)
    if abs(gap) < margin:
        needed.append(seeds * (se * z_alpha / (margin - abs(gap))) ** 2)
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


def regimes(ab: Ablation) -> list[tuple[str, ...]]:
    """The regimes gaps are reported in: every regime factor at its reference, then each one at its treatment."""
    return [()] + [(r,) for r in ab.of_role("regime")]


def regime_label(ab: Ablation, regime: tuple[str, ...]) -> str:
    return "+".join(ab.info[r].on_label for r in regime) or "reference"


def gap_weights(model: Model, group: tuple[str, ...], regime: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(gap, observed gain) as contrasts: mu(S+R) - mu(R) - sum_f [mu(f+R) - mu(R)], and mu(S+R) - mu(R)."""
    base = model.coded(set(regime))
    observed = model.coded(set(group) | set(regime)) - base
    singles = sum(model.coded({f} | set(regime)) - base for f in group)
    return observed - singles, observed


def additivity_table(ab: Ablation, metric: str, margin: float, model: Model | None = None,
                     unpaired: Model | None = None) -> pd.DataFrame:
    model = model or fit_model(ab, metric)
    unpaired = unpaired or fit_model(ab, metric, blocked=False)
    techniques = ab.of_role("technique")
    done = ab.done.dropna(subset=[metric])
    present = {tuple(int(x) for x in (key if isinstance(key, tuple) else (key,)))
               for key in done.groupby(ab.factors).size().index} if len(done) else set()
    seeds = int(done.groupby(ab.factors).size().min()) if len(done) else 0
    rows = []
    for regime in regimes(ab):
        for size in range(2, len(techniques) + 1):
            for group in itertools.combinations(techniques, size):
                row = {"regime": regime_label(ab, regime), "techniques": " + ".join(group), "size": size}
                needed = [set(regime), set(group) | set(regime)] + [{f} | set(regime) for f in group]
                absent = [ab.combination(s) for s in needed if tuple(int(f in s) for f in ab.factors) not in present]
                if ab.full and absent:
                    rows.append({**row, "verdict": "missing cell: " + ", ".join(absent)})
                    continue
                if model.fit is None:
                    rows.append({**row, "verdict": "not estimable"})
                    continue
                gap_w, observed_w = gap_weights(model, group, regime)
                if np.allclose(gap_w, 0):  # the model has no interaction of these factors: it cannot see a gap
                    rows.append({**row, "verdict": "not estimable: the fitted model has no interactions of these "
                                 "techniques (cells missing)"})
                    continue
                gap, observed = model.estimate(gap_w), model.estimate(observed_w)
                u = unpaired.estimate(gap_w) if unpaired.fit is not None and unpaired.terms == model.terms else None
                ratio = (u["high"] - u["low"]) / (gap["high"] - gap["low"]) if u and gap["high"] > gap["low"] \
                    else math.nan
                v = verdict(gap["low"], gap["high"], margin)
                row.update(observed_gain=observed["value"], sum_of_gains=observed["value"] - gap["value"],
                           gap=gap["value"], gap_low=gap["low"], gap_high=gap["high"], p=gap["p"],
                           mde=detectable(gap["se"], model.df), unpaired_width_ratio=ratio, verdict=v, seeds=seeds,
                           seeds_to_resolve=seeds_to_resolve(gap["value"], gap["se"], seeds, margin)
                           if v == "inconclusive" else math.nan)
                rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- room
def room_table(ab: Ablation) -> pd.DataFrame:
    """Each mechanism's room, averaged over the finished runs: overall and at each level of each regime factor
    (the share of clipped tokens and the ratio drift under staleness, the share of all-tied groups, GC-RL's
    critique accuracy at the first step, Search-P1's failures with a signal)."""
    done = ab.done
    groups = [("all runs", done)]
    for f in ab.of_role("regime", "control"):
        info = ab.info[f]
        for level in (0, 1):
            groups.append((f"{info.name}={info.levels[level]}", done[done[f] == level]))
    rows = []
    for label, runs in groups:
        rows.append({"runs": label, "n": len(runs), **{c: float(runs[c].mean()) if runs[c].notna().any() else math.nan
                                                       for c in ROOM}})
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
    room: pd.DataFrame
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
    model, unpaired = fit_model(ab, metric), fit_model(ab, metric, blocked=False)
    effects = factorial_effects(ab, metric, model, unpaired)
    additivity = additivity_table(ab, metric, margin, model, unpaired)
    return Report(ab, metric, margin, cell_table(ab, metric), effects, additivity, room_table(ab),
                  notes + effects.notes)
