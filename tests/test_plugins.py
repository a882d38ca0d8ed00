"""Adding a technique, a task, a launcher, an advantage estimator or a baseline loss touches no file of sigx: each
is its own code plus one registration call, made here, in the test file alone (docs/engine.md, "Adding a ...").
The registrations are undone after each test, so that the rest of the suite sees only the built-in plug-ins."""

import json
from typing import Literal

import pytest
import torch
import yaml
from pydantic import Field
from typer.testing import CliRunner

import sigx.ablation.launchers as launchers
import sigx.config as config
import sigx.engine.advantages as advantages
import sigx.engine.backends as backends
import sigx.engine.hooks as hooks
import sigx.engine.losses as losses
import sigx.tasks as tasks
from sigx.ablation.cell import run_cell
from sigx.ablation.launchers import Event, Launcher, payload, register_launcher
from sigx.cli import app
from sigx.config import ArithmeticTaskConfig, RecipeError, TechniqueConfig, recipe_from_data
from sigx.engine.hooks import Technique, TechniqueError, register_technique
from sigx.engine.metrics import Room
from sigx.tasks import register_task
from sigx.tasks.arithmetic import ArithmeticTask
from sigx.techniques import build


# ------------------------------------------------------------------------------- the plug-ins, as a user writes them
class BonusConfig(TechniqueConfig):
    """A toy technique's section: a constant added to every response's reward."""

    bonus: float = Field(0.25, ge=0, description="added to each response's reward")


class RewardBonus(Technique):
    """Adds ``bonus`` to every reward (a shift GRPO's group normalisation cancels), logs and summarises it."""

    name = "reward_bonus"
    config_class = BonusConfig
    room = {"bonus_seen": Room("bonus", "first", "the bonus the first step added")}

    def shape_rewards(self, trajectories) -> None:
        for t in trajectories:
            t.reward += self.config.bonus

    def metrics(self, trajectories) -> dict[str, float]:
        return {"bonus": self.config.bonus}

    def summary(self, history: list[dict]) -> dict:  # its own rows: no "reward_bonus/" prefix to strip
        return {"bonus_steps": sum("bonus" in row for row in history)}


class CountdownConfig(ArithmeticTaskConfig):
    """A toy task's section: arithmetic chains under another name."""

    name: Literal["countdown"] = Field("countdown", description="the task")


class CountdownTask(ArithmeticTask):
    name = "countdown"


class InlineLauncher(Launcher):
    """Runs each cell in this process, and remembers which it ran."""

    name = "inline"
    ran: list[str] = []

    def launch(self, cells, report):
        results = []
        for cell in cells:
            report(Event("started", cell.id))
            result = run_cell(str(self.store.root.resolve()), payload(cell), cell.id, self.group, console=self.console)
            InlineLauncher.ran.append(cell.id)
            report(Event("finished", cell.id, result=result))
            results.append(result)
        return results


def median_baseline_advantages(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """A_i = r_i - median(r_group(i)) (torch's median: the lower middle value of an even group). Counts its calls,
    so a test sees the trainer use it."""
    median_baseline_advantages.calls += 1
    out = torch.zeros_like(rewards)
    for group in groups.unique():
        member = groups == group
        out[member] = rewards[member] - rewards[member].median()
    return out


median_baseline_advantages.calls = 0


def unclipped_loss(x, settings):
    """REINFORCE with the importance ratio, no trust region: loss_t = -r_t A, r_t = exp(logp_t - logp_old_t).
    Reads ``training.lr`` as its settings, only to be a loss with training settings (a baseline loss). Counts its
    calls."""
    unclipped_loss.calls += 1
    ratio = torch.exp(x.logprobs - x.old_logprobs)
    return -ratio * x.advantages[:, None], {"clip_fraction": torch.zeros(()), "ratio_mean": ratio.detach().mean()}


unclipped_loss.calls = 0


@pytest.fixture
def plugins():
    """Register the three plug-ins (one call each), and undo it afterwards."""
    saved = [(d, dict(d)) for d in (hooks.TECHNIQUES, config.TECHNIQUE_CONFIGS, tasks.TASKS, config.TASK_CONFIGS,
                                    launchers.LAUNCHERS, advantages.ADVANTAGE_ESTIMATORS, losses.POLICY_LOSSES,
                                    backends.ROLLOUT_BACKENDS)]
    names = [(n, list(n)) for n in (config.EXECUTORS, config.ADVANTAGE_NAMES, config.POLICY_LOSS_NAMES,
                                     config.ROLLOUT_BACKEND_NAMES)]
    register_technique(RewardBonus)
    register_task("countdown", CountdownTask, config=CountdownConfig)
    register_launcher(InlineLauncher)
    InlineLauncher.ran = []
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)
    for registry, before in names:
        registry[:] = before


SMALL = {
    "name": "plugins",
    "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
                       "intermediate_size": 64, "sft_steps": 20}},
    "task": {"name": "countdown", "eval_prompts": 8},
    "rollout": {"group_size": 2, "max_new_tokens": 24},
    "training": {"steps": 3, "prompts_per_step": 2, "eval_every": 3, "eval_samples": 1},
    "techniques": {"reward_bonus": {"bonus": 0.5}},
    "ablation": {"factors": ["reward_bonus", "sspo"], "seeds": [0], "executor": "inline"},
    "logging": {"wandb": "disabled"},
}


def test_registered_plugins_are_recipe_names_like_the_built_in_ones(plugins):
    recipe = recipe_from_data(SMALL)
    assert recipe.task.name == "countdown" and isinstance(recipe.task, CountdownConfig)
    assert recipe.techniques.reward_bonus.bonus == 0.5 and not recipe.techniques.reward_bonus.enabled
    assert recipe.ablation.executor == "inline"
    assert config.technique_order() == ("search_p1", "gcrl", "sspo", "sorl", "reward_bonus")
    # a recipe that leaves the section out gets it, off; the dump carries it
    bare = recipe_from_data({"task": {"name": "countdown"}})
    assert bare.techniques.reward_bonus.enabled is False
    assert bare.model_dump(mode="json")["techniques"]["reward_bonus"] == {"enabled": False, "bonus": 0.25}
    # its fields are checked like a built-in section's, with the field's path
    with pytest.raises(RecipeError) as err:
        recipe_from_data({**SMALL, "techniques": {"reward_bonus": {"bonus": -1, "bonsu": 2}}}, "r.yaml")
    assert err.value.problems == [
        "r.yaml: techniques.reward_bonus.bonus: Input should be greater than or equal to 0 (got -1)",
        "r.yaml: techniques.reward_bonus.bonsu: unknown field; allowed: enabled, bonus"]
    with pytest.raises(RecipeError) as err:
        recipe_from_data({"techniques": {"reward_bonsu": {}}}, "r.yaml")
    assert err.value.problems == ["r.yaml: techniques.reward_bonsu: unknown field; allowed: search_p1, gcrl, sspo, "
                                  "sorl, reward_bonus"]


def test_names_stay_unknown_without_their_registration():
    for data, expected in [({"task": {"name": "countdown"}}, "task: unknown task 'countdown'; allowed: arithmetic"),
                           ({"techniques": {"reward_bonus": {}}}, "techniques.reward_bonus: unknown field"),
                           ({"ablation": {"executor": "inline"}}, "ablation.executor: unknown executor 'inline'; "
                                                                  "allowed: local, ray, slurm"),
                           ({"training": {"advantage": "median_baseline"}}, "training.advantage: unknown advantage "
                                                                            "estimator 'median_baseline'; allowed: "
                                                                            "grpo, dr_grpo, rloo"),
                           ({"training": {"policy_loss": "sspo"}}, "training.policy_loss: unknown policy loss "
                                                                   "'sspo'; allowed: ppo_clip, gspo"),
                           ({"rollout": {"backend": "sglang"}}, "rollout.backend: unknown rollout backend 'sglang'; "
                                                                "allowed: hf, hf_synced, vllm")]:
        with pytest.raises(RecipeError) as err:
            recipe_from_data(data, "r.yaml")
        assert expected in err.value.problems[0]


def test_the_recipes_names_are_the_engines_registries():
    """What a recipe may name is the registries' content: the built-in names the config knows before the engine is
    imported are exactly the engine's registrations (a technique's own loss is no baseline loss)."""
    import sigx.techniques  # noqa: F401  (registers the technique losses)

    assert list(config.ADVANTAGE_NAMES) == list(advantages.ADVANTAGE_ESTIMATORS)
    assert list(config.ROLLOUT_BACKEND_NAMES) == list(backends.ROLLOUT_BACKENDS)
    assert list(config.POLICY_LOSS_NAMES) == [n for n, spec in losses.POLICY_LOSSES.items() if spec.training_settings]
    assert {"sspo", "sorl"} <= set(losses.POLICY_LOSSES) - set(config.POLICY_LOSS_NAMES)


def test_a_registered_estimator_and_loss_are_recipe_names_and_the_run_uses_them(plugins, tmp_path):
    advantages.register_advantage("median_baseline")(median_baseline_advantages)
    losses.register_policy_loss("unclipped", zero_at_zero_advantage=True, training_settings=lambda t: t.lr)(
        unclipped_loss)
    rewards, groups = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 1.0]), torch.tensor([0, 0, 0, 1, 1, 1, 1])
    # group 0: median 0 -> 1, 0, 0; group 1 (1, 0.5, 1, 1): lower middle value 1 -> 0, -0.5, 0, 0
    assert torch.equal(median_baseline_advantages(rewards, groups), torch.tensor([1.0, 0.0, 0.0, 0.0, -0.5, 0.0, 0.0]))
    data = {**SMALL, "task": {"name": "arithmetic", "eval_prompts": 8}, "techniques": {},
            "training": {**SMALL["training"], "advantage": "median_baseline", "policy_loss": "unclipped",
                         "skip_zero_advantage": False}}  # the loss runs even where every group's reward is equal
    recipe = recipe_from_data(data)
    assert (recipe.training.advantage, recipe.training.policy_loss) == ("median_baseline", "unclipped")
    assert hooks.resolve_policy_loss([], recipe.training).name == "unclipped"
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    estimated, lost = median_baseline_advantages.calls, unclipped_loss.calls
    result = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert median_baseline_advantages.calls - estimated == 3  # one call per step
    assert unclipped_loss.calls - lost == 3 * 2  # one per mini-batch (2 a step: SMALL's default), each step


def test_a_technique_that_needs_more_of_a_task_says_what_is_missing(plugins):
    class NoPaths(CountdownTask):
        path_steps = None  # Search-P1's protocol needs it

    recipe = recipe_from_data({**SMALL, "techniques": {"search_p1": {"enabled": True}}})

    class Engine:
        task = NoPaths(recipe.task)
        generate, device = None, "cpu"

    with pytest.raises(TechniqueError, match=r"techniques.search_p1: task 'countdown' lacks path_steps, which "
                                             r"search_p1 needs of a task \(PathTask in sigx.techniques.search_p1\)"):
        build(recipe, Engine())


def test_an_ablation_of_a_registered_technique_on_a_registered_task_through_a_registered_launcher(plugins, tmp_path):
    data = json.loads(json.dumps(SMALL))
    data["ablation"]["output_dir"] = str(tmp_path / "ablations")
    path = tmp_path / "plugins.yaml"
    path.write_text(yaml.safe_dump(data))
    runner = CliRunner()
    result = runner.invoke(app, ["ablate", str(path)])
    assert result.exit_code == 0, result.output
    # cells are named in technique order: the built-in four, then the registered ones
    assert sorted(InlineLauncher.ran) == ["baseline/seed0", "reward_bonus/seed0", "sspo+reward_bonus/seed0",
                                          "sspo/seed0"]
    store = tmp_path / "ablations" / "plugins"
    on = json.loads((store / "reward_bonus" / "seed0" / "summary.json").read_text())
    off = json.loads((store / "baseline" / "seed0" / "summary.json").read_text())
    assert on["techniques"] == ["reward_bonus"] and on["bonus_steps"] == 3  # its summary, from its own 3 step rows
    assert on["room"]["bonus_seen"] == {"value": 0.5, "about": "the bonus the first step added"}
    assert "bonus_seen" not in off["room"] and set(off["room"]) == {"turns", "clip_fraction", "log_ratio_abs",
                                                                    "zero_variance_groups"}
    metrics = [json.loads(line) for line in (store / "reward_bonus" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert all(row["reward_bonus/bonus"] == 0.5 for row in metrics if row["step"] > 0)
    # the shaped reward carries the bonus; the outcome reward does not
    assert all(row["shaped_reward"] == pytest.approx(row["reward"] + 0.5) for row in metrics if row["step"] > 0)
    # the report reads the technique's room and summary through the store: nothing in sigx/report names them
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(store), "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "plugins" / "report.json").read_text())
    assert report["room_measures"]["bonus_seen"] == "the bonus the first step added"
    assert report["room"][0]["bonus_seen"] == 0.5  # the mean over the runs that have it
    by_rows = {row["runs"]: row for row in report["room"]}  # and per technique level: its diagnostics beside it
    assert by_rows["reward_bonus=on"]["n"] == 2 and by_rows["reward_bonus=on"]["bonus_seen"] == 0.5
    assert by_rows["reward_bonus=off"]["n"] == 2 and by_rows["reward_bonus=off"]["bonus_seen"] is None
    assert [row["runs"] for row in report["room"]] == ["all runs", "reward_bonus=off", "reward_bonus=on", "sspo=off",
                                                        "sspo=on"]  # in the store's factor order
    assert {run["bonus_steps"] for run in report["runs"] if run["reward_bonus"]} == {3}
