"""DualProj (``aggregators/dualproj.h``): I0 = iterations, floats[0] = norm_eps, floats[1] = reg_eps,
floats[PREFERENCE + i] = p_i; the dual-cone projection with bounds p."""

import triton
import triton.language as tl

from .common import PREFERENCE, ones
from .qp import dual_cone, regularized


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    pref = tl.load(floats_ptr + PREFERENCE + ks, mask=ks < K, other=0.0)
    q_matrix = regularized(g, ks, tl.load(floats_ptr), tl.load(floats_ptr + 1), K)
    return dual_cone(q_matrix, ones(g, ks, K) * pref[None, :], I0, ks, K)
