// FairGrad (ltu_fast/aggregators/fairgrad.py): G w = w^(-1/alpha) by damped Newton (newton.h);
// alpha = 0 is the uniform 1/K.
#pragma once

#include "ltu_fast/aggregators/common.h"
#include "ltu_fast/aggregators/newton.h"

namespace ltu_fast {

// slots: ints[0] = Newton iterations, floats[0] = alpha (>= 0).
LTU_HD void fairgrad_segment(const SolveSpec& s, const Gram& g, uint64_t /*step*/, double* /*state*/, double* beta) {
  const int k = s.k;
  const double alpha = s.floats[0];
  if (alpha == 0.0) {
    for (int i = 0; i < k; ++i) beta[i] = 1.0 / k;
    return;
  }
  Gram psd;
  nearest_psd(g, k, psd);
  power_equation(psd, k, 1.0 / alpha, s.ints[0], beta);
}

}  // namespace ltu_fast
