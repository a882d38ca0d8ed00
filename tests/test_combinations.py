"""Every on/off combination of the four techniques trains on the shared engine, on both built-in tasks; and
GC-RL with m = 0 is exactly the baseline step."""

import itertools
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sigx.cli import app
from sigx.config import load_recipe
from sigx.engine.shared import SharedEngine
from sigx.engine.trainer import GRPOTrainer
from sigx.runs import read_jsonl
from sigx.techniques import TECHNIQUE_ORDER, build
from sigx.train import run_training

RECIPES = Path(__file__).parent.parent / "recipes"
COMBINATIONS = [c for k in range(len(TECHNIQUE_ORDER) + 1) for c in itertools.combinations(TECHNIQUE_ORDER, k)]
# skip_zero_advantage off: the loss stage of every technique must run even where two short steps' groups all tie
SHORT = ["training.steps=2", "training.eval_every=2", "training.prompts_per_step=4", "training.eval_samples=1",
         "rollout.group_size=4", "techniques.gcrl.pairs_per_step=2", "training.skip_zero_advantage=false",
         "logging.wandb=disabled"]
# The search task on a smaller, briefly warmed-up model: enough to exercise multi-turn turns and observations.
SEARCH_SMALL = ["model.tiny.sft_steps=20", "model.tiny.hidden_size=64", "task.eval_prompts=8"]


def _recipe(path, combination, extra=()):
    enable = [f"techniques.{name}.enabled=true" for name in combination]
    return load_recipe(path, SHORT + list(extra) + enable)


@pytest.fixture(scope="module")
def engines():
    return {
        "arithmetic": SharedEngine(_recipe(RECIPES / "tiny.yaml", ())),
        "search": SharedEngine(_recipe(RECIPES / "tiny-search.yaml", (), SEARCH_SMALL)),
    }


@pytest.mark.parametrize("task", ["arithmetic", "search"])
def test_all_sixteen_combinations_train(engines, task, tmp_path):
    path, extra = (RECIPES / "tiny.yaml", ()) if task == "arithmetic" else (RECIPES / "tiny-search.yaml", SEARCH_SMALL)
    assert len(COMBINATIONS) == 16
    for combination in COMBINATIONS:
        recipe = _recipe(path, combination, extra)
        run_dir = tmp_path / ("+".join(combination) or "baseline")
        summary = run_training(recipe, run_dir=run_dir, engine=engines[task])
        assert summary["status"] == "completed", combination
        last = read_jsonl(run_dir / "metrics.jsonl")[-1]
        assert torch.isfinite(torch.tensor(last["loss"])), combination
        for name in combination:  # every enabled technique logs its diagnostics
            assert any(key.startswith(f"{name}/") for key in last), (combination, name, sorted(last))
        if "gcrl" in combination and last["gcrl/critiques"] > 0:
            assert 0 <= last["gcrl/critique_accuracy"] <= 1


def test_cli_enables_all_four(tmp_path):
    result = CliRunner().invoke(app, ["train", str(RECIPES / "tiny.yaml"), "--enable", "sspo,search_p1,gcrl,sorl",
                                      "--run-dir", str(tmp_path / "run"), *sum((["--set", s] for s in SHORT), [])])
    assert result.exit_code == 0, result.output
    row = read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]
    assert {"sspo/gate_weight", "sorl/turn_clip_fraction", "search_p1/r_path", "gcrl/critiques"} <= set(row)


def test_gcrl_with_no_critiques_is_the_baseline_step(engines):
    def one_step(combination, extra=()):
        recipe = _recipe(RECIPES / "tiny.yaml", combination, extra)
        trainer = GRPOTrainer(recipe, engines["arithmetic"], build(recipe, engines["arithmetic"]))
        metrics = trainer.step().metrics
        return metrics, {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    base_metrics, base_state = one_step(())
    m0_metrics, m0_state = one_step(("gcrl",), ["techniques.gcrl.critiques_per_response=0"])
    assert m0_metrics["loss"] == base_metrics["loss"] and m0_metrics["gcrl/critiques"] == 0
    assert all(torch.equal(base_state[k], m0_state[k]) for k in base_state)
    with_critiques, _ = one_step(("gcrl",))
    assert with_critiques["loss"] != base_metrics["loss"]
