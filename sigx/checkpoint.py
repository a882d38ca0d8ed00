"""A run's checkpoint, ``<run dir>/checkpoint.pt``: what the next step depends on, so that a run stopped at
any moment (Ctrl-C, ``kill -9``, a lost machine) resumes from its last checkpoint and continues exactly as if
it had never stopped: the same samples, the same updates, the same metrics.

That is: the policy weights, the optimizer's moments, the RNG streams (torch's CPU and CUDA generators, the
trainer's problem sampler, each technique's own through its ``state_dict`` hook), the metrics history and the
wall time spent so far, with the resolved recipe they belong to. One file, written under a temporary name,
fsynced and renamed, so a crash mid-write leaves the previous checkpoint whole; read with
``weights_only=True``, so loading one runs no pickled code. A completed run deletes its checkpoint (its
metrics and summary are the record; a store of 48 cells should not keep 48 optimizer states).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from sigx.config import RecipeError, default_recipe_like
from sigx.runs import COMPUTE_LAYOUT_FIELDS, config_differences, list_differences

FILE = "checkpoint.pt"

#: recipe fields a resumed run may change: where it logs, how long it runs, how often it checkpoints, the
#: ablation's execution settings and how the update is laid out in memory. Anything else would make the
#: resumed run a different experiment.
RESUMABLE_CHANGES = {("logging",), ("ablation",), ("training", "steps"),
                     ("training", "checkpoint_every")} | COMPUTE_LAYOUT_FIELDS


class Checkpoints:
    def __init__(self, run_dir: str | Path, every: int, config: dict):
        self.path = Path(run_dir) / FILE
        self.every = every
        self.config = config
        self.meta: dict = {}  # what the caller must find again on resuming (its W&B run id), saved alongside

    def due(self, step: int, last_step: int) -> bool:
        """Every ``every`` steps, except the last (a finished run needs none)."""
        return self.every > 0 and step % self.every == 0 and step < last_step

    def save(self, step: int, trainer_state: dict, history: list[dict], elapsed_s: float) -> None:
        state = {"step": step, "trainer": trainer_state, "history": history, "elapsed_s": elapsed_s,
                 "config": self.config, "meta": self.meta}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE}.")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self) -> dict | None:
        """The last checkpoint, or None when there is none. One of another recipe is a one-line error: resuming
        it would splice two experiments into one run."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # never a half-written file (atomic rename); a damaged or foreign one
            raise RecipeError([f"{self.path}: not a readable sigx checkpoint ({type(err).__name__}); start "
                               "afresh with --fresh"]) from None
        changed = config_differences(state["config"], self.config, ignore=RESUMABLE_CHANGES,
                                     defaults=default_recipe_like(state["config"]))
        if changed:
            raise RecipeError([f"{self.path}: a checkpoint of a different recipe (differs in "
                               f"{list_differences(changed)}); start afresh with --fresh, or write this run "
                               "elsewhere with --run-dir"])
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
