"""How busy one GRPO step keeps the GPU: the CUDA kernel time of a profiled step over the wall time of an
unprofiled one (the profiler's own overhead would inflate the second).

    python bench/gpu_profile.py recipes/tiny.yaml --set training.autocast=bfloat16 [--set ...]

Prints one ``RESULT {json}`` line: wall time of the step, summed CUDA kernel time, their ratio (the share of
the step the GPU is busy, an upper bound when kernels overlap), and the ten most expensive kernels.
``bench/trl_step.py --profile`` runs the same measurement (:func:`gpu_busy`) after its timed steps, in the
same process, so that ``bench/gpu_check.sh`` builds and compiles the model once for both.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.profiler import ProfilerActivity, profile

from sigx.config import load_recipe
from sigx.engine.shared import SharedEngine
from sigx.engine.trainer import GRPOTrainer
from sigx.techniques import build


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_profile: needs a CUDA GPU")
    recipe = load_recipe(args.recipe, args.overrides + ["logging.wandb=disabled"])
    engine = SharedEngine(recipe, log=lambda m: None)
    trainer = GRPOTrainer(recipe, engine, build(recipe, engine))
    for _ in range(args.warmup):
        trainer.step()
    print("RESULT " + json.dumps(gpu_busy(trainer)))


def gpu_busy(trainer: GRPOTrainer) -> dict:
    """One unprofiled step's wall time, then one profiled step's CUDA kernel time (the trainer warmed up)."""
    torch.cuda.synchronize()
    started = time.perf_counter()
    metrics = trainer.step().metrics
    torch.cuda.synchronize()
    wall = time.perf_counter() - started
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        trainer.step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    busy = sum(e.self_device_time_total for e in kernels) / 1e6
    top = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)[:10]
    return {"device": torch.cuda.get_device_name(), "step_s": wall, "rollout_s": metrics["rollout_s"],
            "train_s": metrics["train_s"], "gpu_kernel_s": busy, "gpu_busy_share": busy / wall,
            "top_kernels": [[e.key[:80], e.self_device_time_total / 1e6, e.count] for e in top]}


if __name__ == "__main__":
    main()
