"""Rollout-vs-trainer importance correction (training.rollout_correction): the four modes against
hand-computed weights, unknown sampler log-probs, and a run whose sampler really differs from the trainer
(a bfloat16 copy of the policy)."""

import copy
import math
from pathlib import Path

import pytest
import torch

from sigx.config import load_recipe
from sigx.engine.losses import rollout_correction
from sigx.engine.shared import SharedEngine
from sigx.engine.trainer import GRPOTrainer

RECIPES = Path(__file__).parents[2] / "recipes"
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


@pytest.mark.parametrize("decoder", ["dynamic", "static"])  # static: the GPU rollout without vLLM, run on CPU
def test_a_bfloat16_sampler_is_corrected_and_the_gap_logged(decoder):
    overrides = ["model.tiny.sft_steps=20", "model.tiny.hidden_size=64", "task.eval_prompts=8",
                 "training.prompts_per_step=4", "rollout.group_size=4", "training.skip_zero_advantage=false",
                 "rollout.backend=hf_synced", "rollout.dtype=bfloat16", f"rollout.decoder={decoder}",
                 "logging.wandb=disabled"]
    engine = SharedEngine(load_recipe(RECIPES / "tiny.yaml", overrides))
    plain = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", overrides), engine).step().metrics
    corrected = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", overrides + ["training.rollout_correction=token_truncate"]),
                            engine).step().metrics
    assert "rollout_correction/weight_mean" not in plain
    assert corrected["rollout_correction/log_gap"] > 1e-4  # a bf16 sampler is not the fp32 trainer
    assert corrected["rollout/logprob_gap"] < 0.05  # but close to it
    assert 0.5 < corrected["rollout_correction/weight_mean"] <= 2.0
    assert corrected["rollout/logprob_gap"] == pytest.approx(plain["rollout/logprob_gap"])  # same samples


def test_a_bfloat16_sampler_keeps_the_rotary_frequencies_in_float32():
    """The sampler copy casts weights, not the buffers the model computes itself: with ``inv_freq`` rounded to
    bf16 the rotary angles drift with position (and the sampler's log-probs from the trainer's with them)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from sigx.engine.rollout import cast_weights

    policy = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                          num_attention_heads=4, num_key_value_heads=2)).eval()
    kept, rounded = copy.deepcopy(policy), copy.deepcopy(policy)
    cast_weights(kept, torch.bfloat16)
    rounded.to(torch.bfloat16)
    assert kept.lm_head.weight.dtype == torch.bfloat16 and kept.model.embed_tokens.weight.dtype == torch.bfloat16
    assert kept.model.rotary_emb.inv_freq.dtype == torch.float32
    assert torch.equal(kept.model.rotary_emb.inv_freq, policy.model.rotary_emb.inv_freq)
    assert set(kept.state_dict()) == set(policy.state_dict())

    positions = torch.arange(1024)[None]
    hidden = torch.zeros(1, 1024, 64, dtype=torch.bfloat16)
    cos_exact = policy.model.rotary_emb(hidden.float(), positions)[0].to(torch.bfloat16)
    cos_kept = kept.model.rotary_emb(hidden, positions)[0]
    cos_rounded = rounded.model.rotary_emb(hidden, positions)[0]
    assert torch.equal(cos_kept, cos_exact)  # the trainer's angles, rounded once at the end
    late = (cos_rounded - cos_exact)[0, 512:].abs().max()
    assert late > 0.1, float(late)  # what rounding the frequencies did: angles off by tenths of a radian
