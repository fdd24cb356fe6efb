// The active-set blocks of ltu_fast/aggregators/_qp.py for one segment (K <= kMaxSolveK), shared by
// MGDA, UPGrad, DualProj and CAGrad: the same steps, trip counts, tolerances and tie-breaks as the
// float64 torch reference, so the compiled solves agree with it to rounding. Stack arrays only: the
// same code runs in a CUDA thread.
#pragma once

#include <cmath>

#include "ltu_fast/aggregators/common.h"

namespace ltu_fast {

constexpr double kQpTol = 1e-12;  // _qp._TOL: pricing tolerance relative to the problem's scale

// _qp.solve_on, factor half: the lower Cholesky factor of `a` with the rows and columns off F
// replaced by the identity, without a status check, as torch.linalg.cholesky_ex (LAPACK potf2): at
// a pivot that is not positive (a face made singular by rounding) it keeps that pivot unrooted and
// the input's later columns, which the solve then uses as they are.
LTU_HD void qp_masked_cholesky(const Gram& a, const bool* free, int k, Gram& low) {
  bool failed = false;
  for (int j = 0; j < k; ++j) {
    for (int i = 0; i < k; ++i) low[i][j] = i < j ? 0.0 : (free[i] && free[j] ? a[i][j] : (i == j ? 1.0 : 0.0));
    if (failed || !free[j]) continue;
    double d = a[j][j];
    for (int p = 0; p < j; ++p) d -= low[j][p] * low[j][p];
    if (!(d > 0.0)) {
      low[j][j] = d;
      failed = true;
      continue;
    }
    const double root = sqrt(d);
    low[j][j] = root;
    for (int i = j + 1; i < k; ++i) {
      if (!free[i]) continue;
      double v = a[i][j];
      for (int p = 0; p < j; ++p) v -= low[i][p] * low[j][p];
      low[i][j] = v / root;
    }
  }
}

// _qp.solve_on, solve half: x[F] = A[F,F]^-1 rhs[F], 0 off F (in place on `x`, which holds rhs).
LTU_HD void qp_cholesky_solve(const Gram& low, const bool* free, int k, double* x) {
  for (int i = 0; i < k; ++i) {
    double v = free[i] ? x[i] : 0.0;
    for (int p = 0; p < i; ++p) v -= low[i][p] * x[p];
    x[i] = v / low[i][i];
  }
  for (int i = k - 1; i >= 0; --i) {
    double v = x[i];
    for (int p = i + 1; p < k; ++p) v -= low[p][i] * x[p];
    x[i] = v / low[i][i];
  }
}

// _qp._ratio_step: move x towards x + limit d as far as x[F] >= 0 allows; blocked coordinates are
// set to 0 and marked. Returns `reached` (the step was not cut short).
LTU_HD bool qp_ratio_step(double* x, const double* d, const bool* free, double limit, int k, bool* blocked) {
  double ratio[kMaxSolveK];
  double first = INFINITY;
  for (int i = 0; i < k; ++i) {
    const bool shrinking = free[i] && d[i] < 0.0;
    ratio[i] = shrinking ? x[i] / -d[i] : INFINITY;
    first = ratio[i] < first ? ratio[i] : first;
  }
  const bool reached = first >= limit;
  const double t = reached ? limit : first;
  for (int i = 0; i < k; ++i) {
    blocked[i] = free[i] && d[i] < 0.0 && ratio[i] <= t && !reached;
    x[i] = blocked[i] ? 0.0 : x[i] + t * d[i];
  }
  return reached;
}

// _qp._price: the coordinate off F (when allowed) with the most negative reduced gradient (first
// minimum, as torch.argmin) joins F if that gradient is below -tol.
LTU_HD void qp_price(const double* reduced, bool* free, bool allowed, double tol, int k) {
  int best = 0;
  double lowest = INFINITY;
  for (int i = 0; i < k; ++i) {
    const double v = (allowed && !free[i]) ? reduced[i] : INFINITY;
    if (v < lowest) {
      lowest = v;
      best = i;
    }
  }
  if (lowest < -tol) free[best] = true;
}

LTU_HD void qp_matvec(const Gram& a, const double* x, int k, double* out) {
  for (int i = 0; i < k; ++i) {
    out[i] = 0.0;
    for (int j = 0; j < k; ++j) out[i] += a[i][j] * x[j];
  }
}

// _qp.nonnegative_qp: x = argmin_{x >= 0} x^T Q x / 2 + q^T x for positive definite Q.
LTU_HD void qp_nonnegative(const Gram& q_matrix, const double* q, int k, int iterations, double* x) {
  bool free[kMaxSolveK], blocked[kMaxSolveK];
  double diag_max = 0.0, q_max = 0.0;
  for (int i = 0; i < k; ++i) {
    x[i] = 0.0;
    free[i] = false;
    diag_max = fmax(diag_max, fabs(q_matrix[i][i]));
    q_max = fmax(q_max, fabs(q[i]));
  }
  const double tol = kQpTol * (diag_max + q_max);
  Gram low;
  for (int it = 0; it < iterations; ++it) {
    double z[kMaxSolveK], d[kMaxSolveK], gradient[kMaxSolveK];
    for (int i = 0; i < k; ++i) z[i] = -q[i];
    qp_masked_cholesky(q_matrix, free, k, low);
    qp_cholesky_solve(low, free, k, z);
    for (int i = 0; i < k; ++i) d[i] = z[i] - x[i];
    const bool reached = qp_ratio_step(x, d, free, 1.0, k, blocked);
    for (int i = 0; i < k; ++i) {
      if (reached) x[i] = z[i];
      free[i] = free[i] && !blocked[i];
    }
    qp_matvec(q_matrix, x, k, gradient);
    for (int i = 0; i < k; ++i) gradient[i] += q[i];
    qp_price(gradient, free, reached, tol, k);
  }
}

// base.trace_normalized: G / trace(G), or 0 where the trace is below eps or not positive.
LTU_HD void qp_trace_normalized(const Gram& g, int k, double eps, Gram& out) {
  double trace = 0.0;
  for (int i = 0; i < k; ++i) trace += g[i][i];
  const bool small = trace < eps || trace <= 0.0;
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) out[i][j] = small ? 0.0 : g[i][j] / trace;
}

// _qp.regularized: torchjd's projection matrix G / trace(G) + reg_eps I (UPGrad, DualProj).
LTU_HD void qp_regularized(const Gram& g, int k, double norm_eps, double reg_eps, Gram& out) {
  qp_trace_normalized(g, k, norm_eps, out);
  for (int i = 0; i < k; ++i) out[i][i] += reg_eps;
}

// _qp.dual_cone_weights for the bounds u (one problem): v = u + argmin_{x >= 0} x^T Q x / 2 + (Q u)^T x,
// added into `sum`.
LTU_HD void qp_dual_cone_add(const Gram& q_matrix, const double* u, int k, int iterations, double* sum) {
  double qu[kMaxSolveK], x[kMaxSolveK];
  qp_matvec(q_matrix, u, k, qu);
  qp_nonnegative(q_matrix, qu, k, iterations, x);
  for (int i = 0; i < k; ++i) sum[i] += u[i] + x[i];
}

// _qp.simplex_minimize: x = argmin_{x in simplex} b^T x + phi sqrt(x^T G x) for PSD G with trace <= 1
// (closed-form faces from one Cholesky of (G + 11^T + 1e-13 I)[F,F] with two right-hand sides).
LTU_HD void qp_simplex_minimize(const Gram& gram, const double* b, double phi, int k, int iterations, double* x) {
  Gram shifted, low;
  bool free[kMaxSolveK], blocked[kMaxSolveK];
  double b_max = 0.0, diag_max = 0.0;
  int start = 0;
  double start_value = INFINITY;
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) shifted[i][j] = gram[i][j] + 1.0 + (i == j ? 1e-13 : 0.0);
    const double diag = fmax(gram[i][i], 0.0);
    const double v = b[i] + phi * sqrt(diag);
    if (v < start_value) {
      start_value = v;
      start = i;
    }
    b_max = fmax(b_max, fabs(b[i]));
    diag_max = fmax(diag_max, diag);
  }
  for (int i = 0; i < k; ++i) {
    free[i] = i == start;
    x[i] = i == start ? 1.0 : 0.0;
  }
  const double tol = kQpTol * (b_max + phi * diag_max);
  const double tiny = 1e-30;
  for (int it = 0; it < iterations; ++it) {
    double y0[kMaxSolveK], y1[kMaxSolveK], z[kMaxSolveK], r[kMaxSolveK], direction[kMaxSolveK];
    for (int i = 0; i < k; ++i) {
      y0[i] = 1.0;
      y1[i] = b[i];
    }
    qp_masked_cholesky(shifted, free, k, low);
    qp_cholesky_solve(low, free, k, y0);
    qp_cholesky_solve(low, free, k, y1);
    double total = 0.0, total_b = 0.0;
    for (int i = 0; i < k; ++i) {
      total += y0[i];
      total_b += y1[i];
    }
    const double m = total_b / total;
    double rho = 0.0;
    for (int i = 0; i < k; ++i) {
      r[i] = m * y0[i] - y1[i];
      rho -= b[i] * r[i];
    }
    const bool linear = rho > tiny;  // the linear term moves the face optimum off its min-norm point
    const bool bounded = !linear || rho < phi * phi;
    const double n0 = fmax(1.0 / total - 1.0, 0.0);
    const double s = sqrt(n0 / (linear && bounded ? 1.0 - rho / (phi * phi) : 1.0));
    const double along = linear && bounded ? s / (phi > 0.0 ? phi : 1.0) : 0.0;
    for (int i = 0; i < k; ++i) {
      z[i] = y0[i] / total + along * r[i];
      direction[i] = bounded ? z[i] - x[i] : r[i];
    }
    const bool reached = qp_ratio_step(x, direction, free, bounded ? 1.0 : INFINITY, k, blocked);
    for (int i = 0; i < k; ++i) {
      if (reached) x[i] = z[i];
      free[i] = free[i] && !blocked[i];
    }
    double gx[kMaxSolveK], reduced[kMaxSolveK];
    qp_matvec(gram, x, k, gx);
    double xgx = 0.0, bx = 0.0;
    for (int i = 0; i < k; ++i) {
      xgx += x[i] * gx[i];
      bx += b[i] * x[i];
    }
    const double norm = sqrt(fmax(xgx, 0.0));
    for (int i = 0; i < k; ++i) reduced[i] = norm * (b[i] - bx) + phi * (gx[i] - xgx);
    qp_price(reduced, free, reached, tol, k);
  }
}

}  // namespace ltu_fast
