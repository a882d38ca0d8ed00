"""Launchers: where an ablation's cells run (as Hydra's launcher plugins). One small interface, one module per
launcher with its own recipe subsection, chosen by ``ablation.executor`` from a registry; only the ablation
runner talks to the display, through the events a launcher reports.

Every launcher runs cells through :func:`sigx.ablation.cell.run_cell`, which trains a cell in the store's
``.staging/`` (resuming from its checkpoint) and publishes it by one atomic rename, so launchers differ only in
where cells run, and any of them resumes where any other stopped.

- ``local`` (:mod:`.local`): this process, or ``workers`` spawned processes (one GPU each, when there are GPUs);
- ``ray`` (:mod:`.ray`): each cell a Ray task on an existing cluster or a local one;
- ``slurm`` (:mod:`.slurm`): each cell a Slurm job through submitit (its local executor for tests).
"""

from __future__ import annotations

from sigx.ablation.launchers import local, ray, slurm  # noqa: F401  (each registers itself)
from sigx.ablation.launchers.base import LAUNCHERS, Event, Launcher, Report, launcher_for, payload, register_launcher

__all__ = ["LAUNCHERS", "Event", "Launcher", "Report", "launcher_for", "payload", "register_launcher"]
