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
