"""Sequential seeds: ``sigx ablate RECIPE --until-resolved --max-seeds N`` adds whole seed blocks until every
declared gap is resolved or the cap is reached.

Why a boundary. Looking at the gaps after each block and stopping as soon as they look resolved is optional
stopping: tested at the full 5% at every look, the chance of a false call somewhere grows with the number of
looks. So the looks are planned before the first one — at n0 seeds (the recipe's), then every ``step`` more, up to
``max_seeds``: L looks — and the 5% is spent over them, alpha / L at each (Bonferroni spending: valid whatever the
dependence between looks, conservative by design; the report states it). Every test of every report of the store
then uses alpha / L, so the family-wise rates of the report (false synergistic/redundant calls among null gaps,
false additive calls among gaps at the margin) hold under the stopping rule. A simulation test checks it.

The plan is written to the store (``sequential.json``) at the first look and is fixed from then on: a later
invocation with another step or cap is refused, as is planning on a store that already holds seeds past the
recipe's (they would be looks that were not counted). Looks are defined by seed counts, not invocations, so a
killed and resumed ``--until-resolved`` takes the same decisions on the same data.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from sigx.ablation.looks import FILE, SequentialPlan, load_plan
from sigx.ablation.store import StoreError, store_root
from sigx.config import Recipe, RecipeError, recipe_from_data
from sigx.runs import write_json_atomic


def plan_for(recipe: Recipe, step: int, max_seeds: int) -> SequentialPlan:
    """The store's plan, or a new one, checked against what was asked."""
    root = store_root(recipe)
    seeds = list(recipe.ablation.seeds)
    wanted = SequentialPlan(seeds, step, max_seeds)
    existing = load_plan(root)
    if existing is not None:
        if (existing.first_seeds, existing.step, existing.max_seeds) != (seeds, step, max_seeds):
            raise StoreError(f"{root / FILE}: the store's sequential plan is seeds {existing.first_seeds}, step "
                             f"{existing.step}, max {existing.max_seeds}; it was fixed at the first look and cannot "
                             "change (or the error rates would not hold)")
        return existing
    extra = sorted({int(p.name[4:]) for p in root.glob("*/seed*") if p.name[4:].isdigit()} - set(seeds)) \
        if root.is_dir() else []
    if extra:
        raise StoreError(f"{root}: already holds runs of seeds {extra} beyond the recipe's {seeds}: looks that "
                         "were not planned; plan the sequential run on a fresh store")
    write_json_atomic(root / FILE, asdict(wanted))
    return wanted


def with_seeds(recipe: Recipe, seeds: list[int]) -> Recipe:
    data = recipe.model_dump(mode="json")
    data["ablation"]["seeds"] = seeds
    return recipe_from_data(data)


def run_until_resolved(recipe: Recipe, max_seeds: int, step: int | None = None, console: Console | None = None,
                       retry_failed: bool = False):
    """Run the planned looks in order until every declared gap is resolved (or the cap). Returns the last
    look's outcome (an AblationOutcome) and a summary of the looks."""
    from sigx.ablation.runner import run_ablation
    from sigx.report.load import load_ablation
    from sigx.report.stats import build_report

    console = console or Console(stderr=True)
    if recipe.ablation.metric is None:
        raise RecipeError(["ablation.metric: --until-resolved stops on the declared metric; declare it in the "
                           "recipe's ablation section (and its margin) before the first run"])
    step = step or len(recipe.ablation.seeds)
    if max_seeds <= len(recipe.ablation.seeds):
        raise RecipeError([f"--max-seeds: {max_seeds} must exceed the recipe's {len(recipe.ablation.seeds)} seeds"])
    store_root(recipe).mkdir(parents=True, exist_ok=True)
    plan = plan_for(recipe, step, max_seeds)
    console.print(plan.describe(), highlight=False)
    outcome, last = None, {}
    for look, seeds in enumerate(plan.schedule, 1):
        outcome = run_ablation(with_seeds(recipe, seeds), console=console, retry_failed=retry_failed)
        if outcome.count("failed") or outcome.count("pending"):
            last = {"look": look, "seeds": len(seeds), "stopped": "cells failed or pending: the look cannot be "
                    "analysed; rerun (with --retry-failed) to continue"}
            break
        report = build_report(load_ablation(outcome.root))
        verdicts = report.additivity.get("verdict")
        open_gaps = int((verdicts == "inconclusive").sum()) if verdicts is not None else 0
        last = {"look": look, "seeds": len(seeds), "open_gaps": open_gaps,
                "gaps": int(len(verdicts)) if verdicts is not None else 0,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if not any(d.get("seeds") == len(seeds) for d in plan.looks_done):
            plan.looks_done.append(last)
            write_json_atomic(Path(outcome.root) / FILE, asdict(plan))
        console.print(f"look {look}/{plan.looks} at {len(seeds)} seeds: {open_gaps} of {last['gaps']} gap(s) "
                      "unresolved", highlight=False)
        if open_gaps == 0:
            last["stopped"] = "every declared gap resolved"
            break
    else:
        last["stopped"] = f"the cap of {max_seeds} seeds reached"
    return outcome, last
