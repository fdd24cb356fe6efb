"""Original and Retrain models that cannot fail silently.

Every comparison is measured against these two, so a diverged one poisons every number. Each is
checked after training or loading: its accuracy on the data it was trained on must be near 100%
and its accuracy on held-out non-members (the validation split, never test) far above chance. A
failed reference is retrained once with :meth:`TrainRecipe.safer`, and both attempts are recorded;
if the retry fails too the run stops with an error naming the dataset, seed and role.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import SplitConfig, Splits, build_splits
from .metrics import accuracy, chance_level, model_outputs
from .models import model_factory
from .splits import Split
from .train import TrainRecipe, train_cached

__all__ = ["MIN_FIT", "MIN_HELDOUT", "Reference", "ReferenceTrainingError", "check_reference", "reference_pair",
           "train_reference"]

# Shares of the range between chance and 100% a reference must reach (10 classes: 82% fit, 55% held out).
MIN_FIT = 0.8
MIN_HELDOUT = 0.5


class ReferenceTrainingError(RuntimeError):
    """An original or Retrain model failed its check with the default and with the safer recipe."""


@dataclass
class Reference:
    """A checked reference model; ``attempts`` holds one record per training (2 after a retry)."""

    model: nn.Module
    seconds: float
    cached: bool
    recipe: TrainRecipe
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1


def check_reference(model: nn.Module, fit_data: Split, heldout: Split, num_classes: int,
                    device: str | torch.device = "cpu") -> dict[str, Any]:
    """Accuracies on the training data and on held-out data, and whether they pass (with the reason)."""
    chance = chance_level(num_classes)
    fit = accuracy(model_outputs(model, fit_data, device)[0])
    held = accuracy(model_outputs(model, heldout, device)[0])
    need_fit, need_held = chance + MIN_FIT * (100 - chance), chance + MIN_HELDOUT * (100 - chance)
    reasons = [f"train accuracy {fit:.1f}% < {need_fit:.1f}%"] if not fit >= need_fit else []
    reasons += [f"held-out accuracy {held:.1f}% < {need_held:.1f}%"] if not held >= need_held else []
    return {"train_acc": fit, "heldout_acc": held, "ok": not reasons, "reason": "; ".join(reasons)}


def train_reference(role: str, factory: Callable[[], nn.Module], fit_data: Split, heldout: Split,
                    num_classes: int, recipe: TrainRecipe, seed: int, key_parts: dict[str, Any], label: str,
                    cache_dir: str | Path | None = None, device: str | torch.device = "cpu",
                    progress: bool = True) -> Reference:
    """Train (or load) and check ``role``; retry once with the safer recipe; raise if both fail.

    ``label`` names the data in the retry's warning and in errors, e.g. ``"dataset 'mnist5k', seed 3"``.
    """
    attempts = []
    for attempt in (recipe, recipe.safer()):
        model, seconds, hit = train_cached(role, factory, fit_data, attempt, seed, key_parts, cache_dir, device,
                                           progress)
        check = check_reference(model, fit_data, heldout, num_classes, device)
        attempts.append({"recipe": asdict(attempt), "seconds": seconds, "cached": hit, **check})
        if check["ok"] and len(attempts) > 1:
            warnings.warn(f"{role} model on {label} failed its check ({attempts[0]['reason']}); "
                          "retrained with the safer recipe, which passed", stacklevel=3)
        if check["ok"]:
            return Reference(model, seconds, hit, attempt, attempts)
    first, second = attempts
    raise ReferenceTrainingError(
        f"{role} model failed its check on {label}: default recipe: {first['reason']}; "
        f"safer retry recipe {second['recipe']}: {second['reason']}. Every gap to Retrain would be meaningless; "
        "change --recipe (lower lr, more warm-up) or the model")


def reference_pair(split: SplitConfig, model: str, recipe: TrainRecipe, seed: int, cache_dir: str | Path | None = None,
                   device: str | torch.device = "cpu", progress: bool = True
                   ) -> tuple[Splits, Callable[[], nn.Module], dict[str, Reference]]:
    """The splits at ``split.retain_access``, the model factory, and the checked original and Retrain.

    The two references do not depend on how much of the retain set a method may read (the
    forget/retain cut is drawn before ``retain_access``), so they are trained on the split at full
    access and cached under a key without the access share: a comparison, a tune and a sweep at any
    access level of one (dataset, forget setting, seed) share them. The original does not depend on
    the forget setting either (it trains on all members), so random and class-wise forgetting of one
    (dataset, seed) share it too.
    """
    splits = build_splits(split, seed)
    base = build_splits(replace(split, retain_access=1.0), seed)
    if not (np.array_equal(splits.forget_idx, base.forget_idx) and np.array_equal(splits.retain_idx, base.retain_idx)):
        raise RuntimeError("build_splits: the forget/retain cut depends on retain_access; the reference cache is invalid")
    factory = model_factory(model, base.input_shape, base.num_classes)
    # the original sees the members only, which no forget setting changes: one model for all of them
    keys = {"original": {"data": base.members_fingerprint, "model": model, "access": "any", "trains_on": "members"},
            "retrain": {"data": base.fingerprint, "model": model, "access": "any"}}
    label = f"dataset {split.dataset!r}, seed {seed}"
    refs = {role: train_reference(role, factory, data, base.heldout, base.num_classes, recipe, seed, keys[role],
                                  label, cache_dir, device, progress)
            for role, data in (("original", base.members), ("retrain", base.retain))}
    return splits, factory, refs
