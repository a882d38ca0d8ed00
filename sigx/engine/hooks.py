"""The engine's hook points, the technique registry and the resolution of the policy loss in force.

A technique changes a GRPO step only through these hooks. One GRPO step runs these stages, in order; a
technique overrides only the hooks of its stage, and the engine calls the hooks of every enabled technique in
``TECHNIQUE_ORDER`` (the order of the recipe's ``techniques`` section, which follows the loop; a technique
registered from outside sigx comes after the built-in four, in registration order)::

    rollout ──► expand_rollouts ──► outcome reward ──► shape_rewards ──► advantages ──► adjust_advantages
            ──► policy loss (``policy_loss`` names a registered loss: IS ratio and trust region)
            ──► optimizer step

``expand_rollouts``  add trajectories of a new kind (GC-RL's critiques), scored by the technique itself.
``shape_rewards``    rewrite ``trajectory.reward`` from the outcome and the transcript (Search-P1).
``adjust_advantages``change advantages after group normalisation.
``policy_loss``      the name of a registered loss (:mod:`sigx.engine.losses`) this technique needs (SSPO,
                     SORL); it is bound to the technique's own section. At most one loss is in force, so
                     techniques that both reshape the ratio need a composed loss registered under their loss
                     names joined by "+" in sorted order (``sorl+sspo``), bound to ``{technique: section}``.
``metrics``          diagnostics logged each step under ``<technique>/``.
``summary``          entries a technique adds to the run's ``summary.json``, from its own metrics' history
                     (its rows, without the ``<technique>/`` prefix).
``summary_metrics`` (a class attribute) the numeric keys ``summary`` writes: an ablation may declare one of them
                     as its metric (``ablation.metric``), and ``sigx ablate`` refuses a metric no run would write.
``room``             (a class attribute) measures of whether the technique has room to act in a run,
                     :class:`~sigx.engine.metrics.Room` entries over its own metrics: each run writes them into
                     its summary, where ``sigx report``'s room table reads them.
``state_dict`` / ``load_state_dict``
                     whatever the technique carries from one step to the next (an RNG, GC-RL's data cache),
                     saved in the run's checkpoint so that a resumed run continues exactly.

A technique receives what it needs and nothing more: its own recipe section, the task, and a
:class:`TechniqueContext` (the run's seed, the rollout's group size and sampling settings, and a ``generate``
function for techniques that sample, such as GC-RL's critiques). It never sees the engine or the recipe.

The engine defines this module and never imports a technique; the caller builds the enabled techniques
(:func:`sigx.techniques.build`: importing :mod:`sigx.techniques` registers its modules) and
hands them to the trainer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

import torch

from sigx.config import TechniqueConfig, TrainingConfig, register_technique_config
from sigx.engine.losses import BoundPolicyLoss, bind_policy_loss, policy_loss_spec
from sigx.engine.metrics import Room
from sigx.engine.rollout import Environment, SamplingParams

if TYPE_CHECKING:
    from sigx.engine.trajectory import Trajectory
    from sigx.tasks.base import Problem



#: generate(environment, problems, group ids, sampling, generator) -> one trajectory per problem, from the
#: policy the step samples from, every random draw from ``generator`` (the technique's own stream)
GenerateFn = Callable[[Environment, list["Problem"], list[int], SamplingParams, "torch.Generator | None"],
                      list["Trajectory"]]


@dataclass(frozen=True)
class TechniqueContext:
    seed: int = 0
    group_size: int = 8  # the rollout's samples per prompt (GC-RL's default critiques per pair)
    sampling: SamplingParams = SamplingParams(max_new_tokens=48)  # the rollout's settings (critiques reuse them)
    generate: GenerateFn | None = None
    device: str = "cpu"  # where a technique's random generator must live to drive ``generate``

    def generator(self, stream: str) -> torch.Generator:
        """A torch generator of the technique's own, seeded from the run's seed and ``stream``: switching one
        technique on never shifts the random draws of the rollout or of another technique."""
        return torch.Generator(device=self.device).manual_seed(stream_seed(self.seed, stream))


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the random stream ``stream`` of a run with ``seed``: independent streams per consumer."""
    digest = hashlib.blake2b(f"{seed}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class TechniqueError(ValueError):
    pass


class Technique:
    name: ClassVar[str] = ""
    config_class: ClassVar[type[TechniqueConfig]] = TechniqueConfig
    policy_loss: ClassVar[str | None] = None
    room: ClassVar[dict[str, Room]] = {}
    summary_metrics: ClassVar[tuple[str, ...]] = ()
    #: what the technique needs of a task beyond sigx.tasks.base.Task: a Protocol declared beside the technique,
    #: checked when it is built, so that a task that never meets the technique need not implement its methods
    task_protocol: ClassVar[type | None] = None

    def __init__(self, config: TechniqueConfig, task, context: TechniqueContext | None = None):
        self.config = config
        self.task = task
        self.context = context or TechniqueContext()
        missing = missing_methods(task, self.task_protocol) if task is not None else []
        if missing:
            raise TechniqueError(f"techniques.{self.name}: task {getattr(task, 'name', type(task).__name__)!r} "
                                 f"lacks {', '.join(missing)}, which {self.name} needs of a task "
                                 f"({self.task_protocol.__name__} in {type(self).__module__})")

    def expand_rollouts(self, trajectories: list["Trajectory"], next_group: int) -> list["Trajectory"]:
        return []

    def shape_rewards(self, trajectories: list["Trajectory"]) -> None:
        return None

    def adjust_advantages(self, trajectories: list["Trajectory"], advantages: torch.Tensor) -> torch.Tensor:
        return advantages

    def metrics(self, trajectories: list["Trajectory"]) -> dict[str, float]:
        return {}

    def summary(self, history: list[dict]) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


def missing_methods(obj, protocol: type | None) -> list[str]:
    """The methods ``protocol`` declares that ``obj`` does not have."""
    if protocol is None:
        return []
    declared = [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
    return [n for n in declared if not callable(getattr(obj, n, None))]


# ------------------------------------------------------------------------------------------------ registry
TECHNIQUES: dict[str, type[Technique]] = {}


def register_technique(cls: type[Technique]) -> type[Technique]:
    """Class decorator: make ``cls`` available by its ``name`` (a section of the recipe's ``techniques``)."""
    if cls.name in TECHNIQUES:
        raise ValueError(f"technique {cls.name!r} is registered twice")
    register_technique_config(cls.name, cls.config_class)
    TECHNIQUES[cls.name] = cls
    return cls


def resolve_policy_loss(techniques: list[Technique], training: TrainingConfig) -> BoundPolicyLoss:
    """The one policy loss in force, with its settings bound: ``training.policy_loss`` unless a technique claims
    the loss (bound to that technique's section), or a registered composition of the claims (bound to
    ``{technique: section}``) when two techniques do."""
    claimants = [t for t in techniques if t.policy_loss]
    if not claimants:
        return bind_policy_loss(training.policy_loss, training=training)
    if len(claimants) == 1:
        return bind_policy_loss(claimants[0].policy_loss, claimants[0].config)
    composed = "+".join(sorted(t.policy_loss for t in claimants))
    try:
        policy_loss_spec(composed)
    except ValueError:
        raise TechniqueError(f"techniques {', '.join(t.name for t in claimants)} all replace the policy loss and "
                             f"no composition {composed!r} is registered") from None
    return bind_policy_loss(composed, {t.name: t.config for t in claimants})
