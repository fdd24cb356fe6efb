"""Blocks every Triton aggregator shares, on a block of segments ``[BLOCK_L, KP(, KP)]`` in float64.

``segment`` contract (each ``kernels/aggregators/<name>.py``)::

    segment(g, ks, step, I0, I1, I2, I3, floats_ptr, state_ptr, ls, lmask, K, KP) -> beta [BLOCK_L, KP]

``g`` is the weighted Gram tile (0 outside K x K), ``ks = tl.arange(0, KP)``, ``step`` the aggregator's
counter value (0 without one), ``I0..I3`` the spec's int slots, ``floats_ptr`` its float64 slots
(preference at ``PREFERENCE + j``), ``state_ptr`` the float64 ``[L, S]`` state (rows ``ls`` where
``lmask``; a dummy when stateless); beta is 0 in the padding columns (the same math as
``csrc/include/ltu_fast/aggregators/<name>.h``).
"""

import triton
import triton.language as tl

PREFERENCE = tl.constexpr(4)  # ltu_fast.aggregators.SPEC_PREFERENCE (tests/test_codes.py)


@triton.jit
def safe_ratio(num, den):
    return tl.where(den > 0, num / tl.where(den > 0, den, 1.0), 0.0)


@triton.jit
def clamp01(x):
    return tl.minimum(tl.maximum(x, 0.0), 1.0)


@triton.jit
def column(g, ks, j):
    """``g[:, :, j]`` for a (scalar or per-segment ``[BLOCK_L]``) index j: ``[BLOCK_L, KP]``."""
    return tl.sum(tl.where(ks[None, None, :] == j, g, 0.0), axis=2)


@triton.jit
def entry(v, ks, j):
    """``v[:, j]`` of a ``[BLOCK_L, KP]`` tile for a scalar or per-segment ``[BLOCK_L, 1]`` index j."""
    return tl.sum(tl.where(ks[None, :] == j, v, 0.0), axis=1)


@triton.jit
def diagonal(g, ks):
    return tl.sum(tl.where(ks[None, :, None] == ks[None, None, :], g, 0.0), axis=2)


@triton.jit
def ones(g, ks, K: tl.constexpr):
    """1 in the K valid columns, 0 in the padding: ``[BLOCK_L, KP]``."""
    return tl.where((ks < K)[None, :], 1.0, 0.0) + tl.zeros_like(tl.sum(g, axis=2))  # no NaN from g


@triton.jit
def mix32(x):
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & 0xFFFFFFFF
    return x ^ (x >> 16)


@triton.jit
def visit(i, t, random, step, seed, ks, K: tl.constexpr):
    """The objective that objective ``i`` visits ``t``-th: rank ``t`` among the others by their key
    (ascending index, or the seeded hash of ``aggregators/visit_order.h`` when ``random``)."""
    j = ks.to(tl.int64)
    h = mix32(mix32(mix32(i * 16 + j) ^ (step & 0xFFFFFFFF)) ^ seed)
    key = tl.where(random != 0, (h << 4) | j, j)
    key = tl.where((ks == i) | (ks >= K), 1 << 40, key)
    rank = tl.sum((key[None, :] < key[:, None]).to(tl.int32), axis=1)
    return tl.sum(tl.where(rank == t, ks, 0), axis=0)
