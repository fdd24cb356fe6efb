// UPGrad (ltu_fast/aggregators/upgrad.py): w = sum_i argmin_{v >= p_i e_i} v^T G' v, with torchjd's
// G' = G / trace(G) + reg_eps I. Slots: ints[0] = iterations (None resolved to 2 K + 4 on the host),
// floats[0] = norm_eps, floats[1] = reg_eps, floats[kSpecPreference + i] = p_i.
#pragma once

#include "ltu_fast/aggregators/qp.h"

namespace ltu_fast {

LTU_HD void upgrad_segment(const SolveSpec& s, const Gram& g, uint64_t, double*, double* beta) {
  const int k = s.k;
  Gram q_matrix;
  qp_regularized(g, k, s.floats[0], s.floats[1], q_matrix);
  const int iterations = int(s.ints[0]);
  for (int i = 0; i < k; ++i) beta[i] = 0.0;
  for (int n = 0; n < k; ++n) {
    double u[kMaxSolveK];
    for (int i = 0; i < k; ++i) u[i] = i == n ? s.floats[kSpecPreference + n] : 0.0;
    qp_dual_cone_add(q_matrix, u, k, iterations, beta);
  }
}

}  // namespace ltu_fast
