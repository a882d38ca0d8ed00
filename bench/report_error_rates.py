"""The report's error rates on planted stores shaped like results/stress, with more draws than the tests use.

    python bench/report_error_rates.py --draws 1000        # ~10 min on one core

Scenarios (the tests in tests/report/test_report_error_rates.py check the same with fewer draws):
- null: every gap 0, the stress experiment's 13x noise pattern: coverage of each gap's 95% interval (quiet
  on-policy gaps, noisy off-policy ones with SORL), and the chance of any false synergistic/redundant call;
  for comparison, the pooled (equal-variance) interval's coverage and the unadjusted per-gap false calls;
- margin: every gap at +margin, quiet cells: the chance of any false additive call;
- power: a main effect of the reported (Holm) MDE: how often it is called significant.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
gc.collect = lambda *args: 0  # statsmodels' Holm collects garbage on every call; the numbers are unchanged

from test_report_error_rates import MARGIN, additive, every_gap_at, store  # noqa: E402

from sigx.report.stats import additivity_table, factorial_effects, fit_model  # noqa: E402


def null_scenario(draws: int, rng) -> dict:
    covered, pooled_covered, any_false, any_false_unadjusted = None, None, 0, 0
    for _ in range(draws):
        ab = store(additive, rng)
        model = fit_model(ab, "final_reward")
        table = additivity_table(ab, "final_reward", MARGIN, model=model, plan_seeds=False)
        hits = ((table.gap_low <= 0) & (0 <= table.gap_high)).to_numpy().astype(int)
        covered = hits if covered is None else covered + hits
        pooled = []
        for _, row in table.iterrows():  # the old interval: the contrast from the pooled blocked fit
            from sigx.report.stats import gap_weights

            group = tuple(row.techniques.split(" + "))
            regime = ("staleness",) if row.regime != "reference" else ()
            e = model.estimate(gap_weights(model, group, regime)[0])
            pooled.append(int(e["low"] <= 0 <= e["high"]))
        pooled = np.array(pooled)
        pooled_covered = pooled if pooled_covered is None else pooled_covered + pooled
        any_false += table.verdict.isin(["synergistic", "redundant"]).any()
        any_false_unadjusted += (table.p < 0.05).any()
    labels = (table.regime + ": " + table.techniques).to_list()
    frame = pd.DataFrame({"gap": labels, "seed-paired": covered / draws, "pooled (old)": pooled_covered / draws})
    return {"coverage": frame, "any_false": any_false / draws, "any_false_unadjusted": any_false_unadjusted / draws}


def margin_scenario(draws: int, rng) -> float:
    calls = 0
    for _ in range(draws):
        table = additivity_table(store(every_gap_at(MARGIN), rng, noise=lambda on: 0.003), "final_reward", MARGIN,
                                 plan_seeds=False)
        calls += (table.verdict == "additive").any()
    return calls / draws


def power_scenario(draws: int, rng) -> tuple[float, float]:
    null = [factorial_effects(store(lambda on: 0.85, rng), "final_reward").table.set_index("term").loc["sspo", "mde"]
            for _ in range(20)]
    mde = float(np.mean(null))
    called = 0
    for _ in range(draws):
        table = factorial_effects(store(lambda on: 0.85 + mde * ("sspo" in on), rng), "final_reward").table
        called += table.set_index("term").loc["sspo", "p_holm"] < 0.05
    return mde, called / draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    null = null_scenario(args.draws, rng)
    pd.set_option("display.width", 120)
    print(f"null gaps, stress noise pattern, {args.draws} planted stores:")
    print(null["coverage"].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    coverage = null["coverage"]
    noisy = coverage.gap.str.startswith("staleness") & coverage.gap.str.contains("sorl")
    print(f"mean coverage, seed-paired: quiet/other {coverage['seed-paired'][~noisy].mean():.3f}, "
          f"noisy (off-policy with SORL) {coverage['seed-paired'][noisy].mean():.3f}; pooled (old): "
          f"{coverage['pooled (old)'][~noisy].mean():.3f} / {coverage['pooled (old)'][noisy].mean():.3f}")
    print(f"P(any false synergistic/redundant call among 22): {null['any_false']:.3f} "
          f"(unadjusted p < 0.05 anywhere: {null['any_false_unadjusted']:.3f})")
    print(f"every gap at the margin: P(any false additive call among 22): {margin_scenario(args.draws, rng):.3f}")
    mde, power = power_scenario(args.draws, rng)
    print(f"main effect of the Holm MDE ({mde:.4f}): called significant in {power:.3f} of draws")


if __name__ == "__main__":
    main()
