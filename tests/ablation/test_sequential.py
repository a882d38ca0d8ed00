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
    from sigx.report.build import build_report

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


def test_until_mde_adds_seeds_while_a_main_effect_mde_is_above_target_spending_alpha_over_the_looks(tmp_path):
    from sigx.ablation.looks import load_plan
    from sigx.ablation.sequential import run_sequential
    from sigx.report.load import load_ablation
    from sigx.report.build import build_report

    # Cells this small all reward 0 (no variance, no MDE at all); their step time varies from run to run, so it
    # stands in for a metric with seed-to-seed noise: the store logic is what is tested.
    recipe = small_recipe(tmp_path / "a", seeds=[0, 1], metric="median_step_s", margin=0.5)
    outcome, last = run_sequential(recipe, max_seeds=3, step=1, rule="mde", target_mde=1e-9)  # out of reach
    plan = load_plan(Path(outcome.root))
    assert (plan.rule, plan.target_mde, plan.alpha_per_look) == ("mde", 1e-9, 0.025)
    assert [d["seeds"] for d in plan.looks_done] == [2, 3] and last["stopped"] == "the cap of 3 seeds reached"
    assert set(plan.looks_done[0]["mde_over"]) == {"sspo", "sorl"}  # the main effects; never the interaction
    report = build_report(load_ablation(outcome.root))
    assert report.alpha == 0.025 and any("until every main effect's MDE <= 1e-09, each tested at 0.05 / 2" in n
                                         for n in report.notes)
    with pytest.raises(StoreError, match=r"until every main effect's MDE <= 1e-09; it was fixed at the first look"):
        run_sequential(recipe, max_seeds=3, step=1, rule="mde", target_mde=0.5)
    with pytest.raises(StoreError, match="fixed at the first look"):
        run_sequential(recipe, max_seeds=3, step=1)  # nor may the rule change
    within = small_recipe(tmp_path / "b", seeds=[0, 1], metric="median_step_s", margin=0.5)
    outcome, last = run_sequential(within, max_seeds=3, step=1, rule="mde", target_mde=1e9)
    assert last["stopped"] == "every main effect's MDE <= 1e+09" and last["seeds"] == 2
    assert [p.name for p in Path(outcome.root).glob("*/seed2")] == []  # the third seed never ran


def test_a_look_says_when_a_main_effect_has_no_mde_rather_than_printing_nan(tmp_path):
    """Cells this small all reward 0: no seed-to-seed variation, so no MDE; the look counts it as over the target
    (it cannot show otherwise) and says why, not 'nan'."""
    import io

    from rich.console import Console

    from sigx.ablation.sequential import run_sequential

    printed = io.StringIO()
    recipe = small_recipe(tmp_path / "a", seeds=[0, 1], metric="final_reward", margin=0.02)
    _, last = run_sequential(recipe, max_seeds=3, step=1, rule="mde", target_mde=0.02,
                             console=Console(file=printed, width=400))
    assert last["stopped"] == "the cap of 3 seeds reached"
    why = "not estimable (no seed-to-seed variation, or too few degrees of freedom)"
    assert f"look 1/2 at 2 seeds: MDE above 0.02: sspo {why}, sorl {why}" in printed.getvalue(), printed.getvalue()
    assert "nan" not in printed.getvalue()


def test_the_cli_refuses_unusable_sequential_flags_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from ablation_fixtures import write_recipe
    from sigx.cli import app

    path = write_recipe(tmp_path, seeds=[0, 1], metric="final_reward", margin=0.5)
    for args, expected in [
        (["--until-mde", "0.02", "--until-resolved", "--max-seeds", "4"], "one stopping rule at a time"),
        (["--until-mde", "0.02", "--dry-run"], "--until-mde: needs --max-seeds N"),
        (["--until-mde", "0", "--max-seeds", "4"], "--until-mde: must be a positive effect size"),
        (["--until-mde", "nan", "--max-seeds", "4"], "--until-mde: must be a positive effect size"),
        (["--max-seeds", "4"], "--max-seeds / --seed-step: only with --until-resolved or --until-mde"),
        (["--until-mde", "0.02", "--max-seeds", "20000"], "--max-seeds: at most 10000 seeds per cell (got 20000)"),
    ]:
        result = CliRunner().invoke(app, ["ablate", str(path), *args])
        assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output, result.output
    result = CliRunner().invoke(app, ["ablate", str(path), "--until-mde", "0.02", "--max-seeds", "4", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert ("sequential seeds: 2 planned look(s) at 2, 4 seeds per cell, until every main effect's MDE <= 0.02, each "
            "tested at 0.05 / 2 = 0.025 (Bonferroni alpha spending); 0 look(s) done") in " ".join(result.output.split())
    assert "the next look is 1, at 2 seeds per cell" in result.output and "8 cells: 0 done" in result.output
    assert not list(tmp_path.rglob("sequential.json"))  # a dry run plans nothing into the store


@pytest.mark.parametrize("plan", [{"first_seeds": [0], "step": 1, "max_seeds": 2, "rule": "whenever"},
                                  {"first_seeds": [0], "step": 1, "max_seeds": 2, "rule": "mde"},
                                  {"first_seeds": [0], "step": 1, "max_seeds": 2, "target_mde": 0.02},
                                  {"first_seeds": [0], "step": 1, "max_seeds": 2, "stop": "now"},
                                  # what fuzzing the file found giving tracebacks: values of the wrong type
                                  {"first_seeds": [0], "step": 1, "max_seeds": 2, "rule": "mde", "target_mde": None},
                                  {"first_seeds": [0], "step": 1, "max_seeds": 2, "looks_done": [{"look": 1,
                                                                                                  "seeds": {"a": 1}}]},
                                  {"first_seeds": [0], "step": 1, "max_seeds": 2, "looks_done": [-0.0]},
                                  {"first_seeds": [True], "step": 1, "max_seeds": 2},
                                  {"first_seeds": [0, 0], "step": 1, "max_seeds": 2},
                                  {"first_seeds": [0], "step": "x", "max_seeds": 2},
                                  {"first_seeds": [0], "step": 1, "max_seeds": 10**12},
                                  {"first_seeds": [0], "step": 1, "max_seeds": 2, "alpha": None}])
def test_a_damaged_sequential_plan_is_refused_in_one_line(tmp_path, plan):
    import json

    from sigx.ablation.looks import load_plan

    (tmp_path / "sequential.json").write_text(json.dumps(plan))
    with pytest.raises(StoreError, match=r"sequential.json: not a sigx sequential plan"):
        load_plan(tmp_path)
