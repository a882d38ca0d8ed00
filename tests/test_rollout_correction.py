"""Rollout-vs-trainer importance correction (training.rollout_correction): the four modes against
hand-computed weights, unknown sampler log-probs, and a run whose sampler really differs from the trainer
(a bfloat16 copy of the policy)."""

import math
from pathlib import Path

import pytest
import torch

from sigx.config import load_recipe
from sigx.engine.losses import rollout_correction
from sigx.engine.shared import SharedEngine
from sigx.engine.trainer import GRPOTrainer

RECIPES = Path(__file__).parent.parent / "recipes"
# trainer log-probs minus sampler log-probs, per token: exp -> 1.5, 0.5, 4.0 (sequence 0), 1.0, 1.2 (sequence 1)
OLD = torch.log(torch.tensor([[1.5, 0.5, 4.0], [1.0, 1.2, 1.0]]))
SAMPLED = torch.zeros(2, 3)
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


@pytest.mark.parametrize("mode, low, expected", [
    ("token_truncate", None, [[1.5, 0.5, 2.0], [1.0, 1.2]]),  # TIS: capped at 2
    ("token_truncate", 0.8, [[1.5, 0.8, 2.0], [1.0, 1.2]]),
    ("token_mask", 0.8, [[1.5, 0.0, 0.0], [1.0, 1.2]]),  # MIS: out of [0.8, 2] -> left out
    ("sequence_truncate", None, [[2.0] * 3, [1.2, 1.2]]),  # sequence 0: 1.5 * 0.5 * 4 = 3 -> 2; sequence 1: 1.2
    ("sequence_mask", None, [[0.0] * 3, [1.2, 1.2]]),
])
def test_weights_by_hand(mode, low, expected):
    weights, diag = rollout_correction(OLD, SAMPLED, MASK, mode, low, 2.0)
    assert weights[0].tolist() == pytest.approx(expected[0], rel=1e-6)
    assert weights[1, :2].tolist() == pytest.approx(expected[1], rel=1e-6)
    assert not weights.requires_grad
    flat = [w for row in expected for w in row]
    assert diag["rollout_correction/weight_mean"].item() == pytest.approx(sum(flat) / 5, rel=1e-6)


def test_tokens_without_a_sampler_log_prob_keep_weight_one():
    sampled = SAMPLED.clone()
    sampled[0, 2] = float("nan")
    weights, diag = rollout_correction(OLD, sampled, MASK, "token_mask", None, 2.0)
    assert weights[0].tolist() == pytest.approx([1.5, 0.5, 1.0])
    assert diag["rollout_correction/cut_fraction"].item() == 0.0
    assert diag["rollout_correction/log_gap"].item() == pytest.approx(
        (math.log(1.5) + math.log(2) + 0 + math.log(1.2)) / 4, rel=1e-6)


def test_a_bfloat16_sampler_is_corrected_and_the_gap_logged():
    overrides = ["model.tiny.sft_steps=20", "model.tiny.hidden_size=64", "task.eval_prompts=8",
                 "training.prompts_per_step=4", "rollout.group_size=4", "training.skip_zero_advantage=false",
                 "rollout.backend=hf_synced", "rollout.dtype=bfloat16", "logging.wandb=disabled"]
    engine = SharedEngine(load_recipe(RECIPES / "tiny.yaml", overrides))
    plain = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", overrides), engine).step().metrics
    corrected = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", overrides + ["training.rollout_correction=token_truncate"]),
                            engine).step().metrics
    assert "rollout_correction/weight_mean" not in plain
    assert corrected["rollout_correction/log_gap"] > 1e-4  # a bf16 sampler is not the fp32 trainer
    assert 0.5 < corrected["rollout_correction/weight_mean"] <= 2.0
    assert corrected["rollout/logprob_gap"] == pytest.approx(plain["rollout/logprob_gap"])  # same samples
