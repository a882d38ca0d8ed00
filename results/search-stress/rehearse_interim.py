"""A rehearsal of make_interim.sh on planted data, so the interim report is known to run before it is made, without
reading any of the extension's results.

Why: the interim report is declared to be made once, on the runs archived; a break in it (the report of an
unbalanced design, the list of missing runs, verdict_changes.py and done_when.py on it) should be found on planted
data first. As project_mde.py does, the archive is copied to a scratch folder, every run of seeds >= 16 there is
DELETED unread (only its folder's name is kept), the same (cell, seed) pairs are planted back as copies of seeds
0-15, and every run's reward AUC is replaced by noise at the declared report's residual SD. Its numbers mean
nothing; only whether each file is made is checked:

    python results/search-stress/rehearse_interim.py /tmp/interim-rehearsal

Run on 2026-12-04 (AVX2 Zen 3, ~25 s): every file made (446 of 544 runs). It showed that the report's additivity
gaps, paired over the seeds that hold every cell, rest on seeds 0-15 alone while cells lack their extension seeds,
and that verdict_changes.py then named one seed count for both terms and gaps (it now names both).
"""

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the projection beside it, run by path like this script
from project_mde import planted_store, strip_extension  # noqa: E402

MADE = ("README.md", "verdict_changes.md", "done_when.md", "search-stress/report.md", "search-stress/report.json")


def main(scratch: str) -> int:
    scratch = Path(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    base, out = scratch / "stripped", scratch / "out"
    shutil.copytree(HERE / "archive", base)
    archived = strip_extension(base)
    store = planted_store(base, scratch / "archive", archived, 31, random.Random(13))
    shutil.copytree(HERE / "search-stress", out / "search-stress")  # the declared report, for verdict_changes.py
    env = dict(os.environ, FLAGSHIP=str(store), OUT=str(out), OMP_NUM_THREADS="1")
    done = subprocess.run([str(HERE / "make_interim.sh")], env=env, capture_output=True, text=True,
                          cwd=HERE.parents[1])
    print("\n".join(line for line in done.stdout.splitlines() + done.stderr.splitlines()
                    if line.startswith(("interim written", "report written")) or "Error" in line or "error" in line))
    lacking = [name for name in MADE if not (out / "extension-interim" / name).is_file()]
    print(f"make_interim.sh exit {done.returncode}; {len(archived)} extension runs planted; "
          f"files lacking: {', '.join(lacking) or 'none'}")
    return done.returncode or bool(lacking)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: rehearse_interim.py SCRATCH_FOLDER")
    sys.exit(main(sys.argv[1]))
