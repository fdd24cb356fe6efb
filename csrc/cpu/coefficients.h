// The coefficient solve of the CPU backend (contract: ltu_fast/backends/base.py, ``solve``).
#pragma once

#include <cstdint>

namespace ltu_fast::cpu {

// Every pointer but gram, beta and flag may be null (not used).
struct SolveArgs {
  const float* gram;  // [L, k, k]
  int64_t num_segments, k;
  int kind, protect, iterations;
  bool random_order;
  uint32_t seed;
  int64_t* counter;            // [1] pcgrad step counter (read, then advanced when random_order)
  const float* weights;        // [k]
  const float* grad_scale;     // [1] divided out of beta
  const float* found_inf_in;   // [1] OR-ed into the flag
  float* beta;                 // [L, k]
  float* flag;                 // [1] 1: a statistic or coefficient was not finite, skip the step
  const float* hyper;          // [G, 6], with ready
  int64_t num_groups;
  float* ready;                // [G] (or [T] with tensors) updated in place
  float* ready_before;         // [G] (or [T]) receives ready as it was
  int64_t* skipped;            // [1] += flag
  const int64_t* tensors;      // [T, 4] SegmentPlan.table: per-tensor bookkeeping (skip_untouched)
  int64_t num_tensors;
  float* tensor_hyper;         // [T, 6] with tensors: each tensor's row for the apply pass
};

void solve(const SolveArgs& args);

}  // namespace ltu_fast::cpu
