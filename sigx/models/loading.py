"""Resolve a recipe's ``model`` section to a base checkpoint directory and load tokenizer and policy."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging

from sigx.config import ModelConfig, RecipeError
from sigx.models.tokenizer import load_tokenizer

hf_logging.disable_progress_bar()  # sigx draws its own progress; per-shard bars only add noise

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: what loading a checkpoint raises when its files cannot be used: safetensors' own error for a truncated
#: weights file (not an OSError), pickle's and torch's for a damaged .bin, RuntimeError for memory too
UNLOADABLE = (OSError, ValueError, RuntimeError, SafetensorError, pickle.UnpicklingError)


def resolve_base(model_config: ModelConfig, task, task_config, log=print) -> str:
    if model_config.name != "sigx/tiny":
        return model_config.name
    from sigx.models.tiny import ensure_tiny_base

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return str(ensure_tiny_base(model_config.tiny, task, task_config, log))
    # In a process group (sigx train --nproc), transformers writes a model only from process 0: process 0 builds
    # the warm start (if it is not cached) before the others read it.
    if torch.distributed.get_rank() == 0:
        path = ensure_tiny_base(model_config.tiny, task, task_config, log)
        torch.distributed.barrier()
        return str(path)
    torch.distributed.barrier()
    return str(ensure_tiny_base(model_config.tiny, task, task_config, log))


def local_path_problem(name: str) -> str | None:
    """Why a model name that is a path on this machine is no saved model (None when it may be one, or is no path).

    Why here: transformers reports a directory without a model by the first of the loaders that gave up (a
    tokenizer it could not instantiate), which names neither the path nor what it lacks."""
    path = Path(name).expanduser()
    if path.is_file():
        return "a file, not a model directory"
    if path.is_dir() and not (path / "config.json").is_file():
        return "a directory without config.json, not a saved model"
    return None


def load_base(model_config: ModelConfig, task, task_config, device: str = "cpu", log=print):
    """(tokenizer, model, base path). The tokenizer pads on the left, as batched generation needs."""
    path = resolve_base(model_config, task, task_config, log)
    not_a_model = local_path_problem(path)
    if not_a_model:
        raise RecipeError([f"model.name: cannot load {path!r}: {not_a_model}; name a model directory (what "
                           "save_pretrained writes: config.json, weights, tokenizer) or a hub id in the local cache"])
    try:
        tokenizer = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[model_config.dtype]).to(device)
    except UNLOADABLE as err:  # a damaged or foreign checkpoint, a truncated weights file, no memory for it
        first_line = " ".join(str(err).split()) or type(err).__name__  # all of it, on one line (fail shortens)
        fix = (f"; the cached warm start is damaged: remove {path} and sigx builds it again"
               if model_config.name == "sigx/tiny" else "")
        raise RecipeError([f"model.name: cannot load {path!r}: {first_line}{fix}"]) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    disable_dropout(model)
    if model_config.gradient_checkpointing:  # transformers >= 5.x renamed it; older versions have only the old name
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    return tokenizer, model, path


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout off for good, as TRL's ``disable_dropout``: the importance ratio must compare the same function
    twice, and the policy must still be trained in train mode, because transformers only checkpoints
    activations (``gradient_checkpointing``) in train mode; eval mode would silently turn checkpointing off."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
    for key in ("attention_dropout", "hidden_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop"):
        if isinstance(getattr(model.config, key, None), float):
            setattr(model.config, key, 0.0)
