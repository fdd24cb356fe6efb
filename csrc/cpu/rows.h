// Row helpers shared by the CPU kernels (kernels.cpp, adamw.cpp): dtype/K dispatch and the
// combined gradient, written once so every fused op sums the K rows alike.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "convert.h"

namespace ltu_fast::cpu {

template <int N>
using IntC = std::integral_constant<int, N>;

// Calls f(Format{}, IntC<K or 0>{}) for the row dtype and K.
template <class F>
void dispatch(int dtype, int64_t k, F&& f) {
  auto with_k = [&](auto fmt) {
    switch (k) {
      case 1: return f(fmt, IntC<1>{});
      case 2: return f(fmt, IntC<2>{});
      case 3: return f(fmt, IntC<3>{});
      case 4: return f(fmt, IntC<4>{});
      case 5: return f(fmt, IntC<5>{});
      case 6: return f(fmt, IntC<6>{});
      case 7: return f(fmt, IntC<7>{});
      case 8: return f(fmt, IntC<8>{});
      default: return f(fmt, IntC<0>{});
    }
  };
  switch (dtype) {
    case kFloat32: return with_k(FP32{});
    case kBFloat16: return with_k(BF16{});
    case kFloat16: return with_k(FP16{});
    default: throw std::invalid_argument("ltu_fast._C: unsupported dtype code " + std::to_string(dtype));
  }
}

// g = sum_k beta[k] * rows[k, i] in float, k in order (as the reference's sum over dim 0).
// combined8 is the same arithmetic on eight elements, so both give identical bits.
template <class Fmt, int KT>
inline float combined(const typename Fmt::storage* rows, int64_t stride, int64_t k, const float* beta, int64_t i) {
  const int64_t n = KT > 0 ? KT : k;
  float g = beta[0] * Fmt::load(rows[i]);
  for (int64_t a = 1; a < n; ++a) g += beta[a] * Fmt::load(rows[a * stride + i]);
  return g;
}

template <class Fmt, int KT>
inline f32x8 combined8(const typename Fmt::storage* rows, int64_t stride, int64_t k, const float* beta, int64_t i) {
  const int64_t n = KT > 0 ? KT : k;
  f32x8 g = beta[0] * Fmt::load8(rows + i);
  for (int64_t a = 1; a < n; ++a) g += beta[a] * Fmt::load8(rows + a * stride + i);
  return g;
}

}  // namespace ltu_fast::cpu
