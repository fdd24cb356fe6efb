// Damped Newton for the positive solution of G w = w^(-p) (Nash-MTL: p = 1; FairGrad: p = 1/alpha),
// step for step as ltu_fast/aggregators/_newton.py (power_equation, _newton_step, _barrier): same start
// point, ridge, trip counts, halvings, Armijo constant and decrement switch, so the compiled solve agrees
// with the float64 torch reference to rounding. Two shortcuts leave every result bit unchanged:
// the halvings are tried in order and the search stops at the first accepted one (the torch code
// evaluates all and takes the first), and a phase stops once its iterates repeat: a step is a fixed
// function of w, so once w_{n+1} equals w_n (or w_{n-1}, the last-bit two-cycle converged iterates
// usually settle in) the rest of the phase is known, down to which of the two it ends on.
// Exponents torch special-cases (2, 3, 0.5, -0.5, -1, -2) take its formulas, the others pow().
// The K <= 8 Cholesky here mirrors LAPACK's potf2 on failure too (torch.linalg.cholesky_ex); qp.h
// may carry another small Cholesky solve: to be shared at merge.
#pragma once

#include <math.h>

#include "ltu_fast/aggregators/common.h"

namespace ltu_fast {

constexpr int kNewtonIterations = 26;  // _newton.DEFAULT_NEWTON_ITERATIONS
constexpr int kNewtonPolish = 4;       // _newton.POLISH
constexpr int kNewtonHalvings = 30;    // _newton._HALVINGS
constexpr double kNewtonRidge = 1e-10;  // _newton.RIDGE
constexpr double kNewtonShare = 1e-2;   // _newton.SHARE

// x ** e as torch's pow(Tensor, Scalar) computes it.
LTU_HD double torch_pow(double x, double e) {
  if (e == 2.0) return x * x;
  if (e == 3.0) return x * x * x;
  if (e == 0.5) return sqrt(x);
  if (e == -0.5) return 1.0 / sqrt(x);
  if (e == -1.0) return 1.0 / x;
  if (e == -2.0) return 1.0 / (x * x);
  if (e == 1.0) return x;
  if (e == 0.0) return 1.0;
  return pow(x, e);
}

// The barrier sum_i h(w_i), h' = w^(-p), of points clamped to the smallest normal double (_barrier).
LTU_HD double newton_barrier(const double* w, int k, double p) {
  double total = 0.0;
  for (int i = 0; i < k; ++i) {
    const double x = w[i] < 2.2250738585072014e-308 ? 2.2250738585072014e-308 : w[i];  // NaN stays
    total += p == 1.0 ? log(x) : torch_pow(x, 1.0 - p) / (1.0 - p);
  }
  return total;
}

// Lower Cholesky factor l of a (LAPACK potf2, column by column). On a non-positive (or NaN) pivot it
// stores that pivot and stops, the columns after it left as a's lower triangle, as cholesky_ex returns.
LTU_HD void newton_cholesky(const Gram& a, int k, Gram& l) {
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) l[i][j] = j <= i ? a[i][j] : 0.0;
  for (int j = 0; j < k; ++j) {
    double ajj = a[j][j];
    for (int m = 0; m < j; ++m) ajj -= l[j][m] * l[j][m];
    if (!(ajj > 0.0)) {
      l[j][j] = ajj;
      return;
    }
    l[j][j] = sqrt(ajj);
    for (int i = j + 1; i < k; ++i) {
      double v = a[i][j];
      for (int m = 0; m < j; ++m) v -= l[i][m] * l[j][m];
      l[i][j] = v / l[j][j];
    }
  }
}

// x with l l^T x = b (torch.cholesky_solve).
LTU_HD void newton_cholesky_solve(const Gram& l, int k, const double* b, double* x) {
  for (int i = 0; i < k; ++i) {
    double v = b[i];
    for (int m = 0; m < i; ++m) v -= l[i][m] * x[m];
    x[i] = v / l[i][i];
  }
  for (int i = k - 1; i >= 0; --i) {
    double v = x[i];
    for (int m = i + 1; m < k; ++m) v -= l[m][i] * x[m];
    x[i] = v / l[i][i];
  }
}

LTU_HD void newton_matvec(const Gram& g, int k, const double* x, double* y) {
  for (int i = 0; i < k; ++i) {
    y[i] = 0.0;
    for (int j = 0; j < k; ++j) y[i] += g[i][j] * x[j];
  }
}

// One damped Newton step on f(w) = w^T g w / 2 - barrier(w) (_newton_step).
LTU_HD void newton_step(const Gram& g, int k, double p, double* w) {
  double gw[kMaxSolveK], grad[kMaxSolveK], d[kMaxSolveK], gd[kMaxSolveK], trial[kMaxSolveK];
  Gram h, l;
  newton_matvec(g, k, w, gw);
  for (int i = 0; i < k; ++i) {
    grad[i] = gw[i] - torch_pow(w[i], -p);
    for (int j = 0; j < k; ++j) h[i][j] = g[i][j];
    h[i][i] += p * torch_pow(w[i], -p - 1.0);
  }
  newton_cholesky(h, k, l);
  newton_cholesky_solve(l, k, grad, d);
  double decrement = 0.0, boundary = INFINITY, wgw = 0.0, dgw = 0.0, dgd = 0.0;
  for (int i = 0; i < k; ++i) d[i] = -d[i];
  newton_matvec(g, k, d, gd);
  for (int i = 0; i < k; ++i) {
    decrement -= grad[i] * d[i];
    const double reach = d[i] < 0.0 ? w[i] / -d[i] : INFINITY;
    if (reach < boundary || reach != reach) boundary = reach;  // amin propagates NaN
    wgw += w[i] * gw[i];
    dgw += d[i] * gw[i];
    dgd += d[i] * gd[i];
  }
  const double scaled = 0.99 * boundary;
  const double t0 = scaled > 1.0 ? 1.0 : scaled;  // clamp(max=1) keeps NaN
  const double f0 = 0.5 * wgw - newton_barrier(w, k, p);
  double t = 0.0;
  if (decrement <= 1e-8 * (1.0 + fabs(f0))) {
    t = t0;
  } else {
    double halving = 1.0;
    for (int s = 0; s < kNewtonHalvings; ++s, halving *= 0.5) {
      const double step = t0 * halving;
      for (int i = 0; i < k; ++i) trial[i] = w[i] + step * d[i];
      const double f = 0.5 * wgw + step * dgw + 0.5 * step * step * dgd - newton_barrier(trial, k, p);
      if (f <= f0 - 1e-4 * step * decrement) {
        t = step;
        break;
      }
    }
  }
  for (int i = 0; i < k; ++i) w[i] += t * d[i];
}

// `count` Newton steps from w, stopping early once the iterates repeat (see the top of this file).
LTU_HD void newton_phase(const Gram& g, int k, double p, int64_t count, double* w) {
  double older[kMaxSolveK], current[kMaxSolveK];
  for (int i = 0; i < k; ++i) older[i] = w[i];
  for (int64_t it = 0; it < count; ++it) {
    for (int i = 0; i < k; ++i) current[i] = w[i];
    newton_step(g, k, p, w);
    bool fixed = true, cycle = true;
    for (int i = 0; i < k; ++i) {
      fixed = fixed && w[i] == current[i];
      cycle = cycle && w[i] == older[i];
    }
    if (fixed || cycle) {
      if ((count - it - 1) % 2 == 1)  // an odd number of steps left ends on the other iterate
        for (int i = 0; i < k; ++i) w[i] = current[i];
      return;
    }
    for (int i = 0; i < k; ++i) older[i] = current[i];
  }
}

// w > 0 with G w = w^(-p) for the PSD gram (power_equation); 0 where G_ii = 0.
LTU_HD void power_equation(const Gram& gram, int k, double p, int64_t iterations, double* out) {
  Gram g, ridged;
  bool active[kMaxSolveK];
  double w[kMaxSolveK], gw[kMaxSolveK], exact[kMaxSolveK];
  for (int i = 0; i < k; ++i) active[i] = gram[i][i] > 0.0;
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) {
      g[i][j] = active[i] && active[j] ? gram[i][j] : (i == j ? 1.0 : 0.0);
      ridged[i][j] = g[i][j];
    }
  for (int i = 0; i < k; ++i) {
    ridged[i][i] += kNewtonRidge * g[i][i];
    w[i] = torch_pow(g[i][i], -1.0 / (1.0 + p));
  }
  newton_matvec(g, k, w, gw);
  double curvature = 0.0, pull = 0.0;
  for (int i = 0; i < k; ++i) {
    curvature += w[i] * gw[i];
    pull += torch_pow(w[i], 1.0 - p);
  }
  const double factor = curvature > 0.0 ? torch_pow(pull / curvature, 1.0 / (1.0 + p)) : 1.0;
  for (int i = 0; i < k; ++i) w[i] *= factor;
  newton_phase(ridged, k, p, iterations, w);
  for (int i = 0; i < k; ++i) exact[i] = w[i];
  newton_phase(g, k, p, kNewtonPolish, exact);
  double share = -INFINITY;
  for (int i = 0; i < k; ++i) {
    const double v = kNewtonRidge * g[i][i] * torch_pow(w[i], 1.0 + p);
    if (v > share || v != v) share = v;  // amax propagates NaN
  }
  const bool solvable = share <= kNewtonShare;
  for (int i = 0; i < k; ++i) out[i] = active[i] ? (solvable ? exact[i] : w[i]) : 0.0;
}

}  // namespace ltu_fast
