#!/bin/bash
# The flagship's extension reported on the runs archived so far: an INTERIM report, declared on 2026-12-04 before
# any of the extension's results was read (README.md here, "If the extension cannot be finished"). Why: its last
# runs need a machine that builds W11 (AVX-512), and six sittings in a row got AVX2 machines. Fixed beforehand:
#  - it reports every run archived (seeds 0-15 of every cell, and the extension's runs archived), names the runs
#    planned and not archived, and is labelled interim in every file it writes;
#  - it does not decide issue #25: done_when.md is written beside it as step 3 would, but #25 is decided only on the
#    full extension (make_reports.sh, step 3, unchanged), made when the runs are in whatever this one says;
#  - verdict_changes.md puts every verdict of the declared 16-seed report beside this one's, as step 3 would.
# Writes results/search-stress/extension-interim/ (its own folder; the full extension's, extension/, is untouched).
# Run from the repository root:  results/search-stress/make_interim.sh
set -eu
SIGX=${SIGX:-.venv/bin/sigx}
FLAGSHIP=${FLAGSHIP:-results/search-stress/archive}
OUT=${OUT:-results/search-stress}
INTERIM="$OUT/extension-interim"
FORMATS=(--format md --format csv --format json)
. results/search-stress/counts.sh  # count, planned

RUNS=$(count "$FLAGSHIP")
PLANNED=$(planned recipes/search-stress.yaml)
if [ "$RUNS" -ge "$PLANNED" ]; then
  echo "$FLAGSHIP: all $PLANNED runs archived: the full extension's report is make_reports.sh's step 3, not this" >&2
  exit 2
fi
mkdir -p "$INTERIM"
# the runs planned and not archived, by cell: the plan's cells without a summary.json in the archive
MISSING=$(OMP_NUM_THREADS=1 .venv/bin/python - "$FLAGSHIP" <<'EOF'
import sys
from collections import defaultdict
from pathlib import Path

from sigx.ablation.plan import expand
from sigx.config import load_recipe

store = Path(sys.argv[1])
missing = defaultdict(list)
for cell in expand(load_recipe("recipes/search-stress.yaml")):
    name, seed = cell.id.rsplit("/seed", 1)
    if not (store / name / f"seed{seed}" / "summary.json").is_file():
        missing[name].append(int(seed))
for name, seeds in sorted(missing.items()):
    print(f"- {name}: seeds {', '.join(map(str, sorted(seeds)))}")
EOF
)
$SIGX report "$FLAGSHIP" --out "$INTERIM" "${FORMATS[@]}"
OMP_NUM_THREADS=1 .venv/bin/python results/search-stress/verdict_changes.py "$OUT/search-stress" \
  "$INTERIM/search-stress" > "$INTERIM/verdict_changes.md"
OMP_NUM_THREADS=1 .venv/bin/python results/search-stress/done_when.py "$INTERIM/search-stress" \
  > "$INTERIM/done_when.md" || [ $? -eq 1 ]
{
  echo "# INTERIM: the flagship's extension on the $RUNS of its $PLANNED runs archived by $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Declared on 2026-12-04 before any of the extension's results was read (../README.md, \"If the extension cannot"
  echo "be finished\"): the extension's last runs need a machine that builds W11 (AVX-512), and the sittings got AVX2"
  echo "machines. This report **does not decide issue #25**; the full extension does (make_reports.sh, step 3), made"
  echo "when its runs are in, whatever this one says. Seeds 16 on were added after reading the declared 16-seed report,"
  echo "so these tests are not at a clean 5% (../README.md, the extension's section)."
  echo
  echo "- [the interim report](search-stress/report.md) (every run archived; the runs it lacks are listed below). Its"
  echo "  effects table fits every run; its additivity gaps are seed-paired, so they use only the seeds that hold every"
  echo "  cell, and while a cell lacks its extension seeds those are the declared report's seeds 0-15"
  echo "- [every verdict of the declared 16-seed report beside this one's](verdict_changes.md)"
  echo "- [issue #25's three criteria on it](done_when.md) (written down; not the decision)"
  echo
  echo "Runs planned and not archived (the report fits the unbalanced design that remains):"
  echo
  echo "$MISSING"
  echo
  echo "Made by make_interim.sh."
} > "$INTERIM/README.md"
echo "interim written to $INTERIM ($RUNS of $PLANNED runs)"
