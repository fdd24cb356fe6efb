"""Combine and the fused update of every rule: one program per chunk of one tensor, on the driver
of ``chunks.py``.

``apply_kernel`` is the one apply of every update rule: the rule's Triton module
(``kernels/rules/<rule>.py``) is passed in as compile-time functions (``LOAD`` its row, ``ELEMENT``
its update), so a rule writes no loop. The skip flag and the tensor's ``active`` column are read
once as scalars: a skipped step or an untouched tensor writes nothing.
"""

import triton
import triton.language as tl

from .chunks import chunk, for_each_block, load, store


@triton.jit
def _store_combined(g, offs, m, args, FN: tl.constexpr, FLAGS: tl.constexpr, MASKED: tl.constexpr):
    store(args[0] + offs, g, m, MASKED)


@triton.jit
def combine_kernel(rows_ptr, row_stride, beta_ptr, chunks_ptr, out_ptr,
                   K: tl.constexpr, KP: tl.constexpr, BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    start, n, seg, _ = chunk(chunks_ptr, tl.program_id(0), ALIGN)
    for_each_block(rows_ptr, row_stride, beta_ptr, start, n, seg, _store_combined, (out_ptr,), None, 0, K, KP, BLOCK,
                   ALIGN)


@triton.jit
def _update(g, offs, m, args, ELEMENT: tl.constexpr, HAS: tl.constexpr, MASKED: tl.constexpr):
    """One block of a rule's update: ``HAS`` bit b set = buffer b exists (is read and written)."""
    param_ptr, b0_ptr, b1_ptr, b2_ptr, h = args
    p = load(param_ptr + offs, m, MASKED)
    s0 = load(b0_ptr + offs, m, MASKED) if HAS & 1 else p  # an absent buffer: a placeholder, never stored
    s1 = load(b1_ptr + offs, m, MASKED) if HAS & 2 else p
    s2 = load(b2_ptr + offs, m, MASKED) if HAS & 4 else p
    p, s0, s1, s2 = ELEMENT(g, p, s0, s1, s2, h, HAS)
    store(param_ptr + offs, p, m, MASKED)
    if HAS & 1:
        store(b0_ptr + offs, s0, m, MASKED)
    if HAS & 2:
        store(b1_ptr + offs, s1, m, MASKED)
    if HAS & 4:
        store(b2_ptr + offs, s2, m, MASKED)


@triton.jit
def load_row(row_ptr, R: tl.constexpr):
    """A tensor's row (``R`` columns) as a tuple of scalars; column 0 is ``active``."""
    h = ()
    for c in tl.static_range(R):
        h = h + (tl.load(row_ptr + c),)
    return h


@triton.jit
def apply_kernel(rows_ptr, row_stride, beta_ptr, chunks_ptr, param_ptr, b0_ptr, b1_ptr, b2_ptr, table_ptr,
                 found_inf_ptr, ELEMENT: tl.constexpr, R: tl.constexpr, HAS: tl.constexpr, K: tl.constexpr,
                 KP: tl.constexpr, BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    start, n, seg, tensor = chunk(chunks_ptr, tl.program_id(0), ALIGN)
    row = table_ptr + tensor * R
    if (tl.load(found_inf_ptr) == 0) & (tl.load(row) != 0):  # not skipped, and the tensor was touched
        h = load_row(row, R)
        for_each_block(rows_ptr, row_stride, beta_ptr, start, n, seg, _update,
                       (param_ptr, b0_ptr, b1_ptr, b2_ptr, h), ELEMENT, HAS, K, KP, BLOCK, ALIGN)
