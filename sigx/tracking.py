"""Weights & Biases tracking. The local ``metrics.jsonl`` stays the source of truth; W&B is a mirror.

``offline`` (the default) works with no network; ``wandb sync <run_dir>/wandb/offline-run-*`` uploads later.
``disabled`` skips W&B entirely (tests). wandb is imported only when used: it is slow to import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from sigx.config import RecipeError

#: the modes WANDB_MODE may name (wandb's own list; "dryrun" and "run" are its old names)
WANDB_MODES = ("online", "offline", "disabled", "shared", "dryrun", "run")


class Tracker:
    def __init__(self, mode: str, project: str, run_dir: Path, name: str, config: dict,
                 group: str | None = None, tags: list[str] | None = None, job_type: str = "train",
                 run_id: str | None = None, unreachable: str = "stop", warn: Callable[[str], None] | None = None):
        """``run_id``: the W&B run's id; a run resumed from its checkpoint passes the id it had, so that W&B
        continues that run instead of starting another. ``unreachable`` (logging.wandb_unreachable): what an
        online run does when W&B cannot be reached: ``stop`` with one line, or go on ``offline`` (said through
        ``warn``)."""
        self.run = None
        if mode == "disabled":
            return
        env_mode = os.environ.get("WANDB_MODE")
        if env_mode is not None and env_mode not in WANDB_MODES:
            raise RecipeError([f"WANDB_MODE={env_mode[:40]}: not a W&B mode (it overrides logging.wandb); allowed: "
                               f"{', '.join(WANDB_MODES[:4])}, or unset it"])
        try:
            import wandb
        except ImportError as err:  # a hard dependency, but an image built without it (the GPU's) is a traceback
            raise RecipeError([f"logging.wandb: {mode} needs the wandb package, which cannot be imported "
                               f"({type(err).__name__}: {err}); pip install wandb, or set logging.wandb: "
                               "disabled"]) from None

        def start(how: str):
            return wandb.init(
                mode=how, project=project, dir=str(run_dir), name=name, group=group, tags=tags or [],
                job_type=job_type, config=config, reinit="finish_previous", id=run_id,
                resume="allow" if run_id else None, settings=wandb.Settings(silent=True, console="off"))

        try:
            self.run = start(mode)
        except Exception as err:  # wandb.errors.CommError / UsageError / AuthenticationError ...
            reason = " ".join(str(err).split())[:160] or type(err).__name__
            if mode == "online" and unreachable == "offline":
                (warn or print)(f"logging.wandb: W&B cannot be reached ({type(err).__name__}: {reason}); going on "
                                f"offline: `wandb sync {run_dir}/wandb/offline-run-*` uploads it later")
                wandb.teardown()  # the failed start still holds the run's id in wandb's service
                self.run = start("offline")
                return
            raise RecipeError([f"logging.wandb: {mode}: W&B did not start ({type(err).__name__}: {reason}); set "
                               "logging.wandb: offline (and `wandb sync` later), or logging.wandb_unreachable: "
                               "offline to go on offline when it cannot be reached"]) from None

    def log(self, row: dict, step: int) -> None:
        if self.run is not None:
            self.run.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=step)

    def finish(self, summary: dict | None = None, exit_code: int = 0) -> None:
        if self.run is None:
            return
        for k, v in (summary or {}).items():
            if isinstance(v, (int, float, str)):
                self.run.summary[k] = v
        self.run.finish(exit_code=exit_code)
        self.run = None
