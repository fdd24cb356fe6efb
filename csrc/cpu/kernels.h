// The CPU backend ops over flat rows (see ltu_fast/backends/base.py for the contract).
//
// Work is split into the plan's fixed chunks (table rows: start, length, segment, group; chunks.h
// drives every pass over them), so every chunk is processed by one thread in one fixed order:
// results are bitwise identical run to run and for any number of threads. All buffers are owned by
// the caller (torch).
#pragma once

#include <cstdint>

#include "ltu_fast/codes.h"
#include "ltu_fast/rule.h"

namespace ltu_fast::cpu {

struct Rows {
  const void* data;  // [k, stride] in `dtype` (ltu_fast/codes.h DType)
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

// The fused update of rule `rule` (ltu_fast/rules.h): the chunk group column is the row of
// `table` [T, R] (float32) a tensor reads; `buffers` null where a buffer is absent. No write at all
// if *found_inf != 0; an inactive tensor's chunks are skipped.
void apply(int rule, const Rows& rows, const Chunks& chunks, const float* beta, float* param,
           float* const (&buffers)[kMaxBuffers], const float* table, const float* found_inf, int threads);

// acc[i] += alpha * x[i] for i < n, x in `dtype`.
void axpy(float* acc, const void* x, int dtype, int64_t n, float alpha, int threads);

}  // namespace ltu_fast::cpu
