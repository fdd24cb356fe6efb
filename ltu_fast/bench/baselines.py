"""The torch-written contenders of the benches, one copy each: what a user writes without ltu_fast.

Per-layer Gram matrices from a Python loop of dots or from ``_foreach_norm``; PCGrad's closed form for
two objectives; the per-layer combination of the rows with ``_foreach`` ops; SGD with momentum on
per-parameter tensors. None of them reads a value back to the host.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def gram_loop(grads: list[list[torch.Tensor]]) -> torch.Tensor:
    """[L, K, K] with one dot per pair per tensor (the plain per-layer loop); ``grads[k][i]`` flat."""
    k = len(grads)
    out = []
    for i in range(len(grads[0])):
        dots = [[None] * k for _ in range(k)]
        for a in range(k):
            for b in range(a + 1):
                dots[a][b] = dots[b][a] = torch.dot(grads[a][i].reshape(-1), grads[b][i].reshape(-1)).float()
        out.append(torch.stack([torch.stack(row) for row in dots]))
    return torch.stack(out)


def gram_foreach(grads: list[list[torch.Tensor]]) -> torch.Tensor:
    """[L, K, K] from _foreach_norm: <a,b> = (|a+b|^2 - |a|^2 - |b|^2) / 2."""
    k = len(grads)
    sq = [torch.stack(torch._foreach_norm(g)).float() ** 2 for g in grads]
    rows = [[None] * k for _ in range(k)]
    for a in range(k):
        rows[a][a] = sq[a]
        for b in range(a):
            both = torch.stack(torch._foreach_norm(torch._foreach_add(grads[a], grads[b]))).float() ** 2
            rows[a][b] = rows[b][a] = (both - sq[a] - sq[b]) / 2
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def pcgrad_two(gram: torch.Tensor) -> torch.Tensor:
    """[L, 2] PCGrad coefficients for two objectives in closed form: with d = <g1, g2> < 0 the sum of
    the projections is (1 - d/|g1|^2) g1 + (1 - d/|g2|^2) g2, else g1 + g2."""
    d, n1, n2 = gram[:, 0, 1], gram[:, 0, 0], gram[:, 1, 1]
    tiny = torch.finfo(gram.dtype).tiny
    c1 = torch.where(d < 0, 1 - d / n1.clamp_min(tiny), torch.ones_like(d))
    c2 = torch.where(d < 0, 1 - d / n2.clamp_min(tiny), torch.ones_like(d))
    return torch.stack([c1, c2], -1)


def combine_foreach(grads: list[list[torch.Tensor]], beta: torch.Tensor) -> list[torch.Tensor]:
    """sum_k beta[i, k] grads[k][i] for every tensor i, in ``_foreach`` ops (no host sync)."""
    beta = beta.to(grads[0][0].dtype)
    combined = torch._foreach_mul(grads[0], list(beta[:, 0].unbind()))
    for k in range(1, len(grads)):
        torch._foreach_add_(combined, torch._foreach_mul(grads[k], list(beta[:, k].unbind())))
    return combined


def pcgrad_foreach(grads: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Per-layer PCGrad of two objectives' gradients, all in ``_foreach`` ops."""
    return combine_foreach(grads, pcgrad_two(gram_foreach(grads)))


def loop_step(grads, params, bufs, aggregator: Callable, lr: float, momentum: float) -> None:
    """Per-layer harmonization and SGD with momentum in a Python loop over the tensors."""
    beta = aggregator(gram_loop(grads))
    for i, (p, buf) in enumerate(zip(params, bufs)):
        g = sum(beta[i, k] * grads[k][i] for k in range(len(grads)))
        buf.mul_(momentum).add_(g)
        p.add_(buf, alpha=-lr)


def foreach_step(grads, params, bufs, aggregator: Callable, lr: float, momentum: float) -> None:
    """The same in ``_foreach`` ops: Gram from norms, one combination, SGD with momentum."""
    combined = combine_foreach(grads, aggregator(gram_foreach(grads)))
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, combined)
    torch._foreach_add_(params, bufs, alpha=-lr)
