"""scripts/gpu_targets.py reads the table ``ltu_fast.bench`` prints and judges issue #10's targets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ltu_fast.bench import print_table

_spec = importlib.util.spec_from_file_location("gpu_targets",
                                               Path(__file__).resolve().parents[1] / "scripts" / "gpu_targets.py")
targets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(targets)


def _row(model, params_m, variant, ms, x_floor, dtype="float32"):
    return {"model": model, "params_m": params_m, "tensors": 10, "k": 2, "dtype": dtype, "variant": variant,
            "ms": ms, "x_floor": x_floor, "vs_foreach": 1.0}


def test_targets_from_the_printed_table(capsys):
    print("device NVIDIA H100; copy bandwidth 3000 GB/s")
    print_table([_row("resnet18", 11.2, "cuda", 0.20, 1.45), _row("resnet18", 11.2, "triton", 0.25, 1.8),
                 _row("resnet18", 11.2, "foreach", 3.0, 21.0), _row("gpt2_small", 124.4, "cuda", 1.0, 1.16),
                 _row("gpt2_small", 124.4, "triton", 1.4, 1.6), _row("gpt2_small", 124.4, "cuda", 0.5, 3.0, "bfloat16")])
    rows = targets.parse(capsys.readouterr().out)
    assert len(rows) == 6
    got = {text.split(":")[0] + ":" + text.split(":")[1].split()[0]: ok for ok, text in targets.verdicts(rows)}
    assert got == {"resnet18 K=2 float32:cuda": True, "gpt2_small K=2 float32:cuda": False,
                   "resnet18 K=2 float32:triton": True, "gpt2_small K=2 float32:triton": False}
