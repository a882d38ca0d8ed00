#!/bin/bash
# Every sitting from now on, on whatever machine it gets (README.md here): the flagship's remaining runs where this
# machine builds its W11 (a CPU with AVX-512 that passes check_warm_start.py; an AVX2 CPU cannot), then
# search-stress-ws2's on an AVX2 machine's kernels (natively, or on a CPU with AVX-512 with the settings that make
# it run them: README.md here, "A machine with AVX-512 runs an AVX2 machine's kernels"). Each part is one
# sitting.sh (restore, run, archive and commit every 10 minutes). Run from the repository root, in the background:
#   nohup setsid results/search-stress/sittings.sh > sittings.log 2>&1 &
set -u
SITTING=${SITTING:-results/search-stress/sitting.sh}
count() { find "$1" -mindepth 3 -maxdepth 3 -name summary.json 2>/dev/null | wc -l; }
# a session stopped mid-commit leaves .git/index.lock behind, and every later commit of the archive would fail on it
if [ -f .git/index.lock ] && ! pgrep -x git > /dev/null; then
  rm -f .git/index.lock && echo "removed a stale .git/index.lock"
fi
[ -x .venv/bin/python ] || { echo "no .venv here: run the README's set-up first"; exit 1; }
KERNELS=$(OMP_NUM_THREADS=1 .venv/bin/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())") ||
  exit 1
echo "this machine's CPU kernels: $KERNELS"
if [ "$(count results/search-stress/archive)" -lt 272 ]; then
  case "$KERNELS" in
    AVX512*) "$SITTING" ;;  # it checks the build first and stops on another
    *) echo "search-stress: its W11 was built and run with AVX-512 kernels, this machine has $KERNELS: it waits" ;;
  esac
fi
if [ "$(count results/search-stress/archive-ws2)" -lt 68 ]; then
  case "$KERNELS" in
    AVX512*)  # the settings that make it run an AVX2 machine's kernels: sigx.provenance.AVX2_KERNELS, one source
      SETTINGS=$(.venv/bin/python -c "from sigx.provenance import AVX2_KERNELS as k; print(*(f'{n}={v}' for n, v in k.items()))") ||
        exit 1
      export $SETTINGS && echo "AVX2 kernels for search-stress-ws2: $SETTINGS" ;;
  esac
  RECIPE=search-stress-ws2 "$SITTING"
fi
echo "sittings done at $(date -u)"
