"""The segment plan: where each tensor lives in a flat row and which segment/group it belongs to.

A flat row of length ``P`` holds T tensors back to back, each starting at an offset aligned to
``align_bytes`` (so GPU kernels can use 16-byte vector loads from the first element on). Padding
is never read as data: every backend processes exactly ``[offset, offset + numel)`` per tensor.

Two labels per tensor drive the kernels:
  * ``segment``: the unit of harmonization (one Gram matrix and one coefficient vector each);
  * ``group``:   the optimizer param group (one row of hyper-parameters each).
Segments may span several tensors that are not adjacent in memory (e.g. a module whose weight and
bias sit in different param groups); backends reduce per tensor chunk and then sum per segment in
a fixed order, so results do not depend on thread scheduling.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["CHUNK_COLUMNS", "TABLE_COLUMNS", "TABLE_GROUP", "TABLE_NUMEL", "TABLE_OFFSET", "TABLE_SEGMENT",
           "SegmentPlan"]

# Columns of ``SegmentPlan.table`` (int64 [T, 4]) and of a chunk table (int64 [C, 4]), as every
# compiled backend reads them (csrc/include/ltu_fast/codes.h; tests/test_codes.py).
TABLE_COLUMNS = ("offset", "numel", "segment", "group")
TABLE_OFFSET, TABLE_NUMEL, TABLE_SEGMENT, TABLE_GROUP = (TABLE_COLUMNS.index(c) for c in TABLE_COLUMNS)
CHUNK_COLUMNS = ("start", "length", "segment", "group")


def _dense_ids(labels: Sequence[Hashable]) -> list[int]:
    """Renumber arbitrary hashable labels 0..n-1 in order of first appearance."""
    seen: dict[Hashable, int] = {}
    return [seen.setdefault(label, len(seen)) for label in labels]


@dataclass(frozen=True)
class ChunkTable:
    """The plan cut into chunks of at most ``size`` elements (never crossing a tensor), as int64
    tables on the plan's device: the unit of work of the compiled backends' kernels."""

    chunks: torch.Tensor  # [C, 4]: CHUNK_COLUMNS (start, length, segment, group)
    seg_ptr: torch.Tensor  # [L + 1]: seg_chunks[seg_ptr[s]:seg_ptr[s + 1]] are segment s's chunks
    seg_chunks: torch.Tensor  # [C]: chunk ids grouped by segment, ascending (the fixed sum order)
    num_chunks: int
    size: int


@dataclass(eq=False)
class SegmentPlan:
    """Immutable description of a flat layout; device tables are built once and cached."""

    numels: tuple[int, ...]
    segments: tuple[int, ...]
    groups: tuple[int, ...]
    offsets: tuple[int, ...]
    total: int
    num_segments: int
    num_groups: int
    device: torch.device
    align: int
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        numels: Sequence[int],
        segments: Sequence[Hashable] | None = None,
        groups: Sequence[int] | None = None,
        *,
        element_size: int = 4,
        align_bytes: int = 64,
        device: torch.device | str = "cpu",
    ) -> SegmentPlan:
        """Lay ``numels`` out back to back, each start aligned to ``align_bytes``.

        ``segments`` defaults to one segment per tensor ("layer" granularity); labels can be any
        hashable values and are renumbered densely. ``groups`` defaults to a single group.
        """
        numels = tuple(int(n) for n in numels)
        if not numels:
            raise ValueError("numels: a plan needs at least one tensor")
        if any(n <= 0 for n in numels):
            raise ValueError(f"numels: every tensor must have at least one element, got {numels}")
        if align_bytes <= 0 or align_bytes % element_size:
            raise ValueError(f"align_bytes={align_bytes} must be a positive multiple of the element size {element_size}")
        seg = _dense_ids(range(len(numels)) if segments is None else list(segments))
        grp = [0] * len(numels) if groups is None else [int(g) for g in groups]
        if len(seg) != len(numels):
            raise ValueError(f"segments: expected {len(numels)} labels, got {len(seg)}")
        if len(grp) != len(numels):
            raise ValueError(f"groups: expected {len(numels)} ids, got {len(grp)}")
        if any(g < 0 for g in grp):
            raise ValueError("groups: ids must be non-negative")
        align = align_bytes // element_size
        offsets, cursor = [], 0
        for n in numels:
            offsets.append(cursor)
            cursor += -(-n // align) * align
        return cls(
            numels=numels,
            segments=tuple(seg),
            groups=tuple(grp),
            offsets=tuple(offsets),
            total=cursor,
            num_segments=max(seg) + 1,
            num_groups=max(grp) + 1,
            device=torch.device(device),
            align=align,
        )

    @property
    def num_tensors(self) -> int:
        return len(self.numels)

    @property
    def table(self) -> torch.Tensor:
        """int64 [T, 4] on the plan's device: offset, numel, segment, group per tensor."""
        if "table" not in self.cache:
            rows = list(zip(self.offsets, self.numels, self.segments, self.groups))
            self.cache["table"] = torch.tensor(rows, dtype=torch.int64, device=self.device).reshape(-1, 4)
        return self.cache["table"]

    def chunk_table(self, size: int) -> ChunkTable:
        """Chunks of at most ``size`` elements per tensor, built once per size and cached.

        Reductions sum each chunk, then each segment's chunks in ascending id order, so the
        result depends only on ``size``, never on how the chunks were scheduled.
        """
        key = ("chunks", size)
        if key not in self.cache:
            rows = [(o + s, min(size, n - s), seg, grp)
                    for o, n, seg, grp in zip(self.offsets, self.numels, self.segments, self.groups)
                    for s in range(0, n, size)]
            order = sorted(range(len(rows)), key=lambda c: rows[c][2])  # stable: ascending within a segment
            pointers = [0] * (self.num_segments + 1)
            for _, _, seg, _ in rows:
                pointers[seg + 1] += 1
            for seg in range(self.num_segments):
                pointers[seg + 1] += pointers[seg]
            self.cache[key] = ChunkTable(
                chunks=torch.tensor(rows, dtype=torch.int64, device=self.device),
                seg_ptr=torch.tensor(pointers, dtype=torch.int64, device=self.device),
                seg_chunks=torch.tensor(order, dtype=torch.int64, device=self.device),
                num_chunks=len(rows),
                size=size,
            )
        return self.cache[key]

    def empty_row(self, dtype: torch.dtype) -> torch.Tensor:
        """A new flat row ``[total]`` on the plan's device whose padding (only) is zero: for outputs
        a kernel writes element by element, so nothing is filled twice."""
        out = torch.empty(self.total, dtype=dtype, device=self.device)
        if "padding" not in self.cache:
            gaps, cursor = [], 0  # every element no tensor covers (all of them in a plan without tensors)
            for o, n in sorted(zip(self.offsets, self.numels)):
                gaps += range(cursor, o)
                cursor = max(cursor, o + n)
            gaps += range(cursor, self.total)
            self.cache["padding"] = torch.tensor(gaps, dtype=torch.int64, device=self.device) if gaps else None
        if self.cache["padding"] is not None:
            out.index_fill_(0, self.cache["padding"], 0)
        return out

    def to(self, device: torch.device | str) -> SegmentPlan:
        """The same layout with its device tables on ``device``."""
        device = torch.device(device)
        if device == self.device:
            return self
        key = ("to", device)  # cached: a per-step call must not re-upload the tables
        if key not in self.cache:
            self.cache[key] = SegmentPlan(
                self.numels, self.segments, self.groups, self.offsets, self.total,
                self.num_segments, self.num_groups, device, self.align,
            )
        return self.cache[key]

    def views(self, flat: torch.Tensor, shapes: Sequence[torch.Size]) -> list[torch.Tensor]:
        """Per-tensor views into a flat buffer of length ``total`` (no copy)."""
        if flat.dim() != 1 or flat.numel() != self.total:
            raise ValueError(f"flat: expected a 1-D tensor of {self.total} elements, got {tuple(flat.shape)}")
        return [flat.narrow(0, o, n).view(s) for o, n, s in zip(self.offsets, self.numels, shapes)]

    def flatten(self, tensors: Sequence[torch.Tensor], *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Copy ``tensors`` into a new zero-padded flat buffer laid out by this plan."""
        if len(tensors) != self.num_tensors:
            raise ValueError(f"tensors: expected {self.num_tensors}, got {len(tensors)}")
        first = tensors[0]
        flat = torch.zeros(self.total, dtype=dtype or first.dtype, device=first.device)
        for i, (t, o, n) in enumerate(zip(tensors, self.offsets, self.numels)):
            if t.numel() != n:
                raise ValueError(f"tensors[{i}]: expected {n} elements, got {t.numel()}")
            flat.narrow(0, o, n).copy_(t.reshape(-1))
        return flat
