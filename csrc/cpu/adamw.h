// The fused harmonize + AdamW op of the CPU backend (contract: adamw_apply in ltu_fast/backends/base.py).
#pragma once

#include <cstdint>

#include "kernels.h"

namespace ltu_fast::cpu {

// Chunk group column = row of `hyper` ([rows, kAdamWColumns] float32, one per tensor). `max_exp_avg_sq`
// may be null (no row has amsgrad). Inactive rows are skipped; no write at all if *found_inf != 0.
void adamw_apply(const Rows& rows, const Chunks& chunks, const float* beta, float* param, float* exp_avg,
                 float* exp_avg_sq, float* max_exp_avg_sq, const float* hyper, const float* found_inf, int threads);

}  // namespace ltu_fast::cpu
