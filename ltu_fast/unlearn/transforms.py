"""Image transforms in plain torch (no torchvision): per-channel normalisation and the standard
CIFAR training augmentation, a random crop of the image padded by 4 pixels and a horizontal flip.

The augmentation works on a whole batch on its device (one gather), its randomness drawn from a
seeded CPU generator: the same draws on any device and with any number of DataLoader workers, so a
training with augmentation stays a pure function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

__all__ = ["CROP_PADDING", "Normalize", "crop_flip", "random_crop_flip"]

CROP_PADDING = 4


class Normalize:
    """``(x - mean) / std`` per channel, for images [C, H, W] or batches [N, C, H, W] (channels at
    dim -3); picklable, so DataLoader workers can apply it."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or not len(mean):
            raise ValueError(f"normalisation: mean {list(mean)} and std {list(std)} need one value per channel each")
        if not all(s > 0 for s in std):
            raise ValueError(f"normalisation: std must be > 0 per channel, got {list(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._stats = (torch.tensor(self.mean).view(-1, 1, 1), torch.tensor(self.std).view(-1, 1, 1))  # float32

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 3 or x.shape[-3] != len(self.mean):
            raise ValueError(f"normalisation: {len(self.mean)} channel statistics for an input of shape "
                             f"{tuple(x.shape)} (channels at dim -3)")
        if x.dtype != torch.float32 or x.device.type != "cpu":  # the statistics in x's precision and place
            mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device).view(-1, 1, 1) for v in (self.mean, self.std))
        else:
            mean, std = self._stats
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={list(self.mean)}, std={list(self.std)})"


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flip: torch.Tensor, padding: int = CROP_PADDING) -> torch.Tensor:
    """Crop each image of ``x`` [N, C, H, W], zero-padded by ``padding`` on every side, at
    ``offsets`` [N, 2] (row, column of the crop's corner, in 0..2*padding), then mirror the images
    where ``flip`` [N] is True: torchvision's ``RandomCrop(size, padding)`` followed by
    ``RandomHorizontalFlip``, for given draws."""
    if x.ndim != 4:
        raise ValueError(f"augmentation (recipe augment): needs image batches [N, C, H, W], got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    dev = x.device
    rows = offsets[:, :1] + torch.arange(h)  # [N, H]
    cols = torch.arange(w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + offsets[:, 1:]  # [N, W], mirrored inside the crop
    padded = F.pad(x, (padding,) * 4)
    index = (torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
             rows[:, None, :, None], cols[:, None, None, :])
    return padded[tuple(i.to(dev) for i in index)]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """:func:`crop_flip` with offsets uniform in 0..2*padding per axis and a flip with probability
    1/2 per image, drawn from ``generator`` (a CPU generator)."""
    offsets = torch.randint(0, 2 * padding + 1, (x.shape[0], 2), generator=generator)
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    return crop_flip(x, offsets, flip, padding)
