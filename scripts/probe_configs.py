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
from seed_setting import add_setting_args, seed_config

from ltu_fast.unlearn.assess import VAL, Baseline, assess
from ltu_fast.unlearn.tune import REPORTED_SEEDS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_setting_args(p)
    p.add_argument("--method", required=True)
    p.add_argument("--configs", required=True, help="JSON list of keyword dicts")
    args = p.parse_args()
    config = seed_config(args, REPORTED_SEEDS)
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
