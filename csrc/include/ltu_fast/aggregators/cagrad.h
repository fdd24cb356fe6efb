// CAGrad (ltu_fast/aggregators/cagrad.py): on G' = G / trace(G) (0 below norm_eps), with b = G' 1 / K
// and radius = c |g0| (|g0|^2 = 1^T b / K), w* = argmin_{w in simplex} b^T w + radius sqrt(w^T G' w);
// beta = 1/K + radius / |g_w*| w*, or 0 where |g_w*| < norm_eps.
// Slots: ints[0] = iterations (None resolved to 2 K + 4 on the host), floats[0] = c, floats[1] = norm_eps.
#pragma once

#include "ltu_fast/aggregators/qp.h"

namespace ltu_fast {

LTU_HD void cagrad_segment(const SolveSpec& s, const Gram& g, uint64_t, double*, double* beta) {
  const int k = s.k;
  const double c = s.floats[0], norm_eps = s.floats[1];
  Gram normalized;
  qp_trace_normalized(g, k, norm_eps, normalized);
  double b[kMaxSolveK], w[kMaxSolveK], gw[kMaxSolveK];
  double mean = 0.0;
  for (int i = 0; i < k; ++i) {
    b[i] = 0.0;
    for (int j = 0; j < k; ++j) b[i] += normalized[i][j];
    b[i] /= k;
    mean += b[i];
  }
  const double radius = c * sqrt(fmax(mean / k, 0.0));
  qp_simplex_minimize(normalized, b, radius, k, int(s.ints[0]), w);
  qp_matvec(normalized, w, k, gw);
  double wgw = 0.0;
  for (int i = 0; i < k; ++i) wgw += w[i] * gw[i];
  const double norm = sqrt(fmax(wgw, 0.0));
  const bool away = norm >= norm_eps;
  for (int i = 0; i < k; ++i) beta[i] = away ? 1.0 / k + radius / norm * w[i] : 0.0;
}

}  // namespace ltu_fast
