// Sum (ltu_fast/aggregators/sum.py): beta = 1, no harmonization. No slots.
#pragma once

#include "ltu_fast/aggregators/common.h"

namespace ltu_fast {

LTU_HD void sum_segment(const SolveSpec& s, const Gram&, uint64_t, double*, double* beta) {
  for (int a = 0; a < s.k; ++a) beta[a] = 1.0;
}

}  // namespace ltu_fast
