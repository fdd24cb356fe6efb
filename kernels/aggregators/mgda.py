"""MGDA by the active-set method (``aggregators/mgda.h``): I0 = iterations (resolved on the host)."""

import triton
import triton.language as tl

from .common import ones
from .qp import simplex_minimize, trace_normalized


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    if K == 1:
        beta = tl.zeros((g.shape[0], KP), tl.float64) + tl.where((ks < K)[None, :], 1.0, 0.0)  # 1, even for NaN G
    else:
        zero = ones(g, ks, K) * 0.0
        beta = simplex_minimize(trace_normalized(g, ks, 0.0), zero, tl.sum(zero, axis=1) + 1.0, I0, ks, K)
    return beta
