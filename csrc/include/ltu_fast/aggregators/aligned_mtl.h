// Aligned-MTL for one segment: ltu_fast/aggregators/aligned_mtl.py step for step.
//   G = V diag(lambda) V^T over the eigenvalues lambda > max(lambda) k eps ("kept", by Jacobi
//   sweeps); beta = sqrt(scale) V diag(lambda^-1/2) V^T p, scale the smallest kept eigenvalue (min),
//   their lower median (median) or mean (rmse); beta = p when none is kept.
#pragma once

#include <cmath>

#include "ltu_fast/aggregators/common.h"
#include "ltu_fast/aggregators/jacobi.h"

namespace ltu_fast {

enum AlignedScale : int { kAlignedMin = 0, kAlignedMedian = 1, kAlignedRmse = 2 };

// slots: ints[0] = Jacobi sweeps, ints[1] = scale mode (AlignedScale, Python SCALE_MODES' index);
// floats[0] = eps of the Gram's dtype; preference p at floats[kSpecPreference + j].
LTU_HD void aligned_mtl_segment(const SolveSpec& s, const Gram& g, uint64_t /*step*/, double* /*state*/,
                                double* beta) {
  const int k = s.k;
  const double* p = s.floats + kSpecPreference;
  double values[kMaxSolveK], kept[kMaxSolveK], factor[kMaxSolveK];
  Gram vectors;
  symmetric_eigen(g, k, s.ints[0], values, vectors);
  double largest = values[0];
  for (int j = 1; j < k; ++j) largest = values[j] > largest ? values[j] : largest;
  const double cut = largest * k * s.floats[0];
  int rank = 0;
  for (int j = 0; j < k; ++j)
    if (values[j] > cut) {  // insertion into the ascending list of kept eigenvalues
      int u = rank++;
      for (; u > 0 && kept[u - 1] > values[j]; --u) kept[u] = kept[u - 1];
      kept[u] = values[j];
    }
  if (rank == 0) {
    for (int j = 0; j < k; ++j) beta[j] = p[j];
    return;
  }
  double scale = kept[0];
  if (s.ints[1] == kAlignedMedian) {
    scale = kept[(rank - 1) / 2];
  } else if (s.ints[1] == kAlignedRmse) {
    double total = 0.0;
    for (int j = 0; j < k; ++j) total += values[j] > cut ? values[j] : 0.0;
    scale = total / rank;
  }
  const double root = sqrt(scale < 0.0 ? 0.0 : scale);
  for (int j = 0; j < k; ++j) factor[j] = values[j] > cut ? root * (1.0 / sqrt(values[j])) : 0.0;
  eigen_apply(vectors, k, factor, p, beta);
}

}  // namespace ltu_fast
