"""SSPO's gated geometric-mean weight against hand-computed values, its gradient at ratio 1, and its
per-sequence aggregation."""

import math

import pytest
import torch

from loss_inputs import inputs, loss_and_grad
from sigx.config import SSPOConfig, TrainingConfig
from sigx.engine.losses import PolicyLossInputs, aggregate_loss
from sigx.techniques import policy_loss_with_defaults


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_sspo_weight_and_gradient_by_hand():
    # one sequence, token ratios 1 and 2, A = +1 (tau_pos = 1): f(1) = 4 sigma(0) = 2, f(2) = 4 sigma(1)
    logp, x = inputs([[0.0, math.log(2.0)]], [1.0])
    f1, f2 = 4 * sigmoid(0), 4 * sigmoid(1)
    weight = math.sqrt(f1 * f2)  # geometric mean of the gated ratios
    loss, grad, diag = loss_and_grad("sspo", logp, x)
    assert loss.item() == pytest.approx(-weight, rel=1e-6)
    # d(-W)/d logp_t = -W * (1/2) * (f'(r_t) / f(r_t)) * r_t, with f'/f = tau (1 - sigma(tau (r - 1)))
    expected = [-weight * 0.5 * (1 - sigmoid(0)) * 1.0, -weight * 0.5 * (1 - sigmoid(1)) * 2.0]
    assert grad[0].tolist() == pytest.approx(expected, rel=1e-5)
    assert diag["ratio_mean"].item() == pytest.approx(math.sqrt(2.0), rel=1e-6)


def test_sspo_negative_advantage_uses_tau_neg():
    logp, x = inputs([[math.log(0.5)]], [-1.0])
    loss, grad, _ = loss_and_grad("sspo", logp, x, sspo=SSPOConfig(tau_pos=1.0, tau_neg=2.0))
    f = 4 / 2.0 * sigmoid(2.0 * (0.5 - 1))
    assert loss.item() == pytest.approx(f, rel=1e-6)  # -W * A with A = -1
    assert grad.item() == pytest.approx(4 * sigmoid(-1.0) * (1 - sigmoid(-1.0)) * 0.5, rel=1e-5)


def test_sspo_is_averaged_per_sequence_whatever_the_recipe_says():
    """GMPO and SAPO average per sequence: a 1-token and a 3-token sequence weigh the same."""
    spec = policy_loss_with_defaults("sspo").spec
    assert spec.aggregation == "seq-mean"
    assert policy_loss_with_defaults("sspo").aggregation(TrainingConfig(loss_aggregation="token-mean")) == "seq-mean"
    # sequence 0: one token at ratio 1 (W = 2, A = 1); sequence 1: three tokens at ratio 1 (W = 2/1.05, A = -1)
    logp, x = inputs([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [1.0, -1.0], mask=[[1, 0, 0], [1, 1, 1]])
    loss, _, _ = loss_and_grad("sspo", logp, x)
    assert loss.item() == pytest.approx((-2.0 + 2.0 / 1.05) / 2, rel=1e-6)  # not (-2 + 3 * 2/1.05) / 4


def test_sspo_at_ratio_one_is_plain_policy_gradient():
    torch.manual_seed(0)
    logp = torch.randn(4, 6, requires_grad=True)
    adv = torch.tensor([1.5, -0.5, 0.0, -2.0])
    mask = (torch.rand(4, 6) > 0.3).float()
    mask[:, 0] = 1
    x = PolicyLossInputs(logp, logp.detach().clone(), adv, mask, torch.zeros(4, 6, dtype=torch.long))
    _, grad, _ = loss_and_grad("sspo", logp, x)
    plain = aggregate_loss(-adv[:, None] * logp, mask, "seq-mean")
    (expected,) = torch.autograd.grad(plain, logp)
    assert torch.allclose(grad, expected, atol=1e-6)


@pytest.mark.parametrize("log_ratio, adv", [(math.log(10.0), 1.0), (math.log(0.05), -1.0)])
def test_sspo_far_from_one_is_small_but_not_zero_where_the_hard_clip_is_zero(log_ratio, adv):
    logp, x = inputs([[log_ratio]], [adv])
    _, sspo_grad, diag = loss_and_grad("sspo", logp, x)
    _, ppo_grad, _ = loss_and_grad("ppo_clip", logp, x)
    assert ppo_grad.item() == 0.0
    assert 0 < abs(sspo_grad.item()) < 0.3
    # the logged token weight is the gradient's own (one token: |grad| = |A| * weight): far from 1 both ways
    assert diag["sspo/gate_weight"].item() == pytest.approx(abs(sspo_grad.item()), rel=1e-5)
    assert diag["sspo/gated_fraction"].item() == 1.0


def test_the_logged_token_weight_is_the_one_the_gradient_uses():
    """One token at r = e among three at r = 1, A = +1 (tau 1): W = (4 sigma(e - 1) * 2 * 2)^(1/3) = 2.3845 and
    the token's weight W e (1 - sigma(e - 1)) = 0.986, by hand; the gate's slope f'(e) = 0.516 is not it. Each
    token's logged weight equals its gradient relative to plain PG, -A / T grad log pi, checked by autograd."""
    logp, x = inputs([[1.0, 0.0, 0.0]], [1.0])
    _, grad, diag = loss_and_grad("sspo", logp, x)
    sig = 1 / (1 + math.exp(-(math.e - 1)))
    w = (4 * sig * 2 * 2) ** (1 / 3)
    assert w * math.e * (1 - sig) == pytest.approx(0.986, abs=5e-4) and 4 * sig * (1 - sig) == pytest.approx(0.516, abs=5e-4)
    expected = [w * math.e * (1 - sig), w * 0.5, w * 0.5]  # at r = 1: W * 1 * tau * (1 - 1/2)
    assert (-grad[0] * 3).tolist() == pytest.approx(expected, rel=1e-5)
    assert diag["sspo/gate_weight"].item() == pytest.approx(sum(expected) / 3, rel=1e-5)
    logp, x = inputs([[0.4, -0.3, 0.0]], [-1.0])  # A < 0: tau_neg, and the weight still matches the gradient
    _, grad, diag = loss_and_grad("sspo", logp, x)
    assert diag["sspo/gate_weight"].item() == pytest.approx((grad[0] * 3).mean().item(), rel=1e-5)
