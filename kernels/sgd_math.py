"""Per-element SGD math for Triton kernels.

Triton cannot include ``csrc/include/ltu_fast/sgd_math.h``; this is the same update written once
for every Triton kernel, checked against the reference backend by the tests.
"""

import triton
import triton.language as tl


@triton.jit
def sgd_element(g, p, buf, lr, weight_decay, momentum, buf_scale, grad_scale, nesterov, maximize,
                HAS_MOMENTUM: tl.constexpr):
    """New parameter and momentum buffer for fp32 ``g``/``p``/``buf`` (``buf`` unused without momentum)."""
    g = tl.where(maximize != 0, -g, g)
    g = g + weight_decay * p
    if HAS_MOMENTUM:
        new_buf = buf_scale * buf + grad_scale * g
        stepped = tl.where(nesterov != 0, g + momentum * new_buf, new_buf)
        on = momentum != 0
        g = tl.where(on, stepped, g)
        buf = tl.where(on, new_buf, buf)
    return p - lr * g, buf
