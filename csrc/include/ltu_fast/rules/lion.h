// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") for the C++ CPU and CUDA
// backends; Python: ltu_fast/rules/lion.py.
//
//   prepare (float64, per tensor): decay = 1 - lr * weight_decay, 1 - beta1, 1 - beta2
//   element: g = -g if maximize;  c = beta1 * m + (1 - beta1) * g;  p = p * decay - lr * sign(c)
//            m = beta2 * m + (1 - beta2) * g                       (sign(0) = 0)
#pragma once

#include "ltu_fast/rule.h"

namespace ltu_fast {

struct LionRule {
  static constexpr const char kName[] = "lion";
  static constexpr const char kGroup[] = "lr,beta1,beta2,weight_decay,maximize";
  static constexpr const char kState[] = "";
  static constexpr const char kRow[] = "active,lr,decay,beta1,one_minus_beta1,beta2,one_minus_beta2,maximize";
  static constexpr const char kBuffers[] = "exp_avg";
  struct Group {
    static constexpr int lr = column(kGroup, "lr"), beta1 = column(kGroup, "beta1"), beta2 = column(kGroup, "beta2"),
                         weight_decay = column(kGroup, "weight_decay"), maximize = column(kGroup, "maximize");
  };
  struct Row {
    static constexpr int lr = column(kRow, "lr"), decay = column(kRow, "decay"), beta1 = column(kRow, "beta1"),
                         one_minus_beta1 = column(kRow, "one_minus_beta1"), beta2 = column(kRow, "beta2"),
                         one_minus_beta2 = column(kRow, "one_minus_beta2"), maximize = column(kRow, "maximize");
  };

  struct Hyper {
    float lr, decay, beta1, one_minus_beta1, beta2, one_minus_beta2;
    bool maximize;
  };

  LTU_HD static void prepare(GroupRow group, float*, bool, float* row) {
    const double lr = group[Group::lr], beta1 = group[Group::beta1], beta2 = group[Group::beta2];
    row[Row::lr] = float(lr);
    row[Row::decay] = float(1.0 - mul_rn(lr, group[Group::weight_decay]));
    row[Row::beta1] = float(beta1);
    row[Row::one_minus_beta1] = float(1.0 - beta1);
    row[Row::beta2] = float(beta2);
    row[Row::one_minus_beta2] = float(1.0 - beta2);
    row[Row::maximize] = float(group[Group::maximize]);
  }

  LTU_HD static Hyper load(const float* row) {
    return Hyper{row[Row::lr], row[Row::decay], row[Row::beta1], row[Row::one_minus_beta1], row[Row::beta2],
                 row[Row::one_minus_beta2], row[Row::maximize] != 0.0f};
  }

  static constexpr int kVariants = 1;
  LTU_HD static int variant(const Hyper&, const bool*) { return 0; }
  LTU_HD static constexpr bool live(int, int buffer) { return buffer == 0; }

  template <int V>
  LTU_HD static float element(float g, float p, float (&s)[kMaxBuffers], const Hyper& h) {
    if (h.maximize) g = -g;
    const float c = s[0] * h.beta1 + g * h.one_minus_beta1;
    const float sign = float(c > 0.0f) - float(c < 0.0f);
    s[0] = s[0] * h.beta2 + g * h.one_minus_beta2;
    return p * h.decay - h.lr * sign;
  }
};

}  // namespace ltu_fast
