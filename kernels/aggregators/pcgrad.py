"""PCGrad in coefficient space (``aggregators/pcgrad.h``): I0 = random order, I1 = seed."""

import triton
import triton.language as tl

from .common import column, diagonal, entry, safe_ratio, visit


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    diag = diagonal(g, ks)
    beta = tl.zeros_like(diag)
    for i in tl.static_range(K):
        c = tl.where(ks[None, :] == i, 1.0, 0.0) + tl.zeros_like(diag)
        for t in tl.static_range(K - 1):
            j = visit(i, t, I0, step, I1, ks, K)
            dot = tl.sum(c * column(g, ks, j), axis=1)
            proj = tl.minimum(safe_ratio(dot, entry(diag, ks, j)), 0.0)
            c = c - tl.where(ks[None, :] == j, proj[:, None], 0.0)
        beta = beta + c
    return beta
