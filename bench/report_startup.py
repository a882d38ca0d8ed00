"""How long `sigx report` takes to load its code, and whether that loads torch: the import of the report package
in a fresh interpreter, median of N runs.

    python bench/report_startup.py --runs 5 [--src DIR]    # DIR: another checkout of sigx to compare with
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

PROBE = "import sys; import sigx.report.generate; print(int('torch' in sys.modules))"


def measure(src: str, runs: int) -> tuple[float, bool]:
    times, loaded = [], False
    env = {**os.environ, "PYTHONPATH": src}
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=src, capture_output=True, text=True,
                             check=True)
        times.append(time.perf_counter() - started)
        loaded = out.stdout.strip() == "1"
    return statistics.median(times), loaded


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", action="append", default=None, help="checkouts to compare (default: this one)")
    args = parser.parse_args()
    for src in args.src or [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]:
        seconds, torch_loaded = measure(src, args.runs)
        print(f"{src}: import sigx.report.generate {seconds:.2f} s (median of {args.runs}); torch loaded: {torch_loaded}")
