"""Triton's fused AdamW vs the float64 reference (through the interpreter on CPU, compiled on a GPU)."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported (see test_triton_backend.py)

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_adamw import adamw_inputs, assert_adamw_matches_reference

pytest.importorskip("triton")
from ltu_fast.backends import get_backend
from ltu_fast.plan import SegmentPlan

triton_backend = get_backend("triton")
if triton_backend.availability() is not None:
    pytest.skip(f"triton backend: {triton_backend.availability()}", allow_module_level=True)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    """Interpreter-sized launches: 48-element chunks, 16-element blocks (tails everywhere)."""
    monkeypatch.setattr(triton_backend, "CHUNK", 48)
    monkeypatch.setattr(triton_backend, "BLOCK", 16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@settings(max_examples=4)
@given(numels=st.lists(st.integers(1, 120), min_size=1, max_size=4), k=st.integers(1, 3),
       seed=st.integers(0, 2**16), amsgrad=st.booleans(), align=st.sampled_from([4, 64]))
def test_triton_adamw_apply_matches_reference(dtype, numels, k, seed, amsgrad, align):
    plan = SegmentPlan.build(numels, [i % 2 for i in range(len(numels))], list(range(len(numels))),
                             element_size=4, align_bytes=align)
    assert_adamw_matches_reference("triton", plan, *adamw_inputs(plan, k, seed, dtype, DEVICE, amsgrad))


def test_harmonized_adamw_on_triton_matches_the_cpu_path():
    from torch import nn

    from ltu_fast import HarmonizedAdamW

    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2)).to(DEVICE) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [HarmonizedAdamW(m.parameters(), lr=0.01, amsgrad=True, objectives=2, backend=b)
            for m, b in zip(models, ("triton", "reference"))]
    x = torch.randn(8, 5, device=DEVICE)
    for _ in range(3):
        for model, opt in zip(models, opts):
            opt.zero_grad()
            with opt.objective(0):
                model(x).pow(2).mean().backward()
            with opt.objective(1):
                (1 - model(x)).abs().mean().backward()
            opt.step()
    for a, b in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
