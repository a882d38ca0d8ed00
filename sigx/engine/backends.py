"""Rollout backends by name: the registry behind ``rollout.backend``, used by the shared engine.

Each backend is built by a factory registered here, so a new backend is one decorated function, not another
branch. The factory gets the loaded policy and tokenizer, the recipe's ``rollout`` section, the base
checkpoint's path (an engine that loads its own copy of the weights, as vLLM does) and the seed.
"""

from __future__ import annotations

from typing import Callable

from sigx.config import ROLLOUT_BACKEND_NAMES, RecipeError, RolloutConfig
from sigx.engine.rollout import (ROLLOUT_DTYPES, HFRolloutBackend, RolloutBackend, SyncedHFRolloutBackend,
                                 use_chat_template)

BackendFactory = Callable[..., RolloutBackend]
ROLLOUT_BACKENDS: dict[str, BackendFactory] = {}


def register_rollout_backend(name: str):
    """Decorator: register ``factory(model, tokenizer, rollout section, model_path, seed) -> RolloutBackend`` under
    ``name``; from then on ``rollout.backend: <name>`` is a valid recipe field."""
    def wrap(factory: BackendFactory) -> BackendFactory:
        if name in ROLLOUT_BACKENDS:
            raise ValueError(f"rollout backend {name!r} is registered twice")
        ROLLOUT_BACKEND_NAMES.register(name)
        ROLLOUT_BACKENDS[name] = factory
        return factory

    return wrap


@register_rollout_backend("hf")
def _hf(model, tokenizer, config: RolloutConfig, model_path: str | None, seed: int) -> RolloutBackend:
    """Samples from the training model itself (CPU default): nothing to sync. With ``decoder: static`` the
    decode runs at fixed shapes under autocast in ``rollout.dtype`` (bf16 on a GPU), compiled with ``compile``."""
    return HFRolloutBackend(model, tokenizer, config.decoder, config.compile, ROLLOUT_DTYPES.get(config.dtype))


@register_rollout_backend("hf_synced")
def _hf_synced(model, tokenizer, config: RolloutConfig, model_path: str | None, seed: int) -> RolloutBackend:
    """A separate transformers copy kept current by the in-place weight push (vLLM's situation, on CPU)."""
    return SyncedHFRolloutBackend(model, tokenizer, ROLLOUT_DTYPES.get(config.dtype), config.decoder, config.compile)


@register_rollout_backend("vllm")
def _vllm(model, tokenizer, config: RolloutConfig, model_path: str | None, seed: int) -> RolloutBackend:
    """The colocated vLLM engine (GPU). Imported here, on use: vllm is an optional, heavy dependency."""
    from sigx.engine.vllm_backend import VLLMRolloutBackend

    return VLLMRolloutBackend(model_path, tokenizer, config, seed=seed)


def build_rollout_backend(config: RolloutConfig, model, tokenizer, model_path: str | None = None,
                          seed: int = 0) -> RolloutBackend:
    if config.backend not in ROLLOUT_BACKENDS:
        raise RecipeError([f"rollout.backend: unknown backend {config.backend!r}; allowed: {', '.join(ROLLOUT_BACKENDS)}"])
    backend = ROLLOUT_BACKENDS[config.backend](model, tokenizer, config, model_path, seed)
    backend.chat_template = use_chat_template(config.chat_template, tokenizer)
    backend.seeding = config.seeding
    return backend
