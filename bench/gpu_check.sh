#!/usr/bin/env bash
# Every GPU check, on a GPU machine without network (the device tool's H100/H200), in two calls: the measurements
# (about 8 minutes), then the suite on CUDA (about 4 minutes) in a second call while the machine is still warm.
# Together they have never fit one 10-minute call (H200, 2026-12-04: the suite cut off twice).
# Each part's limit is set from the runs so far: H100 2026-11-26 (bench 150M ~145 s, 0.5B ~140 s with more steps,
# the suite not done in 150 s with -n 8); H200 2026-12-04 (train 24 s, bench 150M 136 s, 0.5B 120 s, memory 25 s
# and, with LoRA, 45 s (its limit then), the suite at 86% after 110 s with -n 14); H200 2026-12-04 at 14:06 (train
# 28 s, bench 150M 150 s, 0.5B cut at 130 s with nothing printed, memory 33 s, LoRA 52 s; the suite to 100% in
# 230 s with -n 16); each part prints how far into the run it started, to tune them. The measurements' limits
# add up to 530 s (the wheels' install and nvidia-smi before them ~12 s): under the 565 s the call gives them.
#
#   bash bench/gpu_check.sh [OUT]                          # parts 1-4; OUT defaults to $OUT or /tmp/gpu-check
#   GPU_CHECK_PARTS=suite bash bench/gpu_check.sh [OUT]    # part 5 alone (GPU_CHECK_PARTS=all: all five)
#
# What it needs beside the checkout (carried with the device tool's `carry`; `bash bench/gpu_prepare.sh` makes both
# and prints the call):
#   .whl/          wheels for what the GPU image lacks (its 2026-11 image has peft, accelerate, psutil,
#                  pyarrow, xxhash): pydantic, pydantic-core, annotated-types, typing-inspection,
#                  typing-extensions (sigx); trl, datasets, dill, multiprocess (the TRL bench, skipped with a line
#                  saying so when trl cannot be imported); bm25s (its tests skip without it). The pinned
#                  versions are bench/gpu_prepare.sh's WHEELS, the one list of them
#   .sigx-cache/   a built tiny model (SIGX_CACHE), so that no 2-minute warm start runs on the GPU's clock
# The checkout must travel under the device tool's 64 MiB: results/search-stress (its archives, ~120 MB) is moved
# aside for the call and back after it; the tests that read its scripts are then left out (below).
# What it does, each part under its own time limit, all output under OUT (one log per part):
#   1. a short `sigx train` of the demo recipe
#   2. bench/trl_step.py, sigx against TRL's GRPOTrainer, on a 150M-parameter shape of the built-in model, sigx
#      with the GPU rollout (a bf16 copy of the policy fed by the in-place push, static cache, compiled decode
#      step: rollout.backend/dtype/decoder/compile), then (--profile) the share of a step the GPU is busy
#   3. the bench on a Qwen2.5-0.5B-shaped model (hidden 896, 24 layers, 14 heads, 2 kv heads, intermediate 4864)
#   4. the memory plan against the peak a short run allocates (bench/gpu_memory.py; 0.5B shape, full and LoRA r=16),
#      then bench/sdpa_shapes.py on the 150M shape: whether a sequence length the process has not seen costs the
#      update a new attention plan (cuDNN's), the guess at why its update swings from step to step
#   5. the test suite on CUDA (pytest -n 14, each result named as it ends and each failure's reason written when
#      it is known, bench/pytest_live_failures.py: twice pytest never printed its summary; the Ray executor and
#      the 2-process CPU tests left out: one GPU cannot host a 2-process NCCL run)
# Both model shapes are randomly initialised (sft_steps 0): the benchmark times the machinery, not learning.
#
# Rehearse it on a CPU before spending GPU time (the flow, the flags, the logs; about 3 minutes on 2 cores):
#   GPU_CHECK_SMOKE=1 GPU_CHECK_PARTS=all PYTHON=/path/to/python-with-trl bash bench/gpu_check.sh /tmp/gpu-check-smoke
# (the tiny shape, 16 new tokens, two test files; no wheels installed; nothing it prints is a GPU figure)
set -uo pipefail
SMOKE=${GPU_CHECK_SMOKE:-}
PARTS=${GPU_CHECK_PARTS:-measure}
case "$PARTS" in measure|suite|all) ;; *) echo "GPU_CHECK_PARTS: '$PARTS' is not one of measure, suite, all"; exit 2 ;; esac
PY=${PYTHON:-python3}
OUT=${1:-${OUT:-/tmp/gpu-check}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
export SIGX_CACHE=${SIGX_CACHE:-$PWD/.sigx-cache}
if [ -d .whl ] && [ -z "$SMOKE" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
started=$(date +%s)
part() {  # part NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.log, say how it ended
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s, $(( $(date +%s) - started ))s in)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  grep -E "(FAILED|ERROR) |^E |Error" "$OUT/$name.log" | tail -n 20; tail -n 8 "$OUT/$name.log"
  echo "== $name: rc=$rc"
  last_rc=$rc
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"

SHAPE_150M="--set model.tiny.hidden_size=1024 --set model.tiny.num_layers=12 --set model.tiny.num_heads=16 \
 --set model.tiny.num_kv_heads=4 --set model.tiny.intermediate_size=2816 --set model.tiny.sft_steps=0"
SHAPE_05B="--set model.tiny.hidden_size=896 --set model.tiny.num_layers=24 --set model.tiny.num_heads=14 \
 --set model.tiny.num_kv_heads=2 --set model.tiny.intermediate_size=4864 --set model.tiny.sft_steps=0"
BENCH="--set training.autocast=bfloat16 --set rollout.max_new_tokens=256 --set training.skip_zero_advantage=false"
TESTS=tests WORKERS=14 TRAIN_STEPS=20 SDPA_SIZE=""
if [ -n "$SMOKE" ]; then
  SHAPE_150M="" SHAPE_05B="" TESTS="tests/engine/test_sampler.py tests/engine/test_rollout_correction.py" WORKERS=2 TRAIN_STEPS=4
  SDPA_SIZE="--widths 2 --rows 8"
  BENCH="--set rollout.max_new_tokens=16 --set training.skip_zero_advantage=false"
fi

HAVE_TRL=$($PY -c "import trl" 2>/dev/null && echo yes)
GPU_ROLLOUT="--set rollout.backend=hf_synced --set rollout.dtype=bfloat16 --set rollout.decoder=static \
 --set rollout.compile=true"

if [ "$PARTS" != suite ]; then
part train 30 $PY -m sigx.cli train recipes/tiny.yaml --set training.steps=$TRAIN_STEPS --set training.eval_every=$TRAIN_STEPS \
  --set logging.wandb=disabled --run-dir /tmp/gpu-check-train --fresh
if [ -n "$HAVE_TRL" ]; then
  # shellcheck disable=SC2086
  part bench_150m 180 $PY bench/trl_step.py recipes/tiny.yaml --steps 5 --warmup 2 --profile $SHAPE_150M $BENCH \
    $GPU_ROLLOUT
  if [ "$last_rc" != 0 ]; then  # the bf16 copy failed: the configuration measured on 2026-11-26 (autocast decoding)
    # shellcheck disable=SC2086
    part bench_150m_autocast 150 $PY bench/trl_step.py recipes/tiny.yaml --steps 4 --warmup 2 --profile \
      $SHAPE_150M $BENCH --set rollout.decoder=static --set rollout.compile=true --set rollout.dtype=bfloat16
  fi
  # shellcheck disable=SC2086
  part bench_qwen05b 170 $PY bench/trl_step.py recipes/tiny.yaml --steps 3 --warmup 1 $SHAPE_05B $BENCH $GPU_ROLLOUT
else
  echo "== bench: skipped (trl cannot be imported: bring its wheels in .whl/)"
  # shellcheck disable=SC2086
  part profile_150m 60 $PY bench/gpu_profile.py recipes/tiny.yaml $SHAPE_150M $BENCH $GPU_ROLLOUT
fi
# the memory plan against a measured peak (needs peft: its wheel in .whl/)
# shellcheck disable=SC2086
part memory_05b 45 $PY bench/gpu_memory.py recipes/tiny.yaml $SHAPE_05B --set rollout.max_new_tokens=64
# shellcheck disable=SC2086
part memory_05b_lora 60 $PY bench/gpu_memory.py recipes/tiny.yaml $SHAPE_05B --set rollout.max_new_tokens=64 \
  --set training.lora.r=16
# shellcheck disable=SC2086
part sdpa_shapes_150m 45 $PY bench/sdpa_shapes.py recipes/tiny.yaml $SHAPE_150M --set training.autocast=bfloat16 \
  $SDPA_SIZE
fi
[ "$PARTS" = measure ] && { echo "== done in $(( $(date +%s) - started ))s; logs in $OUT (the suite: GPU_CHECK_PARTS=suite)"; exit 0; }
# the suite on CUDA, last (the measurements above matter more in a short lease); tests of optional packages
# that the image lacks are left out
IGNORE=""
$PY -c "import peft" 2>/dev/null || IGNORE="--ignore=tests/engine/test_lora.py --ignore=tests/engine/test_distributed.py \
 --ignore=tests/test_memory.py"
# a file, not the folder: with the folder moved aside, `-d` still passed on the device and its scripts' tests
# ran and erred (2026-12-04; why the folder was there is not known)
[ -f results/search-stress/done_when.py ] || IGNORE="$IGNORE --ignore=tests/report/test_done_when.py \
 --ignore=tests/report/test_project_mde.py --ignore=tests/report/test_verdict_changes.py"
# shellcheck disable=SC2086
# TORCHINDUCTOR_COMPILE_THREADS=1: inductor compiles in its own process, no pool of compile workers; a guess at
# why pytest twice hung after the last test (a worker that cannot exit holds the summary back), not yet tested
TORCHINDUCTOR_COMPILE_THREADS=1 PYTHONPATH=$PYTHONPATH:$PWD/bench part tests ${GPU_CHECK_SUITE_S:-240} \
  $PY -m pytest -o addopts="" -v --tb=line -rfE -p no:cacheprovider -p pytest_live_failures -n $WORKERS $TESTS \
  -k "not ray" -m "not multiprocess" $IGNORE
echo "== done in $(( $(date +%s) - started ))s; logs in $OUT"
