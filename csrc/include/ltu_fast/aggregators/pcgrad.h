// PCGrad (ltu_fast/aggregators/pcgrad.py) in coefficient space: c_i = e_i, then for j in i's visit
// order c_i[j] -= min(<c_i, G[:, j]> / G_jj, 0) (0 where G_jj = 0); beta = sum_i c_i.
// Slots: ints[0] = random order (0/1), ints[1] = seed (low 32 bits).
#pragma once

#include "ltu_fast/aggregators/common.h"
#include "ltu_fast/aggregators/visit_order.h"

namespace ltu_fast {

LTU_HD void pcgrad_segment(const SolveSpec& s, const Gram& g, uint64_t step, double*, double* beta) {
  const int k = s.k;
  for (int a = 0; a < k; ++a) beta[a] = 0.0;
  int order[kMaxSolveK];
  for (int i = 0; i < k; ++i) {
    double c[kMaxSolveK];
    for (int a = 0; a < k; ++a) c[a] = a == i ? 1.0 : 0.0;
    visit_order(k, s.ints[0] != 0, static_cast<uint32_t>(s.ints[1]), step, i, order);
    for (int t = 0; t < k - 1; ++t) {
      const int j = order[t];
      double dot = 0.0;
      for (int m = 0; m < k; ++m) dot += c[m] * g[m][j];
      const double proj = safe_ratio(dot, g[j][j]);
      c[j] -= proj < 0.0 ? proj : 0.0;
    }
    for (int a = 0; a < k; ++a) beta[a] += c[a];
  }
}

}  // namespace ltu_fast
