"""The setting options of the scripts that study tuning seeds, and their configuration, which
refuses the seeds the project reports (nothing may be chosen on them)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

import torch

from ltu_fast.unlearn.runner import ExperimentConfig


def add_setting_args(p: argparse.ArgumentParser) -> None:
    """Dataset, forget setting, retain access, seeds and the reference cache."""
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--forget-mode", default="random", choices=("random", "class"))
    p.add_argument("--forget-classes", type=int, nargs="*", default=[])
    p.add_argument("--retain-access", type=float, default=0.1)
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--cache-dir")


def seed_config(args: argparse.Namespace, reserved: Iterable[int]) -> ExperimentConfig:
    """The configuration of ``args`` on one torch thread; exits naming any ``reserved`` seed asked for."""
    taken = sorted(set(args.seeds) & set(reserved))
    if taken:
        raise SystemExit(f"--seeds: {taken} are reserved for reporting")
    torch.set_num_threads(1)
    return ExperimentConfig(dataset=args.dataset, forget_mode=args.forget_mode,
                            forget_classes=tuple(args.forget_classes), retain_access=args.retain_access,
                            seeds=tuple(args.seeds), cache_dir=args.cache_dir, progress=False)
