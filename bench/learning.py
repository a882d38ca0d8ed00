"""Measure that the CPU demo learns: held-out reward before and after GRPO, over several seeds.

    python bench/learning.py recipes/tiny.yaml recipes/tiny-search.yaml --seeds 0 1 2

Each run goes through the same code path as ``sigx train`` (one shared engine per recipe). Prints a markdown
table of start -> end held-out reward (mean over seeds, and per seed) and the wall time per run.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from sigx.config import load_recipe
from sigx.engine.shared import SharedEngine
from sigx.train import run_training


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="runs/bench-learning")
    parser.add_argument("--fresh", action="store_true", help="replace completed runs under --out (else refused)")
    args = parser.parse_args()
    rows = []
    for path in args.recipes:
        base = load_recipe(path, args.overrides)
        engine = SharedEngine(base)
        for seed in args.seeds:
            recipe = base.model_copy(update={"seed": seed})
            s = run_training(recipe, run_dir=Path(args.out) / base.name / f"seed{seed}", engine=engine,
                             fresh=args.fresh)
            rows.append((base.name, seed, s))
            print(f"{base.name} seed {seed}: {s['start_reward']:.3f} -> {s['final_reward']:.3f} "
                  f"(greedy {s['start_greedy_reward']:.3f} -> {s['final_greedy_reward']:.3f}) in {s['wall_s']:.0f}s",
                  flush=True)
    print("\n| recipe | seeds | held-out reward start -> end (mean) | per seed | greedy start -> end | wall per run |")
    print("|---|---|---|---|---|---|")
    for name in dict.fromkeys(r[0] for r in rows):
        runs = [s for n, _, s in rows if n == name]
        mean = lambda k: statistics.mean(s[k] for s in runs)  # noqa: E731
        per_seed = ", ".join(f"{s['start_reward']:.2f}->{s['final_reward']:.2f}" for s in runs)
        print(f"| {name} | {len(runs)} | {mean('start_reward'):.3f} -> {mean('final_reward'):.3f} | {per_seed} | "
              f"{mean('start_greedy_reward'):.3f} -> {mean('final_greedy_reward'):.3f} | "
              f"{min(s['wall_s'] for s in runs):.0f}-{max(s['wall_s'] for s in runs):.0f} s |")


if __name__ == "__main__":
    main()
