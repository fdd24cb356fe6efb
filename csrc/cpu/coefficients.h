// The coefficient solve of the CPU backend (contract: ltu_fast/backends/base.py, ``solve``).
#pragma once

#include <cstdint>

#include "ltu_fast/aggregators/common.h"
#include "ltu_fast/rules.h"

namespace ltu_fast::cpu {

// Every pointer but gram, beta and flag may be null (not used); rule.rule < 0: no update rule.
struct SolveArgs {
  const float* gram;  // [L, k, k]
  int64_t num_segments;
  SolveSpec spec;              // the aggregator's kind, k and slots (checked by the binding)
  int64_t* counter;            // [1] the aggregator's step counter (read, then advanced by one)
  double* aggregator_state;    // [L, state_width] the aggregator's per-segment state, updated in place
  int64_t state_width;
  const float* weights;        // [k]
  const float* grad_scale;     // [1] divided out of beta
  bool unscale_gram;           // the aggregator sees G / grad_scale^2 (it is not scale invariant)
  const float* found_inf_in;   // [1] OR-ed into the flag
  float* beta;                 // [L, k]
  float* flag;                 // [1] 1: a statistic or coefficient was not finite, skip the step
  int64_t* skipped;            // [1] += flag
  PrepareArgs rule;            // the update rule's per-tensor bookkeeping (ltu_fast/rules.h)
};

void solve(const SolveArgs& args);

}  // namespace ltu_fast::cpu
