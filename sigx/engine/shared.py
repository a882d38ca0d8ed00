"""The shared engine: what is expensive to build is built once and reused by every run that can share it.

Tokenizer, base weights (for ``sigx/tiny``, the SFT warm start) and the rollout backend (on GPU, the vLLM
engine) are loaded once; each run starts by resetting the policy to the base weights held in memory, never
re-reading or re-building them, and pushing them into the rollout engine in place.
Runs may differ in seed, techniques and training knobs, not in model, task or rollout engine settings.
"""

from __future__ import annotations

import copy
import json

import torch

from sigx.config import ENGINE_FIELDS, Recipe
from sigx.engine.backends import build_rollout_backend
from sigx.engine.lora import has_adapters, remove_adapters
from sigx.engine.rollout import SamplingParams
from sigx.engine.trajectory import Trajectory
from sigx.models.loading import load_base
from sigx.models.tiny import warm_start_weights
from sigx.models.tokenizer import misread
from sigx.tasks import build_task


class IncompatibleRecipeError(ValueError):
    pass


def engine_key(recipe: Recipe) -> str:
    rollout = {k: getattr(recipe.rollout, k) for k in ENGINE_FIELDS}
    return json.dumps({"model": recipe.model.model_dump(), "task": recipe.task.model_dump(), "rollout": rollout},
                      sort_keys=True)


class SharedEngine:
    def __init__(self, recipe: Recipe, device: str | None = None, log=print):
        self.key = engine_key(recipe)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.task = build_task(recipe.task)
        self.tokenizer, self.model, self.base_path = load_base(recipe.model, self.task, recipe.task, self.device, log)
        self.base_weights = warm_start_weights(self.base_path)  # which build of a sigx/tiny warm start (else None)
        self._check_tokenizer(log)
        self.base_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.rollout = build_rollout_backend(recipe.rollout, self.model, self.tokenizer, model_path=self.base_path,
                                             seed=recipe.seed)
        self._reference = None

    def _check_tokenizer(self, log) -> None:
        """One warning line when the tokenizer does not read the task's first held-out prompt back as written."""
        problems = self.task.eval_problems()
        if problems and (back := misread(self.tokenizer, problems[0].prompt)) is not None:
            log(f"warning: the tokenizer of {self.base_path} reads the task's prompt {problems[0].prompt!r} back as "
                f"{back!r}: the policy will not see the task's text as written")

    def generate(self, environment, problems: list, groups: list[int], params: SamplingParams,
                 generator: torch.Generator | None = None) -> list[Trajectory]:
        """Episodes of ``environment`` for ``problems`` from the current policy, on the rollout backend, with
        draws from ``generator``: the generate function a technique that samples receives
        (:class:`sigx.engine.hooks.TechniqueContext`)."""
        return self.rollout.rollout(environment, problems, groups, params, self.tokenizer, generator)

    def check_compatible(self, recipe: Recipe) -> None:
        if engine_key(recipe) != self.key:
            raise IncompatibleRecipeError("this engine was built for another model, task or rollout backend")

    def reset_policy(self) -> None:
        """Back to the base weights, in place (the rollout backend keeps pointing at the same model), without the
        adapters a LoRA run added."""
        if has_adapters(self.model):
            remove_adapters(self.model)
        self.model.load_state_dict(self.base_state)
        self.model.zero_grad(set_to_none=True)
        self.rollout.sync_weights(self.model)

    def reference_model(self):
        """A frozen copy of the base policy for the KL term, built on first use."""
        if self._reference is None:
            self._reference = copy.deepcopy(self.model)
            self._reference.load_state_dict(self.base_state)
            self._reference.eval().requires_grad_(False)
        return self._reference
