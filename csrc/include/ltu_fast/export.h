// The codes and layouts of codes.h and rules.h as Python values, exported by both pybind modules
// (ltu_fast._C and ltu_fast._C_cuda) so tests/test_codes.py can hold every language to them.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "ltu_fast/aggregators.h"
#include "ltu_fast/codes.h"
#include "ltu_fast/rules.h"

namespace ltu_fast {

inline pybind11::tuple column_names(const char* names) {
  pybind11::list out;
  std::string name;
  for (const char* s = names;; ++s) {
    if (*s == ',' || *s == '\0') {
      if (!name.empty()) out.append(name);
      name.clear();
      if (*s == '\0') break;
    } else {
      name += *s;
    }
  }
  return pybind11::tuple(out);
}

// The solve's spec from the Python call (kind, slots), checked here, on the host: a kind with no
// header or too many slots is an error before any kernel runs, never a silent fall-through.
inline SolveSpec make_spec(const char* module, int kind, int64_t k, const std::vector<int64_t>& ints,
                           const std::vector<double>& floats) {
  if (!known_aggregator(kind))
    throw std::invalid_argument(std::string(module) + ": unknown aggregator kind " + std::to_string(kind));
  if (k < 1 || k > kMaxSolveK)
    throw std::invalid_argument(std::string(module) + ": k = " + std::to_string(k) + " outside [1, " +
                                std::to_string(kMaxSolveK) + "]");
  if (ints.size() > kSpecInts || floats.size() > kSpecFloats)
    throw std::invalid_argument(std::string(module) + ": " + std::to_string(ints.size()) + " int / " +
                                std::to_string(floats.size()) + " float slots, at most " + std::to_string(kSpecInts) +
                                " / " + std::to_string(kSpecFloats));
  SolveSpec s{kind, static_cast<int>(k), {}, {}};
  for (size_t i = 0; i < ints.size(); ++i) s.ints[i] = ints[i];
  for (size_t i = 0; i < floats.size(); ++i) s.floats[i] = floats[i];
  return s;
}

inline void export_codes(pybind11::module_& m) {
  namespace py = pybind11;
  py::dict dtypes, table, chunks, kinds, rules;
  dtypes["float32"] = int(kFloat32);
  dtypes["bfloat16"] = int(kBFloat16);
  dtypes["float16"] = int(kFloat16);
  table["offset"] = int(kTableOffset);
  table["numel"] = int(kTableNumel);
  table["segment"] = int(kTableSegment);
  table["group"] = int(kTableGroup);
  chunks["start"] = int(kChunkStart);
  chunks["length"] = int(kChunkLength);
  chunks["segment"] = int(kChunkSegment);
  chunks["group"] = int(kChunkGroup);
#define LTU_FAST_EXPORT_KIND(code, name) kinds[#name] = code;
  LTU_FAST_AGGREGATORS(LTU_FAST_EXPORT_KIND)
#undef LTU_FAST_EXPORT_KIND
#define LTU_FAST_EXPORT_RULE(code, Rule)                                                              \
  {                                                                                                   \
    py::dict rule;                                                                                    \
    rule["code"] = code;                                                                              \
    rule["group_columns"] = column_names(Rule::kGroup);                                               \
    rule["tensor_state"] = column_names(Rule::kState);                                                \
    rule["row_columns"] = column_names(Rule::kRow);                                                   \
    rule["buffers"] = column_names(Rule::kBuffers);                                                   \
    rules[Rule::kName] = rule;                                                                        \
  }
  LTU_FAST_RULES(LTU_FAST_EXPORT_RULE)
#undef LTU_FAST_EXPORT_RULE
  m.attr("DTYPE_CODES") = dtypes;
  m.attr("TABLE_COLUMNS") = table;
  m.attr("CHUNK_COLUMNS") = chunks;
  m.attr("AGGREGATOR_KINDS") = kinds;
  m.attr("MAX_SOLVE_K") = kMaxSolveK;
  m.attr("SPEC_INTS") = kSpecInts;
  m.attr("SPEC_FLOATS") = kSpecFloats;
  m.attr("SPEC_PREFERENCE") = kSpecPreference;
  m.attr("ROW_ACTIVE") = kRowActive;
  m.attr("MAX_BUFFERS") = kMaxBuffers;
  m.attr("RULES") = rules;
}

}  // namespace ltu_fast
