// kernels.h's Gram, combine and axpy: templated on the row format and on K (1..8; 0 = any K at run time).
#include "kernels.h"

#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "chunks.h"
#include "convert.h"
#include "rows.h"

namespace ltu_fast::cpu {
namespace {

// Eight accumulator lanes per product as two explicit 4 x double vectors (GCC/Clang vector
// extensions: AVX registers with -march=native, SSE pairs without), summed in a fixed lane order
// at the end, so the result never depends on how the loop is compiled. Products of two floats
// are exact in double, so the chunk sums are accurate to ~1e-16 and independent of FMA use.
constexpr int kLanes = 8;
using f32x4 = float __attribute__((vector_size(16)));
using f64x4 = double __attribute__((vector_size(32)));

// Decodes kLanes elements of one row into two double vectors.
template <class Fmt>
inline void load_lanes(const typename Fmt::storage* src, f64x4& lo, f64x4& hi) {
  const f32x8 v = Fmt::load8(src);
  f32x4 a, b;
  std::memcpy(&a, &v, sizeof a);
  std::memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof a, sizeof b);
  lo = __builtin_convertvector(a, f64x4);
  hi = __builtin_convertvector(b, f64x4);
}

inline double sum_lanes(const f64x4& lo, const f64x4& hi) {
  return ((lo[0] + lo[1]) + (lo[2] + lo[3])) + ((hi[0] + hi[1]) + (hi[2] + hi[3]));
}

template <class Fmt, int KT>
void gram_chunk(const typename Fmt::storage* rows, int64_t stride, int64_t start, int64_t length, double* out) {
  constexpr int kPairs = KT * (KT + 1) / 2;
  f64x4 lo_acc[kPairs] = {}, hi_acc[kPairs] = {};
  const typename Fmt::storage* r[KT];
  for (int a = 0; a < KT; ++a) r[a] = rows + a * stride + start;
  const int64_t body = length - length % kLanes;
  for (int64_t i = 0; i < body; i += kLanes) {
    f64x4 lo[KT], hi[KT];
    for (int a = 0; a < KT; ++a) load_lanes<Fmt>(r[a] + i, lo[a], hi[a]);
    int p = 0;
    for (int a = 0; a < KT; ++a)
      for (int b = a; b < KT; ++b, ++p) {
        lo_acc[p] += lo[a] * lo[b];
        hi_acc[p] += hi[a] * hi[b];
      }
  }
  for (int p = 0; p < kPairs; ++p) out[p] = sum_lanes(lo_acc[p], hi_acc[p]);
  for (int64_t i = body; i < length; ++i) {  // the tail, one element at a time, after the lanes
    int p = 0;
    for (int a = 0; a < KT; ++a)
      for (int b = a; b < KT; ++b, ++p) out[p] += double(Fmt::load(r[a][i])) * double(Fmt::load(r[b][i]));
  }
}

// Any K: one pair at a time over the chunk (it stays in cache, so memory is still read once).
template <class Fmt>
void gram_chunk_any_k(const typename Fmt::storage* rows, int64_t stride, int64_t k, int64_t start, int64_t length,
                      double* out) {
  const int64_t body = length - length % kLanes;
  int p = 0;
  for (int64_t a = 0; a < k; ++a) {
    for (int64_t b = a; b < k; ++b, ++p) {
      const auto* x = rows + a * stride + start;
      const auto* y = rows + b * stride + start;
      f64x4 lo_acc = {}, hi_acc = {}, x_lo, x_hi, y_lo, y_hi;
      for (int64_t i = 0; i < body; i += kLanes) {
        load_lanes<Fmt>(x + i, x_lo, x_hi);
        load_lanes<Fmt>(y + i, y_lo, y_hi);
        lo_acc += x_lo * y_lo;
        hi_acc += x_hi * y_hi;
      }
      out[p] = sum_lanes(lo_acc, hi_acc);
      for (int64_t i = body; i < length; ++i) out[p] += double(Fmt::load(x[i])) * double(Fmt::load(y[i]));
    }
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
      each_chunk(chunks, [&](const Chunk& c) {
        if constexpr (KT > 0)
          gram_chunk<Fmt, KT>(data, rows.stride, c.start, c.length, partials + c.index * pairs);
        else
          gram_chunk_any_k<Fmt>(data, rows.stride, k, c.start, c.length, partials + c.index * pairs);
      });
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
  for_each_chunk(rows, chunks, threads, [&](auto fmt, auto kt, const auto* data, const Chunk& c) {
    using Fmt = decltype(fmt);
    constexpr int KT = decltype(kt)::value;
    auto* dst = static_cast<typename Fmt::storage*>(out);
    const float* b = beta + c.segment * rows.k;
    const int64_t end = c.start + c.length;
    int64_t i = c.start;
    for (; i + kLanes <= end; i += kLanes) Fmt::store8(combined8<Fmt, KT>(data, rows.stride, rows.k, b, i), dst + i);
    for (; i < end; ++i) dst[i] = Fmt::store(combined<Fmt, KT>(data, rows.stride, rows.k, b, i));
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
