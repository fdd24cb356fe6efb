"""FairGrad (``aggregators/fairgrad.h``): I0 = Newton iterations, floats[0] = alpha (0: the uniform 1/K)."""

import triton
import triton.language as tl

from .common import ones
from .newton import nearest_psd, power_equation


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    alpha = tl.load(floats_ptr)
    if alpha == 0.0:
        beta = ones(g, ks, K) / K
    else:
        beta = power_equation(nearest_psd(g, ks, K), ks, 1.0 / alpha, I0, K, False)
    return beta
