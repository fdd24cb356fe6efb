"""AdamW as a fused update rule: ``torch.optim.AdamW``'s single-tensor path, in its operation order
(C++/CUDA: ``csrc/include/ltu_fast/rules/adamw.h``, Triton: ``kernels/rules/adamw.py``).

    prepare (float64, per tensor): step += active;  t = max(step, 1)
        step_size = lr / (1 - beta1^t),  bc2_sqrt = sqrt(1 - beta2^t),  decay = 1 - lr * weight_decay
    element: g = -g if maximize;  p *= decay;  m = lerp(m, g, 1 - beta1);  v = v * beta2 + (1 - beta2) g^2
        vmax = max(vmax, v) if amsgrad;  denom = sqrt(amsgrad ? vmax : v) / bc2_sqrt + eps
        p += (-step_size * m) / denom

The bias corrections use each tensor's own step count in float64 (torch computes them in Python
floats), then one cast to the rows' dtype; ``step`` is float32, as torch's ``state["step"]``.
"""

from __future__ import annotations

import torch

from .base import UpdateRule, Values


def _prepare(group: Values, state: torch.Tensor, active: torch.Tensor, dtype: torch.dtype) -> Values:
    lr, beta1, beta2 = (group[c].to(torch.float64) for c in ("lr", "beta1", "beta2"))
    step = state[:, 0]
    step.add_(active.to(step.dtype))
    t = step.to(torch.float64).clamp_min(1)  # an inactive tensor at step 0 gets finite, unused values
    return {"step_size": lr / (1 - beta1.pow(t)), "bc2_sqrt": (1 - beta2.pow(t)).sqrt(),
            "decay": 1 - lr * group["weight_decay"].to(torch.float64), "w1": 1 - beta1, "beta2": beta2,
            "one_minus_beta2": 1 - beta2, "eps": group["eps"], "amsgrad": group["amsgrad"],
            "maximize": group["maximize"]}


def _lerp(start: torch.Tensor, end: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """torch's lerp formula (two forms, picked by the weight's size, for accuracy at both ends)."""
    return torch.where(weight.abs() < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))


def _element(g: torch.Tensor, p: torch.Tensor, buffers: list, h: Values) -> tuple[torch.Tensor, list]:
    m, v, vmax = buffers
    g = torch.where(h["maximize"] != 0, -g, g)
    new_p = p * h["decay"]
    new_m = _lerp(m, g, h["w1"])
    new_v = v * h["beta2"] + h["one_minus_beta2"] * g * g
    second = new_v
    if vmax is not None:  # some group uses amsgrad: the optimizer keeps the buffer
        amsgrad = h["amsgrad"] != 0
        vmax = torch.where(amsgrad, torch.maximum(vmax, new_v), vmax)
        second = torch.where(amsgrad, vmax, new_v)
    denom = second.sqrt() / h["bc2_sqrt"] + h["eps"]
    return new_p + (-h["step_size"] * new_m) / denom, [new_m, new_v, vmax]


ADAMW = UpdateRule(
    name="adamw", code=1,
    group_columns=("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize"),
    tensor_state=("step",),
    row_columns=("active", "step_size", "bc2_sqrt", "decay", "w1", "beta2", "one_minus_beta2", "eps", "amsgrad",
                 "maximize"),
    buffers=("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), optional_buffers=("max_exp_avg_sq",),
    prepare=_prepare, element=_element)
