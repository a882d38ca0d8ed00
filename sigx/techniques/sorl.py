"""SORL — turn-level importance sampling and clipping-triggered normalisation (Li et al., arXiv 2511.20718;
v1 titled "ST-PPO: Stabilized Off-Policy Proximal Policy Optimization for Multi-Turn Agents").

Stage: signal transmission (the policy loss), for multi-turn trajectories. What it changes: the granularity of
the importance ratio (one per agent turn instead of one per token) and how clipped, highly off-policy samples
weigh in the update.

    turn ratio      w_{i,k} = exp( mean_{t in turn k} (log pi_theta(y_t) - log pi_old(y_t)) )
                    (the geometric mean of the turn's token ratios; observation tokens belong to no turn)
    per-turn PPO    loss_t = -min( w_{i,k} A_i, clip(w_{i,k}, 1 - eps, 1 + eps_high) A_i )   for t in turn k
                    a turn whose clip binds (w past the band on the side A pushes: A > 0 and w > 1 + eps_high,
                    or A < 0 and w < 1 - eps) is clipped as a whole: its gradient is zero, the other turns keep
                    theirs, so one drifted turn does not distort the trajectory. A turn outside the band on the
                    other side keeps its gradient, as in PPO.
    clipping bias   C_i = (1 / |y_i|) * sum_{t : turn(t) clipped} w_{i,turn(t)} |A_i|       (no gradient; "clipped"
                    = the clip binds, as above)
    normalisation   loss_i <- loss_i / (1 + alpha * C_i)
                    triggered only when sample i has a clipped turn (C_i = 0 otherwise): a sample that has
                    drifted far from the behaviour policy contributes a smaller, more conservative update

Single-turn tasks (the arithmetic demo): one turn per trajectory, so the turn ratio is the sequence's
geometric-mean ratio (GSPO's ratio) under the PPO band, and SORL reduces to sequence-level clipped IS.

Sources and defaults. Only the abstract of arXiv 2511.20718 could be read from this project's environment (its
code repository is not stored either), so no section or equation number can be cited. Turn-level IS is the
paper's (its v1 Lemma 4.1, as third-party summaries report it: a turn's tokens share its length-normalised
ratio). **The exact form of the clipping-triggered normalisation could not be read anywhere**; the abstract
commits to "adaptively suppress unreliable off-policy updates" and v1's abstract to "normalizes gradients by
downweighting unreliable, highly off-policy samples" using the clipping-bias term C. The 1 / (1 + alpha C_i) form above is sigx's reading
of that, switchable with ``clip_normalization`` and scaled by ``normalization_strength``; eps = 0.2 is the PPO
band the same summaries report for the paper's runs.

Composition with SSPO: ``sorl+sspo``, in :mod:`sigx.techniques.sorl_sspo`. It is sigx's own construction, in
neither paper.
"""

from __future__ import annotations

import torch

from sigx.config import SORLConfig
from sigx.engine.hooks import Technique, register_technique
from sigx.engine.losses import PolicyLossInputs, masked_mean, register_policy_loss, turn_mean


def turn_log_ratio(x: PolicyLossInputs) -> torch.Tensor:
    """log w_{i,k} on every token of turn k [B, T] (gradient flows through the turn mean)."""
    return turn_mean(x.logprobs - x.old_logprobs, x.mask, x.turn_ids)


def band(config: SORLConfig) -> tuple[float, float]:
    """(eps_low, eps_high) of the per-turn trust region."""
    return config.clip_eps, config.clip_eps_high if config.clip_eps_high is not None else config.clip_eps


def clip_binds(turn_ratio: torch.Tensor, advantages: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Where PPO's clip is in force on a turn [B, T]: its ratio past the band on the side its advantage pushes
    (A > 0 and w > 1 + eps_high, or A < 0 and w < 1 - eps). Only there does the clipped surrogate lose its
    gradient; a turn outside the band on the other side keeps it, as in PPO. This is what triggers SORL's
    normalisation, in ``sorl`` and in ``sorl+sspo`` alike."""
    adv = advantages[:, None]
    return ((adv > 0) & (turn_ratio > 1 + high)) | ((adv < 0) & (turn_ratio < 1 - low))


def clipping_normalization(turn_ratio: torch.Tensor, advantages, mask, out_of_band: torch.Tensor,
                           config: SORLConfig) -> torch.Tensor:
    """1 / (1 + alpha C_i) per sample [B, 1], C_i = the clipped turns' w |A| averaged over the sample's tokens
    (no gradient). sigx's form: the paper's formula could not be read."""
    if not config.clip_normalization:
        return torch.ones_like(advantages)[:, None]
    bias = masked_mean(out_of_band.float() * turn_ratio.detach() * advantages.abs()[:, None], mask, dim=-1)
    return (1.0 / (1.0 + config.normalization_strength * bias))[:, None]


def turn_stats(out_of_band: torch.Tensor, x: PolicyLossInputs, scale: torch.Tensor) -> dict:
    first_token_of_turn = x.mask.bool() & torch.cat(
        [torch.ones_like(x.turn_ids[:, :1], dtype=torch.bool), x.turn_ids[:, 1:] != x.turn_ids[:, :-1]], dim=1)
    turns = first_token_of_turn.sum().clamp(min=1)
    return {
        "sorl/turn_clip_fraction": (out_of_band & first_token_of_turn).sum() / turns,
        "sorl/normalized_fraction": (scale.squeeze(1) < 1).float().mean(),
        "sorl/normalization_scale": scale.mean(),
        "sorl/turns_per_sample": turns / x.mask.shape[0],
    }


@register_policy_loss("sorl", zero_at_zero_advantage=True)
def sorl_loss(x: PolicyLossInputs, config: SORLConfig):
    """SORL's loss (formulas in the module docstring), per token [B, T]: the per-turn clipped surrogate with the
    turn's geometric-mean ratio, times the sample's clipping-triggered normalisation; aggregated by
    ``training.loss_aggregation``. Settings: the ``sorl`` section."""
    low, high = band(config)
    ratio = torch.exp(turn_log_ratio(x))
    adv = x.advantages[:, None]
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1 - low, 1 + high)
    loss = torch.maximum(unclipped, clipped)
    in_force = clip_binds(ratio.detach(), x.advantages, low, high)  # the clipped branch decides: no gradient
    scale = clipping_normalization(ratio, x.advantages, x.mask, in_force, config)
    return loss * scale, {
        "clip_fraction": masked_mean(in_force.float(), x.mask),
        "ratio_mean": masked_mean(ratio.detach(), x.mask),
        **turn_stats(in_force, x, scale),
    }


@register_technique
class SORL(Technique):
    name = "sorl"
    config_class = SORLConfig
    policy_loss = "sorl"
