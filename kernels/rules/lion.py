"""Lion's Triton math (semantics: ``ltu_fast/rules/lion.py``; C++/CUDA: ``csrc/include/ltu_fast/rules/lion.h``)."""

import triton
import triton.language as tl

from . import column

GROUP = ("lr", "beta1", "beta2", "weight_decay", "maximize")
STATE = ()
ROW = ("active", "lr", "decay", "beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "maximize")
BUFFERS = ("exp_avg",)
G_LR, G_BETA1, G_BETA2 = column(GROUP, "lr"), column(GROUP, "beta1"), column(GROUP, "beta2")
G_WEIGHT_DECAY, G_MAXIMIZE = column(GROUP, "weight_decay"), column(GROUP, "maximize")
LR, DECAY, BETA1, ONE_MINUS_BETA1 = column(ROW, "lr"), column(ROW, "decay"), column(ROW, "beta1"), column(ROW, "one_minus_beta1")
BETA2, ONE_MINUS_BETA2, MAXIMIZE = column(ROW, "beta2"), column(ROW, "one_minus_beta2"), column(ROW, "maximize")


@triton.jit
def prepare(group, state, active):
    lr, beta1, beta2 = group[G_LR], group[G_BETA1], group[G_BETA2]
    return (lr, 1.0 - lr * group[G_WEIGHT_DECAY], beta1, 1.0 - beta1, beta2, 1.0 - beta2, group[G_MAXIMIZE]), state


@triton.jit
def element(g, p, s0, s1, s2, h, HAS: tl.constexpr):
    """``s0`` exp_avg; sign(0) = 0."""
    g = tl.where(h[MAXIMIZE] != 0, -g, g)
    c = s0 * h[BETA1] + g * h[ONE_MINUS_BETA1]
    sign = tl.where(c > 0, 1.0, tl.where(c < 0, -1.0, 0.0))
    return p * h[DECAY] - h[LR] * sign, s0 * h[BETA2] + g * h[ONE_MINUS_BETA2], s1, s2
