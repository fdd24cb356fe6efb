// Element-wise passes over the plan's chunks: one shared driver computes the combined gradient
// g = sum_k beta[segment, k] * rows[k, e] with 16-byte loads; a functor per op consumes it.
#include "common.cuh"
#include "launch.h"
#include "ltu_fast/sgd_math.h"

namespace ltu_fast {
namespace cuda {
namespace {

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

// out[e] = g in the rows' dtype.
template <typename T>
struct CombineOp {
  T* out;
  __device__ bool begin(int64_t) { return true; }
  template <int N>
  __device__ void apply(int64_t e, const float (&g)[N]) { store_pack<T, N>(out + e, g); }
};

// The fused SGD update (sgd_math.h); a non-zero found_inf makes every block return at once.
struct SgdOp {
  float* param;
  float* momentum;  // nullptr: no group uses momentum
  const float* hyper;
  const float* ready;
  const float* found_inf;
  GroupHyper h;

  __device__ bool begin(int64_t group) {
    if (*found_inf != 0.0f) return false;
    h = load_group_hyper(hyper + group * kHyperColumns, ready[group]);
    if (momentum == nullptr) h.has_momentum = false;
    return true;
  }

  template <int N>
  __device__ void apply(int64_t e, const float (&g)[N]) {
    float p[N], buf[N];
    load_pack<float, N>(param + e, p);
    if (h.has_momentum) {
      load_pack<float, N>(momentum + e, buf);
    } else {
#pragma unroll
      for (int n = 0; n < N; ++n) buf[n] = 0.0f;
    }
#pragma unroll
    for (int n = 0; n < N; ++n) p[n] = sgd_element(g[n], p[n], buf[n], h);
    store_pack<float, N>(param + e, p);
    if (h.has_momentum) store_pack<float, N>(momentum + e, buf);
  }
};

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

}  // namespace

void combine(const CombineArgs& a) {
  launch(a, reinterpret_cast<const float*>(a.beta), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return CombineOp<T>{reinterpret_cast<T*>(a.out)};
  }, "combine launch");
}

void sgd_apply(const SgdArgs& a) {
  launch(a, reinterpret_cast<const float*>(a.beta), [&](auto) {
    return SgdOp{reinterpret_cast<float*>(a.param), reinterpret_cast<float*>(a.momentum),
                 reinterpret_cast<const float*>(a.hyper), reinterpret_cast<const float*>(a.ready),
                 reinterpret_cast<const float*>(a.found_inf), GroupHyper{}};
  }, "sgd_apply launch");
}

}  // namespace cuda
}  // namespace ltu_fast
