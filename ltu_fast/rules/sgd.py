"""SGD as a fused update rule: ``torch.optim.SGD``'s semantics (C++/CUDA: ``csrc/include/ltu_fast/rules/sgd.h``,
Triton: ``kernels/rules/sgd.py``).

    g = -g if maximize;  g += weight_decay * p
    if momentum != 0:  buf = (ready ? momentum : 0) * buf + (ready ? 1 - dampening : 1) * g
                       g = nesterov ? g + momentum * buf : buf
    p -= lr * g

``ready`` is per tensor (torch's "momentum buffer is not None"): a tensor's first step with
momentum copies the gradient into its buffer, also after skipped steps and when momentum is
switched on later.
"""

from __future__ import annotations

import torch

from .base import UpdateRule, Values


def _prepare(group: Values, state: torch.Tensor, active: torch.Tensor, dtype: torch.dtype) -> Values:
    """In the rows' dtype (the parameters' precision), as torch.optim.SGD holds its hyper-parameters."""
    group = {name: value.to(dtype) for name, value in group.items()}
    momentum = group["momentum"]
    ready = state[:, 0] != 0
    row = {"lr": group["lr"], "weight_decay": group["weight_decay"], "momentum": momentum,
           "buf_scale": torch.where(ready, momentum, 0.0), "grad_scale": torch.where(ready, 1 - group["dampening"], 1.0),
           "nesterov": group["nesterov"], "maximize": group["maximize"]}
    state[:, 0].masked_fill_(active & (momentum != 0), 1.0)  # a step with momentum starts the history
    return row


def _element(g: torch.Tensor, p: torch.Tensor, buffers: list, h: Values) -> tuple[torch.Tensor, list]:
    g = torch.where(h["maximize"] != 0, -g, g)
    g = g + h["weight_decay"] * p
    buf = buffers[0]
    if buf is None:  # no group uses momentum: the optimizer keeps no buffer
        return p - h["lr"] * g, [None]
    new_buf = h["buf_scale"] * buf + h["grad_scale"] * g
    stepped = torch.where(h["nesterov"] != 0, g + h["momentum"] * new_buf, new_buf)
    on = h["momentum"] != 0
    return p - h["lr"] * torch.where(on, stepped, g), [torch.where(on, new_buf, buf)]


SGD = UpdateRule(
    name="sgd", code=0,
    group_columns=("lr", "weight_decay", "momentum", "dampening", "nesterov", "maximize"),
    tensor_state=("ready",),
    row_columns=("active", "lr", "weight_decay", "momentum", "buf_scale", "grad_scale", "nesterov", "maximize"),
    buffers=("momentum_buffer",), optional_buffers=("momentum_buffer",),
    prepare=_prepare, element=_element)
