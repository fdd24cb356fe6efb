#!/usr/bin/env bash
# The GPU check in one call (issue #21): build, test and measure within one deadline, and return the
# evidence even when cut short. Made for a GPU lent for minutes (one command of at most ~9 minutes):
#
#   bash scripts/gpu_check.sh          # logs in $OUT (the folder the device tool returns), else build/gpu_check
#
# Steps, most important evidence first; each runs under `timeout -k 5 min(its cap, time left)`, its
# output on the console and in its log (PYTHONUNBUFFERED, so a cut step keeps what it printed):
#   env       nvidia-smi, nvcc, compute-sanitizer, python/torch/triton versions       -> build.log
#   build     setup.py build_ext --inplace for this GPU's architecture only, import    -> build.log
#   smoke     a quick subset of the GPU tests on both backends                         -> smoke.log
#   bench     the table (SGD and AdamW; K = 2, 3, 4 and bf16; ResNet-18 and GPT-2 small
#             shapes; eager back-to-back and CUDA-graph replayed) + scripts/gpu_targets.py -> bench.log
#   tests     every GPU test file, CUDA and Triton in two processes run side by side (a sticky
#             CUDA fault in one cannot take the other down)                           -> tests_cuda.log, tests_triton.log
#   memcheck  compute-sanitizer memcheck of scripts/gpu_sanitize.py per backend, without torch's
#             caching allocator (it hides out-of-bounds accesses inside its blocks), if >= 100 s remain -> memcheck.log
#   rest      the table for GPT-2 medium and a 1.1B-parameter model, if time is left   -> rest.log
# then a summary, the table and the targets again, so a truncated console still ends with them.
# At most 7 files land in the log folder (the device tool returns at most 8). Without a GPU the GPU
# steps are skipped, each saying why. Exit status 1 if a step failed or was cut, or a target missed.
#
# Environment: PYTHON (default python3); GPU_CHECK_BUDGET (seconds of work, default 450: with the
# device tool's limit at 540 s, time is left for the closing reprint); STEPS (a subset of
# "build smoke bench tests memcheck rest", e.g. for a rerun on a warm machine; env always runs);
# LTU_FAST_CUDA_ARCHS (default: the visible GPU's, 90 on an H100/H200, 90 without a GPU);
# BENCH_ARGS (extra arguments for the main table); CUDACXX (the nvcc; default: setup.py's choice).
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=${OUT:-build/gpu_check}
BUDGET=${GPU_CHECK_BUDGET:-450}
STEPS=" ${STEPS:-build smoke bench tests memcheck rest} "
START=$SECONDS
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" LTU_FAST_CUDA=1
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
PYTEST=("$PY" -m pytest -p no:cacheprovider -rfEs --tb=short)
GPU_TESTS=(tests/test_gpu.py tests/test_gpu_adamw.py tests/test_step_ops.py tests/test_cuda_graphs.py
           tests/test_solve.py tests/test_untouched_solve.py tests/test_backends.py tests/test_triton_backend.py
           tests/test_triton_adamw.py)
BENCH=("$PY" -m ltu_fast.bench --variants cuda cuda+graph triton triton+graph foreach)
status=0
SUMMARY=()

left() { echo $((BUDGET - (SECONDS - START))); }
note() { SUMMARY+=("$1"); echo "$1"; }
wanted() { [[ "$STEPS" == *" $1 "* ]]; }

limit_for() {  # CAP -> min(CAP, time left)
  local l; l=$(left)
  echo $((l < $1 ? l : $1))
}

verdict() {  # NAME RC SECONDS LOGFILE
  case $2 in
    0) note "[ok]   $1 ($3 s)" ;;
    124 | 137) note "[CUT]  $1: stopped at its time limit after $3 s (what it printed is in $LOG/$4)"; status=1 ;;
    *) note "[FAIL] $1: exit status $2 after $3 s (see $LOG/$4)"; status=1 ;;
  esac
}

step() {  # NAME CAP LOGFILE CMD...: CMD under min(CAP, time left), on the console and appended to LOGFILE
  local name=$1 limit log=$3 t0=$SECONDS rc
  limit=$(limit_for "$2")
  shift 3
  if ((limit < 15)); then
    note "[skip] $name: $(left) s of the $BUDGET s budget left"
    return 0
  fi
  echo "==== $name (limit $limit s; $(left) s of the budget left)" | tee -a "$LOG/$log"
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG/$log"
  rc=${PIPESTATUS[0]}
  verdict "$name" "$rc" $((SECONDS - t0)) "$log"
}

find_tool() {  # NAME: on PATH, in a CUDA toolkit under /usr/local, or in a pip-installed nvidia package
  local candidate
  for candidate in "$(command -v "$1")" /usr/local/cuda*/bin/"$1" /usr/local/cuda*/"$1"/"$1" \
    $("$PY" -c "import glob, site; print(' '.join(p for s in site.getsitepackages() for p in
                glob.glob(s + '/nvidia/*/bin/$1') + glob.glob(s + '/nvidia/*/$1/$1')))" 2>/dev/null); do
    if [[ -n "$candidate" && -x "$candidate" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

judge() {  # LOGFILE...: scripts/gpu_targets.py on these tables; its verdicts also go into the first
  local out rc
  out=$("$PY" scripts/gpu_targets.py "$@")
  rc=$?
  echo "$out" | tee -a "$1"
  case $rc in
    0) note "[ok]   targets: all met" ;;
    2) note "[FAIL] targets: no cuda rows in the table to judge"; status=1 ;;
    *) note "[MISS] targets: $(grep -c '^\[MISS\]' <<<"$out") missed (listed above and in $1)"; status=1 ;;
  esac
}

# ---------------------------------------------------------------------------------- env
SANITIZER=$(find_tool compute-sanitizer) || SANITIZER=""
GPU=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null) || GPU=0
NO_GPU="no CUDA device visible to torch (torch.cuda.is_available() is False)"
ARCHS=${LTU_FAST_CUDA_ARCHS:-$("$PY" -c "import torch; print('%d%d' % torch.cuda.get_device_capability())" \
  2>/dev/null || echo 90)}
{
  echo "==== env ($(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(uname -srm); $(nproc) CPUs)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo 'unknown (no git metadata in this copy)')"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  else
    echo "nvidia-smi: not found"
  fi
  echo "nvcc: $(find_tool nvcc || echo 'not found: the cuda backend cannot be built here (triton still runs)')"
  echo "compute-sanitizer: ${SANITIZER:-not found: memcheck will be skipped}"
  echo "CUDA architectures to build: $ARCHS"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda',
            torch.version.cuda, '| device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
  "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1 | tail -n 1
} 2>&1 | tee -a "$LOG/build.log"

# ------------------------------------------------------------------------------- build
if wanted build; then
  step build 180 build.log env LTU_FAST_CUDA_ARCHS="$ARCHS" "$PY" setup.py build_ext --inplace
  step import 60 build.log "$PY" -c "
import torch
from ltu_fast.backends import available_backends
status = available_backends()
print('backends (None = usable):', status)
if torch.cuda.is_available():
    from ltu_fast import _C_cuda
    print('_C_cuda driver, runtime:', _C_cuda.versions())
    assert status['cuda'] is None and status['triton'] is None, status"
fi

# ------------------------------------------------------------------------------- smoke
if wanted smoke; then
  if ((GPU)); then
    smoke="(large_segments and float32) or bitwise or non_finite or zero_sizes or host_weights or capturable"
    step smoke 90 smoke.log "${PYTEST[@]}" -q --maxfail=10 tests/test_gpu.py tests/test_gpu_adamw.py \
      -k "$smoke or one_objective_equals_fused"
  else
    note "[skip] smoke: $NO_GPU"
  fi
fi

# ------------------------------------------------------------------------------- bench
if wanted bench; then
  if ((GPU)); then
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of words
    step bench 170 bench.log "${BENCH[@]}" --models resnet18 gpt2_small --extra-models resnet18 gpt2_small \
      ${BENCH_ARGS:-}
    judge "$LOG/bench.log"
  else
    note "[skip] bench: $NO_GPU"
  fi
fi

# ------------------------------------------------------------------------------- tests
if wanted tests; then
  limit=$(limit_for 180)
  if ((!GPU)); then
    note "[skip] tests: $NO_GPU"
  elif ((limit < 15)); then
    note "[skip] tests: $(left) s of the $BUDGET s budget left"
  else
    echo "==== tests: CUDA and Triton side by side (limit $limit s; $(left) s of the budget left)"
    t0=$SECONDS
    timeout -k 5 "$limit" "${PYTEST[@]}" -v --maxfail=25 -k "not (triton or cpu or handful)" "${GPU_TESTS[@]}" \
      >"$LOG/tests_cuda.log" 2>&1 &
    cuda_pid=$!
    timeout -k 5 "$limit" "${PYTEST[@]}" -v --maxfail=25 -k "triton" "${GPU_TESTS[@]}" \
      >"$LOG/tests_triton.log" 2>&1 &
    triton_pid=$!
    wait "$cuda_pid"
    cuda_rc=$?
    wait "$triton_pid"
    triton_rc=$?
    for which in cuda triton; do
      rc_var=${which}_rc
      echo "---- tests ($which), the failures and the last lines of $LOG/tests_$which.log"
      grep -E '^(FAILED|ERROR) ' "$LOG/tests_$which.log" | head -n 25
      tail -n 4 "$LOG/tests_$which.log"
      verdict "tests ($which)" "${!rc_var}" $((SECONDS - t0)) "tests_$which.log"
    done
  fi
fi

# ---------------------------------------------------------------------------- memcheck
if wanted memcheck; then
  if ((!GPU)); then
    note "[skip] memcheck: $NO_GPU"
  elif [[ -z "$SANITIZER" ]]; then
    note "[skip] memcheck: compute-sanitizer not found (PATH, /usr/local/cuda*, pip nvidia packages)"
  elif (($(left) < 100)); then
    note "[skip] memcheck: $(left) s left, it needs 100"
  else
    for backend in cuda triton; do  # the first may take half of what is left
      cap=$(left)
      [[ $backend == cuda ]] && cap=$((cap / 2))
      step "memcheck ($backend)" "$cap" memcheck.log env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" \
        --tool memcheck --error-exitcode 3 --print-limit 50 "$PY" scripts/gpu_sanitize.py "$backend"
    done
  fi
fi

# -------------------------------------------------------------------------------- rest
if wanted rest; then
  if ((!GPU)); then
    note "[skip] rest: $NO_GPU"
  else
    step rest 240 rest.log "${BENCH[@]}" --models gpt2_medium synthetic_1b --no-extra
    [[ -s "$LOG/rest.log" ]] && judge "$LOG/rest.log"
  fi
fi

# ------------------------------------------------------------------ the evidence, last
echo
echo "==== summary ($((SECONDS - START)) s of work; logs in $LOG)"
printf '%s\n' "${SUMMARY[@]}"
logs=()
for f in "$LOG/bench.log" "$LOG/rest.log"; do [[ -s "$f" ]] && logs+=("$f"); done
tables=$(cat "${logs[@]}" /dev/null | grep -E '^(device |model |\S+ +[0-9.]+M +[0-9]+ )')
if [[ -n "$tables" ]]; then
  echo "==== tables"
  echo "$tables"
  echo "==== targets"
  "$PY" scripts/gpu_targets.py "${logs[@]}"
else
  echo "==== no table: the bench did not run (see the summary)"
fi
exit $status
