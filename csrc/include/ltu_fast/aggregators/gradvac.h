// GradVac for one segment: ltu_fast/aggregators/gradvac.py step for step. PCGrad's pass in
// coefficient space towards the EMA target cosines phi_hat (this segment's state row, [k, k]
// row-major): objective i visits the others j (PCGrad's fixed or hashed random order) and, with phi
// the cosine of the modified g_i and g_j (denominators + eps, clamped to [-1, 1]), when phi < phi_hat adds
// |g_i| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2)) / (|g_j| sqrt(1 - phi_hat^2) + eps) g_j;
// every visit moves the target: phi_hat <- (1 - b) phi_hat + b phi. beta = sum of the modified g_i.
#pragma once

#include <cmath>

#include "ltu_fast/aggregators/common.h"
#include "ltu_fast/aggregators/visit_order.h"

namespace ltu_fast {

// slots: ints[0] = random visit order (0/1), ints[1] = its seed (low 32 bits), as PCGrad's;
// floats[0] = the EMA rate b, floats[1] = eps. state: the targets phi_hat[i][j] at state[i * k + j].
LTU_HD void gradvac_segment(const SolveSpec& s, const Gram& g, uint64_t step, double* state, double* beta) {
  const int k = s.k;
  const double rate = s.floats[0], eps = s.floats[1];
  double norms[kMaxSolveK], c[kMaxSolveK], cg[kMaxSolveK];
  int order[kMaxSolveK];
  for (int j = 0; j < k; ++j) {
    norms[j] = sqrt(g[j][j] < 0.0 ? 0.0 : g[j][j]);
    beta[j] = 0.0;
  }
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      c[j] = j == i ? 1.0 : 0.0;  // coefficients of the modified g_i
      cg[j] = g[i][j];            // <modified g_i, g_j>
    }
    visit_order(k, s.ints[0] != 0, static_cast<uint32_t>(s.ints[1]), step, i, order);
    double* target = state + i * k;
    for (int t = 0; t < k - 1; ++t) {
      const int j = order[t];
      double norm2 = 0.0;
      for (int m = 0; m < k; ++m) norm2 += c[m] * cg[m];
      const double norm_i = sqrt(norm2 < 0.0 ? 0.0 : norm2);
      const double ratio = cg[j] / (norm_i * norms[j] + eps);
      const double phi = ratio < -1.0 ? -1.0 : (ratio > 1.0 ? 1.0 : ratio);  // a cosine (clamp keeps NaN)
      const double hat = target[j];
      const double root_hat = sqrt(1.0 - hat * hat < 0.0 ? 0.0 : 1.0 - hat * hat);
      const double root_phi = sqrt(1.0 - phi * phi < 0.0 ? 0.0 : 1.0 - phi * phi);
      const double add = norm_i * (hat * root_phi - phi * root_hat) / (norms[j] * root_hat + eps);
      if (phi < hat) {
        c[j] += add;
        for (int m = 0; m < k; ++m) cg[m] += add * g[m][j];
      }
      target[j] = (1.0 - rate) * hat + rate * phi;
    }
    for (int j = 0; j < k; ++j) beta[j] += c[j];
  }
}

}  // namespace ltu_fast
