// What every compiled aggregator sees (contract: docs/core.md, "Adding an aggregator").
//
// An aggregator is one header in this folder with one function
//   LTU_HD void <name>_segment(const SolveSpec& s, const Gram& g, uint64_t step, double* state, double* beta);
// that turns one segment's weighted Gram g = diag(w) G diag(w) (in double, s.k x s.k used) into its
// coefficients beta[0 .. s.k) (before the weights: the driver multiplies them in), reading its
// parameters from the spec's slots, the device step counter's value `step` (0 without one) and this
// segment's row of float64 state (nullptr without one), which it updates in place. The same code runs
// on the CPU and in a CUDA thread: fixed trip counts, K <= kMaxSolveK arrays on the stack.
#pragma once

#include <cstdint>

#include "ltu_fast/codes.h"

namespace ltu_fast {

constexpr int kSpecInts = 4;         // integer slots (Python: SPEC_INTS)
constexpr int kSpecFloats = 12;      // float slots (Python: SPEC_FLOATS) ...
constexpr int kSpecPreference = 4;   // ... of which floats[4 .. 4 + k) hold a preference vector

// An aggregator's kind (aggregators.h) and parameters: host data, passed by value to the kernels.
struct SolveSpec {
  int kind;
  int k;
  int64_t ints[kSpecInts];
  double floats[kSpecFloats];
};

using Gram = double[kMaxSolveK][kMaxSolveK];

LTU_HD double safe_ratio(double num, double den) { return den > 0.0 ? num / den : 0.0; }
LTU_HD double clamp01(double x) { return x < 0.0 ? 0.0 : (x > 1.0 ? 1.0 : x); }
LTU_HD bool is_finite(double x) { return x - x == 0.0; }  // false for inf and NaN

}  // namespace ltu_fast
