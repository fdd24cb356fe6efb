"""Per-element AdamW math for Triton kernels.

Triton cannot include ``csrc/include/ltu_fast/adamw_math.h``; this is the same update, in the same
operation order (torch.optim.AdamW's single-tensor path), written once for every Triton kernel and
checked against the reference backend by the tests.
"""

import triton
import triton.language as tl


@triton.jit
def adamw_element(g, p, m, v, vmax, step_size, bc2_sqrt, decay, w1, beta2, one_minus_beta2, eps, amsgrad, maximize,
                  HAS_AMSGRAD: tl.constexpr):
    """New parameter and moments for fp32 ``g``/``p``/``m``/``v``; ``vmax`` is read only when
    ``HAS_AMSGRAD`` (a buffer exists) and changed only where ``amsgrad`` is set for this tensor."""
    g = tl.where(maximize != 0, -g, g)
    p = p * decay
    diff = g - m
    m = tl.where((w1 < 0.5) & (w1 > -0.5), m + w1 * diff, g - diff * (1.0 - w1))  # torch's lerp
    v = v * beta2 + one_minus_beta2 * g * g
    second = v
    if HAS_AMSGRAD:
        vmax = tl.where(amsgrad != 0, tl.where(vmax < v, v, vmax), vmax)
        second = tl.where(amsgrad != 0, vmax, v)
    denom = tl.sqrt_rn(second) / bc2_sqrt + eps
    return p + (-step_size * m) / denom, m, v, vmax
