"""One training run, end to end: engine, trainer, run directory, W&B mirror and a live progress display."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sigx.checkpoint import Checkpoints
from sigx.config import Recipe, RecipeError
from sigx.console import log_console
from sigx.provenance import machine_kind, provenance
from sigx.runs import RunWriter, read_json, remove_write_leftovers
from sigx.tracking import Tracker


def cell_name(recipe: Recipe) -> str:
    """Readable, stable name of a technique combination: ``baseline``, ``sspo``, ``gcrl+sspo`` ..."""
    return "+".join(recipe.techniques.enabled_names()) or "baseline"


def default_run_dir(recipe: Recipe) -> Path:
    return Path(recipe.logging.output_dir) / recipe.name / cell_name(recipe) / f"seed{recipe.seed}"


def step_stats(row: dict, last_eval: dict) -> str:
    """One line of live numbers for a progress display."""
    if "eval/reward" in row:
        last_eval["reward"] = row["eval/reward"]
    stats = f"held-out {last_eval.get('reward', float('nan')):.3f}"
    if "reward" in row:
        stats = f"reward {row['reward']:.3f}  loss {row['loss']:+.4f}  " + stats
    return stats


def run_training(recipe: Recipe, run_dir: Path | None = None, console: Console | None = None,
                 engine=None, group: str | None = None,
                 on_progress: Callable[[int, str], None] | None = None, fresh: bool = False,
                 combination: str | None = None, save_model: bool = False) -> dict:
    """Train one run and write it to ``run_dir``. Progress goes to a display of its own, or, when the caller
    draws one (an ablation showing many cells), to ``on_progress(step, stats)``.

    A ``run_dir`` holding the checkpoint of an interrupted run of the same recipe is resumed from it (exactly:
    see :mod:`sigx.checkpoint`); ``fresh`` discards such a checkpoint and starts over. ``combination``: the
    run's cell name when an ablation runs it (it names field factors too), else the techniques it enables."""
    from sigx.engine.distributed import current_world

    console = console or log_console()
    run_dir = Path(run_dir) if run_dir else default_run_dir(recipe)
    if current_world().rank != 0:  # --nproc: process 0 writes the run; the others train in step with it
        return _follow(recipe, run_dir, engine, save_model)
    with run_lock(run_dir):
        return _run(recipe, run_dir, console, engine, group, on_progress, fresh, combination or cell_name(recipe),
                    save_model)


def _follow(recipe: Recipe, run_dir: Path, engine, save_model: bool) -> dict:
    """A process other than 0 of a multi-process run: the same steps (its share of the update), resumed from the
    same checkpoint; it writes only its shards of the checkpoints."""
    from sigx.engine.distributed import barrier

    engine, trainer = _engine_and_trainer(recipe, engine, log=lambda msg: None)
    checkpoints = Checkpoints(run_dir, recipe.training.checkpoint_every, recipe.model_dump(mode="json"),
                              writer=False)
    barrier()  # process 0 has checked the run directory (and, with --fresh, removed its checkpoint)
    summary = trainer.train(checkpoints=checkpoints, resume=checkpoints.load())
    if save_model:
        save_policy(trainer, None)
    return summary


def save_policy(trainer, directory: Path | None) -> None:
    """The trained policy in transformers' format (a LoRA run's merged; a sharded run's gathered: every process
    calls this, process 0 writes)."""
    from sigx.engine.distributed import full_state_dict
    from sigx.engine.lora import has_adapters, merge_full_state, merged_weights

    model = trainer.model
    if trainer.world.sharded:
        state = full_state_dict(model)
        if has_adapters(model):
            state = merge_full_state(state, trainer.recipe.training.lora)
    elif has_adapters(model):
        state = dict(merged_weights(model))
    else:
        state = model.state_dict()
    if directory is not None:
        model.save_pretrained(directory, state_dict={k: v.contiguous() for k, v in state.items()})
        trainer.tokenizer.save_pretrained(directory)


@contextmanager
def run_lock(run_dir: Path):
    """One writer per run directory: a second ``sigx train`` into it is refused with one line (the kernel
    releases the lock when its holder dies, even on ``kill -9``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise RecipeError([f"{run_dir}: another sigx train is writing this run (pid {handle.read().strip() or '?'});"
                               " wait for it, or write elsewhere with --run-dir"]) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def _engine_and_trainer(recipe: Recipe, engine, log):
    """The run's engine (built unless given) and its trainer with the recipe's techniques."""
    from sigx.engine.shared import SharedEngine
    from sigx.engine.trainer import GRPOTrainer
    from sigx.techniques import TechniqueError, build

    if engine is None:
        engine = SharedEngine(recipe, log=log)
    try:
        return engine, GRPOTrainer(recipe, engine, build(recipe, engine))
    except TechniqueError as err:
        raise RecipeError([str(err)]) from None


def check_resumed_base(resume: dict, mine: str | None, checkpoint: Path, base_path) -> None:
    """Refuse to resume a checkpoint on another build of its sigx/tiny warm start than the one it began from.

    Why: the warm start is rebuilt on each machine, and its weights depend on the machine's CPU kernels. The
    checkpoint carries the policy, but the run's record (its summary's ``base_weights``) and anything read from
    the base model after resuming would name the other build: one run from two base models, recorded as one.
    Checkpoints written before the build was recorded carry none and are not checked."""
    meta = resume.get("meta") if isinstance(resume.get("meta"), dict) else {}
    theirs = meta.get("base_weights")
    if not isinstance(theirs, str) or not theirs or mine is None or theirs == mine:
        return
    from sigx.provenance import another_build

    raise RecipeError([another_build(f"{checkpoint}: its run", base_path, theirs, mine, meta.get("cpu"),
                                     "resume it on the machine it ran on, or start afresh with --fresh")])


def _run(recipe: Recipe, run_dir: Path, console: Console, engine, group, on_progress, fresh: bool,
         combination: str, save_model: bool = False) -> dict:
    log = lambda msg: console.print(f"[dim]{msg}[/dim]", highlight=False, soft_wrap=True)  # noqa: E731
    engine, trainer = _engine_and_trainer(recipe, engine, log)
    config = recipe.model_dump(mode="json")
    every = recipe.training.checkpoint_every
    if trainer.world.sharded:
        log(f"--nproc {trainer.world.size}: " + (
            "each process samples its share of every rollout (rollout.seeding: sample)"
            if recipe.rollout.seeding == "sample" else
            "every process samples the whole rollout (rollout.seeding: batch; seeding sample splits it)"))
    checkpoints = Checkpoints(run_dir, every, config)
    checkpoints.remove_leftovers()
    remove_write_leftovers(run_dir)
    finished = read_json(run_dir / "summary.json")
    if not fresh and isinstance(finished, dict) and finished.get("status") == "completed":
        made_by = read_json(run_dir / "config.json")
        made_by = str(made_by.get("name", "?"))[:60] if isinstance(made_by, dict) else "?"
        raise RecipeError([f"{run_dir}: holds a completed run (recipe {made_by}, {str(finished.get('cell', '?'))[:60]}"
                           f", seed {finished.get('seed', '?')}); pass --fresh to replace it, or write this run "
                           "elsewhere with --run-dir"])
    if fresh:
        checkpoints.remove()
    if trainer.world.sharded:
        from sigx.engine.distributed import barrier

        barrier()  # the other processes read the checkpoint now
    resume = checkpoints.load()
    base_weights = getattr(engine, "base_weights", None)
    if resume is not None:
        check_resumed_base(resume, base_weights, checkpoints.path, engine.base_path)
        log(f"resuming {run_dir} from its checkpoint at step {resume['step']}")
    checkpoints.meta = {"wandb_id": resume["meta"]["wandb_id"] if resume else uuid.uuid4().hex[:12],
                        "base_weights": base_weights, "cpu": machine_kind()["cpu"]}
    name = f"{combination}/seed{recipe.seed}"  # the W&B run's name, as the cell's id in an ablation
    tracker = Tracker(recipe.logging.wandb, recipe.logging.project, run_dir, name, config, group=group or recipe.name,
                      tags=recipe.techniques.enabled_names() or ["baseline"], run_id=checkpoints.meta["wandb_id"],
                      unreachable=recipe.logging.wandb_unreachable,
                      warn=lambda m: console.print(f"[yellow]warning:[/yellow] {m}", highlight=False, soft_wrap=True))
    writer = RunWriter(run_dir, resumed_rows=resume["history"] if resume else None)  # after W&B: nothing written
    writer.write_config(config)  # for a run that W&B stopped before it began
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console, transient=False,
                        disable=on_progress is not None)
    bar = progress.add_task(name, total=recipe.training.steps, completed=resume["step"] if resume else 0, stats="")
    last_eval: dict = {}

    def on_step(step: int, row: dict) -> None:
        writer.log(row)
        tracker.log(row, step)
        stats = step_stats(row, last_eval)
        progress.update(bar, completed=step, stats=stats)
        if on_progress is not None:
            on_progress(step, stats)

    started = time.time()
    try:
        with progress:
            summary = trainer.train(on_step, checkpoints=checkpoints, resume=resume)
        if save_model:
            save_policy(trainer, run_dir / "model")
        summary.update(run_dir=str(run_dir), cell=combination, seed=recipe.seed,
                       techniques=recipe.techniques.enabled_names(), base=str(engine.base_path),
                       base_weights=getattr(engine, "base_weights", None),
                       resumed_from_step=resume["step"] if resume else None, provenance=provenance())
        writer.write_summary(summary)
        checkpoints.remove()
        tracker.finish(summary)
        return summary
    except BaseException as err:
        writer.write_summary({"status": "failed", "error": f"{type(err).__name__}: {err}", "wall_s": time.time() - started})
        tracker.finish(exit_code=1)
        raise
    finally:
        writer.close()
