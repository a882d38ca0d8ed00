"""``run_ablation``: plan, lock the store, run what is pending with the chosen executor, record the session."""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from rich.console import Console

from sigx.ablation.display import AblationProgress, plan_table
from sigx.ablation.plan import Cell, crossed, design_of, expand, factors_of, undeclarable_metric
from sigx.ablation.store import AblationStore, store_root
from sigx.config import Recipe, RecipeError
from sigx.console import log_console
from sigx.design import alias_lines, describe
from sigx.provenance import provenance


@dataclass
class AblationOutcome:
    root: str
    cells: list[Cell]
    status: dict[str, str]  # cell id -> done / failed / pending, after this invocation
    results: list[dict] = field(default_factory=list)  # the cells run by this invocation
    wall_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(s == status for s in self.status.values())


def run_ablation(recipe: Recipe, console: Console | None = None, dry_run: bool = False,
                 retry_failed: bool = False, restore_from: str | None = None) -> AblationOutcome:
    """Run the recipe's pending cells (after restoring those that the archive ``restore_from`` holds finished)."""
    from sigx.ablation.launchers import launcher_for

    console = console or log_console()
    cells = expand(recipe)
    store = AblationStore(store_root(recipe))
    metric_problem = undeclarable_metric(recipe, cells)
    if metric_problem and not (store.root / "plan.json").exists():
        raise RecipeError([metric_problem])
    if metric_problem:  # declared before this check existed, with runs in the store: the report needs --metric
        console.print(f"[yellow]{metric_problem} (the store's runs go on; report them with --metric)[/yellow]",
                      highlight=False, soft_wrap=True)
    a = recipe.ablation
    design = design_of(recipe)
    factors = factors_of(recipe)
    controls = [f.name for f in factors if f.role == "control"]
    shape = f"2^{design.k}" if design.full else f"2^({design.k}-{design.p})"
    shape += f" + {len(controls)} control cell(s)" if controls else ""
    title = (f"ablation {recipe.name}: {shape} x {len(a.seeds)} seed(s) = {len(cells)} cells -> {store.root}/")
    archived = frozenset()
    if restore_from is not None:
        from sigx.ablation.archive import archived_pending, check_archive_of

        archived = archived_pending(store, check_archive_of(restore_from, recipe.model_dump(mode="json")), cells)
    console.print(plan_table(title, cells, store, archived, numbers=console.is_terminal))
    names = [f.name for f in crossed(factors)]
    if controls:
        console.print(f"positive control(s), crossed with the baseline only: {', '.join(controls)}", highlight=False)
    for line in describe(design, names):
        console.print(f"design: {line}", highlight=False)
    if not design.full:
        console.print("aliases (main effects and 2-factor interactions; higher orders assumed negligible): "
                      + "; ".join(alias_lines(design, names)), highlight=False)
    if dry_run:
        status = {c.id: store.status(c.id) for c in cells}
        if restore_from is not None:
            console.print(f"the archive {restore_from} holds {len(archived)} of the pending cells (restored, after "
                          "checks, when run)", highlight=False, soft_wrap=True)
        return AblationOutcome(str(store.root), cells, status)

    started = time.time()
    # names this invocation's two lines: without it, two sittings started in the same second by one process are
    # the same line, and an archive's merge of session logs (one line, one sitting) would keep only one of them
    session = uuid.uuid4().hex
    with store.lock():
        store.prepare(recipe, cells)
        store.record_session({"event": "started", "session": session, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                              "host": socket.gethostname(), "pid": os.getpid(), "executor": a.executor,
                              "workers": a.workers, "provenance": provenance()})
        for cell_id, why in store.set_aside_unreadable(cells):
            console.print(f"[yellow]{cell_id}: {why}; set aside under .failed/ and run again[/yellow]",
                          highlight=False, soft_wrap=True)
        if restore_from is not None:
            from sigx.ablation.archive import restore_cells

            restored = restore_cells(store, restore_from, recipe.model_dump(mode="json"), cells)
            console.print(f"restored {len(restored)} finished cell(s) from the archive {restore_from}", highlight=False,
                          soft_wrap=True)
        if retry_failed:
            for cell in cells:
                if store.status(cell.id) == "failed":
                    store.set_aside_failed(cell.id)
        status = {c.id: store.status(c.id) for c in cells}
        todo = [c for c in cells if status[c.id] == "pending"]
        skipped_failed = sum(s == "failed" for s in status.values())
        launcher = launcher_for(a, store, recipe.name, console)
        kept = f"{skipped_failed} failed (kept; --retry-failed reruns them), " if skipped_failed else ""
        console.print(f"{len(cells) - len(todo) - skipped_failed} done, {kept}{len(todo)} to run on "
                      f"{launcher.where()}", highlight=False)
        unchecked = store.base_weights()[1] if todo and recipe.model.name == "sigx/tiny" else 0
        if unchecked:
            console.print(f"[yellow]note:[/yellow] {unchecked} finished run(s) recorded no digest of their warm start "
                          "(made before sigx recorded one): that the runs to come start from the same build of it "
                          "cannot be checked (a build differs between machines whose CPU kernels differ)",
                          highlight=False, soft_wrap=True)
        results: list[dict] = []
        if todo:
            with AblationProgress(console, len(cells), len(cells) - len(todo), recipe.training.steps) as ui:
                results = launcher.launch(todo, ui.on_event)
        wall = time.time() - started
        engines = {r["pid"]: r["engine_setup_s"] for r in results}
        store.record_session({
            "event": "finished", "session": session, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)), "wall_s": wall,
            "host": socket.gethostname(), "pid": os.getpid(), "executor": a.executor, "workers": a.workers,
            "cells_run": len(results), "cells_failed": sum(r["status"] == "failed" for r in results),
            "engines_built": len(engines), "engine_setup_s": sum(engines.values()),
            "cell_wall_s": sum(r["wall_s"] for r in results), "retry_failed": retry_failed,
        })
    return AblationOutcome(str(store.root), cells, {c.id: store.status(c.id) for c in cells}, results, wall)
