"""The active-set blocks of ``ltu_fast/aggregators/_qp.py`` on a block of segments (``csrc/include/
ltu_fast/aggregators/qp.h`` in C++): MGDA, UPGrad, DualProj and CAGrad share them.

Tiles are ``[BLOCK_L, KP, KP]`` (matrices) and ``[BLOCK_L, KP]`` (vectors, free sets) in float64; the
padding columns ``>= K`` are never free, so they stay 0. Loops are runtime ``range`` loops over K or
the trip count with masked selects (no unrolled K^3 code: sm_90 compile time stays small).
"""

import triton
import triton.language as tl

from .common import column, diagonal, entry

TOL = tl.constexpr(1e-12)  # _qp._TOL: pricing tolerance relative to the problem's scale
INF = tl.constexpr(float("inf"))


@triton.jit
def _row(a, ks, j):
    """``a[:, j, :]``: ``[BLOCK_L, KP]``."""
    return tl.sum(tl.where(ks[None, :, None] == j, a, 0.0), axis=1)


@triton.jit
def matvec(a, x):
    return tl.sum(a * x[:, None, :], axis=2)


@triton.jit
def masked_cholesky(a, free, ks, K: tl.constexpr):
    """Lower Cholesky factor of ``a`` with the rows and columns off F (and the padding) replaced by
    the identity (``_qp.solve_on``), without a status check, as ``torch.linalg.cholesky_ex`` (LAPACK
    potf2): from a pivot that is not positive on, the pivot unrooted and the input's columns."""
    eye = (ks[:, None] == ks[None, :])[None, :, :]
    a = tl.where(free[:, :, None] & free[:, None, :], a, tl.where(eye, 1.0, 0.0))
    low = tl.where(eye & (ks >= K)[None, :, None], 1.0, 0.0) + a * 0.0
    failed = tl.max(tl.where(free, 1, 1), axis=1) == 0  # False, per segment
    for j in range(K):
        dots = tl.sum(low * _row(low, ks, j)[:, None, :], axis=2)  # sum_p L[i, p] L[j, p], p < j
        raw = column(a, ks, j)
        v = raw - dots
        d = entry(v, ks, j)
        bad = failed | ~(d > 0)
        root = tl.sqrt(d)
        col = tl.where(ks[None, :] == j, root[:, None], tl.where(ks[None, :] > j, v / root[:, None], 0.0))
        kept = tl.where(ks[None, :] == j, tl.where(failed, entry(raw, ks, j), d)[:, None],
                        tl.where(ks[None, :] > j, raw, 0.0))
        low = tl.where(ks[None, None, :] == j, tl.where(bad[:, None], kept, col)[:, :, None], low)
        failed = bad
    return low


@triton.jit
def cholesky_solve(low, rhs, free, ks, K: tl.constexpr):
    """``x[F] = A[F, F]^-1 rhs[F]``, 0 off F, from ``low = masked_cholesky(A, free)``."""
    y = tl.where(free, rhs, 0.0)
    for i in range(K):  # L y = rhs
        row = _row(low, ks, i)
        done = tl.sum(tl.where(ks[None, :] < i, row * y, 0.0), axis=1)
        y = tl.where(ks[None, :] == i, ((entry(y, ks, i) - done) / entry(row, ks, i))[:, None], y)
    for t in range(K):  # L^T x = y
        i = K - 1 - t
        col = column(low, ks, i)
        done = tl.sum(tl.where(ks[None, :] > i, col * y, 0.0), axis=1)
        y = tl.where(ks[None, :] == i, ((entry(y, ks, i) - done) / entry(col, ks, i))[:, None], y)
    return y


@triton.jit
def ratio_step(x, d, free, limit):
    """``_qp._ratio_step``: ``(x + t d, blocked, reached)`` with ``t = min(limit, first bound of x[F] >= 0)``."""
    shrinking = free & (d < 0)
    ratio = tl.where(shrinking, x / tl.where(shrinking, -d, 1.0), INF)
    first = tl.min(ratio, axis=1)
    reached = first >= limit
    t = tl.where(reached, limit, first)
    blocked = shrinking & (ratio <= t[:, None]) & ~reached[:, None]
    return tl.where(blocked, 0.0, x + t[:, None] * d), blocked, reached


@triton.jit
def price(reduced, free, reached, tol, ks, K: tl.constexpr):
    """``_qp._price``: the free set with the allowed coordinate (off F, where ``reached``) of most
    negative reduced gradient added when below ``-tol`` (first minimum, as torch.argmin)."""
    allowed = ~free & reached[:, None] & (ks < K)[None, :]
    masked = tl.where(allowed, reduced, INF)
    lowest = tl.min(masked, axis=1)
    best = tl.min(tl.where(masked == lowest[:, None], ks[None, :], K), axis=1)
    return free | ((ks[None, :] == best[:, None]) & (lowest < -tol)[:, None])


@triton.jit
def nonnegative_qp(q_matrix, q, iterations, ks, K: tl.constexpr):
    """``_qp.nonnegative_qp``: ``argmin_{x >= 0} x^T Q x / 2 + q^T x`` for positive definite Q."""
    x = q * 0.0
    free = x > 0.0  # empty
    tol = TOL * (tl.max(tl.abs(diagonal(q_matrix, ks)), axis=1) + tl.max(tl.abs(q), axis=1))
    for _ in range(iterations):
        z = cholesky_solve(masked_cholesky(q_matrix, free, ks, K), -q, free, ks, K)
        moved, blocked, reached = ratio_step(x, z - x, free, 1.0)
        x = tl.where(reached[:, None], z, moved)
        free = free & ~blocked
        free = price(matvec(q_matrix, x) + q, free, reached, tol, ks, K)
    return x


@triton.jit
def dual_cone(q_matrix, u, iterations, ks, K: tl.constexpr):
    """``_qp.dual_cone_weights`` for one bound per segment: ``u + argmin_{x >= 0} x^T Q x / 2 + (Q u)^T x``."""
    return u + nonnegative_qp(q_matrix, matvec(q_matrix, u), iterations, ks, K)


@triton.jit
def trace_normalized(g, ks, eps):
    """``base.trace_normalized``: ``G / trace(G)``, 0 where the trace is below eps or not positive."""
    trace = tl.sum(diagonal(g, ks), axis=1)[:, None, None]
    small = (trace < eps) | (trace <= 0)
    return tl.where(small, 0.0, g / tl.where(small, 1.0, trace))


@triton.jit
def regularized(g, ks, norm_eps, reg_eps, K: tl.constexpr):
    """``_qp.regularized``: torchjd's ``G / trace(G) + reg_eps I`` (UPGrad, DualProj)."""
    eye = (ks[:, None] == ks[None, :]) & (ks < K)[None, :]
    return trace_normalized(g, ks, norm_eps) + tl.where(eye[None, :, :], reg_eps, 0.0)


@triton.jit
def simplex_minimize(gram, b, phi, iterations, ks, K: tl.constexpr):
    """``_qp.simplex_minimize``: ``argmin_{w in simplex} b^T w + phi sqrt(w^T G w)`` (``phi [BLOCK_L]``),
    faces in closed form from one Cholesky of ``(G + 11^T + 1e-13 I)[F, F]`` with two right-hand sides."""
    valid = (ks < K)[None, :]
    eye = (ks[:, None] == ks[None, :])[None, :, :]
    shifted = gram + 1.0 + tl.where(eye, 1e-13, 0.0)
    diag = tl.maximum(diagonal(gram, ks), 0.0)
    start_value = tl.where(valid, b + phi[:, None] * tl.sqrt(diag), INF)
    lowest = tl.min(start_value, axis=1)
    start = tl.min(tl.where(start_value == lowest[:, None], ks[None, :], K), axis=1)
    free = ks[None, :] == start[:, None]
    x = tl.where(free, 1.0, b * 0.0)
    ones = tl.where(valid, 1.0, b * 0.0)
    tol = TOL * (tl.max(tl.abs(b), axis=1) + phi * tl.max(diag, axis=1))
    tiny = 1e-30
    for _ in range(iterations):
        low = masked_cholesky(shifted, free, ks, K)
        y0 = cholesky_solve(low, ones, free, ks, K)
        y1 = cholesky_solve(low, b, free, ks, K)
        total = tl.sum(y0, axis=1)
        m = tl.sum(y1, axis=1) / total
        r = m[:, None] * y0 - y1
        rho = -tl.sum(b * r, axis=1)
        linear = rho > tiny  # the linear term moves the face optimum off its min-norm point
        bounded = ~linear | (rho < phi * phi)
        n0 = tl.maximum(1.0 / total - 1.0, 0.0)
        s = tl.sqrt(n0 / tl.where(linear & bounded, 1.0 - rho / (phi * phi), 1.0))
        along = tl.where(linear & bounded, s / tl.where(phi > 0, phi, 1.0), 0.0)
        z = y0 / total[:, None] + along[:, None] * r
        direction = tl.where(bounded[:, None], z - x, r)
        moved, blocked, reached = ratio_step(x, direction, free, tl.where(bounded, 1.0, INF))
        x = tl.where(reached[:, None], z, moved)
        free = free & ~blocked
        gx = matvec(gram, x)
        xgx = tl.sum(x * gx, axis=1)
        norm = tl.sqrt(tl.maximum(xgx, 0.0))
        reduced = norm[:, None] * (b - tl.sum(b * x, axis=1)[:, None]) + phi[:, None] * (gx - xgx[:, None])
        free = price(reduced, free, reached, tol, ks, K)
    return x
