"""Run one ablation cell on the engine this process keeps.

Each process that runs cells (the ``sigx ablate`` process itself, a ``--workers`` process, a Ray worker) builds
the shared engine once, on its first cell: tokenizer, base weights (the tiny model's SFT warm start is built
once per machine and cached) and rollout backend. Every later cell only resets the policy to the base weights
held in memory (:meth:`SharedEngine.reset_policy`).

A cell's own failure (an exception in training, a non-finite loss) is recorded as a failed cell with its
error and traceback; the ablation goes on. A recipe the engine cannot use at all (a model that cannot be
loaded) is not a cell's failure: it stops the ablation with its one-line error. Interrupts (Ctrl-C, ``kill``)
are not failures: they propagate and leave only a staging directory, from whose last checkpoint the next
invocation resumes the cell (or which it discards, when there was none yet).
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Callable

from rich.console import Console

from sigx.ablation.plan import combination_of
from sigx.ablation.store import AblationStore
from sigx.config import Recipe, RecipeError
from sigx.console import log_console
from sigx.nodes import Nodes
from sigx.runs import CHECKPOINT_FILE, cell_status, read_json, write_json_atomic

_ENGINE = {"key": None, "engine": None, "setup_s": 0.0, "cells": 0}


def shared_engine(recipe: Recipe, log: Callable[[str], None]):
    """This process's engine for ``recipe``, built on first use (one engine per process: building another
    one, for another model or task, frees the previous)."""
    from sigx.engine.shared import SharedEngine, engine_key

    key = engine_key(recipe)
    if _ENGINE["key"] != key:
        _ENGINE.update(key=None, engine=None)
        started = time.perf_counter()
        _ENGINE["engine"] = SharedEngine(recipe, log=log)
        _ENGINE.update(key=key, setup_s=time.perf_counter() - started, cells=0)
    _ENGINE["cells"] += 1
    return _ENGINE["engine"]


def check_same_base(store: AblationStore, engine) -> None:
    """Stop before a cell starts from another build of the warm start than the store's finished runs did.

    Why: a sigx/tiny warm start is rebuilt on each machine from its recipe, and its floating point depends on the
    machine (AVX-512 and AVX2 kernels give other weights): a store continued on another machine would mix two base
    models under one cache key, and its analysis would read their difference as the effect of whatever cells ran
    where. A one-line error (the ablation stops; nothing is run or lost) instead."""
    mine = getattr(engine, "base_weights", None)
    if mine is None:
        return
    found, _ = store.base_weights()
    others = {digest: n for digest, n in found.items() if digest != mine}
    if not others:
        return
    from sigx.provenance import another_build

    digest, runs = max(others.items(), key=lambda item: item[1])
    raise RecipeError([another_build(f"{store.root}: {runs} finished run(s)", engine.base_path, digest, mine,
                                     store.build_cpu(digest), "finish it on the machine its runs ran on")])


def train_in_processes(recipe: Recipe, recipe_data: dict, staging, cell_id: str, group: str,
                       nodes: Nodes | None = None):
    """``sigx train --nproc N`` (on ``nodes``: ``--nnodes``) into ``staging``; the finished process."""
    import subprocess
    import sys
    import tempfile

    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="sigx-cell-", delete=False) as handle:
        yaml.safe_dump(recipe_data, handle)
    try:
        command = [sys.executable, "-m", "sigx.cli", "train", handle.name, "--run-dir", str(staging), "--nproc",
                   str(recipe.ablation.nproc_per_cell), "--group", group, "--combination", combination_of(cell_id)]
        if nodes is not None:
            command += ["--nnodes", str(nodes.count), "--node-rank", str(nodes.rank), "--master-addr",
                        nodes.master_addr, "--master-port", str(nodes.master_port)]
        return subprocess.run(command, capture_output=True, text=True)
    finally:
        os.unlink(handle.name)


def run_in_processes(recipe: Recipe, recipe_data: dict, staging, cell_id: str, group: str,
                     nodes: Nodes | None = None) -> dict:
    """A cell's run on ``ablation.nproc_per_cell`` processes (on each of ``nodes``, this being node 0):
    ``sigx train --nproc N`` into its staging directory (its checkpoints, sharded, resume there). A recipe the
    run refuses stops the ablation, as in one process; any other failure is the cell's. Progress is not streamed
    to the ablation's display."""
    done = train_in_processes(recipe, recipe_data, staging, cell_id, group, nodes)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    if done.returncode == 2 and errors and not (staging / "summary.json").exists():
        raise RecipeError([errors[0].removeprefix("error: ")])
    summary = read_json(staging / "summary.json") or {}
    if done.returncode != 0 and summary.get("status") == "completed":
        summary = {}
    if done.returncode != 0:
        summary.setdefault("error", errors[-1].removeprefix("error: ") if errors else
                           f"a process of the cell stopped (exit status {done.returncode})")
        summary["status"] = "failed"
        summary["traceback"] = done.stderr[-4000:]
    return summary


def run_cell(store_root: str, recipe_data: dict, cell_id: str, group: str,
             on_progress: Callable[[int, str], None] | None = None, console: Console | None = None,
             nodes: Nodes | None = None, tell_staging: Path | None = None) -> dict:
    """Train one cell in a staging directory, publish it atomically, and return a short result record. A cell
    across ``nodes`` runs from node 0, which names the staging directory and where the nodes meet in
    ``tell_staging`` for the others (:func:`join_cell`), and removes that note once the run is over (every node
    read it before the run could start)."""
    from sigx.train import run_training

    console = console or log_console()
    log = lambda msg: console.print(f"[dim]{msg}[/dim]", highlight=False, soft_wrap=True)  # noqa: E731
    store = AblationStore(store_root)
    recipe = Recipe.model_validate(recipe_data)
    staging = store.claim_staging_dir(cell_id)  # an interrupted attempt's, with its checkpoint, if any
    if tell_staging is not None:
        write_json_atomic(tell_staging, {"staging": str(staging), "master_addr": nodes.master_addr,
                                         "master_port": nodes.master_port})
    started = time.perf_counter()
    try:
        if recipe.ablation.nproc_per_cell > 1 or nodes is not None:
            summary = run_in_processes(recipe, recipe_data, staging, cell_id, group, nodes)
            if summary.get("status") != "completed":  # --retry-failed starts over: no checkpoint (nor shards) kept
                from sigx.checkpoint import Checkpoints

                summary["wall_s"] = time.perf_counter() - started
                Checkpoints(staging, 0, {}).remove()
        else:
            engine = shared_engine(recipe, log)
            check_same_base(store, engine)
            summary = run_training(recipe, run_dir=staging, console=console, engine=engine, group=group,
                                   on_progress=on_progress or (lambda step, stats: None),
                                   combination=combination_of(cell_id))
    except RecipeError:
        raise  # a recipe the engine cannot use (model not found, technique unknown) fails every cell: stop
    except Exception as err:  # the cell's own failure: recorded, and the ablation goes on
        summary = read_json(staging / "summary.json") or {}
        summary.update(status="failed", error=f"{type(err).__name__}: {err}".splitlines()[0],
                       traceback=traceback.format_exc(), wall_s=time.perf_counter() - started)
        (staging / CHECKPOINT_FILE).unlink(missing_ok=True)  # --retry-failed starts over; no optimizer state kept
    finally:
        if tell_staging is not None:
            tell_staging.unlink(missing_ok=True)
    summary.update(run_dir=str(store.cell_dir(cell_id)), cell_id=cell_id, pid=os.getpid())
    write_json_atomic(staging / "summary.json", summary)
    placed = store.finalize(staging, cell_id)
    return {"cell": cell_id, "status": cell_status(summary),
            "error": summary.get("error"), "final_reward": summary.get("final_reward"),
            "wall_s": time.perf_counter() - started, "placed": placed, "pid": os.getpid(),
            "engine_setup_s": _ENGINE["setup_s"], "engine_cells": _ENGINE["cells"]}


def join_cell(recipe_data: dict, cell_id: str, group: str, count: int, rank: int, told: Path,
              wait_s: float = 600.0) -> None:
    """Node ``rank`` (not 0) of a cell across ``count`` nodes: its processes of the run, in the staging directory
    and at the meeting point node 0 names in ``told``; node 0 publishes the cell."""
    deadline = time.time() + wait_s
    while (named := read_json(told)) is None:
        if time.time() > deadline:
            raise RuntimeError(f"{told}: node 0 named no staging directory within {wait_s:.0f} s")
        time.sleep(0.2)
    recipe = Recipe.model_validate(recipe_data)
    nodes = Nodes(count, rank, named["master_addr"], named["master_port"])
    done = train_in_processes(recipe, recipe_data, Path(named["staging"]), cell_id, group, nodes)
    if done.returncode != 0:
        raise RuntimeError(f"node {rank} of cell {cell_id}: exit status {done.returncode}: "
                           f"{(done.stderr.strip().splitlines() or [''])[-1][:200]}")
