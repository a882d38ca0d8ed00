"""Executors: run the pending cells of an ablation and report each result to the display as it arrives.

- ``sequential``: this process, one shared engine, one cell after another (``--workers 1``, the default);
- ``processes``: ``--workers N`` spawned processes, each with its own shared engine and, when GPUs are present,
  its own GPU (round-robin when there are more workers than GPUs); progress of every running cell streams back through a queue;
- ``ray``: each cell a Ray task (``num_gpus``/``num_cpus`` from the recipe) on an existing cluster
  (``--address``) or a local one; Ray reuses worker processes, and each keeps its shared engine across cells.

Every executor runs cells through :func:`sigx.ablation.cell.run_cell`, which publishes each cell atomically, so
the executors differ only in where cells run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from rich.console import Console

from sigx.ablation.cell import run_cell
from sigx.ablation.display import AblationProgress
from sigx.ablation.plan import Cell
from sigx.ablation.store import AblationStore, StoreError
from sigx.config import AblationConfig, RecipeError


def _payload(cell: Cell) -> dict:
    return cell.recipe.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------- sequential
def run_sequential(cells: list[Cell], store: AblationStore, group: str, ui: AblationProgress,
                   console: Console) -> list[dict]:
    results = []
    for cell in cells:
        ui.started(cell.id)
        result = run_cell(str(store.root.resolve()), _payload(cell), cell.id, group,
                          on_progress=lambda step, stats, cid=cell.id: ui.stepped(cid, step, stats), console=console)
        ui.finished(result)
        results.append(result)
    return results


# ---------------------------------------------------------------------------------------------- processes
_PROGRESS_QUEUE = None


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the ``sigx ablate`` process dies (even by ``kill -9``), so
    no orphan keeps training a cell that the resumed ablation will run again."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the store's atomic publish still keeps a cell from being recorded twice


def _init_worker(progress_queue, device_queue, threads: int) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    _die_with_parent()
    if device_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device_queue.get())  # before torch initialises CUDA
    import torch

    torch.set_num_threads(threads)


def _worker_run_cell(store_root: str, recipe_data: dict, cell_id: str, group: str) -> dict:
    _PROGRESS_QUEUE.put((cell_id, 0, ""))
    return run_cell(store_root, recipe_data, cell_id, group,
                    on_progress=lambda step, stats: _PROGRESS_QUEUE.put((cell_id, step, stats)),
                    console=Console(stderr=True))


def run_processes(cells: list[Cell], store: AblationStore, group: str, ui: AblationProgress, workers: int,
                  console: Console) -> list[dict]:
    import torch

    gpus = torch.cuda.device_count()
    if gpus and workers > gpus:
        console.print(f"[yellow]{workers} workers on {gpus} GPU(s): workers share GPUs round-robin[/yellow]")
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
            ui.stepped(cell_id, step, stats)

    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(progress_queue, device_queue, threads)) as pool:
        futures = {pool.submit(_worker_run_cell, str(store.root.resolve()), _payload(c), c.id, group): c
                   for c in cells}
        pending = set(futures)
        lost = 0
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost += 1  # a worker died (out of memory, a signal): the cell stays pending
                    continue
                except RecipeError:  # raised in a worker: a recipe no cell can run with
                    for other in pending:
                        other.cancel()
                    raise
                ui.finished(result)
                results.append(result)
        drain()
    if lost:
        console.print(f"[red]a worker process died; {lost} cell(s) left pending: run the same command to "
                      "resume them[/red]")
    return results


# ---------------------------------------------------------------------------------------------- ray
def _ray_run_cell(store_root: str, recipe_data: dict, cell_id: str, group: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    return run_cell(store_root, recipe_data, cell_id, group, console=Console(stderr=True, quiet=True))


def run_ray(cells: list[Cell], store: AblationStore, group: str, ui: AblationProgress, config: AblationConfig,
            console: Console) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise StoreError("ablation.executor: 'ray' needs Ray; install it with: pip install 'sigx[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=config.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        gpus = config.gpus_per_cell
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        # max_calls=0: keep worker processes (and the shared engine each holds) alive across cells; Ray would
        # otherwise recycle a GPU task's worker after every call.
        task = ray.remote(max_calls=0)(_ray_run_cell).options(num_cpus=config.cpus_per_cell, num_gpus=gpus)
        threads = max(1, int(config.cpus_per_cell))
        refs = {task.remote(str(store.root.resolve()), _payload(c), c.id, group, threads): c for c in cells}
        results = []
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
            for ref in ready:
                cell = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except RecipeError as err:  # Ray re-raises the task's RecipeError (wrapped): stop, as locally
                    raise RecipeError(getattr(err, "cause", err).problems) from None
                except ray.exceptions.RayError as err:  # the worker died, or the node: the cell stays pending
                    console.print(f"[red]{cell.id}: lost ({type(err).__name__}); it stays pending[/red]")
                    continue
                ui.finished(result)
                results.append(result)
        return results
    finally:
        if started_here:
            ray.shutdown()
