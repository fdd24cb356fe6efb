"""Benchmarks, one command: ``ltu-fast bench [step|adamw|aggregators] ...`` (or ``python -m ltu_fast.bench ...``).

    ltu-fast bench           the optimizer step table: fused harmonize + SGD/AdamW per backend against
                             torch-written per-layer PCGrad, and against the bytes-moved floor
                             (optimizer_step.py)
    ltu-fast bench step      the full small-batch training step in blocks of consecutive steps, paired
                             against plain torch (training_step.py)
    ltu-fast bench adamw     fused HarmonizedAdamW against Harmonized(AdamW(fused=True)) and a
                             torch-written PCGrad + AdamW(foreach) (adamw.py)
    ltu-fast bench aggregators
                             the fused step per aggregator at K = 2, 4, 8, against PCGrad's and the
                             floor (aggregators.py)

The torch-written contenders live once, in baselines.py; parameter layouts of common networks in
shapes.py; timing helpers in timing.py. Measured numbers: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {"step": "training_step", "adamw": "adamw", "aggregators": "aggregators"}  # -> module


def main(argv: list[str] | None = None) -> int | None:
    """Dispatch to one bench; each module imports torch and the kernels only when asked for."""
    argv = list(sys.argv[1:] if argv is None else argv)
    module = "optimizer_step"
    if argv and argv[0] in SUBCOMMANDS:
        module, argv = SUBCOMMANDS[argv[0]], argv[1:]
    return importlib.import_module(f".{module}", __name__).main(argv)
