// ConFIG for one segment: ltu_fast/aggregators/config.py step for step. With D = sqrt(diag G)
// (1/0 read as 0) and the cosine matrix C = D^-1 G D^-1: c = C^+ p (Jacobi sweeps, eigenvalues
// below k eps max|lambda| dropped), |u|^2 = c^T C c, beta = D^-1 c (1^T G D^-1 c) / max(|u|, floor)^2.
#pragma once

#include <cmath>

#include "ltu_fast/aggregators/common.h"
#include "ltu_fast/aggregators/jacobi.h"

namespace ltu_fast {

// slots: ints[0] = Jacobi sweeps; floats[0] = eps of the Gram's dtype (pseudo-inverse rtol = k eps),
// floats[1] = the floor of |u|; preference p at floats[kSpecPreference + j].
LTU_HD void config_segment(const SolveSpec& s, const Gram& g, uint64_t /*step*/, double* /*state*/, double* beta) {
  const int k = s.k;
  double inv[kMaxSolveK], values[kMaxSolveK], c[kMaxSolveK], coef[kMaxSolveK];
  Gram cosine, vectors;
  for (int j = 0; j < k; ++j) {
    const double norm = sqrt(g[j][j] < 0.0 ? 0.0 : g[j][j]);
    inv[j] = norm > 0.0 ? 1.0 / norm : 0.0;
  }
  for (int a = 0; a < k; ++a)
    for (int b = 0; b < k; ++b) cosine[a][b] = inv[a] * g[a][b] * inv[b];
  symmetric_eigen(cosine, k, s.ints[0], values, vectors);
  pseudo_inverse_apply(values, vectors, k, k * s.floats[0], s.floats + kSpecPreference, c);
  double length2 = 0.0, along = 0.0;
  for (int a = 0; a < k; ++a) {
    double ca = 0.0;
    for (int b = 0; b < k; ++b) ca += cosine[a][b] * c[b];
    length2 += c[a] * ca;
    coef[a] = inv[a] * c[a];
  }
  for (int a = 0; a < k; ++a)
    for (int b = 0; b < k; ++b) along += g[a][b] * coef[b];
  double length = sqrt(length2 < 0.0 ? 0.0 : length2);
  length = length < s.floats[1] ? s.floats[1] : length;  // NaN stays NaN, as clamp_min
  for (int a = 0; a < k; ++a) beta[a] = coef[a] * along / (length * length);
}

}  // namespace ltu_fast
