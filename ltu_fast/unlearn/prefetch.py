"""Train the reference models (original, Retrain) of comparisons ahead of them, in parallel processes.

A comparison from an empty cache spends most of its time training references, one per role and
seed, each on one thread. Independent references train side by side in ``jobs`` processes (each
with the comparison's thread count), into the same cache the comparisons then read, so every
number is what a sequential run prints (each model is trained alone from its own seed). One task
holds every comparison of one seed, in order, so the original those comparisons share is trained
once and the later ones find it cached (two processes never train the same model).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import TYPE_CHECKING

import torch

from .references import reference_pair

if TYPE_CHECKING:
    from .runner import ExperimentConfig

__all__ = ["prefetch_references"]


def _train_seed(seed: int, configs: Sequence[ExperimentConfig]) -> None:
    for config in configs:
        torch.set_num_threads(config.threads or 1)
        reference_pair(config.split_config(), config.model, config.recipe, seed, config.cache_dir, config.device,
                       progress=False)


def prefetch_references(configs: Sequence[ExperimentConfig], jobs: int) -> None:
    """Train (or find cached) every reference pair of ``configs`` in ``jobs`` processes; with one job
    or one pair, nothing is done here (the comparisons train them as they go). Raises what a
    reference's training raises (e.g. ``ReferenceTrainingError``)."""
    by_seed: dict[int, list[ExperimentConfig]] = {}
    for config in configs:
        for seed in config.seeds:
            by_seed.setdefault(seed, []).append(config)
    if jobs <= 1 or len(by_seed) <= 1:
        return
    with ProcessPoolExecutor(min(jobs, len(by_seed)), mp_context=get_context("spawn")) as pool:
        for future in [pool.submit(_train_seed, seed, group) for seed, group in by_seed.items()]:
            future.result()
