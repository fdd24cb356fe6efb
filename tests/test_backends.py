"""Every usable backend against the float64 reference, on every device, in every dtype it supports."""

import pytest
import torch
from conftest import DEVICES
from helpers import assert_backend_matches_reference, hyper_table, plans, random_rows
from hypothesis import given
from hypothesis import strategies as st

from ltu_fast.backends import BACKEND_NAMES, available_backends, get_backend, resolve_backend
from ltu_fast.plan import SegmentPlan

AVAILABLE = available_backends()
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
GROUPS = [
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01, "nesterov": True, "maximize": False},
    {"lr": 0.5, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": True},
    {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.0, "nesterov": False, "maximize": False},
]


def _backend_or_skip(name: str, device: str, dtype: torch.dtype):
    if AVAILABLE[name] is not None:
        pytest.skip(f"{name}: {AVAILABLE[name]}")
    backend = get_backend(name)
    if not backend.supports(torch.device(device), dtype, dtype):
        pytest.skip(f"{name} does not support {dtype} on {device}")
    return backend


def _inputs(plan: SegmentPlan, k: int, seed: int, dtype: torch.dtype, device: str, with_momentum: bool = True):
    gen = torch.Generator().manual_seed(seed + 1)
    rows = random_rows(plan, k, seed, dtype).to(device)
    beta = (torch.rand(plan.num_segments, k, generator=gen) * 2 - 0.5).to(device)
    param = random_rows(plan, 1, seed + 2, dtype)[0].to(device)
    momentum = random_rows(plan, 1, seed + 3, dtype)[0].to(device) if with_momentum else param.new_zeros(0)
    hyper = hyper_table([GROUPS[g % len(GROUPS)] for g in range(plan.num_groups)]).to(device)
    if not with_momentum:
        hyper[:, 2:5] = 0.0  # momentum, dampening, nesterov
    ready = (torch.arange(plan.num_groups) % 2).float().to(device)
    return rows, beta, param, momentum, hyper, ready


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", BACKEND_NAMES)
@given(plan=plans(max_tensors=6, max_numel=300), k=st.integers(1, 4), seed=st.integers(0, 2**16),
       with_momentum=st.booleans())
def test_backend_matches_reference(name, dtype, device, plan, k, seed, with_momentum):
    _backend_or_skip(name, device, dtype)
    assert_backend_matches_reference(name, plan, *_inputs(plan, k, seed, dtype, device, with_momentum))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_backend_large_segment(name, device):
    """A segment far bigger than any chunk, spread over tensors in different groups."""
    _backend_or_skip(name, device, torch.float32)
    plan = SegmentPlan.build([70_001, 3, 40_000, 17], [0, 1, 0, 1], [0, 1, 2, 0])
    assert_backend_matches_reference(name, plan, *_inputs(plan, 2, 7, torch.float32, device))


def _three_rows(name: str, device: str):
    """A backend (or a skip), a three-tensor plan on ``device``, three float32 rows and coefficients."""
    backend = _backend_or_skip(name, device, torch.float32)
    plan = SegmentPlan.build([5000, 7, 3000], [0, 1, 0])
    rows, beta, *_ = _inputs(plan, 3, 3, torch.float32, device)
    return backend, plan.to(device), rows, beta


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_backend_is_bitwise_repeatable(name, device):
    backend, plan, rows, beta = _three_rows(name, device)
    assert torch.equal(backend.gram(rows, plan), backend.gram(rows, plan))
    assert torch.equal(backend.combine(rows, beta, plan), backend.combine(rows, beta, plan))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_combine_into_a_given_row(name, device):
    """``out=``: the same values written into the caller's buffer, its padding left as it was (zero)."""
    backend, plan, rows, beta = _three_rows(name, device)
    out = torch.zeros(plan.total, device=device)
    assert backend.combine(rows, beta, plan, out=out) is out
    assert torch.equal(out, backend.combine(rows, beta, plan))
    with pytest.raises(ValueError, match="out: expected"):
        backend.combine(rows, beta, plan, out=torch.zeros(plan.total - 1, device=device))


def test_reference_is_always_available():
    assert AVAILABLE["reference"] is None
    assert set(AVAILABLE) == set(BACKEND_NAMES)


def test_auto_resolves_to_a_usable_backend(monkeypatch):
    monkeypatch.delenv("LTU_FAST_BACKEND", raising=False)
    backend = resolve_backend("auto", torch.device("cpu"), torch.float32)
    assert AVAILABLE[backend.name] is None
    assert resolve_backend("auto", torch.device("cpu"), torch.float64).name in ("reference", "cpu")


def test_env_var_forces_backend(monkeypatch):
    monkeypatch.setenv("LTU_FAST_BACKEND", "reference")
    assert resolve_backend("auto", torch.device("cpu"), torch.float32).name == "reference"


def test_unavailable_backend_names_its_reason():
    for name, reason in AVAILABLE.items():
        if reason is not None:
            with pytest.raises(ValueError, match=f"backend='{name}' is not available"):
                resolve_backend(name, torch.device("cpu"), torch.float32)
