"""GradVac (``aggregators/gradvac.h``): I0 = random order, I1 = seed (as PCGrad's); floats[0] = the EMA
rate, floats[1] = eps; state: the target cosines ``[L, K * K]`` (row i, column j at ``i * K + j``)."""

import triton
import triton.language as tl

from .common import column, diagonal, entry, visit


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    rate, eps = tl.load(floats_ptr), tl.load(floats_ptr + 1)
    rows, cols = ks[None, :, None], ks[None, None, :]
    where = lmask[:, None, None] & (rows < K) & (cols < K)
    address = state_ptr + ls.to(tl.int64)[:, None, None] * (K * K) + rows * K + cols
    targets = tl.load(address, mask=where, other=0.0)
    diag = diagonal(g, ks)
    norms = tl.sqrt(tl.where(diag < 0.0, 0.0, diag))
    beta = tl.zeros_like(diag)
    for i in range(K):
        c = tl.where(ks[None, :] == i, 1.0, 0.0) + tl.zeros_like(diag)  # coefficients of the modified g_i
        cg = column(g, ks, i)  # <modified g_i, g_j> for every j
        row = tl.sum(tl.where(rows == i, targets, 0.0), axis=1)  # this objective's targets
        for t in range(K - 1):
            j = visit(i, t, I0, step, I1, ks, K)
            norm2 = tl.sum(c * cg, axis=1)
            norm_i = tl.sqrt(tl.where(norm2 < 0.0, 0.0, norm2))
            norm_j = entry(norms, ks, j)
            ratio = entry(cg, ks, j) / (norm_i * norm_j + eps)
            phi = tl.where(ratio < -1.0, -1.0, tl.where(ratio > 1.0, 1.0, ratio))  # a cosine (NaN stays)
            hat = entry(row, ks, j)
            root_hat = tl.sqrt(tl.where(1.0 - hat * hat < 0.0, 0.0, 1.0 - hat * hat))
            root_phi = tl.sqrt(tl.where(1.0 - phi * phi < 0.0, 0.0, 1.0 - phi * phi))
            add = norm_i * (hat * root_phi - phi * root_hat) / (norm_j * root_hat + eps)
            add = tl.where(phi < hat, add, 0.0)
            c = c + tl.where(ks[None, :] == j, add[:, None], 0.0)
            cg = cg + add[:, None] * column(g, ks, j)
            row = tl.where(ks[None, :] == j, ((1.0 - rate) * hat + rate * phi)[:, None], row)
        targets = tl.where(rows == i, row[:, None, :], targets)
        beta = beta + c
    tl.store(address, targets, mask=where)
    return beta
