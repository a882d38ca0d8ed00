"""The four techniques, each one module registered by name (``--enable sspo,gcrl``), plus the module that
composes the two that both replace the ratio (``sorl_sspo``).

Each technique changes the engine only through the hook points of :mod:`sigx.engine.hooks`, where the
registry lives. Importing this package registers them; :func:`build` makes a recipe's enabled techniques for
a run on a shared engine, handing each only what it needs (its section, the task, a
:class:`~sigx.engine.hooks.TechniqueContext` with the engine's generate function).
"""

from __future__ import annotations

from sigx.config import TECHNIQUE_ORDER, Recipe, TrainingConfig, technique_order
from sigx.engine.hooks import TECHNIQUES, Technique, TechniqueContext, TechniqueError
from sigx.engine.losses import BoundPolicyLoss, bind_policy_loss, policy_loss_spec
from sigx.engine.rollout import SamplingParams
from sigx.techniques import gcrl, search_p1, sorl, sorl_sspo, sspo  # noqa: F401  (registration)

__all__ = ["TECHNIQUE_ORDER", "TECHNIQUES", "Technique", "TechniqueContext", "TechniqueError", "build", "context",
           "policy_loss_with_defaults"]


def context(recipe: Recipe, generate=None, device: str = "cpu") -> TechniqueContext:
    """What a technique may know of the run besides its own section and the task."""
    r = recipe.rollout
    return TechniqueContext(seed=recipe.seed, group_size=r.group_size, device=device,
                            sampling=SamplingParams(r.max_new_tokens, r.temperature, r.top_p), generate=generate)


def build(recipe: Recipe, engine=None) -> list[Technique]:
    """The recipe's enabled techniques for a run on ``engine`` (a :class:`sigx.engine.shared.SharedEngine`;
    None builds them without a task or generate function, for techniques that need neither), in
    ``technique_order()``. The one builder: the registry it reads lives in :mod:`sigx.engine.hooks`."""
    made = context(recipe) if engine is None else context(recipe, engine.generate, engine.device)
    built = []
    for name in recipe.techniques.enabled_names():
        if name not in TECHNIQUES:
            raise TechniqueError(f"techniques.{name}: not implemented; implemented: {', '.join(TECHNIQUES) or 'none'}")
        built.append(TECHNIQUES[name](getattr(recipe.techniques, name), engine.task if engine else None, made))
    return sorted(built, key=lambda t: technique_order().index(t.name))


def policy_loss_with_defaults(name: str, training: TrainingConfig | None = None, **sections) -> BoundPolicyLoss:
    """Any registered loss bound as a run would bind it, with default settings unless given: the ``training``
    section for the engine's losses, each claiming technique's section (by technique name) for the others."""
    if policy_loss_spec(name).training_settings is not None:
        return bind_policy_loss(name, training=training or TrainingConfig())
    claimants = [cls for cls in TECHNIQUES.values() if cls.policy_loss in name.split("+")]
    settings = {cls.name: sections.get(cls.name) or cls.config_class() for cls in claimants}
    return bind_policy_loss(name, next(iter(settings.values())) if len(settings) == 1 else settings)
