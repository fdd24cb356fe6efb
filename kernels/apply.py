"""Combine and fused combine + SGD: one program per chunk of one tensor (segment, group known).

Both share :func:`combined`: ``g = sum_k beta[seg, k] * rows[k, e]`` in fp32.
"""

import triton
import triton.language as tl

from .sgd_math import sgd_element


@triton.jit
def combined(rows_ptr, row_stride, beta_ptr, seg, offs, m, K: tl.constexpr, KP: tl.constexpr):
    ks = tl.arange(0, KP)
    kmask = ks < K
    b = tl.load(beta_ptr + seg * K + ks, mask=kmask, other=0.0).to(tl.float32)
    x = tl.load(rows_ptr + ks.to(tl.int64)[:, None] * row_stride + offs[None, :],
                mask=kmask[:, None] & m[None, :], other=0.0).to(tl.float32)
    return tl.sum(b[:, None] * x, axis=0)


@triton.jit
def combine_kernel(rows_ptr, row_stride, beta_ptr, chunks_ptr, out_ptr,
                   K: tl.constexpr, KP: tl.constexpr, BLOCK: tl.constexpr):
    c = tl.program_id(0)
    start = tl.load(chunks_ptr + c * 4)
    n = tl.load(chunks_ptr + c * 4 + 1)
    seg = tl.load(chunks_ptr + c * 4 + 2)
    for i in range(0, n, BLOCK):
        local = i + tl.arange(0, BLOCK)
        m = local < n
        offs = start + local
        g = combined(rows_ptr, row_stride, beta_ptr, seg, offs, m, K, KP)
        tl.store(out_ptr + offs, g.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def sgd_apply_kernel(rows_ptr, row_stride, beta_ptr, chunks_ptr, param_ptr, mom_ptr, hyper_ptr,
                     ready_ptr, found_inf_ptr, K: tl.constexpr, KP: tl.constexpr,
                     HAS_MOMENTUM: tl.constexpr, BLOCK: tl.constexpr):
    c = tl.program_id(0)
    start = tl.load(chunks_ptr + c * 4)
    n = tl.load(chunks_ptr + c * 4 + 1)
    seg = tl.load(chunks_ptr + c * 4 + 2)
    grp = tl.load(chunks_ptr + c * 4 + 3)
    # read on the device (a skipped step writes nothing); a vector so the mask is a tensor op
    write = tl.load(found_inf_ptr + tl.zeros((BLOCK,), dtype=tl.int32)) == 0
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
    for i in range(0, n, BLOCK):
        local = i + tl.arange(0, BLOCK)
        m = local < n
        offs = start + local
        g = combined(rows_ptr, row_stride, beta_ptr, seg, offs, m, K, KP)
        p = tl.load(param_ptr + offs, mask=m, other=0.0).to(tl.float32)
        if HAS_MOMENTUM:
            buf = tl.load(mom_ptr + offs, mask=m, other=0.0).to(tl.float32)
        else:
            buf = p
        new_p, new_buf = sgd_element(g, p, buf, lr, weight_decay, momentum, buf_scale, grad_scale,
                                     nesterov, maximize, HAS_MOMENTUM)
        tl.store(param_ptr + offs, new_p.to(param_ptr.dtype.element_ty), mask=m & write)
        if HAS_MOMENTUM:
            tl.store(mom_ptr + offs, new_buf.to(mom_ptr.dtype.element_ty), mask=m & write)
