"""Policy losses (a registry, as in verl's ``core_algos``) and loss aggregation (as in TRL's loss options).

Every policy loss maps :class:`PolicyLossInputs` and its own settings to a per-token loss [B, T] plus
diagnostics; aggregation over tokens is a separate, shared step, so a loss supports every aggregation mode
unless it names the one its paper's objective uses (SSPO: per sequence).

A loss receives its own settings, bound once when the loss in force is resolved (:func:`bind_policy_loss`):
the engine's built-in losses their clip band from the ``training`` section, a technique's loss that
technique's section, a composition of two techniques' losses a ``{technique: section}`` mapping. No loss sees
the whole recipe.

The built-in losses (each function's docstring has its formula):

- ``ppo_clip``: GRPO's token-level PPO clip, with DAPO's clip-higher.
- ``gspo``: GSPO's length-normalised sequence ratio, in its GSPO-token form.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Callable

import torch

from sigx.config import POLICY_LOSS_NAMES, TrainingConfig

#: the loss aggregations, as the recipe names them (training.loss_aggregation)
AGGREGATIONS: tuple[str, ...] = typing.get_args(TrainingConfig.model_fields["loss_aggregation"].annotation)


@dataclass
class PolicyLossInputs:
    logprobs: torch.Tensor  # [B, T] current policy, with grad
    old_logprobs: torch.Tensor  # [B, T] behaviour policy
    advantages: torch.Tensor  # [B]
    mask: torch.Tensor  # [B, T] float, 1 on policy-generated tokens
    turn_ids: torch.Tensor  # [B, T] long, agent turn per token (-1 on environment tokens)


PolicyLossFn = Callable[[PolicyLossInputs, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class PolicyLossSpec:
    """A registered policy loss.

    ``zero_at_zero_advantage``: the per-sample loss is the advantage times something finite that depends on that
    sample alone, so a row with advantage 0 has exactly zero gradient and may be left out of the forward/backward
    (``training.skip_zero_advantage``); a loss that couples rows or adds terms without the advantage must not
    declare it. ``aggregation``: the aggregation the loss's objective defines (None: ``training.loss_aggregation``).
    ``training_settings``: for the engine's own losses, how to read their settings off the ``training`` section.
    """

    name: str
    fn: PolicyLossFn
    zero_at_zero_advantage: bool = False
    aggregation: str | None = None
    training_settings: Callable[[TrainingConfig], Any] | None = None


@dataclass(frozen=True)
class BoundPolicyLoss:
    """The loss in force for a run: a registered loss with its settings bound."""

    spec: PolicyLossSpec
    settings: Any

    @property
    def name(self) -> str:
        return self.spec.name

    def aggregation(self, training: TrainingConfig) -> str:
        return self.spec.aggregation or training.loss_aggregation

    def __call__(self, x: PolicyLossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.spec.fn(x, self.settings)


POLICY_LOSSES: dict[str, PolicyLossSpec] = {}


def register_policy_loss(name: str, *, zero_at_zero_advantage: bool = False, aggregation: str | None = None,
                         training_settings: Callable[[TrainingConfig], Any] | None = None):
    """Decorator: register ``fn(inputs, settings) -> (per-token loss, diagnostics)`` under ``name``.

    A loss that reads its settings off the training section (``training_settings``, as ppo_clip's band) is a
    baseline loss: ``training.policy_loss: <name>`` is then a valid recipe field. A technique's loss gets the
    technique's own section as its settings and is named by the technique (``Technique.policy_loss``) instead."""
    if aggregation is not None and aggregation not in AGGREGATIONS:
        raise ValueError(f"policy loss {name!r}: unknown aggregation {aggregation!r}; allowed: {', '.join(AGGREGATIONS)}")

    def wrap(fn: PolicyLossFn) -> PolicyLossFn:
        if name in POLICY_LOSSES:
            raise ValueError(f"policy loss {name!r} is registered twice")
        if training_settings is not None:
            POLICY_LOSS_NAMES.register(name)
        POLICY_LOSSES[name] = PolicyLossSpec(name, fn, zero_at_zero_advantage, aggregation, training_settings)
        return fn

    return wrap


def policy_loss_spec(name: str) -> PolicyLossSpec:
    if name not in POLICY_LOSSES:
        raise ValueError(f"unknown policy loss {name!r}; allowed: {', '.join(POLICY_LOSSES)}")
    return POLICY_LOSSES[name]


def bind_policy_loss(name: str, settings: Any = None, training: TrainingConfig | None = None) -> BoundPolicyLoss:
    """The loss ``name`` with its settings: ``settings`` when given (a technique's section), else read off
    ``training`` by the loss's own ``training_settings``."""
    spec = policy_loss_spec(name)
    if settings is None and spec.training_settings is not None:
        settings = spec.training_settings(training or TrainingConfig())
    return BoundPolicyLoss(spec, settings)


# ------------------------------------------------------------------------------------------------ helpers
def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def sequence_log_ratio(logprobs, old_logprobs, mask) -> torch.Tensor:
    """mean_t (logp_t - logp_old_t) over each sequence's masked tokens: the log of the geometric-mean ratio. [B]"""
    return masked_mean(logprobs - old_logprobs, mask, dim=-1)


def turn_mean(values: torch.Tensor, mask: torch.Tensor, turn_ids: torch.Tensor) -> torch.Tensor:
    """Each token gets the mean of ``values`` over the masked tokens of its own agent turn. [B, T] -> [B, T].

    Turn-level ratios (SORL) and per-turn gated weights (the SORL+SSPO composition) are means of this kind;
    gradient flows through the mean to every token of the turn."""
    turns = int(turn_ids.max().clamp(min=0)) + 1
    member = ((turn_ids[..., None] == torch.arange(turns, device=turn_ids.device)) & (mask[..., None] > 0))
    member = member.to(values.dtype)  # [B, T, K]
    sums = torch.einsum("btk,bt->bk", member, values)
    means = sums / member.sum(1).clamp(min=1)
    return means.gather(1, turn_ids.clamp(min=0))


def clipped_surrogate(ratio, advantages, mask, low: float, high: float):
    """PPO's pessimistic surrogate -min(r A, clip(r, 1 - low, 1 + high) A) per token, and the fraction of
    masked tokens where the clipped branch is in force (its gradient is zero there)."""
    adv = advantages[:, None]
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1 - low, 1 + high)
    return torch.maximum(unclipped, clipped), masked_mean((clipped > unclipped).float(), mask)


@dataclass(frozen=True)
class ClipBand:
    """The trust region [1 - low, 1 + high] of a clipped ratio."""

    low: float
    high: float


# ------------------------------------------------------------------------------------------------ losses
@register_policy_loss("ppo_clip", zero_at_zero_advantage=True, training_settings=lambda t: ClipBand(
    t.clip_eps, t.clip_eps_high if t.clip_eps_high is not None else t.clip_eps))
def ppo_clip_loss(x: PolicyLossInputs, band: ClipBand):
    """GRPO's token-level PPO clip (Shao et al. 2024, arXiv 2402.03300, Eq. 3; DAPO's clip-higher, arXiv
    2503.14476 Eq. 10, when ``clip_eps_high`` > ``clip_eps``)::

        r_t    = exp(logp_t - logp_old_t)                                     [B, T]
        loss_t = -min(r_t A, clip(r_t, 1 - eps_low, 1 + eps_high) A)          [B, T]

    Settings: ``training.clip_eps`` (eps_low), ``training.clip_eps_high`` (eps_high, default eps_low)."""
    ratio = torch.exp(x.logprobs - x.old_logprobs)
    loss, clip_fraction = clipped_surrogate(ratio, x.advantages, x.mask, band.low, band.high)
    return loss, {"clip_fraction": clip_fraction, "ratio_mean": masked_mean(ratio.detach(), x.mask)}


@register_policy_loss("gspo", zero_at_zero_advantage=True, training_settings=lambda t: ClipBand(
    t.gspo_clip_eps, t.gspo_clip_eps_high))
def gspo_loss(x: PolicyLossInputs, band: ClipBand):
    """GSPO (Zheng et al., arXiv 2507.18071, Eq. 5-7, and its GSPO-token form, Eq. 13)::

        s_i    = exp(mean_t (logp_t - logp_old_t))                            [B]  length-normalised ratio
        s_i,t  = sg[s_i] * pi_t / sg[pi_t]          (equal to s_i; gradient s_i * grad log pi_t on every token)
        loss_t = -min(s_i,t A, clip(s_i,t, 1 - eps_low, 1 + eps_high) A)      [B, T]

    GSPO's objective averages per sequence (``loss_aggregation: seq-mean``); with ``token-mean`` a recipe gets a
    warning. Settings: ``training.gspo_clip_eps`` / ``gspo_clip_eps_high`` (3e-4 / 4e-4, the paper's §5.1 band)."""
    seq_log_ratio = sequence_log_ratio(x.logprobs, x.old_logprobs, x.mask)
    token_ratio = torch.exp(seq_log_ratio.detach()[:, None] + x.logprobs - x.logprobs.detach())
    loss, clip_fraction = clipped_surrogate(token_ratio, x.advantages, x.mask, band.low, band.high)
    return loss, {"clip_fraction": clip_fraction, "ratio_mean": torch.exp(seq_log_ratio.detach()).mean()}


# ------------------------------------------------------------------------------------------------ rollout correction
ROLLOUT_CORRECTIONS = ("off", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def rollout_correction(old_logprobs: torch.Tensor, sampling_logprobs: torch.Tensor, mask: torch.Tensor, mode: str,
                       low: float | None, high: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Importance weights [B, T] (no gradient) for the gap between the engine that sampled and the trainer that
    computes the ratio (another dtype, vLLM's kernels): TRL's ``vllm_importance_sampling_*`` (its four modes)
    and verl's rollout correction, in one place::

        d_t        = logp_old_t (trainer, before any update) - logp_sampler_t               [B, T]
        token_*    w_t = exp(d_t)                         per token
        sequence_* w_i = exp(sum_t d_t)                   one per sequence, on each of its tokens
        *_truncate w   <- clamp(w, low, high)             (TIS: truncated importance sampling)
        *_mask     w   <- w if low <= w <= high else 0    (MIS: the token / sequence is left out)

    ``low`` None means no lower bound for truncation and 0 for masking. Tokens whose sampler log-prob is unknown
    (NaN: an engine that reports none) get weight 1. The per-token policy loss is multiplied by w."""
    known = ~torch.isnan(sampling_logprobs) & (mask > 0)
    diff = torch.where(known, old_logprobs - torch.nan_to_num(sampling_logprobs), torch.zeros_like(old_logprobs))
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True).expand_as(diff)
    raw = torch.exp(diff)
    lower = low if low is not None else 0.0
    if mode.endswith("truncate"):
        weights = raw.clamp(min=low, max=high)
        cut = (raw > high) | (raw < lower)
    else:
        cut = (raw > high) | (raw < lower)
        weights = torch.where(cut, torch.zeros_like(raw), raw)
    weights = torch.where(known, weights, torch.ones_like(weights)).detach()
    return weights, {"rollout_correction/weight_mean": masked_mean(weights, mask),
                     "rollout_correction/cut_fraction": masked_mean((cut & known).float(), mask),
                     "rollout_correction/log_gap": masked_mean(diff.abs(), known.float())}


# ------------------------------------------------------------------------------------------------ aggregation
def aggregate_loss(per_token: torch.Tensor, mask: torch.Tensor, mode: str,
                   max_tokens: int | None = None) -> torch.Tensor:
    """Per-token losses [B, T] to one number::

        token-mean      sum_i,t m_it l_it / sum_i,t m_it                 every generated token weighs the same (DAPO)
        seq-mean        mean_i (sum_t m_it l_it / sum_t m_it)            every sequence (GRPO, GSPO, GMPO, SAPO)
        token-sum-norm  sum_i,t m_it l_it / (B * max_tokens)              a constant normaliser (Dr. GRPO §3.2)

    ``token-sum-norm`` is TRL's ``loss_type="dr_grpo"`` (its ``max_completion_length`` is ``max_tokens``, the
    policy's token budget per sequence): neither a sequence's length nor the batch's token count rescales a
    token's gradient."""
    if mode == "token-mean":
        return masked_mean(per_token, mask)
    if mode == "seq-mean":
        has_tokens = (mask.sum(-1) > 0).float()
        return masked_mean(masked_mean(per_token, mask, dim=-1), has_tokens)
    if mode == "token-sum-norm":
        if not max_tokens:
            raise ValueError("loss aggregation token-sum-norm needs max_tokens, the token budget per sequence")
        return (per_token * mask).sum() / (per_token.shape[0] * max_tokens)
    raise ValueError(f"unknown loss aggregation {mode!r}; allowed: {', '.join(AGGREGATIONS)}")


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || pi_ref): exp(d) - d - 1 with d = logp_ref - logp; unbiased, >= 0."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1
