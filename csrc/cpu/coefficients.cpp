// CPU coefficient solve: Gram statistics -> beta, skip flag and optimizer bookkeeping in one call.
#include "coefficients.h"

#include "ltu_fast/solve_math.h"

namespace ltu_fast::cpu {

void solve(const SolveArgs& a) {
  const uint64_t step = a.counter ? static_cast<uint64_t>(*a.counter) : 0;
  const SolveSpec spec{a.kind, static_cast<int>(a.k), a.protect, a.iterations, a.random_order, a.seed};
  const float scale = a.grad_scale ? *a.grad_scale : 1.0f;
  bool ok = true;
  double beta[kMaxSolveK];
  for (int64_t s = 0; s < a.num_segments; ++s) {  // tiny: L segments of K <= 8, no threads
    ok = solve_segment(a.gram + s * a.k * a.k, a.weights, spec, step, beta) && ok;
    for (int64_t j = 0; j < a.k; ++j) a.beta[s * a.k + j] = float(a.grad_scale ? beta[j] / scale : beta[j]);
  }
  const float skip = (!ok || (a.found_inf_in && *a.found_inf_in != 0.0f)) ? 1.0f : 0.0f;
  *a.flag = skip;
  if (a.ready && a.tensors)
    for (int64_t t = 0; t < a.num_tensors; ++t)
      update_tensor_ready(a.gram, int(a.k), a.tensors, a.hyper, t, skip, a.ready, a.ready_before, a.tensor_hyper);
  else if (a.ready)
    for (int64_t q = 0; q < a.num_groups; ++q) update_ready(a.hyper, q, skip, a.ready, a.ready_before);
  if (a.skipped) *a.skipped += skip != 0.0f;
  if (a.counter && a.random_order) *a.counter += 1;
}

}  // namespace ltu_fast::cpu
