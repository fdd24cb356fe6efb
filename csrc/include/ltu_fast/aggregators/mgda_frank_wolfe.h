// MGDA(method="frank_wolfe") (ltu_fast/aggregators/mgda.py): K = 2 closed form (the min-norm point
// on the segment), K > 2 Frank-Wolfe with exact line search. Slots: ints[0] = iterations.
#pragma once

#include "ltu_fast/aggregators/common.h"

namespace ltu_fast {

LTU_HD void mgda_frank_wolfe_segment(const SolveSpec& s, const Gram& g, uint64_t, double*, double* beta) {
  const int k = s.k;
  if (k == 1) {
    beta[0] = 1.0;
    return;
  }
  if (k == 2) {
    const double den = g[0][0] + g[1][1] - 2.0 * g[0][1];
    const double a = den > 0.0 ? clamp01(safe_ratio(g[1][1] - g[0][1], den)) : 0.5;
    beta[0] = a;
    beta[1] = 1.0 - a;
    return;
  }
  for (int a = 0; a < k; ++a) beta[a] = 1.0 / k;
  for (int64_t it = 0; it < s.ints[0]; ++it) {
    double ga[kMaxSolveK];
    double vv = 0.0;
    int t = 0;
    for (int i = 0; i < k; ++i) {
      ga[i] = 0.0;
      for (int j = 0; j < k; ++j) ga[i] += g[i][j] * beta[j];
      vv += beta[i] * ga[i];
      if (ga[i] < ga[t]) t = i;  // first minimum, as torch.argmin
    }
    const double vt = ga[t];
    const double gamma = clamp01(safe_ratio(vv - vt, vv - 2.0 * vt + g[t][t]));
    for (int a = 0; a < k; ++a) beta[a] = (1.0 - gamma) * beta[a] + (a == t ? gamma : 0.0);
  }
}

}  // namespace ltu_fast
