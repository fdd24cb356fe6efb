"""The contract between data, methods and evaluation in ``ltu_fast.unlearn``.

Data access rules (the same for LTU and every baseline):
  * ``forget``        the samples to unlearn (always available to the method);
  * ``retain_access`` the *accessible* subset of the retain set (e.g. 10% of it, as in the LTU
                      paper): the only retain data an approximate method may read;
  * ``heldout``       non-member samples drawn from the training distribution but never trained on
                      (a validation split), for methods that need a reference of "unseen" (LTU's
                      MIA models); never the test set;
  * ``retain_full``   the whole retain set: only ``Retrain`` (the gold standard) reads it.
The test split is for evaluation only and is not part of the task.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["METHODS", "METHOD_ORDER", "REFERENCE_ROWS", "ArraySplit", "UnlearnMethod", "UnlearnResult", "UnlearnTask",
           "available_methods", "register_method", "resolve_methods"]


@dataclass
class ArraySplit:
    """A labelled set held as tensors: ``x`` [N, ...] float32 (normalised), ``y`` [N] int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} samples but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: torch.Tensor) -> ArraySplit:
        return ArraySplit(self.x[index], self.y[index])

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                device: torch.device | str | None = None, drop_last: bool = False):
        """Iterate (x, y) mini-batches, optionally shuffled by ``generator`` (deterministic)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield self.x[idx].to(device), self.y[idx].to(device)


@dataclass
class UnlearnTask:
    """Everything an unlearning method may use (see the module docstring for the rules)."""

    forget: ArraySplit
    retain_access: ArraySplit
    heldout: ArraySplit
    retain_full: ArraySplit
    num_classes: int
    model_factory: Callable[[], nn.Module]  # a fresh, untrained model of the same architecture
    train_recipe: dict[str, Any] = field(default_factory=dict)  # epochs, lr, batch_size... of the original
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    retain_size: int = 0  # len(retain_full), a count and no data: sizes a method's work against Retrain's


@dataclass
class UnlearnResult:
    """An unlearned model plus what the method observed (e.g. gradient-conflict rate)."""

    model: nn.Module
    info: dict[str, Any] = field(default_factory=dict)


class UnlearnMethod:
    """Base class: one small class per method, its hyper-parameters as constructor arguments.

    ``unlearn`` receives a *copy* of the original model (it may modify it in place) and returns
    the unlearned model; it must be deterministic given ``task.seed``.
    """

    name = "method"
    uses_full_retain = False  # True only for Retrain
    # The main knobs ``ltu-fast tune`` searches, each with its candidate values. Tuning draws the same
    # number of configurations from every method's space, so declare at least that many combinations.
    search_space: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Hyper-parameters, recorded next to results."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


METHODS: dict[str, type[UnlearnMethod]] = {}


def register_method(cls: type[UnlearnMethod]) -> type[UnlearnMethod]:
    """Class decorator: make a method available by its ``name`` to the runner and the CLI."""
    METHODS[cls.name] = cls
    return cls


# Where the methods live; imported lazily so the registry works before (or without) each of them.
_METHOD_MODULES = ("ltu_fast.unlearn.baselines", "ltu_fast.unlearn.ltu")
METHOD_ORDER = ("ft", "ga", "neggrad_plus", "rl", "l1_sparse", "salun", "scrub", "ssd", "iau", "ltu")
REFERENCE_ROWS = ("original", "retrain")  # trained (and cached) by the harness itself, not unlearning methods


def available_methods() -> list[str]:
    """Registered method names (importing the method modules that exist), in reporting order."""
    for module in _METHOD_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
    known = [m for m in METHOD_ORDER if m in METHODS]
    return known + sorted(m for m in METHODS if m not in known and m not in REFERENCE_ROWS)


def resolve_methods(requested: Sequence[str] | None) -> list[str]:
    """The unlearning methods to run: ``requested`` (every registered one for None) without the
    reference rows, which the harness computes itself; an unknown name is an error naming it."""
    known = available_methods()
    methods = [m for m in (known if requested is None else requested) if m not in REFERENCE_ROWS]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods (methods): unknown {unknown}; registered: {known}")
    return methods
