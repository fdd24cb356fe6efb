"""Exact positive solution of ``G w = w^(-p)`` (FairGrad with ``p = 1 / alpha``; Nash-MTL is ``p = 1``,
i.e. ``w * (G w) = 1``) by damped Newton with a fixed trip count, batched, no host synchronisation.

The equation is the stationarity condition of the strictly convex
``f(w) = w^T G w / 2 - sum_i h(w_i)`` on ``w > 0``, ``h' = w^(-p)`` (``h = log`` for ``p = 1``), so it
has one solution whenever f is bounded below (no ``u >= 0, u != 0`` with ``G u = 0``).
Steps (the loop a C++/CUDA or Triton port repeats):

0. objectives with a zero gradient (``G_ii = 0``) leave the system (identity row; weight 0 at the
   end: they move nothing); ``G += 1e-12 diag(G)``, a relative ridge below rounding for well-posed
   problems that keeps f bounded (and w finite) where no solution exists; start at the diagonal solution ``w_i = G_ii^(-1/(1+p))``, rescaled by
   the best factor along that ray;
1. Newton direction ``d = -(G + p diag(w^(-p-1)))^-1 (G w - w^(-p))`` (Cholesky; the matrix is
   positive definite);
2. step ``t``: the largest of ``t0, t0/2, ..., t0/2^(S-1)`` (``t0 = min(1, 0.99 x`` the step to the
   boundary)) with Armijo decrease of f; when the Newton decrement ``-grad^T d`` is below
   ``1e-8 |f|``-scale (the quadratic region, where f differences drown in rounding), the full
   ``t0``.
"""

from __future__ import annotations

import torch

__all__ = ["DEFAULT_NEWTON_ITERATIONS", "RIDGE", "power_equation"]

DEFAULT_NEWTON_ITERATIONS = 30
_HALVINGS = 30  # candidate step sizes per iteration
RIDGE = 1e-12  # G + RIDGE diag(G): bounded below even when a u >= 0 has G u = 0 (then no exact solution)


def _barrier(w: torch.Tensor, p: float) -> torch.Tensor:
    """``sum_i h(w_i)`` with ``h' = w^(-p)``."""
    if p == 1.0:
        return w.log().sum(-1)
    return (w.pow(1.0 - p) / (1.0 - p)).sum(-1)


def power_equation(gram: torch.Tensor, p: float, iterations: int = DEFAULT_NEWTON_ITERATIONS) -> torch.Tensor:
    """``w > 0`` with ``G w = w^(-p)`` for PSD ``gram [B, K, K]`` (float64); 0 where ``G_ii = 0``."""
    k = gram.shape[-1]
    eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
    diag = gram.diagonal(dim1=-2, dim2=-1)
    active = diag > 0
    g = torch.where(active[..., :, None] & active[..., None, :], gram, eye)
    g = g + RIDGE * torch.diag_embed(g.diagonal(dim1=-2, dim2=-1))
    w = g.diagonal(dim1=-2, dim2=-1).pow(-1.0 / (1.0 + p))
    curvature = (w * (g @ w[..., None])[..., 0]).sum(-1, keepdim=True)
    pull = w.pow(1.0 - p).sum(-1, keepdim=True)
    w = w * torch.where(curvature > 0, (pull / torch.where(curvature > 0, curvature, 1.0)).pow(1.0 / (1.0 + p)), 1.0)
    halvings = 0.5 ** torch.arange(_HALVINGS, dtype=gram.dtype, device=gram.device)
    for _ in range(iterations):
        gw = (g @ w[..., None])[..., 0]
        grad = gw - w.pow(-p)
        hessian = g + torch.diag_embed(p * w.pow(-p - 1.0))
        chol, _ = torch.linalg.cholesky_ex(hessian)
        d = -torch.cholesky_solve(grad[..., None], chol)[..., 0]
        decrement = -(grad * d).sum(-1)  # >= 0
        shrinking = d < 0
        boundary = torch.where(shrinking, w / torch.where(shrinking, -d, 1.0), torch.inf).amin(-1)
        t0 = torch.clamp(0.99 * boundary, max=1.0)
        steps = t0[..., None] * halvings  # [B, S]
        trial = w[..., None, :] + steps[..., None] * d[..., None, :]  # [B, S, K]
        f0 = 0.5 * (w * gw).sum(-1) - _barrier(w, p)
        gd = (g @ d[..., None])[..., 0]
        quadratic = 0.5 * (w * gw).sum(-1, keepdim=True) + steps * (d * gw).sum(-1, keepdim=True) \
            + 0.5 * steps * steps * (d * gd).sum(-1, keepdim=True)
        f = quadratic - _barrier(trial.clamp_min(torch.finfo(gram.dtype).tiny), p)
        armijo = f <= f0[..., None] - 1e-4 * steps * decrement[..., None]
        first = torch.where(armijo, torch.arange(_HALVINGS, device=gram.device), _HALVINGS).amin(-1)
        t = torch.where(first < _HALVINGS, steps.gather(-1, first.clamp(max=_HALVINGS - 1)[..., None])[..., 0], 0.0)
        converging = decrement <= 1e-8 * (1.0 + f0.abs())
        t = torch.where(converging, t0, t)
        w = w + t[..., None] * d
    return torch.where(active, w, 0.0)
