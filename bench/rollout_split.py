"""What splitting the rollout across processes buys: `sigx train --nproc N` with `rollout.seeding: batch` (every
process samples the whole step) against `rollout.seeding: sample` (each process samples its groups, the shares
gathered), and the 1-process run of each, on the same recipe and steps. Reported: the median seconds of a step's
rollout (`rollout_s`, process 0's clock: it includes waiting for the gather) and of the whole step, and the
ratio of the split rollout to the unsplit one. Each run uses one thread per process; run it with nothing else on
the machine's cores (N processes need N free cores).

    python bench/rollout_split.py recipes/tiny.yaml --nproc 2 --steps 10 [--set rollout.group_size=8] ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(recipe: str, nproc: int, seeding: str, steps: int, overrides: list[str], root: Path) -> dict:
    run_dir = root / f"{seeding}-{nproc}"
    command = [sys.executable, "-m", "sigx.cli", "train", recipe, "--run-dir", str(run_dir), "--nproc", str(nproc),
               "--set", f"rollout.seeding={seeding}", "--set", f"training.steps={steps}",
               "--set", f"training.eval_every={steps}", "--set", "training.checkpoint_every=0",
               "--set", "logging.wandb=disabled"]
    for override in overrides:
        command += ["--set", override]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps_rows = [r for r in rows if r["step"] > 1 and "rollout_s" in r]  # step 1 pays the first-call costs
    return {"rollout_s": statistics.median(r["rollout_s"] for r in steps_rows),
            "step_s": statistics.median(r["step_s"] for r in steps_rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    print(f"{args.recipe} {' '.join(args.set)}, {args.steps} steps; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print(f"{'seeding':8} {'processes':>9} {'rollout s':>10} {'step s':>8}")
    with tempfile.TemporaryDirectory() as root:
        results = {}
        for seeding in ("batch", "sample"):
            for nproc in (1, args.nproc):
                results[seeding, nproc] = run(args.recipe, nproc, seeding, args.steps, args.set, Path(root))
                r = results[seeding, nproc]
                print(f"{seeding:8} {nproc:9} {r['rollout_s']:10.3f} {r['step_s']:8.3f}", flush=True)
    ratio = results["sample", args.nproc]["rollout_s"] / results["batch", args.nproc]["rollout_s"]
    print(f"rollout on {args.nproc} processes, split / whole: {ratio:.2f}")


if __name__ == "__main__":
    main()
