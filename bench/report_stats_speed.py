"""Time of the report's two model tables on a planted 2^5 store (5 seeds, one regime factor, the stress
experiment's noise pattern), the unit of work the report and its simulation tests repeat; ms per call.

    python bench/report_stats_speed.py              # ~5 s on one core

To compare two versions of sigx/report/stats.py, run it on each in turn (e.g. with `git stash` between).
Measured 2026-12-03 on a 2-core AMD EPYC Zen 3 (AVX2), one thread, old / new / new in one sitting:
factorial_effects 134.5 / 28.6 / 26.4 ms and additivity_table 167.3 / 80.8 / 82.6 ms, when Model.estimate stopped
calling statsmodels' t_test for each contrast (the same t-test from the fit's covariance, read once) and the t
distribution was evaluated through scipy.special (what scipy.stats.t calls) instead of the distribution object.
Then, 2026-12-03 19:20 UTC, same machine, HEAD / change in one sitting: factorial_effects 29.5 / 17.7 ms,
additivity_table 84.1 / 53.3 ms, when the model's rows were selected by column before row (the runs table's
text columns are slow to copy), the design went to statsmodels as a numpy array instead of a DataFrame, and
Holm's NaN handling moved to numpy (results/stress's report.json: all 2228 numbers equal to 1e-9).
Then, 2026-12-04 04:15 UTC, same kind of machine, before / after the HC2 standard errors with Bell-McCaffrey df
(dca2ed0), three alternating runs each: factorial_effects 15.7, 13.7, 11.5 / 25.1, 23.1, 21.9 ms and
additivity_table 63.1, 58.0, 45.2 / 65.8, 57.2, 62.9 ms: ~10 ms more per effects table (each contrast's df is an
O(n p^2) product), nothing a report or the simulation tests notice.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "report"))
gc.collect = lambda *args: 0  # statsmodels' Holm collects garbage on every call; the numbers are unchanged

from test_report_error_rates import MARGIN, store  # noqa: E402

from sigx.report.stats import additivity_table, factorial_effects  # noqa: E402


def main(repeats: int = 10) -> None:
    ab = store(lambda on: 0.5, np.random.default_rng(0), seeds=5)
    for name, make in [("factorial_effects", lambda: factorial_effects(ab, "final_reward")),
                       ("additivity_table", lambda: additivity_table(ab, "final_reward", MARGIN, plan_seeds=False))]:
        make()  # warm
        start = time.perf_counter()
        for _ in range(repeats):
            make()
        print(f"{name}: {(time.perf_counter() - start) / repeats * 1000:.1f} ms")


if __name__ == "__main__":
    main()
