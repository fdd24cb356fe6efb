// The coefficient solve in one single-block kernel: a thread per segment runs solve_segment.h (the
// aggregator's function and its state row), the block ANDs the finiteness, then the update rule's
// per-tensor rows (a thread per tensor runs its prepare), the skip flag, skip count and the
// aggregator's step counter are written on the device.
// Capturable: no host sync, fixed launch shape.
#include <stdexcept>
#include <string>

#include "common.cuh"
#include "ltu_fast/rules.h"
#include "ltu_fast/solve_segment.h"
#include "solve.h"

namespace ltu_fast {
namespace cuda {
namespace {

constexpr int kSolveThreads = 256;

__global__ void __launch_bounds__(kSolveThreads) solve_kernel(SolveArgs a) {
  const auto* counter = reinterpret_cast<int64_t*>(a.counter);
  const uint64_t step = counter ? static_cast<uint64_t>(*counter) : 0;
  const int k = a.spec.k;
  auto* aggregator_state = reinterpret_cast<double*>(a.aggregator_state);
  const auto* gram = reinterpret_cast<const float*>(a.gram);
  const auto* weights = reinterpret_cast<const float*>(a.weights);
  const auto* grad_scale = reinterpret_cast<const float*>(a.grad_scale);
  auto* beta = reinterpret_cast<float*>(a.beta);
  const double divisor = grad_scale && a.unscale_gram ? double(*grad_scale) * double(*grad_scale) : 1.0;
  bool ok = true;
  for (int64_t s = threadIdx.x; s < a.num_segments; s += kSolveThreads) {
    double b[kMaxSolveK];
    double* state = aggregator_state ? aggregator_state + s * a.state_width : nullptr;
    ok = solve_segment(gram + s * k * k, weights, divisor, a.spec, step, state, b) && ok;
    for (int j = 0; j < k; ++j) beta[s * k + j] = float(grad_scale ? b[j] / *grad_scale : b[j]);
  }
  const bool all_ok = __syncthreads_and(ok);  // also orders every read of the counter before its update
  const auto* found_inf_in = reinterpret_cast<const float*>(a.found_inf_in);
  const bool skip = !all_ok || (found_inf_in && *found_inf_in != 0.0f);
  if (a.rule >= 0) {
    const PrepareArgs prepare{a.rule, reinterpret_cast<const int64_t*>(a.tensors), a.num_tensors,
                              reinterpret_cast<const float*>(a.group_f32), reinterpret_cast<const double*>(a.group_f64),
                              reinterpret_cast<float*>(a.state), reinterpret_cast<const float*>(a.touched),
                              reinterpret_cast<float*>(a.rows)};
    for (int64_t t = threadIdx.x; t < a.num_tensors; t += kSolveThreads) prepare_tensor(prepare, t, skip);
  }
  if (threadIdx.x == 0) {
    *reinterpret_cast<float*>(a.flag) = skip ? 1.0f : 0.0f;
    if (a.skipped) *reinterpret_cast<int64_t*>(a.skipped) += skip;
    if (counter) *reinterpret_cast<int64_t*>(a.counter) += 1;
  }
}

}  // namespace

void solve(const SolveArgs& a) {
  if (a.rule >= 0 && !known_rule(a.rule))
    throw std::invalid_argument("ltu_fast._C_cuda: unknown update rule code " + std::to_string(a.rule));
  DeviceGuard guard(a.device);
  solve_kernel<<<1, kSolveThreads, 0, reinterpret_cast<cudaStream_t>(a.stream)>>>(a);
  check(cudaGetLastError(), "solve_kernel launch");
}

}  // namespace cuda
}  // namespace ltu_fast
