"""Fused combine + AdamW: one program per chunk of one tensor; the row of per-tensor hyper-parameters
(``ADAMW_COLUMNS``) is picked by the chunk's group column.

Built like ``apply.py``'s kernels, from its helpers: the chunk start is a multiple of ``ALIGN``
(128-bit accesses when the launcher vouches for it), the main loop is unmasked and one masked
iteration handles the tail; the skip flag and the tensor's ``active`` bit are read once as scalars.
"""

import triton
import triton.language as tl

from .adamw_math import adamw_element
from .apply import _coefficients, _load, _store, combined


@triton.jit
def _adamw_block(rows_ptr, row_stride, b, param_ptr, m_ptr, v_ptr, vmax_ptr, offs, end, h,
                 K: tl.constexpr, KP: tl.constexpr, HAS_AMSGRAD: tl.constexpr, MASKED: tl.constexpr,
                 ALIGN: tl.constexpr):
    mask = offs < end
    g = combined(rows_ptr, row_stride, b, offs, mask, K, KP, MASKED, ALIGN)
    p = _load(param_ptr + offs, mask, MASKED)
    m = _load(m_ptr + offs, mask, MASKED)
    v = _load(v_ptr + offs, mask, MASKED)
    vmax = _load(vmax_ptr + offs, mask, MASKED) if HAS_AMSGRAD else v
    p, m, v, vmax = adamw_element(g, p, m, v, vmax, tl.load(h), tl.load(h + 1), tl.load(h + 2), tl.load(h + 3),
                                  tl.load(h + 4), tl.load(h + 5), tl.load(h + 6), tl.load(h + 7), tl.load(h + 8),
                                  HAS_AMSGRAD)
    _store(param_ptr + offs, p, mask, MASKED)
    _store(m_ptr + offs, m, mask, MASKED)
    _store(v_ptr + offs, v, mask, MASKED)
    if HAS_AMSGRAD:
        _store(vmax_ptr + offs, vmax, mask, MASKED)


@triton.jit
def adamw_apply_kernel(rows_ptr, row_stride, beta_ptr, chunks_ptr, param_ptr, m_ptr, v_ptr, vmax_ptr, hyper_ptr,
                       found_inf_ptr, K: tl.constexpr, KP: tl.constexpr, HAS_AMSGRAD: tl.constexpr,
                       BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    c = tl.program_id(0)
    h = hyper_ptr + tl.load(chunks_ptr + c * 4 + 3) * 10
    if (tl.load(found_inf_ptr) == 0) & (tl.load(h + 9) != 0):  # not skipped, and the tensor was touched
        start = tl.multiple_of(tl.load(chunks_ptr + c * 4), ALIGN)
        n = tl.load(chunks_ptr + c * 4 + 1)
        b = _coefficients(beta_ptr, tl.load(chunks_ptr + c * 4 + 2), K, KP)
        end = start + n
        main = start + n // BLOCK * BLOCK
        for i in range(start, main, BLOCK):
            _adamw_block(rows_ptr, row_stride, b, param_ptr, m_ptr, v_ptr, vmax_ptr,
                         tl.multiple_of(i, ALIGN) + tl.arange(0, BLOCK), end, h, K, KP, HAS_AMSGRAD, False, ALIGN)
        if main < end:
            _adamw_block(rows_ptr, row_stride, b, param_ptr, m_ptr, v_ptr, vmax_ptr, main + tl.arange(0, BLOCK), end,
                         h, K, KP, HAS_AMSGRAD, True, ALIGN)
