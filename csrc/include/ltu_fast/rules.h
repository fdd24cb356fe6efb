// The update rules the compiled backends know: one line each in LTU_FAST_RULES (code, struct).
// The CPU apply (csrc/cpu/apply.cpp), the CUDA apply (csrc/cuda/apply.cu), the solve epilogue below
// and both pybind modules (which export every rule's columns for tests/test_codes.py) expand it.
#pragma once

#include "ltu_fast/rules/adamw.h"
#include "ltu_fast/rules/lion.h"
#include "ltu_fast/rules/sgd.h"

#define LTU_FAST_RULES(X) \
  X(0, ::ltu_fast::SgdRule) \
  X(1, ::ltu_fast::AdamWRule) \
  X(2, ::ltu_fast::LionRule)

namespace ltu_fast {

// Whether `code` names a rule (checked on the host before a kernel dispatches on it).
inline bool known_rule(int code) {
#define LTU_FAST_KNOWN(c, Rule) if (code == c) return true;
  LTU_FAST_RULES(LTU_FAST_KNOWN)
#undef LTU_FAST_KNOWN
  return false;
}

// The per-tensor bookkeeping of an update rule, written by the coefficient solve once the step's
// skip flag is known (inputs: see SolveArgs of either backend; touched null = every tensor).
struct PrepareArgs {
  int rule;                // LTU_FAST_RULES code
  const int64_t* tensors;  // SegmentPlan.table [T, kTableColumns]
  int64_t num_tensors;
  const float* group_f32;  // the group table [G, C] of the rule, float32 or float64 (one is null)
  const double* group_f64;
  float* state;            // [T, S] float32, advanced in place
  const float* touched;    // [T] float32, nonzero: some backward reached the tensor (null: all)
  float* rows;             // [T, R] float32 output
};

// Tensor t: active = touched and not skipped; the rule advances its state where active and writes
// the row the apply pass reads (column kRowActive = active: an inactive tensor is skipped whole).
LTU_HD void prepare_tensor(const PrepareArgs& a, int64_t t, bool skip) {
  const bool active = !skip && (a.touched == nullptr || a.touched[t] != 0.0f);
  const int64_t q = a.tensors[t * kTableColumns + kTableGroup];
#define LTU_FAST_PREPARE(c, Rule)                                                                      \
  if (a.rule == c) {                                                                                   \
    using C = Columns<Rule>;                                                                           \
    const GroupRow group{a.group_f32 ? a.group_f32 + q * C::group : nullptr,                           \
                         a.group_f64 ? a.group_f64 + q * C::group : nullptr};                          \
    float* row = a.rows + t * C::row;                                                                  \
    row[kRowActive] = active ? 1.0f : 0.0f;                                                           \
    Rule::prepare(group, a.state + t * C::state, active, row);                                         \
  }
  LTU_FAST_RULES(LTU_FAST_PREPARE)
#undef LTU_FAST_PREPARE
}

}  // namespace ltu_fast
