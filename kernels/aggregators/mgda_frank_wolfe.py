"""MGDA by Frank-Wolfe (``aggregators/mgda_frank_wolfe.h``): I0 = iterations (K > 2; K = 2 closed form)."""

import triton
import triton.language as tl

from .common import clamp01, diagonal, entry, ones, safe_ratio


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    diag = diagonal(g, ks)
    valid = (ks < K)[None, :]
    if K == 1:
        beta = ones(g, ks, K)
    elif K == 2:
        g11 = entry(diag, ks, 0)
        g22 = entry(diag, ks, 1)
        g12 = entry(tl.sum(tl.where(ks[None, :, None] == 0, g, 0.0), axis=1), ks, 1)
        den = g11 + g22 - 2.0 * g12
        a = tl.where(den > 0, clamp01(safe_ratio(g22 - g12, den)), 0.5)
        beta = tl.where(ks[None, :] == 0, a[:, None], 1.0 - a[:, None]) * ones(g, ks, K)
    else:
        beta = ones(g, ks, K) / K
        for _ in range(I0):
            ga = tl.sum(g * beta[:, None, :], axis=2)  # <g_i, v>
            vv = tl.sum(beta * ga, axis=1)
            masked = tl.where(valid, ga, float("inf"))
            vt = tl.min(masked, axis=1)
            t = tl.min(tl.where(masked == vt[:, None], ks[None, :], K), axis=1)  # first minimum
            tt = entry(diag, ks, t[:, None])
            gamma = clamp01(safe_ratio(vv - vt, vv - 2.0 * vt + tt))
            beta = (1.0 - gamma[:, None]) * beta + tl.where(ks[None, :] == t[:, None], gamma[:, None], 0.0)
    return beta
