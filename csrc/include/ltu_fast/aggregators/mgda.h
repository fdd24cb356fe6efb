// MGDA, the active-set method (ltu_fast/aggregators/mgda.py, method="active_set"): the min-norm
// point of the gradients' hull, argmin_{w in simplex} w^T G' w on G' = G / trace(G).
// Slots: ints[0] = iterations (None resolved to 2 K + 4 on the host).
#pragma once

#include "ltu_fast/aggregators/qp.h"

namespace ltu_fast {

LTU_HD void mgda_segment(const SolveSpec& s, const Gram& g, uint64_t, double*, double* beta) {
  const int k = s.k;
  if (k == 1) {
    beta[0] = 1.0;
    return;
  }
  Gram normalized;
  const double zero[kMaxSolveK] = {};
  qp_trace_normalized(g, k, 0.0, normalized);
  qp_simplex_minimize(normalized, zero, 1.0, k, int(s.ints[0]), beta);
}

}  // namespace ltu_fast
