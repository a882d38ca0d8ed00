"""Policy losses (a registry, as in verl's ``core_algos``) and loss aggregation (as in TRL's loss options).

Every policy loss maps :class:`PolicyLossInputs` to a per-token loss [B, T] plus diagnostics; aggregation
over tokens is a separate, shared step so every loss supports every aggregation mode.

- ``ppo_clip`` (GRPO's token-level PPO clip): r_t = exp(logp_t - logp_old_t),
  loss_t = -min(r_t A, clip(r_t, 1 - eps, 1 + eps_high) A).
- ``gspo`` (GSPO, arXiv 2507.18071, with its GSPO-token form): one length-normalised sequence ratio
  s_i = exp(mean_t (logp_t - logp_old_t)), clipped to [1 - 3e-4, 1 + 4e-4] by default (the paper's band,
  sec. 5.1); in its token form
  s_i,t = sg[s_i] * pi_t / sg[pi_t], whose gradient is s_i * grad log pi_t on every token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from sigx.config import TechniquesConfig, TrainingConfig


@dataclass
class PolicyLossInputs:
    logprobs: torch.Tensor  # [B, T] current policy, with grad
    old_logprobs: torch.Tensor  # [B, T] behaviour policy
    advantages: torch.Tensor  # [B]
    mask: torch.Tensor  # [B, T] float, 1 on policy-generated tokens
    turn_ids: torch.Tensor  # [B, T] long, agent turn per token (-1 on environment tokens)
    config: TrainingConfig
    techniques: TechniquesConfig | None = None  # knobs of technique losses (SSPO's tau, SORL's band)


PolicyLoss = Callable[[PolicyLossInputs], tuple[torch.Tensor, dict[str, torch.Tensor]]]
POLICY_LOSSES: dict[str, PolicyLoss] = {}
#: losses whose per-sample loss is the advantage times something finite that depends on that sample alone, so
#: a row with advantage 0 has exactly zero gradient and may be left out of the forward/backward
#: (``training.skip_zero_advantage``); a loss that couples rows, or adds terms without the advantage, must
#: not be registered with ``zero_at_zero_advantage``
ZERO_AT_ZERO_ADVANTAGE: set[str] = set()


def register_policy_loss(name: str, zero_at_zero_advantage: bool = False):
    def wrap(fn: PolicyLoss) -> PolicyLoss:
        POLICY_LOSSES[name] = fn
        if zero_at_zero_advantage:
            ZERO_AT_ZERO_ADVANTAGE.add(name)
        return fn

    return wrap


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def sequence_log_ratio(logprobs, old_logprobs, mask) -> torch.Tensor:
    """mean_t (logp_t - logp_old_t) over each sequence's masked tokens: the log of the geometric-mean ratio."""
    return masked_mean(logprobs - old_logprobs, mask, dim=-1)


def clipped_surrogate(ratio, advantages, mask, low: float, high: float):
    """PPO's pessimistic surrogate -min(r A, clip(r, 1 - low, 1 + high) A) per token, and the fraction of
    masked tokens where the clipped branch is in force (its gradient is zero there)."""
    adv = advantages[:, None]
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1 - low, 1 + high)
    return torch.maximum(unclipped, clipped), masked_mean((clipped > unclipped).float(), mask)


@register_policy_loss("ppo_clip", zero_at_zero_advantage=True)
def ppo_clip_loss(x: PolicyLossInputs):
    eps_low = x.config.clip_eps
    eps_high = x.config.clip_eps_high if x.config.clip_eps_high is not None else eps_low
    ratio = torch.exp(x.logprobs - x.old_logprobs)
    loss, clip_fraction = clipped_surrogate(ratio, x.advantages, x.mask, eps_low, eps_high)
    return loss, {"clip_fraction": clip_fraction, "ratio_mean": masked_mean(ratio.detach(), x.mask)}


@register_policy_loss("gspo", zero_at_zero_advantage=True)
def gspo_loss(x: PolicyLossInputs):
    seq_log_ratio = sequence_log_ratio(x.logprobs, x.old_logprobs, x.mask)
    token_ratio = torch.exp(seq_log_ratio.detach()[:, None] + x.logprobs - x.logprobs.detach())
    loss, clip_fraction = clipped_surrogate(token_ratio, x.advantages, x.mask, x.config.gspo_clip_eps,
                                            x.config.gspo_clip_eps_high)
    return loss, {"clip_fraction": clip_fraction, "ratio_mean": torch.exp(seq_log_ratio.detach()).mean()}


def aggregate_loss(per_token: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """``token-mean``: every generated token weighs the same (DAPO); ``seq-mean``: every sequence weighs the
    same, its tokens averaged first (the original GRPO)."""
    if mode == "token-mean":
        return masked_mean(per_token, mask)
    if mode == "seq-mean":
        has_tokens = (mask.sum(-1) > 0).float()
        return masked_mean(masked_mean(per_token, mask, dim=-1), has_tokens)
    raise ValueError(f"unknown loss aggregation {mode!r}")


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || pi_ref): exp(d) - d - 1 with d = logp_ref - logp; unbiased, >= 0."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1
