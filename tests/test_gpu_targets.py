"""The bench table (``ltu_fast.bench``) on the CPU, and scripts/gpu_targets.py, which judges the GPU
targets from the table it prints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ltu_fast.bench import optimizer_step as bench
from ltu_fast.bench import shapes, timing
from ltu_fast.bench.optimizer_step import print_table

_spec = importlib.util.spec_from_file_location("gpu_targets",
                                               Path(__file__).resolve().parents[1] / "scripts" / "gpu_targets.py")
targets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(targets)


def _row(model, params_m, variant, ms, x_floor, dtype="float32", k=2, rule="sgd"):
    return {"model": model, "params_m": params_m, "tensors": 10, "k": k, "dtype": dtype, "rule": rule,
            "variant": variant, "ms": ms, "x_floor": x_floor, "vs_foreach": 1.0}


def test_targets_from_the_printed_table(capsys):
    print("device NVIDIA H200; copy bandwidth 4300 GB/s")
    print_table([
        _row("resnet18", 11.2, "cuda", 0.30, 2.9),  # eager ResNet-18: launch-bound, reported, not judged
        _row("resnet18", 11.2, "cuda+graph", 0.20, 1.45), _row("resnet18", 11.2, "triton+graph", 0.25, 1.8),
        _row("resnet18", 11.2, "foreach", 3.0, 21.0),
        _row("resnet18", 11.2, "cuda+graph", 0.4, 1.6, rule="adamw"),
        _row("gpt2_small", 124.4, "cuda", 1.0, 1.16), _row("gpt2_small", 124.4, "triton", 1.4, 1.6),
        _row("gpt2_small", 124.4, "cuda", 1.5, 1.19, k=3), _row("gpt2_small", 124.4, "cuda+graph", 1.5, 1.3, k=4),
        _row("gpt2_small", 124.4, "cuda", 0.5, 3.0, "bfloat16"),
        _row("vit_b16", 86.6, "cuda", 1.0, 2.0),  # under 100M and not ResNet-18: no floor target
    ])
    rows = targets.parse(capsys.readouterr().out)
    assert len(rows) == 11
    got = {text.split(":")[0] + ":" + text.split(":")[1].split()[0]: ok for ok, text in targets.verdicts(rows)}
    assert got == {"resnet18 K=2 float32 sgd:cuda+graph": True, "resnet18 K=2 float32 sgd:triton+graph": True,
                   "resnet18 K=2 float32 adamw:cuda+graph": False, "gpt2_small K=2 float32 sgd:cuda": False,
                   "gpt2_small K=2 float32 sgd:triton": False, "gpt2_small K=3 float32 sgd:cuda": True}


def test_time_once_times_back_to_back_calls():
    calls = []
    assert timing.time_once(torch.device("cpu"), lambda: calls.append(1), 5) >= 0
    assert len(calls) == 5


def test_bench_rows_per_rule_and_variant(monkeypatch):
    """SGD: fused rows and the torch baselines; AdamW: fused rows only; graph variants need a GPU."""
    monkeypatch.setitem(shapes.PARAMETER_SIZES, "tiny", lambda: [5, 40, 7])
    fused = "cpu" if bench.get_backend("cpu").availability() is None else "reference"
    variants = [fused, f"{fused}+graph", "cuda+graph", "foreach"]
    for rule, expected in (("sgd", [fused, "foreach"]), ("adamw", [fused])):
        rows = bench.bench_model("tiny", 2, torch.float32, torch.device("cpu"), variants, reps=1, warmup=0,
                                 bandwidth=1e9, rule=rule, calls=2)
        assert [r["variant"] for r in rows] == expected, rule
        assert all(r["rule"] == rule and r["ms"] > 0 and r["x_floor"] > 0 for r in rows)
