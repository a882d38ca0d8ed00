"""``executor: local``: the cells in this process one after another (``workers: 1``), or in ``workers`` spawned
processes, each with its own shared engine and, when GPUs are present, its own GPU (round-robin when there are
more workers than GPUs); every running cell's progress streams back through a queue."""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from sigx.ablation.cell import run_cell
from sigx.ablation.launchers.base import Event, Launcher, Report, die_with_parent, payload, register_launcher
from sigx.ablation.plan import Cell
from sigx.config import RecipeError
from sigx.console import log_console

_PROGRESS_QUEUE = None


def _init_worker(progress_queue, device_queue, threads: int) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    die_with_parent()
    if device_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device_queue.get())  # before torch initialises CUDA
    import torch

    torch.set_num_threads(threads)


def _worker_run_cell(store_root: str, recipe_data: dict, cell_id: str, group: str) -> dict:
    _PROGRESS_QUEUE.put((cell_id, 0, ""))
    return run_cell(store_root, recipe_data, cell_id, group,
                    on_progress=lambda step, stats: _PROGRESS_QUEUE.put((cell_id, step, stats)),
                    console=log_console())


def sharing_warning(workers: int, gpus: int, cpus: int) -> str | None:
    """What more workers than devices means, said before they start: on GPUs they take turns round-robin; on CPUs
    each worker gets one thread and they share the cores, so the ablation runs no faster than with ``cpus``
    workers while each holds its own copy of the model (memory) and its runs' wall times read slower."""
    if gpus and workers > gpus:
        return f"{workers} workers on {gpus} GPU(s): workers share GPUs round-robin"
    if not gpus and workers > cpus:
        return (f"{workers} workers on {cpus} CPU core(s): each gets 1 thread and they share the cores (no faster "
                f"than --workers {cpus}; each holds its own model in memory)")
    return None


@register_launcher
class LocalLauncher(Launcher):
    name = "local"

    def where(self) -> str:
        return f"{self.config.workers} worker process(es)" if self.config.workers > 1 else "this process"

    def launch(self, cells: list[Cell], report: Report) -> list[dict]:
        if self.config.workers > 1:
            return self._processes(cells, report)
        results = []
        for cell in cells:
            report(Event("started", cell.id))
            result = run_cell(str(self.store.root.resolve()), payload(cell), cell.id, self.group,
                              on_progress=lambda step, stats, cid=cell.id: report(Event("stepped", cid, step, stats)),
                              console=self.console)
            report(Event("finished", cell.id, result=result))
            results.append(result)
        return results

    def _processes(self, cells: list[Cell], report: Report) -> list[dict]:
        import torch

        workers = self.config.workers
        gpus = torch.cuda.device_count()
        warning = sharing_warning(workers, gpus, os.cpu_count() or 1)
        if warning:
            self.console.print(f"[yellow]{warning}[/yellow]")
        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch/CUDA state
        progress_queue = ctx.Queue()
        device_queue = None
        if gpus:
            device_queue = ctx.Queue()
            for worker in range(workers):
                device_queue.put(worker % gpus)
        threads = max(1, (os.cpu_count() or 1) // workers)
        results = []

        def drain() -> None:
            while True:
                try:
                    cell_id, step, stats = progress_queue.get_nowait()
                except queue_module.Empty:
                    return
                report(Event("stepped", cell_id, step, stats))

        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(progress_queue, device_queue, threads)) as pool:
            futures = {pool.submit(_worker_run_cell, str(self.store.root.resolve()), payload(c), c.id, self.group): c
                       for c in cells}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool:  # a worker died (out of memory, a signal): the cell stays pending
                        report(Event("lost", futures[future].id, why="its worker process died"))
                        continue
                    except RecipeError:  # raised in a worker: a recipe no cell can run with
                        for other in pending:
                            other.cancel()
                        raise
                    report(Event("finished", result["cell"], result=result))
                    results.append(result)
            drain()
        return results
