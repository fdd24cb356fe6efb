"""Exact positive solution of ``G w = w^(-p)`` (FairGrad with ``p = 1 / alpha``; Nash-MTL is ``p = 1``,
i.e. ``w * (G w) = 1``) by damped Newton with a fixed trip count, batched, no host synchronisation.

The equation is the stationarity condition of the strictly convex
``f(w) = w^T G w / 2 - sum_i h(w_i)`` on ``w > 0``, ``h' = w^(-p)`` (``h = log`` for ``p = 1``). It
has one solution unless some ``u >= 0, u != 0`` has ``G u = 0`` (a non-negative combination of
the gradients vanishes: f is unbounded below, the weights run off to infinity along u).
Steps (the loop a C++/CUDA or Triton port repeats):

0. the Gram is first moved to the nearest PSD matrix along its diagonal scaling (:func:`nearest_psd`):
   float32 rounding leaves the Gram of linearly dependent gradients slightly indefinite, and on an
   indefinite Gram f is unbounded below whatever the ridge, so the weights would run off past what a
   float32 update can hold;
   objectives with a zero gradient (``G_ii = 0``) leave the system (identity row; weight 0 at the
   end: they move nothing); start at the diagonal solution ``w_i = G_ii^(-1/(1+p))``, rescaled by
   the best factor along that ray;
1. ``iterations`` Newton steps on ``f`` with the ridge ``RIDGE diag(G)`` added to ``G`` (bounded
   below always), then ``POLISH`` steps on the exact ``f`` (quadratic convergence from there);
2. each step: direction ``d = -H^-1 grad`` with ``H = G + p diag(w^(-p-1))`` (+ the ridge; Cholesky),
   step ``t``: the largest of ``t0, t0/2, ..., t0/2^29`` (``t0 = min(1, 0.99 x`` the step to the
   boundary)) with Armijo decrease of f, or ``t0`` once the Newton decrement is below
   ``1e-8 (1 + |f|)`` (the quadratic region, where differences of f drown in rounding);
3. where the ridge still carries more than ``SHARE`` of the equation at the end of phase 1
   (``RIDGE G_ii w_i^(1+p) > SHARE``: no solution, or all but none, e.g. two gradients with a
   cosine below ``-1 + 1e-8``), the ridged solution is kept: the limit of the exact problem's path,
   with bounded weights (``|w_i g_i| <~ RIDGE^(-1/2)``) that a float32 update can still apply.
"""

from __future__ import annotations

import torch

from ._eigen import DEFAULT_SWEEPS, symmetric_eigen

__all__ = ["DEFAULT_NEWTON_ITERATIONS", "POLISH", "RIDGE", "nearest_psd", "power_equation"]

DEFAULT_NEWTON_ITERATIONS = 26
POLISH = 4
RIDGE = 1e-10
SHARE = 1e-2
_HALVINGS = 30  # candidate step sizes per iteration


def _barrier(w: torch.Tensor, p: float) -> torch.Tensor:
    """``sum_i h(w_i)`` with ``h' = w^(-p)``."""
    if p == 1.0:
        return w.log().sum(-1)
    return (w.pow(1.0 - p) / (1.0 - p)).sum(-1)


def _newton_step(g: torch.Tensor, w: torch.Tensor, p: float, halvings: torch.Tensor) -> torch.Tensor:
    """One damped Newton step on ``f(w) = w^T g w / 2 - sum h(w)`` (steps 2 of the module doc)."""
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
    wgw = (w * gw).sum(-1)
    f0 = 0.5 * wgw - _barrier(w, p)
    gd = (g @ d[..., None])[..., 0]
    quadratic = 0.5 * wgw[..., None] + steps * (d * gw).sum(-1, keepdim=True) \
        + 0.5 * steps * steps * (d * gd).sum(-1, keepdim=True)
    f = quadratic - _barrier(trial.clamp_min(torch.finfo(w.dtype).tiny), p)
    armijo = f <= f0[..., None] - 1e-4 * steps * decrement[..., None]
    count = halvings.shape[0]
    first = torch.where(armijo, torch.arange(count, device=w.device), count).amin(-1)
    t = torch.where(first < count, steps.gather(-1, first.clamp(max=count - 1)[..., None])[..., 0], 0.0)
    t = torch.where(decrement <= 1e-8 * (1.0 + f0.abs()), t0, t)
    return w + t[..., None] * d


def nearest_psd(gram: torch.Tensor) -> torch.Tensor:
    """``G + s diag(G)``, ``s = max(0, -lambda_min(C))`` for the correlation matrix
    ``C = D^-1/2 G D^-1/2`` (``D = diag(G)``; objectives with ``G_ii = 0`` left out), ``[B, K, K]`` float64.

    Why the correlation scale: the rounding of a float32 Gram is relative to each entry
    (``~eps |g_i| |g_j|``), so in C it is uniform and one shift covers objectives of any size; and
    ``s = 0`` (a PSD Gram) leaves G bit for bit. The smallest eigenvalue comes from the Jacobi sweeps of
    :mod:`._eigen` (no host synchronisation; the compiled solves run the same sweeps)."""
    diag = gram.diagonal(dim1=-2, dim2=-1)
    active = diag > 0
    root = torch.where(active, diag, 1.0).sqrt()
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    both = active[..., :, None] & active[..., None, :]
    correlation = torch.where(both, gram / (root[..., :, None] * root[..., None, :]), eye)
    values, _ = symmetric_eigen(correlation, DEFAULT_SWEEPS)
    shift = (-values.amin(-1)).clamp_min(0.0)
    return gram + torch.diag_embed(shift[..., None] * diag)


def power_equation(gram: torch.Tensor, p: float, iterations: int = DEFAULT_NEWTON_ITERATIONS) -> torch.Tensor:
    """``w > 0`` with ``G w = w^(-p)`` for PSD ``gram [B, K, K]`` (float64, :func:`nearest_psd`'s
    output); 0 where ``G_ii = 0``."""
    k = gram.shape[-1]
    eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
    active = gram.diagonal(dim1=-2, dim2=-1) > 0
    g = torch.where(active[..., :, None] & active[..., None, :], gram, eye)
    diag = g.diagonal(dim1=-2, dim2=-1)
    ridged = g + torch.diag_embed(RIDGE * diag)
    w = diag.pow(-1.0 / (1.0 + p))
    curvature = (w * (g @ w[..., None])[..., 0]).sum(-1, keepdim=True)
    pull = w.pow(1.0 - p).sum(-1, keepdim=True)
    w = w * torch.where(curvature > 0, (pull / torch.where(curvature > 0, curvature, 1.0)).pow(1.0 / (1.0 + p)), 1.0)
    halvings = 0.5 ** torch.arange(_HALVINGS, dtype=gram.dtype, device=gram.device)
    for _ in range(iterations):
        w = _newton_step(ridged, w, p, halvings)
    exact = w
    for _ in range(POLISH):
        exact = _newton_step(g, exact, p, halvings)
    solvable = (RIDGE * diag * w.pow(1.0 + p)).amax(-1, keepdim=True) <= SHARE
    return torch.where(active, torch.where(solvable, exact, w), 0.0)
