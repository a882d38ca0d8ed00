"""The engine's hook points: the only way a technique changes a GRPO step.

One GRPO step runs these stages, in order; a technique overrides only the hooks of its stage, and the engine
calls the hooks of every enabled technique in the fixed order of ``sigx.techniques.TECHNIQUE_ORDER``::

    rollout ──► expand_rollouts ──► outcome reward ──► shape_rewards ──► advantages ──► adjust_advantages
            ──► policy loss (``policy_loss`` names a registered loss: IS ratio and trust region)
            ──► + extra_loss ──► optimizer step

``expand_rollouts``  add trajectories of a new kind (GC-RL's critiques), scored by the technique itself.
``shape_rewards``    rewrite ``trajectory.reward`` from the outcome and the transcript (Search-P1).
``adjust_advantages``change advantages after group normalisation.
``policy_loss``      the name of the policy loss in ``sigx.engine.losses.POLICY_LOSSES`` this technique needs
                     (SSPO, SORL); at most one loss is in force, so techniques that both reshape the ratio
                     must register a composed loss and say so (and whether it is zero at zero advantage).
``extra_loss``       a term added to the aggregated policy loss (a technique that overrides it keeps rows with
                     zero advantage in the update, which are otherwise left out as carrying no gradient).
``metrics``          diagnostics logged each step under ``<technique>/``.
``state_dict`` / ``load_state_dict``
                     whatever the technique carries from one step to the next (GC-RL's sampling RNG), saved
                     in the run's checkpoint so that a resumed run continues exactly as an uninterrupted one.

A technique's knobs are its section of the recipe (``config_class`` in :mod:`sigx.config`); it may read the
whole recipe (e.g. the sampling settings GC-RL's critiques reuse) but changes nothing outside its hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from sigx.config import TechniqueConfig

if TYPE_CHECKING:
    from sigx.engine.trajectory import RolloutBatch, Trajectory


class Technique:
    name: ClassVar[str] = ""
    config_class: ClassVar[type[TechniqueConfig]] = TechniqueConfig
    policy_loss: ClassVar[str | None] = None

    def __init__(self, config: TechniqueConfig, task, engine=None, recipe=None):
        self.config = config
        self.task = task
        self.engine = engine
        self.recipe = recipe

    def expand_rollouts(self, trajectories: list["Trajectory"], next_group: int) -> list["Trajectory"]:
        return []

    def shape_rewards(self, trajectories: list["Trajectory"]) -> None:
        return None

    def adjust_advantages(self, trajectories: list["Trajectory"], advantages: torch.Tensor) -> torch.Tensor:
        return advantages

    def extra_loss(self, batch: "RolloutBatch", logprobs: torch.Tensor) -> torch.Tensor | None:
        return None

    def metrics(self, trajectories: list["Trajectory"]) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
