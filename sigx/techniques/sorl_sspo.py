"""SORL + SSPO composed: the one loss in force when both techniques are enabled (registered as ``sorl+sspo``).

Both techniques replace the importance ratio and its trust region, so their composition must be defined; it
is **sigx's own construction, in neither paper** (neither discusses the other):

    W_{i,k} = exp( mean_{t in turn k} log f(r_t) )          SSPO's gated geometric mean, taken per turn
                                                             instead of per sequence (SORL's granularity)
    w_{i,k} = exp( mean_{t in turn k} log r_t )              SORL's plain turn ratio, used only to decide
                                                             on which turns SORL's clip would bind (w past the
                                                             band [1 - eps, 1 + eps_high] on the side A pushes)
    loss_t  = -A_i W_{i,turn(t)} / (1 + alpha C_i)           SSPO's soft gate replaces SORL's hard per-turn clip;
                                                             SORL's clipping-triggered normalisation (sigx's
                                                             form, see sigx.techniques.sorl) is triggered by the
                                                             same turns as under ``sorl`` alone

Averaged per sequence, as SSPO's loss is (its weight is one per sequence, here one per turn of a sequence).
On a single-turn task it is SSPO times that normalisation, and the normalisation is the one ``sorl`` applies to
the same ratios and advantages (tested in tests/techniques/test_sorl_sspo.py). Until 2026-11-30 it was
triggered by any turn outside the band, on either side (A = +1, w = 0.7: scale 0.588 here, 1.000 under sorl).
"""

from __future__ import annotations

import torch

from sigx.engine.losses import PolicyLossInputs, masked_mean, register_policy_loss
from sigx.techniques.sorl import band, clip_binds, clipping_normalization, turn_log_ratio, turn_stats
from sigx.techniques.sspo import gate_diagnostics, soft_gated_weight


@register_policy_loss("sorl+sspo", zero_at_zero_advantage=True, aggregation="seq-mean")
def sorl_sspo_loss(x: PolicyLossInputs, sections: dict):
    """Per-token loss [B, T] as in the module docstring. Settings: ``{"sorl": SORLConfig, "sspo": SSPOConfig}``."""
    sorl, sspo = sections["sorl"], sections["sspo"]
    low, high = band(sorl)
    weight, gate_grad = soft_gated_weight(x.logprobs, x.old_logprobs, x.advantages, x.mask, sspo, x.turn_ids)
    turn_ratio = torch.exp(turn_log_ratio(x)).detach()
    binds = clip_binds(turn_ratio, x.advantages, low, high)
    scale = clipping_normalization(turn_ratio, x.advantages, x.mask, binds, sorl)
    loss = -x.advantages[:, None] * weight * scale
    return loss, {
        "ratio_mean": masked_mean(turn_ratio, x.mask),
        **gate_diagnostics(gate_grad, x.mask),
        **turn_stats(binds, x, scale),
    }
