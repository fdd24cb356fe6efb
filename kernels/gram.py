"""Two-stage deterministic per-segment Gram: per-chunk partials, then a fixed-order sum per segment.

No atomics: each chunk writes its own [KP, KP] partial, and one program per segment adds its
chunks' partials in chunk-list order, so results are bitwise repeatable run to run.

Vector width: the main loop runs unmasked over ``n // BLOCK * BLOCK`` elements with the chunk
start marked a multiple of ``ALIGN`` (the launcher passes the 16-byte pack size only when the
plan, the row stride and the base address guarantee it, else 1), so it compiles to 128-bit loads;
one masked iteration handles the tail.
"""

import triton
import triton.language as tl


@triton.jit
def _gram_block(rows_ptr, row_base, offs, kmask, acc, MASKED: tl.constexpr, n, K: tl.constexpr,
                KP: tl.constexpr):
    """``acc += x x^T`` (elementwise over the block) for the rows' values at ``offs``."""
    ptrs = rows_ptr + row_base[:, None] + offs[None, :]
    if MASKED:
        x = tl.load(ptrs, mask=kmask[:, None] & (offs < n)[None, :], other=0.0).to(tl.float32)
    else:
        x = tl.load(ptrs).to(tl.float32)
        if K != KP:  # padded rows read row K-1 again (in bounds); zero them
            x = tl.where(kmask[:, None], x, 0.0)
    return acc + x[:, None, :] * x[None, :, :]


@triton.jit
def gram_partial_kernel(rows_ptr, row_stride, chunks_ptr, partial_ptr,
                        K: tl.constexpr, KP: tl.constexpr, BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    c = tl.program_id(0)
    start = tl.multiple_of(tl.load(chunks_ptr + c * 4), ALIGN)
    n = tl.load(chunks_ptr + c * 4 + 1)
    ks = tl.arange(0, KP)
    kmask = ks < K
    # padded rows point at row K-1 so the unmasked main loop stays in bounds
    # (every row start a multiple of ALIGN too: the launcher checked the row stride)
    row_base = tl.multiple_of(tl.minimum(ks, K - 1).to(tl.int64) * row_stride + start, ALIGN)
    acc = tl.zeros((KP, KP, BLOCK), dtype=tl.float32)
    main = n // BLOCK * BLOCK
    for i in range(0, main, BLOCK):
        acc = _gram_block(rows_ptr, row_base, i + tl.arange(0, BLOCK), kmask, acc, False, n, K, KP)
    if main < n:
        acc = _gram_block(rows_ptr, row_base, main + tl.arange(0, BLOCK), kmask, acc, True, n, K, KP)
    g = tl.sum(acc, axis=2)
    tl.store(partial_ptr + c * (KP * KP) + ks[:, None] * KP + ks[None, :], g)


@triton.jit
def gram_reduce_kernel(partial_ptr, seg_ptr, seg_chunks_ptr, stats_ptr,
                       K: tl.constexpr, KP: tl.constexpr, BLOCK_C: tl.constexpr):
    s = tl.program_id(0)
    lo = tl.load(seg_ptr + s)
    hi = tl.load(seg_ptr + s + 1)
    e = tl.arange(0, KP * KP)
    acc = tl.zeros((BLOCK_C, KP * KP), dtype=tl.float32)
    for i in range(lo, hi, BLOCK_C):
        idx = i + tl.arange(0, BLOCK_C)
        m = idx < hi
        c = tl.load(seg_chunks_ptr + idx, mask=m, other=0)
        acc += tl.load(partial_ptr + c[:, None] * (KP * KP) + e[None, :], mask=m[:, None], other=0.0)
    total = tl.sum(acc, axis=0)
    i = e // KP
    j = e % KP
    tl.store(stats_ptr + s * (K * K) + i * K + j, total, mask=(i < K) & (j < K))
