// The order in which objective i visits the others (PCGrad, GradVac): ascending, or the seeded
// random order hashed from (seed, step), bit for bit as ltu_fast.aggregators.pcgrad_visit_orders.
#pragma once

#include "ltu_fast/aggregators/common.h"

namespace ltu_fast {

// 32-bit integer mix (xor-shift-multiply). Multipliers stay below 2^31 so the torch mirror in
// int64 never overflows: the same bits in C++, CUDA, Triton and torch.
LTU_HD uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x5bd1e995U;
  x ^= x >> 16;
  return x;
}

// Sort key of objective j in the visit order of objective i at `step`: distinct for distinct j.
LTU_HD uint64_t visit_key(uint32_t seed, uint64_t step, int i, int j) {
  uint32_t h = mix32(static_cast<uint32_t>(i * 16 + j));
  h = mix32(h ^ static_cast<uint32_t>(step & 0xffffffffULL));
  h = mix32(h ^ seed);
  return (static_cast<uint64_t>(h) << 4) | static_cast<uint64_t>(j);
}

// order[0 .. k-2]: the objectives other than i, in the order objective i visits them.
LTU_HD void visit_order(int k, bool random, uint32_t seed, uint64_t step, int i, int* order) {
  int n = 0;
  for (int j = 0; j < k; ++j)
    if (j != i) order[n++] = j;
  if (!random) return;
  uint64_t keys[kMaxSolveK];
  for (int t = 0; t < n; ++t) keys[t] = visit_key(seed, step, i, order[t]);
  for (int t = 1; t < n; ++t) {  // insertion sort: n <= 7
    const uint64_t key = keys[t];
    const int j = order[t];
    int u = t - 1;
    for (; u >= 0 && keys[u] > key; --u) {
      keys[u + 1] = keys[u];
      order[u + 1] = order[u];
    }
    keys[u + 1] = key;
    order[u + 1] = j;
  }
}

}  // namespace ltu_fast
