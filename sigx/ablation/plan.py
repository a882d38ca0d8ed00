"""Expand a recipe's ``ablation`` section into its cells: the 2^k factorial (or a 2^(k-p) fraction) x seeds.

A factor is a technique (off / on) or a recipe field at two levels (reference / treatment). A cell is one
training run: the recipe with every factor at its level and the seed set. Its id (``gcrl+sspo/seed1``,
``sspo+staleness=4/seed0``, ``baseline/seed0``) names the techniques on and the field factors at their
treatment level, so it is stable across processes and sessions and readable in W&B and on disk. Techniques that
are not factors keep the recipe's setting in every cell (and therefore appear in every id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sigx.design import Design, make_design
from sigx.config import (MAX_COMBINATION, FieldFactor, Recipe, RecipeError, level_label, set_path,
                         technique_order)


@dataclass(frozen=True)
class Factor:
    name: str  # "sspo", "staleness": the label in tables and formulas' output
    kind: str  # "technique" | "field"
    role: str  # "technique" | "regime" | "control"
    path: tuple[str, ...]  # ("techniques", "sspo", "enabled") or ("rollout", "staleness")
    levels: tuple[Any, Any]  # (reference, treatment)

    @property
    def on_label(self) -> str:
        """How the factor at its treatment level appears in a cell's name."""
        return self.name if self.kind == "technique" else f"{self.name}={level_label(self.levels[1])}"

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "role": self.role, "path": ".".join(self.path),
                "levels": list(self.levels), "on_label": self.on_label}


def factors_of(recipe: Recipe) -> list[Factor]:
    """The recipe's factors, named by the last part of a field's path (the whole path where that is ambiguous)."""
    entries = recipe.ablation.factors
    last = [e.field.rsplit(".", 1)[-1] for e in entries if isinstance(e, FieldFactor)]
    out = []
    for e in entries:
        if isinstance(e, str):
            out.append(Factor(e, "technique", "technique", ("techniques", e, "enabled"), (False, True)))
        else:
            short = e.field.rsplit(".", 1)[-1]
            name = short if last.count(short) == 1 and short not in technique_order() else e.field
            out.append(Factor(name, "field", e.role, tuple(e.field.split(".")), tuple(e.levels)))
    return out


@dataclass(frozen=True)
class Cell:
    id: str  # "gcrl+sspo/seed1"
    combination: str  # "gcrl+sspo" (or "baseline")
    techniques: tuple[str, ...]  # every technique enabled in this cell, factors and fixed ones
    factors_on: tuple[str, ...]  # the factors at their treatment level (names)
    seed: int
    recipe: Recipe


def cell_recipe(recipe: Recipe, factors: list[Factor], on: tuple[str, ...], seed: int) -> Recipe:
    data = json.loads(json.dumps(recipe.model_dump(mode="json")))
    data["seed"] = seed
    for f in factors:
        set_path(data, list(f.path), f.levels[1] if f.name in on else f.levels[0])
    return Recipe.model_validate(data)


def cell_id(combination: str, seed: int) -> str:
    """A cell's id, ``<combination>/seed<k>``: its directory in the store and its W&B name."""
    return f"{combination}/seed{seed}"


def combination_of(cell: str) -> str:
    """The combination part of a cell id (launchers hand cells on by id)."""
    return cell.rsplit("/seed", 1)[0]


def combination_name(recipe: Recipe, factors: list[Factor], on: tuple[str, ...]) -> str:
    """Techniques enabled (in the loop's order), then field factors at their treatment level."""
    fields = [f.on_label for f in factors if f.kind == "field" and f.name in on]
    return "+".join(recipe.techniques.enabled_names() + fields) or "baseline"


def crossed(factors: list[Factor]) -> list[Factor]:
    """The factors of the factorial design: all but the positive controls, which are crossed with the baseline
    only (their treatment level gets one extra cell per seed, every other factor at its reference)."""
    return [f for f in factors if f.role != "control"]


def design_of(recipe: Recipe) -> Design:
    return make_design(len(crossed(factors_of(recipe))), recipe.ablation.fraction)


def expand(recipe: Recipe) -> list[Cell]:
    """All cells: the design's (baseline first, then by number of factors on), then one cell per positive
    control; each for every seed."""
    factors = factors_of(recipe)
    design_factors = crossed(factors)
    points = sorted(design_of(recipe).points, key=lambda p: (sum(p), [-x for x in p]))
    combos = [tuple(f.name for f, level in zip(design_factors, point) if level) for point in points]
    combos += [(f.name,) for f in factors if f.role == "control"]
    cells = []
    for on in combos:
        for seed in recipe.ablation.seeds:
            r = cell_recipe(recipe, factors, on, seed)
            name = combination_name(r, factors, on)
            if len(name.encode()) > MAX_COMBINATION:
                raise RecipeError([f"ablation.factors: the cell name {name[:60]}... is {len(name.encode())} bytes, "
                                   f"at most {MAX_COMBINATION} allowed (it names a directory); use shorter levels "
                                   "or fewer field factors"])
            cells.append(Cell(cell_id(name, seed), name, tuple(r.techniques.enabled_names()), on, seed, r))
    return cells


def undeclarable_metric(recipe: Recipe, cells: list[Cell]) -> str | None:
    """Why ``ablation.metric`` is a number no run of these cells writes, or None. It is declared before any run,
    so a typo (``reward_acu``) must stop the ablation now: found by the report, after the runs, it would leave
    only a metric chosen at report time. A run writes the engine's summary numbers and those of each technique
    on in one of its cells (``summary_metrics``); the report derives ``tokens_per_s``."""
    metric = recipe.ablation.metric
    if metric is None:
        return None
    from sigx.engine.metrics import SUMMARY_METRICS
    from sigx.report.metrics import METRICS
    from sigx.techniques import TECHNIQUES

    on = {name for cell in cells for name in cell.techniques}
    own = {m: name for name, cls in TECHNIQUES.items() if name in on for m in cls.summary_metrics}
    elsewhere = [name for name, cls in TECHNIQUES.items() if metric in cls.summary_metrics]
    # the report's table names the numbers it derives from metrics.jsonl (tokens_per_s) beside summary keys
    derived = [m for m in METRICS if m not in SUMMARY_METRICS
               and not any(m in cls.summary_metrics for cls in TECHNIQUES.values())]
    if metric in SUMMARY_METRICS or metric in derived or metric in own:
        return None
    why = (f"only {' and '.join(elsewhere)} write{'s' if len(elsewhere) == 1 else ''} it, and no cell runs "
           f"{'it' if len(elsewhere) == 1 else 'them'}" if elsewhere else "no run writes it")
    allowed = [*SUMMARY_METRICS, *derived, *(f"{m} ({name})" for m, name in own.items())]
    return f"ablation.metric: {metric!r}: {why}; declare one of {', '.join(allowed)}"
