"""Triton backend vs the float64 reference, on CPU tensors through the Triton interpreter.

``TRITON_INTERPRET=1`` must be set before Triton is first imported, so this module sets it at
import when there is no GPU (with one, the same tests run compiled on CUDA tensors). Chunks and
blocks are shrunk so small tensors still span several programs, chunks and tails.
"""

from __future__ import annotations

import os
import sys

# The interpreter only works when chosen before triton is imported (torch imports triton as soon as
# torch.library / torch._dynamo load, i.e. once ltu_fast is imported by an earlier test module).
import torch  # does not import triton by itself

_TRITON_IMPORTED_EARLY = "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1"
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
from helpers import (
    apply_sgd,
    assert_backend_matches_reference,
    hyper_table,
    hypers,
    plans,
    random_rows,
)
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("triton")
if _TRITON_IMPORTED_EARLY and not torch.cuda.is_available():
    pytest.skip("triton was imported before TRITON_INTERPRET=1 could be set: export TRITON_INTERPRET=1 for the "
                "test run (or set it at the top of conftest.py)", allow_module_level=True)
from ltu_fast.backends import get_backend
from ltu_fast.plan import SegmentPlan

triton_backend = get_backend("triton")
if triton_backend.availability() is not None:
    pytest.skip(f"triton backend: {triton_backend.availability()}", allow_module_level=True)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ROW_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    """Interpreter-sized launches: 48-element chunks, 16-element blocks (tails everywhere)."""
    monkeypatch.setattr(triton_backend, "CHUNK", 48)
    monkeypatch.setattr(triton_backend, "BLOCK", 16)
    monkeypatch.setattr(triton_backend, "REDUCE_BLOCK", 4)
    monkeypatch.setattr(triton_backend, "AXPY_BLOCK", 32)


def _inputs(plan, k, seed, dtype, groups, with_momentum, ready_bits):
    gen = torch.Generator().manual_seed(seed)
    rows = random_rows(plan, k, seed, dtype).to(DEVICE)
    beta = (torch.rand(plan.num_segments, k, generator=gen) * 2 - 0.5).to(DEVICE)
    param = random_rows(plan, 1, seed + 1, torch.float32)[0].to(DEVICE)
    momentum = random_rows(plan, 1, seed + 2, torch.float32)[0].to(DEVICE) if with_momentum else param.new_zeros(0)
    hyper = hyper_table([groups[g % len(groups)] for g in range(plan.num_groups)]).to(DEVICE)
    ready = torch.tensor([float(ready_bits >> g & 1) for g in range(plan.num_groups)], device=DEVICE)
    return rows, beta, param, momentum, hyper, ready


@settings(max_examples=12, deadline=None)
@given(plan=plans(max_tensors=4, max_numel=130), k=st.integers(1, 4), dtype=st.sampled_from(ROW_DTYPES),
       seed=st.integers(0, 2**16), groups=st.lists(hypers(), min_size=1, max_size=3),
       with_momentum=st.booleans(), ready_bits=st.integers(0, 7))
def test_triton_matches_reference(plan, k, dtype, seed, groups, with_momentum, ready_bits):
    assert_backend_matches_reference(
        "triton", plan, *_inputs(plan, k, seed, dtype, groups, with_momentum, ready_bits))


@pytest.mark.parametrize("k", [5, 8])
def test_triton_beyond_four_objectives(k):
    """K past ``GRAM_WIDE_K`` (the Gram halves its block): still the reference, and exactly symmetric
    (both triangles are written from one accumulator and reduced in one order)."""
    plan = SegmentPlan.build([1, 200, 33, 97], [0, 1, 0, 1], [0, 1, 1, 0])
    groups = [{"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01, "nesterov": False,
               "maximize": False}]
    inputs = _inputs(plan, k, 11, torch.float32, groups, True, 1)
    assert_backend_matches_reference("triton", plan, *inputs)
    stats = triton_backend.gram(inputs[0], plan.to(DEVICE))
    assert torch.equal(stats, stats.transpose(1, 2))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_triton_is_bitwise_repeatable(k):

    plan = SegmentPlan.build([1, 200, 33, 97], [0, 1, 0, 1], [0, 1, 1, 0]).to(DEVICE)
    groups = [{"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01, "nesterov": True,
               "maximize": False}, {"lr": 0.3, "momentum": 0.5, "dampening": 0.2, "weight_decay": 0.0,
                                    "nesterov": False, "maximize": True}]
    rows, beta, param, momentum, hyper, ready = _inputs(plan, k, 5, torch.float32, groups, True, 1)
    assert torch.equal(triton_backend.gram(rows, plan), triton_backend.gram(rows, plan))
    assert torch.equal(triton_backend.combine(rows, beta, plan), triton_backend.combine(rows, beta, plan))
    results = []
    for _ in range(2):
        p, m = param.clone(), momentum.clone()
        apply_sgd(triton_backend, rows, beta, plan, p, m, hyper, ready, torch.zeros(1, device=DEVICE))
        results.append((p, m))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("dtype", ROW_DTYPES)
def test_triton_axpy_device_alpha(dtype):
    gen = torch.Generator().manual_seed(0)
    acc = torch.randn(101, generator=gen).to(DEVICE)
    x = torch.randn(101, generator=gen).to(dtype).to(DEVICE)
    alpha = torch.tensor(-0.75, dtype=torch.float64, device=DEVICE)
    expected = acc.double() + alpha.item() * x.double()
    triton_backend.axpy(acc, x, alpha)
    torch.testing.assert_close(acc.double(), expected, rtol=1e-6, atol=1e-6)
