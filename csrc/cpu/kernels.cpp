// Implementation of kernels.h: templated on the row format and on K (1..4; 0 = any K at run time).
#include "kernels.h"

#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "convert.h"
#include "ltu_fast/sgd_math.h"

namespace ltu_fast::cpu {
namespace {

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

// Independent accumulator lanes per product: enough for the compiler to keep vector registers
// busy, and a fixed lane -> sum order so the result never depends on how the loop is compiled.
constexpr int kLanes = 8;

// Products of two floats are exact in double, so double accumulation makes the chunk sums
// accurate to ~1e-16 relative and independent of FMA contraction.
template <class Fmt, int KT>
void gram_chunk(const typename Fmt::storage* rows, int64_t stride, int64_t start, int64_t length, double* out) {
  constexpr int kPairs = KT * (KT + 1) / 2;
  double acc[kPairs][kLanes] = {};
  const typename Fmt::storage* r[KT];
  for (int a = 0; a < KT; ++a) r[a] = rows + a * stride + start;
  int64_t i = 0;
  for (; i + kLanes <= length; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      double x[KT];
      for (int a = 0; a < KT; ++a) x[a] = Fmt::load(r[a][i + l]);
      int p = 0;
      for (int a = 0; a < KT; ++a)
        for (int b = a; b < KT; ++b) acc[p++][l] += x[a] * x[b];
    }
  }
  for (; i < length; ++i) {
    double x[KT];
    for (int a = 0; a < KT; ++a) x[a] = Fmt::load(r[a][i]);
    int p = 0;
    for (int a = 0; a < KT; ++a)
      for (int b = a; b < KT; ++b) acc[p++][0] += x[a] * x[b];
  }
  for (int p = 0; p < kPairs; ++p) {
    double s = 0.0;
    for (int l = 0; l < kLanes; ++l) s += acc[p][l];
    out[p] = s;
  }
}

// Any K: one pair at a time over the chunk (it stays in cache, so memory is still read once).
template <class Fmt>
void gram_chunk_any_k(const typename Fmt::storage* rows, int64_t stride, int64_t k, int64_t start, int64_t length,
                      double* out) {
  int p = 0;
  for (int64_t a = 0; a < k; ++a) {
    for (int64_t b = a; b < k; ++b) {
      double acc[kLanes] = {};
      const auto* x = rows + a * stride + start;
      const auto* y = rows + b * stride + start;
      int64_t i = 0;
      for (; i + kLanes <= length; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += double(Fmt::load(x[i + l])) * double(Fmt::load(y[i + l]));
      for (; i < length; ++i) acc[0] += double(Fmt::load(x[i])) * double(Fmt::load(y[i]));
      double s = 0.0;
      for (int l = 0; l < kLanes; ++l) s += acc[l];
      out[p++] = s;
    }
  }
}

// g = sum_k beta[k] * rows[k, i] in float, k in order (as the reference's sum over dim 0).
template <class Fmt, int KT>
inline float combined(const typename Fmt::storage* rows, int64_t stride, int64_t k, const float* beta, int64_t i) {
  const int64_t n = KT > 0 ? KT : k;
  float g = beta[0] * Fmt::load(rows[i]);
  for (int64_t a = 1; a < n; ++a) g += beta[a] * Fmt::load(rows[a * stride + i]);
  return g;
}

template <class Fmt, int KT, bool kMomentum>
void apply_chunk(const typename Fmt::storage* rows, int64_t stride, int64_t k, const float* beta, int64_t start,
                 int64_t length, float* param, float* momentum, const GroupHyper& h) {
  for (int64_t i = start; i < start + length; ++i) {
    const float g = combined<Fmt, KT>(rows, stride, k, beta, i);
    float buf = kMomentum ? momentum[i] : 0.0f;
    param[i] = sgd_element(g, param[i], buf, h);
    if (kMomentum) momentum[i] = buf;
  }
}

int64_t pairs_of(int64_t k) { return k * (k + 1) / 2; }

}  // namespace

void gram(const Rows& rows, const Chunks& chunks, const int64_t* seg_ptr, const int64_t* seg_chunks,
          int64_t num_segments, double* partials, float* stats, int threads) {
  const int64_t k = rows.k, pairs = pairs_of(k);
  dispatch(rows.dtype, k, [&](auto fmt, auto kt) {
    using Fmt = decltype(fmt);
    constexpr int KT = decltype(kt)::value;
    const auto* data = static_cast<const typename Fmt::storage*>(rows.data);
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
      for (int64_t c = 0; c < chunks.count; ++c) {
        const int64_t* row = chunks.table + c * kChunkColumns;
        if constexpr (KT > 0)
          gram_chunk<Fmt, KT>(data, rows.stride, row[kChunkStart], row[kChunkLength], partials + c * pairs);
        else
          gram_chunk_any_k<Fmt>(data, rows.stride, k, row[kChunkStart], row[kChunkLength], partials + c * pairs);
      }
#pragma omp for schedule(static)
      for (int64_t s = 0; s < num_segments; ++s) {
        std::vector<double> sum(pairs, 0.0);
        for (int64_t j = seg_ptr[s]; j < seg_ptr[s + 1]; ++j)
          for (int64_t p = 0; p < pairs; ++p) sum[p] += partials[seg_chunks[j] * pairs + p];
        float* out = stats + s * k * k;
        int64_t p = 0;
        for (int64_t a = 0; a < k; ++a)
          for (int64_t b = a; b < k; ++b, ++p) out[a * k + b] = out[b * k + a] = float(sum[p]);
      }
    }
  });
}

void combine(const Rows& rows, const Chunks& chunks, const float* beta, void* out, int threads) {
  dispatch(rows.dtype, rows.k, [&](auto fmt, auto kt) {
    using Fmt = decltype(fmt);
    constexpr int KT = decltype(kt)::value;
    const auto* data = static_cast<const typename Fmt::storage*>(rows.data);
    auto* dst = static_cast<typename Fmt::storage*>(out);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < chunks.count; ++c) {
      const int64_t* row = chunks.table + c * kChunkColumns;
      const float* b = beta + row[kChunkSegment] * rows.k;
      const int64_t start = row[kChunkStart], end = start + row[kChunkLength];
      for (int64_t i = start; i < end; ++i) dst[i] = Fmt::store(combined<Fmt, KT>(data, rows.stride, rows.k, b, i));
    }
  });
}

void sgd_apply(const Rows& rows, const Chunks& chunks, const float* beta, float* param, float* momentum,
               const float* hyper, const float* ready, const float* found_inf, int threads) {
  if (*found_inf != 0.0f) return;
  dispatch(rows.dtype, rows.k, [&](auto fmt, auto kt) {
    using Fmt = decltype(fmt);
    constexpr int KT = decltype(kt)::value;
    const auto* data = static_cast<const typename Fmt::storage*>(rows.data);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < chunks.count; ++c) {
      const int64_t* row = chunks.table + c * kChunkColumns;
      const int64_t group = row[kChunkGroup];
      GroupHyper h = load_group_hyper(hyper + group * kHyperColumns, ready[group]);
      h.has_momentum = h.has_momentum && momentum != nullptr;  // an empty buffer: no group has momentum
      const float* b = beta + row[kChunkSegment] * rows.k;
      if (h.has_momentum)
        apply_chunk<Fmt, KT, true>(data, rows.stride, rows.k, b, row[kChunkStart], row[kChunkLength], param,
                                   momentum, h);
      else
        apply_chunk<Fmt, KT, false>(data, rows.stride, rows.k, b, row[kChunkStart], row[kChunkLength], param,
                                    momentum, h);
    }
  });
}

void axpy(float* acc, const void* x, int dtype, int64_t n, float alpha, int threads) {
  constexpr int64_t kBlock = 1 << 14;
  dispatch(dtype, 1, [&](auto fmt, auto) {
    using Fmt = decltype(fmt);
    const auto* src = static_cast<const typename Fmt::storage*>(x);
    const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t end = blk * kBlock + kBlock < n ? blk * kBlock + kBlock : n;
      for (int64_t i = blk * kBlock; i < end; ++i) acc[i] += alpha * Fmt::load(src[i]);
    }
  });
}

}  // namespace ltu_fast::cpu
