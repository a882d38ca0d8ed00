"""The run directory: ``config.json`` (resolved recipe), ``metrics.jsonl`` (one line per step) and
``summary.json`` (written last). JSON files are written atomically (temporary file, fsync, rename) so a crash
never leaves a half-written file; the metrics log is append-only and flushed after every line.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


#: a run directory's checkpoint (see :mod:`sigx.checkpoint`), named here so that readers of run directories
#: need not load torch
CHECKPOINT_FILE = "checkpoint.pt"
#: the directories of a multi-process run's sharded checkpoint parts, beside checkpoint.pt (``<prefix><step>``)
CHECKPOINT_SHARDS = "checkpoint.shards."
#: the files this module writes into a run directory (the resolved recipe, the metrics log, the summary)
RUN_FILES = ("config.json", "metrics.jsonl", "summary.json")


def temporary_prefix(name: str) -> str:
    """The name prefix of an atomic write's temporary file beside ``name`` (``.summary.json.x1y2``): one rule for
    every writer of a run directory (this module, the checkpoint), so that what a kill leaves behind is known by
    the same rule that made it, to be removed on resuming and not taken for someone else's file."""
    return f".{name}."


#: what a run directory may hold: those files, the checkpoint and its shards, the saved policy (``--save-model``),
#: W&B's folder, the run's lock, and the temporaries of atomic writes a kill left behind
RUN_ENTRIES = (*RUN_FILES, CHECKPOINT_FILE, f"{CHECKPOINT_SHARDS}*", "model", "wandb", ".lock",
               *(f"{temporary_prefix(name)}*" for name in (*RUN_FILES, CHECKPOINT_FILE)))


def foreign_entries(run_dir: str | Path, recipe_sections: frozenset[str]) -> list[str]:
    """The names in ``run_dir`` that no sigx run writes (sorted): a run written there could overwrite a file of
    the same name that is someone else's (a project's own config.json), so ``sigx train`` refuses such a folder.
    ``recipe_sections``: the top-level fields of a resolved recipe (:class:`sigx.config.Recipe`'s, passed in so that
    this module need not import the config). A run's config.json has model, training and rollout and nothing
    else than those fields (an older sigx wrote fewer); another tool's config.json is told apart by either."""
    foreign = [p.name for p in Path(run_dir).iterdir()
               if not any(fnmatch.fnmatchcase(p.name, pattern) for pattern in RUN_ENTRIES)]
    config = Path(run_dir) / "config.json"
    if config.exists():
        made_by = read_json(config)
        if not (isinstance(made_by, dict) and {"model", "training", "rollout"} <= made_by.keys() <= recipe_sections):
            foreign.append("config.json (not a sigx recipe)")
    return sorted(foreign)


def cell_status(summary: dict | None) -> str:
    """``done``, ``failed`` or ``pending`` (never run, or killed before it finished), from a run's summary."""
    if summary is None:
        return "pending"
    return "done" if summary.get("status") == "completed" else "failed"


#: what an infinite float is written as (JSON has no infinity; 1e308 still reads back as a float). A reader takes
#: any value this large as infinite (sigx.report.load.is_number)
WRITTEN_INFINITY = 1e308


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (WRITTEN_INFINITY if value > 0 else -WRITTEN_INFINITY)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _jsonl_line(row: dict) -> str:
    return json.dumps(_clean(row)) + "\n"


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file beside ``path``, fsync, rename: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name))
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_write_leftovers(directory: str | Path) -> None:
    """The temporary files of atomic writes that a kill cut short (``.summary.json.x1y2`` ...): a signal that
    ends the process runs no cleanup. Only the directory's one writer, under its lock, may call this."""
    for name in RUN_FILES:
        for leftover in Path(directory).glob(f"{temporary_prefix(name)}*"):
            leftover.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(_clean(data), indent=2, sort_keys=True))


def config_differences(old, new, ignore: set[tuple[str, ...]] = frozenset(), path=(), defaults=None) -> list[str]:
    """Dotted paths of the fields in which two resolved recipes differ, skipping the ``ignore`` paths (and
    everything under them). ``old`` may come from an older sigx: a field it lacks (added since) is compared at
    its default in ``defaults``, since sigx adds fields with defaults that keep the earlier behaviour."""
    if path in ignore:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        defaults = defaults if isinstance(defaults, dict) else {}
        return [d for k in sorted(set(old) | set(new))
                for d in config_differences(old[k] if k in old else defaults.get(k), new.get(k), ignore,
                                            path + (k,), defaults.get(k))]
    return [".".join(path)] if old != new else []


def list_differences(changed: list[str], shown: int = 4) -> str:
    """The first ``shown`` differing fields for a one-line error, with "..." when there are more."""
    named = [c or "(the whole recipe: not a mapping of sections)" for c in changed]
    return ", ".join(named[:shown]) + (", ..." if len(named) > shown else "")


class UnreadableRecipe(ValueError):
    """A stored ``recipe.yaml`` that is not a readable mapping; the message is one line naming the file."""


def read_stored_recipe(path: str | Path) -> dict:
    """A recipe as a store or an archive keeps it (``recipe.yaml``, every default filled in), as data. Its readers
    differ in what a damaged one means (a store will not run, an archive will not take cells, a report will not
    analyse), so each adds its own advice to the :class:`UnreadableRecipe` raised here."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError, RecursionError) as err:
        raise UnreadableRecipe(f"{path}: not a readable recipe ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise UnreadableRecipe(f"{path}: not a recipe (expected a mapping of sections)")
    return data


def read_json(path: str | Path) -> Any:
    """The parsed file, or None when it is absent or unreadable (never written completely by sigx; not UTF-8;
    not JSON; nested deeper than Python can parse)."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: JSONDecodeError and UnicodeDecodeError
        return None


def read_jsonl_lines(path: str | Path) -> tuple[list[Any], int]:
    """Every complete line's value, and how many lines could not be read (a torn last line after a crash
    mid-write; bytes that are not UTF-8 or not JSON)."""
    rows, unreadable = [], 0
    try:
        data = Path(path).read_bytes()
    except OSError:
        return rows, unreadable
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line.decode("utf-8")))
        except (ValueError, RecursionError):
            unreadable += 1
    return rows, unreadable


def read_jsonl(path: str | Path) -> list[Any]:
    """Every complete line; a torn last line (a crash mid-write) or a damaged one is ignored."""
    return read_jsonl_lines(path)[0]


class RunWriter:
    def __init__(self, run_dir: str | Path, resumed_rows: list[dict] | None = None):
        """A fresh run starts its metrics log empty; a resumed one starts it with the rows up to its checkpoint
        (rows logged after the checkpoint by the stopped process are dropped: those steps run again)."""
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"
        write_text_atomic(self.metrics_path, "".join(_jsonl_line(r) for r in resumed_rows or []))
        self._metrics = open(self.metrics_path, "a")

    def write_config(self, config: dict) -> None:
        write_json_atomic(self.dir / "config.json", config)

    def log(self, row: dict) -> None:
        self._metrics.write(_jsonl_line(row))
        self._metrics.flush()

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.dir / "summary.json", summary)

    def close(self) -> None:
        self._metrics.close()
