// Scalar float32 <-> bfloat16 / float16 conversions written with integer bit operations.
//
// Why not intrinsics: the build must be correct without F16C (portable wheels) and give the same
// bits with it. Every path is branch-free selects, so GCC vectorises the loops that call them.
// Decoding is exact; encoding rounds to nearest even like torch's `.to(dtype)`; NaN stays NaN.
// Each format is a struct with the storage type and load/store, used as a template argument.
#pragma once

#include <cstdint>
#include <cstring>

namespace ltu_fast::cpu {

enum DType : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

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

inline uint16_t float_to_bf16(float f) {
  const uint32_t u = float_to_bits(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const bool is_nan = (u & 0x7fffffffu) > 0x7f800000u;
  return uint16_t(is_nan ? 0x7fc0u : rounded);  // torch's canonical bfloat16 NaN
}

// Subnormal halves are decoded as mantissa * 2^-24 in integer-to-float form, so the result does
// not depend on the FPU's denormals-are-zero mode.
inline float fp16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  const float normal = bits_to_float(((exponent + 112u) << 23) | (mantissa << 13));
  const float subnormal = float(int32_t(mantissa)) * 0x1p-24f;
  const float special = bits_to_float(0x7f800000u | (mantissa << 13));
  const float magnitude = exponent == 0 ? subnormal : (exponent == 31 ? special : normal);
  return bits_to_float(float_to_bits(magnitude) | sign);
}

// Round to nearest even; overflow gives infinity, tiny values round into the subnormal range.
inline uint16_t float_to_fp16(float f) {
  const uint32_t u = float_to_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  // Normal range (|f| >= 2^-14): rebias the exponent, round the 13 dropped mantissa bits.
  const uint32_t normal = (a - (112u << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  // Subnormal range: adding 0.5 (exponent 126) aligns the mantissa so the FPU's own round to
  // nearest even drops exactly the bits a half cannot hold; the low bits are the result.
  const uint32_t subnormal = float_to_bits(bits_to_float(a) + 0.5f) - 0x3f000000u;
  const uint32_t finite = a < (113u << 23) ? subnormal : (normal > 0x7c00u ? 0x7c00u : normal);
  const uint32_t magnitude = a > 0x7f800000u ? 0x7e00u : (a == 0x7f800000u ? 0x7c00u : finite);
  return uint16_t(sign | magnitude);
}

struct BF16 {
  using storage = uint16_t;
  static float load(uint16_t x) { return bf16_to_float(x); }
  static uint16_t store(float x) { return float_to_bf16(x); }
};

struct FP16 {
  using storage = uint16_t;
  static float load(uint16_t x) { return fp16_to_float(x); }
  static uint16_t store(float x) { return float_to_fp16(x); }
};

struct FP32 {
  using storage = float;
  static float load(float x) { return x; }
  static float store(float x) { return x; }
};

}  // namespace ltu_fast::cpu
