"""A rehearsal of make_reports.sh's step 3 (the extension's report, verdict_changes.md, done_when.md, and
results/search-stress/report.{md,json}) on planted data, so the last step is known to run before the real runs are
all in, without reading any of them.

Why: step 3 runs once, at the end of ~26 h of runs; a break in it (a path, a column, the seed rule's exit code)
should be found now. The rehearsal copies the archive to a scratch folder, DELETES every run of seeds >= 16 there
unread (the extension's real runs), and plants seeds 16..LAST as copies of the declared seeds 0-15 with Gaussian
noise of SD on their reward AUC. Its numbers mean nothing (the planted seeds repeat the declared ones); only
whether each file is made, and each branch of the seed rule taken, is checked:

    python results/search-stress/rehearse_step3.py /tmp/rehearsal 0.005 31   # rule met at 32: report made
    python results/search-stress/rehearse_step3.py /tmp/rehearsal 0.09 35    # cap of 36 with MDEs above 0.02
    python results/search-stress/rehearse_step3.py /tmp/rehearsal 0.05 31    # rule adds seeds 32-35: waits

Run on 2026-12-03 (all three: the report, verdict_changes.md, done_when.md and report.{md,json} made, or
the wait said), and again on 2026-12-04 at 05:40 UTC on sigx `9ac7d1a` (after the report's HC2 standard errors
and its removal of an earlier report's files): the same three outcomes.
"""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DECLARED_SEEDS = 16


def plant(store: Path, sd: float, last_seed: int, rng: random.Random) -> int:
    """Replace seeds >= 16 of every cell by planted copies of seeds 0-15; returns the runs in the store."""
    for cell in (d for d in store.iterdir() if d.is_dir()):
        for run in cell.glob("seed*"):
            if int(run.name.removeprefix("seed")) >= DECLARED_SEEDS:
                shutil.rmtree(run)  # a real extension run: removed, never opened
        for seed in range(DECLARED_SEEDS, last_seed + 1):
            run = cell / f"seed{seed}"
            shutil.copytree(cell / f"seed{seed % DECLARED_SEEDS}", run)
            config = json.loads((run / "config.json").read_text())
            (run / "config.json").write_text(json.dumps({**config, "seed": seed}))
            summary = json.loads((run / "summary.json").read_text())
            summary.update(seed=seed, cell_id=f"{cell.name}/seed{seed}",
                           reward_auc=summary["reward_auc"] + rng.gauss(0, sd))
            (run / "summary.json").write_text(json.dumps(summary))
    extend_plan(store, last_seed)
    return len(list(store.glob("*/seed*/summary.json")))


def extend_plan(store: Path, last_seed: int) -> None:
    """The store's plan lists seeds 0..last_seed, each seed's cells those of the declared seed it repeats."""
    plan = json.loads((store / "plan.json").read_text())
    declared = [c for c in plan["cells"] if c["seed"] < DECLARED_SEEDS]
    plan["seeds"] = list(range(last_seed + 1))
    plan["cells"] = [dict(c, id=f"{c['id'].rsplit('/', 1)[0]}/seed{seed}", seed=seed)
                     for seed in range(last_seed + 1) for c in declared if c["seed"] == seed % DECLARED_SEEDS]
    (store / "plan.json").write_text(json.dumps(plan))


def main(scratch: str, sd: float, last_seed: int) -> int:
    scratch = Path(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    store, out = scratch / "archive", scratch / "out"
    shutil.copytree(HERE / "archive", store)
    print(f"planted store: {plant(store, sd, last_seed, random.Random(7))} runs, seeds 0-{last_seed}")
    for made in ("search-stress", "search-stress-ws2", "search-stress-vs-search-stress-ws2"):  # steps 1-2: kept
        shutil.copytree(HERE / made, out / made)
    env = dict(os.environ, FLAGSHIP=str(store), OUT=str(out), OMP_NUM_THREADS="1")
    done = subprocess.run([str(HERE / "make_reports.sh")], env=env, capture_output=True, text=True,
                          cwd=HERE.parents[1])
    print("\n".join(line for line in done.stdout.splitlines() + done.stderr.splitlines()
                    if line.startswith(("rule:", "report written", "the seed rule"))))
    made = sorted(str(p.relative_to(out)) for p in [*(out / "extension").rglob("*.md"), *out.glob("report.*")])
    print(f"make_reports.sh exit {done.returncode}; made: {', '.join(made) or 'nothing'}")
    return done.returncode


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: rehearse_step3.py SCRATCH_FOLDER NOISE_SD LAST_SEED")
    sys.exit(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
