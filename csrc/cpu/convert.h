// Scalar float32 <-> bfloat16 / float16 conversions written with integer bit operations.
//
// Why not intrinsics: the build must be correct without F16C (portable wheels) and give the same
// bits with it. Every path is branch-free selects, so GCC vectorises the loops that call them.
// Decoding is exact; encoding rounds to nearest even like torch's `.to(dtype)`; NaN stays NaN.
#pragma once

#include <cstdint>
#include <cstring>

#include "ltu_fast/codes.h"

namespace ltu_fast::cpu {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }

// Eight lanes as GCC/Clang vector extensions: AVX registers with -march=native, SSE pairs without.
using u16x8 = uint16_t __attribute__((vector_size(16)));
using u32x8 = uint32_t __attribute__((vector_size(32)));
using f32x8 = float __attribute__((vector_size(32)));

inline float as_float(uint32_t u) { return bits_to_float(u); }
inline uint32_t as_bits(float f) { return float_to_bits(f); }
inline f32x8 as_float(u32x8 u) { return reinterpret_cast<f32x8>(u); }
inline u32x8 as_bits(f32x8 f) { return reinterpret_cast<u32x8>(f); }

// cond ? a : b with bit masks instead of a branch, so scalar loops that decode halves vectorise too.
inline uint32_t pick(bool cond, uint32_t a, uint32_t b) {
  const uint32_t mask = 0u - uint32_t(cond);
  return (a & mask) | (b & ~mask);
}
template <class Mask>
inline u32x8 pick(Mask cond, u32x8 a, u32x8 b) {
  const u32x8 mask = reinterpret_cast<u32x8>(cond);
  return (a & mask) | (b & ~mask);
}

// Half bits -> float bits for a uint32_t or a u32x8 (the same operators exist for both).
// Subnormal halves are m * 2^-24 = (0.5 + m * 2^-24) - 0.5, exact and independent of the FPU's
// denormals-are-zero mode.
template <class U>
inline U fp16_bits_to_float_bits(U h) {
  const U sign = (h & 0x8000u) << 16;
  const U exponent = (h >> 10) & 0x1fu;
  const U mantissa = h & 0x3ffu;
  const U normal = ((exponent + 112u) << 23) | (mantissa << 13);
  const U subnormal = as_bits(as_float((126u << 23) | mantissa) - 0.5f);
  const U special = 0x7f800000u | (mantissa << 13);
  return sign | pick(exponent == 0u, subnormal, pick(exponent == 31u, special, normal));
}

inline float fp16_to_float(uint16_t h) { return bits_to_float(fp16_bits_to_float_bits(uint32_t(h))); }

// Float bits -> bfloat16 bits (low 16 bits of the result), round to nearest even; any NaN becomes
// torch's canonical 0x7fc0. `U() + c` is the constant c as a scalar or a splatted vector.
template <class U>
inline U float_bits_to_bf16_bits(U u) {
  const U rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return pick((u & 0x7fffffffu) > 0x7f800000u, U() + 0x7fc0u, rounded);
}

// Float bits -> half bits, round to nearest even; overflow gives infinity, tiny values round into
// the subnormal range, any NaN becomes 0x7e00 (as torch).
template <class U>
inline U float_bits_to_fp16_bits(U u) {
  const U sign = (u >> 16) & 0x8000u;
  const U a = u & 0x7fffffffu;
  // Normal range (|f| >= 2^-14): rebias the exponent, round the 13 dropped mantissa bits.
  const U normal = (a - (112u << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  // Subnormal range: adding 0.5 (exponent 126) aligns the mantissa so the FPU's own round to
  // nearest even drops exactly the bits a half cannot hold; the low bits are the result.
  const U subnormal = as_bits(as_float(a) + 0.5f) - 0x3f000000u;
  const U inf = U() + 0x7c00u;
  const U finite = pick(a < (113u << 23), subnormal, pick(normal > 0x7c00u, inf, normal));
  return sign | pick(a > 0x7f800000u, U() + 0x7e00u, pick(a == 0x7f800000u, inf, finite));
}

inline uint16_t float_to_bf16(float f) { return uint16_t(float_bits_to_bf16_bits(float_to_bits(f))); }
inline uint16_t float_to_fp16(float f) { return uint16_t(float_bits_to_fp16_bits(float_to_bits(f))); }

template <class Encode>
inline void store_halves(f32x8 v, uint16_t* dst, Encode encode) {
  const u16x8 h = __builtin_convertvector(encode(as_bits(v)), u16x8);
  std::memcpy(dst, &h, sizeof h);
}

// Row formats: storage type, scalar load/store, and load8/store8 (eight elements as an f32x8).
struct BF16 {
  using storage = uint16_t;
  static float load(uint16_t x) { return bf16_to_float(x); }
  static uint16_t store(float x) { return float_to_bf16(x); }
  static f32x8 load8(const uint16_t* src) {
    u16x8 h;
    std::memcpy(&h, src, sizeof h);
    return as_float(__builtin_convertvector(h, u32x8) << 16);
  }
  static void store8(f32x8 v, uint16_t* dst) { store_halves(v, dst, float_bits_to_bf16_bits<u32x8>); }
};

struct FP16 {
  using storage = uint16_t;
  static float load(uint16_t x) { return fp16_to_float(x); }
  static uint16_t store(float x) { return float_to_fp16(x); }
  static f32x8 load8(const uint16_t* src) {
    u16x8 h;
    std::memcpy(&h, src, sizeof h);
    return as_float(fp16_bits_to_float_bits(__builtin_convertvector(h, u32x8)));
  }
  static void store8(f32x8 v, uint16_t* dst) { store_halves(v, dst, float_bits_to_fp16_bits<u32x8>); }
};

struct FP32 {
  using storage = float;
  static float load(float x) { return x; }
  static float store(float x) { return x; }
  static f32x8 load8(const float* src) {
    f32x8 v;
    std::memcpy(&v, src, sizeof v);
    return v;
  }
  static void store8(f32x8 v, float* dst) { std::memcpy(dst, &v, sizeof v); }
};

}  // namespace ltu_fast::cpu
