"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") as a fused update rule
(C++/CUDA: ``csrc/include/ltu_fast/rules/lion.h``, Triton: ``kernels/rules/lion.py``).

    prepare (float64, per tensor): decay = 1 - lr * weight_decay, 1 - beta1, 1 - beta2
    element: g = -g if maximize;  c = beta1 * m + (1 - beta1) * g
             p = p * decay - lr * sign(c);  m = beta2 * m + (1 - beta2) * g      (sign(0) = 0)

The update's operation order is the paper's and the common PyTorch implementation's (decoupled
decay first, the interpolation's sign, then the momentum update with ``beta2``).
"""

from __future__ import annotations

import torch

from .base import UpdateRule, Values


def _prepare(group: Values, state: torch.Tensor, active: torch.Tensor, dtype: torch.dtype) -> Values:
    lr, beta1, beta2, weight_decay = (group[c].to(torch.float64) for c in ("lr", "beta1", "beta2", "weight_decay"))
    return {"lr": lr, "decay": 1 - lr * weight_decay, "beta1": beta1, "one_minus_beta1": 1 - beta1, "beta2": beta2,
            "one_minus_beta2": 1 - beta2, "maximize": group["maximize"]}


def _element(g: torch.Tensor, p: torch.Tensor, buffers: list, h: Values) -> tuple[torch.Tensor, list]:
    m = buffers[0]
    g = torch.where(h["maximize"] != 0, -g, g)
    c = m * h["beta1"] + g * h["one_minus_beta1"]
    return p * h["decay"] - h["lr"] * torch.sign(c), [m * h["beta2"] + g * h["one_minus_beta2"]]


LION = UpdateRule(
    name="lion", code=2,
    group_columns=("lr", "beta1", "beta2", "weight_decay", "maximize"),
    tensor_state=(),
    row_columns=("active", "lr", "decay", "beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "maximize"),
    buffers=("exp_avg",), optional_buffers=(),
    prepare=_prepare, element=_element)
