"""Two-stage deterministic per-segment Gram: per-chunk partials, then a fixed-order sum per segment.

No atomics: each chunk writes its own [KP, KP] partial, and one program per segment adds its
chunks' partials in chunk-list order, so results are bitwise repeatable run to run.
"""

import triton
import triton.language as tl


@triton.jit
def gram_partial_kernel(rows_ptr, row_stride, chunks_ptr, partial_ptr,
                        K: tl.constexpr, KP: tl.constexpr, BLOCK: tl.constexpr):
    c = tl.program_id(0)
    start = tl.load(chunks_ptr + c * 4)
    n = tl.load(chunks_ptr + c * 4 + 1)
    ks = tl.arange(0, KP)
    kmask = ks < K
    row_base = ks.to(tl.int64) * row_stride + start
    acc = tl.zeros((KP, KP, BLOCK), dtype=tl.float32)
    for i in range(0, n, BLOCK):
        offs = i + tl.arange(0, BLOCK)
        m = offs < n
        x = tl.load(rows_ptr + row_base[:, None] + offs[None, :], mask=kmask[:, None] & m[None, :], other=0.0)
        x = x.to(tl.float32)
        acc += x[:, None, :] * x[None, :, :]
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
