"""Learning smoke test: a short GRPO run on the tiny model must raise the held-out reward, measured.

It is the CPU demo (recipes/tiny.yaml, same model and warm start) cut to 40 steps. Calibration on 3 seeds, with
the warm start before critique examples were added: 0.559 -> 0.723 / 0.725 / 0.707 after 40 steps. With the
current warm start the start is 0.615 and 100 steps reach 0.87-0.89, so the +0.08 threshold keeps its margin.
"""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sigx.cli import app
from sigx.config import load_recipe
from sigx.runs import read_jsonl
from sigx.train import run_training

RECIPES = Path(__file__).parent.parent / "recipes"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    recipe = load_recipe(RECIPES / "tiny.yaml", ["training.steps=40", "logging.wandb=disabled"])
    summary = run_training(recipe, run_dir=run_dir)
    return run_dir, summary


def test_grpo_raises_held_out_reward(smoke_run):
    run_dir, summary = smoke_run
    curve = [r["eval/reward"] for r in read_jsonl(run_dir / "metrics.jsonl") if "eval/reward" in r]
    assert len(curve) == 5  # step 0 and every 10 steps
    assert summary["final_reward"] >= summary["start_reward"] + 0.08, curve
    assert max(curve[-2:]) > curve[0] + 0.08, curve


def test_updates_are_off_policy(smoke_run):
    rows = [r for r in read_jsonl(smoke_run[0] / "metrics.jsonl") if "ratio_mean" in r]
    # with two mini-batches, half the updates see a policy that already moved: ratios are not all exactly 1
    assert any(abs(r["ratio_mean"] - 1) > 1e-4 for r in rows)
    assert all(0 <= r["clip_fraction"] < 0.5 for r in rows)


def test_run_directory_contents(smoke_run):
    run_dir, summary = smoke_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["training"]["steps"] == 40 and config["task"]["name"] == "arithmetic"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(41))
    for key in ("reward", "loss", "clip_fraction", "entropy", "rollout_tokens_per_s", "step_s"):
        assert key in rows[1]


def test_cli_train_search_task(tmp_path):
    """The multi-turn task through the CLI, briefly: turns happen and the run directory is written."""
    result = CliRunner().invoke(app, [
        "train", str(RECIPES / "tiny-search.yaml"), "--run-dir", str(tmp_path / "run"),
        "--set", "training.steps=2", "--set", "model.tiny.sft_steps=20", "--set", "model.tiny.hidden_size=64",
        "--set", "task.eval_prompts=8", "--set", "training.eval_every=2", "--set", "logging.wandb=disabled",
    ])
    assert result.exit_code == 0, result.output
    assert "held-out reward" in result.output
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert rows[-1]["step"] == 2 and rows[-1]["turns"] >= 1
