// Per-segment Gram of K rows over every tensor of a plan: one launch of per-chunk partials, then a
// fixed-order per-segment sum. No atomics, so the result is bitwise repeatable.
#include "common.cuh"
#include "launch.h"

namespace ltu_fast {
namespace cuda {
namespace {

template <int K> constexpr int kPairs = K * (K + 1) / 2;

template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
gram_partial_kernel(const T* __restrict__ rows, int64_t stride, const ChunkMeta* __restrict__ chunks,
                    bool vec, float* __restrict__ partial) {
  constexpr int M = kPairs<K>, N = kVec<T>;
  __shared__ float smem[kThreads / 32 * M];
  const ChunkMeta c = chunks[blockIdx.x];
  const T* base = rows + c.start;
  float acc[M] = {};
  const int64_t head = vec ? c.len / N * N : 0;
#pragma unroll 2
  for (int64_t i = int64_t(threadIdx.x) * N; i < head; i += int64_t(kThreads) * N) {
    float x[K][N];
#pragma unroll
    for (int k = 0; k < K; ++k) load_pack<T, N>(base + k * stride + i, x[k]);
    int m = 0;
#pragma unroll
    for (int a = 0; a < K; ++a) {
#pragma unroll
      for (int b = 0; b <= a; ++b, ++m) {
#pragma unroll
        for (int n = 0; n < N; ++n) acc[m] = fmaf(x[a][n], x[b][n], acc[m]);
      }
    }
  }
  for (int64_t i = head + threadIdx.x; i < c.len; i += kThreads) {
    float x[K];
#pragma unroll
    for (int k = 0; k < K; ++k) x[k] = to_float(base[k * stride + i]);
    int m = 0;
#pragma unroll
    for (int a = 0; a < K; ++a) {
#pragma unroll
      for (int b = 0; b <= a; ++b, ++m) acc[m] = fmaf(x[a], x[b], acc[m]);
    }
  }
  block_sum<kThreads, M>(acc, smem);
  if (threadIdx.x == 0) {
#pragma unroll
    for (int m = 0; m < M; ++m) partial[int64_t(blockIdx.x) * M + m] = acc[m];
  }
}

template <int K>
__global__ void __launch_bounds__(kReduceThreads)
gram_reduce_kernel(const float* __restrict__ partial, const int64_t* __restrict__ seg_ptr,
                   const int64_t* __restrict__ seg_chunks, float* __restrict__ stats) {
  constexpr int M = kPairs<K>;
  __shared__ float smem[kReduceThreads / 32 * M];
  const int64_t lo = seg_ptr[blockIdx.x], hi = seg_ptr[blockIdx.x + 1];
  float acc[M] = {};
  for (int64_t i = lo + threadIdx.x; i < hi; i += kReduceThreads) {
    const float* p = partial + seg_chunks[i] * M;
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] += p[m];
  }
  block_sum<kReduceThreads, M>(acc, smem);
  if (threadIdx.x == 0) {
    float* out = stats + int64_t(blockIdx.x) * K * K;
    int m = 0;
#pragma unroll
    for (int a = 0; a < K; ++a) {
#pragma unroll
      for (int b = 0; b <= a; ++b, ++m) out[a * K + b] = out[b * K + a] = acc[m];
    }
  }
}

}  // namespace

void gram(const GramArgs& a) {
  DeviceGuard guard(a.device);
  if (a.num_segments == 0) return;  // nothing to write (a 0-block grid is a launch error)
  auto stream = reinterpret_cast<cudaStream_t>(a.stream);
  dispatch_dtype(a.row_dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_k(a.k, [&](auto kc) {
      constexpr int K = decltype(kc)::value;
      if (a.num_chunks > 0) {  // no chunks: every segment is empty, and the reduce writes its zeros
        gram_partial_kernel<T, K><<<unsigned(a.num_chunks), kThreads, 0, stream>>>(
            reinterpret_cast<const T*>(a.rows), a.row_stride, reinterpret_cast<const ChunkMeta*>(a.chunks),
            a.vec, reinterpret_cast<float*>(a.partial));
        check(cudaGetLastError(), "gram_partial_kernel launch");
      }
      gram_reduce_kernel<K><<<unsigned(a.num_segments), kReduceThreads, 0, stream>>>(
          reinterpret_cast<const float*>(a.partial), reinterpret_cast<const int64_t*>(a.seg_ptr),
          reinterpret_cast<const int64_t*>(a.seg_chunks), reinterpret_cast<float*>(a.stats));
      check(cudaGetLastError(), "gram_reduce_kernel launch");
    });
  });
}

}  // namespace cuda
}  // namespace ltu_fast
