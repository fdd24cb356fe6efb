"""Nash-MTL (``aggregators/nash_mtl.h``): I0 = update_weights_every, I1 = Newton iterations, floats[0] =
max_norm (0: no clipping); state ``[L, K]``: the last solved weights, before clipping."""

import triton
import triton.language as tl

from .newton import nearest_psd, power_equation
from .qp import matvec


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    rows = lmask[:, None] & (ks < K)[None, :]
    g = nearest_psd(g, ks, K)  # the Gram the weights solve and the clip measure
    at = state_ptr + ls.to(tl.int64)[:, None] * K + ks[None, :]
    if (I0 <= 1) | (step % I0 == 0):
        alpha = power_equation(g, ks, 1.0, I1, K, True)
    else:
        alpha = tl.load(at, mask=rows, other=0.0)
    tl.store(at, alpha, mask=rows)
    max_norm = tl.load(floats_ptr)
    squared = tl.sum(alpha * matvec(g, alpha), axis=1)
    norm = tl.sqrt(tl.where(squared < 0.0, 0.0, squared))
    clip = (norm > max_norm) & (norm * 0.0 + max_norm > 0.0)
    return tl.where(clip[:, None], alpha * (max_norm / tl.where(clip, norm, 1.0))[:, None], alpha)
