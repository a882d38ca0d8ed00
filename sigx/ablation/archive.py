"""An ablation's finished cells, kept apart from its run store: ``sigx archive`` and ``sigx ablate --restore-from``.

Why: a run store lives on the disk of the machine that ran it, with checkpoints and W&B folders, and that disk
may not outlive the experiment (a Slurm scratch space purged, a cloud machine handed back, a laptop replaced).
An experiment of many hours then has to survive in pieces: each sitting archives what it finished, and the next
one, on any machine, restores those cells into a new store and runs only the rest.

The archive holds what a result is made of and nothing else: the store's ``recipe.yaml``, ``plan.json`` and
``sessions.jsonl`` (and ``sequential.json``, a sequential design's looks), and for each finished cell (done or failed) its ``config.json``, ``summary.json`` and
``metrics.jsonl``; no checkpoint, no W&B folder, no staging directory. It has a store's layout, so ``sigx report``
reads it as it reads a store.

Neither direction loses or mixes up a run: every cell is written under a temporary name and renamed into place,
so a cell is complete or absent whatever moment a kill hits; a cell already archived is never overwritten by a
different one (only a failed copy may give way to a finished re-run, and it is kept under ``.failed/``); and a
cell is restored only into the store of the same recipe, when its own resolved recipe is the one the plan would
run now (fields of where and how a store runs aside), by the store's own atomic publish. Neither direction mixes
two builds of a sigx/tiny warm start either (``sigx.ablation.cell.check_same_base`` says why): a run that started
from other weights than the runs already there is refused with one line.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sigx.ablation.store import AblationStore, StoreError, experiment_differences, recorded_build
from sigx.runs import (RUN_FILES, UnreadableRecipe, cell_status, list_differences, read_json, read_stored_recipe,
                       write_json_atomic, write_text_atomic)

#: a finished cell's files that make its result (the rest of its directory, W&B's folder, is not archived)
CELL_FILES = RUN_FILES
#: the store's own files that say what it measures and how it ran (the plan and the session log are merged)
STORE_FILES = ("recipe.yaml", "sequential.json")


@dataclass
class ArchiveOutcome:
    archived: list[str] = field(default_factory=list)  # cells written now
    unchanged: list[str] = field(default_factory=list)  # cells the archive already held, identical
    replaced: list[str] = field(default_factory=list)  # failed copies a finished re-run replaced (kept in .failed/)
    damaged: list[str] = field(default_factory=list)  # "<cell dir>: why" for each run left out (see _damage)


def _cell_ids(root: Path, what: str) -> list[str]:
    """The cell ids a store's (or an archive's) plan lists, in order."""
    plan = read_json(root / "plan.json")
    cells = plan.get("cells") if isinstance(plan, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in cells):
        raise StoreError(f"{root / 'plan.json'}: missing or not a plan (a list of cells with ids); {what}")
    return [c["id"] for c in cells]


def _recipe_data(path: Path) -> dict:
    try:
        return read_stored_recipe(path)
    except UnreadableRecipe as err:
        raise StoreError(str(err)) from None


def _plain_file(path: Path) -> bool:
    """A regular file, not a link: an archive is committed, so it copies nothing a link could point at."""
    return path.is_file() and not path.is_symlink()


def _cell_files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in CELL_FILES if _plain_file(directory / name)}


def _damage(directory: Path, status: str) -> str | None:
    """Why a store's cell cannot be archived whole, or None: each of its files must be a plain file, and a finished
    run has all three (a failed one may have failed before it wrote its config or metrics)."""
    for name in CELL_FILES:
        path = directory / name
        if path.is_symlink() or path.is_dir():
            return f"{name} is {'a link' if path.is_symlink() else 'a directory'}, not a plain file"
        if status == "done" and not path.is_file():
            return f"{name} is missing from a finished run"
    return None


def _write_cell(files: dict[str, bytes], cell_id: str, scratch_parent: Path) -> Path:
    """``files`` as a new directory under ``scratch_parent``; the caller renames it into place."""
    scratch = scratch_parent / f"{cell_id.replace('/', '__')}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    for name, data in files.items():
        with open(scratch / name, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return scratch


def archive_store(store_root: str | Path, out: str | Path) -> ArchiveOutcome:
    """Copy a store's finished cells (and its recipe, plan and session log) into the archive ``out``, adding to
    what it already holds. Refuses an archive of another experiment, and a cell the archive holds finished with
    different results (two different runs of one cell: which one is the result is not for sigx to pick)."""
    root, out = Path(store_root), Path(out)
    if not (root / "plan.json").is_file():
        raise StoreError(f"{root}: not an ablation run store (no plan.json); name a store under ablations/")
    if root.resolve() == out.resolve():
        raise StoreError(f"{out}: is the store itself; archive it to another directory")
    if root.resolve() in out.resolve().parents:
        raise StoreError(f"{out}: is inside the store {root}; archive it to a directory outside the store")
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out}: exists and is not a directory; name a new or empty directory")
    cell_ids = _cell_ids(root, "the store cannot be archived")
    recipe = _recipe_data(root / "recipe.yaml")
    if (out / "recipe.yaml").exists():
        changed = experiment_differences(_recipe_data(out / "recipe.yaml"), recipe)
        if changed:
            raise StoreError(f"{out}: archives another experiment (its recipe differs in {list_differences(changed)});"
                             " archive this store to another directory")
    elif out.exists() and any(out.iterdir()):
        raise StoreError(f"{out}: exists and is not an archive (no recipe.yaml); name a new or empty directory")
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        return _copy_finished(root, out, cell_ids)


@contextmanager
def _exclusive(out: Path):
    """One archiving of ``out`` at a time (a timer's and a hand's): a lock on the directory itself, so the archive
    holds no lock file; released by the kernel even on ``kill -9``."""
    handle = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{out}: another sigx archive is writing it; wait for it") from None
        yield
    finally:
        os.close(handle)


class OneBuild:
    """The one warm-start build the finished runs at ``destination`` started from, as runs from ``source`` come
    in: a run that recorded another is refused, so that moving runs never makes a mixture of two base models.
    Runs that recorded none (not a sigx/tiny base, or made before sigx recorded it) cannot be checked and pass. A
    source or destination that already holds two builds is copied as it is: its mixture is not made here (the
    report names it, and a store of two builds runs no new cell: ``check_same_base``)."""

    def __init__(self, source: AblationStore, destination: AblationStore, what: str):
        found, _ = destination.base_weights()
        self.digest, self.runs = max(found.items(), key=lambda item: item[1]) if found else (None, 0)
        self.mixed = len(found) > 1 or len(source.base_weights()[0]) > 1
        self.what = what

    def admit(self, summary, source: Path, way_out: str) -> None:
        digest = recorded_build(summary)
        if digest is None or self.mixed:
            return
        if self.digest is not None and digest != self.digest:
            raise StoreError(f"{source}: started from the warm-start build with weights {digest}, and the "
                             f"{self.runs} finished run(s) {self.what} from weights {self.digest} (a build's floating"
                             f" point depends on the machine's CPU kernels; one analysis is of one base model): "
                             f"{way_out}")
        self.digest = digest
        self.runs += 1


def _copy_finished(root: Path, out: Path, cell_ids: list[str]) -> ArchiveOutcome:
    """The finished cells of ``root`` not yet in ``out``, then the store's own files (the caller holds the lock)."""
    scratch = out / ".staging"  # cells being written; a killed archiving's leftovers are dropped here
    shutil.rmtree(scratch, ignore_errors=True)
    plan = read_json(root / "plan.json")
    archived_plan = read_json(out / "plan.json")
    held_cells = [c for c in archived_plan.get("cells", []) if isinstance(c, dict) and isinstance(c.get("id"), str)] \
        if isinstance(archived_plan, dict) else []
    # a store planned with fewer cells than the archive (restored into a recipe with fewer seeds): the archive
    # keeps its larger plan, and the recipe and looks that planned it
    wider = any(c["id"] not in cell_ids for c in held_cells)
    if wider:
        held = {c["id"] for c in held_cells}
        plan["cells"] = held_cells + [c for c in plan["cells"] if c["id"] not in held]
        plan["seeds"] = sorted({*archived_plan.get("seeds", []), *plan.get("seeds", [])})

    outcome = ArchiveOutcome()
    store = AblationStore(root)
    held_build = OneBuild(store, AblationStore(out), f"in the archive {out} started")
    for cell_id in cell_ids:  # before anything is written: all of the store's runs go in, or none
        summary = store.summary(cell_id)
        if cell_status(summary) == "done" and cell_status(read_json(out / cell_id / "summary.json")) != "done":
            held_build.admit(summary, store.cell_dir(cell_id), "archive this store to another directory")
    for cell_id in cell_ids:
        status = store.status(cell_id)
        if status == "pending":
            continue
        why = _damage(store.cell_dir(cell_id), status)
        if why is not None:
            outcome.damaged.append(f"{store.cell_dir(cell_id)}: {why}; not archived (repair the cell, or remove it "
                                   "to run it again)")
            continue
        files = _cell_files(store.cell_dir(cell_id))
        target = out / cell_id
        if target.exists():
            held = _cell_files(target)
            if held == files:
                outcome.unchanged.append(cell_id)
                continue
            if cell_status(read_json(target / "summary.json")) == "done" or status != "done":
                raise StoreError(f"{target}: the archive holds another run of this cell than {store.cell_dir(cell_id)}"
                                 " (their files differ); archive this store to another directory")
            AblationStore(out).set_aside(cell_id, "replaced")  # kept under .failed/, as a store keeps its own
            outcome.replaced.append(cell_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(_write_cell(files, cell_id, scratch), target)
        outcome.archived.append(cell_id)
    shutil.rmtree(scratch, ignore_errors=True)
    for name in STORE_FILES:
        if _plain_file(root / name) and not (wider and (out / name).is_file()):
            write_text_atomic(out / name, (root / name).read_bytes().decode("utf-8", errors="replace"))
    write_json_atomic(out / "plan.json", plan)
    if _plain_file(root / "sessions.jsonl"):
        write_text_atomic(out / "sessions.jsonl", _merged_sessions(out / "sessions.jsonl", root / "sessions.jsonl"))
    return outcome


def _merged_sessions(archived: Path, store: Path) -> str:
    """The archive's session log with the store's lines it lacks appended: sittings on several machines, each
    recorded once, in the order they were archived. A line the store is still writing is left for the next time."""
    held = archived.read_bytes().decode("utf-8", errors="replace").splitlines() if archived.is_file() else []
    seen = set(held)
    new = [line for line in store.read_bytes().decode("utf-8", errors="replace").splitlines()
           if line not in seen and isinstance(_json_or_none(line), dict)]
    return "".join(line + "\n" for line in held + new)


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def check_archive_of(archive: str | Path, recipe_data: dict) -> Path:
    """``archive`` as a path, once it is known to be an archive of the experiment ``recipe_data`` resolves to
    (fields of where and how it ran aside); else a one-line :class:`StoreError`. Run before any cell is restored,
    and by ``--dry-run``, so a wrong archive is named before anything runs."""
    archive = Path(archive)
    if not archive.is_dir():
        raise StoreError(f"{archive}: not a directory; name an archive `sigx archive` wrote")
    if not (archive / "recipe.yaml").is_file():
        raise StoreError(f"{archive}: not an archive (no recipe.yaml); name a directory `sigx archive` wrote")
    changed = experiment_differences(_recipe_data(archive / "recipe.yaml"), recipe_data)
    if changed:
        raise StoreError(f"{archive}: archives another experiment (its recipe differs in {list_differences(changed)})"
                         "; restore from the archive of this recipe")
    return archive


def _runs_again(source: Path, status: str) -> bool:
    """A failed cell archived without its config.json (it failed before writing one): there is nothing to check
    it against this recipe, so a restore leaves it to run again."""
    return status == "failed" and not (source / "config.json").exists()


def archived_pending(store: AblationStore, archive: str | Path, cells: list) -> frozenset[str]:
    """The ids of ``cells`` that the store has yet to run and a restore would bring in from the archive (before its
    checks, which refuse a damaged cell): for the plan table and ``--dry-run``."""
    archive = Path(archive)
    return frozenset(c.id for c in cells if store.status(c.id) == "pending"
                     and isinstance(summary := read_json(archive / c.id / "summary.json"), dict)
                     and not _runs_again(archive / c.id, cell_status(summary)))


def restore_cells(store: AblationStore, archive: str | Path, recipe_data: dict, cells: list) -> list[str]:
    """Publish into ``store`` each of ``cells`` that it lacks and the archive holds, finished by this same
    experiment: the archive's recipe must be the store's (fields of where and how it ran aside), and each cell's
    own resolved recipe the one its plan entry runs now. Returns the ids restored. The caller holds the store's
    lock."""
    archive = check_archive_of(archive, recipe_data)
    restored = []
    store_build = OneBuild(AblationStore(archive), store, f"in the store {store.root} started")
    for cell in cells:
        source = archive / cell.id
        if store.status(cell.id) != "pending" or not (source.exists() or source.is_symlink()):
            continue
        if not source.is_dir():
            raise StoreError(f"{source}: not a directory (an archived cell is one); restore it from version control,"
                             " or remove it to run the cell again")
        summary = read_json(source / "summary.json")
        if not isinstance(summary, dict):
            raise StoreError(f"{source}: has no readable summary.json; the archived cell is damaged: restore it "
                             "from version control, or remove it to run the cell again")
        status = cell_status(summary)
        why = _damage(source, status)
        if why is not None:
            raise StoreError(f"{source}: {why}; restore it from version control, or remove it to run the cell again")
        if _runs_again(source, status):
            continue
        made_by = read_json(source / "config.json")
        if not isinstance(made_by, dict):
            raise StoreError(f"{source}: has no readable config.json (the recipe the cell ran)")
        changed = experiment_differences(made_by, cell.recipe.model_dump(mode="json"))
        if changed:
            raise StoreError(f"{source}: ran another recipe than this cell's (differs in {list_differences(changed)})")
        if status == "done":
            store_build.admit(summary, source, "restore it into a store of its own build, or remove it to run the "
                                               "cell again")
        store.staging.mkdir(parents=True, exist_ok=True)
        staged = _write_cell(_cell_files(source), cell.id, store.staging)
        if store.finalize(staged, cell.id):
            restored.append(cell.id)
    return restored
