// The aggregators the compiled solves know: one header each in aggregators/ and one line each in
// LTU_FAST_AGGREGATORS (kind code, name; the code is ltu_fast.aggregators.SOLVER_KINDS[name]).
// The driver's switch (solve_segment.h), the host-side check of a kind and both pybind modules'
// AGGREGATOR_KINDS export (checked against Python by tests/test_codes.py) expand it.
#pragma once

#include "ltu_fast/aggregators/aligned_mtl.h"
#include "ltu_fast/aggregators/cagrad.h"
#include "ltu_fast/aggregators/config.h"
#include "ltu_fast/aggregators/dualproj.h"
#include "ltu_fast/aggregators/fairgrad.h"
#include "ltu_fast/aggregators/gradvac.h"
#include "ltu_fast/aggregators/imtl_g.h"
#include "ltu_fast/aggregators/mgda.h"
#include "ltu_fast/aggregators/mgda_frank_wolfe.h"
#include "ltu_fast/aggregators/nash_mtl.h"
#include "ltu_fast/aggregators/pcgrad.h"
#include "ltu_fast/aggregators/project.h"
#include "ltu_fast/aggregators/sum.h"
#include "ltu_fast/aggregators/upgrad.h"

#define LTU_FAST_AGGREGATORS(X) \
  X(0, sum)                     \
  X(1, pcgrad)                  \
  X(2, project)                 \
  X(3, mgda_frank_wolfe)        \
  X(4, mgda)                    \
  X(5, upgrad)                  \
  X(6, dualproj)                \
  X(7, cagrad)                  \
  X(8, imtl_g)                  \
  X(9, aligned_mtl)             \
  X(10, config)                 \
  X(11, gradvac)                \
  X(12, nash_mtl)               \
  X(13, fairgrad)

namespace ltu_fast {

// Whether `kind` names a compiled aggregator (checked on the host before a kernel dispatches on it).
inline bool known_aggregator(int kind) {
#define LTU_FAST_KNOWN_AGGREGATOR(code, name) if (kind == code) return true;
  LTU_FAST_AGGREGATORS(LTU_FAST_KNOWN_AGGREGATOR)
#undef LTU_FAST_KNOWN_AGGREGATOR
  return false;
}

}  // namespace ltu_fast
