"""CAGrad (``aggregators/cagrad.h``): I0 = iterations, floats[0] = c, floats[1] = norm_eps."""

import triton
import triton.language as tl

from .qp import matvec, simplex_minimize, trace_normalized


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    c = tl.load(floats_ptr)
    norm_eps = tl.load(floats_ptr + 1)
    normalized = trace_normalized(g, ks, norm_eps)
    b = tl.sum(normalized, axis=2) / K  # G' 1 / K: each gradient's product with g0
    radius = c * tl.sqrt(tl.maximum(tl.sum(b, axis=1) / K, 0.0))
    w = simplex_minimize(normalized, b, radius, I0, ks, K)
    norm = tl.sqrt(tl.maximum(tl.sum(w * matvec(normalized, w), axis=1), 0.0))
    away = norm >= norm_eps
    coef = 1.0 / K + (radius / tl.where(away, norm, 1.0))[:, None] * w
    return tl.where(away[:, None] & (ks < K)[None, :], coef, 0.0)
