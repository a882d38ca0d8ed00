#!/bin/bash
# One sitting of the flagship on a fresh 2-core machine (how results/search-stress was run; see README.md here).
# Restores the cells earlier sittings archived, runs the rest with 2 one-thread workers from a snapshot of the
# code (so edits to the checkout do not reach running cells), and every 10 minutes archives the finished cells
# into results/search-stress/archive and commits that path alone. Run from the repository root, in the
# background:  nohup setsid results/search-stress/sitting.sh > sitting.log 2>&1 &
# The same for the second warm start: RECIPE=search-stress-ws2 results/search-stress/sitting.sh
set -u
RECIPE=${RECIPE:-search-stress}
REPO=$(pwd)
SNAP=${SNAP:-/tmp/sigx-snapshot-$RECIPE}
ARCHIVE=$REPO/results/search-stress/archive${RECIPE#search-stress}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# A snapshot whose recipe is no longer the checkout's (seeds added since) and that has no run in flight is made
# again from HEAD, after its finished cells are archived: else it would run the old recipe's cells only.
if [ -d "$SNAP" ] && ! cmp -s "$SNAP/recipes/$RECIPE.yaml" "recipes/$RECIPE.yaml" &&
   [ -z "$(ls -A "$SNAP/ablations/$RECIPE/.staging" 2>/dev/null)" ]; then
  if [ -f "$SNAP/ablations/$RECIPE/plan.json" ]; then
    .venv/bin/sigx archive "$SNAP/ablations/$RECIPE" "$ARCHIVE" || exit 1
  fi
  git worktree remove --force "$SNAP" && echo "$SNAP: made again (recipes/$RECIPE.yaml changed since it was taken)" ||
    exit 1
fi
# (a worktree whose folder was wiped with /tmp is still registered: prune forgets it, so it can be added again)
[ -d "$SNAP" ] || { git worktree prune && git worktree add --detach "$SNAP" HEAD; } || exit 1
[ -x .venv/bin/sigx ] || { echo "no .venv here: run the README's set-up first"; exit 1; }
# The flagship's archived runs predate sigx's record of the warm start's build (which `sigx ablate` now checks):
# compare this machine's build by the base model's evaluation they all recorded (a machine with other CPU kernels
# builds other weights; see check_warm_start.py). The second warm start's runs record the build: ablate checks it.
if [ "$RECIPE" = search-stress ]; then
  .venv/bin/python results/search-stress/check_warm_start.py "recipes/$RECIPE.yaml" "$ARCHIVE" || exit 1
fi
(
  while sleep "${ARCHIVE_EVERY_S:-600}"; do
    if [ -f "$SNAP/ablations/$RECIPE/plan.json" ]; then
      "$REPO/.venv/bin/sigx" archive "$SNAP/ablations/$RECIPE" "$ARCHIVE" && git add "$ARCHIVE" &&
        git commit -q -m "results/search-stress: $RECIPE's finished runs archived ($(ls -d "$ARCHIVE"/*/seed*/ | wc -l) at $(date -u +%H:%M) UTC)" -- "$ARCHIVE"
    fi
  done
) &
LOOP=$!
cd "$SNAP"
RESTORE=()
[ -f "$ARCHIVE/recipe.yaml" ] && RESTORE=(--restore-from "$ARCHIVE")
PYTHONPATH=$SNAP "$REPO/.venv/bin/python" -P -m sigx.cli ablate "recipes/$RECIPE.yaml" "${RESTORE[@]}"
echo "ablate exit $? at $(date -u)"
cd "$REPO" && "$REPO/.venv/bin/sigx" archive "$SNAP/ablations/$RECIPE" "$ARCHIVE" && git add "$ARCHIVE" &&
  git commit -q -m "results/search-stress: $RECIPE's finished runs archived (end of a sitting)" -- "$ARCHIVE"
kill "$LOOP" 2>/dev/null
