"""``executor: slurm``: each cell a Slurm job, submitted through submitit as one job array (``ablation.slurm``:
partition, account, time limit, GPUs, CPUs, memory, extra sbatch options). A job runs the cell exactly as every
other launcher does (:func:`sigx.ablation.cell.run_cell`: staging directory, checkpoint, atomic publish), so a
job that is preempted or killed resumes from its checkpoint when the cell runs again.

A killed ``sigx ablate`` leaves its jobs on the cluster: the job ids are kept in the store
(``.slurm/jobs.json``), and the next invocation waits on the jobs still queued or running instead of submitting
their cells again; cells whose job has ended without publishing are submitted anew. With ``local: true`` the
jobs are local processes (submitit's ``LocalExecutor``: the same submission, pickling and result path without
a cluster), which is how the tests run it.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path


from sigx.ablation.launchers.base import Event, Launcher, Report, payload, register_launcher, run_cell_remotely
from sigx.ablation.plan import Cell
from sigx.ablation.store import StoreError
from sigx.nodes import Nodes
from sigx.runs import read_json, write_json_atomic

ALIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING"}


def _exit_with(pid: int) -> None:
    """A local job ends when the ``sigx ablate`` that launched it ends (as local workers do); a Slurm job does not:
    it runs on, and the next invocation re-attaches to it. The job is not the launcher's child (submitit starts it
    through a process of its own), so it waits on the launcher's pid: at once through a pidfd (Linux), else by
    asking every 0.2 s. The end must be prompt: a job that ran on would finish its cell and drop the checkpoint
    the resumed ablation starts from, and work would be done twice."""
    def wait_for_exit() -> None:
        try:
            handle = os.pidfd_open(pid)
        except (AttributeError, OSError):
            handle = None
        if handle is not None:
            select.select([handle], [], [])  # readable when the process has ended
        else:
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
        os._exit(1)  # the cell's staging directory keeps its last checkpoint: it resumes from there

    threading.Thread(target=wait_for_exit, daemon=True).start()


def _job_run_cell(store_root: str, recipe_data: dict, cell_id: str, group: str, threads: int,
                  launcher_pid: int | None = None, nodes: int = 1) -> dict | None:
    """A cell's job. Across ``nodes`` (one task per node; local: tasks on this machine), task 0 claims the
    staging directory, names it for the others, runs node 0 of ``sigx train --nnodes`` and publishes the cell;
    the others run their nodes of it. They meet at task 0's host, on a port derived from the job id."""
    if launcher_pid is not None:
        _exit_with(launcher_pid)
    if nodes == 1:
        return run_cell_remotely(store_root, recipe_data, cell_id, group, threads)
    import submitit

    from sigx.ablation.cell import join_cell

    job = submitit.JobEnvironment()
    attempt = os.environ.get("SLURM_RESTART_COUNT", "0")  # a requeued job runs again under the same id
    told = Path(store_root) / ".slurm" / f"{job.job_id}.{attempt}.staging.json"
    if job.global_rank == 0:
        address = "127.0.0.1" if launcher_pid is not None else job.hostnames[0]
        port = 20000 + int("".join(c for c in str(job.job_id) if c.isdigit()) or "0") % 20000
        return run_cell_remotely(store_root, recipe_data, cell_id, group, threads,
                                 nodes=Nodes(nodes, 0, address, port), tell_staging=told)
    join_cell(recipe_data, cell_id, group, nodes, job.global_rank, told)
    return None


@register_launcher
class SlurmLauncher(Launcher):
    name = "slurm"

    def where(self) -> str:
        c = self.config.slurm
        return "local processes (submitit LocalExecutor)" if c.local else f"Slurm ({c.partition or 'default partition'})"

    def _executor(self, submitit):
        c = self.config.slurm
        folder = self.store.root / ".slurm" / "%j"
        if c.local:
            executor = submitit.LocalExecutor(folder=folder)
            executor.update_parameters(timeout_min=c.time_min, tasks_per_node=c.nodes_per_cell)
            return executor
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        # a cell's run on ablation.nproc_per_cell processes: one task that starts them (torchrun), a GPU for each
        gpus = max(c.gpus_per_cell, self.config.nproc_per_cell) if c.gpus_per_cell else 0
        params = {"timeout_min": c.time_min, "cpus_per_task": c.cpus_per_cell, "gpus_per_node": gpus,
                  "nodes": c.nodes_per_cell, "tasks_per_node": 1,
                  "slurm_array_parallelism": c.max_parallel, "name": f"sigx-{self.group}"}
        if c.mem_gb is not None:
            params["mem_gb"] = c.mem_gb
        if c.partition:
            params["slurm_partition"] = c.partition
        if c.account:
            params["slurm_account"] = c.account
        if c.sbatch:
            params["slurm_additional_parameters"] = dict(c.sbatch)
        executor.update_parameters(**params)
        return executor

    def _reattach(self, submitit, cells: list[Cell]) -> dict[str, object]:
        """Jobs of an earlier invocation that are still queued or running, by cell id (real Slurm only: a local
        job's process cannot be re-attached, and died with its parent or publishes on its own)."""
        if self.config.slurm.local:
            return {}
        known = read_json(self.store.root / ".slurm" / "jobs.json") or {}
        jobs = {}
        for cell in cells:
            job_id = known.get(cell.id)
            if job_id is None:
                continue
            job = submitit.SlurmJob(folder=self.store.root / ".slurm" / "%j", job_id=str(job_id))
            try:
                if job.state in ALIVE:
                    jobs[cell.id] = job
            except Exception:  # sacct unavailable or the job forgotten: submit the cell again
                continue
        return jobs

    def launch(self, cells: list[Cell], report: Report) -> list[dict]:
        try:
            import submitit
        except ImportError:
            raise StoreError("ablation.executor: 'slurm' needs submitit; install it with: pip install "
                             "'sigx[slurm]'") from None
        threads = max(1, self.config.slurm.cpus_per_cell)
        jobs = self._reattach(submitit, cells)
        fresh = [c for c in cells if c.id not in jobs]
        if jobs:
            self.console.print(f"re-attached to {len(jobs)} job(s) of an earlier invocation", highlight=False)
        if fresh:
            executor = self._executor(submitit)
            root = str(self.store.root.resolve())
            with executor.batch():  # one job array
                watch = os.getpid() if self.config.slurm.local else None
                nodes = self.config.slurm.nodes_per_cell
                submitted = [(c, executor.submit(_job_run_cell, root, payload(c), c.id, self.group, threads, watch,
                                                 nodes)) for c in fresh]
            jobs.update({c.id: job for c, job in submitted})
        known = read_json(self.store.root / ".slurm" / "jobs.json") or {}
        known.update({cell_id: job.job_id for cell_id, job in jobs.items()})
        write_json_atomic(self.store.root / ".slurm" / "jobs.json", known)
        for cell_id in jobs:
            report(Event("started", cell_id))
        results = []
        while jobs:
            for cell_id, job in list(jobs.items()):
                if not job.done():
                    continue
                del jobs[cell_id]
                try:
                    result = job.results()[0]  # a job across nodes has a task per node: node 0 publishes
                except Exception as err:  # the job died (time limit, node, a RecipeError): the cell stays pending
                    first = (str(err).strip().splitlines() or [type(err).__name__])[-1][:200]
                    report(Event("lost", cell_id, why=f"job {job.job_id}: {first}"))
                    continue
                report(Event("finished", cell_id, result=result))
                results.append(result)
            if jobs:
                time.sleep(0.5)
        return results
