// Damped Newton for the positive solution of G w = w^(-p) (Nash-MTL: p = 1; FairGrad: p = 1/alpha),
// step for step as ltu_fast/aggregators/_newton.py (power_equation, _newton_step, _barrier): same start
// point, ridge, trip counts, halvings, Armijo constant and decrement switch, so the compiled solve agrees
// with the float64 torch reference to rounding. Two shortcuts leave every result bit unchanged:
// the halvings are tried in order and the search stops at the first accepted one (the torch code
// evaluates all and takes the first), and a phase stops once its iterates repeat: a step is a fixed
// function of w, so once w_{n+1} equals w_n (or w_{n-1}, the last-bit two-cycle converged iterates
// usually settle in) the rest of the phase is known, down to which of the two it ends on.
// Exponents torch special-cases (2, 3, 0.5, -0.5, -1, -2) take its formulas, the others pow(). The
// Cholesky solve is qp.h's (LAPACK potf2 on a failed pivot too, as torch.linalg.cholesky_ex), on all of F.
#pragma once

#include <cmath>

#include "ltu_fast/aggregators/common.h"
#include "ltu_fast/aggregators/jacobi.h"
#include "ltu_fast/aggregators/qp.h"

namespace ltu_fast {

constexpr int kNewtonIterations = 26;  // _newton.DEFAULT_NEWTON_ITERATIONS
constexpr int kNewtonPolish = 4;       // _newton.POLISH
constexpr int kNewtonHalvings = 30;    // _newton._HALVINGS
constexpr double kNewtonRidge = 1e-10;  // _newton.RIDGE
constexpr double kNewtonShare = 1e-2;   // _newton.SHARE
constexpr int64_t kNewtonPsdSweeps = 10;  // _eigen.DEFAULT_SWEEPS, as _newton.nearest_psd

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

// One damped Newton step on f(w) = w^T g w / 2 - barrier(w) (_newton_step).
LTU_HD void newton_step(const Gram& g, int k, double p, double* w) {
  double gw[kMaxSolveK], grad[kMaxSolveK], d[kMaxSolveK], gd[kMaxSolveK], trial[kMaxSolveK];
  Gram h, l;
  bool every[kMaxSolveK];  // qp's free set: the whole system
  qp_matvec(g, w, k, gw);
  for (int i = 0; i < k; ++i) {
    every[i] = true;
    grad[i] = gw[i] - torch_pow(w[i], -p);
    for (int j = 0; j < k; ++j) h[i][j] = g[i][j];
    h[i][i] += p * torch_pow(w[i], -p - 1.0);
  }
  qp_masked_cholesky(h, every, k, l);
  for (int i = 0; i < k; ++i) d[i] = grad[i];
  qp_cholesky_solve(l, every, k, d);
  double decrement = 0.0, boundary = INFINITY, wgw = 0.0, dgw = 0.0, dgd = 0.0;
  for (int i = 0; i < k; ++i) d[i] = -d[i];
  qp_matvec(g, d, k, gd);
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

// psd = G + s diag(G), s = max(0, -lambda_min) of the correlation matrix D^-1/2 G D^-1/2 (rows with
// G_ii = 0 left out as identity rows): the float32 rounding of a rank-deficient Gram made PSD again
// (_newton.nearest_psd). s = 0 leaves G bit for bit.
LTU_HD void nearest_psd(const Gram& gram, int k, Gram& psd) {
  Gram correlation, vectors;
  double root[kMaxSolveK], values[kMaxSolveK];
  for (int i = 0; i < k; ++i) root[i] = sqrt(gram[i][i] > 0.0 ? gram[i][i] : 1.0);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j)
      correlation[i][j] = gram[i][i] > 0.0 && gram[j][j] > 0.0 ? gram[i][j] / (root[i] * root[j])
                                                               : (i == j ? 1.0 : 0.0);
  symmetric_eigen(correlation, k, kNewtonPsdSweeps, values, vectors);
  double lowest = INFINITY;
  for (int i = 0; i < k; ++i)
    if (values[i] < lowest || values[i] != values[i]) lowest = values[i];  // amin propagates NaN
  const double shift = -lowest < 0.0 ? 0.0 : -lowest;  // clamp_min(0) keeps NaN
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) psd[i][j] = gram[i][j] + (i == j ? shift * gram[i][i] : 0.0);
}

// w > 0 with G w = w^(-p) for the PSD gram (nearest_psd's output) (power_equation); 0 where G_ii = 0.
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
  qp_matvec(g, w, k, gw);
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
