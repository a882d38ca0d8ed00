"""Hand-built loss inputs shared by the technique loss tests."""

import torch

from sigx.engine.losses import PolicyLossInputs, aggregate_loss
from sigx.techniques import policy_loss_with_defaults


def inputs(log_ratio, adv, mask=None, turn_ids=None):
    """Inputs with old log-probs 0, so logprobs are the log-ratios; returns (leaf, inputs)."""
    logp = torch.tensor(log_ratio, dtype=torch.float32, requires_grad=True)
    mask = torch.ones_like(logp) if mask is None else torch.tensor(mask, dtype=torch.float32)
    turns = torch.zeros_like(logp, dtype=torch.long) if turn_ids is None else torch.tensor(turn_ids)
    return logp, PolicyLossInputs(logp, torch.zeros_like(logp), torch.tensor(adv, dtype=torch.float32), mask, turns)


def loss_and_grad(name, logp, x, aggregation=None, **sections):
    """The loss ``name`` (default settings unless sections are given) aggregated as a run would aggregate it."""
    loss_fn = policy_loss_with_defaults(name, **sections)
    per_token, diag = loss_fn(x)
    loss = aggregate_loss(per_token, x.mask, aggregation or loss_fn.spec.aggregation or "token-mean")
    (grad,) = torch.autograd.grad(loss, logp)
    return loss, grad, diag
