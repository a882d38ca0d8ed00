"""Weights & Biases tracking. The local ``metrics.jsonl`` stays the source of truth; W&B is a mirror.

``offline`` (the default) works with no network; ``wandb sync <run_dir>/wandb/offline-run-*`` uploads later.
``disabled`` skips W&B entirely (tests). wandb is imported only when used: it is slow to import.
"""

from __future__ import annotations

from pathlib import Path


class Tracker:
    def __init__(self, mode: str, project: str, run_dir: Path, name: str, config: dict,
                 group: str | None = None, tags: list[str] | None = None, job_type: str = "train",
                 run_id: str | None = None):
        """``run_id``: the W&B run's id; a run resumed from its checkpoint passes the id it had, so that W&B
        continues that run instead of starting another."""
        self.run = None
        if mode == "disabled":
            return
        import wandb

        self.run = wandb.init(
            mode=mode, project=project, dir=str(run_dir), name=name, group=group, tags=tags or [],
            job_type=job_type, config=config, reinit="finish_previous", id=run_id, resume="allow" if run_id else None,
            settings=wandb.Settings(silent=True, console="off"),
        )

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
