// Host entry point of the CUDA coefficient solve (contract: ltu_fast/backends/base.py, ``solve``).
#pragma once

#include <cstdint>

#include "ltu_fast/aggregators/common.h"

namespace ltu_fast {
namespace cuda {

struct SolveArgs {                // device addresses; 0 = absent (every one but gram, beta, flag)
  uintptr_t gram = 0;             // float [L, k, k]
  int64_t num_segments = 0;
  SolveSpec spec{};               // the aggregator's kind, k (1..8) and slots (checked by the binding)
  uintptr_t counter = 0;          // int64 [1] the aggregator's step counter, advanced by one
  uintptr_t aggregator_state = 0; // double [L, state_width] the aggregator's per-segment state, in place
  int64_t state_width = 0;
  uintptr_t weights = 0;          // float [k]
  uintptr_t grad_scale = 0;       // float [1]
  bool unscale_gram = false;      // the aggregator sees G / grad_scale^2 (it is not scale invariant)
  uintptr_t found_inf_in = 0;     // float [1]
  uintptr_t beta = 0;             // float [L, k]
  uintptr_t flag = 0;             // float [1]
  uintptr_t skipped = 0;          // int64 [1]
  int rule = -1;                  // the update rule whose per-tensor rows follow (ltu_fast/rules.h); -1: none
  uintptr_t tensors = 0;          // int64 [T, 4] SegmentPlan.table
  int64_t num_tensors = 0;
  uintptr_t group_f32 = 0;        // the rule's group table [G, C], float32 or float64 (the other is 0)
  uintptr_t group_f64 = 0;
  uintptr_t state = 0;            // float [T, S], advanced in place
  uintptr_t touched = 0;          // float [T] (0: every tensor)
  uintptr_t rows = 0;             // float [T, R] output
  int device = 0;
  uintptr_t stream = 0;
};

// One single-block launch: every segment's coefficients, the skip flag and the rule's per-tensor rows.
void solve(const SolveArgs& a);

}  // namespace cuda
}  // namespace ltu_fast
