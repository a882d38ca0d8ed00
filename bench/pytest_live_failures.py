"""A pytest plugin that writes each failure and error, with its reason, the moment it is known.

Why: `bench/gpu_check.sh` runs the suite on CUDA under a hard time limit, and twice (H200, 2026-12-04) pytest
reached 100% and then never printed its summary, where `-rfE` would have named the failures and `--tb` said
why: the run was cut off with the reasons lost. With this plugin they are already in the log. Load it with
``-p pytest_live_failures`` (its folder on PYTHONPATH). Under pytest-xdist the controller writes the lines (the
workers' reports reach it), so each failure is written once.
"""

from __future__ import annotations

import os
import sys

MAX_CHARS = 1500  # of each reason: the end of the traceback, where the error is


def pytest_runtest_logreport(report) -> None:
    if not report.failed or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    kind = "FAILED" if report.when == "call" else f"ERROR at {report.when}"
    reason = report.longreprtext.strip()[-MAX_CHARS:]
    sys.stdout.write(f"\n>>> {kind} {report.nodeid}\n{reason}\n<<<\n")
    sys.stdout.flush()
