"""SORL's turn ratios, per-turn clip and clipping-triggered normalisation against hand-computed values."""

import math

import pytest

from loss_inputs import inputs, loss_and_grad
from sigx.config import SORLConfig


def two_turns(second_turn_log_ratios):
    # tokens: turn 0 (2 tokens), an observation token (masked, turn -1), turn 1 (2 tokens)
    return inputs([[0.0, 0.02, 5.0, *second_turn_log_ratios]], [1.0], mask=[[1, 1, 0, 1, 1]],
                  turn_ids=[[0, 0, -1, 1, 1]])


NO_NORMALISATION = SORLConfig(clip_normalization=False)


def test_sorl_turn_ratios_by_hand():
    logp, x = two_turns([0.1, 0.3])
    loss, grad, diag = loss_and_grad("sorl", logp, x, sorl=NO_NORMALISATION)
    w0, w1 = math.exp(0.01), math.exp(0.2)  # geometric means of each turn's token ratios
    assert diag["ratio_mean"].item() == pytest.approx((2 * w0 + 2 * w1) / 4, rel=1e-6)
    # token-mean over 4 tokens of -w_k; d w_k / d logp_t = w_k / 2 for t in turn k; turn 1 (1.22 > 1.2) is clipped
    assert loss.item() == pytest.approx(-(2 * w0 + 2 * 1.2) / 4, rel=1e-6)
    assert grad[0].tolist() == pytest.approx([-w0 / 4, -w0 / 4, 0.0, 0.0, 0.0], rel=1e-5)
    assert diag["sorl/turn_clip_fraction"].item() == pytest.approx(0.5)


def test_sorl_one_drifted_turn_changes_only_that_turn():
    logp_a, x_a = two_turns([0.0, 0.01])  # both turns near the behaviour policy
    logp_b, x_b = two_turns([2.0, 3.0])  # turn 1 drifted far
    _, grad_a, _ = loss_and_grad("sorl", logp_a, x_a, sorl=NO_NORMALISATION)
    _, grad_b, _ = loss_and_grad("sorl", logp_b, x_b, sorl=NO_NORMALISATION)
    assert grad_a[0, :2].tolist() == pytest.approx(grad_b[0, :2].tolist())  # turn 0 keeps its weight
    assert grad_b[0, 3:].abs().max().item() == 0.0 and grad_a[0, 3:].abs().min().item() > 0


def test_sorl_clipping_triggers_normalisation():
    logp, x = two_turns([2.0, 3.0])
    _, grad, diag = loss_and_grad("sorl", logp, x)
    w0, w1 = math.exp(0.01), math.exp(2.5)
    bias = (2 * w1 * 1.0) / 4  # clipped turn's tokens, times |A| = 1, over the sample's 4 tokens
    scale = 1 / (1 + bias)
    assert grad[0, :2].tolist() == pytest.approx([-w0 / 4 * scale] * 2, rel=1e-5)
    assert diag["sorl/normalization_scale"].item() == pytest.approx(scale, rel=1e-6)
    # nothing clipped -> no normalisation
    logp, x = two_turns([0.0, 0.01])
    _, _, diag = loss_and_grad("sorl", logp, x)
    assert diag["sorl/normalization_scale"].item() == 1.0 and diag["sorl/normalized_fraction"].item() == 0.0


def test_sorl_single_turn_is_sequence_level_clipped_is():
    logp, x = inputs([[0.1, 0.2, 0.0]], [-1.0])
    loss, _, _ = loss_and_grad("sorl", logp, x)
    s = math.exp(0.1)  # geometric-mean ratio of the whole sequence
    assert loss.item() == pytest.approx(max(s, min(max(s, 0.8), 1.2)), rel=1e-6)
