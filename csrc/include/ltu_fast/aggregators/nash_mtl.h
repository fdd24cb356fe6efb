// Nash-MTL (ltu_fast/aggregators/nash_mtl.py): alpha * (G alpha) = 1 by damped Newton (newton.h),
// recomputed every update_weights_every steps and kept in state in between, then clipped to
// |J^T alpha| <= max_norm.
#pragma once

#include "ltu_fast/aggregators/common.h"
#include "ltu_fast/aggregators/newton.h"

namespace ltu_fast {

// slots: ints[0] = update_weights_every, ints[1] = Newton iterations, floats[0] = max_norm (0: no clipping);
// state: the last solved weights [k], before clipping (the torch reference's "weights" row).
LTU_HD void nash_mtl_segment(const SolveSpec& s, const Gram& g, uint64_t step, double* state, double* beta) {
  const int k = s.k;
  const int64_t every = s.ints[0];
  Gram psd;  // the Gram the weights solve and the clip measure (float32 rounding made PSD again)
  nearest_psd(g, k, psd);
  if (every <= 1 || step % static_cast<uint64_t>(every) == 0) {
    power_equation(psd, k, 1.0, s.ints[1], beta);
  } else {
    for (int i = 0; i < k; ++i) beta[i] = state[i];
  }
  for (int i = 0; i < k; ++i) state[i] = beta[i];
  const double max_norm = s.floats[0];
  if (max_norm > 0.0) {
    double gb[kMaxSolveK];
    qp_matvec(psd, beta, k, gb);
    double squared = 0.0;
    for (int i = 0; i < k; ++i) squared += beta[i] * gb[i];
    const double norm = sqrt(squared < 0.0 ? 0.0 : squared);
    if (norm > max_norm)
      for (int i = 0; i < k; ++i) beta[i] *= max_norm / norm;
  }
}

}  // namespace ltu_fast
