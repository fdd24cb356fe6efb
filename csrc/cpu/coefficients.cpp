// CPU coefficient solve: Gram statistics -> beta and the skip flag, then the update rule's
// per-tensor bookkeeping (prepare), in one call.
#include "coefficients.h"

#include "ltu_fast/solve_segment.h"

namespace ltu_fast::cpu {

void solve(const SolveArgs& a) {
  const uint64_t step = a.counter ? static_cast<uint64_t>(*a.counter) : 0;
  const int64_t k = a.spec.k;
  const float scale = a.grad_scale ? *a.grad_scale : 1.0f;
  const double divisor = a.unscale_gram ? double(scale) * double(scale) : 1.0;
  bool ok = true;
  double beta[kMaxSolveK];
  for (int64_t s = 0; s < a.num_segments; ++s) {  // tiny: L segments of K <= 8, no threads
    double* state = a.aggregator_state ? a.aggregator_state + s * a.state_width : nullptr;
    ok = solve_segment(a.gram + s * k * k, a.weights, divisor, a.spec, step, state, beta) && ok;
    for (int64_t j = 0; j < k; ++j) a.beta[s * k + j] = float(a.grad_scale ? beta[j] / scale : beta[j]);
  }
  const bool skip = !ok || (a.found_inf_in && *a.found_inf_in != 0.0f);
  *a.flag = skip ? 1.0f : 0.0f;
  if (a.rule.rule >= 0)
    for (int64_t t = 0; t < a.rule.num_tensors; ++t) prepare_tensor(a.rule, t, skip);
  if (a.skipped) *a.skipped += skip;
  if (a.counter) *a.counter += 1;
}

}  // namespace ltu_fast::cpu
