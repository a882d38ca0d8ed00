#!/usr/bin/env bash
# Before a GPU call: make here, on the CPU machine and at no GPU cost, what bench/gpu_check.sh needs beside the
# checkout, and print the device call to make. A lease is 15 minutes in all, given to some sessions only; the
# preparation took ~25 of a session's minutes on 2026-12-04 when worked out by hand, this script does it in ~5
# (the tiny model's warm start, on 2 threads, is most of it; nothing is built again when it is there).
#
#   bash bench/gpu_prepare.sh          # from the repository root, with the README's .venv
#
# What it makes (both ignored by git through .git/info/exclude, both named in the call's `carry`):
#   .whl/          the cp312 wheels the GPU image lacks (the set that worked on the H200 on 2026-12-04, pinned:
#                  a wheel's needs are not resolved there, so a newer one can need what the image does not have)
#   .sigx-cache/   the demo recipe's tiny model, built (SIGX_CACHE on the GPU)
# Then it checks what would travel: the device tool sends the checkout (tracked and not ignored files) and the
# carried paths, at most 64 MiB. results/search-stress's archives alone are ~120 MB, so that folder is moved
# aside for the call and back after it: never while its sittings run (their loop commits the archive every 10
# minutes and would commit it as deleted).
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "no $PY: run the README's set-up first"; exit 1; }
for ignored in /.whl/ /.sigx-cache/; do
  grep -qxF "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >> .git/info/exclude
done
WHEELS=(pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
        typing_extensions==4.16.0 trl==1.16.0 datasets==4.7.0 dill==0.4.0 multiprocess==0.70.18 bm25s==0.3.16)
PLATFORMS=()
for platform in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
                manylinux1_x86_64; do
  PLATFORMS+=(--platform "$platform")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
  -d .whl "${WHEELS[@]}" 2>&1 | grep -v "^WARNING: Location" || true
echo "wheels in .whl: $(ls .whl | wc -l) ($(du -sh .whl | cut -f1))"
SIGX_CACHE=$PWD/.sigx-cache OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$PY" -m sigx.cli train recipes/tiny.yaml \
  --set training.steps=1 --set training.eval_every=1 --set logging.wandb=disabled \
  --run-dir "$(mktemp -d)/run" --fresh > /tmp/gpu-prepare-train.log 2>&1 ||
  { tail -n 5 /tmp/gpu-prepare-train.log; echo "building the tiny model failed (log: /tmp/gpu-prepare-train.log)"; exit 1; }
echo "tiny model in .sigx-cache: $(ls .sigx-cache/tiny | grep -v lock | tr '\n' ' ')"
# du fails on tracked files that are not there (results/search-stress already moved aside): its total still counts
tracked=$( (git ls-files -z | xargs -0 du -cb 2>/dev/null || true) | tail -n 1 | cut -f1)
aside=$( (git ls-files -z results/search-stress | xargs -0 du -cb 2>/dev/null || true) | tail -n 1 | cut -f1)
carried=$(du -sb .whl .sigx-cache | awk '{s += $1} END {print s}')
echo "would travel: $(( (tracked - aside + carried) / 2**20 )) MiB with results/search-stress moved aside" \
     "($(( (tracked + carried) / 2**20 )) MiB with it; the limit is 64 MiB)"
cat <<'EOF'
Then, with `status` saying a GPU is lent and no sitting running:
  mv results/search-stress /tmp/search-stress-aside
  device run, carry [".whl", ".sigx-cache"], timeout_s 595, command (the measurements, ~8 minutes):
    mkdir -p /tmp/gc; timeout 565 bash bench/gpu_check.sh /tmp/gc > /tmp/gc/console.log 2>&1;
    echo "gpu_check rc=$?" >> /tmp/gc/console.log; tar czf $OUT/gpu-check.tgz -C /tmp gc;
    cp /tmp/gc/console.log $OUT/; cat /tmp/gc/console.log
  at once, while the machine is warm (it goes back after 30 s idle), the same carry, timeout_s 280 (the suite):
    mkdir -p /tmp/gs; GPU_CHECK_PARTS=suite timeout 265 bash bench/gpu_check.sh /tmp/gs > /tmp/gs/console.log 2>&1;
    echo "gpu_check rc=$?" >> /tmp/gs/console.log; tar czf $OUT/gpu-suite.tgz -C /tmp gs;
    grep -A 12 "^>>> " /tmp/gs/tests.log | tail -c 9000; tail -n 5 /tmp/gs/tests.log
  give_back, then: mv /tmp/search-stress-aside results/search-stress && git status --short
EOF
