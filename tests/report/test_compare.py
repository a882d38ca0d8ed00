"""`sigx compare A B`: each term's effect in B minus A, Welch over per-seed estimates, Holm over the terms.

Planted stores copy the project's shape (a shared seed effect within a store; noise that differs 13-fold, here
between the two stores, as it did between sigx's cells); each test states the level it checks."""

import gc
import json
import math

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from sigx.cli import app
from sigx.report.compare import compare, per_seed_effects
from test_report import make_store, noise
from test_report_error_rates import store

FACTORS = ["sspo", "sorl", "staleness"]
MARGIN = 0.02


@pytest.fixture(autouse=True)
def no_full_collections(monkeypatch):
    monkeypatch.setattr(gc, "collect", lambda *args: 0)  # statsmodels' Holm collects on every call


def with_terms(base, size: float):
    """``base`` plus ``size`` on every term's effect (effect = 2 x coefficient of the coded product)."""
    def mean(on: set) -> float:
        coded = {f: 1.0 if f in on else -1.0 for f in FACTORS}
        products = [coded[a] for a in FACTORS] + [coded[a] * coded[b] for i, a in enumerate(FACTORS)
                                                  for b in FACTORS[i + 1:]] + [math.prod(coded.values())]
        return base(on) + size / 2 * sum(products)
    return mean


def baseline_means(on: set) -> float:
    return 0.5 + 0.05 * ("sspo" in on) - 0.1 * ({"sorl", "staleness"} <= on)


def planted_pair(rng, b_mean, seeds_a=5, seeds_b=4, noise_a=0.003):
    a = store(baseline_means, rng, seeds=seeds_a, noise=lambda on: noise_a, factors=FACTORS)
    b = store(b_mean, rng, seeds=seeds_b, noise=lambda on: 13 * noise_a, factors=FACTORS)  # 13x A's noise
    b.name = "planted-b"
    return a, b


def test_null_differences_are_covered_95_percent_and_a_false_differs_call_is_rare():
    """Every term's effect the same in both stores, B 13x noisier and with fewer seeds: each term's 95% interval
    covers 0 in 93-97% of draws and the chance of any 'differs' among the 7 terms is <= 5% (+2 SEs)."""
    rng = np.random.default_rng(41)
    draws, covered, any_false = 400, 0, 0
    for _ in range(draws):
        table = compare(*planted_pair(rng, baseline_means), "final_reward", MARGIN).table
        covered += int(((table.ci_low <= 0) & (0 <= table.ci_high)).sum())
        any_false += (table.verdict == "differs").any()
    assert len(table) == 7
    assert 0.93 <= covered / (draws * 7) <= 0.97, covered / (draws * 7)
    assert any_false / draws <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / draws), any_false / draws


def test_differences_at_the_margin_are_rarely_called_the_same_and_real_ones_are_found():
    """Stores quiet enough for 'same' calls (A's noise 0.0005, B's 13x that): every term 0.02 larger in B (exactly
    the margin) gives any 'same within +-0.02' call among the 7 terms in <= 5% of draws (+2 SEs), while with no
    difference most terms are shown the same; a 0.03 difference is called 'differs' in most draws."""
    rng = np.random.default_rng(43)
    draws, any_same, same_when_equal, differs = 300, 0, 0, 0
    for _ in range(draws):
        table = compare(*planted_pair(rng, with_terms(baseline_means, MARGIN), noise_a=0.0005), "final_reward",
                        MARGIN).table
        any_same += table.verdict.str.startswith("same").any()
    assert any_same / draws <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / draws), any_same / draws
    for _ in range(50):
        table = compare(*planted_pair(rng, baseline_means, noise_a=0.0005), "final_reward", MARGIN).table
        same_when_equal += int(table.verdict.str.startswith("same").sum())
        table = compare(*planted_pair(rng, with_terms(baseline_means, 0.03), noise_a=0.0005), "final_reward",
                        MARGIN).table
        differs += int((table.verdict == "differs").sum())
    assert same_when_equal / (50 * 7) > 0.5, same_when_equal / (50 * 7)
    assert differs / (50 * 7) > 0.5, differs / (50 * 7)


def test_the_difference_is_welchs_on_the_per_seed_effects_computed_by_hand(tmp_path):
    """2 x 2 stores by hand: a seed's SSPO effect is the mean of its two SSPO-on cells minus its two SSPO-off
    cells; the comparison is scipy's Welch test on those per-seed values."""
    cells_a = {0: {(0, 0): 0.50, (1, 0): 0.60, (0, 1): 0.55, (1, 1): 0.69},
               1: {(0, 0): 0.52, (1, 0): 0.63, (0, 1): 0.57, (1, 1): 0.74},
               2: {(0, 0): 0.49, (1, 0): 0.58, (0, 1): 0.56, (1, 1): 0.70}}
    cells_b = {0: {(0, 0): 0.40, (1, 0): 0.41, (0, 1): 0.45, (1, 1): 0.47},
               1: {(0, 0): 0.42, (1, 0): 0.46, (0, 1): 0.44, (1, 1): 0.43},
               2: {(0, 0): 0.41, (1, 0): 0.40, (0, 1): 0.47, (1, 1): 0.50},
               3: {(0, 0): 0.43, (1, 0): 0.47, (0, 1): 0.41, (1, 1): 0.46}}
    from sigx.report.load import load_ablation

    a = load_ablation(make_store(tmp_path / "a", ["sspo", "sorl"], [0, 1, 2],
                                 lambda on, seed: cells_a[seed][(on["sspo"], on["sorl"])]))
    b = load_ablation(make_store(tmp_path / "b", ["sspo", "sorl"], [0, 1, 2, 3],
                                 lambda on, seed: cells_b[seed][(on["sspo"], on["sorl"])]))

    def sspo_effect(cells):
        return np.array([(c[(1, 0)] + c[(1, 1)] - c[(0, 0)] - c[(0, 1)]) / 2 for c in cells.values()])

    x, y = sspo_effect(cells_a), sspo_effect(cells_b)
    assert per_seed_effects(a, "final_reward")[0]["sspo"][2] == pytest.approx(x, abs=1e-12)
    row = compare(a, b, "final_reward", 0.05).table.set_index("term").loc["sspo"]
    want = stats.ttest_ind(y, x, equal_var=False)
    ci = want.confidence_interval(0.95)
    assert row.difference == pytest.approx(y.mean() - x.mean(), abs=1e-12)
    assert (row.ci_low, row.ci_high, row.p) == pytest.approx((ci.low, ci.high, want.pvalue), abs=1e-12)
    assert (row.seeds_a, row.seeds_b, row.df) == (3, 4, pytest.approx(want.df))


def test_the_cli_writes_the_comparison_and_refuses_bad_input_in_one_line(tmp_path):
    a = make_store(tmp_path / "sparse", ["sspo", "sorl"], [0, 1, 2], lambda on, s: 0.5 + 0.1 * on["sspo"]
                   + noise(s, on, 0.005))
    b = make_store(tmp_path / "dense", ["sspo", "sorl"], [0, 1, 2], lambda on, s: 0.5 + 0.0 * on["sspo"]
                   + noise(s + 7, on, 0.005))
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--out", str(out), "--format", "md",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    md = (out / "sparse-vs-dense" / "compare.md").read_text()
    assert "A = `sparse`, B = `dense`; metric `final_reward`, margin 0.02" in md
    assert "| sspo | technique | +0.1" in md and "differs |" in md
    assert "sparse declares no metric: final_reward is the default, chosen at comparison time" in md
    assert "sparse against" not in result.output and "dense against sparse" in result.output
    for args, expected in [([str(a), str(a)], "the same store as"),
                           ([str(a), str(tmp_path / "none")], "not a directory"),
                           ([str(a), str(b), "--metric", "no_such_metric"], "no finished run reports 'no_such_metric'"),
                           ([str(a), str(b), "--format", "pdf"], "--format: unknown format pdf")]:
        result = CliRunner().invoke(app, ["compare", *args, "--out", str(out)])
        assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output, result.output


def test_archived_runs_compare_as_their_stores_do(tmp_path):
    """Two stores' runs.csv (what results/ keeps) with their recipes give the stores' own comparison."""
    runner = CliRunner()
    stores = {}
    for name, shift in (("warm1", 0.1), ("warm2", 0.04)):
        stores[name] = make_store(tmp_path / name, ["sspo", "sorl"], [0, 1, 2], lambda on, s, shift=shift: 0.5
                                  + shift * on["sspo"] + noise(s, on, 0.005))
        assert runner.invoke(app, ["report", str(stores[name]), "--out", str(tmp_path / "kept"), "--format",
                                   "csv"]).exit_code == 0
        recipe = f"name: {name}\nablation:\n  factors: [sspo, sorl]\n  seeds: [0, 1, 2]\n"
        (tmp_path / f"{name}.yaml").write_text(recipe)
    direct = runner.invoke(app, ["compare", str(stores["warm1"]), str(stores["warm2"]), "--out", str(tmp_path / "d"),
                                 "--format", "json"])
    archived = runner.invoke(app, ["compare", str(tmp_path / "kept" / "warm1" / "runs.csv"),
                                   str(tmp_path / "kept" / "warm2" / "runs.csv"), "--recipe-a",
                                   str(tmp_path / "warm1.yaml"), "--recipe-b", str(tmp_path / "warm2.yaml"),
                                   "--out", str(tmp_path / "k"), "--format", "json"])
    assert direct.exit_code == 0 and archived.exit_code == 0, direct.output + archived.output
    rows = [json.loads((tmp_path / d / "warm1-vs-warm2" / "compare.json").read_text())["rows"] for d in ("d", "k")]
    assert [r["term"] for r in rows[0]] == [r["term"] for r in rows[1]] == ["sspo", "sorl", "sspo x sorl"]
    for direct_row, archived_row in zip(*rows):
        assert archived_row["difference"] == pytest.approx(direct_row["difference"], abs=1e-12)
        assert archived_row["p"] == pytest.approx(direct_row["p"], abs=1e-12)
    assert rows[0][0]["difference"] == pytest.approx(-0.06, abs=0.02)
