// The integer codes and table layouts every language shares, defined once for C++ and CUDA.
//
// Python keeps its own copies where it builds the tables (ltu_fast/backends/base.py DTYPE_CODES,
// ltu_fast/plan.py TABLE_* and CHUNK_*, ltu_fast/aggregators SOLVER_KINDS and SPEC_*), the Triton kernels theirs
// (kernels/chunks.py, kernels/solve.py); both pybind modules export these values and
// tests/test_codes.py fails if any copy disagrees.
#pragma once

#include <cstdint>

#if !defined(LTU_HD)
#if defined(__CUDACC__)
#define LTU_HD __host__ __device__ __forceinline__
#else
#define LTU_HD inline
#endif
#endif

namespace ltu_fast {

// Element dtype of the gradient rows (and of axpy's buffers).
enum DType : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

// Columns of SegmentPlan.table, int64 [T, kTableColumns]: one row per tensor.
enum TableColumn : int { kTableOffset = 0, kTableNumel, kTableSegment, kTableGroup, kTableColumns };

// Columns of SegmentPlan.chunk_table(...).chunks, int64 [C, kChunkColumns]. The group column of a
// plan from functional.tensor_plan is the tensor's index: the row of its update rule's table.
enum ChunkColumn : int { kChunkStart = 0, kChunkLength, kChunkSegment, kChunkGroup, kChunkColumns };

// Aggregator kinds of the compiled coefficient solve: ltu_fast/aggregators.h (LTU_FAST_AGGREGATORS).
constexpr int kMaxSolveK = 8;  // larger K runs the torch aggregators (Python: MAX_SOLVE_K)

}  // namespace ltu_fast
