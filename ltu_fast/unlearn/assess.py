"""One path from a method to a scored result: run it on a copy of the original, score the unlearned
model, its Avg. Gap to Retrain and its flags.

The runner (the reported metrics, test split), the sweep (either scoring) and the tuner (validation
metrics, no test split) all go through :func:`assess`, so a published table and a tuning decision
score a model the same way and flag it by the same rules.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .api import METHODS, UnlearnResult, UnlearnTask, available_methods
from .data import Splits
from .metrics import (
    GAP_KEYS,
    accuracy,
    avg_gap,
    evaluate_model,
    forget_confidence,
    mia_efficacy,
    model_device,
    model_outputs,
    result_flags,
)
from .references import Reference, reference_pair

if TYPE_CHECKING:
    from .runner import ExperimentConfig

__all__ = ["SCORINGS", "TEST", "VAL", "VAL_KEYS", "Baseline", "Scoring", "assess", "unlearn", "validation_metrics"]

VAL_KEYS = ("UA", "RA", "VA", "MIA")


def validation_metrics(model: nn.Module, splits: Splits, device: str | torch.device = "cpu") -> dict[str, float]:
    """The selection metrics: training data only (what the original and Retrain see), never the test
    split. UA on the forget set, RA on the whole retain set, VA on the held-out non-members, and
    MIA-efficacy with those two as members and non-members. The whole retain set, not the accessible
    subset: methods train on that subset, so their accuracy there cannot show the damage done to the
    rest of the retain set, which the reported RA counts (LTU and FT chose such damage when the RA
    here was the subset's), and at 1-2% access an MIA fitted on its 32-70 members flipped at random."""
    c_f, p_f, _ = model_outputs(model, splits.forget, device)
    c_r, p_r, _ = model_outputs(model, splits.retain, device)
    c_h, p_h, _ = model_outputs(model, splits.heldout, device)
    return {"UA": 100.0 - accuracy(c_f), "RA": accuracy(c_r), "VA": accuracy(c_h),
            "MIA": mia_efficacy(p_r, p_h, p_f, splits.seed), "FC": forget_confidence(p_f)}


def _test_metrics(model: nn.Module, splits: Splits, device: str | torch.device = "cpu") -> dict[str, float]:
    return evaluate_model(model, splits.forget, splits.retain, splits.test, device, splits.seed, splits.test_forgotten)


@dataclass(frozen=True)
class Scoring:
    """How a model is scored: its metrics, the keys of its Avg. Gap and the accuracies its flags read."""

    name: str
    metrics: Callable[[nn.Module, Splits, str | torch.device], dict[str, float]]
    gap_keys: tuple[str, ...]
    accuracies: tuple[str, ...]


TEST = Scoring("test", _test_metrics, GAP_KEYS, ("TA", "RA"))  # the reported metrics
VAL = Scoring("val", validation_metrics, VAL_KEYS, ("VA", "RA"))  # choosing hyper-parameters: no test split
SCORINGS = {s.name: s for s in (TEST, VAL)}


def unlearn(model: nn.Module, task: UnlearnTask, method: str = "ltu", **kwargs: Any) -> UnlearnResult:
    """Run a registered method on a deep copy of ``model`` (any classifier; on ``task.device``, or the
    model's when that is None); ``info["rte"]`` is its wall time (s)."""
    known = available_methods()
    if method not in METHODS:
        raise ValueError(f"--methods (method): unknown {method!r}; registered: {known}")
    algo = METHODS[method](**kwargs)
    if task.device is None:
        task = replace(task, device=model_device(model))
    work = copy.deepcopy(model).to(task.device)
    torch.manual_seed(task.seed)
    start = time.perf_counter()
    result = algo.unlearn(work, task)
    result.info["rte"] = time.perf_counter() - start
    result.info.setdefault("config", algo.config())
    return result


@dataclass
class Baseline:
    """What a method's result on one (setting, seed) is judged against: the splits and task, the
    checked original and Retrain (:class:`~ltu_fast.unlearn.references.Reference`), and their
    scores under one :class:`Scoring`."""

    splits: Splits
    task: UnlearnTask
    references: dict[str, Reference]
    scores: dict[str, dict[str, float]]
    scoring: Scoring

    @classmethod
    def of(cls, config: ExperimentConfig, seed: int, scoring: Scoring = TEST) -> Baseline:
        """The splits at ``config.retain_access`` and the (cached, checked) references of ``seed``."""
        splits, factory, refs = reference_pair(config.split_config(), config.model, config.recipe, seed,
                                               config.cache_dir, config.device, config.progress)
        task = splits.task(factory, asdict(config.recipe), config.device)
        scores = {role: scoring.metrics(ref.model, splits, config.device) for role, ref in refs.items()}
        return cls(splits, task, refs, scores, scoring)

    @property
    def original(self) -> nn.Module:
        return self.references["original"].model

    def untouched(self) -> dict[str, Any]:
        """The original's own entry, as :func:`assess` would give a method that changed nothing: the
        row every method must beat to have done anything useful."""
        scores, retrain = self.scores["original"], self.scores["retrain"]
        return {**scores, "gap": avg_gap(scores, retrain, self.scoring.gap_keys), "RTE": 0.0, "RTE_share": 0.0,
                "flags": []}


# info entries averaged into the result (LTU's MIA attackers: how much signal its feedback carried)
_INFO_MEANS = ("mia_heldout_accuracy", "mia_member_rate_forget_after")


def assess(base: Baseline, method: str, kwargs: dict[str, Any], device: str | torch.device = "cpu") -> dict[str, Any]:
    """Run ``method`` with ``kwargs`` and score it: its metrics, ``gap`` (Avg. Gap to Retrain),
    ``RTE`` (s) and ``RTE_share`` (of Retrain's training time), ``flags``, ``method_config`` and the
    method's own ``info`` (its ``conflict_rate`` lifted to the top level)."""
    result = unlearn(base.original, base.task, method, **kwargs)
    scores = base.scoring.metrics(result.model, base.splits, device)
    info = {k: v for k, v in result.info.items() if k not in ("rte", "config")}
    original, retrain = base.scores["original"], base.scores["retrain"]
    entry: dict[str, Any] = {
        **scores,
        "gap": avg_gap(scores, retrain, base.scoring.gap_keys),
        "RTE": result.info["rte"],
        "RTE_share": result.info["rte"] / base.references["retrain"].seconds,
        "conflict_rate": info.pop("conflict_rate", None),
        "flags": result_flags(scores, original, retrain, base.splits.num_classes, base.scoring.accuracies,
                              base.scoring.gap_keys),
        "method_config": result.info["config"],
        "info": info,
    }
    for key in _INFO_MEANS:
        if key in info:
            entry[key] = float(np.mean(info[key]))
    return entry
