"""ConFIG (``aggregators/config.h``): I0 = Jacobi sweeps; floats[0] = eps (rtol = K eps), floats[1] =
the floor of ``|u|``; preference at PREFERENCE + j."""

import triton
import triton.language as tl

from .common import PREFERENCE, diagonal
from .jacobi import pseudo_inverse_apply, symmetric_eigen


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    p = tl.load(floats_ptr + PREFERENCE + ks, mask=ks < K, other=0.0)[None, :]
    diag = diagonal(g, ks)
    norms = tl.sqrt(tl.where(diag < 0.0, 0.0, diag))
    inv = tl.where(norms > 0.0, 1.0 / tl.where(norms > 0.0, norms, 1.0), 0.0)
    cosine = inv[:, :, None] * g * inv[:, None, :]
    values, vectors = symmetric_eigen(cosine, ks, I0, K)
    c = pseudo_inverse_apply(values, vectors, K * tl.load(floats_ptr), p)
    length2 = tl.sum(c * tl.sum(cosine * c[:, None, :], axis=2), axis=1)
    length = tl.sqrt(tl.where(length2 < 0.0, 0.0, length2))
    floor = tl.load(floats_ptr + 1)
    length = tl.where(length < floor, floor, length)
    coef = inv * c
    along = tl.sum(tl.sum(g * coef[:, None, :], axis=2), axis=1)
    return coef * along[:, None] / (length * length)[:, None]
