"""A run's checkpoint, ``<run dir>/checkpoint.pt``: what the next step depends on, so that a run stopped at
any moment (Ctrl-C, ``kill -9``, a lost machine) resumes from its last checkpoint and continues exactly as if
it had never stopped: the same samples, the same updates, the same metrics.

That is: the policy weights, the optimizer's moments, the RNG streams (torch's CPU and CUDA generators, the
trainer's problem sampler, each technique's own through its ``state_dict`` hook), the metrics history and the
wall time spent so far, with the resolved recipe they belong to. One file, written under a temporary name,
fsynced and renamed, so a crash mid-write leaves the previous checkpoint whole; read with
``weights_only=True``, so loading one runs no pickled code. A completed run deletes its checkpoint (its
metrics and summary are the record; a store of 48 cells should not keep 48 optimizer states).

Checked on load: the file must hold a sigx checkpoint's parts, and a SHA-256 digest of its contents (every
tensor's bytes, dtype and shape, every other value's repr), written with it, must match. A disk fault or a
stray write into the tensor data would otherwise resume on corrupted weights and fail many steps later (or,
worse, not at all). A write that fails (a full disk, a file-size limit) is one :class:`CheckpointWriteError`
line: the previous checkpoint is intact, and the same command resumes from it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import torch

from sigx.config import RESUMABLE_CHANGES, RecipeError, default_recipe_like
from sigx.engine.distributed import barrier
from sigx.runs import CHECKPOINT_FILE, CHECKPOINT_SHARDS, config_differences, list_differences, temporary_prefix

FILE = CHECKPOINT_FILE
#: what a sigx checkpoint holds (``digest`` since 2026-11-30: older checkpoints resume unchecked)
PARTS = ("step", "trainer", "history", "elapsed_s", "config", "meta")


class CheckpointWriteError(RecipeError):
    """A checkpoint that could not be written; nothing is lost (the previous one stays whole)."""

    def __init__(self, message: str):
        super().__init__([message])

    def __reduce__(self):
        return type(self), (self.problems[0],)


def _feed(hasher, value) -> None:
    """Everything ``value`` holds, in a fixed order, into ``hasher``."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        hasher.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        if tensor.numel():
            hasher.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        hasher.update(f"D{len(value)}".encode())
        for key in sorted(value, key=repr):
            hasher.update(repr(key).encode())
            _feed(hasher, value[key])
    elif isinstance(value, (list, tuple)):
        hasher.update(f"L{len(value)}".encode())
        for item in value:
            _feed(hasher, item)
    else:
        hasher.update(f"V{value!r}".encode())


def digest(state: dict) -> str:
    hasher = hashlib.sha256()
    _feed(hasher, {k: v for k, v in state.items() if k != "digest"})
    return hasher.hexdigest()


#: the directories of sharded parts (a multi-process run's weights and optimizer state) beside checkpoint.pt
SHARDS = CHECKPOINT_SHARDS


class Checkpoints:
    """``writer``: whether this process writes checkpoint.pt (process 0 of a multi-process run; the others
    write only their shards, through ``save``'s ``shards`` callable)."""

    def __init__(self, run_dir: str | Path, every: int, config: dict, writer: bool = True):
        self.path = Path(run_dir) / FILE
        self.every = every
        self.config = config
        self.writer = writer
        self.meta: dict = {}  # what the caller must find again on resuming (its W&B run id), saved alongside

    def due(self, step: int, last_step: int) -> bool:
        """Every ``every`` steps, except the last (a finished run needs none)."""
        return self.every > 0 and step % self.every == 0 and step < last_step

    def save(self, step: int, trainer_state: dict, history: list[dict], elapsed_s: float, shards=None) -> None:
        """``shards(directory)``: a multi-process run's sharded part, written by every process (collective)
        before process 0 names it in checkpoint.pt; until then the previous checkpoint (and its shards) stand."""
        state = {"step": step, "trainer": trainer_state, "history": history, "elapsed_s": elapsed_s,
                 "config": self.config, "meta": self.meta}
        if shards is not None:
            name = f"{SHARDS}{step}"
            shards(self.path.parent / name)
            barrier()  # every shard written before checkpoint.pt names them
            state["shards"] = name
        if not self.writer:
            barrier()  # process 0 has replaced checkpoint.pt
            return
        state["digest"] = digest(state)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=temporary_prefix(FILE))
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._remove_shards(keep=state.get("shards"))
            if shards is not None:
                barrier()
        except (OSError, RuntimeError) as err:  # torch.save reports a failed write as RuntimeError
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            reason = getattr(err, "strerror", None) or re.sub(r"^\[enforce fail at [^\]]*\][ .]*", "",
                                                              str(err).strip().splitlines()[-1])[:120]
            raise CheckpointWriteError(f"{self.path}: cannot write the checkpoint of step {step} ({reason}); "
                                       "the previous checkpoint is intact: free space (or raise the file-size "
                                       "limit), then run the same command again to resume") from None
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise

    def remove_leftovers(self) -> None:
        """Temporary files of writes that a kill cut short (SIGTERM and SIGKILL run no cleanup); called by the
        run directory's only writer, under its lock."""
        for leftover in self.path.parent.glob(f"{temporary_prefix(FILE)}*"):
            leftover.unlink(missing_ok=True)

    def load(self) -> dict | None:
        """The last checkpoint, or None when there is none. One of another recipe is a one-line error: resuming
        it would splice two experiments into one run."""
        if not self.path.exists():
            if self.writer:
                self._remove_shards()  # of a first checkpoint whose write a kill cut short
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # never a half-written file (atomic rename); a damaged or foreign one
            raise RecipeError([f"{self.path}: not a readable sigx checkpoint ({type(err).__name__}); start "
                               "afresh with --fresh"]) from None
        missing = [p for p in PARTS if p not in state] if isinstance(state, dict) else list(PARTS)
        if missing:
            raise RecipeError([f"{self.path}: not a sigx checkpoint (lacks {', '.join(missing)}); start afresh "
                               "with --fresh, or write this run elsewhere with --run-dir"])
        if "digest" in state and digest(state) != state["digest"]:
            raise RecipeError([f"{self.path}: damaged (its contents do not match the checksum written with it); "
                               "start afresh with --fresh"])
        if not isinstance(state["config"], dict) or not isinstance(state["step"], int):
            raise RecipeError([f"{self.path}: not a sigx checkpoint (config or step of the wrong type); start "
                               "afresh with --fresh"])
        changed = config_differences(state["config"], self.config, ignore=RESUMABLE_CHANGES,
                                     defaults=default_recipe_like(state["config"]))
        if changed:
            raise RecipeError([f"{self.path}: a checkpoint of a different recipe (differs in "
                               f"{list_differences(changed)}); start afresh with --fresh, or write this run "
                               "elsewhere with --run-dir"])
        if state.get("shards") and not (self.path.parent / str(state["shards"])).is_dir():
            raise RecipeError([f"{self.path}: its sharded part {state['shards']}/ is missing; start afresh with "
                               "--fresh"])
        if self.writer:
            self._remove_shards(keep=state.get("shards"))  # of a later checkpoint whose write a kill cut short
        return state

    def _remove_shards(self, keep: str | None = None) -> None:
        import shutil

        for directory in self.path.parent.glob(f"{SHARDS}*"):
            if directory.name != keep:
                shutil.rmtree(directory, ignore_errors=True)

    def remove(self) -> None:
        if self.writer:
            self.path.unlink(missing_ok=True)
            self._remove_shards()
