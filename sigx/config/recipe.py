"""The whole recipe (``Recipe``: every section), the warnings about valid but unlikely settings, and the
field paths each role names across the recipe (what a factor, a resumed run or a resumed store may change)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from sigx.config.ablation import AblationConfig
from sigx.config.base import Strict, field_names_with_role, role, roles_of
from sigx.config.sections import LoggingConfig, ModelConfig, RolloutConfig, TrainingConfig
from sigx.config.tasks import DEFAULT_TASK, TASK_CONFIGS, ArithmeticTaskConfig, TaskConfig
from sigx.config.techniques import TechniquesConfig


MAX_SEED = 2**63 - 1  # torch.manual_seed's range


class Recipe(Strict):
    """A whole sigx run (or ablation): one YAML file, every section optional."""

    name: str = Field("sigx-run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="names the run store and run directories: letters, digits, _ . -")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="the run's seed: every random stream derives from it",
                      **role("cell_seed"))
    model: ModelConfig = Field(ModelConfig(), description="the policy")
    task: TaskConfig = Field(ArithmeticTaskConfig(), description="prompts, environment and reward (by name: "
                             "one of the registered tasks)")
    rollout: RolloutConfig = Field(RolloutConfig(), description="how trajectories are sampled", **role("per_cell"))
    training: TrainingConfig = Field(TrainingConfig(), description="the GRPO update", **role("per_cell"))
    techniques: TechniquesConfig = Field(default_factory=TechniquesConfig, description="the four techniques (and any "
                                         "registered one), each off by default",
                                         **role("per_cell"))
    ablation: AblationConfig = Field(AblationConfig(), description="what `sigx ablate` runs, and where",
                                     **role("ablation_only"))
    logging: LoggingConfig = Field(LoggingConfig(), description="where runs are written and mirrored",
                                   **role("execution"))

    @model_validator(mode="before")
    @classmethod
    def _default_task_name(cls, data: Any) -> Any:
        # A task section without a name is the default task, as an absent section is.
        if isinstance(data, dict) and isinstance(data.get("task"), dict) and "name" not in data["task"]:
            data = {**data, "task": {"name": DEFAULT_TASK, **data["task"]}}
        return data

    @model_validator(mode="after")
    def _batch_splits(self) -> "Recipe":
        sequences = self.training.prompts_per_step * self.rollout.group_size
        if self.training.mini_batches > sequences:
            raise ValueError(
                f"training.mini_batches ({self.training.mini_batches}) exceeds the sequences per step "
                f"(training.prompts_per_step x rollout.group_size = {sequences})"
            )
        return self


def default_recipe_like(stored: dict) -> dict | None:
    """The default recipe (as plain data) for a stored recipe's task: what a field that an older sigx did not
    write stands for, when a run store or a checkpoint written by it is resumed (fields are added with defaults
    that keep the earlier behaviour)."""
    task = stored.get("task") if isinstance(stored, dict) else None
    name = task.get("name", DEFAULT_TASK) if isinstance(task, dict) else DEFAULT_TASK
    try:
        return Recipe.model_validate({"task": {"name": name}}).model_dump(mode="json")
    except ValidationError:  # a task that needs fields (search_qa): compare without defaults
        return None


def recipe_warnings(recipe: Recipe) -> list[str]:
    """Settings that are valid but probably not what the recipe's author meant: one line each."""
    out = []
    t, techniques = recipe.training, recipe.techniques
    if t.policy_loss == "gspo" and t.loss_aggregation != "seq-mean" and not (techniques.sspo.enabled or
                                                                             techniques.sorl.enabled):
        out.append(f"training.policy_loss: gspo with loss_aggregation {t.loss_aggregation} is not GSPO's objective, "
                   "which averages per sequence (arXiv 2507.18071 Eq. 5); set training.loss_aggregation: seq-mean")
    return out


def _sections_of(field_name: str, annotation: Any) -> list[type[BaseModel]]:
    """The sections (models) a field holds: its own type, a union's members, a task's registered configs."""
    if field_name == "task" and annotation is Any:
        return list(TASK_CONFIGS.values())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in getattr(annotation, "__args__", ()) or () for m in _sections_of("", a)]


def fields_with_role(name: str, model: type[BaseModel] | None = None,
                     prefix: tuple[str, ...] = ()) -> frozenset[tuple[str, ...]]:
    """Every field path (``("training", "steps")``) of the recipe, or of ``model``, that carries role ``name``.
    A section that carries it stands for everything under it."""
    found: set[tuple[str, ...]] = set()
    for field_name, info in (model or Recipe).model_fields.items():
        path = prefix + (field_name,)
        if name in roles_of(info):
            found.add(path)
        for section in _sections_of(field_name, info.annotation):
            found |= fields_with_role(name, section, path)
    return frozenset(found)


#: the sections a field factor may vary: the shared engine (model, task, rollout backend) serves every cell
FACTOR_SECTIONS = field_names_with_role(Recipe, "per_cell")
#: fields that change rounding and memory only (role "layout")
COMPUTE_LAYOUT_FIELDS = fields_with_role("layout")
#: fields a resumed run may change: where it logs, how long it runs, how often it checkpoints, the ablation's
#: settings and the update's layout in memory. Anything else would make the resumed run a different experiment
RESUMABLE_CHANGES = fields_with_role("layout") | fields_with_role("extent") | fields_with_role("execution") \
    | fields_with_role("ablation_only")
#: fields an ablation store may be resumed with changed (where and how its cells run, its seeds and fraction,
#: the update's layout), and the recipe's seed, which each cell replaces with its own
EXECUTION_FIELDS = fields_with_role("layout") | fields_with_role("execution") | fields_with_role("cell_seed")
