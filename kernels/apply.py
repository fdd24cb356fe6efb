"""Combine and fused combine + SGD: one program per chunk of one tensor (segment, group known).

Both share :func:`combined`: ``g = sum_k beta[seg, k] * rows[k, e]`` in fp32. Like the Gram, the
main loop is unmasked with the chunk start a multiple of ``ALIGN`` (128-bit accesses when the
launcher vouches for the alignment), and one masked iteration handles the tail.
"""

import triton
import triton.language as tl

from .sgd_math import sgd_element


@triton.jit
def _load(ptr, m, MASKED: tl.constexpr):
    if MASKED:
        return tl.load(ptr, mask=m, other=0.0).to(tl.float32)
    return tl.load(ptr).to(tl.float32)


@triton.jit
def _store(ptr, value, m, MASKED: tl.constexpr):
    if MASKED:
        tl.store(ptr, value.to(ptr.dtype.element_ty), mask=m)
    else:
        tl.store(ptr, value.to(ptr.dtype.element_ty))


@triton.jit
def combined(rows_ptr, row_stride, b, offs, m, K: tl.constexpr, KP: tl.constexpr, MASKED: tl.constexpr,
             ALIGN: tl.constexpr):
    """``sum_k b[k] * rows[k, offs]``; padded rows (k >= K) read row K-1 in bounds, with ``b`` zero."""
    row_start = tl.minimum(tl.arange(0, KP), K - 1).to(tl.int64) * row_stride
    x = _load(rows_ptr + tl.multiple_of(row_start, ALIGN)[:, None] + offs[None, :], m[None, :], MASKED)
    return tl.sum(b[:, None] * x, axis=0)


@triton.jit
def _coefficients(beta_ptr, seg, K: tl.constexpr, KP: tl.constexpr):
    ks = tl.arange(0, KP)
    return tl.load(beta_ptr + seg * K + ks, mask=ks < K, other=0.0).to(tl.float32)


@triton.jit
def _combine_block(rows_ptr, row_stride, b, out_ptr, offs, n, K: tl.constexpr, KP: tl.constexpr,
                   MASKED: tl.constexpr, ALIGN: tl.constexpr):
    m = offs < n
    _store(out_ptr + offs, combined(rows_ptr, row_stride, b, offs, m, K, KP, MASKED, ALIGN), m, MASKED)


@triton.jit
def combine_kernel(rows_ptr, row_stride, beta_ptr, chunks_ptr, out_ptr,
                   K: tl.constexpr, KP: tl.constexpr, BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    c = tl.program_id(0)
    start = tl.multiple_of(tl.load(chunks_ptr + c * 4), ALIGN)
    n = tl.load(chunks_ptr + c * 4 + 1)
    b = _coefficients(beta_ptr, tl.load(chunks_ptr + c * 4 + 2), K, KP)
    end = start + n
    main = start + n // BLOCK * BLOCK
    for i in range(start, main, BLOCK):
        _combine_block(rows_ptr, row_stride, b, out_ptr, tl.multiple_of(i, ALIGN) + tl.arange(0, BLOCK), end,
                       K, KP, False, ALIGN)
    if main < end:
        _combine_block(rows_ptr, row_stride, b, out_ptr, main + tl.arange(0, BLOCK), end, K, KP, True, ALIGN)


@triton.jit
def _sgd_block(rows_ptr, row_stride, b, param_ptr, mom_ptr, offs, n, lr, weight_decay, momentum, buf_scale,
               grad_scale, nesterov, maximize, K: tl.constexpr, KP: tl.constexpr, HAS_MOMENTUM: tl.constexpr,
               MASKED: tl.constexpr, ALIGN: tl.constexpr):
    m = offs < n
    g = combined(rows_ptr, row_stride, b, offs, m, K, KP, MASKED, ALIGN)
    p = _load(param_ptr + offs, m, MASKED)
    buf = _load(mom_ptr + offs, m, MASKED) if HAS_MOMENTUM else p
    new_p, new_buf = sgd_element(g, p, buf, lr, weight_decay, momentum, buf_scale, grad_scale,
                                 nesterov, maximize, HAS_MOMENTUM)
    _store(param_ptr + offs, new_p, m, MASKED)
    if HAS_MOMENTUM:
        _store(mom_ptr + offs, new_buf, m, MASKED)


@triton.jit
def sgd_apply_kernel(rows_ptr, row_stride, beta_ptr, chunks_ptr, param_ptr, mom_ptr, hyper_ptr,
                     ready_ptr, found_inf_ptr, K: tl.constexpr, KP: tl.constexpr,
                     HAS_MOMENTUM: tl.constexpr, BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    # read on the device as one scalar (a skipped step writes nothing, and no mask on the stores)
    if tl.load(found_inf_ptr) == 0:
        c = tl.program_id(0)
        start = tl.multiple_of(tl.load(chunks_ptr + c * 4), ALIGN)
        n = tl.load(chunks_ptr + c * 4 + 1)
        b = _coefficients(beta_ptr, tl.load(chunks_ptr + c * 4 + 2), K, KP)
        grp = tl.load(chunks_ptr + c * 4 + 3)
        h = hyper_ptr + grp * 6
        lr = tl.load(h)
        weight_decay = tl.load(h + 1)
        momentum = tl.load(h + 2)
        dampening = tl.load(h + 3)
        nesterov = tl.load(h + 4)
        maximize = tl.load(h + 5)
        ready = tl.load(ready_ptr + grp) != 0
        buf_scale = tl.where(ready, momentum, 0.0)
        grad_scale = tl.where(ready, 1.0 - dampening, 1.0)
        end = start + n
        main = start + n // BLOCK * BLOCK
        for i in range(start, main, BLOCK):
            _sgd_block(rows_ptr, row_stride, b, param_ptr, mom_ptr, tl.multiple_of(i, ALIGN) + tl.arange(0, BLOCK),
                       end, lr, weight_decay, momentum, buf_scale, grad_scale, nesterov, maximize, K, KP,
                       HAS_MOMENTUM, False, ALIGN)
        if main < end:
            _sgd_block(rows_ptr, row_stride, b, param_ptr, mom_ptr, main + tl.arange(0, BLOCK), end, lr,
                       weight_decay, momentum, buf_scale, grad_scale, nesterov, maximize, K, KP, HAS_MOMENTUM, True,
                       ALIGN)
