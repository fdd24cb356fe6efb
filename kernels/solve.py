"""The coefficient solve for Triton: one program, segments in blocks of ``BLOCK_L``.

The driver of ``csrc/include/ltu_fast/solve_segment.h`` (which Triton cannot include): it loads
``[BLOCK_L, KP, KP]`` Gram tiles in float64, applies the objective weights, calls the aggregator's
``SEGMENT`` function (``kernels/aggregators/<name>.py``, a constexpr: one compiled kernel per
aggregator, no dispatch at run time), checks finiteness and stores beta. One program, so the skip
flag, the update rule's per-tensor rows (its ``prepare``, tensors in blocks of ``BLOCK_T``), the skip
count and the aggregator's step counter are written after every segment was seen: a capturable
single launch.
"""

import triton
import triton.language as tl

# Columns of SegmentPlan.table (codes.h TableColumn)
TABLE_COLUMNS = ("offset", "numel", "segment", "group")
TABLE_GROUP, TABLE_WIDTH = tl.constexpr(TABLE_COLUMNS.index("group")), tl.constexpr(len(TABLE_COLUMNS))


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
def solve_kernel(gram_ptr, num_segments, I0, I1, I2, I3, floats_ptr, counter_ptr, agg_state_ptr, weights_ptr,
                 grad_scale_ptr, found_inf_ptr, beta_ptr, flag_ptr, skipped_ptr, tensors_ptr, num_tensors, group_ptr,
                 state_ptr, touched_ptr, rows_ptr, K: tl.constexpr, KP: tl.constexpr, SEGMENT: tl.constexpr,
                 HAS_COUNTER: tl.constexpr, HAS_WEIGHTS: tl.constexpr, HAS_SCALE: tl.constexpr, UNSCALE: tl.constexpr,
                 HAS_FOUND_INF: tl.constexpr, HAS_SKIPPED: tl.constexpr, PREPARE: tl.constexpr, C: tl.constexpr,
                 S: tl.constexpr, R: tl.constexpr, HAS_TOUCHED: tl.constexpr, BLOCK_L: tl.constexpr,
                 BLOCK_T: tl.constexpr):
    """``SEGMENT``: the aggregator's function (its slots ``I0..I3`` and ``floats_ptr``, its float64 state
    ``agg_state_ptr [L, S']``); ``PREPARE``: the update rule's ``prepare`` (``kernels/rules/<rule>.py``;
    None: no rule), with ``C`` group, ``S`` state and ``R`` row columns."""
    ks = tl.arange(0, KP)
    kmask = ks < K
    step = tl.load(counter_ptr).to(tl.int64) if HAS_COUNTER else tl.full((), 0, tl.int64)
    if HAS_WEIGHTS:
        w = tl.load(weights_ptr + ks, mask=kmask, other=0.0).to(tl.float64)
    else:
        w = tl.where(kmask, 1.0, 0.0).to(tl.float64)
    scale = tl.load(grad_scale_ptr).to(tl.float64) if HAS_SCALE else 1.0
    tile = kmask[:, None] & kmask[None, :]
    bad = tl.zeros((BLOCK_L,), dtype=tl.int32)
    for s0 in range(0, num_segments, BLOCK_L):
        ls = s0 + tl.arange(0, BLOCK_L)
        lmask = ls < num_segments
        m3 = lmask[:, None, None] & tile[None, :, :]
        raw = tl.load(gram_ptr + ls.to(tl.int64)[:, None, None] * (K * K) + ks[None, :, None] * K + ks[None, None, :],
                      mask=m3, other=0.0).to(tl.float64)
        if UNSCALE:  # an aggregator that is not scale invariant sees G / grad_scale^2
            g = raw / (scale * scale) * w[None, :, None] * w[None, None, :]
        else:
            g = raw * w[None, :, None] * w[None, None, :]
        beta = SEGMENT(g, ks, step, I0, I1, I2, I3, floats_ptr, agg_state_ptr, ls, lmask, K, KP) * w[None, :]
        bad += tl.sum(tl.sum(tl.where(m3 & (raw - raw != 0.0), 1, 0), axis=2), axis=1)
        m2 = lmask[:, None] & kmask[None, :]
        stored = beta.to(tl.float32)  # as stored: a double beyond float32 is inf
        bad += tl.sum(tl.where(m2 & (stored - stored != 0.0), 1, 0), axis=1)
        if HAS_SCALE:
            beta = beta / scale
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
    if HAS_COUNTER:
        tl.store(counter_ptr, step + 1)
