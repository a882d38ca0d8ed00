"""One run on N processes: the update sharded with PyTorch FSDP2 (``fully_shard``), started by ``sigx train
--nproc N`` under torchrun (gloo on CPU, NCCL on GPUs).

What is split, and why this way (a first slice of issue #28):
- **The update** is data-parallel and sharded: each decoder layer and the root are ``fully_shard``-ed, so each
  process holds 1/N of the weights, gradients and AdamW state. Every row of a step's batch belongs to one
  process (``row % N == rank``), for the whole step, so the log-probs a process computes for its rows are the
  ones it trains on in every mini-batch and epoch. The loss is normalised by the *global* mini-batch (every
  process holds the whole batch), and FSDP's gradient average is undone by a factor N, so the summed gradient is
  the single-process gradient up to the order of float additions.
- **The rollout** runs on whole weights: for a rollout phase each process gathers the model's shards once
  (:func:`whole_weights`), so its forwards need no collective and processes may run different numbers of them.
  With ``rollout.seeding: sample`` (one random stream per sample, seeded from the run's rollout stream) each
  process samples its share of the batch, whole groups on one process (:meth:`World.share`: a group's samples
  share their prompt, whose prefill the sampler does once), and the shares are gathered back in order
  (:meth:`World.gather`): the same trajectories as one process samples, in 1/N of the sampling work each. With
  the default ``seeding: batch`` (one stream for the whole batch: a sample's draws depend on its batch) every
  process samples the whole step from the same seeds, and process 0's trajectories are the ones every process
  keeps (:meth:`World.same`: identical when the processes compute alike, which is then not assumed).
- **The techniques** then run on every process alike, on the whole gathered batch and from the same seeds, so
  rewards, advantages, GC-RL's cache and every technique's random stream are those of the single-process run
  (a technique's own sampling, GC-RL's critiques, is split the same way: it goes through the same rollout).
- **Collectives stay in step**: a process with fewer micro-batches in a mini-batch than another runs
  zero-weighted ones, so every process enters the same number of forward/backward passes.
- Process 0 alone writes the run directory and mirrors to W&B. A checkpoint of a multi-process run holds the
  weights and AdamW state as each process's shards (torch.distributed.checkpoint, ``checkpoint.shards.<step>/``)
  beside the usual ``checkpoint.pt`` (every other part of the state is the same on every process); so do the
  staleness window's weight snapshots (``rollout.staleness``), sharded as the weights are. It resumes exactly, and
  into any number of processes, one included.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def sharded(self) -> bool:
        return self.size > 1

    def own(self, rows: torch.Tensor) -> torch.Tensor:
        """The rows of ``rows`` (batch row indices) this process trains on."""
        return rows[rows % self.size == self.rank] if self.sharded else rows

    def most(self, count: int) -> int:
        """The largest ``count`` over the processes."""
        if not self.sharded:
            return count
        value = torch.tensor([count])
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return int(value)

    def share(self, groups: list[int]) -> list[int]:
        """The rows (indices into ``groups``) this process samples: whole groups, group ``g`` on process
        ``g % size``; when there are fewer groups than processes (held-out evaluation's one group), row ``i`` on
        process ``i % size``."""
        if not self.sharded:
            return list(range(len(groups)))
        by_group = len(set(groups)) >= self.size
        return [i for i, g in enumerate(groups) if (g if by_group else i) % self.size == self.rank]

    def same(self, items: list) -> list:
        """Process 0's ``items`` on every process. A rollout every process computes from the same seeds should
        be the same everywhere, but that rests on every process computing bit for bit alike (the same thread
        count, kernels, hardware); if one drifts, the processes would train on different batches and their
        collectives fall out of step. Taking process 0's makes it hold whatever happens. Collective."""
        if not self.sharded:
            return items
        box = [items if self.rank == 0 else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, rows: list[int], items: list, count: int) -> list:
        """Every process's ``items`` (those of batch ``rows``) put back in batch order: a list of ``count``,
        the same on every process. Collective."""
        if not self.sharded:
            return list(items)
        parts: list = [None] * self.size
        torch.distributed.all_gather_object(parts, (rows, items))
        out: list = [None] * count
        for part_rows, part_items in parts:
            for row, item in zip(part_rows, part_items):
                out[row] = item
        if any(item is None for item in out):
            raise RuntimeError("a gathered rollout is missing rows: the processes disagree on the batch")
        return out

    def total(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over the processes (a key some process lacks counts 0 there)."""
        if not self.sharded:
            return values
        gathered: list[dict] = [{} for _ in range(self.size)]
        torch.distributed.all_gather_object(gathered, {k: float(v) for k, v in values.items()})
        out: dict[str, float] = {}
        for part in gathered:
            for k, v in part.items():
                out[k] = out.get(k, 0.0) + v
        return out


def current_world() -> World:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return World(torch.distributed.get_rank(), torch.distributed.get_world_size())
    return World()


def init_from_torchrun() -> World:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE`` ...); a plain process is world 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return current_world()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend)
    return current_world()


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """A causal LM's decoder layers (transformers' ``model.model.layers``), the units FSDP2 shards one by one."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no model.layers to shard; --nproc supports transformers' causal LMs")
    return list(layers)


def shard(model: torch.nn.Module) -> None:
    """FSDP2 in place: each decoder layer, then the rest (embeddings, final norm, output head) as the root."""
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(model)


@contextmanager
def whole_weights(model: torch.nn.Module):
    """The sharded ``model``'s weights gathered on this process for the duration (FSDP2 ``unshard``, and no
    re-sharding after each forward), so that its forwards run without collectives: a rollout phase, in which
    processes sample different shares and stop after different numbers of tokens. Every process enters and leaves
    together (the gather and the release are collective); nested entries are free. A model that is not sharded
    is left as it is."""
    if not current_world().sharded or getattr(model, "_sigx_whole_weights", False):
        yield
        return
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not units:
        yield
        return
    model._sigx_whole_weights = True
    for unit in units:
        unit.unshard()
        unit.set_reshard_after_forward(False)
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True)
        model._sigx_whole_weights = False


def whole_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A sharded tensor (FSDP2's DTensor) gathered whole (collective: every process calls it, in the same order);
    any other tensor as it is."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight whole (gathered from the shards), on the CPU; every process must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_shards(model: torch.nn.Module, optimizer, directory: Path, extra: dict | None = None) -> None:
    """The model's and optimizer's state (and ``extra``: more sharded tensors, the staleness window's weight
    snapshots), each process writing its own shards (torch.distributed.checkpoint); every process calls it.
    ``load_shards`` reads it back into any number of processes."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    state = {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer),
             **(extra or {})}
    dcp.save(state, checkpoint_id=str(directory))


def load_shards(model: torch.nn.Module, optimizer, directory: Path, extra: dict | None = None) -> None:
    """``save_shards``'s state into this run's model and optimizer, resharded for its processes (N -> M);
    ``extra``'s tensors (shaped as they were saved, sharded as this run shards) are filled in place."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict,
                                                         set_model_state_dict, set_optimizer_state_dict)

    state = {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer),
             **(extra or {})}
    dcp.load(state, checkpoint_id=str(directory))
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optimizer"])


def finish_processes() -> None:
    """Leave the process group together, once every process is done (collective): a process that exits while
    another still talks to it makes gloo abort the other."""
    barrier()
    torch.distributed.destroy_process_group()


def exit_finished_process() -> NoReturn:
    """End a process of a sharded run that has left its group (:func:`finish_processes`) at once, exit status 0,
    without the interpreter's teardown. Why: that teardown has nothing left to write (the run, its summary and
    its tracker are closed before), but it can kill a finished process ("terminate called without an active
    exception", SIGABRT); torchrun then stops the other processes and the finished run reads as failed (CI of
    stops 32 and 41, an ablation cell of ``nproc_per_cell: 2``; 1 run of 24 in a loop on the dev machine).
    Likely cause (no backtrace caught): a gloo thread holding a tensor with a Python reference takes the GIL
    while the interpreter finalizes, CPython 3.11 ends it with ``pthread_exit``, and the unwinding through C++
    frames calls ``std::terminate`` (pytorch/pytorch#179291 describes these threads)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def abandon_processes() -> None:
    """Leave the process group alone, without the others (``ProcessGroup.abort``, not collective): for a process
    that stops on an error while the others may be inside a collective. A group left to the interpreter's exit
    instead is torn down with gloo's threads still holding work, and the process dies of SIGABRT without its
    error (pytorch/pytorch#179291 describes the crash). torchrun then stops the others."""
    abort = getattr(torch.distributed.distributed_c10d, "_abort_process_group", None)  # torch >= 2.6 (private)
    if abort is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        abort()


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
