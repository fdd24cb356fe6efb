// The coefficient solve in one single-block kernel: a thread per segment runs solve_math.h, the
// block ANDs the finiteness, then the skip flag, momentum readiness (per group, or per tensor with
// its apply row), skip count and PCGrad's step counter are written on the device. Capturable: no
// host sync, fixed launch shape.
#include "common.cuh"
#include "ltu_fast/solve_math.h"
#include "solve.h"

namespace ltu_fast {
namespace cuda {
namespace {

constexpr int kSolveThreads = 256;

__global__ void __launch_bounds__(kSolveThreads) solve_kernel(SolveArgs a) {
  const auto* counter = reinterpret_cast<int64_t*>(a.counter);
  const uint64_t step = counter ? static_cast<uint64_t>(*counter) : 0;
  const SolveSpec spec{a.kind, a.k, a.protect, a.iterations, a.random_order, a.seed};
  const auto* gram = reinterpret_cast<const float*>(a.gram);
  const auto* weights = reinterpret_cast<const float*>(a.weights);
  const auto* grad_scale = reinterpret_cast<const float*>(a.grad_scale);
  auto* beta = reinterpret_cast<float*>(a.beta);
  bool ok = true;
  for (int64_t s = threadIdx.x; s < a.num_segments; s += kSolveThreads) {
    double b[kMaxSolveK];
    ok = solve_segment(gram + s * a.k * a.k, weights, spec, step, b) && ok;
    for (int j = 0; j < a.k; ++j) beta[s * a.k + j] = float(grad_scale ? b[j] / *grad_scale : b[j]);
  }
  const bool all_ok = __syncthreads_and(ok);  // also orders every read of the counter before its update
  const auto* found_inf_in = reinterpret_cast<const float*>(a.found_inf_in);
  const float skip = (!all_ok || (found_inf_in && *found_inf_in != 0.0f)) ? 1.0f : 0.0f;
  const auto* hyper = reinterpret_cast<const float*>(a.hyper);
  auto* ready = reinterpret_cast<float*>(a.ready);
  auto* ready_before = reinterpret_cast<float*>(a.ready_before);
  if (a.ready && a.tensors)
    for (int64_t t = threadIdx.x; t < a.num_tensors; t += kSolveThreads)
      update_tensor_ready(gram, a.k, reinterpret_cast<const int64_t*>(a.tensors), hyper, t, skip, ready, ready_before,
                          reinterpret_cast<float*>(a.tensor_hyper));
  else if (a.ready)
    for (int64_t q = threadIdx.x; q < a.num_groups; q += kSolveThreads)
      update_ready(hyper, q, skip, ready, ready_before);
  if (threadIdx.x == 0) {
    *reinterpret_cast<float*>(a.flag) = skip;
    if (a.skipped) *reinterpret_cast<int64_t*>(a.skipped) += skip != 0.0f;
    if (counter && a.random_order) *reinterpret_cast<int64_t*>(a.counter) += 1;
  }
}

}  // namespace

void solve(const SolveArgs& a) {
  DeviceGuard guard(a.device);
  solve_kernel<<<1, kSolveThreads, 0, reinterpret_cast<cudaStream_t>(a.stream)>>>(a);
  check(cudaGetLastError(), "solve_kernel launch");
}

}  // namespace cuda
}  // namespace ltu_fast
