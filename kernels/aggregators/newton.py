"""Damped Newton for ``G w = w^(-p)`` on ``[BLOCK_L, KP, KP]`` tiles (Nash-MTL, FairGrad).

Semantics: ``ltu_fast/aggregators/_newton.py``; the same steps as ``csrc/include/ltu_fast/aggregators/newton.h``
(whose comments say why): start point, ridge, trip counts, halvings and their first accepted step, the
decrement switch, the solvable test, zero-gradient objectives as identity rows; the Cholesky solve is
``qp.py``'s (LAPACK's potf2 on a failed pivot too) on the whole system.
The padding columns (``>= K``) are identity rows with ``w = 1`` and a zero gradient, left out of every
sum. Both exact early stops of the C++ code (the first accepted halving; a phase once its iterates
repeat) are ``while`` loops here, so a block does the work its slowest segment needs.
"""

import triton
import triton.language as tl

from ..libm import pow as _pow
from .common import diagonal
from .jacobi import symmetric_eigen
from .qp import cholesky_solve, masked_cholesky, matvec

RIDGE = tl.constexpr(1e-10)  # _newton.RIDGE
SHARE = tl.constexpr(1e-2)  # _newton.SHARE
POLISH = tl.constexpr(4)  # _newton.POLISH
HALVINGS = tl.constexpr(30)  # _newton._HALVINGS
PSD_SWEEPS = tl.constexpr(10)  # _eigen.DEFAULT_SWEEPS, as _newton.nearest_psd
TINY = tl.constexpr(2.2250738585072014e-308)  # the smallest normal double (torch.finfo(float64).tiny)


@triton.jit
def torch_pow(x, e):
    """``x ** e`` for a scalar e as torch's pow(Tensor, Scalar) computes it (its special cases first)."""
    r = _pow(x, e + tl.zeros_like(x))
    r = tl.where(e == 2.0, x * x, r)
    r = tl.where(e == 3.0, x * x * x, r)
    r = tl.where(e == 0.5, tl.sqrt(x), r)
    r = tl.where(e == -0.5, 1.0 / tl.sqrt(x), r)
    r = tl.where(e == -1.0, 1.0 / x, r)
    r = tl.where(e == -2.0, 1.0 / (x * x), r)
    r = tl.where(e == 1.0, x, r)
    return tl.where(e == 0.0, 1.0, r)


@triton.jit
def _barrier(w, p, valid, ONE: tl.constexpr):
    """``sum_i h(w_i)``, ``h' = w^(-p)``, over the valid columns, at w clamped to TINY (NaN stays)."""
    x = tl.where(w < TINY, TINY, w)
    if ONE:
        h = tl.log(x)
    else:
        h = tl.where(p == 1.0, tl.log(x), torch_pow(x, 1.0 - p) / (1.0 - p))
    return tl.sum(tl.where(valid, h, 0.0), axis=1)


@triton.jit
def _newton_step(g, w, p, valid, ks, K: tl.constexpr, ONE: tl.constexpr):
    """One damped Newton step on ``f(w) = w^T g w / 2 - barrier(w)``."""
    gw = matvec(g, w)
    if ONE:
        grad = gw - 1.0 / w
        curve = 1.0 / (w * w)
    else:
        grad = gw - torch_pow(w, -p)
        curve = p * torch_pow(w, -p - 1.0)
    free = valid & (tl.zeros_like(w) == 0.0)  # [BLOCK_L, KP]: the whole system
    grad = tl.where(free, grad, 0.0)
    eye = ks[None, :, None] == ks[None, None, :]
    low = masked_cholesky(g + tl.where(eye, curve[:, :, None], 0.0), free, ks, K)
    d = -cholesky_solve(low, grad, free, ks, K)
    decrement = -tl.sum(grad * d, axis=1)
    shrinking = d < 0.0
    boundary = tl.min(tl.where(shrinking, w / tl.where(shrinking, -d, 1.0), float("inf")), axis=1)
    t0 = tl.minimum(0.99 * boundary, 1.0)
    wgw = tl.sum(tl.where(valid, w * gw, 0.0), axis=1)
    dgw = tl.sum(tl.where(valid, d * gw, 0.0), axis=1)
    dgd = tl.sum(tl.where(valid, d * matvec(g, d), 0.0), axis=1)
    f0 = 0.5 * wgw - _barrier(w, p, valid, ONE)
    quadratic = decrement <= 1e-8 * (1.0 + tl.abs(f0))
    t = tl.where(quadratic, t0, 0.0)
    searching = ~quadratic
    halving = 1.0
    s = 0
    while (s < HALVINGS) & (tl.max(searching.to(tl.int32), axis=0) > 0):  # the first accepted halving
        step = t0 * halving
        f = 0.5 * wgw + step * dgw + 0.5 * step * step * dgd - _barrier(w + step[:, None] * d, p, valid, ONE)
        accept = searching & (f <= f0 - 1e-4 * step * decrement)
        t = tl.where(accept, step, t)
        searching = searching & ~accept
        halving = halving * 0.5
        s += 1
    return w + t[:, None] * d


@triton.jit
def _phase(g, w, p, count, valid, ks, K: tl.constexpr, ONE: tl.constexpr):
    """``count`` Newton steps; a segment whose iterates repeat (``w_{n+1}`` equals ``w_n`` or ``w_{n-1}``)
    is done: its last iterate follows from the parity of the steps left (newton.h)."""
    older = w
    done = tl.sum(tl.zeros_like(w), axis=1) != 0.0  # [BLOCK_L] False
    it = 0
    while (it < count) & (tl.min(done.to(tl.int32), axis=0) == 0):
        new = _newton_step(g, w, p, valid, ks, K, ONE)
        fixed = tl.min(tl.where(new == w, 1, 0), axis=1) > 0
        cycle = tl.min(tl.where(new == older, 1, 0), axis=1) > 0
        ending = ~done & (fixed | cycle)
        keep = done | (ending & ((count - it - 1) % 2 == 1))  # an odd number of steps left: the other one
        older = w
        w = tl.where(keep[:, None], w, new)
        done = done | ending
        it += 1
    return w


@triton.jit
def nearest_psd(gram, ks, K: tl.constexpr):
    """``G + s diag(G)``, ``s = max(0, -lambda_min)`` of the correlation matrix (rows with ``G_ii = 0``
    as identity rows; 0 stays 0 in the padding): float32 rounding of a rank-deficient Gram made PSD again."""
    valid = (ks < K)[None, :]
    eye = ks[None, :, None] == ks[None, None, :]
    diag = diagonal(gram, ks)
    active = valid & (diag > 0.0)
    root = tl.sqrt(tl.where(active, diag, 1.0))
    both = active[:, :, None] & active[:, None, :]
    inside = valid[:, :, None] & valid[:, None, :]
    correlation = tl.where(both, gram / (root[:, :, None] * root[:, None, :]), tl.where(eye & inside, 1.0, 0.0))
    values, _ = symmetric_eigen(correlation, ks, PSD_SWEEPS, K)
    lowest = tl.min(tl.where(valid, values, float("inf")), axis=1)
    shift = tl.where(-lowest < 0.0, 0.0, -lowest)  # NaN stays NaN
    return gram + tl.where(eye, (shift[:, None] * diag)[:, :, None], 0.0)


@triton.jit
def power_equation(gram, ks, p, iterations, K: tl.constexpr, ONE: tl.constexpr):
    """``w > 0`` with ``G w = w^(-p)`` per segment (``ONE``: p is 1) for a PSD ``gram`` (``nearest_psd``'s),
    0 where ``G_ii = 0``: ``[BLOCK_L, KP]``."""
    valid = (ks < K)[None, :]
    eye = ks[None, :, None] == ks[None, None, :]
    active = valid & (diagonal(gram, ks) > 0.0)
    g = tl.where(active[:, :, None] & active[:, None, :], gram, tl.where(eye, 1.0, 0.0))
    diag = diagonal(g, ks)
    ridged = g + tl.where(eye, (diag * RIDGE)[:, :, None], 0.0)
    if ONE:
        w = 1.0 / tl.sqrt(diag)
    else:
        w = torch_pow(diag, -1.0 / (1.0 + p))
    curvature = tl.sum(tl.where(valid, w * matvec(g, w), 0.0), axis=1)
    if ONE:
        pull = tl.sum(tl.where(valid, 1.0, 0.0) + 0.0 * w, axis=1)
        factor = tl.sqrt(pull / tl.where(curvature > 0.0, curvature, 1.0))
    else:
        pull = tl.sum(tl.where(valid, torch_pow(w, 1.0 - p), 0.0), axis=1)
        factor = torch_pow(pull / tl.where(curvature > 0.0, curvature, 1.0), 1.0 / (1.0 + p))
    w = tl.where(valid, w * tl.where(curvature > 0.0, factor, 1.0)[:, None], 1.0)
    w = _phase(ridged, w, p, iterations, valid, ks, K, ONE)
    exact = _phase(g, w, p, POLISH, valid, ks, K, ONE)
    if ONE:
        share = diag * RIDGE * (w * w)
    else:
        share = diag * RIDGE * torch_pow(w, 1.0 + p)
    solvable = tl.max(tl.where(valid, share, 0.0), axis=1) <= SHARE
    return tl.where(active, tl.where(solvable[:, None], exact, w), 0.0)
