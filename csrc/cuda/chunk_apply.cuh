// The driver of every element-wise pass over the plan's chunks (apply.cu: combine and every rule): one block per
// chunk computes the combined gradient g = sum_k beta[segment, k] * rows[k, e] with 16-byte loads
// and hands it to an op functor (begin(group) once per chunk, then apply<N>(element, g)).
#pragma once

#include "common.cuh"
#include "launch.h"

namespace ltu_fast {
namespace cuda {

template <typename T, int K, class Op>
__global__ void __launch_bounds__(kThreads)
chunk_apply_kernel(const T* __restrict__ rows, int64_t stride, const float* __restrict__ beta,
                   const ChunkMeta* __restrict__ chunks, bool vec, Op op) {
  constexpr int N = kVec<T>;
  const ChunkMeta c = chunks[blockIdx.x];
  if (!op.begin(c.group)) return;  // uniform over the block
  float b[K];
#pragma unroll
  for (int k = 0; k < K; ++k) b[k] = beta[c.segment * K + k];
  const T* base = rows + c.start;
  const int64_t head = vec ? c.len / N * N : 0;
#pragma unroll 2
  for (int64_t i = int64_t(threadIdx.x) * N; i < head; i += int64_t(kThreads) * N) {
    float x[K][N];
#pragma unroll
    for (int k = 0; k < K; ++k) load_pack<T, N>(base + k * stride + i, x[k]);
    float g[N];
#pragma unroll
    for (int n = 0; n < N; ++n) {
      g[n] = 0.0f;
#pragma unroll
      for (int k = 0; k < K; ++k) g[n] = fmaf(b[k], x[k][n], g[n]);
    }
    op.template apply<N>(c.start + i, g);
  }
  for (int64_t i = head + threadIdx.x; i < c.len; i += kThreads) {
    float g[1] = {0.0f};
#pragma unroll
    for (int k = 0; k < K; ++k) g[0] = fmaf(b[k], to_float(base[k * stride + i]), g[0]);
    op.template apply<1>(c.start + i, g);
  }
}

template <class MakeOp>
void launch(const RowsArgs& a, const float* beta, MakeOp make_op, const char* what) {
  DeviceGuard guard(a.device);
  if (a.num_chunks == 0) return;
  auto stream = reinterpret_cast<cudaStream_t>(a.stream);
  dispatch_dtype(a.row_dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto op = make_op(tag);
    dispatch_k(a.k, [&](auto kc) {
      constexpr int K = decltype(kc)::value;
      chunk_apply_kernel<T, K><<<unsigned(a.num_chunks), kThreads, 0, stream>>>(
          reinterpret_cast<const T*>(a.rows), a.row_stride, beta,
          reinterpret_cast<const ChunkMeta*>(a.chunks), a.vec, op);
      check(cudaGetLastError(), what);
    });
  });
}

}  // namespace cuda
}  // namespace ltu_fast
