// The four CPU backend ops over flat rows (see ltu_fast/backends/base.py for the contract).
//
// Work is split into the plan's fixed chunks (table rows: start, length, segment, group), so
// every chunk is processed by one thread in one fixed order: results are bitwise identical run
// to run and for any number of threads. All buffers are owned by the caller (torch).
#pragma once

#include <cstdint>

namespace ltu_fast::cpu {

// Columns of the int64 [n_chunks, 4] chunk table built by ltu_fast/backends/cpu.py.
enum ChunkColumn : int { kChunkStart = 0, kChunkLength, kChunkSegment, kChunkGroup, kChunkColumns };

struct Rows {
  const void* data;  // [k, stride] in `dtype` (convert.h DType)
  int dtype;
  int64_t k;
  int64_t stride;
};

struct Chunks {
  const int64_t* table;  // [count, kChunkColumns]
  int64_t count;
};

// stats[L, k, k] (float32, full symmetric) of each segment; `partials` is double [count, k(k+1)/2]
// scratch; segment s sums chunks seg_chunks[seg_ptr[s] .. seg_ptr[s+1]) in that order.
void gram(const Rows& rows, const Chunks& chunks, const int64_t* seg_ptr, const int64_t* seg_chunks,
          int64_t num_segments, double* partials, float* stats, int threads);

// out[e] = sum_k beta[seg(e), k] * rows[k, e], stored in the rows' dtype (padding untouched).
void combine(const Rows& rows, const Chunks& chunks, const float* beta, void* out, int threads);

// The fused SGD update of base.py; `momentum` may be null (no buffer). No write if *found_inf != 0.
void sgd_apply(const Rows& rows, const Chunks& chunks, const float* beta, float* param, float* momentum,
               const float* hyper, const float* ready, const float* found_inf, int threads);

// acc[i] += alpha * x[i] for i < n, x in `dtype`.
void axpy(float* acc, const void* x, int dtype, int64_t n, float alpha, int threads);

}  // namespace ltu_fast::cpu
