"""Sequential seeds: ``sigx ablate RECIPE --until-resolved --max-seeds N`` adds whole seed blocks until every
declared gap is resolved or the cap is reached; ``--until-mde D --max-seeds N`` adds them until every main effect
can be detected at size D (its MDE <= D) or the cap is reached.

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

Why ``--until-mde`` spends alpha too. Its rule reads only the main effects' MDEs: the residual standard deviation
times constants of the design. In a normal linear model that standard deviation is independent of every estimated
effect, which makes stopping on it look free; it is not, because every t statistic divides by it: the rule stops
early exactly when the standard deviation came out small, which is when the t statistics came out large (the
inflation of the unblinded internal pilot; Wittes & Brittain 1990, Kieser & Friede 2000). Simulated for a
factorial with seed blocks and Holm over its terms, stopping at the first look with every MDE under a target set
at the median MDE of the second look, at 5% without spending: 5.7-6.3% false family calls with 3-28 residual
degrees of freedom at the first look, 5.1-5.3% with 60-112 (fixed-size designs: 3.9-4.9%). So it spends 0.05 over
the planned looks as ``--until-resolved`` does, valid whatever the rule reads, and the MDEs it compares with the
target are those of the spent level, the tests the report will make (tests/report/test_report_error_rates.py).
The control cell is a check of the set-up, not a main effect of the factorial: it is left out of the rule.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from rich.console import Console

from sigx.ablation.looks import FILE, RULES, SequentialPlan, load_plan
from sigx.ablation.store import StoreError, store_root
from sigx.config import Recipe, RecipeError, recipe_from_data
from sigx.console import log_console
from sigx.runs import write_json_atomic


def plan_key(plan: SequentialPlan) -> tuple:
    """What fixes a plan's looks and its rule: none of it may change after the first look."""
    return plan.first_seeds, plan.step, plan.max_seeds, plan.rule, plan.target_mde


def plan_for(recipe: Recipe, step: int, max_seeds: int, rule: str = "resolved",
             target_mde: float | None = None, write: bool = True) -> SequentialPlan:
    """The store's plan, or a new one (written to the store unless ``write`` is false: a dry run), checked
    against what was asked."""
    root = store_root(recipe)
    seeds = list(recipe.ablation.seeds)
    wanted = SequentialPlan(seeds, step, max_seeds, rule=rule, target_mde=target_mde)
    existing = load_plan(root)
    if existing is not None:
        if plan_key(existing) != plan_key(wanted):
            raise StoreError(f"{root / FILE}: the store's sequential plan is seeds {existing.first_seeds}, step "
                             f"{existing.step}, max {existing.max_seeds}, {existing.until}; it was fixed at the first "
                             "look and cannot change (or the error rates would not hold)")
        return existing
    extra = sorted({int(p.name[4:]) for p in root.glob("*/seed*") if p.name[4:].isdigit()} - set(seeds)) \
        if root.is_dir() else []
    if extra:
        raise StoreError(f"{root}: already holds runs of seeds {extra} beyond the recipe's {seeds}: looks that "
                         "were not planned; plan the sequential run on a fresh store")
    if write:
        write_json_atomic(root / FILE, asdict(wanted))
    return wanted


def with_seeds(recipe: Recipe, seeds: list[int]) -> Recipe:
    data = recipe.model_dump(mode="json")
    data["ablation"]["seeds"] = seeds
    return recipe_from_data(data)


def mde_over(effects: pd.DataFrame, target: float) -> dict[str, float]:
    """The main effects (technique and regime factors; not the control) whose MDE exceeds ``target``: the one
    thing ``--until-mde`` reads. A term with no MDE (too few residual degrees of freedom) counts as over."""
    judged = effects[(effects["order"] == 1) & (effects["role"] != "control")]
    return {row.term: float(row.mde) for row in judged.itertuples() if not row.mde <= target}


def run_until_resolved(recipe: Recipe, max_seeds: int, step: int | None = None, console: Console | None = None,
                       retry_failed: bool = False):
    """``--until-resolved``: see :func:`run_sequential`."""
    return run_sequential(recipe, max_seeds, step, console=console, retry_failed=retry_failed)


def run_sequential(recipe: Recipe, max_seeds: int, step: int | None = None, rule: str = "resolved",
                   target_mde: float | None = None, console: Console | None = None, retry_failed: bool = False,
                   dry_run: bool = False, restore_from: str | None = None):
    """Run the planned looks in order until the rule is met (every declared gap resolved, or every main effect's
    MDE <= ``target_mde``) or the cap. Returns the last look's outcome (an AblationOutcome) and a summary of the
    looks. A dry run checks the plan, prints it and the next look's cells, and writes nothing."""
    from sigx.ablation.runner import run_ablation
    from sigx.report.load import load_ablation
    from sigx.report.build import build_report

    if rule not in RULES:
        raise ValueError(f"rule: {rule!r}; allowed: {', '.join(RULES)}")
    console = console or log_console()
    flag = "--until-resolved" if rule == "resolved" else "--until-mde"
    if recipe.ablation.metric is None:
        raise RecipeError([f"ablation.metric: {flag} stops on the declared metric; declare it in the "
                           "recipe's ablation section (and its margin) before the first run"])
    if rule == "mde" and not (target_mde is not None and target_mde > 0):
        raise RecipeError([f"--until-mde: the target MDE must be a positive number (got {target_mde})"])
    step = step or len(recipe.ablation.seeds)
    if max_seeds <= len(recipe.ablation.seeds):
        raise RecipeError([f"--max-seeds: {max_seeds} must exceed the recipe's {len(recipe.ablation.seeds)} seeds"])
    if dry_run:
        plan = plan_for(recipe, step, max_seeds, rule, target_mde, write=False)
        console.print(plan.describe() + f"; {len(plan.looks_done)} look(s) done", highlight=False)
        done = {d.get("seeds") for d in plan.looks_done}
        look, seeds = next(((i, s) for i, s in enumerate(plan.schedule, 1) if len(s) not in done),
                           (plan.looks, plan.schedule[-1]))
        outcome = run_ablation(with_seeds(recipe, seeds), console=console, dry_run=True, restore_from=restore_from)
        return outcome, {"look": look, "seeds": len(seeds), "stopped": "dry run: nothing ran"}
    store_root(recipe).mkdir(parents=True, exist_ok=True)
    plan = plan_for(recipe, step, max_seeds, rule, target_mde)
    console.print(plan.describe(), highlight=False)
    outcome, last = None, {}
    for look, seeds in enumerate(plan.schedule, 1):
        outcome = run_ablation(with_seeds(recipe, seeds), console=console, retry_failed=retry_failed,
                               restore_from=restore_from)
        if outcome.count("failed") or outcome.count("pending"):
            last = {"look": look, "seeds": len(seeds), "stopped": "cells failed or pending: the look cannot be "
                    "analysed; rerun (with --retry-failed) to continue"}
            break
        report = build_report(load_ablation(outcome.root))
        last = {"look": look, "seeds": len(seeds), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if rule == "resolved":
            verdicts = report.additivity.get("verdict")
            open_gaps = int((verdicts == "inconclusive").sum()) if verdicts is not None else 0
            last.update(open_gaps=open_gaps, gaps=int(len(verdicts)) if verdicts is not None else 0)
            line, met, met_text = (f"{open_gaps} of {last['gaps']} gap(s) unresolved", open_gaps == 0,
                                   "every declared gap resolved")
        else:
            over = mde_over(report.effects.table, target_mde)
            last.update(mde_over=over)
            met, met_text = not over, f"every main effect's MDE <= {target_mde:g}"
            line = met_text if met else f"MDE above {target_mde:g}: " + ", ".join(
                f"{term} {mde:.4f}" if math.isfinite(mde) else f"{term} not estimable (no seed-to-seed variation, or "
                "too few degrees of freedom)" for term, mde in over.items())
        if not any(d.get("seeds") == len(seeds) for d in plan.looks_done):
            plan.looks_done.append(last)
            write_json_atomic(Path(outcome.root) / FILE, asdict(plan))
        console.print(f"look {look}/{plan.looks} at {len(seeds)} seeds: {line}", highlight=False)
        if met:
            last["stopped"] = met_text
            break
    else:
        last["stopped"] = f"the cap of {max_seeds} seeds reached"
    return outcome, last
