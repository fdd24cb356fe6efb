// Element-wise AdamW math shared by the C++ CPU and CUDA backends (one definition of the update).
//
// Semantics are those of ltu_fast/backends/base.py (adamw_apply) and torch.optim.AdamW's
// single-tensor path, in its operation order:
//   g = -g if maximize;  p *= decay;  m = lerp(m, g, w1);  v = v * beta2 + (1 - beta2) * g * g
//   vmax = max(vmax, v) if amsgrad;  denom = sqrt(amsgrad ? vmax : v) / bc2_sqrt + eps
//   p += (-step_size * m) / denom
// The per-tensor row (step_size = lr / (1 - beta1^t), bc2_sqrt, decay = 1 - lr * wd, ...) is
// computed on the device in float64 by ltu_fast.functional.adamw_table.
#pragma once

#include <cmath>
#include <cstdint>

#if !defined(LTU_HD)
#if defined(__CUDACC__)
#define LTU_HD __host__ __device__ __forceinline__
#else
#define LTU_HD inline
#endif
#endif

namespace ltu_fast {

// Columns of the float32 [T, 10] AdamW row table (ltu_fast.backends.base.ADAMW_COLUMNS).
enum AdamWColumn : int {
  kAdamStepSize = 0, kAdamBc2Sqrt, kAdamDecay, kAdamW1, kAdamBeta2, kAdamOneMinusBeta2, kAdamEps, kAdamAmsgrad,
  kAdamMaximize, kAdamActive, kAdamWColumns
};

struct AdamWHyper {
  float step_size, bc2_sqrt, decay, w1, one_minus_w1, beta2, one_minus_beta2, eps;
  bool small_w1, amsgrad, maximize, active;
};

LTU_HD AdamWHyper load_adamw_hyper(const float* row) {
  AdamWHyper h;
  h.step_size = row[kAdamStepSize];
  h.bc2_sqrt = row[kAdamBc2Sqrt];
  h.decay = row[kAdamDecay];
  h.w1 = row[kAdamW1];
  h.one_minus_w1 = 1.0f - h.w1;
  h.small_w1 = h.w1 < 0.5f && h.w1 > -0.5f;  // torch's lerp: the form that is exact at its end
  h.beta2 = row[kAdamBeta2];
  h.one_minus_beta2 = row[kAdamOneMinusBeta2];
  h.eps = row[kAdamEps];
  h.amsgrad = row[kAdamAmsgrad] != 0.0f;
  h.maximize = row[kAdamMaximize] != 0.0f;
  h.active = row[kAdamActive] != 0.0f;
  return h;
}

// One element of the fused update: returns the new parameter, updates m, v (and vmax with amsgrad).
LTU_HD float adamw_element(float g, float p, float& m, float& v, float& vmax, const AdamWHyper& h) {
  if (h.maximize) g = -g;
  p = p * h.decay;
  const float diff = g - m;
  m = h.small_w1 ? m + h.w1 * diff : g - diff * h.one_minus_w1;
  v = v * h.beta2 + h.one_minus_beta2 * g * g;
  float second = v;
  if (h.amsgrad) {
    vmax = vmax < v ? v : vmax;
    second = vmax;
  }
  const float denom = std::sqrt(second) / h.bc2_sqrt + h.eps;
  return p + (-h.step_size * m) / denom;
}

}  // namespace ltu_fast
