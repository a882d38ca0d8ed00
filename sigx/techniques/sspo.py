"""SSPO — Soft Sequence Policy Optimization (Glazyrina et al., arXiv 2602.19327, read as v3).

Stage: signal transmission (the policy loss). What it changes: the importance weight and its trust region.
PPO/GRPO weigh each token by its own ratio and cut the gradient to zero outside a hard band; GSPO moves to one
length-normalised sequence ratio but keeps the hard cut. SSPO (abstract and title of v1, "Bridging GMPO and
SAPO") puts SAPO's *soft sigmoid gate* on every token ratio and aggregates the gated ratios by GMPO's
*geometric mean* into one sequence-level weight:

    r_t   = pi_theta(y_t | ...) / pi_old(y_t | ...)                       token ratio, response tokens only
    f(r)  = (4 / tau) * sigmoid(tau * (r - 1))                            SAPO's gate; tau = tau_pos if A > 0
                                                                          else tau_neg
    W_i   = exp( mean_t log f(r_t) )                                      geometric mean over the response
    J     = E_i[ W_i * A_i ]            loss = -(1/B) sum_i W_i * A_i     averaged per sequence

Why this shape: d/dr f(r) = 4 sigma (1 - sigma) is 1 at r = 1 and decays smoothly (never to zero) as r leaves 1,
so a drifted token is attenuated rather than discarded; the geometric mean makes the sequence weight robust to
one outlier token (GMPO). At the behaviour policy (every r_t = 1) f = 2/tau and f'/f = tau/2, so

    grad loss_i = -W_i * A_i * mean_t (f'(r_t)/f(r_t)) r_t grad log pi_t  =  -A_i * mean_t grad log pi_t,

exactly the plain policy gradient — tested in tests/techniques/test_sspo.py.

Aggregation: the loss is averaged per sequence (``seq-mean``, registered with the loss, whatever
``training.loss_aggregation`` says), because W_i is one weight per sequence: GMPO's and SAPO's objectives both
average over sequences (1/G sum_i), and a token mean would weigh a long response's single weight by its length.

Sources and defaults. Only the abstract of arXiv 2602.19327 could be read from this project's environment (no
section or equation numbers can be cited), so the formula above is the abstract's commitment (token-level
sigmoid gates aggregated by a geometric mean into the sequence-level weight) written with SAPO's gate (SAPO,
arXiv 2511.20347, its gate f and temperatures) and GMPO's geometric mean (arXiv 2507.20673); tau_pos = 1.0 and
tau_neg = 1.05 are SAPO's published defaults. The "practical modifications" the abstract mentions could not be
read and are not implemented. Observation tokens (multi-turn) are excluded from the mean, as from every loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sigx.config import SSPOConfig
from sigx.engine.hooks import Technique, register_technique
from sigx.engine.losses import PolicyLossInputs, masked_mean, register_policy_loss, turn_mean

MAX_LOG_RATIO = 20.0  # exp(20) is far past any gate; the clamp only keeps r * (1 - sigma) finite (no 0 * inf)


def gate_temperatures(advantages: torch.Tensor, config: SSPOConfig) -> torch.Tensor:
    """tau per sequence [B]: tau_pos where A > 0, tau_neg elsewhere (SAPO's asymmetric temperatures)."""
    as_tensor = lambda x: torch.as_tensor(x, dtype=advantages.dtype, device=advantages.device)  # noqa: E731
    return torch.where(advantages > 0, as_tensor(config.tau_pos), as_tensor(config.tau_neg))


def log_gate(log_ratio: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """log f(r) = log(4 / tau) + log sigmoid(tau (r - 1)), computed stably from log r. ``tau`` is [B, 1]."""
    ratio = torch.exp(log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))
    return torch.log(4.0 / tau) + F.logsigmoid(tau * (ratio - 1.0))


def token_gradient_weight(weight: torch.Tensor, log_ratio: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Each token's weight in SSPO's gradient, relative to the plain policy gradient (1 at the behaviour policy).

    With W_i = exp(mean_t log f(r_t)) over the sequence's T_i tokens (or a turn's, in ``sorl+sspo``),
    d(-A_i W_i)/d log pi_t = -(A_i / T_i) * W_i * r_t * f'(r_t) / f(r_t), and the plain gradient is -A_i / T_i,
    so the token's weight is W_i r_t f'(r_t)/f(r_t) = W_i * r_t * tau * (1 - sigmoid(tau (r_t - 1))). This is
    what the update uses: the gate's slope f'(r) = 4 sigma (1 - sigma) alone (what sigx logged before
    2026-11-30) leaves out the geometric mean W and the ratio (one token at r = e of three, the others at 1:
    slope 0.516, weight 0.986)."""
    ratio = torch.exp(log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))
    return weight * ratio * tau * torch.sigmoid(-tau * (ratio - 1.0))  # 1 - sigma, without cancellation


def soft_gated_weight(logprobs, old_logprobs, advantages, mask, config: SSPOConfig, group_ids=None):
    """The geometric mean of gated token ratios, W = exp(mean log f(r_t)), over each group of tokens.

    ``group_ids`` [B, T] (>= 0 where masked in) splits a sequence into groups that each get their own weight
    (SORL's turns, in the SORL+SSPO composition); None means one group per sequence (plain SSPO). Returns the
    per-token weight [B, T] (with gradient) and each token's weight in the gradient (for diagnostics).
    """
    tau = gate_temperatures(advantages, config)[:, None].to(logprobs.dtype)
    log_ratio = logprobs - old_logprobs
    log_f = log_gate(log_ratio, tau)
    if group_ids is None:
        per_token = masked_mean(log_f, mask, dim=-1)[:, None].expand_as(log_f)
    else:
        per_token = turn_mean(log_f, mask, group_ids)
    weight = torch.exp(per_token)
    return weight, token_gradient_weight(weight.detach(), log_ratio.detach(), tau)


def gate_diagnostics(token_weight: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        # the mean token weight in the gradient, relative to plain PG (1 on-policy)
        "sspo/gate_weight": masked_mean(token_weight, mask),
        # tokens whose gradient the gate has cut by more than half: SSPO's counterpart of the clip fraction
        "sspo/gated_fraction": masked_mean((token_weight < 0.5).float(), mask),
    }


@register_policy_loss("sspo", zero_at_zero_advantage=True, aggregation="seq-mean")
def sspo_loss(x: PolicyLossInputs, config: SSPOConfig):
    """SSPO's loss (formula in the module docstring): -W_i A_i on every token of sequence i [B, T], so that the
    per-sequence mean is -W_i A_i; averaged over sequences (registered ``seq-mean``). Settings: the ``sspo``
    section (tau_pos, tau_neg)."""
    weight, gate_grad = soft_gated_weight(x.logprobs, x.old_logprobs, x.advantages, x.mask, config)
    loss = -x.advantages[:, None] * weight
    seq_ratio = torch.exp(masked_mean((x.logprobs - x.old_logprobs).detach(), x.mask, dim=-1))
    return loss, {"ratio_mean": seq_ratio.mean(), **gate_diagnostics(gate_grad, x.mask)}


@register_technique
class SSPO(Technique):
    name = "sspo"
    config_class = SSPOConfig
    policy_loss = "sspo"
