"""The CUDA backend's driver/runtime check and the build's toolkit choice, on fake versions (CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ltu_fast.backends import available_backends, get_backend, resolve_backend

cuda = get_backend("cuda")
triton_backend = get_backend("triton")

_spec = importlib.util.spec_from_file_location(
    "cuda_toolkit", Path(__file__).resolve().parents[1] / "build_tools" / "cuda_toolkit.py")
toolkit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toolkit)


@pytest.mark.parametrize(("driver", "runtime", "problem"), [
    (13000, 13000, None),
    (13020, 13000, None),
    (12080, 12040, None),
    (12020, 12080, None),  # minor-version compatibility within a major release
    (12040, 13000, "driver (12.4) is older than the CUDA 13.0 runtime"),
    (11080, 12010, "driver (11.8) is older than the CUDA 12.1 runtime"),
    (0, 13000, "no CUDA driver"),
])
def test_version_problem(driver, runtime, problem):
    reason = cuda.version_problem(driver, runtime)
    if problem is None:
        assert reason is None
    else:
        assert problem in reason


@pytest.fixture
def gpu_with_old_driver(monkeypatch):
    """A visible GPU whose driver (12.4) predates the module's static runtime (13.0)."""
    calls = []

    def versions():
        calls.append(1)
        return 12040, 13000
    monkeypatch.setattr(cuda, "_C_cuda", SimpleNamespace(versions=versions))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(triton_backend, "availability", lambda: None)
    cuda._version_problem.cache_clear()
    yield calls
    cuda._version_problem.cache_clear()


def test_old_driver_makes_cuda_unavailable_and_auto_falls_back_to_triton(gpu_with_old_driver):
    status = available_backends()
    assert "older than the CUDA 13.0 runtime" in status["cuda"]
    assert resolve_backend("auto", torch.device("cuda"), torch.float32) is triton_backend
    with pytest.raises(ValueError, match=r"backend='cuda' is not available: .*driver \(12.4\)"):
        resolve_backend("cuda", torch.device("cuda"), torch.float32)
    assert len(gpu_with_old_driver) == 1  # asked once per process, not per step


def test_toolkit_choice_follows_torch_cuda():
    found = {"/cuda-13.0/nvcc": (13, 0), "/cuda-12.1/nvcc": (12, 1), "/cuda-12.4/nvcc": (12, 4),
             "/cuda-12.8/nvcc": (12, 8)}
    assert toolkit.choose((12, 4), found) == "/cuda-12.4/nvcc"
    assert toolkit.choose((12, 6), found) == "/cuda-12.4/nvcc"  # newest not newer than torch's
    assert toolkit.choose((12, 0), found) == "/cuda-12.1/nvcc"  # same major, nothing older: the oldest
    assert toolkit.choose((13, 0), found) == "/cuda-13.0/nvcc"
    assert toolkit.choose((11, 8), found) is None


def test_release_parsing():
    assert toolkit.parse_release("Cuda compilation tools, release 13.0, V13.0.48") == (13, 0)
    assert toolkit.parse_release("12.4") == (12, 4)
    assert toolkit.parse_release("") is None
