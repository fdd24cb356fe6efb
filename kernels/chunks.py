"""The chunk driver of the Triton kernels: chunk decode, the combined gradient and the block loop.

Every element-wise pass (combine, every update rule's apply; ``apply.py``) is one program per chunk
of one tensor: :func:`chunk` decodes its table row, :func:`for_each_block` loads the segment's
coefficients and walks the chunk in ``BLOCK``-element blocks, handing ``BODY`` the combined gradient
``g = sum_k beta[seg, k] * rows[k, e]`` (fp32) of each. The main loop is unmasked with the chunk
start a multiple of ``ALIGN`` (128-bit accesses when the launcher vouches for the alignment); one
masked iteration handles the tail. The Gram (``gram.py``) decodes chunks here too, but keeps its own
loop: it carries K(K+1)/2 accumulators from block to block instead of handing each block on.
"""

import triton
import triton.language as tl

# Columns of the chunk table (csrc/include/ltu_fast/codes.h ChunkColumn; tests/test_codes.py).
CHUNK_COLUMNS = ("start", "length", "segment", "group")
NUM_COLUMNS = tl.constexpr(len(CHUNK_COLUMNS))
START = tl.constexpr(CHUNK_COLUMNS.index("start"))
LENGTH = tl.constexpr(CHUNK_COLUMNS.index("length"))
SEGMENT = tl.constexpr(CHUNK_COLUMNS.index("segment"))
GROUP = tl.constexpr(CHUNK_COLUMNS.index("group"))


@triton.jit
def load(ptr, m, MASKED: tl.constexpr):
    if MASKED:
        return tl.load(ptr, mask=m, other=0.0).to(tl.float32)
    return tl.load(ptr).to(tl.float32)


@triton.jit
def store(ptr, value, m, MASKED: tl.constexpr):
    if MASKED:
        tl.store(ptr, value.to(ptr.dtype.element_ty), mask=m)
    else:
        tl.store(ptr, value.to(ptr.dtype.element_ty))


@triton.jit
def chunk(chunks_ptr, c, ALIGN: tl.constexpr):
    """Chunk ``c``'s (start, length, segment, group); the start a multiple of ``ALIGN``."""
    row = chunks_ptr + c * NUM_COLUMNS
    return (tl.multiple_of(tl.load(row + START), ALIGN), tl.load(row + LENGTH), tl.load(row + SEGMENT),
            tl.load(row + GROUP))


@triton.jit
def _combined(rows_ptr, row_stride, b, offs, m, K: tl.constexpr, KP: tl.constexpr, MASKED: tl.constexpr,
              ALIGN: tl.constexpr):
    """``sum_k b[k] * rows[k, offs]``; padded rows (k >= K) read row K-1 in bounds, with ``b`` zero."""
    row_start = tl.minimum(tl.arange(0, KP), K - 1).to(tl.int64) * row_stride
    x = load(rows_ptr + tl.multiple_of(row_start, ALIGN)[:, None] + offs[None, :], m[None, :], MASKED)
    return tl.sum(b[:, None] * x, axis=0)


@triton.jit
def for_each_block(rows_ptr, row_stride, beta_ptr, start, n, seg, BODY: tl.constexpr, args, FN: tl.constexpr,
                   FLAGS: tl.constexpr, K: tl.constexpr, KP: tl.constexpr, BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    """``BODY(g, offs, mask, args, FN, FLAGS, MASKED)`` for every block of elements ``[start, start + n)``.

    ``args`` is the pass's tuple of run-time values; ``FN`` (a jit function) and ``FLAGS`` (an int)
    are its compile-time ones (Triton keeps a function or a constexpr only outside a tuple)."""
    ks = tl.arange(0, KP)
    b = tl.load(beta_ptr + seg * K + ks, mask=ks < K, other=0.0).to(tl.float32)
    end = start + n
    main = start + n // BLOCK * BLOCK
    for i in range(start, main, BLOCK):
        offs = tl.multiple_of(i, ALIGN) + tl.arange(0, BLOCK)
        m = offs < end
        BODY(_combined(rows_ptr, row_stride, b, offs, m, K, KP, False, ALIGN), offs, m, args, FN, FLAGS, False)
    if main < end:
        offs = main + tl.arange(0, BLOCK)
        m = offs < end
        BODY(_combined(rows_ptr, row_stride, b, offs, m, K, KP, True, ALIGN), offs, m, args, FN, FLAGS, True)
