"""Resolve a recipe's ``model`` section to a base checkpoint directory and load tokenizer and policy."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from sigx.config import ModelConfig, RecipeError

hf_logging.disable_progress_bar()  # sigx draws its own progress; per-shard bars only add noise

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_base(model_config: ModelConfig, task, task_config, log=print) -> str:
    if model_config.name == "sigx/tiny":
        from sigx.models.tiny import ensure_tiny_base

        return str(ensure_tiny_base(model_config.tiny, task, task_config, log))
    return model_config.name


def load_base(model_config: ModelConfig, task, task_config, device: str = "cpu", log=print):
    """(tokenizer, model, base path). The tokenizer pads on the left, as batched generation needs."""
    path = resolve_base(model_config, task, task_config, log)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[model_config.dtype]).to(device)
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RecipeError([f"model.name: cannot load {path!r}: {first_line}"]) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model_config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return tokenizer, model, path
