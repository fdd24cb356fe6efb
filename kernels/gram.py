"""Two-stage deterministic per-segment Gram: per-chunk partials, then a fixed-order sum per segment.

No atomics: each chunk writes its own [K, K] partial, and one program per segment adds its
chunks' partials in chunk-list order, so results are bitwise repeatable run to run.

Each row is loaded as its own ``[BLOCK]`` vector (a ``static_range(K)``) and the K(K+1)/2 products
of distinct pairs accumulate elementwise in as many ``[BLOCK]`` accumulators: every value stays in
the thread that loaded it, so the hot loop has no shared-memory round trip (a ``[K, K, BLOCK]``
outer product would re-layout the rows through shared memory every iteration) and reads each row
once.

Vector width: the main loop runs unmasked over ``n // BLOCK * BLOCK`` elements with every row's
chunk start marked a multiple of ``ALIGN`` (the launcher passes the 16-byte pack size only when
the plan, the row stride and the base address guarantee it, else 1), so it compiles to 128-bit
loads; one masked iteration handles the tail.
"""

import triton
import triton.language as tl

from .chunks import chunk


@triton.jit
def _gram_block(rows_ptr, row_stride, start, offs, acc, n, MASKED: tl.constexpr, K: tl.constexpr,
                ALIGN: tl.constexpr):
    """``acc[pair(a, b)] += x_a * x_b`` (elementwise over the block) for rows ``b <= a < K`` at ``offs``."""
    x = ()
    for k in tl.static_range(K):
        ptrs = rows_ptr + tl.multiple_of(k * row_stride + start, ALIGN) + offs
        if MASKED:
            x = x + (tl.load(ptrs, mask=offs < n, other=0.0).to(tl.float32),)
        else:
            x = x + (tl.load(ptrs).to(tl.float32),)
    out = ()
    for a in tl.static_range(K):
        for b in tl.static_range(a + 1):
            out = out + (acc[a * (a + 1) // 2 + b] + x[a] * x[b],)
    return out


@triton.jit
def gram_partial_kernel(rows_ptr, row_stride, chunks_ptr, partial_ptr,
                        K: tl.constexpr, BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    c = tl.program_id(0)
    start, n, _, _ = chunk(chunks_ptr, c, ALIGN)
    row_stride = row_stride.to(tl.int64)
    acc = ()
    for _ in tl.static_range(K * (K + 1) // 2):
        acc = acc + (tl.zeros((BLOCK,), dtype=tl.float32),)
    main = n // BLOCK * BLOCK
    for i in range(0, main, BLOCK):
        acc = _gram_block(rows_ptr, row_stride, start, i + tl.arange(0, BLOCK), acc, n, False, K, ALIGN)
    if main < n:
        acc = _gram_block(rows_ptr, row_stride, start, main + tl.arange(0, BLOCK), acc, n, True, K, ALIGN)
    out = partial_ptr + c * (K * K)
    for a in tl.static_range(K):
        for b in tl.static_range(a + 1):
            total = tl.sum(acc[a * (a + 1) // 2 + b], axis=0)
            tl.store(out + a * K + b, total)
            if b != a:
                tl.store(out + b * K + a, total)


@triton.jit
def gram_reduce_kernel(partial_ptr, seg_ptr, seg_chunks_ptr, stats_ptr,
                       K: tl.constexpr, KKP: tl.constexpr, BLOCK_C: tl.constexpr):
    """Segment ``s``'s ``[K, K]`` = the sum of its chunks' partials in chunk-list order
    (``KKP``: ``K * K`` padded to a power of two)."""
    s = tl.program_id(0)
    lo = tl.load(seg_ptr + s)
    hi = tl.load(seg_ptr + s + 1)
    e = tl.arange(0, KKP)
    used = e < K * K
    acc = tl.zeros((BLOCK_C, KKP), dtype=tl.float32)
    for i in range(lo, hi, BLOCK_C):
        idx = i + tl.arange(0, BLOCK_C)
        m = idx < hi
        c = tl.load(seg_chunks_ptr + idx, mask=m, other=0)
        acc += tl.load(partial_ptr + c[:, None] * (K * K) + e[None, :], mask=m[:, None] & used[None, :], other=0.0)
    tl.store(stats_ptr + s * (K * K) + e, tl.sum(acc, axis=0), mask=used)
