"""SGD's Triton math (semantics: ``ltu_fast/rules/sgd.py``; C++/CUDA: ``csrc/include/ltu_fast/rules/sgd.h``)."""

import triton
import triton.language as tl

from . import column

GROUP = ("lr", "weight_decay", "momentum", "dampening", "nesterov", "maximize")
STATE = ("ready",)
ROW = ("active", "lr", "weight_decay", "momentum", "buf_scale", "grad_scale", "nesterov", "maximize")
BUFFERS = ("momentum_buffer",)
G_LR, G_WEIGHT_DECAY, G_MOMENTUM = column(GROUP, "lr"), column(GROUP, "weight_decay"), column(GROUP, "momentum")
G_DAMPENING, G_NESTEROV, G_MAXIMIZE = column(GROUP, "dampening"), column(GROUP, "nesterov"), column(GROUP, "maximize")
READY = column(STATE, "ready")
LR, WEIGHT_DECAY, MOMENTUM = column(ROW, "lr"), column(ROW, "weight_decay"), column(ROW, "momentum")
BUF_SCALE, GRAD_SCALE = column(ROW, "buf_scale"), column(ROW, "grad_scale")
NESTEROV, MAXIMIZE = column(ROW, "nesterov"), column(ROW, "maximize")


@triton.jit
def prepare(group, state, active):
    """The row in float32 from the values as float32 (1 - dampening in float, as torch's float32 path)."""
    momentum = group[G_MOMENTUM].to(tl.float32)
    ready = state[READY] != 0.0
    row = (group[G_LR].to(tl.float32), group[G_WEIGHT_DECAY].to(tl.float32), momentum,
           tl.where(ready, momentum, 0.0), tl.where(ready, 1.0 - group[G_DAMPENING].to(tl.float32), 1.0),
           group[G_NESTEROV].to(tl.float32), group[G_MAXIMIZE].to(tl.float32))
    return row, (tl.where(active & (momentum != 0.0), 1.0, state[READY]),)


@triton.jit
def element(g, p, s0, s1, s2, h, HAS: tl.constexpr):
    """``s0`` the momentum buffer (when it exists)."""
    g = tl.where(h[MAXIMIZE] != 0, -g, g)
    g = g + h[WEIGHT_DECAY] * p
    if HAS & 1:
        new_buf = h[BUF_SCALE] * s0 + h[GRAD_SCALE] * g
        stepped = tl.where(h[NESTEROV] != 0, g + h[MOMENTUM] * new_buf, new_buf)
        on = h[MOMENTUM] != 0
        g = tl.where(on, stepped, g)
        s0 = tl.where(on, new_buf, s0)
    return p - h[LR] * g, s0, s1, s2
