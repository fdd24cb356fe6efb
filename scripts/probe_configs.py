"""Validation metrics and flags of a few configurations of one method on chosen seeds, with the
tuner's criterion and without the test split: for checking how stable a tuned choice is on seeds
the tuner did not see (choosing on them would make them tuning seeds).

    PYTHONPATH=$PWD python scripts/probe_configs.py --dataset digits --forget-mode class --forget-classes 3 \
        --method ga --configs '[{"epochs": 5, "lr": 0.02}]' --seeds 105 106 107 108 109
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ltu_fast.unlearn.assess import VAL, Baseline, assess
from ltu_fast.unlearn.runner import ExperimentConfig
from ltu_fast.unlearn.tune import REPORTED_SEEDS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--forget-mode", default="random", choices=("random", "class"))
    p.add_argument("--forget-classes", type=int, nargs="*", default=[])
    p.add_argument("--retain-access", type=float, default=0.1)
    p.add_argument("--method", required=True)
    p.add_argument("--configs", required=True, help="JSON list of keyword dicts")
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--cache-dir")
    args = p.parse_args()
    if set(args.seeds) & set(REPORTED_SEEDS):
        raise SystemExit(f"--seeds: {sorted(set(args.seeds) & set(REPORTED_SEEDS))} are reported seeds")
    torch.set_num_threads(1)
    config = ExperimentConfig(dataset=args.dataset, forget_mode=args.forget_mode,
                              forget_classes=tuple(args.forget_classes), retain_access=args.retain_access,
                              seeds=tuple(args.seeds), cache_dir=args.cache_dir, progress=False)
    bases = [Baseline.of(config, seed, VAL) for seed in args.seeds]
    print("| config | val. gap | per seed: held-out acc. / RA / UA / MIA / forget conf. [flags] |\n|---|---|---|")
    for params in json.loads(args.configs):
        cells, gaps = [], []
        for base in bases:
            entry = assess(base, args.method, params, config.device)
            gaps.append(entry["gap"])
            cells.append(" / ".join(f"{entry[k]:.1f}" for k in ("VA", "RA", "UA", "MIA", "FC"))
                         + (f" [{', '.join(entry['flags'])}]" if entry["flags"] else ""))
        print(f"| {params} | {np.mean(gaps):.2f} | " + "; ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
