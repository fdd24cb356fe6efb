"""The coefficient solve for Triton: one program, segments in blocks of ``BLOCK_L``.

The same per-segment math as ``csrc/include/ltu_fast/solve_math.h`` (which Triton cannot
include), on ``[BLOCK_L, KP, KP]`` Gram tiles in float64: sum, PCGrad (fixed order or the hashed
random order of ``ltu_fast.aggregators.pcgrad_visit_orders``), one-sided projection, MGDA (K = 2
closed form, Frank-Wolfe beyond). One program, so the skip flag, the update rule's per-tensor rows
(its ``prepare``, tensors in blocks of ``BLOCK_T``), the skip count and PCGrad's step counter are
written after every segment was seen: a capturable single launch.
"""

import triton
import triton.language as tl

# ltu_fast.aggregators.SOLVER_* kinds (csrc/include/ltu_fast/codes.h AggregatorKind; tests/test_codes.py)
SUM, PCGRAD, PROJECT, MGDA = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2), tl.constexpr(3)
# Columns of SegmentPlan.table (codes.h TableColumn)
TABLE_COLUMNS = ("offset", "numel", "segment", "group")
TABLE_GROUP, TABLE_WIDTH = tl.constexpr(TABLE_COLUMNS.index("group")), tl.constexpr(len(TABLE_COLUMNS))


@triton.jit
def _mix32(x):
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & 0xFFFFFFFF
    return x ^ (x >> 16)


@triton.jit
def _visit(i, t, step, seed, ks, K: tl.constexpr, RANDOM: tl.constexpr):
    """The objective objective ``i`` visits ``t``-th: rank ``t`` among the others by their key."""
    j = ks.to(tl.int64)
    if RANDOM:
        h = _mix32(_mix32(_mix32(i * 16 + j) ^ (step & 0xFFFFFFFF)) ^ seed)
        key = (h << 4) | j
    else:
        key = j
    key = tl.where((ks == i) | (ks >= K), 1 << 40, key)
    rank = tl.sum((key[None, :] < key[:, None]).to(tl.int32), axis=1)
    return tl.sum(tl.where(rank == t, ks, 0), axis=0)


@triton.jit
def _safe_ratio(num, den):
    return tl.where(den > 0, num / tl.where(den > 0, den, 1.0), 0.0)


@triton.jit
def _segment_block(g, diag, ks, step, seed, protect, iterations,
                   K: tl.constexpr, KIND: tl.constexpr, RANDOM: tl.constexpr):
    """Coefficients [BLOCK_L, KP] of the (weighted) Gram tile ``g`` [BLOCK_L, KP, KP]."""
    valid = (ks < K)[None, :]
    ones = tl.where(valid, 1.0, 0.0) + tl.zeros_like(diag)
    if KIND == SUM:
        beta = ones
    elif KIND == PCGRAD:
        beta = tl.zeros_like(diag)
        for i in tl.static_range(K):
            c = tl.where(ks[None, :] == i, 1.0, 0.0) + tl.zeros_like(diag)
            for t in tl.static_range(K - 1):
                j = _visit(i, t, step, seed, ks, K, RANDOM)
                col = tl.sum(tl.where(ks[None, None, :] == j, g, 0.0), axis=2)  # [BL, KP]: G[:, m, j]
                dot = tl.sum(c * col, axis=1)
                g_jj = tl.sum(tl.where(ks[None, :] == j, diag, 0.0), axis=1)
                proj = tl.minimum(_safe_ratio(dot, g_jj), 0.0)
                c = c - tl.where(ks[None, :] == j, proj[:, None], 0.0)
            beta = beta + c
    elif KIND == PROJECT:
        col = tl.sum(tl.where(ks[None, None, :] == protect, g, 0.0), axis=2)
        g_rr = tl.sum(tl.where(ks[None, :] == protect, diag, 0.0), axis=1)
        steps = tl.where(valid & (ks[None, :] != protect), tl.minimum(_safe_ratio(col, g_rr[:, None]), 0.0), 0.0)
        beta = ones - tl.where(ks[None, :] == protect, tl.sum(steps, axis=1)[:, None], 0.0)
    elif K == 1:
        beta = ones
    elif K == 2:
        g11 = tl.sum(tl.where(ks[None, :] == 0, diag, 0.0), axis=1)
        g22 = tl.sum(tl.where(ks[None, :] == 1, diag, 0.0), axis=1)
        g12 = tl.sum(tl.sum(tl.where((ks[None, :, None] == 0) & (ks[None, None, :] == 1), g, 0.0), axis=2), axis=1)
        den = g11 + g22 - 2.0 * g12
        a = tl.where(den > 0, tl.minimum(tl.maximum(_safe_ratio(g22 - g12, den), 0.0), 1.0), 0.5)
        beta = tl.where(ks[None, :] == 0, a[:, None], 1.0 - a[:, None]) * ones
    else:
        beta = ones / K
        for _ in range(iterations):
            ga = tl.sum(g * beta[:, None, :], axis=2)  # <g_i, v>
            vv = tl.sum(beta * ga, axis=1)
            masked = tl.where(valid, ga, float("inf"))
            vt = tl.min(masked, axis=1)
            t = tl.min(tl.where(masked == vt[:, None], ks[None, :], K), axis=1)  # first minimum
            tt = tl.sum(tl.where(ks[None, :] == t[:, None], diag, 0.0), axis=1)
            gamma = tl.minimum(tl.maximum(_safe_ratio(vv - vt, vv - 2.0 * vt + tt), 0.0), 1.0)
            beta = (1.0 - gamma[:, None]) * beta + tl.where(ks[None, :] == t[:, None], gamma[:, None], 0.0)
    return beta


@triton.jit
def _prepare_rows(ts, tm, skip, tensors_ptr, group_ptr, state_ptr, touched_ptr, rows_ptr, PREPARE: tl.constexpr,
                  C: tl.constexpr, S: tl.constexpr, R: tl.constexpr, HAS_TOUCHED: tl.constexpr):
    """Tensors ``ts``: active = touched and not skipped; the rule's ``prepare`` advances their state
    and gives their rows (``active`` first), stored as float32 (ltu_fast.rules.prepare_rows)."""
    t64 = ts.to(tl.int64)
    grp = tl.load(tensors_ptr + t64 * TABLE_WIDTH + TABLE_GROUP, mask=tm, other=0)
    active = tm & ~skip
    if HAS_TOUCHED:
        active = active & (tl.load(touched_ptr + ts, mask=tm, other=0.0) != 0.0)
    group = ()
    for c in tl.static_range(C):
        group = group + (tl.load(group_ptr + grp * C + c, mask=tm, other=0.0).to(tl.float64),)
    state = ()
    for c in tl.static_range(S):
        state = state + (tl.load(state_ptr + t64 * S + c, mask=tm, other=0.0),)
    row, state = PREPARE(group, state, active)
    for c in tl.static_range(S):
        tl.store(state_ptr + t64 * S + c, state[c], mask=tm)
    tl.store(rows_ptr + t64 * R, tl.where(active, 1.0, 0.0), mask=tm)
    for c in tl.static_range(R - 1):
        tl.store(rows_ptr + t64 * R + 1 + c, row[c].to(tl.float32), mask=tm)


@triton.jit
def solve_kernel(gram_ptr, num_segments, protect, iterations, seed, counter_ptr, weights_ptr, grad_scale_ptr,
                 found_inf_ptr, beta_ptr, flag_ptr, skipped_ptr, tensors_ptr, num_tensors, group_ptr, state_ptr,
                 touched_ptr, rows_ptr, K: tl.constexpr, KP: tl.constexpr, KIND: tl.constexpr, RANDOM: tl.constexpr,
                 HAS_WEIGHTS: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_FOUND_INF: tl.constexpr,
                 HAS_SKIPPED: tl.constexpr, PREPARE: tl.constexpr, C: tl.constexpr, S: tl.constexpr, R: tl.constexpr,
                 HAS_TOUCHED: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_T: tl.constexpr):
    """``PREPARE``: the update rule's ``prepare`` (``kernels/rules/<rule>.py``; None: no rule), with
    ``C`` group, ``S`` state and ``R`` row columns."""
    ks = tl.arange(0, KP)
    kmask = ks < K
    step = tl.load(counter_ptr).to(tl.int64) if RANDOM else 0
    if HAS_WEIGHTS:
        w = tl.load(weights_ptr + ks, mask=kmask, other=0.0).to(tl.float64)
    else:
        w = tl.where(kmask, 1.0, 0.0).to(tl.float64)
    tile = kmask[:, None] & kmask[None, :]
    bad = tl.zeros((BLOCK_L,), dtype=tl.int32)
    for s0 in range(0, num_segments, BLOCK_L):
        ls = s0 + tl.arange(0, BLOCK_L)
        lmask = ls < num_segments
        m3 = lmask[:, None, None] & tile[None, :, :]
        raw = tl.load(gram_ptr + ls.to(tl.int64)[:, None, None] * (K * K) + ks[None, :, None] * K + ks[None, None, :],
                      mask=m3, other=0.0).to(tl.float64)
        g = raw * w[None, :, None] * w[None, None, :]
        diag = tl.sum(tl.where(ks[None, :, None] == ks[None, None, :], g, 0.0), axis=2)
        beta = _segment_block(g, diag, ks, step, seed, protect, iterations, K, KIND, RANDOM) * w[None, :]
        bad += tl.sum(tl.sum(tl.where(m3 & (raw - raw != 0.0), 1, 0), axis=2), axis=1)
        m2 = lmask[:, None] & kmask[None, :]
        bad += tl.sum(tl.where(m2 & (beta - beta != 0.0), 1, 0), axis=1)
        if HAS_SCALE:
            beta = beta / tl.load(grad_scale_ptr).to(tl.float64)
        tl.store(beta_ptr + ls.to(tl.int64)[:, None] * K + ks[None, :], beta.to(tl.float32), mask=m2)
    skip = tl.sum(bad, axis=0) > 0
    if HAS_FOUND_INF:
        skip = skip | (tl.load(found_inf_ptr) != 0.0)
    tl.store(flag_ptr, tl.where(skip, 1.0, 0.0))
    if PREPARE is not None:
        for t0 in range(0, num_tensors, BLOCK_T):
            ts = t0 + tl.arange(0, BLOCK_T)
            _prepare_rows(ts, ts < num_tensors, skip, tensors_ptr, group_ptr, state_ptr, touched_ptr, rows_ptr,
                          PREPARE, C, S, R, HAS_TOUCHED)
    if HAS_SKIPPED:
        tl.store(skipped_ptr, tl.load(skipped_ptr) + skip.to(tl.int64))
    if RANDOM:
        tl.store(counter_ptr, step + 1)
