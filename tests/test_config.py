"""Recipe validation: every problem is one line naming the field path and what is allowed."""

import pytest
from typer.testing import CliRunner

from sigx.cli import app
from sigx.config import RecipeError, load_recipe, recipe_from_data

runner = CliRunner()


def problems(data, overrides=None):
    with pytest.raises(RecipeError) as err:
        recipe_from_data(data, "r.yaml", overrides)
    return err.value.problems


def test_defaults_are_a_valid_recipe():
    r = recipe_from_data({})
    assert r.model.name == "sigx/tiny" and r.task.name == "arithmetic" and r.techniques.enabled_names() == []


def test_unknown_field_lists_the_allowed_ones():
    [line] = problems({"training": {"lrr": 0.1}})
    assert line.startswith("r.yaml: training.lrr: unknown field; allowed: steps, lr,")


def test_literal_names_the_allowed_values():
    [line] = problems({"rollout": {"decoder": "paged"}})
    assert line == "r.yaml: rollout.decoder: Input should be 'dynamic' or 'static' (got 'paged')"
    [line] = problems({"rollout": {"backend": "sglang"}})  # a registry's names: the same line, from the registry
    assert line == "r.yaml: rollout.backend: unknown rollout backend 'sglang'; allowed: hf, hf_synced, vllm"


def test_task_fields_depend_on_the_task():
    [line] = problems({"task": {"name": "search", "max_ops": 3}})
    assert line.startswith("r.yaml: task.max_ops: unknown field; allowed: name, num_people")
    [line] = problems({"task": {"name": "chess"}})
    assert line == "r.yaml: task: unknown task 'chess'; allowed: arithmetic, search, gsm8k, search_qa"


def test_several_problems_each_get_a_line():
    lines = problems({"training": {"lr": -1, "steps": 0}, "seed": "x"})
    assert len(lines) == 3
    assert any(l.startswith("r.yaml: training.lr: Input should be greater than 0") for l in lines)
    assert any(l.startswith("r.yaml: training.steps: Input should be greater than or equal to 1") for l in lines)


def test_cross_field_checks():
    [line] = problems({"task": {"min_ops": 4, "max_ops": 2}})
    assert line == "r.yaml: task: min_ops (4) must be <= max_ops (2)"
    [line] = problems({"training": {"prompts_per_step": 1, "mini_batches": 9}, "rollout": {"group_size": 4}})
    assert "training.mini_batches (9) exceeds the sequences per step" in line


def test_overrides_are_typed_and_validated():
    r = recipe_from_data({}, overrides=["training.lr=3e-4", "techniques.sspo.enabled=true", "task.name=search"])
    assert r.training.lr == 3e-4 and r.techniques.sspo.enabled and r.task.name == "search"
    assert problems({}, ["training.lr=fast"])[0].startswith("r.yaml: training.lr: Input should be a valid number")
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        recipe_from_data({}, overrides=["training.lr"])


def test_on_off_switches_survive_yaml_booleans(tmp_path):
    """PyYAML reads unquoted on/off as True/False; switch fields take them back as the words."""
    path = tmp_path / "r.yaml"
    path.write_text("rollout:\n  chat_template: off\ntraining:\n  autocast: off\n")
    r = load_recipe(path)
    assert r.rollout.chat_template == "off" and r.training.autocast == "off"
    r = recipe_from_data({}, overrides=["rollout.chat_template=on", "training.autocast=off"])
    assert r.rollout.chat_template == "on" and r.training.autocast == "off"
    assert problems({}, ["training.autocast=on"]) == [
        "r.yaml: training.autocast: Input should be 'off' or 'bfloat16' (got 'on')"]


def test_yaml_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  lr: [1, 2\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}: line 3")


def test_cli_validate_prints_one_line_per_problem_and_no_traceback(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("training:\n  lr: -1\n  batch: 3\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and all(l.startswith("error: ") for l in lines)
    assert "Traceback" not in result.output
    assert runner.invoke(app, ["validate", str(tmp_path / "missing.yaml")]).output.strip() == (
        f"error: {tmp_path / 'missing.yaml'}: no such recipe file")


def test_cli_validate_ok_and_enable_errors(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: demo\n")
    result = runner.invoke(app, ["validate", str(path), "--set", "training.steps=5"])
    assert result.exit_code == 0 and result.output.startswith("ok:")
    result = runner.invoke(app, ["train", str(path), "--enable", "sspo,ppo"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --enable: unknown technique ppo; allowed: search_p1, gcrl, sspo, sorl"


def test_shipped_recipes_validate():
    from pathlib import Path

    for path in sorted(Path(__file__).parent.parent.glob("recipes/**/*.yaml")):  # screens included
        load_recipe(path)


def test_cli_train_unusable_model_or_backend_is_one_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: demo\n")
    result = runner.invoke(app, ["train", str(path), "--set", f"model.name={tmp_path / 'no-such-model'}"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"error: {path}: model.name: cannot load '{tmp_path / 'no-such-model'}'")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("kind, why", [("file", "a file, not a model directory"),
                                       ("folder", "a directory without config.json, not a saved model")])
def test_a_model_path_that_holds_no_model_says_what_it_lacks(tmp_path, kind, why):
    """transformers names the first loader that gave up (a tokenizer it could not instantiate, over five lines);
    the line names the path and what it lacks instead."""
    path = tmp_path / "r.yaml"
    path.write_text("name: demo\n")
    model = tmp_path / "model"
    model.write_text("{}") if kind == "file" else (model / "tokenizer").mkdir(parents=True)
    result = runner.invoke(app, ["train", str(path), "--set", f"model.name={model}"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip() == (f"error: {path}: model.name: cannot load '{model}': {why}; name a model "
                                     "directory (what save_pretrained writes: config.json, weights, tokenizer) or a "
                                     "hub id in the local cache"), result.output


def test_gspo_with_token_mean_gets_one_warning_line(tmp_path):
    from sigx.config import recipe_from_data, recipe_warnings

    (line,) = recipe_warnings(recipe_from_data({"training": {"policy_loss": "gspo"}}))
    assert line.startswith("training.policy_loss: gspo with loss_aggregation token-mean") and "seq-mean" in line
    assert recipe_warnings(recipe_from_data({"training": {"policy_loss": "gspo", "loss_aggregation": "seq-mean"}})) == []
    # a ratio technique replaces the loss: GSPO is not in force
    assert recipe_warnings(recipe_from_data({"training": {"policy_loss": "gspo"},
                                             "techniques": {"sspo": {"enabled": True}}})) == []
    path = tmp_path / "r.yaml"
    path.write_text("training: {policy_loss: gspo}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "warning:" in result.output and "seq-mean" in result.output


def test_every_recipe_field_is_documented_and_the_reference_is_current():
    from pathlib import Path

    from sigx.reference import render, undocumented

    assert undocumented() == []
    committed = Path(__file__).parent.parent / "docs" / "recipe.md"
    assert committed.read_text() == render(), "docs/recipe.md is stale: python -m sigx.reference > docs/recipe.md"


@pytest.mark.parametrize("command", [[]] + [[c.name or c.callback.__name__.replace("_", "-")]
                                             for c in app.registered_commands])
def test_every_help_shows_an_example(command):
    result = CliRunner().invoke(app, command + ["--help"])
    assert result.exit_code == 0 and "Example" in result.output, result.output


def test_each_command_is_one_sentence_in_the_command_list():
    """`sigx --help` lists a command by its short help: a docstring whose first paragraph runs over lines is
    printed with its line breaks there (a lone word on a line at 80 columns), so such a command says it in one;
    and `sigx CMD --help` prints each paragraph wrapped at the terminal's width, not the source's."""
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        shown = command.short_help or (command.help or "").split("\n\n")[0]
        assert shown and "\n" not in shown, (name, shown)
        assert len(shown) <= 120, (name, len(shown))
        assert all("\n" not in paragraph for paragraph in command.help.split("\n\n")), name  # rich wraps them


def test_field_roles_declared_once_give_the_lists_each_check_uses():
    """The roles on the fields derive what was six hand-kept lists in four modules; these are their values."""
    from sigx.ablation.store import STORE_RESUMABLE_CHANGES
    from sigx.checkpoint import RESUMABLE_CHANGES as CHECKPOINT_RESUMABLE
    from sigx.config import (COMPUTE_LAYOUT_FIELDS, ENGINE_FIELDS, EXECUTION_FIELDS, FACTOR_SECTIONS,
                             RESUMABLE_CHANGES, TASK_CONFIGS, field_names_with_role, role)

    layout = {("training", "micro_batch_size"), ("training", "micro_batch_tokens"),
              ("training", "skip_zero_advantage"), ("model", "gradient_checkpointing"), ("ablation", "nproc_per_cell")}
    assert ENGINE_FIELDS == ("backend", "seeding", "chat_template", "dtype", "decoder", "compile",
                             "gpu_memory_utilization", "max_model_len", "vllm_sleep", "vllm_enforce_eager")
    assert FACTOR_SECTIONS == ("rollout", "training", "techniques")
    assert COMPUTE_LAYOUT_FIELDS == layout
    ablation_execution = {("ablation", k) for k in ("executor", "workers", "ray", "slurm", "seeds", "fraction",
                                                    "output_dir")}
    assert EXECUTION_FIELDS == ablation_execution | {("logging",), ("seed",)} | layout
    assert STORE_RESUMABLE_CHANGES == EXECUTION_FIELDS | {("ablation", "address"), ("ablation", "gpus_per_cell"),
                                                          ("ablation", "cpus_per_cell")}
    assert CHECKPOINT_RESUMABLE is RESUMABLE_CHANGES
    assert RESUMABLE_CHANGES == {("ablation",), ("logging",), ("training", "steps"),
                                 ("training", "checkpoint_every")} | ablation_execution | layout
    held_out = {name: field_names_with_role(c, "held_out") for name, c in TASK_CONFIGS.items()}
    assert held_out == {"arithmetic": ("eval_prompts", "seed"), "search": ("eval_prompts",),
                        "gsm8k": ("eval_split", "eval_prompts"), "search_qa": ("eval", "seed")}
    with pytest.raises(ValueError, match="unknown field role 'fast'; allowed: engine, layout"):
        role("fast")


def test_a_rollout_correction_band_that_holds_no_weight_is_refused():
    """min >= max: torch.clamp sets every weight to max, and masking drops every token; either without a word."""
    for low in (2.0, 3.0):
        with pytest.raises(RecipeError) as err:
            recipe_from_data({"training": {"rollout_correction": "token_truncate", "rollout_correction_min": low}})
        assert err.value.problems == [f"recipe: training.rollout_correction_min: {low:g} is not below "
                                      "rollout_correction_max (2): the band [min, max] holds no weight"]
    assert recipe_from_data({"training": {"rollout_correction_min": 0.5}}).training.rollout_correction_min == 0.5


@pytest.mark.parametrize("field", ["path", "dataset", "subset", "train_split", "eval_split"])
def test_an_empty_gsm8k_source_field_is_refused(field):
    """An empty path fell through to the hub, an empty dataset or split failed only when the data loaded."""
    with pytest.raises(RecipeError) as err:
        recipe_from_data({"task": {"name": "gsm8k", field: ""}})
    assert err.value.problems == [f"recipe: task.{field}: String should have at least 1 character (got '')"]


def test_a_temperature_beyond_what_sampling_can_use_is_refused():
    """1e308 is inf in float32: the suppressed tokens' -inf / inf became NaN and torch.multinomial a traceback."""
    with pytest.raises(RecipeError) as err:
        recipe_from_data({"rollout": {"temperature": 1e308}})
    assert err.value.problems[0].startswith("recipe: rollout.temperature: Input should be less than or equal to 10000")
    assert recipe_from_data({"rollout": {"temperature": 1e4}}).rollout.temperature == 1e4
