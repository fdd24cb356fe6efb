// The per-segment driver of the coefficient solve, shared by the C++ CPU and CUDA backends.
//
// Semantics are those of ltu_fast/aggregators/ (the torch reference): with objective weights w,
// G' = diag(w) G diag(w) and beta = w * aggregator(G'). The driver reads the segment's float32
// Gram into double, dispatches on the spec's kind to the aggregator's function (aggregators.h;
// the host checked the kind before the launch, so the default branch only guards the contract),
// applies the weights and reports whether G and beta are finite.
#pragma once

#include <cstdint>

#include "ltu_fast/aggregators.h"

namespace ltu_fast {

// Coefficients of one segment into beta[0 .. k-1]; returns false when G or beta is not finite (or
// the kind is unknown). `gram` is the segment's [k, k] block, `weights` may be null (all ones),
// `state` this segment's row of the aggregator's float64 state (null: none). The aggregator sees the
// Gram divided by `divisor` (a loss scale squared for one that is not scale invariant, else 1).
LTU_HD bool solve_segment(const float* gram, const float* weights, double divisor, const SolveSpec& s, uint64_t step,
                          double* state, double* beta) {
  const int k = s.k;
  Gram g;
  bool ok = true;
  for (int a = 0; a < k; ++a)
    for (int b = 0; b < k; ++b) {
      const double wa = weights ? weights[a] : 1.0, wb = weights ? weights[b] : 1.0;
      ok = ok && is_finite(gram[a * k + b]);
      g[a][b] = wa * (double(gram[a * k + b]) / divisor) * wb;
    }
  switch (s.kind) {
#define LTU_FAST_SOLVE_CASE(code, name)      \
  case code:                                 \
    name##_segment(s, g, step, state, beta); \
    break;
    LTU_FAST_AGGREGATORS(LTU_FAST_SOLVE_CASE)
#undef LTU_FAST_SOLVE_CASE
    default:
      for (int a = 0; a < k; ++a) beta[a] = 0.0;
      return false;
  }
  for (int a = 0; a < k; ++a) {
    if (weights) beta[a] *= weights[a];
    ok = ok && is_finite(static_cast<float>(beta[a]));  // as stored: a double beyond float32 is inf
  }
  return ok;
}

}  // namespace ltu_fast
