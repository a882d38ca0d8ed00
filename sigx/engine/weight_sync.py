"""Pushing the policy's current weights into a separate rollout engine, in place.

A rollout engine that holds its own copy of the model (vLLM on a GPU) must sample from the policy being
trained, so after every update the new weights are pushed into it: no save to disk and re-load, no new engine.
The push is split from any one engine so that the same code path is exercised on CPU:

- :func:`iter_checkpoint_weights` reads the training model as ``(name, tensor)`` pairs under the names of a
  Hugging Face checkpoint (the names every engine's loader expects), whatever wrappers training added
  (``torch.compile``'s ``_orig_mod.``, DDP's ``module.``, activation checkpointing's
  ``_checkpoint_wrapped_module.``), cast to the engine's dtype.
- :func:`push_weights` feeds them to a receiver in buckets of bounded size, so the extra memory a push needs is
  one bucket, not a second copy of the model.
- A receiver is anything with ``load_weights(iterable of (name, tensor))``: vLLM's model classes have exactly
  this method; :class:`StateDictReceiver` is the same contract for a transformers model (the CPU stand-in that
  the tests use to check that a pushed engine and the trained policy give identical log-probs).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Protocol

import torch

from sigx.engine.distributed import whole_tensor
from sigx.engine.lora import has_adapters, merged_weights

#: prefixes that training wrappers put in front of checkpoint names
WRAPPER_PREFIXES = ("_orig_mod.", "module.", "_fsdp_wrapped_module.")
WRAPPER_INFIXES = ("._checkpoint_wrapped_module", "._orig_mod")


class WeightReceiver(Protocol):
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> object: ...


def checkpoint_name(name: str) -> str:
    """The checkpoint name of a parameter of a (possibly wrapped) training model."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    for infix in WRAPPER_INFIXES:
        name = name.replace(infix, "")
    return name


def tied_names(model: torch.nn.Module) -> set[str]:
    """Checkpoint names (adapted layers under their base names) of weights that are another weight's tensor
    (tied: input embedding = output head), found on the model's own storage (a sharded weight's local shard)."""
    first: dict[object, str] = {}
    tied = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        local = getattr(tensor, "_local_tensor", tensor)
        key = (local.data_ptr(), local.numel(), tuple(local.shape)) if local.numel() else id(tensor)
        plain = checkpoint_name(name).replace(".base_layer.", ".")
        if key in first:
            tied.add(plain)
        else:
            first[key] = plain
    return tied


def iter_checkpoint_weights(model: torch.nn.Module,
                            dtype: torch.dtype | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and persistent buffer once, under its checkpoint name, detached (and cast only if asked:
    the common case, same dtype, yields views without copying; the receiver copies across devices). A sharded
    run's weights are gathered whole one at a time (collective: every process iterates). Tied weights are pushed
    once: which ones is read off the model's own storage, not off the yielded tensors, whose memory (a merged
    or gathered weight, freed after its bucket) may be reused by a later one."""
    tied = tied_names(model)
    # a LoRA run's policy is pushed merged, under the base model's names (the engine has no adapters)
    named = merged_weights(model) if has_adapters(model) else model.state_dict(keep_vars=False).items()
    for name, tensor in named:
        if checkpoint_name(name) in tied:
            continue
        out = whole_tensor(tensor).detach()
        if dtype is not None and out.is_floating_point() and out.dtype != dtype:
            out = out.to(dtype)
        yield checkpoint_name(name), out


def buckets(weights: Iterable[tuple[str, torch.Tensor]], max_bytes: int) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Consecutive groups of at most ``max_bytes`` (a tensor larger than that is a bucket of its own)."""
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, tensor in weights:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > max_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
    if bucket:
        yield bucket


def push_weights(model: torch.nn.Module, receiver: WeightReceiver, dtype: torch.dtype | None = None,
                 bucket_bytes: int = 1 << 30) -> int:
    """Load ``model``'s current weights into ``receiver``; returns the number of tensors pushed."""
    pushed = 0
    for bucket in buckets(iter_checkpoint_weights(model, dtype), bucket_bytes):
        receiver.load_weights(bucket)
        pushed += len(bucket)
    return pushed


class StateDictReceiver:
    """``load_weights`` for a transformers model: copies each named tensor into the parameter or buffer of the
    same checkpoint name, in place (the receiving model keeps its storage, as a running engine must)."""

    def __init__(self, model: torch.nn.Module):
        self.targets = {checkpoint_name(k): v for k, v in model.state_dict(keep_vars=True).items()}

    @torch.no_grad()
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        names = set()
        for name, tensor in weights:
            if name not in self.targets:
                raise KeyError(f"weight sync: the rollout model has no weight named {name!r}")
            target = self.targets[name]
            target.data.copy_(tensor.to(device=target.device, dtype=target.dtype))
            names.add(name)
        return names
