// One-sided projection (ltu_fast/aggregators/project.py): beta = 1, then
// beta_r -= sum_{i != r} min(G_ir / G_rr, 0). Slots: ints[0] = r, the protected objective.
#pragma once

#include "ltu_fast/aggregators/common.h"

namespace ltu_fast {

LTU_HD void project_segment(const SolveSpec& s, const Gram& g, uint64_t, double*, double* beta) {
  const int r = static_cast<int>(s.ints[0]);
  double total = 0.0;
  for (int i = 0; i < s.k; ++i) {
    beta[i] = 1.0;
    const double proj = safe_ratio(g[i][r], g[r][r]);
    if (i != r && proj < 0.0) total += proj;
  }
  beta[r] -= total;
}

}  // namespace ltu_fast
