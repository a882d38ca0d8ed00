"""rollout.staleness (sigx/engine/behaviour.py): each step samples from the weights of k steps earlier and takes
its behaviour log-probs from them, exactly; a stale run resumes from a checkpoint bit for bit."""

from pathlib import Path

import pytest
import torch

from sigx.config import load_recipe
from sigx.engine.shared import SharedEngine
from sigx.engine.trainer import GRPOTrainer
from sigx.engine.trajectory import collate
from sigx.runs import read_jsonl
from sigx.train import run_training

RECIPES = Path(__file__).parents[2] / "recipes"
SMALL = ["training.prompts_per_step=4",  # the demo's model (cached by the demo): its rewards vary
         "training.eval_samples=1", "rollout.group_size=4", "training.eval_every=3", "logging.wandb=disabled",
         "training.lr=1e-3"]  # big steps, so that every step's weights differ visibly


@pytest.fixture(scope="module")
def engine():
    return SharedEngine(load_recipe(RECIPES / "tiny.yaml", SMALL))


def fingerprint(model) -> tuple[float, float]:
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    return round(float(flat.sum()), 6), round(float(flat.norm()), 6)


def test_step_s_samples_the_weights_after_step_s_minus_1_minus_k(engine):
    k = 2
    trainer = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", SMALL + [f"rollout.staleness={k}"]), engine)
    sampled_with, original = [], engine.rollout.rollout
    engine.rollout.rollout = lambda *a, **kw: sampled_with.append(fingerprint(engine.model)) or original(*a, **kw)
    try:
        after = [fingerprint(engine.model)]  # the base weights
        for _ in range(6):
            trainer.step()
            after.append(fingerprint(engine.model))  # the trained weights are back after every rollout
    finally:
        del engine.rollout.rollout
    assert len(set(after)) == 7  # every step moved the weights
    assert sampled_with == [after[max(0, s - 1 - k)] for s in range(1, 7)]


def test_the_behaviour_log_probs_are_the_stale_weights_and_ratios_leave_one(engine):
    trainer = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", SMALL + ["rollout.staleness=1"]), engine)
    trainer.step()  # now the window holds [base, after step 1]; step 2 samples from the base weights
    trajectories = trainer.rollout()
    batch = collate(trajectories, trainer.advantages(trajectories), trainer.tokenizer.pad_token_id)
    trained = {k: v.clone() for k, v in engine.model.state_dict().items()}
    engine.model.load_state_dict(engine.base_state)
    expected = trainer._logprobs(engine.model, batch)
    engine.model.load_state_dict(trained)
    metrics = trainer.update(batch)
    rows = ~torch.isnan(batch.old_logprobs).all(1)
    assert rows.any()
    mask = batch.loss_mask[rows] > 0
    assert torch.allclose(batch.old_logprobs[rows][mask], expected[rows][mask], atol=1e-6)
    assert metrics["log_ratio_abs"] > 1e-3  # off-policy from the first mini-batch on


def test_on_policy_runs_are_untouched_by_the_mechanism(engine):
    trainer = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", SMALL), engine)
    assert trainer.behaviour.staleness == 0 and not trainer.behaviour.snapshots
    assert trainer.step().metrics["log_ratio_abs"] >= 0


def test_a_stale_run_resumes_exactly(engine, tmp_path):
    recipe = load_recipe(RECIPES / "tiny.yaml", SMALL + ["rollout.staleness=2", "training.steps=6",
                                                         "training.checkpoint_every=2"])
    run_training(recipe, run_dir=tmp_path / "whole", engine=engine, on_progress=lambda step, stats: None)

    def stop_at_5(step, stats):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(recipe, run_dir=tmp_path / "cut", engine=engine, on_progress=stop_at_5)
    run_training(recipe, run_dir=tmp_path / "cut", engine=engine, on_progress=lambda step, stats: None)
    clocks = {"rollout_s", "train_s", "step_s", "elapsed_s", "rollout_tokens_per_s", "train_tokens_per_s"}
    timeless = lambda rows: [{k: v for k, v in r.items() if k not in clocks} for r in rows]  # noqa: E731
    assert timeless(read_jsonl(tmp_path / "cut" / "metrics.jsonl")) == timeless(read_jsonl(tmp_path / "whole" / "metrics.jsonl"))
