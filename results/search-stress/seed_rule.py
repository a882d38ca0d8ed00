"""The flagship's declared rule for more seeds (recipes/search-stress.yaml, declared 2026-11-30 17:14 UTC): after
the 8 seeds, if any main effect's MDE exceeds 0.02, seeds 8-11 run; after theirs, if one still does, 12-15.
At 16 seeds (its cap) every MDE was 0.027; the EXTENSION in the recipe's header, decided after reading that report,
adds seeds 16-31, then by the same MDE-only rule 32-35 if an MDE is still above 0.02; 36 at most.

It reads the main effects' MDEs and nothing else: it prints no effect, interval or p-value, so running it keeps
the analysis blind to the results (the recipe's rule reads the residual variance only). Tests at the declared,
unspent 0.05 (the rule as declared; README.md here says what that costs).

    python results/search-stress/seed_rule.py results/search-stress/archive   # exit 0: rule met (or 16 seeds); 3: add seeds
"""

import sys

from sigx.ablation.sequential import mde_over
from sigx.report.load import load_ablation
from sigx.report.build import build_report

TARGET = 0.02
# the seeds each look adds while an MDE is above TARGET: the declared rule (8, 12), then the extension (16, 32)
NEXT_SEEDS = {8: "8-11", 12: "12-15", 16: "16-31 (the extension, decided after reading)", 32: "32-35"}
MAX_SEEDS = 36  # the extension's cap (the declared rule's was 16): an MDE still above 0.02 is reported, not chased


def main(store: str) -> int:
    ablation = load_ablation(store)
    runs = ablation.runs
    if (runs.status != "done").any():
        print(f"{store}: {int((runs.status != 'done').sum())} of {len(runs)} runs not done: the rule waits for all")
        return 2
    table = build_report(ablation).effects.table
    main_effects = table[(table["order"] == 1) & (table["role"] != "control")]
    seeds = runs.seed.nunique()
    for row in main_effects.itertuples():
        print(f"{seeds} seeds: MDE of {row.term}: {row.mde:.4f}")
    over = mde_over(table, TARGET)
    if over and (seeds >= MAX_SEEDS or seeds not in NEXT_SEEDS):
        print(f"rule: {seeds} seeds (cap {MAX_SEEDS}) with MDEs above {TARGET}: no more seeds; the report says so")
        return 0
    print(f"rule: {f'met (every main effect MDE <= {TARGET})' if not over else f'add seeds {NEXT_SEEDS[seeds]}'}")
    return 3 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
