// Element-wise passes over the plan's chunks (the driver is chunk_apply.cuh): combine, and the fused
// update of every rule (ltu_fast/rules.h) through one functor.
#include <stdexcept>
#include <string>

#include "chunk_apply.cuh"
#include "common.cuh"
#include "launch.h"
#include "ltu_fast/rules.h"

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

// f(std::integral_constant<int, v>{}) for a variant v < N known only at run time (uniform per block).
template <int N, class F>
__device__ __forceinline__ void with_variant(int v, F&& f) {
  if constexpr (N > 1) {
    if (v == N - 1) return f(std::integral_constant<int, N - 1>{});
    return with_variant<N - 1>(v, f);
  } else {
    f(std::integral_constant<int, 0>{});
  }
}

// The fused update of `Rule`: per chunk its tensor's row (the chunk group column) is read once; a
// non-zero found_inf or an inactive tensor makes the block return at once.
template <class Rule>
struct RuleOp {
  float* param;
  float* buffers[kMaxBuffers];  // nullptr: absent
  const float* table;
  const float* found_inf;
  typename Rule::Hyper h;
  int variant;

  __device__ bool begin(int64_t tensor) {
    if (*found_inf != 0.0f) return false;
    const float* row = table + tensor * Columns<Rule>::row;
    if (row[kRowActive] == 0.0f) return false;
    h = Rule::load(row);
    const bool present[kMaxBuffers] = {buffers[0] != nullptr, buffers[1] != nullptr, buffers[2] != nullptr};
    variant = Rule::variant(h, present);
    return true;
  }

  template <int V, int N>
  __device__ void apply_variant(int64_t e, const float (&g)[N]) {
    float p[N], s[kMaxBuffers][N];
    load_pack<float, N>(param + e, p);
#pragma unroll
    for (int b = 0; b < kMaxBuffers; ++b) {
      if (Rule::live(V, b)) {
        load_pack<float, N>(buffers[b] + e, s[b]);
      } else {
#pragma unroll
        for (int n = 0; n < N; ++n) s[b][n] = 0.0f;
      }
    }
#pragma unroll
    for (int n = 0; n < N; ++n) {
      float one[kMaxBuffers] = {s[0][n], s[1][n], s[2][n]};
      p[n] = Rule::template element<V>(g[n], p[n], one, h);
#pragma unroll
      for (int b = 0; b < kMaxBuffers; ++b) s[b][n] = one[b];
    }
    store_pack<float, N>(param + e, p);
#pragma unroll
    for (int b = 0; b < kMaxBuffers; ++b)
      if (Rule::live(V, b)) store_pack<float, N>(buffers[b] + e, s[b]);
  }

  template <int N>
  __device__ void apply(int64_t e, const float (&g)[N]) {
    with_variant<Rule::kVariants>(variant, [&](auto v) { apply_variant<decltype(v)::value, N>(e, g); });
  }
};

}  // namespace

void combine(const CombineArgs& a) {
  launch(a, reinterpret_cast<const float*>(a.beta), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return CombineOp<T>{reinterpret_cast<T*>(a.out)};
  }, "combine launch");
}

void apply(const ApplyArgs& a) {
  if (!known_rule(a.rule)) throw std::invalid_argument("ltu_fast._C_cuda: unknown update rule code " + std::to_string(a.rule));
#define LTU_FAST_APPLY(code, Rule)                                                                            \
  if (a.rule == code)                                                                                         \
    launch(a, reinterpret_cast<const float*>(a.beta), [&](auto) {                                             \
      return RuleOp<Rule>{reinterpret_cast<float*>(a.param),                                                  \
                          {reinterpret_cast<float*>(a.buffers[0]), reinterpret_cast<float*>(a.buffers[1]),    \
                           reinterpret_cast<float*>(a.buffers[2])},                                           \
                          reinterpret_cast<const float*>(a.table), reinterpret_cast<const float*>(a.found_inf), \
                          typename Rule::Hyper{}, 0};                                                         \
    }, "apply launch");
  LTU_FAST_RULES(LTU_FAST_APPLY)
#undef LTU_FAST_APPLY
}

}  // namespace cuda
}  // namespace ltu_fast
