"""One-sided projection (``aggregators/project.h``): I0 = the protected objective r."""

import triton
import triton.language as tl

from .common import column, diagonal, entry, ones, safe_ratio


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    col = column(g, ks, I0)
    g_rr = entry(diagonal(g, ks), ks, I0)
    valid = (ks < K)[None, :]
    steps = tl.where(valid & (ks[None, :] != I0), tl.minimum(safe_ratio(col, g_rr[:, None]), 0.0), 0.0)
    return ones(g, ks, K) - tl.where(ks[None, :] == I0, tl.sum(steps, axis=1)[:, None], 0.0)
