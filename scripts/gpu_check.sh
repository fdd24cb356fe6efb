#!/usr/bin/env bash
# One-shot GPU check (no internet needed): build ltu_fast in place with the CUDA module, run the
# GPU tests, compute-sanitizer memcheck + racecheck on a small driver (cuda and triton kernels),
# then the benchmark table and issue #10's targets (scripts/gpu_targets.py).
# Logs go to $OUT (or build/gpu_check). Exit status: non-zero if any step failed or a target missed.
#   bash scripts/gpu_check.sh                 # everything, one call (step limits add up past 10 min)
#   STEPS="build import tests sanitizer" bash scripts/gpu_check.sh; STEPS=bench bash scripts/gpu_check.sh
#                                             # the same in two calls, for a 10-minute-per-command lease
#   BENCH_ARGS="--models resnet18" bash scripts/gpu_check.sh
#   STEPS="build tests" bash scripts/gpu_check.sh      # a subset: build import tests sanitizer bench
# The CUDA toolkit: setup.py picks the nvcc matching torch.version.cuda when several are installed
# (CUDACXX overrides); env.txt records the driver, toolkit, torch and triton versions.
set -u -o pipefail
cd "$(dirname "$0")/.."
LOG="${OUT:-build/gpu_check}"
mkdir -p "$LOG"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export LTU_FAST_CUDA=1 CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
STEPS=" ${STEPS:-build import tests sanitizer bench} "
status=0

run_step() {  # run_step NAME TIMEOUT_S CMD...: log to $LOG/NAME.log, print a one-line verdict
  local name=$1 limit=$2
  shift 2
  [[ "$STEPS" == *" ${name%%_*} "* ]] || return 0
  local t0=$SECONDS
  if timeout "$limit" "$@" >"$LOG/$name.log" 2>&1; then
    echo "[ok]   $name ($((SECONDS - t0)) s)"
  else
    echo "[FAIL] $name (rc=$?, $((SECONDS - t0)) s), last lines of $LOG/$name.log:"
    tail -n 25 "$LOG/$name.log"
    status=1
  fi
}

{ nvidia-smi; nvcc --version; python -c "import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__)"; } \
  >"$LOG/env.txt" 2>&1
head -n 20 "$LOG/env.txt"

run_step build 420 python setup.py build_ext --inplace
run_step import 60 python -c "
import ltu_fast._C_cuda, ltu_fast
from ltu_fast.backends import available_backends
print('driver, runtime:', ltu_fast._C_cuda.versions())
status = available_backends()
print(status)
assert status['cuda'] is None and status['triton'] is None, status"

# every test that touches the GPU paths (the rest of the suite is CPU-only and runs in CI)
run_step tests 420 python -m pytest -q -rs --maxfail=20 tests/test_gpu.py tests/test_triton_backend.py \
  tests/test_cuda_graphs.py tests/test_kernel_guards.py tests/test_triton_ptx.py tests/test_cuda_versions.py \
  tests/test_compile_amp.py tests/test_backends.py tests/test_optim.py

cat >"$LOG/sanitize_driver.py" <<'PY'
"""Small driver for compute-sanitizer: every CUDA and Triton kernel, every dtype and K, tails,
vector (aligned plan) and scalar (align_bytes=4) paths, a CPU-built plan, a plan without chunks."""
import dataclasses

import torch
from ltu_fast.aggregators import PCGrad
from ltu_fast.backends import get_backend
from ltu_fast.functional import sgd_step
from ltu_fast.plan import SegmentPlan

for name in ("cuda", "triton"):
    backend = get_backend(name)
    backend.CHUNK = 256
    if name == "triton":
        backend.BLOCK = 64  # a 256-element chunk then runs the unmasked main loop and the masked tail
    for align in (64, 4):
        plan = SegmentPlan.build([1, 1000, 37, 513], [0, 1, 0, 2], [0, 1, 1, 0], align_bytes=align)  # on the CPU
        empty = dataclasses.replace(plan, numels=(), segments=(), groups=(), offsets=(), cache={})
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            for k in (1, 2, 3, 4):
                rows = torch.randn(k, plan.total, device="cuda").to(dtype)
                param = torch.randn(plan.total, device="cuda")
                for momentum in (torch.zeros(plan.total, device="cuda"), param.new_zeros(0)):
                    hyper = torch.tensor([[0.1, 0.01, 0.9, 0.0, 1.0, 0.0], [0.2, 0.0, 0.0, 0.0, 0.0, 1.0]],
                                         device="cuda")
                    ready = torch.tensor([1.0, 0.0], device="cuda")
                    stats = sgd_step(rows, plan, param, momentum, hyper, ready, PCGrad(), backend)
                    backend.combine(rows, stats.beta, plan)
                    assert not backend.gram(rows, empty).any()
                backend.axpy(param, rows[0], 0.5)
                backend.axpy(param, rows[-1], torch.tensor(0.25, device="cuda"))
torch.cuda.synchronize()
print("driver ok")
PY
for tool in memcheck racecheck; do
  run_step "sanitizer_$tool" 240 compute-sanitizer --tool "$tool" --error-exitcode 3 python "$LOG/sanitize_driver.py"
done

# The table last (the reply carries the end of the output). Compile baselines only where compile
# time fits the slot.
run_step bench_compile 300 python -m ltu_fast.bench --models resnet18 gpt2_small --variants cuda foreach compile \
  --no-extra ${BENCH_ARGS:-}
run_step bench 420 python -m ltu_fast.bench --variants cuda triton loop foreach ${BENCH_ARGS:-}
echo "---- torch.compile baseline (resnet18, gpt2_small)"
tail -n 8 "$LOG/bench_compile.log"
echo "---- main table"
tail -n 30 "$LOG/bench.log"
if [[ "$STEPS" == *" bench "* ]]; then
  echo "---- targets (issue #10)"
  python scripts/gpu_targets.py "$LOG/bench.log" | tee "$LOG/targets.txt" || status=1
fi
exit $status
