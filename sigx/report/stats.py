"""The statistics of the report: cell table, factorial effects, additivity gaps, each mechanism's room.
statsmodels and scipy do the maths; this module only decides what is compared with what.

Conventions, so that the numbers can be read without the code:

- **The model.** One OLS fit of the metric on the factors coded -1 (reference / off) / +1 (treatment / on): every
  interaction for a full factorial (its cell means are then fitted exactly), main effects and 2-factor
  interactions for a fraction of resolution >= V (higher orders are aliased with them and assumed negligible),
  plus **seed as a block** (one dummy per seed). Cells with the same seed share their prompts and noise draws
  (common random numbers), so seed-to-seed variation common to all cells is taken out of the error.
- **Effect** (Yates): 2 x coefficient = mean with the term's sign +1 minus mean with it -1, averaged over the
  other factors. Standard errors HC2 (each run's own squared residual over 1 - its leverage) with Bell and
  McCaffrey's df (``Model.estimate`` says why), 95% t-intervals, p-values Holm-corrected over all terms. A term
  of a complete design without a control averages every cell with equal weights, and there both equal the
  pooled variance's (residual df): unequal noise across cells averages out (checked by simulation with the
  stress experiment's 13x pattern); an incomplete store's terms and a positive control weigh cells unequally,
  and there they do not.
  **Equivalence** (TOST at the margin, Holm over the terms): "no effect" is claimed only where it is shown.
- **MDE** (minimum detectable effect) under the rule the report calls significance by: Holm over the m terms
  (or gaps) of the family, whose first step is a test at alpha/m, so (t_{1-alpha/(2m)} + t_0.8) x SE: a true
  effect of that size is called significant with ~80% probability when the others are null (simulation).
- **Additivity gap** of a set S of techniques, in a regime R (the regime factors set as named, every other factor
  at its reference): mu(S+R) - mu(R) - sum_f [mu(f+R) - mu(R)], with mu the model's cell mean. Zero when gains add
  up; > 0 synergistic, < 0 redundant. A gap is a contrast of a few cells, whose noise may differ (13x in the
  stress experiment): a pooled variance would be too wide for quiet cells and too narrow for noisy ones. So its
  interval is **seed-paired**: the model (without seed blocks) is fitted to each seed's runs alone, each seed gives
  its own estimate of the contrast, and the t-interval is taken over the seeds (n - 1 degrees of freedom). That
  is exact whatever the cells' variances and however cells of one seed are correlated (common random numbers),
  and its point estimate is the pooled fit's (balanced seeds). It needs every seed to hold a full-rank design;
  a seed that does not is left out of the gaps (a note says so).
- **Verdicts over the family of gaps** (every gap the report declares): *additive* when the gap is shown within
  +-margin by TOST (two one-sided t-tests) with Holm over the family; else *synergistic* / *redundant* when the
  two-sided test of gap = 0, Holm over the family, rejects (sign of the gap); *inconclusive* otherwise. So with
  every gap null, the chance of any false synergistic/redundant call is <= 5%, and with every gap at the margin,
  the chance of any false additive call is <= 5% (simulation). "Seeds to resolve": the seeds per cell with which
  the gap would be resolved by that same rule with probability 0.8 **if its true value were the estimate** (a
  noisy estimate: a guide, not a promise).
- **Paired vs unpaired**: the same contrasts from the fit without seed blocks; the report gives how much wider
  those intervals are, i.e. what blocking on the seed buys.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property, reduce

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import special, stats
from statsmodels.stats.multitest import multipletests

from sigx.report.load import Ablation
from sigx.report.metrics import METRICS

ALPHA = 0.05
POWER = 0.8
#: a run's leverage above this fixes a parameter alone (h = 1): its residual is 0 and says nothing of its noise
ALONE = 1 - 1e-9


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


# Student's t at one point: the functions scipy.stats.t itself calls (t.cdf(x, df) = stdtr(df, x), t.sf(x, df) =
# stdtr(df, -x), t.ppf(q, df) = stdtrit(df, q)), so the same numbers, without the distribution object's argument
# handling, which costs ~0.1 ms a call: the report and its simulation tests call these ~10^5 times.
def t_cdf(x: float, df: float) -> float:
    return float(special.stdtr(df, x))


def t_sf(x: float, df: float) -> float:
    return float(special.stdtr(df, -x))


def t_ppf(q: float, df: float) -> float:
    return float(special.stdtrit(df, q))


def detectable(se: float, df: int, family: int = 1, alpha: float = ALPHA) -> float:
    """Minimum detectable effect at 80% power, two-sided, for a test at alpha / ``family`` (the first step of
    Holm over ``family`` tests): (t_{1-a/(2m)} + t_{power}) x SE."""
    if not (se > 0) or df <= 0:
        return math.nan
    return float((t_ppf(1 - alpha / (2 * max(family, 1)), df) + t_ppf(POWER, df)) * se)


def tost_p(value: float, se: float, df: float, margin: float) -> float:
    """p of the equivalence test |true value| < margin (two one-sided t-tests, the larger p)."""
    if not (se > 0) or not df > 0 or math.isnan(value):
        return math.nan
    below = t_sf((value + margin) / se, df)  # H0: value <= -margin
    above = t_cdf((value - margin) / se, df)  # H0: value >= margin
    return float(max(below, above))


def holm(p: pd.Series) -> pd.Series:
    """Holm-adjusted p-values over the non-missing entries (NaN stays NaN)."""
    values = p.to_numpy(dtype=float)
    out = np.full(len(values), math.nan)
    known = ~np.isnan(values)
    if known.any():
        out[known] = multipletests(values[known], alpha=ALPHA, method="holm")[1]
    return pd.Series(out, index=p.index, dtype=float)


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
        for m in dict.fromkeys([*METRICS, metric]):  # the table's metrics, and the one analysed
            row[m], row[f"{m}_low"], row[f"{m}_high"] = mean_ci(done[m])
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(metric, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- the model
def model_rows(ab: Ablation, metric: str) -> pd.DataFrame:
    """The finished runs the model is fitted on (factors, seed, metric; runs without the metric left out), in
    order: the pooled fit, the per-seed fits and the batch check all read these same rows. (The columns are
    taken before the rows: the runs table's text columns are slow to copy, and the simulation tests call this
    ~10^4 times.)"""
    return ab.runs.loc[ab.done_mask, ab.factors + ["seed", metric]].dropna()


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
    names: list[str] = field(default_factory=list)  # the fit's columns (design_matrix's names), in order

    @cached_property
    def df(self) -> int:
        return int(round(self.fit.df_resid)) if self.fit is not None else 0

    def coded(self, on) -> np.ndarray:
        """The model's columns (intercept, terms, controls) for the combination with ``on`` at treatment and the
        rest at reference."""
        level = {f: (1.0 if f in on else -1.0) for f in self.factors}
        return np.array([1.0] + [math.prod(level[f] for f in t) for t in self.terms]
                        + [1.0 if c in on else 0.0 for c in self.controls])

    @cached_property
    def params(self) -> np.ndarray:
        return np.asarray(self.fit.params, dtype=float)

    @cached_property
    def cov(self) -> np.ndarray:
        """The coefficients' pooled covariance (statsmodels' cov_params: the residual variance x (X'X)^-1)."""
        return np.asarray(self.fit.cov_params(), dtype=float)

    @cached_property
    def _runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """exog, (X'X)^-1, each run's leverage h and HC2 inflation 1 / (1 - h) (0 for a run alone in fixing a
        parameter, h = 1: its residual is 0 and says nothing of its noise)."""
        exog = np.asarray(self.fit.model.exog, dtype=float)
        bread = np.asarray(self.fit.normalized_cov_params, dtype=float)
        leverage = np.einsum("ij,jk,ik->i", exog, bread, exog)
        alone = leverage > ALONE
        inflation = np.where(alone, 0.0, 1 / np.where(alone, 1.0, 1 - leverage))
        return exog, bread, leverage, inflation

    def contrast(self, weights: np.ndarray) -> np.ndarray:
        """A contrast on the intercept and terms, padded with zeros for the seed blocks (they cancel)."""
        c = np.zeros(len(self.params))
        c[: len(weights)] = weights
        return c

    def estimate(self, weights: np.ndarray) -> dict[str, float]:
        """value, se, df, 95% CI and p of a linear contrast of the model's cell means (NaN without replicates).

        Why not the pooled variance: cells' noise differs (13x in the stress experiment), and a contrast that
        weighs runs unequally (a positive control's one cell against the rest; any term once some cells lack
        seeds) then gets a pooled standard error that is too small or too large: in the extension-interim's design
        (results/search-stress) with its cells' noise, pooled 95% intervals of null terms covered 91%; with a
        quarter of a factorial's cells 7x noisier and half their seeds missing, 75%. So the standard error is
        HC2's (each run's own squared residual over 1 - its leverage; statsmodels' ``cov_type="HC2"``) and the
        t-test's df Bell and McCaffrey's (the Satterthwaite df of that variance were the noise equal), the pair
        Imbens and Kolesar (2016, "Robust standard errors in small samples: some practical advice", REStat)
        recommend for few runs: 94-95% coverage in those two cases. Where every run weighs the same (a term of a
        complete factorial or fraction without a control) both equal the pooled fit's exactly (standard error from
        the residual variance, residual df); with a control, whose runs weigh nothing in the terms, the terms'
        rest on the other cells' noise alone and move slightly (the flagship's projected MDE 0.0188 -> 0.0187). A
        contrast that leans on a run whose noise cannot be seen (alone in fixing a parameter, h = 1: a cell's one
        run) falls back to the pooled variance and residual df (``pooled`` True)."""
        c = self.contrast(weights)
        value = float(c @ self.params)
        if self.df <= 0:
            return {"value": value, "se": math.nan, "df": 0, "low": math.nan, "high": math.nan, "p": math.nan,
                    "pooled": False}
        exog, bread, leverage, inflation = self._runs
        a = exog @ (bread @ c)  # each run's weight in the estimate: value = a . y
        scale = max(float(np.max(np.abs(a))), 1e-300)
        pooled = bool(np.any(np.abs(a[leverage > ALONE]) > 1e-9 * scale))
        df = bell_mccaffrey_df(a, exog, bread, leverage, inflation) if not pooled else math.nan
        if pooled or not df > 0:
            se, df = math.sqrt(max(float(c @ self.cov @ c), 0.0)), float(self.df)
        else:
            se = math.sqrt(float(a**2 * inflation @ np.asarray(self.fit.resid) ** 2))
        half = t_ppf(1 - ALPHA / 2, df) * se
        t = abs(value) / se if se > 0 else (math.inf if value else math.nan)  # (as t_test: a 0 se is p 0, or NaN)
        return {"value": value, "se": se, "df": df, "low": value - half, "high": value + half, "p": 2 * t_sf(t, df),
                "pooled": pooled}


def bell_mccaffrey_df(a: np.ndarray, exog: np.ndarray, bread: np.ndarray, leverage: np.ndarray,
                      inflation: np.ndarray) -> float:
    """Bell and McCaffrey's degrees of freedom for the HC2 variance of the estimate a . y of an OLS fit:
    (tr G'G)^2 / tr (G'G)^2 with G'G = D M D, M = I - H the residual maker and D = diag(a / sqrt(1 - h)). Computed
    in O(n p^2), without the n x n matrix M: tr G'G = sum a^2, and ||D M D||_F^2 = sum d^4 - 2 sum d^4 h +
    tr((B X'D^2X)^2), B = (X'X)^-1 (checked against the definition in tests/report/test_report_stats.py).
    ``inflation``: 1 / (1 - h), 0 for a run alone in fixing a parameter (weight 0 here: the caller checked)."""
    d2 = a**2 * inflation
    weighted = bread @ (exog.T * d2) @ exog
    denominator = float(np.sum(d2**2) - 2 * np.sum(d2**2 * leverage) + np.trace(weighted @ weighted))
    return float(np.sum(a**2) ** 2 / denominator) if denominator > 0 else math.nan


def design_matrix(data: pd.DataFrame, factors: list[str], terms: list[tuple[str, ...]], blocked: bool,
                  controls: list[str] = ()) -> tuple[list[str], np.ndarray]:
    """The model's column names and its design matrix (one row per run of ``data``): intercept, terms (products of
    the -1/+1 codes), controls, seed blocks."""
    coded = {f: 2.0 * data[f].to_numpy() - 1.0 for f in factors}
    columns = {"const": np.ones(len(data))}
    for t in terms:
        columns[term_name(t)] = reduce(np.multiply, [coded[f] for f in t])
    for c in controls:  # a control's cells: its own level shift over the model's baseline
        columns[f"control[{c}]"] = data[c].to_numpy().astype(float)
    if blocked:
        for seed in sorted(data.seed.unique())[1:]:
            columns[f"seed[{seed}]"] = (data.seed.to_numpy() == seed).astype(float)
    return list(columns), np.column_stack(list(columns.values()))


def fit_model(ab: Ablation, metric: str, blocked: bool = True) -> Model:
    """The report's model (see the module docstring). With missing cells a full factorial's highest-order
    interactions may not be estimable: they are dropped until the fit is, and a note says so."""
    data = model_rows(ab, metric)
    factors = ab.of_role("technique", "regime")
    controls = [c for c in ab.of_role("control") if len(data) and data[c].any()]  # a control not run yet: no term
    top = len(factors) if ab.full else min(2, len(factors))
    notes = []
    for order in range(top, 0, -1):
        terms = [t for k in range(1, order + 1) for t in itertools.combinations(factors, k)]
        if not len(data):
            break
        names, exog = design_matrix(data, factors, terms, blocked, controls)
        if np.linalg.matrix_rank(exog) == exog.shape[1]:
            if order < top:
                notes.append(f"incomplete matrix: interactions above order {order} are not estimable and were "
                             "left out of the model")
            return Model(sm.OLS(data[metric].to_numpy(), exog).fit(), factors, terms, blocked, notes, controls,
                         names)
    return Model(None, factors, [], blocked, ["no effect is estimable from the finished runs"], controls)


@dataclass
class SeedFits:
    """The model (without seed blocks) fitted to each seed's runs alone: each seed's own estimate of any contrast
    of the model's cell means, for seed-paired intervals (see the module docstring)."""

    seeds: list
    coefficients: np.ndarray  # [seeds, 1 + terms + controls]
    left_out: list  # seeds whose runs do not hold a full-rank design

    def estimate(self, weights: np.ndarray, margin: float = math.nan) -> dict[str, float]:
        """value, se, df, 95% CI, two-sided p and TOST p at ``margin`` of the contrast over the seeds."""
        per_seed = self.coefficients @ weights if len(self.seeds) else np.array([])
        n = len(per_seed)
        value = float(per_seed.mean()) if n else math.nan
        if n < 2:
            return {"value": value, "se": math.nan, "df": 0, "low": math.nan, "high": math.nan, "p": math.nan,
                    "p_tost": math.nan, "sd": math.nan}
        sd = float(per_seed.std(ddof=1))
        se, df = sd / math.sqrt(n), n - 1
        if se == 0:
            return {"value": value, "se": 0.0, "df": df, "low": value, "high": value,
                    "p": 0.0 if value else 1.0, "p_tost": 0.0 if abs(value) < margin else 1.0, "sd": 0.0}
        half = t_ppf(1 - ALPHA / 2, df) * se
        return {"value": value, "se": se, "df": df, "low": value - half, "high": value + half,
                "p": 2 * t_sf(abs(value) / se, df), "p_tost": tost_p(value, se, df, margin), "sd": sd}


def seed_fits(ab: Ablation, metric: str, model: Model) -> SeedFits:
    data = model_rows(ab, metric)
    _, design = design_matrix(data, model.factors, model.terms, blocked=False, controls=model.controls)
    values, of_seed = data[metric].to_numpy(dtype=float), data.seed.to_numpy()
    seeds, coefficients, left_out = [], [], []
    for seed in sorted(data.seed.unique()):  # each seed's rows of the one design (its columns are per-run)
        rows = of_seed == seed
        x = design[rows]
        if np.linalg.matrix_rank(x) < x.shape[1]:
            left_out.append(seed)
            continue
        beta, *_ = np.linalg.lstsq(x, values[rows], rcond=None)
        seeds.append(seed)
        coefficients.append(beta)
    width = 1 + len(model.terms) + len(model.controls)
    return SeedFits(seeds, np.array(coefficients).reshape(len(seeds), width), left_out)


# ---------------------------------------------------------------------------------------------- effects
@dataclass
class Effects:
    table: pd.DataFrame  # term, order, role, effect, se, ci_low, ci_high, p, p_holm, mde, unpaired_width_ratio
    residual_sd: float  # seed-to-seed standard deviation left after the model and the seed blocks
    residual_df: int
    notes: list[str] = field(default_factory=list)


COLUMNS = ["term", "order", "role", "effect", "se", "df", "ci_low", "ci_high", "p", "p_holm", "p_equivalent",
           "p_equivalent_holm", "mde", "unpaired_width_ratio"]


def factorial_effects(ab: Ablation, metric: str, model: Model | None = None, unpaired: Model | None = None,
                      margin: float = 0.02, alpha: float = ALPHA) -> Effects:
    model = model or fit_model(ab, metric)
    unpaired = unpaired or fit_model(ab, metric, blocked=False)
    if model.fit is None:
        return Effects(pd.DataFrame(columns=COLUMNS), math.nan, 0, model.notes)
    rows, pooled = [], []
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
        if e["pooled"]:
            pooled.append(term_name(t))
        rows.append({"term": term_name(t), "order": len(t), "role": role, "effect": e["value"], "se": e["se"],
                     "df": e["df"], "ci_low": e["low"], "ci_high": e["high"], "p": e["p"],
                     "p_equivalent": tost_p(e["value"], e["se"], e["df"], margin),
                     "mde": detectable(e["se"], e["df"], len(estimated), alpha), "unpaired_width_ratio": ratio})
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if not c.endswith("_holm")])
    notes = list(model.notes)
    if pooled:
        notes.append(f"{', '.join(pooled)}: a cell with one run weighs in the estimate, so its noise cannot be "
                     "seen: standard error from the pooled residual variance instead of each run's own (HC2)")
    table["p_holm"] = holm(table["p"])
    table["p_equivalent_holm"] = holm(table["p_equivalent"])
    if model.df > 0:
        residual_sd = math.sqrt(model.fit.mse_resid)
    else:
        residual_sd = math.nan
        notes.append("one run per cell: no seed-to-seed variance, so no standard errors or p-values; add seeds")
    if not ab.full:
        notes.append(f"fractional design (resolution {ab.design.get('resolution')}): main effects and 2-factor "
                     "interactions are estimated assuming interactions of order 3 and more are negligible; "
                     "aliases are listed below")
    return Effects(table[COLUMNS], residual_sd, model.df, notes)


# ---------------------------------------------------------------------------------------------- additivity
def resolve_probability(gap: float, sd: float, seeds: int, margin: float, family: int, grid: int = 256,
                        alpha: float = ALPHA) -> float:
    """The probability that a gap whose true value is ``gap`` is resolved with ``seeds`` seeds per cell by the
    report's rule at its first Holm step (alpha / family): detected (two-sided t-test) or shown within +-margin
    (TOST). ``sd`` is the seed-to-seed SD of the per-seed contrast. Exact up to the grid: given the sample SD s
    (a scaled chi distribution, integrated over ``grid`` quantiles), each outcome is an interval of the mean."""
    if seeds < 2 or not sd > 0:
        return math.nan
    df, level = seeds - 1, alpha / max(family, 1)
    t_two, t_one = t_ppf(1 - level / 2, df), t_ppf(1 - level, df)
    s = sd * np.sqrt(stats.chi2.ppf((np.arange(grid) + 0.5) / grid, df) / df)
    tau = sd / math.sqrt(seeds)
    detect_at, within = t_two * s / math.sqrt(seeds), margin - t_one * s / math.sqrt(seeds)
    cdf = stats.norm.cdf
    detected = cdf((-detect_at - gap) / tau) + 1 - cdf((detect_at - gap) / tau)
    equivalent = np.where(within > 0, cdf((within - gap) / tau) - cdf((-within - gap) / tau), 0.0)
    union = np.where(within >= detect_at, 1.0, detected + equivalent)  # the two regions overlap only then
    return float(union.mean())


def seeds_to_resolve(gap: float, sd: float, margin: float, family: int, limit: int = 1000,
                     alpha: float = ALPHA) -> float:
    """Seeds per cell with which the gap would be resolved by the report's rule with probability POWER, if its
    true value were ``gap``; ``inf`` past ``limit``."""
    if not sd > 0 or math.isnan(gap):
        return math.nan
    low, high = 2, limit
    if resolve_probability(gap, sd, high, margin, family, alpha=alpha) < POWER:
        return math.inf
    while low < high:  # the probability grows with the seeds: bisect
        mid = (low + high) // 2
        if resolve_probability(gap, sd, mid, margin, family, alpha=alpha) >= POWER:
            high = mid
        else:
            low = mid + 1
    return float(low)


def verdict(p_equivalent: float, p_different: float, gap: float, alpha: float = ALPHA) -> str:
    """The report's call on one gap from its family-adjusted p-values (see the module docstring)."""
    if p_equivalent < alpha:  # negligible, even where the gap is also shown to differ from zero
        return "additive"
    if p_different < alpha:
        return "synergistic" if gap > 0 else "redundant"
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
                     unpaired: Model | None = None, fits: SeedFits | None = None, alpha: float = ALPHA,
                     plan_seeds: bool = True) -> pd.DataFrame:
    """Every declared gap (each set of >= 2 techniques in each regime): estimate, seed-paired 95% CI, p-values
    Holm-adjusted over the family of gaps, verdict, MDE under that rule, and (``plan_seeds``) the seeds that
    would resolve an inconclusive one."""
    model = model or fit_model(ab, metric)
    unpaired = unpaired or fit_model(ab, metric, blocked=False)
    fits = fits or (seed_fits(ab, metric, model) if model.fit is not None else None)
    techniques = ab.of_role("technique")
    done = ab.done.dropna(subset=[metric])
    present = {tuple(int(x) for x in (key if isinstance(key, tuple) else (key,)))
               for key in done.groupby(ab.factors).size().index} if len(done) else set()
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
                gap, observed = fits.estimate(gap_w, margin), fits.estimate(observed_w, margin)
                u = unpaired.estimate(gap_w) if unpaired.fit is not None and unpaired.terms == model.terms else None
                ratio = (u["high"] - u["low"]) / (gap["high"] - gap["low"]) if u and gap["high"] > gap["low"] \
                    else math.nan
                row.update(observed_gain=observed["value"], sum_of_gains=observed["value"] - gap["value"],
                           gap=gap["value"], gap_low=gap["low"], gap_high=gap["high"], gap_se=gap["se"],
                           gap_sd=gap["sd"], df=gap["df"], p=gap["p"], p_equivalent=gap["p_tost"],
                           unpaired_width_ratio=ratio, seeds=len(fits.seeds))
                rows.append(row)
    table = pd.DataFrame(rows)
    if "gap" not in table:
        return table
    estimated = table.gap.notna()
    family = int(estimated.sum())
    table["family"] = family
    table["p_holm"] = holm(table.p.where(estimated))
    table["p_equivalent_holm"] = holm(table.p_equivalent.where(estimated))
    for i in table.index[estimated]:
        row = table.loc[i]
        v = verdict(row.p_equivalent_holm, row.p_holm, row.gap, alpha)
        table.loc[i, "verdict"] = v
        table.loc[i, "mde"] = detectable(row.gap_se, int(row.df), family, alpha)
        need = seeds_to_resolve(row.gap, row.gap_sd, margin, family, alpha=alpha) \
            if v == "inconclusive" and plan_seeds else math.nan
        table.loc[i, "seeds_to_resolve"] = need
        table.loc[i, "resolve_probability"] = resolve_probability(row.gap, row.gap_sd, int(need), margin, family,
                                                                  alpha=alpha) if math.isfinite(need) else math.nan
    return table


# ---------------------------------------------------------------------------------------------- room
def room_table(ab: Ablation) -> pd.DataFrame:
    """Each mechanism's room, averaged over the finished runs: overall, at each level of each regime factor, then
    with each technique off and on. The measures are the ones the runs recorded (the engine's: turns, clipped
    share, ratio drift, all-tied groups; each enabled technique's own, such as GC-RL's critique accuracy at the
    first step). The technique rows put a technique's mechanism diagnostics beside its effect: how far its tokens
    drift, what its own measure reads where it runs (empty where it is off: it records nothing there)."""
    done = ab.done
    groups = [("all runs", done)]
    for f in ab.of_role("regime", "control"):
        info = ab.info[f]
        for level in (0, 1):
            groups.append((f"{info.name}={info.levels[level]}", done[done[f] == level]))
    for f in ab.of_role("technique"):
        for level, label in ((0, "off"), (1, "on")):
            groups.append((f"{ab.info[f].name}={label}", done[done[f] == level]))
    rows = []
    for label, runs in groups:
        rows.append({"runs": label, "n": len(runs),
                     **{c: float(runs[c].mean()) if c in runs and runs[c].notna().any() else math.nan for c in ab.room}})
    return pd.DataFrame(rows)
