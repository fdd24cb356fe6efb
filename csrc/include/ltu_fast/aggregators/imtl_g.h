// IMTL-G for one segment: ltu_fast/aggregators/imtl_g.py step for step.
//   v = G^+ sqrt(diag G) (G^+ by Jacobi sweeps, eigenvalues below k eps max|lambda| dropped),
//   beta = v / sum(v), or 0 when |sum(v)| < small.
#pragma once

#include <cmath>

#include "ltu_fast/aggregators/common.h"
#include "ltu_fast/aggregators/jacobi.h"

namespace ltu_fast {

// slots: ints[0] = Jacobi sweeps; floats[0] = eps of the Gram's dtype (pseudo-inverse rtol = k eps),
// floats[1] = the absolute threshold on |sum(v)|.
LTU_HD void imtl_g_segment(const SolveSpec& s, const Gram& g, uint64_t /*step*/, double* /*state*/, double* beta) {
  const int k = s.k;
  double values[kMaxSolveK], roots[kMaxSolveK], v[kMaxSolveK];
  Gram vectors;
  symmetric_eigen(g, k, s.ints[0], values, vectors);
  for (int j = 0; j < k; ++j) roots[j] = sqrt(g[j][j] < 0.0 ? 0.0 : g[j][j]);
  pseudo_inverse_apply(values, vectors, k, k * s.floats[0], roots, v);
  double total = 0.0;
  for (int j = 0; j < k; ++j) total += v[j];
  const bool small = fabs(total) < s.floats[1];
  for (int j = 0; j < k; ++j) beta[j] = small ? 0.0 : v[j] / total;
}

}  // namespace ltu_fast
