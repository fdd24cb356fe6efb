"""Backend registry and dispatch.

``backend="auto"`` picks the fastest backend that supports the tensors: cuda > triton > reference
on CUDA tensors, cpu (C++) > reference on CPU tensors. The environment variable
``LTU_FAST_BACKEND`` forces one (for benchmarking or bisecting a numerical difference). Backends
are imported lazily so a missing optional dependency (Triton, the compiled extension) only
matters when that backend is asked for.
"""

from __future__ import annotations

import importlib
import os

import torch

from .base import Backend

__all__ = ["Backend", "BACKEND_NAMES", "get_backend", "resolve_backend", "available_backends"]

BACKEND_NAMES = ("reference", "cpu", "cuda", "triton")
_AUTO_ORDER = {"cuda": ("cuda", "triton", "reference"), "cpu": ("cpu", "reference")}
ENV_VAR = "LTU_FAST_BACKEND"


def get_backend(name: str) -> Backend:
    """The backend module called ``name`` (imported on first use)."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend: unknown {name!r}; choose 'auto' or one of {list(BACKEND_NAMES)}")
    return importlib.import_module(f".{name}", __name__)


def available_backends() -> dict[str, str | None]:
    """Each backend's name mapped to None (usable) or the reason it is not."""
    return {name: get_backend(name).availability() for name in BACKEND_NAMES}


def resolve_backend(
    name: str,
    device: torch.device,
    row_dtype: torch.dtype,
    param_dtype: torch.dtype | None = None,
) -> Backend:
    """The backend to run on these tensors; raises ValueError if a named one cannot."""
    if not isinstance(name, str):
        raise TypeError(f"backend: expected a name, got {type(name).__name__}")
    forced = os.environ.get(ENV_VAR, "").strip()
    if name == "auto" and forced and forced != "auto":
        name = forced
    device = torch.device(device)
    if name == "auto":
        for candidate in _AUTO_ORDER.get(device.type, ("reference",)):
            backend = get_backend(candidate)
            if backend.availability() is None and backend.supports(device, row_dtype, param_dtype):
                return backend
        raise ValueError(f"backend: no backend supports {device.type} tensors of dtype {row_dtype}")
    backend = get_backend(name)
    reason = backend.availability()
    if reason is not None:
        raise ValueError(f"backend={name!r} is not available: {reason}")
    if not backend.supports(device, row_dtype, param_dtype):
        raise ValueError(
            f"backend={name!r} does not support {device.type} tensors with gradients of dtype {row_dtype}"
            + (f" and parameters of dtype {param_dtype}" if param_dtype is not None else "")
        )
    return backend
