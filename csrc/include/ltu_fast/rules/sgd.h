// SGD (torch.optim.SGD's semantics) for the C++ CPU and CUDA backends; Python: ltu_fast/rules/sgd.py.
//
//   g = -g if maximize;  g += weight_decay * p
//   if momentum != 0:  buf = (ready ? momentum : 0) * buf + (ready ? 1 - dampening : 1) * g
//                      g = nesterov ? g + momentum * buf : buf
//   p -= lr * g
// `ready` (per tensor): the momentum buffer holds history (torch's "buffer is not None"); a tensor's
// first step with momentum copies the gradient into it.
#pragma once

#include "ltu_fast/rule.h"

namespace ltu_fast {

struct SgdRule {
  static constexpr const char kName[] = "sgd";
  static constexpr const char kGroup[] = "lr,weight_decay,momentum,dampening,nesterov,maximize";
  static constexpr const char kState[] = "ready";
  static constexpr const char kRow[] = "active,lr,weight_decay,momentum,buf_scale,grad_scale,nesterov,maximize";
  static constexpr const char kBuffers[] = "momentum_buffer";
  struct Group {
    static constexpr int lr = column(kGroup, "lr"), weight_decay = column(kGroup, "weight_decay"),
                         momentum = column(kGroup, "momentum"), dampening = column(kGroup, "dampening"),
                         nesterov = column(kGroup, "nesterov"), maximize = column(kGroup, "maximize");
  };
  struct Row {
    static constexpr int lr = column(kRow, "lr"), weight_decay = column(kRow, "weight_decay"),
                         momentum = column(kRow, "momentum"), buf_scale = column(kRow, "buf_scale"),
                         grad_scale = column(kRow, "grad_scale"), nesterov = column(kRow, "nesterov"),
                         maximize = column(kRow, "maximize");
  };
  static constexpr int kReady = column(kState, "ready");

  struct Hyper {
    float lr, weight_decay, momentum, buf_scale, grad_scale;
    bool nesterov, maximize;
  };

  // The row in float32 from the values as float32 (1 - dampening in float, as torch's float32 path).
  LTU_HD static void prepare(GroupRow group, float* state, bool active, float* row) {
    const float momentum = float(group[Group::momentum]);
    const bool ready = state[kReady] != 0.0f;
    row[Row::lr] = float(group[Group::lr]);
    row[Row::weight_decay] = float(group[Group::weight_decay]);
    row[Row::momentum] = momentum;
    row[Row::buf_scale] = ready ? momentum : 0.0f;
    row[Row::grad_scale] = ready ? 1.0f - float(group[Group::dampening]) : 1.0f;
    row[Row::nesterov] = float(group[Group::nesterov]);
    row[Row::maximize] = float(group[Group::maximize]);
    if (active && momentum != 0.0f) state[kReady] = 1.0f;  // a step with momentum starts the history
  }

  LTU_HD static Hyper load(const float* row) {
    return Hyper{row[Row::lr], row[Row::weight_decay], row[Row::momentum], row[Row::buf_scale],
                 row[Row::grad_scale], row[Row::nesterov] != 0.0f, row[Row::maximize] != 0.0f};
  }

  // 0: no momentum (or no buffer: no group uses it); 1: momentum, the buffer read and written.
  static constexpr int kVariants = 2;
  LTU_HD static int variant(const Hyper& h, const bool* present) { return h.momentum != 0.0f && present[0]; }
  LTU_HD static constexpr bool live(int variant, int buffer) { return variant == 1 && buffer == 0; }

  template <int V>
  LTU_HD static float element(float g, float p, float (&s)[kMaxBuffers], const Hyper& h) {
    if (h.maximize) g = -g;
    g = g + h.weight_decay * p;
    if (V == 1) {
      s[0] = h.buf_scale * s[0] + h.grad_scale * g;
      g = h.nesterov ? g + h.momentum * s[0] : s[0];
    }
    return p - h.lr * g;
  }
};

}  // namespace ltu_fast
