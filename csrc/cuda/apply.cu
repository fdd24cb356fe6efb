// Element-wise passes over the plan's chunks (the driver is chunk_apply.cuh); a functor per op
// consumes the combined gradient.
#include "chunk_apply.cuh"
#include "common.cuh"
#include "launch.h"
#include "ltu_fast/sgd_math.h"

namespace ltu_fast {
namespace cuda {
namespace {

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
