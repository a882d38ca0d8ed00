"""The behaviour policy of a step: the policy its rollouts are sampled from.

On-policy GRPO samples each step from the weights just trained. Asynchronous RL does not: its rollout workers
sample with weights ``staleness`` updates old while the trainer moves on, and the importance ratio must correct
for the gap (the mechanism SSPO, SORL and GSPO act on). ``rollout.staleness: k`` reproduces that regime exactly
and deterministically in one process: the step-s rollout (responses and every technique's samples) is drawn
from the weights after step s - 1 - k, and the behaviour log-probs of the ratio are those weights' log-probs.
The first k steps sample from the base weights.

Cost: k + 1 copies of the weights in host memory (and in the checkpoint), and two weight loads per step; of the
trained weights only (``trained``: a LoRA run's adapters), since the rest never change within a run.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from typing import Callable

import torch


def _copy(model: torch.nn.Module, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if names is None or k in names}


class BehaviourPolicy:
    def __init__(self, model: torch.nn.Module, staleness: int, trained: set[str] | None = None):
        """``trained``: the state-dict names of the weights that train (None: all)."""
        self.staleness = staleness
        self.trained = trained
        #: the weights after each of the last k + 1 steps, oldest first (the base weights to begin with)
        self.snapshots: deque[dict[str, torch.Tensor]] = deque([_copy(model, trained)] if staleness else [],
                                                               maxlen=staleness + 1)

    @contextmanager
    def in_force(self, model: torch.nn.Module, push: Callable[[torch.nn.Module], None] | None = None):
        """Inside, ``model`` holds the behaviour weights (pushed to a separate rollout engine with ``push``);
        on leaving, the trained weights are back. A no-op without staleness."""
        if not self.staleness:
            yield
            return
        trained = _copy(model, self.trained)
        model.load_state_dict(self.snapshots[0], strict=self.trained is None)
        if push is not None:
            push(model)
        try:
            yield
        finally:
            model.load_state_dict(trained, strict=self.trained is None)

    def record(self, model: torch.nn.Module) -> None:
        """After a step's update: its weights join the window (the oldest leave)."""
        if self.staleness:
            self.snapshots.append(_copy(model, self.trained))

    def state_dict(self) -> dict:
        return {"snapshots": list(self.snapshots)}

    def blank_snapshots(self, model: torch.nn.Module, count: int) -> list[dict[str, torch.Tensor]]:
        """``count`` snapshots shaped (and, in a sharded run, sharded) as ``model``'s trained weights: what a
        sharded checkpoint's snapshots are loaded into."""
        return [_copy(model, self.trained) for _ in range(count)]

    def load_state_dict(self, state: dict) -> None:
        if self.staleness:
            self.snapshots = deque(state["snapshots"], maxlen=self.staleness + 1)
