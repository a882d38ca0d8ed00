"""The planned looks of a sequential ablation (``sigx ablate --until-resolved`` or ``--until-mde``): the store's
``sequential.json``, and the level every test of the store's report uses under it (see
:mod:`sigx.ablation.sequential` for why the two rules differ)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from sigx.ablation.store import StoreError
from sigx.runs import read_json

FILE = "sequential.json"
ALPHA = 0.05
#: the stopping rules: "resolved" stops when no declared gap is inconclusive, "mde" when every main effect's MDE
#: is at most ``target_mde``; both spend alpha over the planned looks (sigx.ablation.sequential says why)
RULES = ("resolved", "mde")
#: the most seeds per cell a sequential plan may reach (thousands of runs a cell: far past any budget)
MAX_SEEDS = 10_000


@dataclass
class SequentialPlan:
    first_seeds: list[int]
    step: int
    max_seeds: int
    alpha: float = ALPHA
    looks_done: list[dict] = field(default_factory=list)
    rule: str = "resolved"
    target_mde: float | None = None

    @property
    def schedule(self) -> list[list[int]]:
        """The seeds of each look: the recipe's, then ``step`` new ones at a time (the next unused integers)."""
        seeds, out = list(self.first_seeds), [list(self.first_seeds)]
        candidate = max(seeds) + 1
        while len(seeds) < self.max_seeds:
            for _ in range(min(self.step, self.max_seeds - len(seeds))):
                while candidate in seeds:
                    candidate += 1
                seeds.append(candidate)
            out.append(list(seeds))
        return out

    @property
    def looks(self) -> int:
        return len(self.schedule)

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / self.looks

    @property
    def until(self) -> str:
        """The stopping rule in words (the report's line and the store's refusals both say it this way)."""
        return (f"until every main effect's MDE <= {self.target_mde:g}" if self.rule == "mde"
                else "until every declared gap is resolved")

    def describe(self) -> str:
        sizes = ", ".join(str(len(s)) for s in self.schedule)
        return (f"sequential seeds: {self.looks} planned look(s) at {sizes} seeds per cell, {self.until}, each tested "
                f"at {self.alpha:g} / {self.looks} = {self.alpha_per_look:.4g} (Bonferroni alpha spending)")


class _Look(BaseModel):
    """A look done, as ``sequential.json`` records it: which look, at how many seeds (and what it found)."""

    model_config = ConfigDict(extra="allow")
    look: StrictInt = Field(ge=1)
    seeds: StrictInt = Field(ge=1)


class _PlanFile(BaseModel):
    """``sequential.json``'s fields and what each may hold: a damaged or hand-edited file is one line naming the
    field, not a traceback from the arithmetic of the looks."""

    model_config = ConfigDict(extra="forbid")
    first_seeds: list[Annotated[StrictInt, Field(ge=0)]] = Field(min_length=1)
    step: StrictInt = Field(ge=1)
    max_seeds: StrictInt = Field(ge=1, le=MAX_SEEDS)
    alpha: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = ALPHA
    looks_done: list[_Look] = []
    rule: str = "resolved"
    target_mde: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None


def load_plan(root: Path) -> SequentialPlan | None:
    data = read_json(root / FILE)
    if data is None:
        return None
    try:
        checked = _PlanFile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise StoreError(f"{root / FILE}: not a sigx sequential plan ({where}: {first['msg']}); restore it from the "
                         "archive or version control") from None
    plan = SequentialPlan(**checked.model_dump())
    if len(set(plan.first_seeds)) != len(plan.first_seeds) or plan.max_seeds < len(plan.first_seeds):
        raise StoreError(f"{root / FILE}: not a sigx sequential plan (first_seeds {plan.first_seeds} repeat a seed "
                         f"or exceed max_seeds {plan.max_seeds})")
    if plan.rule not in RULES or (plan.rule == "mde") != (plan.target_mde is not None):
        raise StoreError(f"{root / FILE}: not a sigx sequential plan (rule {plan.rule!r}, target_mde "
                         f"{plan.target_mde!r}; rules: {', '.join(RULES)}, an MDE target with 'mde' only)")
    return plan


def look_alpha(root: Path, alpha: float = ALPHA) -> tuple[float, str | None]:
    """The level every test of a store's report uses, and the line that says why (None without a plan)."""
    plan = load_plan(root)
    if plan is None:
        return alpha, None
    done = len(plan.looks_done)
    return plan.alpha_per_look, plan.describe() + f"; {done} look(s) done"

