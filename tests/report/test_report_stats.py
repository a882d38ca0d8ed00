"""The report's intervals hold their level: simulation on planted data (coverage of the additivity gap's 95%
interval, false calls on a null gap), seed blocking, minimum detectable effects, fractional designs, regime
factors and the positive control."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sigx.design import alias_lines, describe, make_design
from sigx.report.build import build_report
from sigx.report.load import Ablation, FactorInfo
from sigx.report.stats import additivity_table, detectable

THREE = ["search_p1", "sspo", "sorl"]


@pytest.fixture(autouse=True)
def no_full_collections(monkeypatch):
    """statsmodels' Holm calls gc.collect() on every call (0.2 s with torch loaded); the arithmetic is unchanged."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *args: 0)


def planted(factors, seeds, mean, rng, seed_sd=0.05, noise_sd=0.02, points=None, info=None, design=None) -> Ablation:
    """An ablation in memory: final_reward = mean(on) + a seed effect shared by every cell + noise."""
    points = points or list(itertools.product((0, 1), repeat=len(factors)))
    seed_effect = rng.normal(0, seed_sd, len(seeds))
    rows = []
    for point in points:
        on = {f for f, x in zip(factors, point) if x}
        combination = "+".join(f for f in factors if f in on) or "baseline"
        for i, seed in enumerate(seeds):
            rows.append({"cell": f"{combination}/seed{seed}", "combination": combination, "seed": seed,
                         "status": "done", **dict(zip(factors, point)),
                         "final_reward": mean(on) + seed_effect[i] + rng.normal(0, noise_sd)})
    runs = pd.DataFrame(rows)
    for column in ["reward_auc", "final_critique_accuracy", "tokens_per_s", "clip_fraction", "log_ratio_abs",
                   "zero_variance_groups", "critique_accuracy_start", "failed_with_signal", "error"]:
        runs[column] = np.nan
    ab = Ablation("planted", None, list(factors), runs, pd.DataFrame(columns=["cell", "combination", "seed", "step", "reward"]),
                  dict(info or {}))
    if design is not None:
        ab.design = design
    return ab


def truth(on):  # sspo x sorl redundant by 0.03; search_p1 adds to both
    return 0.5 + 0.04 * ("search_p1" in on) + 0.03 * ("sspo" in on) + 0.02 * ("sorl" in on) \
        - 0.03 * ({"sspo", "sorl"} <= on)


def test_the_gap_interval_covers_the_truth_95_percent_of_the_time_and_a_null_gap_is_called_5_percent():
    rng = np.random.default_rng(20261126)
    draws, covered, false_calls, planted_called = 1000, 0, 0, 0
    for _ in range(draws):
        table = additivity_table(planted(THREE, range(5), truth, rng, noise_sd=0.01), "final_reward", margin=0.02,
                                 plan_seeds=False)
        gaps = table.set_index("techniques")
        real = gaps.loc["sspo + sorl"]
        covered += real.gap_low <= -0.03 <= real.gap_high
        planted_called += real.gap_high < 0
        null = gaps.loc["search_p1 + sspo"]
        false_calls += not (null.gap_low <= 0 <= null.gap_high)
    assert 0.93 <= covered / draws <= 0.97, covered / draws
    assert false_calls / draws <= 0.065, false_calls / draws
    assert planted_called / draws > 0.5  # and the planted gap is seen most of the time


def test_blocking_on_the_seed_narrows_the_intervals_when_seeds_differ():
    ab = planted(THREE, range(5), truth, np.random.default_rng(1), seed_sd=0.08, noise_sd=0.01)
    report = build_report(ab)
    assert (report.effects.table.unpaired_width_ratio > 2).all()
    assert (report.additivity.unpaired_width_ratio > 2).all()
    # the point estimates are the cell-mean contrasts either way (a balanced design)
    means = ab.runs.groupby("combination").final_reward.mean()
    pair = report.additivity.set_index("techniques").loc["sspo + sorl"]
    assert pair.gap == pytest.approx(means["sspo+sorl"] - means["sspo"] - means["sorl"] + means["baseline"])


def test_minimum_detectable_effect_by_hand():
    assert detectable(0.01, 60) == pytest.approx((stats.t.ppf(0.975, 60) + stats.t.ppf(0.8, 60)) * 0.01)
    # under Holm over m tests the first step is a test at alpha / m (power: tests/test_report_error_rates.py)
    assert detectable(0.01, 60, 22) == pytest.approx((stats.t.ppf(1 - 0.05 / 44, 60) + stats.t.ppf(0.8, 60)) * 0.01)


def test_a_fraction_recovers_main_effects_and_two_factor_interactions():
    factors = ["search_p1", "gcrl", "sspo", "sorl", "staleness"]
    design = make_design(5, 1)
    info = {"staleness": FactorInfo("staleness", "field", "regime", "staleness=4", (0, 4))}
    meta = {"fraction": 1, "resolution": design.resolution, "description": describe(design, factors),
            "aliases": alias_lines(design, factors)}

    def mean(on):
        return 0.5 + 0.05 * ("gcrl" in on) - 0.04 * ("staleness" in on) + 0.03 * ({"sspo", "staleness"} <= on)

    ab = planted(factors, range(4), mean, np.random.default_rng(3), noise_sd=0.005, points=list(design.points),
                 info=info, design=meta)
    report = build_report(ab)
    effects = report.effects.table.set_index("term")
    assert len(effects) == 5 + 10  # main effects and 2-factor interactions only
    for term, value in [("gcrl", 0.05), ("staleness", -0.04 + 0.03 / 2), ("sspo", 0.03 / 2),
                        ("sspo x staleness", 0.03 / 2), ("gcrl x sorl", 0.0)]:
        assert effects.loc[term, "ci_low"] <= value <= effects.loc[term, "ci_high"], term
    assert any("resolution 5" in n for n in report.notes)
    assert meta["description"][0].startswith("2^(5-1) fraction, resolution V")
    assert "sspo x staleness = search_p1 x gcrl x sorl" in meta["aliases"]
    # a regime factor: gaps are reported at each of its levels (here staleness changes no technique pair)
    regimes = set(report.additivity.regime)
    assert regimes == {"reference", "staleness=4"}


def test_gaps_are_reported_per_regime_and_the_positive_control_is_named():
    factors = ["sspo", "sorl", "staleness", "lr"]
    info = {"staleness": FactorInfo("staleness", "field", "regime", "staleness=4", (0, 4)),
            "lr": FactorInfo("lr", "field", "control", "lr=2e-05", (1e-4, 2e-5))}

    def mean(on):  # sspo and sorl redundant only under staleness; a lower lr costs 0.2
        return 0.6 + 0.05 * ("sspo" in on) + 0.05 * ("sorl" in on) - 0.2 * ("lr" in on) \
            - 0.05 * ({"sspo", "sorl", "staleness"} <= on)

    points = [p + (0,) for p in itertools.product((0, 1), repeat=3)] + [(0, 0, 0, 1)]  # lr: baseline only
    report = build_report(planted(factors, range(4), mean, np.random.default_rng(5), noise_sd=0.005, info=info,
                                  points=points))
    gaps = report.additivity.set_index("regime")
    assert gaps.loc["reference", "verdict"] == "additive" and gaps.loc["staleness=4", "verdict"] == "redundant"
    assert gaps.loc["staleness=4", "gap_low"] <= -0.05 <= gaps.loc["staleness=4", "gap_high"]
    control = report.effects.table.set_index("term").loc["lr"]
    assert control.role == "control" and control.p_holm < 0.05 and control.effect == pytest.approx(-0.2, abs=0.01)
    assert "sspo x lr" not in set(report.effects.table.term)  # a control is not crossed
    from sigx.report.render import control_lines

    (line,) = control_lines(report)
    assert line.startswith("Positive control `lr`: effect -0.2") and line.endswith(": detected.")


def test_a_gap_the_fitted_model_cannot_see_is_not_estimable_not_additive():
    """With cells missing, the model may keep main effects only: every gap is then 0 by construction, which must
    not read as 'additive'."""
    factors = ["search_p1", "gcrl", "sspo", "sorl", "staleness"]
    design = make_design(5, 1)
    points = list(design.points)[:9]  # an unfinished fraction: too few cells for the 2-factor interactions
    info = {"staleness": FactorInfo("staleness", "field", "regime", "staleness=4", (0, 4))}
    ab = planted(factors, range(3), lambda on: 0.5, np.random.default_rng(0), points=points, info=info,
                 design={"fraction": 1, "resolution": 5, "description": [], "aliases": []})
    table = additivity_table(ab, "final_reward", margin=0.02)
    assert table.verdict.str.startswith("not estimable").all()


def brute_force_bell_mccaffrey(model, weights) -> float:
    """Bell and McCaffrey's df from its definition: the n x n matrix G'G = D M D, (tr)^2 / tr of its square."""
    exog = model.fit.model.exog
    bread = np.linalg.inv(exog.T @ exog)
    hat = exog @ bread @ exog.T
    a = exog @ bread @ model.contrast(weights)
    d = np.diag(a / np.sqrt(1 - np.diag(hat)))
    g = d @ (np.eye(len(a)) - hat) @ d
    return float(np.trace(g) ** 2 / np.trace(g @ g))


def test_a_contrast_leaning_on_a_one_run_cell_falls_back_to_the_pooled_variance_with_a_note():
    """A positive control whose cell has one finished run: that run alone fixes the control's coefficient
    (leverage 1, residual 0), so its noise cannot be seen and HC2 would call the control exact. Its standard error
    is then the pooled one on the residual df, and the report says so; the terms, which do not lean on that run,
    keep HC2 with their own df."""
    from sigx.report.stats import factorial_effects, fit_model

    control = {"lr": FactorInfo("lr", "field", "control", "lr=2e-05", (1e-4, 2e-5))}
    ab = planted(["sspo", "staleness", "lr"], range(5), lambda on: 0.6 - 0.2 * ("lr" in on),
                 np.random.default_rng(3), info=control,
                 points=[p + (0,) for p in itertools.product((0, 1), repeat=2)] + [(0, 0, 1)])
    runs = ab.runs[~((ab.runs.lr == 1) & (ab.runs.seed > 0))].reset_index(drop=True)
    ab = Ablation(ab.name, None, ab.factors, runs, ab.curves, ab.info)
    model = fit_model(ab, "final_reward")
    effects = factorial_effects(ab, "final_reward")
    lr = effects.table.set_index("term").loc["lr"]
    pooled = model.fit.t_test(model.contrast(np.array([0.0, 0.0, 0.0, 0.0, 1.0])))
    assert lr.se == pytest.approx(float(np.asarray(pooled.sd).ravel()[0])) and lr.df == model.df
    assert any(note.startswith("lr: a cell with one run weighs in the estimate") for note in effects.notes)
    sspo = model.estimate(np.array([0.0, 2.0, 0.0, 0.0, 0.0]))
    assert not sspo["pooled"] and effects.table.set_index("term").loc["sspo", "se"] == pytest.approx(sspo["se"])


def test_a_contrasts_t_test_is_hc2_with_bell_mccaffrey_df_and_the_t_helpers_are_scipys():
    """Model.estimate computes the t-test from the fit read once (a report tests hundreds of contrasts of one
    fit): its standard error must be statsmodels' HC2 (``cov_type="HC2"``), its df Bell and McCaffrey's (from
    their definition, an n x n matrix), its interval and p scipy's t at that df; blocked and unblocked fits, a
    fraction's model, a positive control, and a fit with no noise planted (its standard errors ~1e-16). Where
    every run weighs the same (a term of a complete factorial or fraction without a control) both equal the
    pooled fit's t-test (statsmodels' ``t_test``): such stores' reports of their terms do not change."""
    import statsmodels.api as sm

    from sigx.report.stats import ALPHA, fit_model, t_cdf, t_ppf, t_sf, tost_p

    rng = np.random.default_rng(7)
    five = ["search_p1", "gcrl", "sspo", "sorl", "staleness"]
    regime = {"staleness": FactorInfo("staleness", "field", "regime", "staleness=4", (0, 4))}
    control = {**regime, "lr": FactorInfo("lr", "field", "control", "lr=2e-05", (1e-4, 2e-5))}
    half = make_design(5, 1)
    cases = [planted(THREE, range(4), truth, rng, noise_sd=0.03),
             planted(five, range(3), lambda on: 0.5 + 0.01 * len(on), rng, points=list(half.points), info=regime,
                     design={"fraction": 1, "resolution": 5, "description": [], "aliases": []}),
             planted(["sspo", "staleness", "lr"], range(5), lambda on: 0.6 - 0.2 * ("lr" in on), rng, info=control,
                     points=[p + (0,) for p in itertools.product((0, 1), repeat=2)] + [(0, 0, 1)])]
    first = lambda a: float(np.asarray(a).ravel()[0])  # noqa: E731
    checked = with_control = same_as_pooled = 0
    for ab in cases:
        for blocked in (True, False):
            model = fit_model(ab, "final_reward", blocked=blocked)
            hc2 = sm.OLS(model.fit.model.endog, model.fit.model.exog).fit(cov_type="HC2")
            width = 1 + len(model.terms) + len(model.controls)
            units = [np.eye(width)[i] * 2 for i in range(1, width)]
            for index, weights in enumerate(units + [rng.normal(size=width) for _ in range(5)]):
                mine = model.estimate(weights)
                c = model.contrast(weights)
                value, se = float(c @ model.fit.params), float(np.sqrt(c @ hc2.cov_params() @ c))
                df = brute_force_bell_mccaffrey(model, weights)
                half_width = stats.t.ppf(1 - ALPHA / 2, df) * se
                theirs = {"value": value, "se": se, "df": df, "low": value - half_width, "high": value + half_width,
                          "p": 2 * stats.t.sf(abs(value) / se, df), "pooled": False}
                assert mine == pytest.approx(theirs, rel=1e-9, abs=1e-12), (blocked, weights)
                checked += 1
                if index < len(model.terms) and not model.controls:  # a complete design's term: equal weights
                    test = model.fit.t_test(c)
                    assert (mine["se"], mine["df"], mine["p"]) == pytest.approx(
                        (first(test.sd), model.fit.df_resid, first(test.pvalue)), rel=1e-9, abs=1e-12)
                    same_as_pooled += 1
            with_control += bool(model.controls)
    assert checked > 60 and with_control == 2 and same_as_pooled >= 20
    exact = fit_model(planted(["sspo"], range(3), lambda on: 0.5, rng, noise_sd=0.0, seed_sd=0.0), "final_reward")
    zero, test = exact.estimate(np.array([0.0, 2.0])), exact.fit.t_test(exact.contrast(np.array([0.0, 2.0])))
    assert zero["se"] == pytest.approx(0.0, abs=1e-12)
    assert zero["value"] == pytest.approx(first(test.effect), abs=1e-12)
    for x, df, q in [(-2.5, 3, 0.975), (0.0, 17, 0.5), (4.0, 240, 0.8), (1e-3, 1, 0.999)]:
        assert t_cdf(x, df) == stats.t.cdf(x, df) and t_sf(x, df) == stats.t.sf(x, df)
        assert t_ppf(q, df) == stats.t.ppf(q, df)
    assert tost_p(0.01, 0.004, 9, 0.02) == max(stats.t.sf(0.03 / 0.004, 9), stats.t.cdf(-0.01 / 0.004, 9))


def test_a_batch_shift_across_the_design_is_tested_with_the_verdicts_hc2_standard_error():
    """The batch line's level shift, where a batch cuts across the design, weighs runs unequally: its interval and
    p must be HC2's with Bell-McCaffrey's df on the fit with the batch column, as every verdict's, not the pooled
    t-test's. Here the later batch holds most of the noisy cells' runs, drawn at random (a batch laid out
    symmetrically over the cells can give both standard errors equal, and the test could not tell them apart)."""
    import statsmodels.api as sm

    from sigx.report.batches import batch_lines
    from sigx.report.stats import ALPHA, fit_model

    rng = np.random.default_rng(12)
    ab = planted(THREE, range(6), truth, rng, noise_sd=0.01)
    noisy = ab.runs.sspo.to_numpy() == 1
    ab.runs.loc[noisy, "final_reward"] += rng.normal(0, 0.08, noisy.sum())  # SSPO's cells 8x noisier
    later = rng.random(len(noisy)) < np.where(noisy, 0.7, 0.15)  # the later batch: mostly noisy cells' runs
    ab.runs["batch"] = np.where(later, "commit bbb", "commit aaa")
    model = fit_model(ab, "final_reward")
    line = [entry for entry in batch_lines(ab, "final_reward", model) if entry.startswith("batch 'commit bbb'")]
    exog = np.column_stack([model.fit.model.exog, later.astype(float)])
    hc2 = sm.OLS(model.fit.model.endog, exog).fit(cov_type="HC2")
    value, se = float(hc2.params[-1]), float(np.sqrt(hc2.cov_params()[-1, -1]))
    shifted = sm.OLS(model.fit.model.endog, exog).fit()
    df = brute_force_bell_mccaffrey(type(model)(shifted, model.factors, model.terms, model.blocked),
                                    np.eye(exog.shape[1])[-1])
    half = stats.t.ppf(1 - ALPHA / 2, df) * se
    p = 2 * stats.t.sf(abs(value) / se, df)
    assert line == [f"batch 'commit bbb' vs 'commit aaa': {value:+.4f} [{value - half:+.4f}, {value + half:+.4f}], "
                    f"p {p:.3g} (a level shift estimated beside the model's terms)"]
    pooled = shifted.t_test(np.eye(exog.shape[1])[-1])
    assert abs(float(np.asarray(pooled.sd).ravel()[0]) - se) > 0.05 * se  # the two differ here: the test can tell
