// Per-segment coefficient solve shared by the C++ CPU and CUDA backends (one definition).
//
// Semantics are those of ltu_fast/aggregators/ (the torch reference) applied to one segment's
// K x K Gram matrix G (row-major float32), with objective weights w:
//   G' = diag(w) G diag(w);  beta = w * aggregator(G')
//   sum:     beta_k = 1
//   pcgrad:  c_i = e_i, then for j in the visit order of i: c_i[j] -= min(<c_i, G'[:, j]> / G'jj, 0)
//            (0 where G'jj = 0); beta = sum_i c_i. Fixed order: j ascending; random order:
//            ascending pcgrad_key(seed, step, i, j) (see below, mirrored in aggregators/pcgrad.py).
//   project: beta = 1, beta_r -= sum_{i != r} min(G'ir / G'rr, 0)
//   mgda:    K = 2 closed form (min-norm point on the segment), K > 2 Frank-Wolfe with a fixed
//            number of iterations and exact line search.
// Computed in double: closer to the float64 reference than the float32 torch path ever was.
#pragma once

#include <cstdint>

#include "ltu_fast/codes.h"

namespace ltu_fast {

struct SolveSpec {
  int kind;
  int k;
  int protect;        // project: the protected objective
  int iterations;     // mgda, K > 2
  bool random_order;  // pcgrad
  uint32_t seed;      // pcgrad random order (low 32 bits of the seed)
};

// 32-bit integer mix (xor-shift-multiply). Multipliers stay below 2^31 so the torch mirror in
// int64 never overflows: the same bits in C++, CUDA, Triton and torch.
LTU_HD uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x5bd1e995U;
  x ^= x >> 16;
  return x;
}

// Sort key of objective j in the visit order of objective i at `step`: distinct for distinct j.
LTU_HD uint64_t pcgrad_key(uint32_t seed, uint64_t step, int i, int j) {
  uint32_t h = mix32(static_cast<uint32_t>(i * 16 + j));
  h = mix32(h ^ static_cast<uint32_t>(step & 0xffffffffULL));
  h = mix32(h ^ seed);
  return (static_cast<uint64_t>(h) << 4) | static_cast<uint64_t>(j);
}

// order[0 .. k-2]: the objectives other than i, in the order objective i visits them.
LTU_HD void pcgrad_visit_order(const SolveSpec& s, uint64_t step, int i, int* order) {
  int n = 0;
  for (int j = 0; j < s.k; ++j)
    if (j != i) order[n++] = j;
  if (!s.random_order) return;
  uint64_t keys[kMaxSolveK];
  for (int t = 0; t < n; ++t) keys[t] = pcgrad_key(s.seed, step, i, order[t]);
  for (int t = 1; t < n; ++t) {  // insertion sort: n <= 7
    const uint64_t key = keys[t];
    const int j = order[t];
    int u = t - 1;
    for (; u >= 0 && keys[u] > key; --u) {
      keys[u + 1] = keys[u];
      order[u + 1] = order[u];
    }
    keys[u + 1] = key;
    order[u + 1] = j;
  }
}

LTU_HD double safe_ratio(double num, double den) { return den > 0.0 ? num / den : 0.0; }
LTU_HD double clamp01(double x) { return x < 0.0 ? 0.0 : (x > 1.0 ? 1.0 : x); }
LTU_HD bool is_finite(double x) { return x - x == 0.0; }  // false for inf and NaN

// Coefficients of one segment into beta[0 .. k-1]; returns false when G or beta is not finite.
// `gram` is the segment's [k, k] block, `weights` may be null (all ones).
LTU_HD bool solve_segment(const float* gram, const float* weights, const SolveSpec& s, uint64_t step, double* beta) {
  const int k = s.k;
  double g[kMaxSolveK][kMaxSolveK];
  bool ok = true;
  for (int a = 0; a < k; ++a)
    for (int b = 0; b < k; ++b) {
      const double wa = weights ? weights[a] : 1.0, wb = weights ? weights[b] : 1.0;
      ok = ok && is_finite(gram[a * k + b]);
      g[a][b] = wa * double(gram[a * k + b]) * wb;
    }
  if (s.kind == kSum) {
    for (int a = 0; a < k; ++a) beta[a] = 1.0;
  } else if (s.kind == kPCGrad) {
    for (int a = 0; a < k; ++a) beta[a] = 0.0;
    int order[kMaxSolveK];
    for (int i = 0; i < k; ++i) {
      double c[kMaxSolveK];
      for (int a = 0; a < k; ++a) c[a] = a == i ? 1.0 : 0.0;
      pcgrad_visit_order(s, step, i, order);
      for (int t = 0; t < k - 1; ++t) {
        const int j = order[t];
        double dot = 0.0;
        for (int m = 0; m < k; ++m) dot += c[m] * g[m][j];
        const double proj = safe_ratio(dot, g[j][j]);
        c[j] -= proj < 0.0 ? proj : 0.0;
      }
      for (int a = 0; a < k; ++a) beta[a] += c[a];
    }
  } else if (s.kind == kProject) {
    const int r = s.protect;
    double total = 0.0;
    for (int i = 0; i < k; ++i) {
      beta[i] = 1.0;
      const double proj = safe_ratio(g[i][r], g[r][r]);
      if (i != r && proj < 0.0) total += proj;
    }
    beta[r] -= total;
  } else if (k == 1) {  // mgda
    beta[0] = 1.0;
  } else if (k == 2) {
    const double den = g[0][0] + g[1][1] - 2.0 * g[0][1];
    const double a = den > 0.0 ? clamp01(safe_ratio(g[1][1] - g[0][1], den)) : 0.5;
    beta[0] = a;
    beta[1] = 1.0 - a;
  } else {
    for (int a = 0; a < k; ++a) beta[a] = 1.0 / k;
    for (int it = 0; it < s.iterations; ++it) {
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
  for (int a = 0; a < k; ++a) {
    if (weights) beta[a] *= weights[a];
    ok = ok && is_finite(beta[a]);
  }
  return ok;
}

}  // namespace ltu_fast
