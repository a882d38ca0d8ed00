"""Does this machine repeat an archived run to the last digit? Reruns it from its archived config and compares.

Why: a store continued on another machine must run the same arithmetic as the machine its runs ran on (a CPU's
kernels set the floating point: AVX-512 and AVX2 give other numbers). Equal warm-start digests show the build is
the same; this shows the training steps are too, on a whole run. It prints whether every recorded number of every
step (timings aside) and of the summary is equal, and where the first difference is, never a value: the archived
run's outcome is not read.

    OMP_NUM_THREADS=1 python results/search-stress/check_rerun.py results/search-stress/archive-ws2/baseline/seed2
    (exit 0: identical; 1: differs; the rerun goes to a temporary directory and is removed)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

SUMMARY_FIELDS = ("reward_auc", "final_reward", "final_greedy_reward", "final_train_reward", "best_reward",
                  "start_reward", "start_greedy_reward", "steps", "base_weights", "room")


def timing(key: str) -> bool:
    return key.endswith("_s") or key.endswith("_per_s")


def steps(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if not timing(k)} for line in path.read_text().splitlines()
            if line.strip()]


def first_difference(old: list[dict], archived: Path, rerun: Path) -> str | None:
    new = steps(rerun / "metrics.jsonl")
    if len(old) != len(new):
        return f"{len(old)} metric lines archived, {len(new)} rerun"
    for line, (a, b) in enumerate(zip(old, new)):
        if a.keys() != b.keys():
            return f"metric line {line} (step {a.get('step')}): other fields"
        for key in a:
            if a[key] != b[key]:
                return f"metric line {line} (step {a.get('step')}): {key}"
    a_sum = json.loads((archived / "summary.json").read_text())
    b_sum = json.loads((rerun / "summary.json").read_text())
    for key in SUMMARY_FIELDS:
        if key == "base_weights" and key not in a_sum:
            continue  # archived before sigx recorded the build: the evaluation before step 1 stands for it
        if a_sum.get(key) != b_sum.get(key):
            return f"summary: {key}"
    return None


def main(archived: Path) -> int:
    old = steps(archived / "metrics.jsonl")
    with tempfile.TemporaryDirectory(prefix="sigx-rerun-") as scratch:
        rerun = Path(scratch) / "run"
        done = subprocess.run([sys.executable, "-m", "sigx.cli", "train", str(archived / "config.json"), "--run-dir",
                               str(rerun), "--set", "logging.wandb=disabled"], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{archived}: the rerun failed (exit {done.returncode}): {done.stderr.strip()[-400:]}")
            return 2
        where = first_difference(old, archived, rerun)
    if where is None:
        print(f"{archived}: rerun identical ({len(old)} metric lines and the summary, timings aside)")
        return 0
    print(f"{archived}: rerun differs, first at {where}")
    return 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
