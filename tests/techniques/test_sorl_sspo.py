"""The SORL+SSPO composition (sigx's construction) and how the loss in force is resolved."""

import math

import pytest
import torch

from loss_inputs import inputs, loss_and_grad
from sigx.config import SORLConfig, SSPOConfig, TechniquesConfig, TrainingConfig
from sigx.engine.hooks import TechniqueError, resolve_policy_loss
from sigx.techniques import TECHNIQUES, TechniqueContext, build


def two_turns(second_turn_log_ratios):
    return inputs([[0.0, 0.02, 5.0, *second_turn_log_ratios]], [1.0], mask=[[1, 1, 0, 1, 1]],
                  turn_ids=[[0, 0, -1, 1, 1]])


def test_single_turn_without_normalisation_is_exactly_sspo():
    logp, x = inputs([[0.3, -0.2, 0.1]], [1.0])
    _, composed, _ = loss_and_grad("sorl+sspo", logp, x, sorl=SORLConfig(clip_normalization=False))
    _, sspo, _ = loss_and_grad("sspo", logp, x)
    assert torch.allclose(composed, sspo)


def test_the_normalisation_is_triggered_where_sorls_clip_binds_as_under_sorl_alone():
    """A = +1, r = 0.7: outside the band, but on the side where PPO's clip does not bind (the gradient flows), so
    neither loss normalises (the composition once gave 0.588 here); A = +1, r = 1.5 and A = -1, r = 0.7 bind."""
    for log_ratio, adv, binds in ((math.log(0.7), 1.0, False), (math.log(1.5), 1.0, True), (math.log(0.7), -1.0, True),
                                  (math.log(1.5), -1.0, False)):
        scales = []
        for name in ("sorl", "sorl+sspo"):
            logp, x = inputs([[log_ratio]], [adv])
            _, _, diag = loss_and_grad(name, logp, x)
            scales.append(diag["sorl/normalization_scale"].item())
        assert scales[0] == pytest.approx(scales[1]) and (scales[0] < 1) is binds
        r = math.exp(log_ratio)
        assert not binds or scales[0] == pytest.approx(1 / (1 + r * abs(adv)))  # C = w |A| on the one token


def test_the_gated_mean_is_per_turn_so_a_drifted_turn_leaves_the_other_alone():
    logp_a, x_a = two_turns([0.0, 0.01])
    logp_b, x_b = two_turns([2.0, 3.0])
    _, grad_a, _ = loss_and_grad("sorl+sspo", logp_a, x_a, sorl=SORLConfig(clip_normalization=False))
    _, grad_b, _ = loss_and_grad("sorl+sspo", logp_b, x_b, sorl=SORLConfig(clip_normalization=False))
    assert grad_a[0, :2].tolist() == pytest.approx(grad_b[0, :2].tolist())
    assert 0 < grad_b[0, 3:].abs().max().item() < grad_a[0, 3:].abs().min().item()  # soft, not cut


def test_both_ratio_techniques_resolve_to_the_composition_bound_to_both_sections():
    sections = TechniquesConfig(sspo=SSPOConfig(enabled=True, tau_pos=2.0), sorl=SORLConfig(enabled=True))
    built = [TECHNIQUES[n](getattr(sections, n), None) for n in sections.enabled_names()]
    loss = resolve_policy_loss(built, TrainingConfig())
    assert loss.name == "sorl+sspo" and loss.settings["sspo"].tau_pos == 2.0 and loss.aggregation(TrainingConfig()) == "seq-mean"
    only_sorl = resolve_policy_loss([TECHNIQUES["sorl"](SORLConfig(clip_eps=0.1), None)], TrainingConfig())
    assert only_sorl.name == "sorl" and only_sorl.settings.clip_eps == 0.1
    baseline = resolve_policy_loss([], TrainingConfig(policy_loss="gspo", gspo_clip_eps=1e-3))
    assert baseline.name == "gspo" and baseline.settings.low == 1e-3


def test_two_ratio_claims_without_a_composition_are_refused():
    class Other(TECHNIQUES["sspo"]):
        policy_loss = "ppo_clip"

    with pytest.raises(TechniqueError, match="no composition"):
        resolve_policy_loss([Other(SSPOConfig(), None, TechniqueContext()),
                             TECHNIQUES["sorl"](SORLConfig(), None)], TrainingConfig())


def test_build_orders_techniques_as_the_loop_meets_them():
    from sigx.config import recipe_from_data

    recipe = recipe_from_data({"techniques": {name: {"enabled": True} for name in ("sorl", "sspo", "gcrl", "search_p1")}})
    assert [t.name for t in build(recipe)] == ["search_p1", "gcrl", "sspo", "sorl"]
