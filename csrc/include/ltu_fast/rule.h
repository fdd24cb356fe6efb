// What every update rule header (ltu_fast/rules/<rule>.h) builds on; the contract a rule fulfils.
//
// A rule is a struct with (see rules/sgd.h for a complete one):
//   kName                        its name in Python (ltu_fast.rules)
//   kGroup, kState, kRow, kBuffers  its column names, comma-separated: the group table [G, C]
//                                (hyper-parameters per param group, float32 or float64), the
//                                per-tensor state [T, S] (float32, advanced by prepare), the
//                                per-tensor row [T, R] prepare writes for the apply pass (float32;
//                                column 0 is always "active") and the per-element buffers [P]
//   prepare(group, state, active, row)  once per tensor and step, in the coefficient solve's epilogue
//   Hyper load(row)              a row's values, read once per chunk by the apply pass
//   kVariants, variant(h, present), live(variant, buffer)
//                                compile-time cases of the element loop (which buffers it reads and
//                                writes), so the per-element code has no branch on them
//   element<V>(g, p, s, h)       the update of one element: returns the new parameter, updates s
// Columns are looked up by name at compile time (column()), so the exported names are the layout.
#pragma once

#include "ltu_fast/codes.h"

namespace ltu_fast {

constexpr int kMaxBuffers = 3;  // per-element state buffers a rule may keep (AdamW: three)
constexpr int kRowActive = 0;   // the first column of every rule's row: the tensor steps (1) or not (0)

int unknown_column();  // never defined: naming a column that does not exist fails to compile

// Number of comma-separated names in `names` ("" has none).
constexpr int column_count(const char* names) {
  if (*names == '\0') return 0;
  int n = 1;
  for (; *names != '\0'; ++names) n += *names == ',';
  return n;
}

// Index of `name` among the comma-separated `names`, at compile time.
constexpr int column(const char* names, const char* name) {
  int index = 0;
  const char* s = names;
  while (*s != '\0') {
    const char* n = name;
    while (*s != '\0' && *s != ',' && *s == *n) {
      ++s;
      ++n;
    }
    if ((*s == ',' || *s == '\0') && *n == '\0') return index;
    while (*s != '\0' && *s != ',') ++s;
    if (*s == ',') ++s;
    ++index;
  }
  return unknown_column();
}

// A rule's column counts as compile-time constants (usable in device code).
template <class Rule>
struct Columns {
  static constexpr int group = column_count(Rule::kGroup), state = column_count(Rule::kState),
                       row = column_count(Rule::kRow), buffers = column_count(Rule::kBuffers);
  static_assert(buffers <= kMaxBuffers, "a rule keeps at most kMaxBuffers per-element buffers");
};

// One param group's row of the group table, which is float32 or float64; read as double.
struct GroupRow {
  const float* f32;
  const double* f64;
  LTU_HD double operator[](int c) const { return f64 != nullptr ? f64[c] : double(f32[c]); }
};

// a * b rounded on its own: never contracted into a following add (CUDA fuses by default), so a
// rule's prepare gives the bits of torch's separate float64 ops on every device.
LTU_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

}  // namespace ltu_fast
