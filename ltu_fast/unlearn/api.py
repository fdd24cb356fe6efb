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
from torch.utils.data import DataLoader, Dataset

from .splits import ArraySplit, DatasetSplit, Split, as_split

__all__ = ["METHODS", "METHOD_ORDER", "REFERENCE_ROWS", "ArraySplit", "Split", "UnlearnMethod", "UnlearnResult",
           "UnlearnTask", "available_methods", "register_method", "resolve_methods"]


Data = Split | Dataset | DataLoader  # what UnlearnTask.from_datasets accepts as a split


@dataclass
class UnlearnTask:
    """Everything an unlearning method may use (see the module docstring for the rules). Every
    split is a :class:`~ltu_fast.unlearn.splits.Split`: tensors in memory or a streamed Dataset."""

    forget: Split
    retain_access: Split
    heldout: Split
    retain_full: Split | None  # None: no Retrain on this task
    num_classes: int
    model_factory: Callable[[], nn.Module] | None  # a fresh, untrained model of the same architecture (Retrain)
    train_recipe: dict[str, Any] = field(default_factory=dict)  # epochs, lr, batch_size... of the original
    device: torch.device | None = field(default_factory=lambda: torch.device("cpu"))  # None: the model's
    seed: int = 0
    retain_size: int = 0  # len(retain_full), a count and no data: sizes a method's work against Retrain's

    @classmethod
    def from_datasets(cls, forget: Data, retain: Data, heldout: Data, num_classes: int, *,
                      retain_full: Data | None = None, model_factory: Callable[[], nn.Module] | None = None,
                      train_recipe: dict[str, Any] | None = None, device: torch.device | str | None = None,
                      seed: int = 0, num_workers: int = 0, pin_memory: bool | None = None,
                      progress: bool = True) -> UnlearnTask:
        """A task on your own data. Each split is a map-style ``Dataset`` of ``(input tensor, int
        label)`` pairs, a ``DataLoader`` (its dataset, workers, pinning and collate function are used;
        each method draws its own batches, seeded) or a :class:`Split`; datasets are streamed, never
        held whole. ``retain`` is the retain data methods may read (as much as you can access);
        ``retain_full`` (all of it), ``model_factory`` and ``train_recipe`` are needed by Retrain
        only. ``device=None`` runs on the model's device. Inputs must share one shape; each sample is
        checked as it is read (an error names the split and the sample)."""
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(f"num_classes: expected an int >= 2, got {num_classes!r}")
        options = {"num_classes": num_classes, "num_workers": num_workers, "pin_memory": pin_memory,
                   "progress": progress}
        named = {"forget": forget, "retain": retain, "heldout": heldout, "retain_full": retain_full}
        splits = {k: as_split(v, k, **options) for k, v in named.items() if v is not None}
        shapes = {k: s.sample_shape for k, s in splits.items() if isinstance(s, DatasetSplit)}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"inputs of different shapes across splits: {shapes}; every split must have one input shape")
        full = splits.get("retain_full")
        return cls(forget=splits["forget"], retain_access=splits["retain"], heldout=splits["heldout"],
                   retain_full=full, num_classes=num_classes, model_factory=model_factory,
                   train_recipe=dict(train_recipe or {}), device=None if device is None else torch.device(device),
                   seed=seed, retain_size=len(full if full is not None else splits["retain"]))


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
