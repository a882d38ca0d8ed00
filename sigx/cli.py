"""The ``sigx`` command line (Typer).

Every user error (a bad recipe, an unknown technique, a malformed ``--set``) ends in one line per problem on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sigx.config import (EXECUTORS, TECHNIQUE_ORDER, Recipe, RecipeError, load_recipe, recipe_warnings,
                         technique_order)
from sigx.console import log_console
from sigx.nodes import Nodes, free_port

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="GRPO with composable signal techniques (SSPO, Search-P1, GC-RL, SORL) and their ablations.",
                  epilog="Examples:  sigx train recipes/tiny.yaml --enable sspo,gcrl  ·  sigx ablate recipes/stress.yaml "
                         "--dry-run  ·  sigx report ablations/stress  ·  docs: docs/ (recipe fields: docs/recipe.md)")
console = log_console()

SetOption = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a recipe field, e.g. --set training.lr=1e-4 (repeatable).")]


#: an error line longer than this is shortened in its middle (a 20 MB value echoed back is no message)
MAX_ERROR_LINE = 600


def fail(lines: list[str] | str) -> None:
    for line in [lines] if isinstance(lines, str) else lines:
        line = " ".join(str(line).split("\n"))
        if "LOCAL_RANK" in os.environ:  # a process of a --nproc run: which one says it
            line = f"process {os.environ.get('RANK', '?')}: {line}"
        if len(line) > MAX_ERROR_LINE:
            line = f"{line[:MAX_ERROR_LINE - 120]} ...[{len(line) - MAX_ERROR_LINE + 40} characters]... {line[-80:]}"
        console.print(f"[red]error:[/red] {escape(line)}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def one_line_errors():
    """What the file system refuses (a path that is a file, a read-only directory, a full disk, a name too
    long) ends as one line naming the path, never a traceback."""
    try:
        yield
    except OSError as err:
        where = str(err.filename or "sigx")
        where = where if len(where) <= 200 else where[:100] + "..." + where[-40:]
        fail(f"{where}: {err.strerror or type(err).__name__}" + (f" ({err.filename2})" if err.filename2 else ""))


def check_run_dir(run_dir: Path) -> None:
    """A --run-dir that names a directory sigx may create or use: not empty (that is the current folder), not
    too long for the file system, not a file, not an ablation store, and holding nothing a run does not write
    (a run would overwrite a file of the same name, as a project's own config.json). (A NUL byte cannot reach
    here: no argument holds one.)"""
    text = str(run_dir)
    if text in ("", "."):  # Typer turns '' into Path('.')
        fail("--run-dir: empty or '.'; name a directory for the run (default: <logging.output_dir>/<name>/...)")
    with one_line_errors():
        if run_dir.exists() and not run_dir.is_dir():
            fail(f"--run-dir {run_dir}: exists and is not a directory")
        if run_dir.is_dir():
            from sigx.config import Recipe
            from sigx.runs import foreign_entries

            if (run_dir / "plan.json").exists():
                fail(f"--run-dir {run_dir}: is an ablation store (it has a plan.json); a run needs a directory of "
                     "its own")
            foreign = foreign_entries(run_dir, frozenset(Recipe.model_fields))
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                fail(f"--run-dir {run_dir}: holds what no sigx run writes ({shown}); a run could overwrite it: name a"
                     " new or empty directory, or a run's own")


def free_cpus(window_s: float = 0.2) -> int:
    """Cores not already busy: two sigx processes on one machine must not each use every core, or both crawl
    (measured: 25x slower each on 2 cores). Busy is what the cores did over the last ``window_s`` seconds
    (/proc/stat), not the 1-minute load average, which still counts a command that has just ended: right after
    the README's `pip install` it still reads 1-2 on an idle 2-core machine, so the demo ran on one thread (554 s
    on the 2-core EPYC Zen 3 of 2026-12-03; 358 s on two, the same weights and numbers). Where /proc/stat cannot
    be read (not Linux), the load average."""
    cores = os.cpu_count() or 1
    first = cpu_ticks()
    if first is not None:
        time.sleep(window_s)
        second = cpu_ticks()
        if second is not None and second[1] > first[1]:
            return max(1, cores - round(cores * (second[0] - first[0]) / (second[1] - first[1])))
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, cores - busy)


def cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat's first line: busy is all but idle and
    waiting for I/O (guest time is inside user time, so the first 8 fields are the total); None if unreadable."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    total = sum(fields)
    return total - fields[3] - fields[4], total


def enable_overrides(enable: str | None) -> list[str]:
    """``--enable sspo,gcrl`` -> ``techniques.sspo.enabled=true`` ... (unknown names are an error)."""
    if enable is None:
        return []
    known = list(technique_order())
    names = [n.strip() for n in enable.split(",") if n.strip()]
    if not names:
        fail(f"--enable: no technique named; give one or more of {', '.join(known)} (comma-separated)")
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(f"--enable: unknown technique {', '.join(unknown)}; allowed: {', '.join(known)}")
    return [f"techniques.{n}.enabled=true" for n in names]


def in_recipe(recipe: Path, problems: list[str]) -> list[str]:
    """Problems that name a recipe field (``ablation.metric: ...``), prefixed with the recipe file as the
    loader's own are; the rest (a checkpoint, a store) name their own path."""
    sections = tuple(f"{section}." for section in Recipe.model_fields)
    return [f"{recipe}: {p}" if p.startswith(sections) else p for p in problems]


def load_or_fail(recipe: Path, overrides: list[str]) -> Recipe:
    try:
        loaded = load_recipe(recipe, overrides)
    except RecipeError as err:
        fail(err.problems)
    for line in recipe_warnings(loaded):
        console.print(f"[yellow]warning:[/yellow] {recipe}: {line}", markup=True, highlight=False, soft_wrap=True)
    return loaded


@app.command(short_help="Check a recipe: one line per problem, or 'ok' and one run's estimated GPU memory.",
             epilog="Examples:  sigx validate recipes/stress.yaml --set training.lr=3e-5  ·  sigx validate "
                    "recipes/full.yaml --set training.lora.r=16 --gpu-memory 80")
def validate(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    set_: SetOption = None,
    gpu_memory: Annotated[Optional[float], typer.Option(min=0.1, help="The GPU's memory in GiB: say whether the run "
                                                        "fits (e.g. 80 for an H100).")] = None,
    prompt_tokens: Annotated[int, typer.Option(min=1, help="Prompt length assumed by the memory plan.")] = 256,
    nproc: Annotated[int, typer.Option(min=1, max=1024, help="The memory plan per process of a run on this many (sigx train --nproc).")] = 1,
) -> None:
    """Check a recipe: prints one line per problem (field path and what is allowed), or 'ok' and the estimated
    memory of one run on its GPU (weights, gradients, optimizer, activations, rollout; docs/gpu.md)."""
    r = load_or_fail(recipe, set_ or [])
    from sigx.ablation.plan import expand, undeclarable_metric

    try:  # the ablation section too: its cells, and a declared metric that some run writes
        problem = undeclarable_metric(r, expand(r))
    except RecipeError as err:
        fail(in_recipe(recipe, err.problems))
    if problem:
        fail(in_recipe(recipe, [problem]))
    enabled = ", ".join(r.techniques.enabled_names()) or "none (GRPO baseline)"
    from sigx.memory import ShapeUnknown, plan

    try:  # before "ok": building the plan adds the recipe's adapters to the model, which may find no layer
        lines = plan(r, prompt_tokens, gpu_memory, nproc)
    except ShapeUnknown as err:
        lines = str(err)
    except RecipeError as err:
        fail(in_recipe(recipe, err.problems))
    typer.echo(f"ok: {recipe} ({r.task.name} task, model {r.model.name}, techniques: {enabled})")
    print_memory_plan(lines, gpu_memory, prompt_tokens, nproc)


def warn_of_memory(r: Recipe, processes: int = 1, nproc: int = 1) -> None:
    """One warning line before a run that this machine's memory cannot hold by sigx's plan (sigx.memory.shortfall)."""
    from sigx.memory import shortfall

    why = shortfall(r, processes, nproc)
    if why:
        console.print(f"[yellow]warning:[/yellow] {escape(why)}", highlight=False, soft_wrap=True)


def print_memory_plan(lines: list | str, gpu_memory: float | None, prompt_tokens: int, nproc: int = 1) -> None:
    """The memory plan's table and total, or why it is unknown (``lines`` is then that reason)."""
    from sigx.memory import GIB, gpu_total, line_name

    if isinstance(lines, str):
        typer.echo(f"memory plan: unknown ({lines})")
        return
    where = f"each of {nproc} processes of one run" if nproc > 1 else "one run"
    table = Table(title=f"memory of {where} (estimate; prompts of {prompt_tokens} tokens assumed)",
                  title_justify="left")
    for column in ("component", "GiB", "what"):
        table.add_column(column)
    for line in lines:
        table.add_row(line_name(line), f"{line.bytes / GIB:.3f}", line.note)
    Console(width=140).print(table)
    total = gpu_total(lines) / GIB
    verdict = ""
    if gpu_memory is not None:
        verdict = (f"; fits {gpu_memory:g} GiB with {gpu_memory - total:.1f} GiB to spare" if total <= 0.9 * gpu_memory
                   else f"; does NOT fit {gpu_memory:g} GiB with 10% headroom: try training.lora.r, "
                        "model.gradient_checkpointing, training.micro_batch_tokens or a smaller group")
    typer.echo(f"memory per GPU: {total:.2f} GiB{verdict}")


@app.command(epilog="Examples:  sigx train recipes/tiny.yaml  ·  sigx train recipes/tiny.yaml --set training.lora.r=8  ·  "
                     "sigx train recipes/tiny.yaml --nproc 2 --save-model  ·  sigx train recipes/tiny.yaml --enable sspo,gcrl "
                     "--set seed=1  ·  sigx train recipes/tiny-search.yaml --run-dir runs/mine --fresh")
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    enable: Annotated[Optional[str], typer.Option(help=f"Comma-separated techniques to switch on: {','.join(TECHNIQUE_ORDER)}.")] = None,
    set_: SetOption = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="Where to write the run (default: <logging.output_dir>/<recipe name>/<cell>/seed<seed>): a new or empty directory, or a run's own (resumed, or replaced with --fresh).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over even if the run directory holds the checkpoint of an interrupted run (which is otherwise resumed).")] = False,
    nproc: Annotated[int, typer.Option(min=1, max=1024, help="Processes on this node, the update sharded across them with FSDP2 (one GPU each, or CPU processes with gloo); started under torchrun.")] = 1,
    nnodes: Annotated[int, typer.Option(min=1, max=4096, help="Nodes of the run: the same command on each, with its --node-rank and the same --master-addr (the run directory on a filesystem every node shares).")] = 1,
    node_rank: Annotated[int, typer.Option(min=0, help="This node's rank among --nnodes (0 writes the run).")] = 0,
    master_addr: Annotated[Optional[str], typer.Option(help="--nnodes > 1: the address of node 0, where the processes meet.")] = None,
    master_port: Annotated[int, typer.Option(min=1, max=65535, help="--nnodes > 1: the port on node 0 where the processes meet.")] = 29500,
    save_model: Annotated[bool, typer.Option("--save-model", help="Write the trained policy to <run dir>/model (transformers' format; a LoRA run's merged).")] = False,
    group: Annotated[Optional[str], typer.Option(hidden=True, help="W&B group (an ablation's cell run on N processes).")] = None,
    combination: Annotated[Optional[str], typer.Option(hidden=True, help="The cell's name (an ablation's cell).")] = None,
) -> None:
    """Run one GRPO training run with the chosen techniques on the shared engine.

    An interrupted run (Ctrl-C, kill, crash) resumes from its last checkpoint when the same command is run
    again (training.checkpoint_every steps apart), and continues exactly as if it had not stopped.
    With --nproc N the update is sharded over N processes (docs/engine.md, "One run on N processes"); with
    --nnodes M over M x N, the same command run on each node with its --node-rank."""
    r = load_or_fail(recipe, (set_ or []) + enable_overrides(enable))
    if run_dir is not None:
        check_run_dir(run_dir)
    if nnodes > 1 and master_addr is None:
        fail(["--nnodes: give --master-addr, the address of node 0 (the same on every node)"])
    if node_rank >= nnodes:
        fail([f"--node-rank {node_rank}: must be below --nnodes {nnodes}"])
    if nproc * nnodes > 1 and r.rollout.backend == "vllm":
        from sigx.engine.trainer import VLLM_WITH_NPROC

        fail([VLLM_WITH_NPROC])
    if "LOCAL_RANK" not in os.environ:  # the launcher (or a one-process run), not one of a --nproc run's processes
        warn_of_memory(r, nproc=nproc)
        if nproc * nnodes > 1:
            nodes = Nodes(nnodes, node_rank, master_addr, master_port) if nnodes > 1 else None
            launch_processes(nproc, recipe, (set_ or []) + enable_overrides(enable), run_dir, fresh, save_model,
                             ["--group", group] * bool(group) + ["--combination", combination] * bool(combination),
                             nodes)
            return
    import torch

    from sigx.engine.distributed import (abandon_processes, exit_finished_process, finish_processes,
                                         init_from_torchrun)
    from sigx.engine.trainer import NonFiniteLossError
    from sigx.train import run_training

    world = init_from_torchrun()
    # (the processes of a --nproc run keep the threads their launcher gave each alike; one thread: nothing to measure)
    if not world.sharded and torch.get_num_threads() > 1:
        torch.set_num_threads(min(torch.get_num_threads(), free_cpus()))
    try:
        with one_line_errors():
            try:
                summary = run_training(r, run_dir=run_dir, console=console, fresh=fresh, save_model=save_model,
                                       group=group, combination=combination)
            except RecipeError as err:
                fail(in_recipe(recipe, err.problems))
            except NonFiniteLossError as err:
                fail([f"{err}: the run diverged (its last checkpoint, if any, is kept); a lower training.lr, "
                      "a smaller training.max_grad_norm or training.autocast: off may hold it"])
    except BaseException:
        if world.sharded:  # this process alone stops: leave the group without waiting for the others, or the
            abandon_processes()  # interpreter's exit tears gloo's threads down under it (SIGABRT, no message)
        raise
    if world.sharded:  # every process done (process 0 has written the run) before any leaves the group: a
        finish_processes()  # process that exits while another still talks to it makes gloo abort the other
    if world.rank == 0:
        typer.echo(
            f"held-out reward {summary['start_reward']:.3f} -> {summary['final_reward']:.3f} "
            f"(greedy {summary['start_greedy_reward']:.3f} -> {summary['final_greedy_reward']:.3f}) "
            f"in {summary['wall_s']:.0f}s; run written to {summary['run_dir']}"
        )
    if world.sharded:  # the interpreter's teardown can still SIGABRT a finished process (gloo's threads)
        exit_finished_process()


def launch_processes(nproc: int, recipe: Path, overrides: list[str], run_dir: Path | None, fresh: bool,
                     save_model: bool, passed: list[str] = (), nodes: Nodes | None = None) -> None:
    """``sigx train`` again under torchrun, ``nproc`` processes on this node (of ``nodes``, if given: torchrun's
    static rendezvous at node 0); its exit status is this one's."""
    import subprocess

    if nodes is None:
        where = ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    else:
        where = ["--nnodes", str(nodes.count), "--node_rank", str(nodes.rank), "--master_addr", nodes.master_addr,
                 "--master_port", str(nodes.master_port)]
    command = [sys.executable, "-m", "sigx.torchrun", "--nproc_per_node", str(nproc), *where,
               "-m", "sigx.cli", "train", str(recipe)]  # (torchrun would take
    # an option it knows a prefix of, such as --nproc: the children learn their world from torchrun instead)
    for override in overrides:
        command += ["--set", override]
    command += (["--run-dir", str(run_dir)] if run_dir is not None else []) + (["--fresh"] if fresh else []) + \
        (["--save-model"] if save_model else []) + list(passed)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, free_cpus() // nproc))}
    code = subprocess.run(command, env=env).returncode
    if code:
        from sigx.torchrun import COULD_NOT_START

        layout = f"--nproc {nproc}" if nodes is None else f"--nnodes {nodes.count} (node {nodes.rank})"
        what = "the run's processes could not start" if code == COULD_NOT_START else "a process of the run stopped"
        fail([f"{layout}: {what}; its error is above"])


@app.command(epilog="Examples:  sigx ablate recipes/tiny.yaml --dry-run  ·  sigx ablate recipes/stress.yaml "
                     "--workers 2  ·  sigx ablate recipes/full.yaml --executor ray --address auto  ·  "
                     "sigx ablate recipes/tiny.yaml --retry-failed  ·  sigx ablate recipes/stress.yaml --until-resolved "
                     "--max-seeds 20 (declared metric; looks at 5, 10, 15, 20 seeds, each at 0.05 / 4)  ·  sigx ablate "
                     "recipes/stress.yaml --until-mde 0.02 --max-seeds 20 (5, 10, 15, 20 seeds until every main effect's "
                     "MDE <= 0.02, each look at 0.05 / 4)  ·  sigx ablate recipes/stress.yaml --restore-from "
                     "results/stress/archive (another machine: restore the archived cells, run the rest)")
def ablate(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file; its `ablation` section names factors and seeds.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (with each cell's status) and stop.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="local executor: cells in parallel, one process (and GPU) each.")] = None,
    executor: Annotated[Optional[str], typer.Option(help=f"{', '.join(EXECUTORS)} (default: local).")] = None,
    address: Annotated[Optional[str], typer.Option(help="ray: address of an existing cluster (default: a local one).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Re-run the cells recorded as failed.")] = False,
    until_resolved: Annotated[bool, typer.Option("--until-resolved", help="Add whole seed blocks until every declared additivity gap is resolved (needs ablation.metric declared and --max-seeds); the 5% is spent over the planned looks.")] = False,
    until_mde: Annotated[Optional[float], typer.Option("--until-mde", help="Add whole seed blocks until every main effect's minimum detectable effect is at most this (needs ablation.metric and --max-seeds); the 5% is spent over the planned looks.", show_default=False)] = None,
    max_seeds: Annotated[Optional[int], typer.Option(help="--until-resolved / --until-mde: the cap on seeds per cell.", show_default=False)] = None,
    seed_step: Annotated[Optional[int], typer.Option(help="--until-resolved / --until-mde: seeds added per look (default: the recipe's seed count).", show_default=False)] = None,
    restore_from: Annotated[Optional[Path], typer.Option("--restore-from", help="An archive (`sigx archive`) of this recipe's finished cells: they are put into the store first, and only the rest run (resume on a machine whose store is gone).", show_default=False)] = None,
    set_: SetOption = None,
) -> None:
    """Run the 2^k on/off matrix of techniques x seeds on shared engines; resumes where a previous run stopped."""
    # --set values are read as YAML; these options' are taken as given (JSON-quoted strings, so an address such as
    # [::1]:6379 or one with ': ' stays a string, not a YAML list or mapping)
    cli_overrides = [f"ablation.{k}={v if k == 'workers' else json.dumps(v)}" for k, v in
                     (("workers", workers), ("executor", executor), ("ray.address", address)) if v is not None]
    r = load_or_fail(recipe, (set_ or []) + cli_overrides)
    from sigx.ablation.looks import MAX_SEEDS
    from sigx.ablation.runner import run_ablation
    from sigx.ablation.store import StoreError

    sequential = "--until-resolved" if until_resolved else "--until-mde" if until_mde is not None else None
    if until_resolved and until_mde is not None:
        fail("--until-resolved / --until-mde: one stopping rule at a time")
    if (max_seeds is not None or seed_step is not None) and not sequential:
        fail("--max-seeds / --seed-step: only with --until-resolved or --until-mde")
    if sequential and max_seeds is None:
        fail(f"{sequential}: needs --max-seeds N (the cap on seeds per cell)")
    if until_mde is not None and not 0 < until_mde < float("inf"):
        fail(f"--until-mde: must be a positive effect size on the declared metric's scale (got {until_mde})")
    if seed_step is not None and seed_step < 1:
        fail(f"--seed-step: must be >= 1 (got {seed_step})")
    if max_seeds is not None and max_seeds > MAX_SEEDS:  # (a schedule of looks that long would not be built)
        fail(f"--max-seeds: at most {MAX_SEEDS} seeds per cell (got {max_seeds})")
    if not dry_run and r.ablation.executor == "local":  # (a cluster's cells run on its machines, not this one)
        warn_of_memory(r, processes=r.ablation.workers, nproc=r.ablation.nproc_per_cell)
    with one_line_errors():
        try:
            if sequential:
                from sigx.ablation.sequential import run_sequential

                outcome, last = run_sequential(r, max_seeds, seed_step, "resolved" if until_resolved else "mde",
                                               until_mde, console, retry_failed, dry_run, restore_from)
                if not dry_run:
                    typer.echo(f"sequential: stopped at look {last.get('look')} with {last.get('seeds')} seeds "
                               f"per cell: {last.get('stopped')}")
                else:
                    typer.echo(f"sequential: the next look is {last['look']}, at {last['seeds']} seeds per cell")
            else:
                outcome = run_ablation(r, console=console, dry_run=dry_run, retry_failed=retry_failed,
                                       restore_from=restore_from)
        except (RecipeError, StoreError) as err:
            fail(in_recipe(recipe, err.problems) if isinstance(err, RecipeError) else str(err))
    done, failed, pending = outcome.count("done"), outcome.count("failed"), outcome.count("pending")
    if dry_run:
        typer.echo(f"{len(outcome.cells)} cells: {done} done, {failed} failed, {pending} pending (dry run: nothing ran)")
        return
    typer.echo(f"{done}/{len(outcome.cells)} cells done, {failed} failed, {pending} pending; "
               f"{len(outcome.results)} run now in {outcome.wall_s / 60:.1f} min; store: {outcome.root}")
    if failed:
        typer.echo("failed cells keep their error in <cell>/summary.json; rerun with --retry-failed")
    if failed or pending:
        raise typer.Exit(1)


def checked_analysis_options(format_: list[str] | None, metric: str | None, margin: float | None,
                             out: Path) -> list[str]:
    """The output formats (md unless given), after the one-line checks `report` and `compare` share of --format,
    --metric, --margin and --out (checked before any analysis is made, not when its files are written)."""
    from sigx.report.generate import FORMATS
    from sigx.report.load import NAME

    formats = list(dict.fromkeys(format_ or ["md"]))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        fail(f"--format: unknown format {', '.join(unknown)}; allowed: {', '.join(FORMATS)}")
    if metric is not None and not NAME.match(metric):
        fail(f"--metric: {metric[:60]!r} is not a summary key (letters, digits, _ . -)")
    if margin is not None and not 0 < margin <= 1:
        fail(f"--margin: must be in (0, 1] (got {margin})")
    blocked = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        fail(f"--out {out}: {blocked} exists and is not a directory; name a directory for the reports")
    return formats


def superseded(removed: list[str], kind: str) -> str:
    """The end of the 'written to' line naming the earlier files a report or comparison replaced by removing them."""
    return f"; removed the earlier {kind}'s {', '.join(removed)} (not written by this one)" if removed else ""


@app.command(epilog="Examples:  sigx report  ·  sigx report ablations/stress  ·  sigx report ablations/stress --metric "
                     "reward_auc (not the declared metric: the report says so first)  ·  sigx report ablations/tiny "
                     "--format md --format csv --format json --out results  ·  sigx report results/stress/runs.csv "
                     "--recipe recipes/stress.yaml (an archived result, its store gone)  ·  sigx report "
                     "ablations/search-stress-ws2 --replicates results/search-stress/search-stress (does a second "
                     "warm start confirm the first's conclusions?)  ·  sigx report ablations/search-stress --seeds "
                     "0-11 (whole seed blocks only; a later block is part-finished)  ·  sigx report ablations/stress "
                     "--overwrite (replace what results/stress/ holds though it is not an earlier state of this "
                     "report)")
def report(
    stores: Annotated[Optional[list[Path]], typer.Argument(help="Ablation run stores (default: every one under ablations/); with --recipe, archived runs.csv files.", show_default=False)] = None,
    metric: Annotated[Optional[str], typer.Option(help="Metric of the effects and additivity tables (default: the recipe's ablation.metric, else final_reward): final_reward, reward_auc, final_critique_accuracy, tokens_per_s, or any numeric key of the runs' summary.json (a technique's own entries).", show_default=False)] = None,
    format_: Annotated[Optional[list[str]], typer.Option("--format", help="md, csv or json (repeatable; default md). report.json is written whatever is asked: it records the analysis and the runs the report covers. Files of an earlier report in the folder that this one does not write are removed.")] = None,
    margin: Annotated[Optional[float], typer.Option(help="Additivity / equivalence margin (default: the recipe's ablation.margin, else 0.02).", show_default=False)] = None,
    out: Annotated[Path, typer.Option(help="Reports go to OUT/<ablation name>/.")] = Path("results"),
    recipe: Annotated[Optional[Path], typer.Option(help="Report archived runs (a runs.csv) made by this recipe.", show_default=False)] = None,
    replicates: Annotated[Optional[Path], typer.Option(help="A reference report.json (or its folder): test its conclusions (significant terms, synergistic / redundant gaps) on this ablation, e.g. the same factors on another warm start.", show_default=False)] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Analyse only these seeds' runs, e.g. 0-11 or 0,2,5-7 (whole blocks named before looking: the report's first line lists the seeds left out and how many of their runs had finished).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the report in OUT/<name>/ even when it is not an earlier state of this one (another analysis, or runs this one lacks or reports otherwise); without it that is refused, and an update (more runs finished) is written silently.")] = False,
) -> None:
    """Compare an ablation's cells and test whether the techniques' gains add up (effects, interactions, gaps).

    The analysis (metric, margin) is the one the recipe declared in its ablation section; another is allowed, and
    the report's first line says it was chosen at report time."""
    from sigx.report.generate import load_store, prepare_report, write_report
    from sigx.report.load import ReportError, find_ablations
    from sigx.report.seeds import keep_seeds, parse_seeds

    formats = tuple(checked_analysis_options(format_, metric, margin, out))
    stores = stores or ([] if recipe else find_ablations())
    if replicates is not None and len(stores) > 1:
        fail(f"--replicates: checks one ablation against its reference; {len(stores)} were named")
    if not stores:
        fail("no ablation run store under ablations/; run `sigx ablate RECIPE` first or name a store directory")
    loaded, first_of = [], {}
    for store in stores:
        with one_line_errors():
            try:
                loaded.append(load_store(store, recipe))
                if seeds is not None:
                    loaded[-1] = keep_seeds(loaded[-1], parse_seeds(seeds))
            except ReportError as err:
                fail(str(err))
            except RecipeError as err:  # --recipe of an archive that does not load
                fail(err.problems)
        name = loaded[-1].name
        if name in first_of:  # both reports would go to OUT/<name>/, the second replacing the first
            fail(f"{first_of[name]} and {store} are both ablation {name!r}: their reports would overwrite each "
                 f"other in {out / name}/; report them one at a time, each with its own --out")
        first_of[name] = store
    reports = []
    for ablation in loaded:  # every folder checked before any is written
        with one_line_errors():
            try:
                reports.append(prepare_report(ablation, out, metric, margin, replicates, overwrite))
            except ReportError as err:
                fail(str(err))
    for report in reports:
        with one_line_errors():
            written, removed = write_report(report, out, formats, console)
        typer.echo(f"report written to {written[0].parent}/ ({', '.join(p.name for p in written)})"
                   + superseded(removed, "report"))


@app.command(epilog="Examples:  sigx compare ablations/screen2-search_p1 ablations/screen2-search_p1-dense (is "
                     "Search-P1's effect different with dense reward?)  ·  sigx compare ablations/search-stress "
                     "ablations/search-stress-ws2 --format md --format json (the same factors on a second warm start)  ·  "
                     "sigx compare results/a/runs.csv results/b/runs.csv --recipe-a recipes/a.yaml --recipe-b "
                     "recipes/b.yaml (archived runs, their stores gone)")
def compare(
    store_a: Annotated[Path, typer.Argument(help="Ablation run store A (the reference setting).")],
    store_b: Annotated[Path, typer.Argument(help="Ablation run store B (another model, task or warm start).")],
    metric: Annotated[Optional[str], typer.Option(help="Metric compared (default: A's declared ablation.metric, else final_reward).", show_default=False)] = None,
    margin: Annotated[Optional[float], typer.Option(help="A difference inside +-margin is 'the same' (default: A's declared ablation.margin, else 0.02).", show_default=False)] = None,
    format_: Annotated[Optional[list[str]], typer.Option("--format", help="md, csv or json (repeatable; default md). compare.json is written whatever is asked: it records the analysis and the runs compared. Files of an earlier comparison in the folder that this one does not write are removed.")] = None,
    out: Annotated[Path, typer.Option(help="Files go to OUT/<A>-vs-<B>/.")] = Path("results"),
    recipe_a: Annotated[Optional[Path], typer.Option(help="A is an archived runs.csv (its store gone) made by this recipe.", show_default=False)] = None,
    recipe_b: Annotated[Optional[Path], typer.Option(help="B is an archived runs.csv made by this recipe.", show_default=False)] = None,
    seeds_a: Annotated[Optional[str], typer.Option(help="Compare only these seeds of A, e.g. 0-11 (whole blocks named before looking; the comparison's notes list what was left out).", show_default=False)] = None,
    seeds_b: Annotated[Optional[str], typer.Option(help="Compare only these seeds of B.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the comparison in OUT/<A>-vs-<B>/ even when it is not an earlier state of this one (see sigx report --overwrite).")] = False,
) -> None:
    """Is each effect (main effects, interactions, the control) different in store B than in store A?

    For a factor one store cannot vary (its model, task or warm start): every term both stores estimate, B minus
    A, with Welch's interval over their per-seed estimates and Holm over the terms: differs, the same within the
    margin, or inconclusive."""
    from sigx.report.compare import compare as compare_stores
    from sigx.report.generate import load_store
    from sigx.report.keep import check_replaceable, remove_stale
    from sigx.report.load import ReportError
    from sigx.report.render import COMPARISON_FILES, print_comparison, write_comparison
    from sigx.report.seeds import keep_seeds, parse_seeds

    formats = checked_analysis_options(format_, metric, margin, out)
    with one_line_errors():
        try:
            if store_a.resolve() == store_b.resolve():
                fail(f"{store_b}: the same store as {store_a}; name two stores")
            a, b = load_store(store_a, recipe_a), load_store(store_b, recipe_b)
            if seeds_a is not None:
                a = keep_seeds(a, parse_seeds(seeds_a, "--seeds-a"), "--seeds-a")
            if seeds_b is not None:
                b = keep_seeds(b, parse_seeds(seeds_b, "--seeds-b"), "--seeds-b")
            comparison = compare_stores(a, b, metric, margin)
            folder = out / f"{a.name}-vs-{b.name}"
            check_replaceable(folder, "compare.json", COMPARISON_FILES, comparison.covers, overwrite)
        except ReportError as err:
            fail(str(err))
        except RecipeError as err:  # --recipe-a / --recipe-b of an archive that does not load
            fail(err.problems)
        folder.mkdir(parents=True, exist_ok=True)
        written = write_comparison(comparison, folder, formats)
        removed = remove_stale(folder, ("compare.json",) + COMPARISON_FILES, written)
    print_comparison(comparison, console)
    typer.echo(f"comparison written to {folder}/ ({', '.join(p.name for p in written)})"
               + superseded(removed, "comparison"))


@app.command(short_help="Copy an ablation's finished cells into an archive that `sigx report` and `sigx ablate "
                        "--restore-from` read.",
             epilog="Examples:  sigx archive ablations/stress results/stress/archive (add the store's finished cells "
                    "to the archive; run it again as more finish)  ·  then, on another machine: sigx ablate "
                    "recipes/stress.yaml --restore-from results/stress/archive")
def archive(
    store: Annotated[Path, typer.Argument(help="An ablation run store (ablations/<recipe name>).")],
    out: Annotated[Path, typer.Argument(help="The archive: a new directory, or one this command wrote for the same recipe.")],
) -> None:
    """Copy an ablation's finished cells (config, summary, metrics; no checkpoints or W&B folders) into an archive
    that `sigx report` reads and `sigx ablate --restore-from` resumes from, on any machine."""
    from sigx.ablation.archive import archive_store
    from sigx.ablation.store import StoreError

    with one_line_errors():
        try:
            outcome = archive_store(store, out)
        except StoreError as err:
            fail(str(err))
    for line in outcome.damaged:
        typer.echo(f"warning: {line}", err=True)
    replaced = f", {len(outcome.replaced)} failed cell(s) replaced by their re-run (kept in .failed/)" \
        if outcome.replaced else ""
    damaged = f", {len(outcome.damaged)} cell(s) left out (damaged: see the warnings)" \
        if outcome.damaged else ""
    typer.echo(f"{out}: {len(outcome.archived)} cell(s) archived now, {len(outcome.unchanged)} already there"
               f"{replaced}{damaged}")


def _paragraphs_in_one_line(commands) -> None:
    """Each command's help with its paragraphs' line breaks removed: Typer prints a docstring's later paragraphs
    with the line breaks of the source, which wrap at another width than the terminal's ('run' alone on a
    line); a paragraph of one line is wrapped by rich at the terminal's width."""
    for info in commands:
        text = info.help or inspect.getdoc(info.callback) or ""
        info.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in text.split("\n\n"))


_paragraphs_in_one_line(app.registered_commands)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    sys.exit(main())
