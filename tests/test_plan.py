"""SegmentPlan: aligned non-overlapping layout, zero-copy views, dense labels, cached device tables."""

import dataclasses

import torch
from helpers import plans
from hypothesis import given

from ltu_fast.plan import TABLE_GROUP, TABLE_NUMEL, TABLE_OFFSET, TABLE_SEGMENT, SegmentPlan


@given(plan=plans(max_tensors=8, max_numel=100))
def test_layout_is_aligned_ordered_and_tight(plan):
    ends = [o + n for o, n in zip(plan.offsets, plan.numels)]
    assert all(o % plan.align == 0 for o in plan.offsets)
    assert all(end <= nxt for end, nxt in zip(ends, plan.offsets[1:]))
    assert all(nxt - end < plan.align for end, nxt in zip(ends, plan.offsets[1:] + (plan.total,)))
    assert sorted(set(plan.segments)) == list(range(plan.num_segments))
    table = plan.table
    assert table.dtype == torch.int64 and table.shape == (plan.num_tensors, 4)
    assert table[:, TABLE_OFFSET].tolist() == list(plan.offsets)
    assert table[:, TABLE_NUMEL].tolist() == list(plan.numels)
    assert table[:, TABLE_SEGMENT].tolist() == list(plan.segments)
    assert table[:, TABLE_GROUP].tolist() == list(plan.groups)
    assert plan.table is table


@given(plan=plans(max_tensors=6, max_numel=30))
def test_flatten_and_views_round_trip_without_copies(plan):
    shapes = [torch.Size([n]) if n % 2 else torch.Size([n // 2, 2]) for n in plan.numels]
    tensors = [torch.randn(s) for s in shapes]
    flat = plan.flatten(tensors)
    views = plan.views(flat, shapes)
    assert all(torch.equal(v, t) for v, t in zip(views, tensors))
    assert all(v.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr() for v in views)
    padding = torch.ones(plan.total, dtype=torch.bool)
    for o, n in zip(plan.offsets, plan.numels):
        padding[o:o + n] = False
    assert not flat[padding].any()
    views[0].fill_(7.0)
    assert flat[plan.offsets[0]] == 7.0


def test_labels_are_renumbered_by_first_appearance():
    plan = SegmentPlan.build([2, 3, 4, 5], segments=["b", "a", "b", ("x", 1)], groups=[1, 0, 1, 0])
    assert plan.segments == (0, 1, 0, 2) and plan.num_segments == 3 and plan.num_groups == 2
    assert SegmentPlan.build([2, 3]).segments == (0, 1)  # default: one segment per tensor


def test_alignment_follows_element_size():
    plan = SegmentPlan.build([1, 1], element_size=2, align_bytes=16)
    assert plan.align == 8 and plan.offsets == (0, 8) and plan.total == 16


def test_to_is_cached_per_device():
    plan = SegmentPlan.build([3, 4])
    assert plan.to("cpu") is plan
    meta = plan.to("meta")
    assert meta is plan.to("meta") and meta.device.type == "meta" and meta.offsets == plan.offsets


def test_empty_row_zeroes_exactly_the_padding():
    plan = SegmentPlan.build([5, 3, 17], align_bytes=32)
    torch.empty(4 * plan.total).fill_(7.0)  # leave garbage behind in the allocator
    row = plan.empty_row(torch.float32)
    covered = torch.zeros(plan.total, dtype=torch.bool)
    for o, n in zip(plan.offsets, plan.numels):
        covered[o:o + n] = True
    assert row.shape == (plan.total,) and (row[~covered] == 0).all() and (~covered).any()
    bare = dataclasses.replace(plan, numels=(), segments=(), groups=(), offsets=(), cache={})
    assert (bare.empty_row(torch.float32) == 0).all()  # a rank that owns no tensor: all padding
