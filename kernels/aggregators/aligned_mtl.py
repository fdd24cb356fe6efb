"""Aligned-MTL (``aggregators/aligned_mtl.h``): I0 = Jacobi sweeps, I1 = scale mode (0 min, 1 median,
2 rmse); floats[0] = eps; preference at PREFERENCE + j."""

import triton
import triton.language as tl

from .common import PREFERENCE
from .jacobi import eigen_apply, symmetric_eigen


@triton.jit
def segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K: tl.constexpr, KP: tl.constexpr):
    valid = (ks < K)[None, :]
    p = tl.load(floats_ptr + PREFERENCE + ks, mask=ks < K, other=0.0)[None, :]
    values, vectors = symmetric_eigen(g, ks, I0, K)
    largest = tl.max(tl.where(valid, values, -float("inf")), axis=1)
    keep = valid & (values > (largest * K * tl.load(floats_ptr))[:, None])
    rank = tl.sum(keep.to(tl.int32), axis=1)
    ascending = tl.where(keep, values, float("inf"))
    # position of each kept eigenvalue among the kept ones, ascending (ties by index: equal values)
    before = (ascending[:, None, :] < ascending[:, :, None]) | \
        ((ascending[:, None, :] == ascending[:, :, None]) & (ks[None, None, :] < ks[None, :, None]))
    position = tl.sum((before & keep[:, None, :]).to(tl.int32), axis=2)
    median = tl.sum(tl.where(keep & (position == ((rank - 1) // 2)[:, None]), values, 0.0), axis=1)
    mean = tl.sum(tl.where(keep, values, 0.0), axis=1) / tl.maximum(rank, 1)
    scale = tl.where(I1 == 1, median, tl.where(I1 == 2, mean, tl.min(ascending, axis=1)))
    root = tl.sqrt(tl.where(scale < 0.0, 0.0, scale))
    factor = tl.where(keep, root[:, None] * (1.0 / tl.sqrt(tl.where(keep, values, 1.0))), 0.0)
    return tl.where((rank > 0)[:, None], eigen_apply(vectors, factor, p), p + tl.zeros_like(values))
