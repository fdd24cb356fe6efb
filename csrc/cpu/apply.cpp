// The fused update of every rule (ltu_fast/rules.h) on the CPU: per chunk, the tensor's row is read
// once; then one plain loop combines the K rows and calls the rule's element update. Each rule
// instantiates the loop once per variant (which buffers it reads and writes), so the loop holds no
// branch on them and the buffers are __restrict__: GCC vectorises it (a run-time alias check per
// pair of streams otherwise sends it to its scalar copy; the K = 4 SGD loop was ~4x slower).
// -ffp-contract=off keeps the bits of every build; -fno-math-errno lets AdamW's sqrt vectorise.
#include <stdexcept>
#include <string>

#include "chunks.h"
#include "kernels.h"
#include "ltu_fast/rules.h"
#include "rows.h"

namespace ltu_fast::cpu {
namespace {

template <class Rule, class Fmt, int KT, int V>
void rule_chunk(const typename Fmt::storage* __restrict__ rows, int64_t stride, int64_t k,
                const float* __restrict__ beta, int64_t start, int64_t length, float* __restrict__ param,
                float* __restrict__ b0, float* __restrict__ b1, float* __restrict__ b2, const typename Rule::Hyper h) {
  for (int64_t i = start; i < start + length; ++i) {
    const float g = combined<Fmt, KT>(rows, stride, k, beta, i);
    float s[kMaxBuffers] = {Rule::live(V, 0) ? b0[i] : 0.0f, Rule::live(V, 1) ? b1[i] : 0.0f,
                            Rule::live(V, 2) ? b2[i] : 0.0f};
    param[i] = Rule::template element<V>(g, param[i], s, h);
    if (Rule::live(V, 0)) b0[i] = s[0];
    if (Rule::live(V, 1)) b1[i] = s[1];
    if (Rule::live(V, 2)) b2[i] = s[2];
  }
}

// f(IntC<v>{}) for a variant v < N known only at run time.
template <int N, class F>
void with_variant(int v, F&& f) {
  if constexpr (N > 1) {
    if (v == N - 1) return f(IntC<N - 1>{});
    return with_variant<N - 1>(v, f);
  } else {
    f(IntC<0>{});
  }
}

template <class Rule>
void apply_rule(const Rows& rows, const Chunks& chunks, const float* beta, float* param,
                float* const (&buffers)[kMaxBuffers], const float* table, int threads) {
  const bool present[kMaxBuffers] = {buffers[0] != nullptr, buffers[1] != nullptr, buffers[2] != nullptr};
  for_each_chunk(rows, chunks, threads, [&](auto fmt, auto kt, const auto* data, const Chunk& c) {
    using Fmt = decltype(fmt);
    constexpr int KT = decltype(kt)::value;
    const float* row = table + c.group * Columns<Rule>::row;
    if (row[kRowActive] == 0.0f) return;  // a tensor no objective touched, as torch skips grad None
    const typename Rule::Hyper h = Rule::load(row);
    const float* b = beta + c.segment * rows.k;
    with_variant<Rule::kVariants>(Rule::variant(h, present), [&](auto v) {
      rule_chunk<Rule, Fmt, KT, decltype(v)::value>(data, rows.stride, rows.k, b, c.start, c.length, param,
                                                    buffers[0], buffers[1], buffers[2], h);
    });
  });
}

}  // namespace

void apply(int rule, const Rows& rows, const Chunks& chunks, const float* beta, float* param,
           float* const (&buffers)[kMaxBuffers], const float* table, const float* found_inf, int threads) {
  if (!known_rule(rule)) throw std::invalid_argument("ltu_fast._C: unknown update rule code " + std::to_string(rule));
  if (*found_inf != 0.0f) return;
#define LTU_FAST_APPLY(code, Rule) \
  if (rule == code) apply_rule<Rule>(rows, chunks, beta, param, buffers, table, threads);
  LTU_FAST_RULES(LTU_FAST_APPLY)
#undef LTU_FAST_APPLY
}

}  // namespace ltu_fast::cpu
