"""IMTL-G (``aggregators/imtl_g.h``): I0 = Jacobi sweeps; floats[0] = eps (rtol = K eps),
floats[1] = the threshold on ``|sum(v)|``."""

import triton
import triton.language as tl

from .common import diagonal
from .jacobi import pseudo_inverse_apply, symmetric_eigen


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    values, vectors = symmetric_eigen(g, ks, I0, K)
    diag = diagonal(g, ks)
    v = pseudo_inverse_apply(values, vectors, K * tl.load(floats_ptr), tl.sqrt(tl.where(diag < 0.0, 0.0, diag)))
    total = tl.sum(v, axis=1)
    small = tl.abs(total) < tl.load(floats_ptr + 1)
    return tl.where(small[:, None], 0.0, v / tl.where(small, 1.0, total)[:, None])
