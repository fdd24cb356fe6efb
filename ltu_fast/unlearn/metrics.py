"""Unlearning metrics (SalUn / l1-sparse protocol plus the NeurIPS 2023 challenge's loss MIA).

All scores are percentages. The MIA functions take plain arrays so they can be checked by hand;
:func:`evaluate_model` runs the model once per split and feeds them.

* UA = 100 − forget accuracy; RA = retain accuracy; TA = test accuracy.
* MIA-efficacy: an RBF ``SVC(C=3, gamma="auto")`` learns member (retain) vs non-member (test) from the
  true-class softmax probability, on equal-sized sets; the score is the share of the forget set it
  calls non-member. Higher = the forget set looks less like training data.
* MIA-LR: logistic regression on the per-sample loss, forget (member) vs test (non-member), equal
  sizes, cross-validated accuracy. 50 = the attacker cannot tell forget from unseen data.
* Avg. Gap: mean |Δ| to Retrain over UA, RA, TA, MIA.
* FC: mean true-class probability (%) on the forget set, not a reported column: the continuous
  trace of unlearning that the flags read when no discrete metric moved.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import SVC
from torch import nn
from torch.nn import functional as F

from .splits import Split

__all__ = [
    "GAP_KEYS",
    "accuracy",
    "at_chance",
    "avg_gap",
    "chance_level",
    "damaged",
    "evaluate_model",
    "forget_confidence",
    "forget_progress",
    "mean_std",
    "mia_efficacy",
    "mia_lr",
    "model_device",
    "model_outputs",
    "result_flags",
]

GAP_KEYS = ("UA", "RA", "TA", "MIA")
MAX_LOSS = 1e4  # stands in for non-finite per-sample losses
DAMAGE_KEEP = 0.75  # share of Retrain's accuracy margin above chance a result must keep (flag "damaged")
NOOP_PROGRESS = 0.1  # forget-confidence progress towards Retrain below which unchanged metrics mean "no-op"


def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` lives: the device of its first parameter or buffer (the CPU if it has none)."""
    return next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))


@torch.no_grad()
def model_outputs(model: nn.Module, data: Split, device: str | torch.device | None = None,
                  batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct [N] bool, true-class probability [N], cross-entropy loss [N]) in one eval pass over
    ``data``'s batches on ``device`` (None: the model's); only these per-sample numbers are kept.

    A diverged model (non-finite logits) must still be scored, not crash the attack models: its
    non-finite probabilities count as 0 and its losses as ``MAX_LOSS``.
    """
    device = model_device(model) if device is None else device
    was_training = model.training
    model.eval()
    correct, prob, loss = [], [], []
    for x, y in data.batches(batch_size, device=device):
        logits = model(x).float()
        correct.append((logits.argmax(1) == y).cpu())
        prob.append(F.softmax(logits, 1).gather(1, y[:, None])[:, 0].cpu())
        loss.append(F.cross_entropy(logits, y, reduction="none").cpu())
    model.train(was_training)
    prob_all = torch.cat(prob).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    loss_all = torch.cat(loss).nan_to_num(nan=MAX_LOSS, posinf=MAX_LOSS).clamp(max=MAX_LOSS)
    return torch.cat(correct).numpy(), prob_all.numpy(), loss_all.numpy()


def forget_confidence(prob_forget: np.ndarray) -> float:
    """FC: mean true-class probability (%) on the forget set."""
    return 100.0 * float(np.mean(prob_forget)) if len(prob_forget) else float("nan")


def accuracy(correct: np.ndarray) -> float:
    return 100.0 * float(np.mean(correct)) if len(correct) else float("nan")


def chance_level(num_classes: int) -> float:
    """Accuracy (%) of guessing uniformly (the embedded datasets are class-balanced)."""
    return 100.0 / num_classes


def _below(acc: float, num_classes: int, top: float, share: float) -> bool:
    """True when ``acc`` is under ``share`` of the way from chance to ``top`` (NaN counts as under)."""
    chance = chance_level(num_classes)
    return not acc >= chance + share * (top - chance)


def at_chance(acc: float, num_classes: int, share: float = 0.1) -> bool:
    """True when ``acc`` lies within ``share`` of the range above chance: a collapsed model, not a result."""
    return _below(acc, num_classes, 100.0, share)


def damaged(acc: float, reference_acc: float, num_classes: int, keep: float = DAMAGE_KEEP) -> bool:
    """True when ``acc`` keeps less than ``keep`` of the reference's (Retrain's) margin above chance:
    a quarter of the model's useful accuracy gone is a broken model, not an unlearning trade-off."""
    return _below(acc, num_classes, reference_acc, keep)


def forget_progress(metrics: Mapping[str, float], original: Mapping[str, float],
                    retrain: Mapping[str, float]) -> float:
    """How far the forget set's mean true-class probability (FC) moved from the original's towards
    Retrain's: 0 = not at all, 1 = all the way (negative = away from Retrain)."""
    span = original["FC"] - retrain["FC"]
    return (original["FC"] - metrics["FC"]) / span if span > 0 else 0.0


def result_flags(metrics: Mapping[str, float], original: Mapping[str, float], retrain: Mapping[str, float],
                 num_classes: int, accuracies: Iterable[str] = ("TA", "RA"),
                 keys: Iterable[str] = GAP_KEYS) -> list[str]:
    """What makes a result not a result.

    * ``"at chance"``: any of ``accuracies`` at chance (a collapsed model);
    * ``"damaged"``: any of them below 3/4 of Retrain's margin above chance (see :func:`damaged`);
    * ``"no-op"``: every one of ``keys`` equal to the original's *and* the forget set's confidence
      moved less than ``NOOP_PROGRESS`` of the way to Retrain's. The second half keeps a method that
      did unlearn (e.g. lowered the forget set's confidence to Retrain's) but flipped no prediction,
      which on a small, well-fitted dataset can be the right answer, from being called a no-op.
    """
    accuracies = tuple(accuracies)
    flags = ["at chance"] if any(at_chance(metrics[k], num_classes) for k in accuracies) else []
    if any(damaged(metrics[k], retrain[k], num_classes) for k in accuracies) and not flags:
        flags.append("damaged")
    unchanged = all(metrics[k] == original[k] for k in keys)
    if unchanged and forget_progress(metrics, original, retrain) < NOOP_PROGRESS:
        flags.append("no-op")
    return flags


def _balanced(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Subsample the larger of two sets to the size of the smaller (without replacement)."""
    n = min(len(a), len(b))

    def pick(v: np.ndarray) -> np.ndarray:
        return v if len(v) == n else v[rng.choice(len(v), n, replace=False)]

    return pick(a), pick(b)


def mia_efficacy(p_retain: np.ndarray, p_test: np.ndarray, p_forget: np.ndarray, seed: int = 0) -> float:
    """Share (%) of the forget set an SVC trained on retain=member / test=non-member calls non-member."""
    member, non_member = _balanced(np.asarray(p_retain), np.asarray(p_test), np.random.default_rng(seed))
    feats = np.concatenate([member, non_member])[:, None]
    labels = np.concatenate([np.ones(len(member)), np.zeros(len(non_member))])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(feats, labels)
    return 100.0 * float(np.mean(clf.predict(np.asarray(p_forget)[:, None]) == 0))


def mia_lr(loss_forget: np.ndarray, loss_test: np.ndarray, seed: int = 0, n_splits: int = 5) -> float:
    """Cross-validated accuracy (%) of a loss-threshold logistic regression, forget vs test."""
    member, non_member = _balanced(np.asarray(loss_forget), np.asarray(loss_test), np.random.default_rng(seed))
    feats = np.concatenate([member, non_member])[:, None]
    labels = np.concatenate([np.ones(len(member)), np.zeros(len(non_member))])
    folds = StratifiedKFold(n_splits=min(n_splits, len(member)), shuffle=True, random_state=seed)
    return 100.0 * float(np.mean(cross_val_score(LogisticRegression(), feats, labels, cv=folds, scoring="accuracy")))


def avg_gap(metrics: Mapping[str, float], reference: Mapping[str, float], keys: Iterable[str] = GAP_KEYS) -> float:
    """Mean absolute difference to the reference (Retrain) over ``keys``."""
    return float(np.mean([abs(metrics[k] - reference[k]) for k in keys]))


def mean_std(values: Iterable[float | None]) -> tuple[float, float] | None:
    """Mean and sample standard deviation (0 for one value) of the non-missing values; None if none."""
    vals = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def evaluate_model(model: nn.Module, forget: Split, retain: Split, test: Split,
                   device: str | torch.device | None = None, seed: int = 0,
                   test_forgotten: Split | None = None) -> dict[str, float]:
    """UA, RA, TA, MIA (efficacy), MIA_LR for one model; ``UA_test`` too in class-wise forgetting.
    Each split is read once, in batches on ``device`` (None: the model's)."""
    c_f, p_f, l_f = model_outputs(model, forget, device)
    c_r, p_r, _ = model_outputs(model, retain, device)
    c_t, p_t, l_t = model_outputs(model, test, device)
    out = {"UA": 100.0 - accuracy(c_f), "RA": accuracy(c_r), "TA": accuracy(c_t),
           "MIA": mia_efficacy(p_r, p_t, p_f, seed), "MIA_LR": mia_lr(l_f, l_t, seed), "FC": forget_confidence(p_f)}
    if test_forgotten is not None and len(test_forgotten):
        out["UA_test"] = 100.0 - accuracy(model_outputs(model, test_forgotten, device)[0])
    return out
