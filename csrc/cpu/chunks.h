// The one chunk driver of the CPU backend: every pass over the plan's chunks (the Gram's partials,
// combine, every update rule's apply) runs through it. Each chunk is one thread's work in a fixed
// OpenMP static schedule, so results are bitwise identical for any number of threads.
#pragma once

#include <cstdint>

#include "kernels.h"
#include "rows.h"

namespace ltu_fast::cpu {

struct Chunk {
  int64_t index, start, length, segment, group;  // group: the param group, or the tensor (tensor plans)
};

inline Chunk chunk_at(const Chunks& chunks, int64_t c) {
  const int64_t* row = chunks.table + c * kChunkColumns;
  return Chunk{c, row[kChunkStart], row[kChunkLength], row[kChunkSegment], row[kChunkGroup]};
}

// f(chunk) for every chunk, shared among the threads of the enclosing parallel region (or run by
// the calling thread alone outside one).
template <class F>
void each_chunk(const Chunks& chunks, F&& f) {
#pragma omp for schedule(static)
  for (int64_t c = 0; c < chunks.count; ++c) f(chunk_at(chunks, c));
}

// f(Format{}, IntC<K or 0>{}, typed rows, chunk) for every chunk, on `threads` threads.
template <class F>
void for_each_chunk(const Rows& rows, const Chunks& chunks, int threads, F&& f) {
  dispatch(rows.dtype, rows.k, [&](auto fmt, auto kt) {
    const auto* data = static_cast<const typename decltype(fmt)::storage*>(rows.data);
#pragma omp parallel num_threads(threads)
    each_chunk(chunks, [&](const Chunk& c) { f(fmt, kt, data, c); });
  });
}

}  // namespace ltu_fast::cpu
