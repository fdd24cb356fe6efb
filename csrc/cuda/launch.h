// Host entry points of the CUDA backend. Everything is a raw device address (uintptr_t) owned by
// torch, plus sizes, dtype codes, the device index and the CUDA stream handle: no libtorch here.
#pragma once

#include <cstdint>

namespace ltu_fast {
namespace cuda {

struct RowsArgs {                 // the K gradient rows and the plan's chunk table
  uintptr_t rows = 0;             // [K, row_stride] of row_dtype
  int row_dtype = 0;              // DType code (ltu_fast/codes.h)
  int k = 0;                      // 1..4
  int64_t row_stride = 0;         // elements between rows (plan.total)
  uintptr_t chunks = 0;           // int64 [num_chunks, 4]: start, len, segment, group
  int64_t num_chunks = 0;
  bool vec = false;               // every pointer 16-byte aligned and offsets multiples of a pack
  int device = 0;
  uintptr_t stream = 0;
};

struct GramArgs : RowsArgs {
  uintptr_t seg_ptr = 0;          // int64 [num_segments + 1] into seg_chunks
  uintptr_t seg_chunks = 0;       // int64 [num_chunks]: chunk ids grouped by segment, fixed order
  int64_t num_segments = 0;
  uintptr_t partial = 0;          // float [num_chunks, K(K+1)/2] scratch
  uintptr_t stats = 0;            // float [num_segments, K, K] output
};

struct CombineArgs : RowsArgs {
  uintptr_t beta = 0;             // float [L, K]
  uintptr_t out = 0;              // [row_stride] of row_dtype
};

struct ApplyArgs : RowsArgs {     // the fused update of one rule (ltu_fast/rules.h)
  int rule = 0;                   // LTU_FAST_RULES code
  uintptr_t beta = 0;             // float [L, K]
  uintptr_t param = 0;            // float [row_stride]
  uintptr_t buffers[3] = {};      // float [row_stride] each, or 0 when absent (kMaxBuffers)
  uintptr_t table = 0;            // float [T, R]: the rule's rows, one per tensor (chunk group column)
  uintptr_t found_inf = 0;        // float [1]
};

struct AxpyArgs {
  uintptr_t acc = 0;
  int acc_dtype = 0;
  uintptr_t x = 0;
  int x_dtype = 0;
  int64_t n = 0;
  uintptr_t alpha_ptr = 0;        // float [1] on the device, or 0 to use `alpha`
  float alpha = 0.0f;
  int device = 0;
  uintptr_t stream = 0;
};

void gram(const GramArgs& a);
void combine(const CombineArgs& a);
void apply(const ApplyArgs& a);
void axpy(const AxpyArgs& a);
// CUDA versions as 1000 * major + 10 * minor (cudaDriverGetVersion, cudaRuntimeGetVersion); driver 0: none.
void versions(int* driver, int* runtime);

}  // namespace cuda
}  // namespace ltu_fast
