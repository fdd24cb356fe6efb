"""Unlearn your own trained model: ``ltu-fast unlearn --original CKPT ...`` (:func:`unlearn_own`).

Given a dataset as stored (read per sample and streamed, :func:`~ltu_fast.unlearn.data.open_dataset`),
a model trained on its training split and the samples to forget, this builds the task, runs the
chosen methods on copies of the model, saves each unlearned model and scores every one with the
protocol's metrics. Everything the input can get wrong (checkpoint, indices, classes, data) is
checked before anything is written. The splits, all disjoint:

    train  -> forget (--forget-index or --forget-classes) | heldout (--heldout-index) | retain
    retain -> retain_access: the --retain-access share (seeded) that approximate methods may read
    test   -> heldout (without --heldout-index: a seeded, stratified half) | test (evaluation only;
              in class-wise forgetting its forgotten classes give UA_test)

The training split is :func:`~ltu_fast.unlearn.data.train_test`'s: the dataset's own, or for one
without a test split (``digits``, an ``x``/``y`` npz, an ImageFolder without ``train``/``test``)
the comparison's stratified cut by ``test_ratio`` and the seed.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset
from tqdm.auto import tqdm

from .api import UnlearnTask, resolve_methods
from .assess import unlearn
from .checkpoints import load_module, load_state_dict, load_weights, save_model
from .data import NORMALIZATION, stratified_cut, train_test
from .images import ImageSet
from .metrics import at_chance, avg_gap, evaluate_model, result_flags
from .models import build_model, model_factory
from .report import own_table, write_text
from .splits import DatasetSplit, Split
from .transforms import Normalize

if TYPE_CHECKING:
    from .runner import ExperimentConfig

__all__ = ["OwnModel", "Prepared", "prepare", "read_indices", "unlearn_own"]

STATS_BATCH = 512


@dataclass(frozen=True)
class OwnModel:
    """What unlearning your own model needs beyond an ``ExperimentConfig`` (which gives the dataset,
    ``model``, methods, ``recipe`` for Retrain, seed, device, ``out``...)."""

    original: str                          # the checkpoint
    pickled: bool = False                  # a whole pickled nn.Module (unsafe load), not a state_dict
    forget_index: str | None = None        # .npy / text file of indices into the training split
    heldout_index: str | None = None       # training samples the original never saw
    mean: tuple[float, ...] | None = None  # input normalisation your model was trained with
    std: tuple[float, ...] | None = None
    workers: int | None = None             # DataLoader workers (None: 4 on CUDA, 0 elsewhere)


def read_indices(path: str | Path, n: int, option: str) -> np.ndarray:
    """Sorted int64 indices into a set of ``n`` samples from a ``.npy`` array or a text file of
    integers (separated by whitespace or commas); empty, duplicated or out-of-range is an error."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{option}: {path} does not exist")
    if path.suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{option}: cannot read {path} as a .npy array ({err})") from None
        if values.dtype.kind not in "iu":
            raise ValueError(f"{option}: {path} holds {values.dtype} values; indices must be integers")
        values = values.reshape(-1).astype(np.int64)
    else:
        tokens = [t for t in re.split(r"[\s,]+", path.read_text()) if t]
        bad = next((t for t in tokens if not re.fullmatch(r"[+-]?\d+", t)), None)
        if bad is not None:
            raise ValueError(f"{option}: {path} holds {bad!r}, not an integer index")
        values = np.asarray([int(t) for t in tokens], dtype=np.int64)
    if not len(values):
        raise ValueError(f"{option}: {path} holds no indices")
    outside = values[(values < 0) | (values >= n)]
    if len(outside):
        raise ValueError(f"{option}: index {outside[0]} is out of range: the training split has {n} samples "
                         f"(0..{n - 1}); {len(outside)} indices outside")
    unique, counts = np.unique(values, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{option}: index {unique[counts > 1][0]} appears {counts[counts > 1][0]} times; "
                         f"{int((counts > 1).sum())} indices are duplicated")
    return unique


def channel_stats(images: ImageSet, workers: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``images`` (not normalised), in one streamed pass, in float64."""
    split = DatasetSplit(images, "mean/std", num_workers=workers)
    total = square = None
    count = 0
    for x, _ in split.batches(STATS_BATCH):
        pixels = x.double().transpose(0, 1).reshape(x.shape[1], -1)  # [C, N*H*W]
        total = pixels.sum(1) if total is None else total + pixels.sum(1)
        square = pixels.pow(2).sum(1) if square is None else square + pixels.pow(2).sum(1)
        count += pixels.shape[1]
    mean = total / count
    std = (square / count - mean.pow(2)).clamp_min(0).sqrt() + 1e-6
    return tuple(mean.tolist()), tuple(std.tolist())


def _normalization(config: ExperimentConfig, own: OwnModel, train: ImageSet, workers: int
                   ) -> tuple[Normalize | None, str]:
    """How inputs are normalised, and where that comes from: --mean/--std, CIFAR's standard
    constants, else the training split's statistics; flat (non-image) inputs are used as stored."""
    images = train[0][0].ndim == 3
    if (own.mean is None) != (own.std is None):
        raise ValueError("--mean / --std: give both (one value per channel each) or neither")
    if own.mean is not None:
        if not images:
            raise ValueError("--mean / --std: normalisation applies to images [C, H, W]; these inputs are flat")
        if len(own.mean) != train[0][0].shape[0]:
            raise ValueError(f"--mean / --std: {len(own.mean)} values for {train[0][0].shape[0]}-channel images")
        return Normalize(own.mean, own.std), "--mean / --std"
    if not images:
        return None, "none (flat inputs, used as stored)"
    if config.dataset in NORMALIZATION:
        return Normalize(*NORMALIZATION[config.dataset]), f"the standard {config.dataset} constants"
    return Normalize(*channel_stats(train, workers)), "the training split's per-channel statistics"


@dataclass
class Prepared:
    """A checked unlearning request: the task, the evaluation splits, the original and the record of
    how it was built."""

    task: UnlearnTask
    test: Split
    test_forgotten: Split | None
    original: nn.Module
    methods: list[str]
    retrain: bool
    record: dict[str, Any]


def _load_original(config: ExperimentConfig, own: OwnModel, shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if own.pickled:
        return load_module(own.original)
    what = f"--model {config.model} ({'x'.join(map(str, shape))} inputs, {num_classes} classes)"
    return load_weights(build_model(config.model, shape, num_classes), load_state_dict(own.original), what)


def _check_outputs(model: nn.Module, sample: torch.Tensor, num_classes: int, device: str) -> None:
    with torch.no_grad():
        out = model.eval()(sample[None].to(device))
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise ValueError(f"--original: the model maps one input to an output of shape {tuple(out.shape)}, but the "
                         f"data has {num_classes} classes (labels 0..{num_classes - 1}): expected (1, {num_classes})")


def _forget_and_heldout(config: ExperimentConfig, own: OwnModel, labels: np.ndarray, num_classes: int
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """Indices into the training split of the forget set and of the held-out samples (if given)."""
    n = len(labels)
    if own.forget_index is not None:
        forget_idx = read_indices(own.forget_index, n, "--forget-index")
    else:
        bad = [c for c in config.forget_classes if not 0 <= c < num_classes]
        if bad or len(set(config.forget_classes)) >= num_classes:
            raise ValueError(f"--forget-classes (forget_classes): {list(config.forget_classes)} must be some, not "
                             f"all, of the classes 0..{num_classes - 1}")
        forget_idx = np.flatnonzero(np.isin(labels, config.forget_classes))
        if not len(forget_idx):
            raise ValueError(f"--forget-classes (forget_classes): no training sample has a class of "
                             f"{list(config.forget_classes)}")
    if own.heldout_index is None:
        return forget_idx, None
    held_idx = read_indices(own.heldout_index, n, "--heldout-index")
    both = np.intersect1d(held_idx, forget_idx)
    if len(both):
        raise ValueError(f"--heldout-index: index {both[0]} is also to be forgotten ({len(both)} shared with the "
                         "forget set); held-out samples are ones the original never trained on")
    return forget_idx, held_idx


def prepare(config: ExperimentConfig, own: OwnModel) -> Prepared:
    """Check everything and build the task; writes nothing."""
    if len(config.seeds) != 1:
        raise ValueError(f"--seeds (seeds): unlearning your own model takes one seed, got {list(config.seeds)}")
    if (own.forget_index is None) == (not config.forget_classes):
        raise ValueError("--forget-index / --forget-classes: give exactly one (sample indices or whole classes)")
    if not 0 < config.retain_access <= 1:
        raise ValueError(f"--retain-access (retain_access): must lie in (0, 1], got {config.retain_access}")
    methods = resolve_methods(config.methods)
    retrain = config.methods is not None and "retrain" in config.methods
    if retrain and own.pickled:
        raise ValueError("--methods retrain: needs a built-in --model to train from scratch; a pickled module "
                         "cannot be re-initialised reliably")
    seed, cuda = config.seeds[0], torch.device(config.device).type == "cuda"
    workers = own.workers if own.workers is not None else (min(4, os.cpu_count() or 1) if cuda else 0)
    train, test, num_classes = train_test(config.dataset, config.data_root, seed, config.test_ratio)
    forget_idx, held_idx = _forget_and_heldout(config, own, train.targets, num_classes)
    kept = forget_idx if held_idx is None else np.union1d(forget_idx, held_idx)
    retain_idx = np.setdiff1d(np.arange(len(train)), kept)
    if not len(retain_idx):
        raise ValueError("--forget-index / --forget-classes: nothing of the training split is left to retain")
    n_access = max(1, round(config.retain_access * len(retain_idx)))
    access_idx = np.sort(np.random.default_rng(seed).choice(retain_idx, size=n_access, replace=False))
    normalize, norm_source = _normalization(config, own, train, workers)
    train.normalize = test.normalize = normalize
    if held_idx is None:
        test_idx, held_part = stratified_cut(test.targets, 0.5, seed)
        heldout = Subset(test, held_part.tolist())
    else:
        test_idx, heldout = np.arange(len(test)), Subset(train, held_idx.tolist())
    gone = np.isin(test.targets[test_idx], config.forget_classes)
    shape = tuple(train[0][0].shape)
    model = _load_original(config, own, shape, num_classes).to(config.device)
    _check_outputs(model, train[0][0], num_classes, config.device)
    task = UnlearnTask.from_datasets(
        forget=Subset(train, forget_idx.tolist()), retain=Subset(train, access_idx.tolist()), heldout=heldout,
        retain_full=Subset(train, retain_idx.tolist()), num_classes=num_classes,
        model_factory=None if own.pickled else model_factory(config.model, shape, num_classes),
        train_recipe=asdict(config.recipe), device=config.device, seed=seed, num_workers=workers,
        progress=config.progress)
    options = {"num_classes": num_classes, "num_workers": workers, "progress": config.progress}
    evaluation = DatasetSplit(Subset(test, test_idx[~gone].tolist()), "test", **options)
    forgotten = DatasetSplit(Subset(test, test_idx[gone].tolist()), "test (forgotten classes)", **options) \
        if gone.any() else None
    record = {"sizes": {"train": len(train), "forget": len(forget_idx), "retain": len(retain_idx),
                        "retain_access": len(access_idx), "heldout": len(heldout), "test": len(evaluation),
                        "test_forgotten": 0 if forgotten is None else len(forgotten)},
              "heldout": "--heldout-index" if held_idx is not None else "half of the test split",
              "normalization": {"source": norm_source, **({"mean": normalize.mean, "std": normalize.std}
                                                          if normalize else {})},
              "input_shape": list(shape), "num_classes": num_classes, "workers": workers}
    return Prepared(task, evaluation, forgotten, model, methods, retrain, record)


def _out_dir(config: ExperimentConfig) -> Path:
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out (out): {out} is a file")
    if (out / "results.json").exists() and not config.fresh:
        raise ValueError(f"--out (out): {out} already holds results; choose another --out or pass --fresh to replace them")
    return out


def _score(prepared: Prepared, model: nn.Module, config: ExperimentConfig) -> dict[str, float]:
    task = prepared.task
    return evaluate_model(model, task.forget, task.retain_full, prepared.test, config.device, task.seed,
                          prepared.test_forgotten)


def _finish(rows: dict[str, dict[str, Any]], num_classes: int) -> None:
    """Avg. Gap and flags of every row, against Retrain's scores when Retrain was run."""
    retrain, original = rows.get("retrain"), rows["original"]
    for method, row in rows.items():
        if "error" in row:
            continue
        if retrain is not None and "error" not in retrain:
            row["gap"] = avg_gap(row, retrain)
            row["flags"] = result_flags(row, original, retrain, num_classes) if method not in ("original", "retrain") else []
        else:
            row["flags"] = ["at chance"] if any(at_chance(row[k], num_classes) for k in ("TA", "RA")) else []


def unlearn_own(config: ExperimentConfig, own: OwnModel) -> dict[str, Any]:
    """Unlearn ``own.original`` with every requested method; writes ``out/models/<method>.pt`` (each
    unlearned model: a state_dict, or the whole module for a ``pickled`` original), ``results.json``
    and ``results.md``; returns the results."""
    out = _out_dir(config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    prepared = prepare(config, own)
    sizes = prepared.record["sizes"]
    if own.forget_index is not None:  # the tuned setting closest to this request's forget share
        config = replace(config, forget_ratio=round(sizes["forget"] / sizes["train"], 4))
    kwargs, tuned_from = config.resolved_kwargs()
    results: dict[str, Any] = {"config": json.loads(json.dumps(asdict(config), default=str)), "own": asdict(own),
                               **prepared.record, "defaults": tuned_from or "constructor defaults", "rows": {}}
    rows = results["rows"]
    rows["original"] = _score(prepared, prepared.original, config)
    runs = ([("retrain", {"progress": config.progress})] if prepared.retrain else []) + \
        [(m, kwargs.get(m, {})) for m in prepared.methods]
    for method, method_kwargs in tqdm(runs, desc="unlearn", disable=not config.progress):
        try:
            result = unlearn(prepared.original, prepared.task, method, **method_kwargs)
            path = save_model(result.model, out / "models" / f"{method}.pt", whole=own.pickled)
            info = {k: v for k, v in result.info.items() if k not in ("rte", "config")}
            rows[method] = {**_score(prepared, result.model, config), "RTE": result.info["rte"],
                            "method_config": result.info["config"], "model": str(path),
                            "info": json.loads(json.dumps(info, default=str))}
        except Exception as err:  # noqa: BLE001 -- one failed method must not sink the others
            warnings.warn(f"method {method!r} failed: {err!r}", stacklevel=2)
            rows[method] = {"error": repr(err)}
        _finish(rows, prepared.task.num_classes)
        write_text(out / "results.json", json.dumps(results, indent=1, default=str))  # after each method
    _finish(rows, prepared.task.num_classes)
    write_text(out / "results.json", json.dumps(results, indent=1, default=str))
    write_text(out / "results.md", own_table(results))
    return results
