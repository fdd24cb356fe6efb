// Element-wise math shared by the C++ CPU and CUDA backends (one definition of the update).
//
// Semantics are those of ltu_fast/backends/base.py (and torch.optim.SGD):
//   g = -g if maximize;  g += weight_decay * p
//   if momentum != 0:  buf = (ready ? momentum : 0) * buf + (ready ? 1 - dampening : 1) * g
//                      g = nesterov ? g + momentum * buf : buf
//   p -= lr * g
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LTU_HD __host__ __device__ __forceinline__
#else
#define LTU_HD inline
#endif

namespace ltu_fast {

// Columns of the [G, 6] float32 hyper-parameter table (ltu_fast.backends.base.HYPER_COLUMNS).
enum HyperColumn : int { kLr = 0, kWeightDecay, kMomentum, kDampening, kNesterov, kMaximize, kHyperColumns };

// Columns of the int64 [T, 4] tensor table (ltu_fast.plan.TABLE_*).
enum TableColumn : int { kOffset = 0, kNumel, kSegment, kGroup, kTableColumns };

struct GroupHyper {
  float lr, weight_decay, momentum, buf_scale, grad_scale;
  bool nesterov, maximize, has_momentum;
};

// Reads one group's row; `ready` (0 or 1) says whether the momentum buffer holds history yet.
LTU_HD GroupHyper load_group_hyper(const float* row, float ready) {
  GroupHyper h;
  h.lr = row[kLr];
  h.weight_decay = row[kWeightDecay];
  h.momentum = row[kMomentum];
  h.has_momentum = h.momentum != 0.0f;
  h.buf_scale = ready != 0.0f ? h.momentum : 0.0f;
  h.grad_scale = ready != 0.0f ? 1.0f - row[kDampening] : 1.0f;
  h.nesterov = row[kNesterov] != 0.0f;
  h.maximize = row[kMaximize] != 0.0f;
  return h;
}

// One element of the fused update: returns the new parameter, updates `buf` when momentum is on.
LTU_HD float sgd_element(float g, float p, float& buf, const GroupHyper& h) {
  if (h.maximize) g = -g;
  g = g + h.weight_decay * p;
  if (h.has_momentum) {
    buf = h.buf_scale * buf + h.grad_scale * g;
    g = h.nesterov ? g + h.momentum * buf : buf;
  }
  return p - h.lr * g;
}

}  // namespace ltu_fast
