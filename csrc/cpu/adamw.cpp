// Fused combine + AdamW over the plan's chunks: each chunk reads its K rows, param and moments
// once and writes param and moments once. The per-element math is ltu_fast/adamw_math.h.
#include "adamw.h"

#include "ltu_fast/adamw_math.h"
#include "rows.h"

namespace ltu_fast::cpu {
namespace {

// One plain loop the compiler vectorises (the row's branches are invariant over the chunk). The
// buffers never overlap: __restrict__ spares the run-time alias check, which GCC's versioned loop
// otherwise fails into its scalar copy.
template <class Fmt, int KT, bool kAmsgrad>
void adamw_chunk(const typename Fmt::storage* __restrict__ rows, int64_t stride, int64_t k,
                 const float* __restrict__ beta, int64_t start, int64_t length, float* __restrict__ param,
                 float* __restrict__ exp_avg, float* __restrict__ exp_avg_sq, float* __restrict__ max_exp_avg_sq,
                 const AdamWHyper h) {
  for (int64_t i = start; i < start + length; ++i) {
    const float g = combined<Fmt, KT>(rows, stride, k, beta, i);
    float m = exp_avg[i], v = exp_avg_sq[i], vmax = kAmsgrad ? max_exp_avg_sq[i] : 0.0f;
    param[i] = adamw_element(g, param[i], m, v, vmax, h);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if (kAmsgrad) max_exp_avg_sq[i] = vmax;
  }
}

}  // namespace

void adamw_apply(const Rows& rows, const Chunks& chunks, const float* beta, float* param, float* exp_avg,
                 float* exp_avg_sq, float* max_exp_avg_sq, const float* hyper, const float* found_inf, int threads) {
  if (*found_inf != 0.0f) return;
  dispatch(rows.dtype, rows.k, [&](auto fmt, auto kt) {
    using Fmt = decltype(fmt);
    constexpr int KT = decltype(kt)::value;
    const auto* data = static_cast<const typename Fmt::storage*>(rows.data);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < chunks.count; ++c) {
      const int64_t* row = chunks.table + c * kChunkColumns;
      AdamWHyper h = load_adamw_hyper(hyper + row[kChunkGroup] * kAdamWColumns);
      if (!h.active) continue;
      h.amsgrad = h.amsgrad && max_exp_avg_sq != nullptr;
      const float* b = beta + row[kChunkSegment] * rows.k;
      if (h.amsgrad)
        adamw_chunk<Fmt, KT, true>(data, rows.stride, rows.k, b, row[kChunkStart], row[kChunkLength], param,
                                   exp_avg, exp_avg_sq, max_exp_avg_sq, h);
      else
        adamw_chunk<Fmt, KT, false>(data, rows.stride, rows.k, b, row[kChunkStart], row[kChunkLength], param,
                                    exp_avg, exp_avg_sq, max_exp_avg_sq, h);
    }
  });
}

}  // namespace ltu_fast::cpu
