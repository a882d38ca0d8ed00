"""Expand a recipe's ``ablation`` section into the full 2^k factorial x seeds.

A cell is one training run: the recipe with the factor techniques switched on or off and the seed set. Its id
(``gcrl+sspo/seed1``, ``baseline/seed0``) is built from the cell's resolved recipe, so it is stable across
processes and sessions and readable in W&B and on disk. Techniques that are not factors keep the recipe's
setting in every cell (and therefore appear in every id).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sigx.config import Recipe
from sigx.train import cell_id, cell_name


@dataclass(frozen=True)
class Cell:
    id: str  # "gcrl+sspo/seed1"
    combination: str  # "gcrl+sspo" (or "baseline")
    techniques: tuple[str, ...]  # every technique enabled in this cell, factors and fixed ones
    factors_on: tuple[str, ...]  # the factor techniques switched on
    seed: int
    recipe: Recipe


def cell_recipe(recipe: Recipe, factors_on: tuple[str, ...], seed: int) -> Recipe:
    data = recipe.model_dump()
    data["seed"] = seed
    for name in recipe.ablation.factors:
        data["techniques"][name]["enabled"] = name in factors_on
    return Recipe.model_validate(data)


def expand(recipe: Recipe) -> list[Cell]:
    """All cells, ordered by number of techniques on (baseline first, full stack last), then by seed."""
    factors = recipe.ablation.factors
    combos = [c for k in range(len(factors) + 1) for c in itertools.combinations(factors, k)]
    cells = []
    for combo in combos:
        for seed in recipe.ablation.seeds:
            r = cell_recipe(recipe, combo, seed)
            cells.append(Cell(cell_id(r), cell_name(r), tuple(r.techniques.enabled_names()),
                              tuple(n for n in r.techniques.enabled_names() if n in combo), seed, r))
    return cells
