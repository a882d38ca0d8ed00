"""Checkpoints: an interrupted run resumes from its last checkpoint and continues exactly as an uninterrupted
run of the same recipe (same metrics at every step, same final weights); a checkpoint of another recipe, or an
unreadable one, is a one-line error; ``--fresh`` starts over; a completed run leaves no checkpoint behind."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sigx.config import RecipeError, load_recipe
from sigx.engine.shared import SharedEngine
from sigx.runs import read_json, read_jsonl
from sigx.train import run_training

RECIPES = Path(__file__).parent.parent / "recipes"
RUN = ["model.tiny.sft_steps=20", "model.tiny.hidden_size=64", "task.eval_prompts=8", "training.steps=6",
       "training.eval_every=3", "training.prompts_per_step=4", "training.eval_samples=1", "rollout.group_size=4",
       "training.checkpoint_every=2", "logging.wandb=disabled",
       "techniques.gcrl.enabled=true", "techniques.sspo.enabled=true"]  # GC-RL carries an RNG of its own
CLOCKS = {"rollout_s", "train_s", "step_s", "elapsed_s", "rollout_tokens_per_s", "train_tokens_per_s"}


def _quiet(step, stats):
    pass


def _stop_at(step_to_stop):
    def on_progress(step, stats):
        if step == step_to_stop:
            raise KeyboardInterrupt  # as Ctrl-C (or a kill) mid-run: the step is logged, the next never runs
    return on_progress


def _timeless(rows):
    return [{k: v for k, v in r.items() if k not in CLOCKS} for r in rows]


@pytest.fixture(scope="module")
def recipe():
    return load_recipe(RECIPES / "tiny.yaml", RUN)


@pytest.fixture(scope="module")
def engine(recipe):
    return SharedEngine(recipe)


def test_an_interrupted_run_resumes_exactly_where_it_stopped(recipe, engine, tmp_path):
    whole = run_training(recipe, run_dir=tmp_path / "whole", engine=engine, on_progress=_quiet)
    whole_weights = {k: v.clone() for k, v in engine.model.state_dict().items()}

    with pytest.raises(KeyboardInterrupt):
        run_training(recipe, run_dir=tmp_path / "cut", engine=engine, on_progress=_stop_at(5))
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 4
    assert [r["step"] for r in read_jsonl(tmp_path / "cut" / "metrics.jsonl")] == list(range(6))  # 5 was logged

    resumed = run_training(recipe, run_dir=tmp_path / "cut", engine=engine, on_progress=_quiet)
    assert resumed["resumed_from_step"] == 4 and whole["resumed_from_step"] is None
    rows = read_jsonl(tmp_path / "cut" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(7))  # step 5 re-run once, not logged twice
    # every number that is not a clock is what the uninterrupted run logged, bit for bit
    assert _timeless(rows) == _timeless(read_jsonl(tmp_path / "whole" / "metrics.jsonl"))
    assert all(torch.equal(whole_weights[k], v) for k, v in engine.model.state_dict().items())
    differs = {k for k in whole if resumed[k] != whole[k]}
    assert differs <= {"run_dir", "resumed_from_step", "wall_s", "median_step_s"}, differs
    assert read_json(tmp_path / "cut" / "summary.json")["status"] == "completed"
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()  # a completed run keeps none


def test_a_checkpoint_written_before_a_field_existed_resumes_when_that_field_keeps_its_default(recipe, engine, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_training(recipe, run_dir=tmp_path, engine=engine, on_progress=_stop_at(3))
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del state["config"]["rollout"]["decoder"], state["config"]["training"]["rollout_correction"]  # added since
    del state["digest"]  # as was the checksum: a checkpoint of an older sigx resumes unchecked
    torch.save(state, tmp_path / "checkpoint.pt")
    summary = run_training(recipe, run_dir=tmp_path, engine=engine, on_progress=_quiet)
    assert summary["resumed_from_step"] == 2


def test_a_checkpoint_of_another_recipe_is_refused_and_fresh_starts_over(recipe, engine, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_training(recipe, run_dir=tmp_path, engine=engine, on_progress=_stop_at(3))
    other = load_recipe(RECIPES / "tiny.yaml", RUN + ["training.lr=3e-4"])
    with pytest.raises(RecipeError, match=r"checkpoint\.pt: a checkpoint of a different recipe \(differs in "
                                          r"training\.lr\); start afresh with --fresh"):
        run_training(other, run_dir=tmp_path, engine=engine, on_progress=_quiet)
    # the run length may change, and so may the update's memory layout (same update, other rounding)
    longer = load_recipe(RECIPES / "tiny.yaml", RUN + ["training.steps=8", "training.micro_batch_size=3",
                                                       "training.micro_batch_tokens=200"])
    with pytest.raises(KeyboardInterrupt):
        run_training(longer, run_dir=tmp_path, engine=engine, on_progress=_stop_at(3))  # resumed at 2, stops at 3
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RecipeError, match=r"checkpoint\.pt: not a readable sigx checkpoint \(\w+\); start afresh"):
        run_training(recipe, run_dir=tmp_path, engine=engine, on_progress=_quiet)
    summary = run_training(other, run_dir=tmp_path, engine=engine, on_progress=_quiet, fresh=True)
    assert summary["resumed_from_step"] is None
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == list(range(7))


def test_cli_resumes_after_kill_minus_nine(tmp_path):
    """The same `sigx train` command, run again after a kill -9, resumes (and says so)."""
    args = [sys.executable, "-m", "sigx.cli", "train", str(RECIPES / "tiny.yaml"), "--run-dir", str(tmp_path),
            *sum((["--set", o] for o in RUN + ["training.steps=12", "training.eval_every=6"]), [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = tmp_path / "checkpoint.pt"
    while not checkpoint.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert checkpoint.exists(), "the run ended before its first checkpoint"
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(rf"^resuming {re.escape(str(tmp_path))} from its checkpoint at step \d+$", out.stderr, re.M)
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == list(range(13))
    assert read_json(tmp_path / "summary.json")["resumed_from_step"] >= 2
