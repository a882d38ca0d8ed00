"""results/screens/summarise.py: its paired and Welch contrasts equal scipy's tests on the same numbers."""

import numpy as np
import pytest
from results_script import load_results_script
from scipy import stats


@pytest.fixture(scope="module")
def summarise():
    return load_results_script("screens", "summarise.py")


def test_paired_contrast_is_the_paired_t_interval_over_the_seeds_both_cells_ran(summarise):
    treated = {0: 0.52, 1: 0.47, 2: 0.61, 3: 0.55, 7: 0.9}  # seed 7 has no reference run: left out
    reference = {0: 0.44, 1: 0.45, 2: 0.50, 3: 0.49, 4: 0.3}
    got = summarise.paired(treated, reference)
    a, b = np.array([0.52, 0.47, 0.61, 0.55]), np.array([0.44, 0.45, 0.50, 0.49])
    want = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert got["seeds"] == [0, 1, 2, 3]
    assert got["estimate"] == pytest.approx((a - b).mean(), abs=1e-12)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((want.low, want.high), abs=1e-12)
    assert got["treated_mean"] == pytest.approx(a.mean()) and got["reference_mean"] == pytest.approx(b.mean())


def test_welch_difference_of_two_stores_contrasts_equals_scipys(summarise):
    x, y = [0.11, 0.04, 0.02, 0.16, 0.13], [-0.23, 0.02, 0.15, 0.09, 0.10]
    got = summarise.welch({"per_seed": x}, {"per_seed": y})
    test = stats.ttest_ind(x, y, equal_var=False)
    ci = test.confidence_interval(0.95)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert got["p"] == pytest.approx(test.pvalue, abs=1e-12) and got["df"] == pytest.approx(test.df)


@pytest.mark.parametrize("term, margin, verdict", [
    ({"effect": -0.2, "p_holm": 0.001, "p_equivalent_holm": 1.0, "mde": 0.07}, 0.05, "negative"),
    ({"effect": 0.09, "p_holm": 0.024, "p_equivalent_holm": 0.9, "mde": 0.1}, 0.05, "positive"),
    ({"effect": -0.01, "p_holm": 0.55, "p_equivalent_holm": 0.01, "mde": 0.06}, 0.05, "null (within +-0.05)"),
    ({"effect": 0.03, "p_holm": 0.7, "p_equivalent_holm": 0.3, "mde": 0.26}, 0.05, "unresolved (MDE 0.260)"),
])
def test_verdict_of_a_judged_term(summarise, term, margin, verdict):
    assert summarise.verdict(term, margin, 0.05) == verdict


def test_the_summary_intervals_called_95_percent_cover_about_95_percent_on_planted_screens(summarise):
    """Planted screens shaped like round 2's: 5 seeds, a shared per-seed warm-start effect that pairing removes,
    and two stores whose contrasts' noise differs 13-fold (the spread seen across sigx's cells). Each interval
    must cover its planted difference ~95% of the time; the Welch one is the interval that must hold under
    that unequal noise (a pooled-variance interval would not)."""
    rng = np.random.default_rng(20261130)
    repeats, seeds = 2000, range(5)
    paired_hits = welch_hits = 0
    for _ in range(repeats):
        seed_effect = rng.normal(0.0, 0.1, size=5)  # shared by both cells of a store, removed by pairing
        treated = {s: 0.40 + 0.03 + seed_effect[s] + rng.normal(0.0, 0.04) for s in seeds}
        reference = {s: 0.40 + seed_effect[s] + rng.normal(0.0, 0.04) for s in seeds}
        sparse = summarise.paired(treated, reference)
        paired_hits += sparse["ci_low"] <= 0.03 <= sparse["ci_high"]
        quiet_store = {"per_seed": list(rng.normal(-0.02, 0.04 / 13, size=5))}  # 13x smaller noise
        welch = summarise.welch(sparse, quiet_store)
        welch_hits += welch["ci_low"] <= 0.05 <= welch["ci_high"]
    # Binomial SD of a coverage estimate over 2000 repeats is 0.005: +-0.015 is three of them.
    assert abs(paired_hits / repeats - 0.95) < 0.015
    assert abs(welch_hits / repeats - 0.95) < 0.015
