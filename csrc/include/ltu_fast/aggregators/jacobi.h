// Symmetric eigen-decomposition by Jacobi sweeps and the pseudo-inverse rule built on it, for one
// segment: ltu_fast/aggregators/_eigen.py step for step (same round-robin schedule, same rotation
// formulas, same sweep count), with the pairs of one round applied one after another (they are
// disjoint, so they commute: the reference applies them as one K x K rotation).
#pragma once

#include <cmath>

#include "ltu_fast/aggregators/common.h"

namespace ltu_fast {

// Player at `position` in round `round`, and pair `slot` of that round `round` of the circle-method schedule on n = k + k % 2 players (an odd k
// gives player k a bye): player 0 stays, the others rotate one place per round. Returns false
// for the bye's pair. p < q.
LTU_HD int jacobi_player(int n, int round, int position) {
  return position == 0 ? 0 : 1 + (position - 1 - round + (n - 1)) % (n - 1);
}

LTU_HD bool jacobi_pair(int k, int round, int slot, int* p, int* q) {
  const int n = k + k % 2;
  const int a = jacobi_player(n, round, slot), b = jacobi_player(n, round, n - 1 - slot);
  *p = a < b ? a : b;
  *q = a < b ? b : a;
  return *q < k;
}

// One rotation zeroing a[p][q]: A <- R^T A R, V <- V R, with R the identity but for
// R_pp = R_qq = c, R_pq = s, R_qp = -s (the identity, skipped, when a[p][q] = 0 or
// negligible against a_qq - a_pp: converged pairs cost a division, no subnormal arithmetic). A stays
// symmetric by construction.
LTU_HD void jacobi_rotate(Gram& a, Gram& v, int k, int p, int q) {
  const double app = a[p][p], aqq = a[q][q], apq = a[p][q];
  if (apq == 0.0) return;
  const double tau = (aqq - app) / (2.0 * apq);
  const double t = (tau >= 0.0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
  if (t == 0.0) return;  // |tau| > 1e154 (tau^2 = inf): the identity rotation, as in the reference
  const double c = 1.0 / sqrt(1.0 + t * t), s = t * c;
  for (int m = 0; m < k; ++m) {
    if (m != p && m != q) {
      const double amp = a[m][p], amq = a[m][q];
      a[m][p] = a[p][m] = c * amp - s * amq;
      a[m][q] = a[q][m] = s * amp + c * amq;
    }
    const double vmp = v[m][p], vmq = v[m][q];
    v[m][p] = c * vmp - s * vmq;
    v[m][q] = s * vmp + c * vmq;
  }
  a[p][p] = c * c * app - 2.0 * c * s * apq + s * s * aqq;
  a[q][q] = s * s * app + 2.0 * c * s * apq + c * c * aqq;
  a[p][q] = a[q][p] = c * s * (app - aqq) + (c * c - s * s) * apq;
}

// Eigenvalues (unsorted, the diagonal) and eigenvectors (columns of `vectors`) of the symmetric
// k x k `matrix`, after `sweeps` sweeps of k - 1 (k even) or k (k odd) rounds.
LTU_HD void symmetric_eigen(const Gram& matrix, int k, int64_t sweeps, double* values, Gram& vectors) {
  Gram a;
  for (int r = 0; r < k; ++r)
    for (int c = 0; c < k; ++c) {
      a[r][c] = matrix[r][c];
      vectors[r][c] = r == c ? 1.0 : 0.0;
    }
  const int rounds = k + k % 2 - 1;
  for (int64_t sweep = 0; k > 1 && sweep < sweeps; ++sweep)
    for (int round = 0; round < rounds; ++round)
      for (int slot = 0; slot < (k + 1) / 2; ++slot) {
        int p, q;
        if (jacobi_pair(k, round, slot, &p, &q)) jacobi_rotate(a, vectors, k, p, q);
      }
  for (int r = 0; r < k; ++r) values[r] = a[r][r];
}

// out = V diag(scale_j) V^T x.
LTU_HD void eigen_apply(const Gram& v, int k, const double* scale, const double* x, double* out) {
  double y[kMaxSolveK];
  for (int j = 0; j < k; ++j) {
    y[j] = 0.0;
    for (int m = 0; m < k; ++m) y[j] += v[m][j] * x[m];
    y[j] *= scale[j];
  }
  for (int m = 0; m < k; ++m) {
    out[m] = 0.0;
    for (int j = 0; j < k; ++j) out[m] += v[m][j] * y[j];
  }
}

// out = A^+ x from A's eigen-decomposition: 1 / lambda over |lambda| > rtol max |lambda|, else 0
// (torch.linalg.pinv's rule for a symmetric matrix).
LTU_HD void pseudo_inverse_apply(const double* values, const Gram& v, int k, double rtol, const double* x,
                                 double* out) {
  double largest = 0.0, inverse[kMaxSolveK];
  for (int j = 0; j < k; ++j) largest = fabs(values[j]) > largest ? fabs(values[j]) : largest;
  for (int j = 0; j < k; ++j) inverse[j] = fabs(values[j]) > rtol * largest ? 1.0 / values[j] : 0.0;
  eigen_apply(v, k, inverse, x, out);
}

}  // namespace ltu_fast
