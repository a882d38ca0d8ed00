"""Advantage estimators, a registry in the style of verl's ``core_algos``.

An estimator maps the rewards [N] of a step's trajectories and their GRPO group ids [N] to advantages [N]. A
trajectory's group is its ``group`` id, so groups may have any size (GC-RL's critiques may form groups of
their own or join their question's group).
"""

from __future__ import annotations

from typing import Callable

import torch

from sigx.config import ADVANTAGE_NAMES

AdvantageEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {}


def register_advantage(name: str):
    """Decorator: register ``fn(rewards [N], groups [N]) -> advantages [N]`` under ``name``; from then on
    ``training.advantage: <name>`` is a valid recipe field."""
    def wrap(fn: AdvantageEstimator) -> AdvantageEstimator:
        if name in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"advantage estimator {name!r} is registered twice")
        ADVANTAGE_NAMES.register(name)
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return wrap


def advantage_estimator(name: str) -> AdvantageEstimator:
    if name not in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {name!r}; allowed: {', '.join(ADVANTAGE_ESTIMATORS)}")
    return ADVANTAGE_ESTIMATORS[name]


def _group_stats(rewards: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-trajectory mean and unbiased std of its group's rewards (std 0 for a group of one)."""
    _, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), dtype=rewards.dtype).index_add_(0, inverse, rewards)
    means = sums / counts
    squares = torch.zeros(len(counts), dtype=rewards.dtype).index_add_(0, inverse, (rewards - means[inverse]) ** 2)
    stds = torch.sqrt(squares / (counts - 1).clamp(min=1))
    return means[inverse], stds[inverse]


@register_advantage("grpo")
def grpo_advantages(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """GRPO (Shao et al. 2024, arXiv 2402.03300, §4.1.2, outcome supervision)::

        A_i = (r_i - mean(r_group(i))) / (std(r_group(i)) + eps)

    with the unbiased (Bessel) standard deviation, as TRL's GRPOTrainer computes it; eps = 1e-4 as TRL."""
    mean, std = _group_stats(rewards, groups)
    return (rewards - mean) / (std + eps)


@register_advantage("dr_grpo")
def dr_grpo_advantages(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Dr. GRPO (Liu et al. 2025, arXiv 2503.20783, §3.2)::

        A_i = r_i - mean(r_group(i))

    no division by the group's std, which otherwise up-weights near-uniform groups."""
    mean, _ = _group_stats(rewards, groups)
    return rewards - mean


@register_advantage("rloo")
def rloo_advantages(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """RLOO, REINFORCE leave-one-out (Ahmadian et al. 2024, arXiv 2402.14740; Kool et al. 2019)::

        A_i = r_i - 1/(k-1) sum_{j != i, j in group(i)} r_j  =  k/(k-1) (r_i - mean(r_group(i)))

    k the size of i's group: each sample's baseline is the mean of the others' rewards, so it does not depend on
    the sample's own (TRL's RLOOTrainer and verl's ``rloo``). A group of one has no other sample: 0, as GRPO's and
    Dr. GRPO's here (verl's leaves its raw reward)."""
    mean, _ = _group_stats(rewards, groups)
    _, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    k = counts[inverse].to(rewards.dtype)
    return (rewards - mean) * k / (k - 1).clamp(min=1)
