"""What the flagship's report could detect with the runs that exist: every main effect's MDE from the design alone,
at the declared 16-seed report's residual SD, without reading any result of the extension (seeds 16-31).

Why: the extension's last 98 runs wait for a machine that builds W11 (AVX-512); sittings on AVX2 machines cannot run
them. Whether a report on the runs archived so far could meet issue #25's bar (every main effect's MDE <= 0.02) is a
question about the design (which cells and seeds exist) and the noise, not about the extension's outcomes, so it is
answered here without them: the archive is copied to a scratch folder, every run of seeds >= 16 there is DELETED
unread (only its folder's name is kept), and each run that exists (or would, in the scenario) gets a planted reward
AUC of pure noise. The report's own model (seed blocks, the 16 terms, Holm over them) then gives each main effect's
MDE, scaled to the declared report's residual SD (an MDE is proportional to the residual SD the fit estimates).

    python results/search-stress/project_mde.py /tmp/projection

Scenarios: the runs archived now (missing runs left missing: the report's OLS fits the unbalanced design), all 544,
and 612 (17 cells x 36 seeds, the seed rule's cap). The 544 scenario checks the projection against the extension's
own declaration (0.0188 at 32 seeds, from `sigx.report.stats.detectable` on the balanced design).

Run on 2026-12-04 00:33 UTC (AVX2 Zen 3, ~1 min): the 446 runs archived now (174 of the extension's 272): every main
effect's MDE 0.0220 (> 0.02); all 544: 0.0188, as declared; 612: 0.0177. So a report on the runs archived so far
could not meet #25's bar; the extension's last 98 runs are needed.
Rerun 2026-12-04 03:40 UTC after the report's standard errors became each run's own (HC2, Bell-McCaffrey df):
0.0220, 0.0187 (the control's runs no longer weigh in the terms' noise), 0.0177.
"""

import json
import random
import shutil
import sys
from pathlib import Path

from sigx.report.load import load_ablation
from sigx.report.build import build_report

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the rehearsal beside it, run by path like this script
from rehearse_step3 import DECLARED_SEEDS, extend_plan  # noqa: E402
DECLARED_SD = json.loads((HERE / "search-stress" / "report.json").read_text())["residual_sd"]  # 0.0558, 240 df


def strip_extension(store: Path) -> set[tuple[str, int]]:
    """Delete every run of seeds >= 16 unread; the (cell, seed) pairs that existed."""
    existed = set()
    for cell in (d for d in store.iterdir() if d.is_dir()):
        for run in list(cell.glob("seed*")):
            seed = int(run.name.removeprefix("seed"))
            if seed >= DECLARED_SEEDS:
                existed.add((cell.name, seed))
                shutil.rmtree(run)  # an extension run: removed, never opened
    return existed


def planted_store(base: Path, scratch: Path, runs: set[tuple[str, int]], last_seed: int, rng: random.Random) -> Path:
    """A copy of the stripped store with the extension runs ``runs`` (copies of seeds 0-15's files) and every
    run's reward AUC replaced by noise, its plan listing seeds 0..last_seed."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(base, scratch)
    for cell, seed in sorted(runs):
        shutil.copytree(scratch / cell / f"seed{seed % DECLARED_SEEDS}", scratch / cell / f"seed{seed}")
        config = json.loads((scratch / cell / f"seed{seed}" / "config.json").read_text())
        (scratch / cell / f"seed{seed}" / "config.json").write_text(json.dumps({**config, "seed": seed}))
    for summary_path in scratch.glob("*/seed*/summary.json"):
        summary = json.loads(summary_path.read_text())
        seed = int(summary_path.parent.name.removeprefix("seed"))
        summary.update(seed=seed, cell_id=f"{summary_path.parent.parent.name}/seed{seed}",
                       reward_auc=0.5 + rng.gauss(0, DECLARED_SD))
        summary_path.write_text(json.dumps(summary))
    extend_plan(scratch, last_seed)
    return scratch


def main_effect_mdes(store: Path) -> tuple[int, dict[str, float]]:
    """Runs done, and each main effect's MDE at the declared residual SD."""
    ablation = load_ablation(store)
    report = build_report(ablation, "reward_auc")
    scale = DECLARED_SD / report.effects.residual_sd
    table = report.effects.table
    main = table[(table["order"] == 1) & (table["role"] != "control")]
    return int((ablation.runs.status == "done").sum()), {r.term: r.mde * scale for r in main.itertuples()}


def main(scratch: str) -> int:
    scratch = Path(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    base = scratch / "stripped"
    shutil.copytree(HERE / "archive", base)
    archived = strip_extension(base)
    cells = sorted(d.name for d in base.iterdir() if d.is_dir())
    scenarios = {"the runs archived now": (archived, 31),
                 "all 544 (seeds 0-31)": ({(c, s) for c in cells for s in range(16, 32)}, 31),
                 "612 (seeds 0-35, the seed rule's cap)": ({(c, s) for c in cells for s in range(16, 36)}, 35)}
    print(f"residual SD of the declared 16-seed report: {DECLARED_SD:.4f}; extension runs archived: {len(archived)}")
    for name, (runs, last_seed) in scenarios.items():
        done, mdes = main_effect_mdes(planted_store(base, scratch / "planted", runs, last_seed, random.Random(11)))
        worst = max(mdes.values())
        print(f"{name}: {done} runs; main-effect MDEs {', '.join(f'{t} {m:.4f}' for t, m in mdes.items())}; "
              f"largest {worst:.4f} ({'<=' if worst <= 0.02 else '>'} 0.02)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: project_mde.py SCRATCH_FOLDER")
    sys.exit(main(sys.argv[1]))
