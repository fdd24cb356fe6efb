// Fused combine + AdamW on the shared chunk driver: per chunk, the tensor's row of the AdamW table
// (chunk group column) and the skip flag are read once; the per-element math is adamw_math.h.
#include "chunk_apply.cuh"
#include "common.cuh"
#include "launch.h"
#include "ltu_fast/adamw_math.h"

namespace ltu_fast {
namespace cuda {
namespace {

struct AdamWOp {
  float* param;
  float* exp_avg;
  float* exp_avg_sq;
  float* max_exp_avg_sq;  // nullptr: no row has amsgrad
  const float* hyper;
  const float* found_inf;
  AdamWHyper h;

  __device__ bool begin(int64_t row) {
    if (*found_inf != 0.0f) return false;
    h = load_adamw_hyper(hyper + row * kAdamWColumns);
    if (max_exp_avg_sq == nullptr) h.amsgrad = false;
    return h.active;  // an untouched tensor is skipped whole
  }

  template <int N>
  __device__ void apply(int64_t e, const float (&g)[N]) {
    float p[N], m[N], v[N], vmax[N];
    load_pack<float, N>(param + e, p);
    load_pack<float, N>(exp_avg + e, m);
    load_pack<float, N>(exp_avg_sq + e, v);
    if (h.amsgrad) {
      load_pack<float, N>(max_exp_avg_sq + e, vmax);
    } else {
#pragma unroll
      for (int n = 0; n < N; ++n) vmax[n] = 0.0f;
    }
#pragma unroll
    for (int n = 0; n < N; ++n) p[n] = adamw_element(g[n], p[n], m[n], v[n], vmax[n], h);
    store_pack<float, N>(param + e, p);
    store_pack<float, N>(exp_avg + e, m);
    store_pack<float, N>(exp_avg_sq + e, v);
    if (h.amsgrad) store_pack<float, N>(max_exp_avg_sq + e, vmax);
  }
};

}  // namespace

void adamw_apply(const AdamWArgs& a) {
  launch(a, reinterpret_cast<const float*>(a.beta), [&](auto) {
    return AdamWOp{reinterpret_cast<float*>(a.param), reinterpret_cast<float*>(a.exp_avg),
                   reinterpret_cast<float*>(a.exp_avg_sq), reinterpret_cast<float*>(a.max_exp_avg_sq),
                   reinterpret_cast<const float*>(a.hyper), reinterpret_cast<const float*>(a.found_inf), AdamWHyper{}};
  }, "adamw_apply launch");
}

}  // namespace cuda
}  // namespace ltu_fast
