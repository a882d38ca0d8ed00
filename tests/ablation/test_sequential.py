"""`sigx ablate --until-resolved`: planned looks, resumed, refused when changed."""

from pathlib import Path

import pytest

from ablation_fixtures import small_recipe
from sigx.ablation.store import StoreError
from sigx.config import RecipeError


# ------------------------------------------------------------------------------------------------ sequential seeds
def test_until_resolved_runs_the_planned_looks_records_them_and_the_report_tests_at_alpha_over_looks(tmp_path):
    from sigx.ablation.looks import load_plan
    from sigx.ablation.sequential import run_until_resolved
    from sigx.report.load import load_ablation
    from sigx.report.stats import build_report

    undeclared = small_recipe(tmp_path, seeds=[0, 1])
    with pytest.raises(RecipeError, match="ablation.metric: --until-resolved stops on the declared metric"):
        run_until_resolved(undeclared, max_seeds=3)
    recipe = small_recipe(tmp_path, seeds=[0, 1], metric="final_reward", margin=0.5)
    outcome, last = run_until_resolved(recipe, max_seeds=4, step=1)
    plan = load_plan(Path(outcome.root))
    assert [len(s) for s in plan.schedule] == [2, 3, 4] and plan.alpha_per_look == pytest.approx(0.05 / 3)
    looks = [d["seeds"] for d in plan.looks_done]
    assert looks == list(range(2, last["seeds"] + 1))  # one record per look, in order, up to where it stopped
    assert last["stopped"] in ("every declared gap resolved", "the cap of 4 seeds reached")
    report = build_report(load_ablation(outcome.root))
    assert report.alpha == pytest.approx(0.05 / 3) and any("sequential seeds: 3 planned look(s)" in n for n in report.notes)
    assert report.declaration.startswith("Analysis: metric `final_reward` as declared")
    again, _ = run_until_resolved(recipe, max_seeds=4, step=1)  # resumed: the same looks, nothing new to run
    assert again.results == [] and load_plan(Path(outcome.root)).looks_done == plan.looks_done
    with pytest.raises(StoreError, match="fixed at the first look"):
        run_until_resolved(recipe, max_seeds=6, step=1)
