"""How well a recipe's base model judges (question, response) pairs before any RL: GC-RL's critic at step 0.

GC-RL's critique accuracy is logged only once the cache holds pairs, i.e. once some question has both a right and
a wrong response; on a task whose start reward is near 0 (tiny-search: 0.3%) that is many steps in, after RL has
moved the critic too. This probe asks the warm-started model for verdicts on demonstrations of the task, half of
them with one slip (so about half wrong), the way GC-RL asks (its critique prompt, its sampling temperature and
token budget), and reports the accuracy on right and on wrong responses, and their mean (balanced accuracy: a
critic that always says "no" scores 0.5 there, whatever the mix).

    python bench/critic_accuracy.py recipes/tiny-search.yaml --set model.tiny.sft_critique_fraction=0.2 --pairs 256
"""

from __future__ import annotations

import argparse
import random

import torch

from sigx.config import load_recipe
from sigx.engine.rollout import SamplingParams
from sigx.engine.shared import SharedEngine
from sigx.tasks.base import Problem
from sigx.techniques.gcrl import CritiqueEnvironment


def critic_accuracy(recipe, pairs: int, seed: int = 0, temperature: float | None = None) -> dict[str, float]:
    """``temperature``: the critiques' (default: the rollout's, as GC-RL samples them; 1e-4 reads the greedy
    critic)."""
    engine = SharedEngine(recipe, log=lambda m: None)
    task, rng = engine.task, random.Random(seed)
    problems, labels = [], []
    for _ in range(pairs):
        problem = task.train_problem(rng)
        transcript = task.demonstration(problem, rng, 0.5)
        correct = task.score(problem, transcript).correct
        problems.append(Problem(prompt=task.critique_prompt(problem, transcript), answer="yes" if correct else "no"))
        labels.append(correct)
    g = recipe.techniques.gcrl
    params = SamplingParams(g.critique_max_tokens, temperature or recipe.rollout.temperature, recipe.rollout.top_p)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        critiques = engine.generate(CritiqueEnvironment(), problems, list(range(pairs)), params, generator)
    verdicts = [task.parse_verdict(task.model_text(c.segments)) for c in critiques]
    right = [v is True for v, y in zip(verdicts, labels) if y]
    wrong = [v is False for v, y in zip(verdicts, labels) if not y]
    on_right = sum(right) / max(len(right), 1)
    on_wrong = sum(wrong) / max(len(wrong), 1)
    return {"pairs": pairs, "share_right": sum(labels) / pairs,
            "accuracy": sum(v is not None and v == y for v, y in zip(verdicts, labels)) / pairs,
            "accuracy_on_right": on_right, "accuracy_on_wrong": on_wrong, "balanced": (on_right + on_wrong) / 2,
            "no_verdict": sum(v is None for v in verdicts) / pairs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=None, help="default: the recipe's rollout temperature")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = critic_accuracy(load_recipe(args.recipe, args.overrides + ["logging.wandb=disabled"]), args.pairs, args.seed,
                             args.temperature)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
