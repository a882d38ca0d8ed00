"""Policy losses and aggregation against hand-computed examples (values and gradients)."""

import math

import pytest
import torch

from sigx.config import TrainingConfig
from sigx.engine.losses import (POLICY_LOSSES, PolicyLossInputs, aggregate_loss, bind_policy_loss, kl_k3,
                                register_policy_loss)


def _inputs(logp, old, adv, mask, **cfg):
    """(leaf, inputs, the training section the losses are bound to)."""
    logp = torch.tensor(logp, requires_grad=True)
    return logp, PolicyLossInputs(logp, torch.tensor(old), torch.tensor(adv), torch.tensor(mask),
                                  torch.zeros_like(torch.tensor(mask), dtype=torch.long)), TrainingConfig(**cfg)


def _loss(name, x, training):
    return bind_policy_loss(name, training=training)(x)


def test_ppo_clip_values_and_gradient():
    # Token ratios: e^0.5 = 1.6487 (clipped at 1.2 for A>0), e^-0.5 = 0.6065 (clipped at 0.8 for A<0 -> the
    # pessimistic max picks the clipped one only when it is larger), 1.0 (no clip).
    logp, x, t = _inputs([[0.5, 0.0], [-0.5, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [2.0, -1.0], [[1.0, 1.0], [1.0, 1.0]],
                      clip_eps=0.2)
    loss, metrics = _loss("ppo_clip", x, t)
    r = math.exp(0.5)
    # row 0, A=2: max(-2*1.6487, -2*1.2) = -2.4 (clipped, no grad); max(-2*1, -2*1) = -2 (grad -2*ratio = -2)
    # row 1, A=-1: max(1*0.6065, 1*0.8) = 0.8 (clipped, no grad); token 2: 1.0 (grad +1)
    assert torch.allclose(loss, torch.tensor([[-2.4, -2.0], [0.8, 1.0]]), atol=1e-6)
    loss.sum().backward()
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -2.0], [0.0, 1.0]]), atol=1e-6)
    assert metrics["clip_fraction"].item() == pytest.approx(0.5)
    assert metrics["ratio_mean"].item() == pytest.approx((r + 1 + math.exp(-0.5) + 1) / 4, rel=1e-6)


def test_ppo_clip_higher_is_asymmetric():
    _, x, t = _inputs([[0.25]], [[0.0]], [1.0], [[1.0]], clip_eps=0.2, clip_eps_high=0.28)
    loss, _ = _loss("ppo_clip", x, t)
    assert loss.item() == pytest.approx(-1.28)


def test_gspo_uses_one_length_normalised_ratio_per_sequence():
    # Sequence log-ratio = mean(0.0008, -0.0002, [masked 5.0]) = 0.0003 -> s = e^0.0003, inside [1-3e-4, 1+4e-4].
    logp, x, t = _inputs([[0.0008, -0.0002, 5.0]], [[0.0, 0.0, 0.0]], [1.0], [[1.0, 1.0, 0.0]])
    loss, metrics = _loss("gspo", x, t)
    s = math.exp(0.0003)
    assert torch.allclose(loss[0, :2], torch.tensor([-s, -s]), atol=1e-7)
    (loss * x.mask).sum().backward()
    # token form: d/dlogp_t of -A * sg[s] * pi_t/sg[pi_t] = -A * s on each unmasked token
    assert torch.allclose(logp.grad, torch.tensor([[-s, -s, 0.0]]), atol=1e-7)
    assert metrics["ratio_mean"].item() == pytest.approx(s)


def test_aggregation_modes():
    per_token = torch.tensor([[1.0, 3.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert aggregate_loss(per_token, mask, "token-mean").item() == pytest.approx(6 / 3)
    assert aggregate_loss(per_token, mask, "seq-mean").item() == pytest.approx((2 + 2) / 2)
    # Dr. GRPO's constant normaliser (TRL's loss_type dr_grpo: sum(l * m) / (B * max_completion_length))
    assert aggregate_loss(per_token, mask, "token-sum-norm", max_tokens=4).item() == pytest.approx(6 / (2 * 4))
    with pytest.raises(ValueError, match="token-sum-norm needs max_tokens"):
        aggregate_loss(per_token, mask, "token-sum-norm")


def test_a_token_weighs_the_same_under_token_sum_norm_whatever_the_lengths():
    """Dr. GRPO §3.2: token-mean and seq-mean divide a token's gradient by its batch's or its sequence's token
    count; the constant normaliser does not, so a token's gradient is A / (B * max_tokens) in any batch."""
    logp = torch.zeros(2, 5, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    aggregate_loss(-logp * torch.tensor([[1.0], [1.0]]), mask, "token-sum-norm", max_tokens=8).backward()
    assert torch.equal(logp.grad, -mask / (2 * 8))
    logp.grad = None
    aggregate_loss(-logp, mask, "seq-mean").backward()  # the lone token of row 1 weighs 5x each token of row 0
    assert logp.grad[1, 0].item() == pytest.approx(5 * logp.grad[0, 0].item())


def test_kl_k3_hand_computed():
    logp = torch.tensor([0.0, -1.0])
    ref = torch.tensor([0.0, -0.5])
    # d = ref - logp = [0, 0.5] -> e^d - d - 1 = [0, e^0.5 - 1.5]
    assert torch.allclose(kl_k3(logp, ref), torch.tensor([0.0, math.exp(0.5) - 1.5]))


def test_gspo_band_is_the_papers_asymmetric_one():
    # s = e^0.0005 = 1.0005 > 1 + 4e-4: clipped for A > 0 (loss -1.0004, no gradient) ...
    logp, x, t = _inputs([[0.0005]], [[0.0]], [1.0], [[1.0]])
    loss, metrics = _loss("gspo", x, t)
    assert loss.item() == pytest.approx(-1.0004) and metrics["clip_fraction"].item() == 1.0
    # ... while s = e^-0.00035 < 1 - 3e-4 is clipped for A < 0 (loss = -A * 0.9997)
    _, x, t = _inputs([[-0.00035]], [[0.0]], [-1.0], [[1.0]])
    loss, _ = _loss("gspo", x, t)
    assert loss.item() == pytest.approx(0.9997)


def test_the_registry_refuses_a_name_twice_and_names_what_is_allowed():
    with pytest.raises(ValueError, match="registered twice"):
        register_policy_loss("ppo_clip")(lambda x, s: None)
    with pytest.raises(ValueError, match="unknown policy loss 'ppo'; allowed: ppo_clip, gspo"):
        bind_policy_loss("ppo")


def test_every_registered_loss_and_estimator_documents_its_formula():
    from sigx.engine.advantages import ADVANTAGE_ESTIMATORS

    import sigx.techniques  # noqa: F401  (registers the technique losses)

    for name, spec in POLICY_LOSSES.items():
        assert spec.fn.__doc__ and ("=" in spec.fn.__doc__ or "docstring" in spec.fn.__doc__), name
    for name, fn in ADVANTAGE_ESTIMATORS.items():
        assert fn.__doc__ and "A_i" in fn.__doc__, name
