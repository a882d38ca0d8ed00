#!/bin/bash
# Every sitting from now on, on whatever machine it gets (README.md here): search-stress-ws2's remaining runs on an
# AVX2 machine's kernels (natively, or on a CPU with AVX-512 with the settings that make it run them: README.md
# here, "A machine with AVX-512 runs an AVX2 machine's kernels"), then the flagship's remaining runs (its seeds
# 16-31, the extension in recipes/search-stress.yaml's header) where this machine builds its W11 (a CPU with
# AVX-512 that passes check_warm_start.py; an AVX2 CPU cannot). The second warm start goes first: it is the
# declared check, and it is nearly done. Each part is one sitting.sh (restore, run, archive and commit every 10
# minutes). Run from the repository root, in the background:
#   nohup setsid results/search-stress/sittings.sh > sittings.log 2>&1 &
set -u
SITTING=${SITTING:-results/search-stress/sitting.sh}
. results/search-stress/counts.sh  # count, planned
# a session stopped mid-commit leaves .git/index.lock behind, and every later commit of the archive would fail on it
if [ -f .git/index.lock ] && ! pgrep -x git > /dev/null; then
  rm -f .git/index.lock && echo "removed a stale .git/index.lock"
fi
[ -x .venv/bin/python ] || { echo "no .venv here: run the README's set-up first"; exit 1; }
KERNELS=$(OMP_NUM_THREADS=1 .venv/bin/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())") ||
  exit 1
echo "this machine's CPU kernels: $KERNELS"
CHECK_PLANNED=$(planned recipes/search-stress-ws2.yaml) && FLAGSHIP_PLANNED=$(planned recipes/search-stress.yaml) ||
  exit 1
if [ "$(count results/search-stress/archive-ws2)" -lt "$CHECK_PLANNED" ]; then
  AVX2_SETTINGS=()  # given to search-stress-ws2's sitting alone, so they do not reach the flagship's runs below
  case "$KERNELS" in
    AVX512*)  # the settings that make it run an AVX2 machine's kernels: sigx.provenance.AVX2_KERNELS, one source
      SETTINGS=$(.venv/bin/python -c "from sigx.provenance import AVX2_KERNELS as k; print(*(f'{n}={v}' for n, v in k.items()))") ||
        exit 1
      read -ra AVX2_SETTINGS <<< "$SETTINGS" && echo "AVX2 kernels for search-stress-ws2: $SETTINGS" ;;
  esac
  env "${AVX2_SETTINGS[@]}" RECIPE=search-stress-ws2 "$SITTING"
fi
if [ "$(count results/search-stress/archive)" -lt "$FLAGSHIP_PLANNED" ]; then
  case "$KERNELS" in
    AVX512*) "$SITTING" ;;  # it checks the build first and stops on another
    *) echo "search-stress: its W11 was built and run with AVX-512 kernels, this machine has $KERNELS: it waits" ;;
  esac
fi
echo "sittings done at $(date -u)"
