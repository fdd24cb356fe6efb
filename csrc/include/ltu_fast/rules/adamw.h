// AdamW (torch.optim.AdamW's single-tensor path, in its operation order) for the C++ CPU and CUDA
// backends; Python: ltu_fast/rules/adamw.py.
//
//   prepare (float64, per tensor): step += active;  t = max(step, 1)
//     step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t), decay = 1 - lr * weight_decay
//   element: g = -g if maximize;  p *= decay;  m = lerp(m, g, 1 - beta1);  v = v * beta2 + (1 - beta2) * g * g
//     vmax = max(vmax, v) if amsgrad;  denom = sqrt(amsgrad ? vmax : v) / bc2_sqrt + eps
//     p += (-step_size * m) / denom
// torch's lerp: m + w (g - m) if |w| < 0.5 else g - (g - m)(1 - w).
#pragma once

#include <cmath>

#include "ltu_fast/rule.h"

namespace ltu_fast {

struct AdamWRule {
  static constexpr const char kName[] = "adamw";
  static constexpr const char kGroup[] = "lr,beta1,beta2,eps,weight_decay,amsgrad,maximize";
  static constexpr const char kState[] = "step";
  static constexpr const char kRow[] =
      "active,step_size,bc2_sqrt,decay,w1,beta2,one_minus_beta2,eps,amsgrad,maximize";
  static constexpr const char kBuffers[] = "exp_avg,exp_avg_sq,max_exp_avg_sq";
  struct Group {
    static constexpr int lr = column(kGroup, "lr"), beta1 = column(kGroup, "beta1"), beta2 = column(kGroup, "beta2"),
                         eps = column(kGroup, "eps"), weight_decay = column(kGroup, "weight_decay"),
                         amsgrad = column(kGroup, "amsgrad"), maximize = column(kGroup, "maximize");
  };
  struct Row {
    static constexpr int step_size = column(kRow, "step_size"), bc2_sqrt = column(kRow, "bc2_sqrt"),
                         decay = column(kRow, "decay"), w1 = column(kRow, "w1"), beta2 = column(kRow, "beta2"),
                         one_minus_beta2 = column(kRow, "one_minus_beta2"), eps = column(kRow, "eps"),
                         amsgrad = column(kRow, "amsgrad"), maximize = column(kRow, "maximize");
  };
  static constexpr int kStep = column(kState, "step");
  static constexpr int kMaxExpAvgSq = column(kBuffers, "max_exp_avg_sq");

  struct Hyper {
    float step_size, bc2_sqrt, decay, w1, one_minus_w1, beta2, one_minus_beta2, eps;
    bool small_w1, amsgrad, maximize;
  };

  // The bias corrections in float64 from each tensor's own step count (torch computes them in
  // Python floats), then one cast to float32. An inactive tensor at step 0 gets finite, unused values.
  LTU_HD static void prepare(GroupRow group, float* state, bool active, float* row) {
    if (active) state[kStep] += 1.0f;  // float32, as torch's state["step"]
    const double t = state[kStep] < 1.0f ? 1.0 : double(state[kStep]);
    const double lr = group[Group::lr], beta1 = group[Group::beta1], beta2 = group[Group::beta2];
    row[Row::step_size] = float(lr / (1.0 - std::pow(beta1, t)));
    row[Row::bc2_sqrt] = float(std::sqrt(1.0 - std::pow(beta2, t)));
    row[Row::decay] = float(1.0 - mul_rn(lr, group[Group::weight_decay]));
    row[Row::w1] = float(1.0 - beta1);
    row[Row::beta2] = float(beta2);
    row[Row::one_minus_beta2] = float(1.0 - beta2);
    row[Row::eps] = float(group[Group::eps]);
    row[Row::amsgrad] = float(group[Group::amsgrad]);
    row[Row::maximize] = float(group[Group::maximize]);
  }

  LTU_HD static Hyper load(const float* row) {
    Hyper h;
    h.step_size = row[Row::step_size];
    h.bc2_sqrt = row[Row::bc2_sqrt];
    h.decay = row[Row::decay];
    h.w1 = row[Row::w1];
    h.one_minus_w1 = 1.0f - h.w1;
    h.small_w1 = h.w1 < 0.5f && h.w1 > -0.5f;  // torch's lerp: the form that is exact at its end
    h.beta2 = row[Row::beta2];
    h.one_minus_beta2 = row[Row::one_minus_beta2];
    h.eps = row[Row::eps];
    h.amsgrad = row[Row::amsgrad] != 0.0f;
    h.maximize = row[Row::maximize] != 0.0f;
    return h;
  }

  // 0: exp_avg and exp_avg_sq; 1: amsgrad, max_exp_avg_sq too (its buffer exists: some group uses it).
  static constexpr int kVariants = 2;
  LTU_HD static int variant(const Hyper& h, const bool* present) { return h.amsgrad && present[kMaxExpAvgSq]; }
  LTU_HD static constexpr bool live(int variant, int buffer) { return buffer < 2 || (variant == 1 && buffer == 2); }

  template <int V>
  LTU_HD static float element(float g, float p, float (&s)[kMaxBuffers], const Hyper& h) {
    if (h.maximize) g = -g;
    p = p * h.decay;
    const float diff = g - s[0];
    s[0] = h.small_w1 ? s[0] + h.w1 * diff : g - diff * h.one_minus_w1;
    s[1] = s[1] * h.beta2 + h.one_minus_beta2 * g * g;
    float second = s[1];
    if (V == 1) {
      s[2] = s[2] < s[1] ? s[1] : s[2];
      second = s[2];
    }
    const float denom = std::sqrt(second) / h.bc2_sqrt + h.eps;
    return p + (-h.step_size * s[0]) / denom;
  }
};

}  // namespace ltu_fast
