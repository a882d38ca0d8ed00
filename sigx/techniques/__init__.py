"""Technique registry: ``--enable sspo,gcrl`` picks plug-ins by these names.

Each technique lives in one module of this package and changes the engine only through the hook points of
:mod:`sigx.engine.hooks`. Hooks run in ``TECHNIQUE_ORDER``, which follows the GRPO loop: reward density
(Search-P1) and reward dimension (GC-RL) before signal transmission (SSPO, SORL).
"""

from __future__ import annotations

from sigx.engine.hooks import Technique

TECHNIQUE_ORDER = ("search_p1", "gcrl", "sspo", "sorl")
TECHNIQUES: dict[str, type[Technique]] = {}


class TechniqueError(ValueError):
    pass


def register_technique(cls: type[Technique]) -> type[Technique]:
    TECHNIQUES[cls.name] = cls
    return cls


def build_techniques(recipe, task, engine=None) -> list[Technique]:
    built = []
    for name in recipe.techniques.enabled_names():
        if name not in TECHNIQUES:
            raise TechniqueError(f"techniques.{name}: not implemented yet; implemented: {', '.join(TECHNIQUES) or 'none'}")
        built.append(TECHNIQUES[name](getattr(recipe.techniques, name), task, engine, recipe))
    return sorted(built, key=lambda t: TECHNIQUE_ORDER.index(t.name))


def resolve_policy_loss(techniques: list[Technique], default: str) -> str:
    """The one policy loss in force: the default unless a technique (or a composition) claims it."""
    claims = sorted({t.policy_loss for t in techniques if t.policy_loss})
    if not claims:
        return default
    if len(claims) == 1:
        return claims[0]
    composed = "+".join(claims)
    from sigx.engine.losses import POLICY_LOSSES

    if composed not in POLICY_LOSSES:
        raise TechniqueError(f"techniques {', '.join(claims)} both replace the policy loss and no composition is defined")
    return composed


# Importing the modules registers the techniques (and the policy losses they bring).
from sigx.techniques import gcrl, search_p1, sorl, sspo  # noqa: E402,F401
