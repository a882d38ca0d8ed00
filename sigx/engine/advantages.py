"""Advantage estimators, a registry in the style of verl's ``core_algos``.

GRPO (Shao et al. 2024): A_i = (r_i - mean(r_group)) / (std(r_group) + eps), with the unbiased (Bessel)
standard deviation as TRL's GRPOTrainer computes it. Dr. GRPO (Liu et al. 2025) drops the division by the
std, which otherwise up-weights near-uniform groups. A trajectory's group is its ``group`` id, so groups may
have any size (GC-RL's critique groups are smaller than the generation groups).
"""

from __future__ import annotations

from typing import Callable

import torch

ADVANTAGE_ESTIMATORS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}


def register_advantage(name: str):
    def wrap(fn):
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return wrap


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
    mean, std = _group_stats(rewards, groups)
    return (rewards - mean) / (std + eps)


@register_advantage("dr_grpo")
def dr_grpo_advantages(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    mean, _ = _group_stats(rewards, groups)
    return rewards - mean
