// DualProj (ltu_fast/aggregators/dualproj.py): w = argmin_{w >= p} w^T G' w, with torchjd's
// G' = G / trace(G) + reg_eps I. Slots: ints[0] = iterations (None resolved to 2 K + 4 on the host),
// floats[0] = norm_eps, floats[1] = reg_eps, floats[kSpecPreference + i] = p_i.
#pragma once

#include "ltu_fast/aggregators/qp.h"

namespace ltu_fast {

LTU_HD void dualproj_segment(const SolveSpec& s, const Gram& g, uint64_t, double*, double* beta) {
  const int k = s.k;
  Gram q_matrix;
  qp_regularized(g, k, s.floats[0], s.floats[1], q_matrix);
  for (int i = 0; i < k; ++i) beta[i] = 0.0;
  qp_dual_cone_add(q_matrix, s.floats + kSpecPreference, k, int(s.ints[0]), beta);
}

}  // namespace ltu_fast
