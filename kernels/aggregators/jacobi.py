"""Jacobi sweeps on ``[BLOCK_L, KP, KP]`` symmetric tiles and the pseudo-inverse rule built on them
(``csrc/include/ltu_fast/aggregators/jacobi.h``, ``ltu_fast/aggregators/_eigen.py``): the same
round-robin schedule, rotation formulas and sweep count; the pairs of one round one after another
(the same (p, q) for every segment of the block, so a pair is a scalar, no per-segment gather)."""

import triton
import triton.language as tl

from .common import diagonal


@triton.jit
def _rotate(a, v, ks, p, q):
    """``A <- R^T A R``, ``V <- V R`` for the rotation zeroing ``a[:, p, q]`` (none where it is 0).
    Written out (no helper calls): the interpreter pays per call, and this runs sweeps * K^2 / 2 times."""
    rows, cols = ks[None, :, None], ks[None, None, :]
    at_p, at_q = ks[None, :] == p, ks[None, :] == q
    col_p, col_q = tl.sum(tl.where(cols == p, a, 0.0), axis=2), tl.sum(tl.where(cols == q, a, 0.0), axis=2)
    app, apq = tl.sum(tl.where(at_p, col_p, 0.0), axis=1), tl.sum(tl.where(at_p, col_q, 0.0), axis=1)
    aqq = tl.sum(tl.where(at_q, col_q, 0.0), axis=1)
    rotate = apq != 0.0
    tau = (aqq - app) / (2.0 * tl.where(rotate, apq, 1.0))
    t = tl.where(rotate, tl.where(tau >= 0.0, 1.0, -1.0) / (tl.abs(tau) + tl.sqrt(1.0 + tau * tau)), 0.0)
    c = 1.0 / tl.sqrt(1.0 + t * t)
    s = t * c
    cp, sp = c[:, None], s[:, None]
    pp = c * c * app - 2.0 * c * s * apq + s * s * aqq
    qq = s * s * app + 2.0 * c * s * apq + c * c * aqq
    pq = c * s * (app - aqq) + (c * c - s * s) * apq
    new_p = tl.where(at_p, pp[:, None], tl.where(at_q, pq[:, None], cp * col_p - sp * col_q))
    new_q = tl.where(at_p, pq[:, None], tl.where(at_q, qq[:, None], sp * col_p + cp * col_q))
    a = tl.where(cols == p, new_p[:, :, None], tl.where(cols == q, new_q[:, :, None], a))
    a = tl.where(rows == p, new_p[:, None, :], tl.where(rows == q, new_q[:, None, :], a))
    v_p, v_q = tl.sum(tl.where(cols == p, v, 0.0), axis=2), tl.sum(tl.where(cols == q, v, 0.0), axis=2)
    return a, tl.where(cols == p, (cp * v_p - sp * v_q)[:, :, None],
                       tl.where(cols == q, (sp * v_p + cp * v_q)[:, :, None], v))


@triton.jit
def symmetric_eigen(matrix, ks, sweeps, K: tl.constexpr):
    """Eigenvalues ``[BLOCK_L, KP]`` (unsorted, 0 in the padding) and eigenvectors (columns)
    ``[BLOCK_L, KP, KP]`` of the symmetric tiles ``matrix`` (0 outside K x K), after ``sweeps`` sweeps
    of K - 1 (K even) or K (K odd) rounds."""
    n: tl.constexpr = K + K % 2
    a = matrix
    v = tl.where((ks[:, None] == ks[None, :]) & (ks[:, None] < K), 1.0, 0.0)[None, :, :] + tl.zeros_like(matrix)
    if K > 1:
        for _ in range(sweeps):
            for round in range(n - 1):
                for slot in range(n // 2):
                    # circle method: player 0 stays, the others rotate one place per round
                    x = tl.where(slot == 0, 0, 1 + (slot - 1 - round + (n - 1)) % (n - 1))
                    y = 1 + (n - 2 - slot - round + (n - 1)) % (n - 1)  # position n - 1 - slot >= 1
                    # an odd K's bye pairs p with the padding column q = K: a[p, K] = 0, no rotation
                    a, v = _rotate(a, v, ks, tl.minimum(x, y), tl.maximum(x, y))
    return diagonal(a, ks), v


@triton.jit
def eigen_apply(v, scale, x):
    """``V diag(scale) V^T x`` per segment (``x`` ``[BLOCK_L, KP]`` or ``[1, KP]``)."""
    y = tl.sum(v * x[:, :, None], axis=1) * scale
    return tl.sum(v * y[:, None, :], axis=2)


@triton.jit
def pseudo_inverse_apply(values, v, rtol, x):
    """``A^+ x``: ``1 / lambda`` over ``|lambda| > rtol max |lambda|``, else 0 (torch.linalg.pinv's rule)."""
    magnitude = tl.abs(values)
    keep = magnitude > rtol * tl.max(magnitude, axis=1)[:, None]
    return eigen_apply(v, tl.where(keep, 1.0 / tl.where(keep, values, 1.0), 0.0), x)
