"""The memory plan (`sigx validate`, sigx/memory.py) against the peak a short run allocates on a CUDA GPU.

    python bench/gpu_memory.py RECIPE [--set FIELD=VALUE ...] [--steps 2] [--prompt-tokens N]

Prints the plan's GPU total and each line, then torch.cuda.max_memory_allocated() over a `steps`-step run of the
recipe (the whole run: loading, rollout, an update of every row, zero advantage or not), and their ratio. On a CPU
it prints the plan and says there is no peak to read (bench/memory_check.py is the CPU check).
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from sigx.config import load_recipe
from sigx.memory import GIB, gpu_total, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    args = parser.parse_args()
    # skip_zero_advantage off: a randomly initialised model earns reward 0 everywhere, every row's advantage is 0,
    # and the update the plan sizes would be skipped (the H200 run of 2026-12-04 measured no update that way)
    recipe = load_recipe(args.recipe, args.set + [f"training.steps={args.steps}", f"training.eval_every={args.steps}",
                                                  "training.checkpoint_every=0", "logging.wandb=disabled",
                                                  "training.skip_zero_advantage=false"])
    lines = plan(recipe, args.prompt_tokens)
    for line in lines:
        print(f"  plan {line.component:22} {line.bytes / GIB:8.3f} GiB  {line.note}")
    estimate = gpu_total(lines)
    print(f"plan: {estimate / GIB:.3f} GiB per GPU ({' '.join(args.set)})")
    if not torch.cuda.is_available():
        print("no CUDA device: no peak to compare with (bench/memory_check.py checks the plan on a CPU)")
        return
    from sigx.train import run_training

    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as run_dir:
        run_training(recipe, run_dir=run_dir)
    peak = torch.cuda.max_memory_allocated()
    print(f"measured peak: {peak / GIB:.3f} GiB on {torch.cuda.get_device_name()}; plan / peak = {estimate / peak:.2f}")


if __name__ == "__main__":
    main()
