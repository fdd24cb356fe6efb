"""The one data interface every unlearning method and the evaluation read: a :class:`Split`, a
labelled set of (input, label) samples.

A method uses nothing else: ``len``; ``batches`` (in order, or shuffled by a seeded generator);
``take`` (the samples at given positions as one batch: a seeded random batch); ``labels`` (every
label, streamed once and cached: a small tensor, for class counts); ``subset``. Two kinds:

* :class:`ArraySplit`: tensors in memory, the embedded comparison's splits;
* :class:`DatasetSplit`: any map-style ``torch.utils.data.Dataset`` of ``(input tensor, int label)``
  pairs, streamed through a DataLoader (workers, pinned memory) and never held whole; each sample is
  checked as it is read, and a bad one is an error naming the split and the sample's index.

For the same data, order and generator both give bitwise the same batches, so a method reads the
same numbers from either.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, IterableDataset, Subset, TensorDataset, default_collate

__all__ = ["ArraySplit", "Batch", "DatasetSplit", "Split", "as_split", "concat_splits", "index_batches"]

Batch = tuple[torch.Tensor, torch.Tensor]
LABEL_BATCH = 512  # samples per batch when labels must be streamed


def index_batches(n: int, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                  drop_last: bool = False) -> list[torch.Tensor]:
    """Positions of each mini-batch of a set of ``n``: in order, or one ``randperm`` of ``generator``."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    return [order[start:start + batch_size] for start in range(0, stop, batch_size)]


class Split(ABC):
    """A labelled set of samples; see the module docstring for what a method may call."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def take(self, index: torch.Tensor, device: torch.device | str | None = None) -> Batch:
        """The samples at positions ``index`` (a 1-d int64 tensor) as one batch on ``device``."""

    @abstractmethod
    def labels(self) -> torch.Tensor:
        """Every label, int64 [N] on the CPU."""

    @abstractmethod
    def subset(self, index: torch.Tensor) -> Split:
        """The samples at positions ``index``, as a split of the same kind."""

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                device: torch.device | str | None = None, drop_last: bool = False) -> Iterator[Batch]:
        """Iterate (x, y) mini-batches, optionally shuffled by ``generator`` (deterministic)."""
        for index in index_batches(len(self), batch_size, shuffle, generator, drop_last):
            yield self.take(index, device)


@dataclass
class ArraySplit(Split):
    """A labelled set held as tensors: ``x`` [N, ...] float32 (normalised), ``y`` [N] int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} samples but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, index: torch.Tensor, device: torch.device | str | None = None) -> Batch:
        return self.x[index].to(device), self.y[index].to(device)

    def labels(self) -> torch.Tensor:
        return self.y

    def subset(self, index: torch.Tensor) -> ArraySplit:
        return ArraySplit(self.x[index], self.y[index])


def _label(value: Any) -> int | None:
    """``value`` as an int label, or None when it is not one (bools, floats, tensors with more than one value)."""
    if isinstance(value, torch.Tensor):
        return int(value) if value.ndim == 0 and not value.is_floating_point() and value.dtype != torch.bool else None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return None


class _Checked(Dataset):
    """A dataset whose every sample is checked as it is read: an ``(input tensor, int label)`` pair,
    the input floating point and of the first sample's shape and dtype, the label in
    ``0..num_classes-1``. An error names the split and the sample's index."""

    def __init__(self, dataset: Dataset, name: str, num_classes: int | None) -> None:
        self.dataset, self.name, self.num_classes = dataset, name, num_classes
        self.shape: torch.Size | None = None
        self.dtype: torch.dtype | None = None
        x, _ = self[0]
        self.shape, self.dtype = x.shape, x.dtype

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.dataset[i]
        where = f"{self.name}: sample {i}"
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"{where}: expected an (input tensor, int label) pair, got {type(item).__name__}"
                            + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""))
        x, y = item
        label = _label(y)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"{where}: the input must be a floating-point tensor, got {got}")
        if label is None:
            raise TypeError(f"{where}: the label must be an int (or a 0-d integer tensor), got {y!r}")
        if self.num_classes is not None and not 0 <= label < self.num_classes:
            raise ValueError(f"{where}: label {label} is outside 0..{self.num_classes - 1} (num_classes={self.num_classes})")
        if self.shape is not None and (x.shape != self.shape or x.dtype != self.dtype):
            raise ValueError(f"{where}: input of shape {tuple(x.shape)} ({x.dtype}), but sample 0 has "
                             f"{tuple(self.shape)} ({self.dtype}); every input of a split must have one size "
                             "(resize the images first)")
        return x, label


def _known_labels(dataset: Dataset) -> torch.Tensor | None:
    """Labels a dataset holds without reading its inputs: a ``TensorDataset``'s label tensor, the
    ``targets`` of ltu_fast's own image sets, through ``Subset`` and ``ConcatDataset`` (any other
    ``targets`` attribute may disagree with what ``__getitem__`` returns, so it is not trusted)."""
    from .images import ImageSet

    if isinstance(dataset, Subset):
        inner = _known_labels(dataset.dataset)
        return None if inner is None else inner[torch.as_tensor(dataset.indices, dtype=torch.int64)]
    if isinstance(dataset, ConcatDataset):
        parts = [_known_labels(d) for d in dataset.datasets]
        return None if any(p is None for p in parts) else torch.cat(parts)
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2 and dataset.tensors[1].ndim == 1 \
            and not dataset.tensors[1].is_floating_point():
        return dataset.tensors[1].to(torch.int64)
    if isinstance(dataset, ImageSet):
        return torch.as_tensor(dataset.targets, dtype=torch.int64)
    return None


class DatasetSplit(Split):
    """A split streamed from a map-style dataset of ``(input tensor, int label)`` pairs.

    ``num_workers``/``pin_memory`` go to the DataLoader of each pass (``pin_memory=None``: pinned when
    the batches go to a CUDA device); ``collate_fn`` builds a batch from checked samples (default:
    stacking); ``progress`` shows a bar per pass. Labels are read once, on first use, and cached.
    """

    def __init__(self, dataset: Dataset, name: str = "data", *, num_classes: int | None = None, num_workers: int = 0,
                 pin_memory: bool | None = None, collate_fn: Callable[[list], Any] | None = None,
                 progress: bool = False) -> None:
        if isinstance(dataset, IterableDataset) or not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"{name}: needs a map-style Dataset (with __getitem__ and __len__), got "
                            f"{type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError(f"{name}: the dataset is empty")
        if num_workers < 0:
            raise ValueError(f"{name}: num_workers must be >= 0, got {num_workers}")
        self.dataset, self.name, self.num_classes = dataset, name, num_classes
        self.num_workers, self.pin_memory, self.progress = num_workers, pin_memory, progress
        self.collate_fn = collate_fn or default_collate
        self._checked = _Checked(dataset, name, num_classes)
        self._labels: torch.Tensor | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self._checked.shape)

    def __len__(self) -> int:
        return len(self.dataset)

    def _options(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "num_workers": self.num_workers, "pin_memory": self.pin_memory,
                "collate_fn": self.collate_fn, "progress": self.progress}

    def _to(self, batch: Any, device: torch.device | str | None, pinned: bool) -> Batch:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2
                and all(isinstance(t, torch.Tensor) for t in batch)):
            raise TypeError(f"{self.name}: collate_fn must return an (inputs, labels) pair of tensors, "
                            f"got {type(batch).__name__}")
        x, y = batch
        return x.to(device, non_blocking=pinned), y.to(device, non_blocking=pinned)

    def take(self, index: torch.Tensor, device: torch.device | str | None = None) -> Batch:
        return self._to(self.collate_fn([self._checked[i] for i in index.tolist()]), device, False)

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                device: torch.device | str | None = None, drop_last: bool = False) -> Iterator[Batch]:
        from tqdm.auto import tqdm  # the unlearn extra; the core package imports this module without it

        plan = [i.tolist() for i in index_batches(len(self), batch_size, shuffle, generator, drop_last)]
        pinned = self.pin_memory if self.pin_memory is not None else torch.device(device or "cpu").type == "cuda"
        workers = self.num_workers if len(plan) > 2 * self.num_workers else 0  # starting workers costs more than a short pass
        loader = DataLoader(self._checked, batch_sampler=plan, num_workers=workers, pin_memory=pinned,
                            collate_fn=self.collate_fn)
        for batch in tqdm(loader, desc=self.name, disable=not self.progress, leave=False):
            yield self._to(batch, device, pinned)

    def labels(self) -> torch.Tensor:
        if self._labels is None:
            known = _known_labels(self.dataset)
            if known is None:
                known = torch.cat([y for _, y in self.batches(LABEL_BATCH)])
            elif self.num_classes is not None and len(known) and not (0 <= known.min() and known.max() < self.num_classes):
                bad = int(torch.nonzero((known < 0) | (known >= self.num_classes))[0])
                raise ValueError(f"{self.name}: sample {bad}: label {int(known[bad])} is outside "
                                 f"0..{self.num_classes - 1} (num_classes={self.num_classes})")
            self._labels = known.to(torch.int64)
        return self._labels

    def subset(self, index: torch.Tensor) -> DatasetSplit:
        part = DatasetSplit(Subset(self.dataset, index.tolist()), self.name, **self._options())
        if self._labels is not None:
            part._labels = self._labels[index]
        return part


def as_split(data: Split | Dataset | DataLoader, name: str = "data", **options: Any) -> Split:
    """``data`` as a :class:`Split`: a split as it is; a DataLoader as its dataset with its
    ``num_workers``, ``pin_memory`` and ``collate_fn`` (its batch size and order are not used: every
    method draws its own, seeded); any map-style Dataset with ``options`` (see :class:`DatasetSplit`)."""
    if isinstance(data, Split):
        return data
    if isinstance(data, DataLoader):
        loader = {"num_workers": data.num_workers, "pin_memory": data.pin_memory or None}
        if data.collate_fn is not default_collate:
            loader["collate_fn"] = data.collate_fn
        return DatasetSplit(data.dataset, name, **{**options, **loader})
    if isinstance(data, Dataset):
        return DatasetSplit(data, name, **options)
    raise TypeError(f"{name}: expected a torch Dataset, DataLoader or Split, got {type(data).__name__}")


def _dataset(split: Split) -> Dataset:
    if isinstance(split, DatasetSplit):
        return split.dataset
    if isinstance(split, ArraySplit):
        return TensorDataset(split.x, split.y)
    raise TypeError(f"cannot concatenate a {type(split).__name__}")


def concat_splits(first: Split, second: Split) -> Split:
    """The samples of ``first`` then those of ``second`` (in memory when both are)."""
    if isinstance(first, ArraySplit) and isinstance(second, ArraySplit):
        return ArraySplit(torch.cat([first.x, second.x]), torch.cat([first.y, second.y]))
    streamed = first if isinstance(first, DatasetSplit) else second
    name = "+".join(s.name if isinstance(s, DatasetSplit) else "data" for s in (first, second))
    return DatasetSplit(ConcatDataset([_dataset(first), _dataset(second)]), name, **streamed._options())
