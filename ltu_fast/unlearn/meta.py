"""Meta-step helpers on flat buffers (the layout of a :class:`~ltu_fast.HarmonizedSGD`).

A *loss* here is a callable ``loss(forward) -> scalar`` where ``forward(x) -> logits`` runs the
model at some parameters: the same loss can then be evaluated at theta or at the fast weights
theta' without touching the module's own parameters (``torch.func.functional_call``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..functional import axpy
from ..plan import SegmentPlan

Forward = Callable[[torch.Tensor], torch.Tensor]
Loss = Callable[[Forward], torch.Tensor]


class FlatModel:
    """Runs ``model`` with parameters taken from a flat buffer laid out by ``plan``.

    ``names``/``shapes`` list the trainable parameters in the plan's order (the optimizer's).
    """

    def __init__(self, model: nn.Module, plan: SegmentPlan, names: Sequence[str], shapes: Sequence[torch.Size]):
        self.model, self.plan, self.names, self.shapes = model, plan, list(names), list(shapes)
        self._segment_of_element: torch.Tensor | None = None

    def forward_at(self, flat: torch.Tensor) -> Forward:
        """The model at ``flat``. Buffers are copies: a train-mode BatchNorm normalises with the batch
        statistics, as at theta, but the module's running statistics never see theta' (or a
        re-evaluation at theta in the second-order path)."""
        params = dict(zip(self.names, self.plan.views(flat, self.shapes)))
        buffers = {k: b.clone() for k, b in self.model.named_buffers()}
        return lambda x: functional_call(self.model, (params, buffers), (x,))

    def fast_weights(self, flat: torch.Tensor, direction: torch.Tensor, alpha: float) -> torch.Tensor:
        """theta' = theta - alpha * direction, in a new buffer (the fused axpy path)."""
        out = flat.detach().clone()
        axpy(out, direction.detach(), -alpha)
        return out

    def grads_at(self, flat: torch.Tensor, losses: Sequence[Loss]) -> list[torch.Tensor]:
        """First-order query gradients: d loss / d theta evaluated at ``flat``, one flat row each."""
        leaf = flat.detach().requires_grad_(True)
        forward = self.forward_at(leaf)
        out = []
        for i, loss in enumerate(losses):
            (g,) = torch.autograd.grad(loss(forward), leaf, retain_graph=i + 1 < len(losses))
            out.append(g)
        return out

    def element_coefficients(self, beta: torch.Tensor) -> torch.Tensor:
        """Per-segment coefficients ``beta [L, K]`` broadcast to every element: ``[K, P]``."""
        if self._segment_of_element is None:
            seg = torch.zeros(self.plan.total, dtype=torch.long, device=beta.device)
            for o, n, s in zip(self.plan.offsets, self.plan.numels, self.plan.segments):
                seg[o:o + n] = s
            self._segment_of_element = seg
        return beta[self._segment_of_element].T

    def second_order_grads(self, flat: torch.Tensor, support: Sequence[Loss], coefficients: torch.Tensor,
                           alpha: float, queries: Sequence[Loss]) -> list[torch.Tensor]:
        """d query(theta') / d theta with theta' = theta - alpha * sum_k c_k * grad support_k(theta),
        differentiating through the inner step (the harmonization coefficients ``c [K, P]`` are held
        constant: they are a projection chosen at theta, as the first-order path assumes too)."""
        theta = flat.detach().requires_grad_(True)
        forward = self.forward_at(theta)
        step = torch.zeros_like(theta)
        for c, loss in zip(coefficients, support):
            (g,) = torch.autograd.grad(loss(forward), theta, create_graph=True)
            step = step + c * g
        forward_prime = self.forward_at(theta - alpha * step)
        out = []
        for i, loss in enumerate(queries):
            (g,) = torch.autograd.grad(loss(forward_prime), theta, retain_graph=i + 1 < len(queries))
            out.append(g)
        return out
