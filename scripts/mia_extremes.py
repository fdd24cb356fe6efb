"""Why LTU's MIA-efficacy jumps between 0 and 100 in class-wise forgetting (docs/methods.md).

MIA-efficacy fits an RBF SVC on one feature, the true-class probability, of retain (members) and
test (non-members) samples, and reports the share of the forget set it calls non-member. This prints,
for LTU and RL at their tuned defaults on reported (mode, level, seed) cells of the sweep, that share
next to where the forget set's probabilities lie against the test set's: a reading of reported
numbers, never a choice of hyper-parameters.

    PYTHONPATH=. python scripts/mia_extremes.py --cells 0.01:3 0.01:0 0.25:2 [--ltu-set momentum=0.9]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from ltu_fast.unlearn.metrics import mia_efficacy, model_outputs
from ltu_fast.unlearn.references import reference_pair
from ltu_fast.unlearn.runner import ExperimentConfig, unlearn
from ltu_fast.unlearn.sweep import MODES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=["0.01:3", "0.01:0", "0.25:2"], help="LEVEL:SEED pairs")
    parser.add_argument("--mode", default="class", choices=sorted(MODES))
    parser.add_argument("--methods", nargs="+", default=["ltu", "rl"])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--ltu-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of LTU's tuned defaults, e.g. momentum=0.9 (values parsed as floats)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the sweep's setting: the same models, bit for bit
    print("| level | seed | method | MIA-eff. | forget p: median | forget p: max | test p: min | test p: 1% quantile |")
    print("|---|---|---|---|---|---|---|---|")
    for cell in args.cells:
        level, seed = float(cell.split(":")[0]), int(cell.split(":")[1])
        config = replace(ExperimentConfig(seeds=(seed,), cache_dir=args.cache_dir, progress=False),
                         **MODES[args.mode], retain_access=level)
        splits, factory, refs = reference_pair(config.split_config(), config.model, config.recipe, seed,
                                               config.cache_dir, config.device, progress=False)
        task = splits.task(factory, {}, config.device)
        tuned = config.resolved_kwargs()[0]
        tuned["ltu"] = {**tuned.get("ltu", {}), **{k: float(v) for k, v in (kv.split("=") for kv in args.ltu_set)}}
        for method in ("retrain", *args.methods):
            model = refs["retrain"].model if method == "retrain" else \
                unlearn(refs["original"].model, task, method, **tuned.get(method, {})).model
            p_forget, p_retain, p_test = (model_outputs(model, data, config.device)[1]
                                          for data in (splits.forget, splits.retain, splits.test))
            mia = mia_efficacy(p_retain, p_test, p_forget, splits.seed)
            print(f"| {level:g} | {seed} | {method} | {mia:.0f} | {np.median(p_forget):.1e} | {p_forget.max():.1e} | "
                  f"{p_test.min():.1e} | {np.quantile(p_test, 0.01):.1e} |")


if __name__ == "__main__":
    main()
