"""What the shared engine saves: the same cells run by one ``sigx ablate`` process vs one process per cell.

    python bench/shared_engine.py recipes/tiny.yaml --factors sspo --seeds 0 1 2 --steps 10

Both ways run the same cells (the recipe's plan narrowed to ``--factors`` x ``--seeds``, each cell cut to
``--steps`` steps, W&B as the recipe says) one after another with one worker, in fresh subprocesses, measured in the same
invocation:

- **shared**: one ``sigx ablate`` process; it imports torch/transformers once, loads the base once and resets
  the policy between cells;
- **per cell**: one ``sigx train`` process per cell, each importing, loading the base from the disk cache and
  building its rollout backend anew.

The model cache is warmed first, so neither side pays for the tiny model's SFT warm start (which the disk
cache already shares between processes). Prints a markdown table; the difference divided by the number of
cells is the per-cell overhead that the shared engine removes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sigx.ablation.plan import expand
from sigx.config import load_recipe


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    parser.add_argument("--factors", nargs="+", default=["sspo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    sigx = str(Path(sys.executable).with_name("sigx"))
    work = Path(tempfile.mkdtemp(prefix="sigx-bench-engine-"))
    overrides = [f"training.steps={args.steps}", f"training.eval_every={args.steps}", "ablation.workers=1",
                 f"ablation.factors={args.factors}", f"ablation.seeds={args.seeds}",
                 f"ablation.output_dir={work / 'ablations'}", f"logging.output_dir={work / 'runs'}"]
    recipe = load_recipe(args.recipe, overrides)
    shared_recipe = work / "recipe.yaml"
    shared_recipe.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    shared_cells = expand(recipe)

    timed([sigx, "train", str(shared_recipe), "--set", "training.steps=1", "--run-dir", str(work / "warm")])  # warm caches

    shared_s = timed([sigx, "ablate", str(shared_recipe)])
    per_cell_s = 0.0
    for cell in shared_cells:
        enable = ",".join(cell.factors_on)
        per_cell_s += timed([sigx, "train", str(shared_recipe), "--set", f"seed={cell.seed}",
                             *(["--enable", enable] if enable else []),
                             "--run-dir", str(work / "per-cell" / cell.id)])
    n = len(shared_cells)
    print(f"\n{n} cells of {args.steps} steps ({', '.join(c.id for c in shared_cells)}), W&B {recipe.logging.wandb}\n")
    print("| how | wall time | per cell |")
    print("|---|---|---|")
    print(f"| one process per cell (`sigx train` x {n}) | {per_cell_s:.1f} s | {per_cell_s / n:.1f} s |")
    print(f"| one shared engine (`sigx ablate`) | {shared_s:.1f} s | {shared_s / n:.1f} s |")
    print(f"| saving | {per_cell_s - shared_s:.1f} s ({1 - shared_s / per_cell_s:.0%}) | "
          f"{(per_cell_s - shared_s) / n:.1f} s |")


if __name__ == "__main__":
    main()
