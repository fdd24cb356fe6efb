"""Shared pieces of every training-based baseline: seeded batch streams, one SGD step, epochs.

Kept minimal on purpose (the data branch owns the project's main training loop); every baseline
and Retrain use these so the step semantics (SGD + momentum + weight decay) are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from ..splits import Split

Batch = tuple[torch.Tensor, torch.Tensor]


def generator(seed: int, salt: int = 0) -> torch.Generator:
    """A CPU generator for one purpose of one run (``salt`` separates purposes under one seed)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + salt)


def endless(split: Split, batch_size: int, gen: torch.Generator, device: torch.device) -> Iterator[Batch]:
    """Shuffled mini-batches forever (a fresh permutation per pass), so loops count steps, not epochs."""
    batch_size = min(batch_size, len(split))
    while True:
        yield from split.batches(batch_size, shuffle=True, generator=gen, device=device, drop_last=True)


def make_sgd(params, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor,
            grad_hook: Callable[[], None] | None = None) -> None:
    """One step: zero, backward, optional in-place gradient edit (e.g. a saliency mask), step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_hook is not None:
        grad_hook()
    opt.step()


def steps_per_epoch(split: Split, batch_size: int) -> int:
    return max(1, len(split) // min(batch_size, len(split)))


def random_other_labels(y: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from the true one, per sample (Random Labeling)."""
    shift = torch.randint(1, num_classes, y.shape, generator=gen).to(y.device)
    return (y + shift) % num_classes
