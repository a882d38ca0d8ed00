"""The ablation run store ``<ablation.output_dir>/<recipe name>/``.

Layout::

    recipe.yaml                 the resolved recipe (every default filled in)
    plan.json                   the cells, in order, with their techniques and seed
    sessions.jsonl              a started and a finished line per ``sigx ablate`` invocation, sharing its session id
                                (executor, cells run, wall time)
    <combination>/seed<k>/      one finished cell: config.json, metrics.jsonl, summary.json (+ wandb/)
    .staging/                   cells being run; an interrupted one's is kept if it holds a checkpoint
    .failed/                    earlier attempts of cells re-run by ``--retry-failed`` (kept, never deleted)

Why it cannot lose or duplicate work: a cell runs in its own directory under ``.staging/`` and becomes visible
only by one atomic ``rename`` into ``<combination>/seed<k>/`` after its summary is written. So a cell
directory is complete or absent, whatever moment a ``kill -9`` hits; a killed cell resumes from its staging
directory's last checkpoint (:mod:`sigx.checkpoint`, every ``training.checkpoint_every`` steps), or is re-run
from the start if it had none; and a rename onto an existing cell fails, so a cell is never recorded twice
(not even by an orphaned worker racing a resumed run). A file lock keeps two invocations apart.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import yaml

from sigx.ablation.plan import crossed, design_of, factors_of
from sigx.config import EXECUTION_FIELDS, Recipe, default_recipe_like
from sigx.design import Design, alias_lines, describe
from sigx.runs import (CHECKPOINT_FILE, UnreadableRecipe, cell_status, config_differences, list_differences,
                       read_json, read_stored_recipe, write_json_atomic, write_text_atomic)

#: what an ablation store may be resumed with changed: the recipe fields of roles "execution", "layout" and
#: "cell_seed" (see sigx.config.ROLES), and the settings of where a store ran as sigx wrote them before the
#: launchers' own sections (#17)
STORE_RESUMABLE_CHANGES = EXECUTION_FIELDS | {("ablation", "address"), ("ablation", "gpus_per_cell"),
                                              ("ablation", "cpus_per_cell")}


def design_json(design: Design, names: list[str]) -> dict:
    """The design as the report reads it back: fraction, generators, defining words, resolution, aliases."""
    return {"fraction": design.p, "resolution": design.resolution,
            "generators": [[f, list(w), sign] for f, w, sign in design.generators],
            "words": [sorted(w) for w in design.words], "description": describe(design, names),
            "aliases": alias_lines(design, names)}


def experiment_differences(stored: dict, resolved: dict) -> list[str]:
    """The fields in which two resolved recipes differ as experiments: all but where and how a store runs."""
    return config_differences(stored, resolved, ignore=STORE_RESUMABLE_CHANGES, defaults=default_recipe_like(stored))


class StoreError(RuntimeError):
    """A run store that cannot be used as asked; the message is one line for the CLI."""


def recorded_build(summary) -> str | None:
    """The digest of the warm-start build a run started from (its summary's ``base_weights``), where it recorded
    one (not a sigx/tiny base, or a run made before sigx recorded it: None)."""
    digest = summary.get("base_weights") if isinstance(summary, dict) else None
    return digest if isinstance(digest, str) and digest else None


def store_root(recipe: Recipe) -> Path:
    return Path(recipe.ablation.output_dir) / recipe.name


def _held(lock: Path) -> bool:
    """Whether a live process holds ``lock`` (the run lock every training takes on its directory)."""
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


class AblationStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.staging = self.root / ".staging"
        self.failed_attempts = self.root / ".failed"

    # ------------------------------------------------------------------------------------------ cells
    def cell_dir(self, cell_id: str) -> Path:
        return self.root / cell_id

    def summary(self, cell_id: str) -> dict | None:
        return read_json(self.cell_dir(cell_id) / "summary.json")

    def status(self, cell_id: str) -> str:
        return cell_status(self.summary(cell_id))

    def base_weights(self) -> tuple[dict[str, int], int]:
        """The warm-start builds the store's finished runs started from (digest -> runs), and how many finished
        runs recorded none (not a sigx/tiny base, or made before sigx recorded it)."""
        found: dict[str, int] = {}
        unrecorded = 0
        for summary in self.finished_summaries():
            digest = recorded_build(summary)
            if digest is not None:
                found[digest] = found.get(digest, 0) + 1
            else:
                unrecorded += 1
        return found, unrecorded

    def build_cpu(self, digest: str) -> str | None:
        """The CPU kernels (``provenance.cpu``) the finished runs from the warm-start build ``digest`` ran on, where
        they all recorded the same."""
        kinds = set()
        for summary in self.finished_summaries():
            if recorded_build(summary) == digest:
                record = summary.get("provenance")
                kinds.add(record.get("cpu") if isinstance(record, dict) else None)
        return kinds.pop() if len(kinds) == 1 else None

    def finished_summaries(self):
        """The summaries of the plan's finished runs."""
        plan = read_json(self.root / "plan.json")
        for cell in plan.get("cells", []) if isinstance(plan, dict) else []:
            summary = self.summary(str(cell.get("id"))) if isinstance(cell, dict) else None
            if cell_status(summary) == "done":
                yield summary

    def new_staging_dir(self, cell_id: str) -> Path:
        path = self.staging / f"{cell_id.replace('/', '__')}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def claim_staging_dir(self, cell_id: str) -> Path:
        """Where to run a cell: the staging directory of an interrupted attempt that left a checkpoint (the
        cell resumes from it), else a new one. Claimed by renaming it to this process's name: of two workers
        reaching for the same one, the second's rename fails and it looks further."""
        prefix = f"{cell_id.replace('/', '__')}."
        for attempt in sorted(self.staging.glob(prefix + "*")):
            if not (attempt / CHECKPOINT_FILE).exists() or _held(attempt / ".lock"):
                continue  # no checkpoint to resume from, or a live process (an orphaned job) still trains it
            claimed = self.staging / f"{prefix}{os.getpid()}.{uuid.uuid4().hex[:8]}"
            try:
                os.rename(attempt, claimed)
            except OSError:
                continue
            return claimed
        return self.new_staging_dir(cell_id)

    def finalize(self, staging_dir: Path, cell_id: str) -> bool:
        """Publish a finished (or failed) cell by atomic rename. False, and the staging copy discarded, when
        the cell is already there: the first finished copy wins and nothing is recorded twice. A cell directory
        without a readable summary (damaged by hand, a disk fault) is no finished copy: it is set aside and
        the new one published."""
        target = self.cell_dir(cell_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            try:
                os.rename(staging_dir, target)  # fails if target exists (non-empty directory)
                return True
            except OSError:
                if attempt == 0 and target.is_dir() and not isinstance(self.summary(cell_id), dict):
                    self.set_aside(cell_id, "unreadable")
                    continue
                shutil.rmtree(staging_dir, ignore_errors=True)
                return False
        return False

    def set_aside_failed(self, cell_id: str) -> None:
        """Move a failed cell out of the way before it is re-run, keeping its logs under ``.failed/``."""
        self.set_aside(cell_id, "failed")

    def set_aside(self, cell_id: str, why: str) -> Path:
        """Move a cell directory under ``.failed/`` (kept, never deleted), so that the cell runs again."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.failed_attempts / f"{cell_id.replace('/', '__')}.{why}.{stamp}.{uuid.uuid4().hex[:6]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.cell_dir(cell_id), target)
        return target

    def set_aside_unreadable(self, plan: list) -> list[tuple[str, str]]:
        """Cells whose place holds something without a readable summary (a finished cell's summary damaged after
        the fact, a file where its directory belongs) would count as pending forever, run again and again and
        never publish: set it aside, so that the cell re-runs and publishes."""
        moved = []
        for cell in plan:
            place = self.cell_dir(cell.id)
            if place.is_symlink() or (place.exists() and not place.is_dir()):
                self.set_aside(cell.id, "not-a-directory")
                moved.append((cell.id, "is not a directory (a file or a link where the finished cell belongs)"))
            elif place.is_dir() and not isinstance(self.summary(cell.id), dict):
                self.set_aside(cell.id, "unreadable")
                moved.append((cell.id, "has no readable summary.json"))
        return moved

    # ------------------------------------------------------------------------------------------ the ablation
    @contextmanager
    def lock(self):
        """Exclusive use of the store by one ``sigx ablate``; released by the kernel even on ``kill -9``."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                raise StoreError(f"{self.root}: another sigx ablate is running on this store (pid {holder}); "
                                 "wait for it or stop it") from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield

    def prepare(self, recipe: Recipe, plan: list) -> None:
        """Check the store holds this same experiment (or nothing yet), save recipe and plan, drop leftovers
        of killed cells."""
        resolved = recipe.model_dump(mode="json")
        stored_path = self.root / "recipe.yaml"
        if stored_path.exists():
            try:
                stored = read_stored_recipe(stored_path)
            except UnreadableRecipe as err:
                raise StoreError(f"{err}; the store's record of what it measures is damaged: restore it, or start "
                                 "another store") from None
            changed = experiment_differences(stored, resolved)
            if changed:
                raise StoreError(f"{self.root}: holds an ablation of a different recipe (differs in "
                                 f"{list_differences(changed)}); rename the recipe, set ablation.output_dir, or "
                                 "remove that directory")
        write_text_atomic(stored_path, yaml.safe_dump(resolved, sort_keys=False))
        write_json_atomic(self.root / "plan.json", {
            "name": recipe.name, "factors": [f.to_json() for f in factors_of(recipe)],
            "design": design_json(design_of(recipe), [f.name for f in crossed(factors_of(recipe))]),
            "seeds": recipe.ablation.seeds,
            "cells": [{"id": c.id, "combination": c.combination, "factors_on": list(c.factors_on),
                       "techniques": list(c.techniques), "seed": c.seed} for c in plan],
        })
        for attempt in self.staging.glob("*") if self.staging.exists() else []:
            if not (attempt / CHECKPOINT_FILE).exists():  # a killed cell's checkpoint is kept: it resumes there
                shutil.rmtree(attempt, ignore_errors=True)

    def record_session(self, record: dict) -> None:
        """Append one line to ``sessions.jsonl``: an invocation writes a ``started`` line first and a
        ``finished`` one at its end, so one that was killed still leaves its trace."""
        with open(self.root / "sessions.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
