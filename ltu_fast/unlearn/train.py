"""Training of the original model and of Retrain (same recipe), with a disk cache.

Both are expensive and fully determined by (training code, model code, data, split, recipe, seed),
so they are cached under a hash of all of those: reruns, extra methods and extra metrics reuse
them, and a change to the training loop or the model code can never serve a stale model. The cache
stores the measured training time too, so Retrain's RTE stays the time it really took.

The default recipe warms the learning rate up over the first epoch and clips the global gradient
norm: without both, SGD at lr 0.1 with momentum 0.9 occasionally diverged to a chance-level model.
``grad_restrict`` > 0 adds IAU's gradient-restriction term (off by default; docs/methods.md).
``augment`` adds the standard CIFAR augmentation (random crop of the 4-pixel padded image, horizontal
flip), ``amp`` bfloat16 autocast on CUDA; both are off by default and on in the ``salun`` preset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .splits import Split
from .transforms import random_crop_flip

__all__ = ["CODE_VERSION", "TrainRecipe", "batch_loss", "cache_key", "default_cache_dir", "train_cached", "train_model"]

SCHEDULES = ("cosine", "step", "constant")


def _code_version() -> str:
    """Hash of the code that decides what a trained model is: this loop and the model definitions."""
    digest = hashlib.sha256(torch.__version__.encode())
    for name in ("train.py", "models.py"):
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()


@dataclass(frozen=True)
class TrainRecipe:
    """SGD + momentum, fixed epochs, linear warm-up then ``schedule``, global gradient-norm clipping.

    Defaults reach ~99% train / ~97% test accuracy on MNIST 5k with ``cnn``. ``clip_norm`` 0
    disables clipping; ``warmup_epochs`` may be fractional. ``grad_restrict`` is the weight of IAU's
    gradient restriction (:func:`batch_loss`); 0, the default, trains on plain cross-entropy.
    ``schedule="step"`` multiplies the lr by 0.1 at each of ``milestones`` (epochs), or, without
    them, at 1/2 and 3/4 of the steps. ``augment``: random crop with padding 4 and horizontal flip
    of every training batch (images only, :mod:`~ltu_fast.unlearn.transforms`); ``amp``: forward
    and loss under bfloat16 autocast on CUDA devices (ignored elsewhere).
    """

    epochs: int = 12
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    clip_norm: float = 5.0
    grad_restrict: float = 0.0
    milestones: tuple[int, ...] = ()
    augment: bool = False
    amp: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"recipe schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"recipe: epochs and batch_size must be >= 1 and lr > 0, got {self}")
        if self.warmup_epochs < 0 or self.clip_norm < 0:
            raise ValueError(f"recipe: warmup_epochs and clip_norm must be >= 0, got {self}")
        if not (math.isfinite(self.grad_restrict) and self.grad_restrict >= 0):
            raise ValueError(f"recipe grad_restrict: expected a finite weight >= 0 (0 = off), got {self.grad_restrict!r}")
        object.__setattr__(self, "grad_restrict", float(self.grad_restrict))  # --recipe grad_restrict=0 keys as 0.0
        milestones = tuple(self.milestones)  # --recipe milestones=[91,136] arrives as a list
        if milestones and (self.schedule != "step" or list(milestones) != sorted(set(milestones))
                           or not all(isinstance(m, int) and 0 < m < self.epochs for m in milestones)):
            raise ValueError(f"recipe milestones: increasing epochs in 1..{self.epochs - 1} of schedule 'step', "
                             f"got {self.milestones!r} with schedule {self.schedule!r}")
        object.__setattr__(self, "milestones", milestones)
        for name in ("augment", "amp"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"recipe {name}: expected true or false, got {getattr(self, name)!r}")

    def safer(self) -> TrainRecipe:
        """The retry recipe for a failed reference: half the peak lr, >= 2 warm-up epochs, clip at 1."""
        return replace(self, lr=self.lr / 2, warmup_epochs=max(self.warmup_epochs, min(2.0, self.epochs / 2)),
                       clip_norm=min(self.clip_norm or 1.0, 1.0))

    def lr_factor(self, step: int, total: int, warmup: int = 0, per_epoch: int = 1) -> float:
        """Multiplier of ``lr`` at ``step`` of ``total`` (``per_epoch`` steps an epoch): linear
        warm-up over ``warmup`` steps, then the schedule."""
        if step < warmup:
            return (step + 1) / warmup
        if self.milestones:
            return 0.1 ** sum(step // per_epoch >= m for m in self.milestones)
        step, total = step - warmup, max(1, total - warmup)
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * step / total))
        if self.schedule == "step":
            return 0.1 ** ((step >= total // 2) + (step >= 3 * total // 4))
        return 1.0


def _clip_scale(grads: list[torch.Tensor], clip_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient multiplier, finite flag) as device scalars: 0 when the gradient is non-finite."""
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    finite = torch.isfinite(norm)
    scale = (clip_norm / (norm + 1e-6)).clamp(max=1.0) if clip_norm > 0 else torch.ones_like(norm)
    return torch.where(finite, scale, torch.zeros_like(scale)), finite


def batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: list[torch.Tensor],
               grad_restrict: float) -> torch.Tensor:
    """Mean cross-entropy, plus ``grad_restrict`` times the sum over parameter tensors of the L2 norm
    of that loss's gradient (IAU's gradient restriction, as in its authors' public code).

    Penalising the batch gradient keeps every sample's pull on the weights small, which is what
    IAU's one first-order unlearning step assumes. The term is differentiated through the gradient
    (double backward), so a restricted step costs about three plain ones. At 0 the loss is exactly
    the plain cross-entropy (no extra graph): default trainings stay bitwise what they were.
    """
    loss = F.cross_entropy(model(x), y)
    if grad_restrict == 0:
        return loss
    grads = torch.autograd.grad(loss, params, create_graph=True, materialize_grads=True)  # unused: zeros
    return loss + grad_restrict * torch.stack([torch.linalg.vector_norm(g) for g in grads]).sum()


def train_model(model: nn.Module, data: Split, recipe: TrainRecipe, seed: int,
                device: str | torch.device = "cpu", desc: str = "train", progress: bool = True,
                report: dict[str, Any] | None = None) -> nn.Module:
    """Train in place with a seeded shuffle; deterministic on CPU for a fixed thread count.

    The SGD step (``torch.optim.SGD`` semantics: coupled weight decay, momentum without dampening) is
    written out because constructing a ``torch.optim`` optimizer imports ``torch._dynamo``, which
    costs seconds to tens of seconds on a busy CPU: more than training the default model. A step
    with a non-finite gradient changes nothing (no parameter, no momentum) and is counted, without a
    host sync per step; ``report["skipped_steps"]`` receives the count. Augmentation draws from its
    own generator, so the order of the batches is the same with and without it.
    """
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    momenta = [torch.zeros_like(p) for p in params]
    per_epoch = math.ceil(len(data) / recipe.batch_size)
    total, warmup = recipe.epochs * per_epoch, round(recipe.warmup_epochs * per_epoch)
    gen = torch.Generator().manual_seed(seed)
    augment = torch.Generator().manual_seed(seed + 1) if recipe.augment else None
    amp = recipe.amp and torch.device(device).type == "cuda"
    skipped = torch.zeros((), dtype=torch.int64, device=device)
    step = 0
    for _ in tqdm(range(recipe.epochs), desc=desc, disable=not progress, leave=False):
        for x, y in data.batches(recipe.batch_size, shuffle=True, generator=gen, device=device):
            for p in params:
                p.grad = None
            if augment is not None:
                x = random_crop_flip(x, augment)
            with torch.autocast("cuda", torch.bfloat16) if amp else contextlib.nullcontext():
                loss = batch_loss(model, x, y, params, recipe.grad_restrict)
            loss.backward()
            grads = [p.grad for p in params]
            scale, finite = _clip_scale(grads, recipe.clip_norm)
            keep = finite.to(grads[0].dtype)
            lr = recipe.lr * recipe.lr_factor(step, total, warmup, per_epoch)
            with torch.no_grad():
                momentum = torch.where(finite, recipe.momentum, 1.0).to(keep.dtype)
                for p, g, buf in zip(params, grads, momenta):
                    g.nan_to_num_(0.0, 0.0, 0.0).mul_(scale)
                    buf.mul_(momentum).add_(g).add_(p * (keep * recipe.weight_decay))
                    p.sub_(buf * (keep * lr))
            skipped += ~finite
            step += 1
    if report is not None:
        report["skipped_steps"] = int(skipped)
    return model.eval()


def default_cache_dir() -> Path:
    """``$LTU_FAST_CACHE`` if set, else ``~/.cache/ltu_fast``."""
    return Path(os.environ.get("LTU_FAST_CACHE", Path.home() / ".cache" / "ltu_fast")).expanduser()


def cache_key(**parts: Any) -> str:
    """A stable hash of JSON-able parts (dataset fingerprint, model name, recipe, seed, role) and the code version."""
    parts = {**parts, "code": CODE_VERSION}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def train_cached(role: str, factory: Callable[[], nn.Module], data: Split, recipe: TrainRecipe, seed: int,
                 key_parts: dict[str, Any], cache_dir: str | Path | None = None,
                 device: str | torch.device = "cpu", progress: bool = True) -> tuple[nn.Module, float, bool]:
    """Return (model, training seconds, cache hit). ``role`` ("original"/"retrain") is part of the key."""
    key = cache_key(role=role, recipe=asdict(recipe), seed=seed, **key_parts)
    path = Path(cache_dir or default_cache_dir()) / f"{role}-{key}.pt"
    torch.manual_seed(seed)
    model = factory()
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state_dict"])
        return model.to(device).eval(), float(saved["seconds"]), True
    start = time.perf_counter()
    report: dict[str, Any] = {}
    train_model(model, data, recipe, seed, device, desc=role, progress=progress, report=report)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # one per writer
    torch.save({"state_dict": model.state_dict(), "seconds": seconds, "key_parts": key_parts, **report}, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a half-written model; two writers
    # of one key (deterministic training: the same bits) both succeed
    return model, seconds, False
