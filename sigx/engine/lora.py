"""LoRA adapters on the policy, through peft, for one run on the shared engine.

Why in place (peft's ``inject_adapter_in_model``) rather than a ``PeftModel`` wrapper: the shared engine's model
object is what the rollout backend samples from and what every later run resets, so a run adds its adapters to
that object and takes them off again when the engine resets for the next run; nothing else holds a second
model. The base weights are frozen while adapters are on, and:

- the KL reference is the same model with its adapters switched off (``adapters_off``): no second copy;
- a separate rollout engine (``hf_synced``, vLLM) receives merged weights, W + scale * B A, under the base
  model's own names (``merged_weights``), since it knows nothing of adapters;
- a checkpoint holds the adapters and the optimizer state of their parameters only (``adapter_state``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from sigx.config import LoRAConfig, RecipeError
from sigx.engine.distributed import whole_tensor

ADAPTER = "default"  # peft's name for the one adapter a run adds


def _tuner_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, module) for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


def has_adapters(model: torch.nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def add_adapters(model: torch.nn.Module, config: LoRAConfig, seed: int) -> list[torch.nn.Parameter]:
    """Adapters of rank ``config.r`` on ``config.target_modules`` of ``model`` (in place), their initial A drawn
    from a generator seeded by ``seed`` (B starts at zero, so the adapted policy starts as the base policy). The
    base weights are frozen; returns the adapters' parameters, the only ones trained."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules)
    with torch.random.fork_rng(devices=[]):  # the run's own random streams are untouched
        torch.manual_seed(seed)
        try:
            inject_adapter_in_model(LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                               target_modules=targets, bias="none"), model)
        except ValueError:  # peft's no-match error (a ValueError in every version): its words name its own
            if _tuner_layers(model):  # arguments, not the recipe's field; anything else is not that
                raise
    if not _tuner_layers(model):
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                         if isinstance(module, torch.nn.Linear)} - {"lm_head"})
        raise RecipeError([f"training.lora.target_modules: {config.target_modules!r} matches no layer of the "
                           f"model; allowed: all-linear, or some of its linear layers ({', '.join(linear)})"])
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return [p for name, p in model.named_parameters() if "lora_" in name]


def remove_adapters(model: torch.nn.Module) -> None:
    """Each adapted layer back to its base layer (unmerged: the base weights are what they were), and every
    weight trainable again: the model is as ``add_adapters`` found it."""
    for name, module in _tuner_layers(model):
        owner, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(owner) if owner else model, leaf, module.get_base_layer())
    model.requires_grad_(True)


@contextmanager
def adapters_off(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Inside, ``model`` computes the base policy (the KL reference): its adapters are bypassed."""
    layers = [module for _, module in _tuner_layers(model)]
    for module in layers:
        module.enable_adapters(False)
    try:
        yield model
    finally:
        for module in layers:
            module.enable_adapters(True)


class AdaptersOff(torch.nn.Module):
    """The base policy as a model of its own (what the trainer's reference is): ``model`` with its adapters off
    for the duration of each call, sharing every weight."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.__dict__["policy"] = model  # not a submodule: its parameters are not this module's

    @property
    def device(self) -> torch.device:
        return self.policy.device

    def forward(self, *args, **kwargs):
        with adapters_off(self.policy), torch.no_grad():
            return self.policy(*args, **kwargs)


def merged_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The state dict of the adapted policy as the base model names it, each adapted weight merged
    (W + scale * B A), the adapters' own tensors left out: what a rollout engine without adapters loads."""
    layers = dict(_tuner_layers(model))
    for name, tensor in model.state_dict().items():
        if "lora_" in name:
            continue
        owner, _, leaf = name.rpartition(".")
        if owner.endswith(".base_layer") and owner[: -len(".base_layer")] in layers:
            layer = layers[owner[: -len(".base_layer")]]
            plain = f"{owner[: -len('.base_layer')]}.{leaf}"
            tensor = whole_tensor(tensor)
            if leaf == "weight" and not layer.disable_adapters:
                tensor = tensor + _delta_weight(layer).to(tensor.dtype)
            yield plain, tensor.detach()
        else:
            yield name, whole_tensor(tensor).detach()


def _delta_weight(layer) -> torch.Tensor:
    """scale * B A of a peft Linear layer; its adapters gathered whole first in a sharded run (peft's own
    ``get_delta_weight`` does not take FSDP2's sharded tensors)."""
    a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight
    if a is whole_tensor(a) and b is whole_tensor(b):
        return layer.get_delta_weight(ADAPTER)
    return (whole_tensor(b) @ whole_tensor(a)) * layer.scaling[ADAPTER]


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' tensors: what a checkpoint of a LoRA run holds of the model."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


def merge_full_state(state: dict[str, torch.Tensor], config: LoRAConfig) -> dict[str, torch.Tensor]:
    """A whole (gathered) state dict of an adapted model, merged as ``merged_weights`` merges a live one:
    W + (alpha / r) B A under the base names, the adapters' tensors left out."""
    scale = config.alpha / config.r
    out = {}
    for name, tensor in state.items():
        if "lora_" in name:
            continue
        if ".base_layer." in name:
            owner, leaf = name.split(".base_layer.")
            if leaf == "weight" and f"{owner}.lora_A.{ADAPTER}.weight" in state:
                a, b = state[f"{owner}.lora_A.{ADAPTER}.weight"], state[f"{owner}.lora_B.{ADAPTER}.weight"]
                tensor = tensor + (scale * (b.float() @ a.float())).to(tensor.dtype)
            name = f"{owner}.{leaf}"
        out[name] = tensor
    return out
