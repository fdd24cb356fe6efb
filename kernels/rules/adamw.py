"""AdamW's Triton math (semantics: ``ltu_fast/rules/adamw.py``; C++/CUDA: ``csrc/include/ltu_fast/rules/adamw.h``)."""

import triton
import triton.language as tl

from ..libm import pow as _pow
from . import column

GROUP = ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize")
STATE = ("step",)
ROW = ("active", "step_size", "bc2_sqrt", "decay", "w1", "beta2", "one_minus_beta2", "eps", "amsgrad", "maximize")
BUFFERS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
G_LR, G_BETA1, G_BETA2, G_EPS = column(GROUP, "lr"), column(GROUP, "beta1"), column(GROUP, "beta2"), column(GROUP, "eps")
G_WEIGHT_DECAY, G_AMSGRAD, G_MAXIMIZE = column(GROUP, "weight_decay"), column(GROUP, "amsgrad"), column(GROUP, "maximize")
STEP = column(STATE, "step")
STEP_SIZE, BC2_SQRT, DECAY, W1 = column(ROW, "step_size"), column(ROW, "bc2_sqrt"), column(ROW, "decay"), column(ROW, "w1")
BETA2, ONE_MINUS_BETA2, EPS = column(ROW, "beta2"), column(ROW, "one_minus_beta2"), column(ROW, "eps")
AMSGRAD, MAXIMIZE = column(ROW, "amsgrad"), column(ROW, "maximize")

@triton.jit
def prepare(group, state, active):
    """Bias corrections in float64 from each tensor's own step count (float32, advanced where active)."""
    step = tl.where(active, state[STEP] + 1.0, state[STEP])
    t = tl.maximum(step, 1.0).to(tl.float64)  # an inactive tensor at step 0 gets finite, unused values
    lr, beta1, beta2 = group[G_LR], group[G_BETA1], group[G_BETA2]
    row = (lr / (1.0 - _pow(beta1, t)), tl.sqrt(1.0 - _pow(beta2, t)), 1.0 - lr * group[G_WEIGHT_DECAY],
           1.0 - beta1, beta2, 1.0 - beta2, group[G_EPS], group[G_AMSGRAD], group[G_MAXIMIZE])
    return row, (step,)


@triton.jit
def element(g, p, s0, s1, s2, h, HAS: tl.constexpr):
    """``s0, s1, s2``: exp_avg, exp_avg_sq and (when it exists, for amsgrad) max_exp_avg_sq."""
    g = tl.where(h[MAXIMIZE] != 0, -g, g)
    p = p * h[DECAY]
    w1 = h[W1]
    diff = g - s0
    s0 = tl.where((w1 < 0.5) & (w1 > -0.5), s0 + w1 * diff, g - diff * (1.0 - w1))  # torch's lerp
    s1 = s1 * h[BETA2] + h[ONE_MINUS_BETA2] * g * g
    second = s1
    if HAS & 4:
        amsgrad = h[AMSGRAD] != 0
        s2 = tl.where(amsgrad, tl.where(s2 < s1, s1, s2), s2)
        second = tl.where(amsgrad, s2, s1)
    denom = tl.sqrt_rn(second) / h[BC2_SQRT] + h[EPS]
    return p + (-h[STEP_SIZE] * s0) / denom, s0, s1, s2
