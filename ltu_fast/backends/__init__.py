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

__all__ = ["BACKEND_NAMES", "Backend", "available_backends", "get_backend", "resolve_backend"]

BACKEND_NAMES = ("reference", "cpu", "cuda", "triton")
_AUTO_ORDER = {"cuda": ("cuda", "triton", "reference"), "cpu": ("cpu", "reference")}
ENV_VAR = "LTU_FAST_BACKEND"


def get_backend(name: str) -> Backend:
    """The backend module called ``name`` (imported on first use); ImportError if it is not installed."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend: unknown {name!r}; choose 'auto' or one of {list(BACKEND_NAMES)}")
    return importlib.import_module(f".{name}", __name__)


def _unavailable(name: str) -> str | None:
    """None when backend ``name`` is usable, else why not (a module missing from this build included)."""
    try:
        return get_backend(name).availability()
    except ImportError as exc:
        return f"not installed in this build ({exc})"


def available_backends() -> dict[str, str | None]:
    """Each backend's name mapped to None (usable) or the reason it is not."""
    return {name: _unavailable(name) for name in BACKEND_NAMES}


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
            if _unavailable(candidate) is None and get_backend(candidate).supports(device, row_dtype, param_dtype):
                return get_backend(candidate)
        raise ValueError(f"backend: no backend supports {device.type} tensors of dtype {row_dtype}")
    reason = _unavailable(name)  # ValueError for an unknown name
    if reason is not None:
        raise ValueError(f"backend={name!r} is not available: {reason}")
    backend = get_backend(name)
    if not backend.supports(device, row_dtype, param_dtype):
        raise ValueError(
            f"backend={name!r} does not support {device.type} tensors with gradients of dtype {row_dtype}"
            + (f" and parameters of dtype {param_dtype}" if param_dtype is not None else "")
        )
    return backend
