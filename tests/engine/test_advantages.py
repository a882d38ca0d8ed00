"""Group-normalised advantages against hand-computed values."""

import math

import torch

from sigx.engine.advantages import ADVANTAGE_ESTIMATORS


def test_grpo_advantages_hand_computed():
    # group 0: rewards 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt(((.5^2)*4)/3) = sqrt(1/3)
    # group 1: rewards 1, 1, 1, 0 -> mean 0.75, unbiased std sqrt((3*.25^2 + .75^2)/3) = 0.5
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    adv = ADVANTAGE_ESTIMATORS["grpo"](rewards, groups, eps=0.0)
    s0 = math.sqrt(1 / 3)
    expected = [0.5 / s0, -0.5 / s0, -0.5 / s0, 0.5 / s0, 0.5, 0.5, 0.5, -1.5]
    assert torch.allclose(adv, torch.tensor(expected), atol=1e-6)


def test_groups_need_not_be_contiguous_or_equal_sized():
    rewards = torch.tensor([2.0, 5.0, 4.0, 3.0, 9.0])
    groups = torch.tensor([7, 3, 7, 3, 11])
    adv = ADVANTAGE_ESTIMATORS["dr_grpo"](rewards, groups)
    # group 7: mean 3 -> -1, +1; group 3: mean 4 -> +1, -1; group 11 (alone): 0
    assert adv.tolist() == [-1.0, 1.0, 1.0, -1.0, 0.0]


def test_uniform_group_gets_zero_advantage():
    adv = ADVANTAGE_ESTIMATORS["grpo"](torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0, 0, 0]))
    assert adv.abs().max().item() == 0.0


def test_rloo_baselines_each_sample_by_the_others_mean():
    # group 0: 1, 0, 0, 1 -> 1 - (0 + 0 + 1)/3 = 2/3, 0 - (1 + 0 + 1)/3 = -2/3
    # group 1: 1, 1, 1, 0 -> 1 - (1 + 1 + 0)/3 = 1/3, 0 - (1 + 1 + 1)/3 = -1; group 2, alone: 0
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 9.0], dtype=torch.float64)
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2])
    adv = ADVANTAGE_ESTIMATORS["rloo"](rewards, groups)
    expected = torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3, 1 / 3, 1 / 3, 1 / 3, -1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(adv, expected, atol=1e-15, rtol=0)
    # k/(k-1) times Dr. GRPO's, group by group
    assert torch.allclose(adv[:8], ADVANTAGE_ESTIMATORS["dr_grpo"](rewards, groups)[:8] * 4 / 3, atol=1e-15, rtol=0)
