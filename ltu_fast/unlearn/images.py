"""Labelled images as map-style torch Datasets that read one sample at a time.

A loader (:mod:`~ltu_fast.unlearn.data`) keeps images as they are stored: an array in its own
dtype and layout (CIFAR's uint8 pickles, an npz, the embedded digits) or a list of image files
(an ImageFolder). Each sample is converted when it is read, to float32 [C, H, W] in [0, 1] and
then, if given, normalised per channel; so a DataLoader streams a dataset that never exists as one
float tensor. :meth:`ImageSet.materialise` converts everything at once, by the same code, for the
embedded comparison, which holds its splits in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import Normalize

__all__ = ["ArrayImages", "FileImages", "ImageSet", "as_images", "read_image"]


def as_images(x: np.ndarray) -> np.ndarray:
    """Bring [N,H,W], [N,H,W,C] (C in 1/3) or [N,C,H,W] / [N,D] to float32 channels-first (uint8 / 255)."""
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return x.transpose(0, 3, 1, 2)
    return x


def read_image(path: Path) -> np.ndarray:
    """One image file as float32 RGB [3, H, W] in [0, 1]."""
    from PIL import Image

    with Image.open(path) as img:
        return (np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1)


class ImageSet(Dataset):
    """``(image, label)`` pairs: float32 [C, H, W] (normalised by ``normalize`` when given), int."""

    def __init__(self, targets: np.ndarray, normalize: Normalize | None = None) -> None:
        self.targets = np.asarray(targets, dtype=np.int64)
        self.normalize = normalize

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, i: int) -> np.ndarray:
        """Sample ``i`` as float32 [C, H, W] in [0, 1], not normalised."""
        raise NotImplementedError

    def materialise(self) -> np.ndarray:
        """Every image, float32 [N, C, H, W] in [0, 1], not normalised."""
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(np.ascontiguousarray(self.image(i)))
        return (x if self.normalize is None else self.normalize(x)), int(self.targets[i])


class ArrayImages(ImageSet):
    """Images held as stored (any layout :func:`as_images` accepts, uint8 or float), converted per read."""

    def __init__(self, array: np.ndarray, targets: np.ndarray, normalize: Normalize | None = None) -> None:
        if len(array) != len(targets):
            raise ValueError(f"images: {len(array)} images but {len(targets)} labels")
        super().__init__(targets, normalize)
        self.array = array

    def image(self, i: int) -> np.ndarray:
        return as_images(self.array[i:i + 1])[0]

    def materialise(self) -> np.ndarray:
        return as_images(self.array)


class FileImages(ImageSet):
    """Image files, decoded when read. Every file's size is checked when the set is made (from its
    header, without decoding): images of mixed sizes are an error naming two of them."""

    def __init__(self, files: Sequence[Path], targets: np.ndarray, normalize: Normalize | None = None) -> None:
        from PIL import Image

        if not files:
            raise ValueError("images: no image files")
        super().__init__(targets, normalize)
        self.files = [Path(f) for f in files]
        first = None
        for file in self.files:
            with Image.open(file) as img:
                if first is None:
                    first = (file, img.size)
                elif img.size != first[1]:
                    raise ValueError(f"--data-root (data_root): images of different sizes: {file} is "
                                     f"{img.size[0]}x{img.size[1]}, {first[0]} is {first[1][0]}x{first[1][1]}; "
                                     "resize them first")

    def image(self, i: int) -> np.ndarray:
        return read_image(self.files[i])

    def materialise(self) -> np.ndarray:
        return np.stack([read_image(f) for f in self.files])
