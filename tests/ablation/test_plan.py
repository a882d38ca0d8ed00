"""`sigx ablate`'s plan: cells, field factors, fractions, dry runs and one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from ablation_fixtures import RECIPES, SMALL, small_recipe, write_recipe
from sigx.ablation.plan import expand
from sigx.cli import app
from sigx.config import RecipeError, load_recipe, recipe_from_data


# ------------------------------------------------------------------------------------------------ plan
def test_demo_recipe_expands_to_sixteen_cells_times_three_seeds():
    cells = expand(load_recipe(RECIPES / "tiny.yaml"))
    assert len(cells) == 48 and len({c.id for c in cells}) == 48
    assert cells[0].id == "baseline/seed0" and cells[-1].id == "search_p1+gcrl+sspo+sorl/seed2"
    combos = {c.combination for c in cells}
    assert len(combos) == 16
    for combo in combos:
        assert sorted(c.seed for c in cells if c.combination == combo) == [0, 1, 2]
    gs = next(c for c in cells if c.id == "gcrl+sspo/seed1")
    assert gs.recipe.seed == 1 and gs.recipe.techniques.enabled_names() == ["gcrl", "sspo"]


def test_non_factor_techniques_stay_as_the_recipe_sets_them(tmp_path):
    data = json.loads(json.dumps(SMALL))
    data["techniques"] = {"gcrl": {"enabled": True}}
    cells = expand(recipe_from_data(data))
    assert [c.id for c in cells] == ["gcrl/seed0", "gcrl+sspo/seed0", "gcrl+sorl/seed0", "gcrl+sspo+sorl/seed0"]
    assert [c.factors_on for c in cells] == [(), ("sspo",), ("sorl",), ("sspo", "sorl")]


def test_bad_ablation_sections_name_the_field():
    for ablation, field in [({"factors": ["sspo", "dpo"]}, "ablation.factors.1"),
                            ({"seeds": [1, 1]}, "ablation: seeds must not repeat"),
                            ({"seeds": [0, True]}, "ablation.seeds.1"), ({"seeds": [0, 1.0]}, "ablation.seeds.1"),
                            ({"executor": "kubernetes"}, "ablation.executor"), ({"workers": 0}, "ablation.workers")]:
        with pytest.raises(RecipeError) as err:
            recipe_from_data({"ablation": ablation})
        assert field in str(err.value), (ablation, str(err.value))


def test_a_recipe_field_is_a_factor_with_two_levels_and_readable_cell_names(tmp_path):
    recipe = small_recipe(tmp_path, factors=["sspo", {"rollout.staleness": [0, 2]},
                                             {"field": "training.lr", "levels": [1e-4, 2e-5], "role": "control"}])
    cells = expand(recipe)  # sspo x staleness crossed; the positive control beside the baseline only
    assert [c.id for c in cells] == ["baseline/seed0", "sspo/seed0", "staleness=2/seed0", "sspo+staleness=2/seed0",
                                     "lr=2e-05/seed0"]
    stale = next(c for c in cells if c.id == "sspo+staleness=2/seed0")
    assert stale.recipe.rollout.staleness == 2 and stale.recipe.training.lr == 1e-4 and stale.techniques == ("sspo",)
    assert stale.factors_on == ("sspo", "staleness")
    assert next(c for c in cells if c.id == "lr=2e-05/seed0").recipe.training.lr == 2e-5


def test_a_fractional_design_runs_half_the_cells_baseline_included(tmp_path):
    factors = ["search_p1", "gcrl", "sspo", "sorl", {"rollout.staleness": [0, 2]}]
    cells = expand(small_recipe(tmp_path, factors=factors, fraction=1))
    assert len(cells) == 16 and cells[0].id == "baseline/seed0"
    # resolution V: every pair of factors appears at all four level combinations, equally often
    for a, b in [("search_p1", "gcrl"), ("sspo", "staleness"), ("gcrl", "staleness")]:
        counts = {(a in c.factors_on, b in c.factors_on) for c in cells}
        assert len(counts) == 4
    with pytest.raises(RecipeError, match="fraction 1: .*resolution IV.*allowed for 4 factors: 0"):
        small_recipe(tmp_path, factors=["search_p1", "gcrl", "sspo", "sorl"], fraction=1)


def test_dry_run_of_a_fraction_prints_its_design_and_aliases(tmp_path):
    path = write_recipe(tmp_path, factors=["search_p1", "gcrl", "sspo", "sorl", {"rollout.staleness": [0, 2]}],
                        fraction=1)
    result = CliRunner().invoke(app, ["ablate", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2^(5-1) x 1 seed(s) = 16 cells" in result.output
    assert "resolution V" in result.output and "generator: staleness = -search_p1·gcrl·sspo·sorl" in result.output
    assert "sspo x staleness = search_p1 x gcrl x sorl" in result.output
    # the aliases are one line of the log (sigx.console), not broken at 80 columns where grep would miss them
    (aliases,) = [line for line in result.output.splitlines() if line.startswith("aliases (")]
    assert "search_p1 = gcrl x sspo x sorl x staleness" in aliases and aliases.endswith("= search_p1 x gcrl x sspo")


@pytest.mark.parametrize("factor, message", [
    ({"rollout.backend": ["hf", "hf_synced"]}, "except the rollout engine's"),
    ({"model.tiny.hidden_size": [32, 64]}, "a factor may vary rollout, training, techniques fields"),
    ({"training.lrr": [1, 2]}, "training.lrr: unknown field"),
    ({"training.lr": [1e-4, -1]}, "level -1: training.lr: Input should be greater than 0"),
    ({"rollout.staleness": [1, 1]}, "the two levels must differ"),
    ("dpo", "unknown technique 'dpo'; a factor is a technique"),
])
def test_bad_factors_are_one_line_errors_naming_the_factor(tmp_path, factor, message):
    with pytest.raises(RecipeError) as err:
        small_recipe(tmp_path, factors=["sspo", factor])
    (line,) = err.value.problems
    assert "ablation.factors.1" in line and message in line, line


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    path = write_recipe(tmp_path, seeds=[0, 1])
    result = CliRunner().invoke(app, ["ablate", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    for cell_id in ["baseline/seed0", "sspo+sorl/seed1"]:
        assert cell_id in result.output
    assert "8 cells: 0 done, 0 failed, 8 pending" in result.output
    assert not (tmp_path / "ablations").exists()


def test_cli_errors_are_one_line(tmp_path):
    path = write_recipe(tmp_path)
    result = CliRunner().invoke(app, ["ablate", str(path), "--executor", "kubernetes"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "ablation.executor" in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------------------ declared metric
def test_a_declared_metric_no_run_writes_is_refused_before_any_run(tmp_path):
    """A typo in ``ablation.metric`` found by the report, after the runs, would leave only a metric chosen at
    report time; `sigx ablate` and `sigx validate` refuse it first, in one line naming the file and field."""
    runner = CliRunner()
    typo = write_recipe(tmp_path, metric="reward_acu")
    for command in (["ablate", str(typo), "--dry-run"], ["ablate", str(typo)], ["validate", str(typo)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.output.startswith(f"error: {typo}: ablation.metric: 'reward_acu': no run writes it; declare "
                                        "one of steps, start_reward, final_reward")
        assert "reward_auc" in result.output and "final_critique_accuracy (gcrl)" not in result.output  # no gcrl
    assert not (tmp_path / "ablations").exists()  # nothing planned, nothing run


def test_a_techniques_own_metric_is_declarable_only_where_some_cell_runs_it(tmp_path):
    runner = CliRunner()
    off = write_recipe(tmp_path, metric="final_critique_accuracy")  # factors sspo, sorl: no cell runs GC-RL
    result = runner.invoke(app, ["validate", str(off)])
    assert result.exit_code == 2
    assert "'final_critique_accuracy': only gcrl writes it, and no cell runs it" in result.output
    for overrides, ablation in [({"techniques": {"gcrl": {"enabled": True}}}, {}),  # on in every cell
                                ({}, {"factors": ["gcrl", "sorl"]})]:  # on in half of them
        on = write_recipe(tmp_path, overrides, metric="final_critique_accuracy", **ablation)
        assert runner.invoke(app, ["ablate", str(on), "--dry-run"]).exit_code == 0
    for metric in ("reward_auc", "tokens_per_s", "wall_s"):  # the engine's numbers and the report's derived one
        assert runner.invoke(app, ["validate", str(write_recipe(tmp_path, metric=metric))]).exit_code == 0


def test_a_store_declared_before_the_check_still_resumes_with_a_warning(tmp_path):
    """A store whose plan exists was declared already: refusing it now would strand its runs; it goes on, and
    the warning says the report will need --metric."""
    recipe = write_recipe(tmp_path, metric="reward_acu")
    root = tmp_path / "ablations" / "abl-test"
    root.mkdir(parents=True)
    (root / "plan.json").write_text("{}")
    result = CliRunner().invoke(app, ["ablate", str(recipe), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "ablation.metric: 'reward_acu': no run writes it" in result.output and "--metric" in result.output
