"""Your trained model in, unlearned models out.

Loading is safe by default: ``torch.load(weights_only=True)`` reads tensors and plain containers
only, so a checkpoint cannot run code; a whole pickled ``nn.Module`` needs the explicit unsafe load
(``--pickled-model``), for files you trust. A state_dict must fit the model exactly: the first
missing or unexpected key and the first shape that differs are named. Saving writes a temporary file
and renames it, so an interrupted save never leaves half a model.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_module", "load_state_dict", "load_weights", "save_model"]


def _read(path: str | Path, option: str, weights_only: bool) -> Any:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{option}: {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if weights_only and "Unsupported global" in str(err) and found:
            raise ValueError(f"{option}: {path} holds Python objects ({found.group(1)}, e.g. a pickled module) that "
                             "the safe load refuses; if it is a whole model and you trust the file, pass "
                             "--pickled-model (torch.load(weights_only=False), which can run code from the file)") from None
        detail = re.search(r"WeightsUnpickler error: \s*(.+)", str(err))
        raise ValueError(f"{option}: cannot read {path} as a torch checkpoint (corrupt or another format: "
                         f"{detail.group(1) if detail else str(err).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ModuleNotFoundError) as err:
        raise ValueError(f"{option}: cannot read {path} as a torch checkpoint ({type(err).__name__}: {err})") from None


def load_state_dict(path: str | Path, option: str = "--original") -> dict[str, torch.Tensor]:
    """A state_dict from ``path`` (safe load): the file's dict of tensors, or the one it keeps under
    ``"state_dict"`` or ``"model"`` (training checkpoints); a ``module.`` prefix on every key
    (``DataParallel``) is dropped."""
    obj = _read(path, option, weights_only=True)
    if isinstance(obj, dict):
        obj = next((obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), dict)), obj)
    if not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise ValueError(f"{option}: {path} holds no state_dict (a dict of tensors, alone or under 'state_dict' "
                         f"or 'model'), but a {type(obj).__name__}")
    if all(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], what: str, option: str = "--original") -> nn.Module:
    """Load ``state`` into ``model`` after checking every key and shape (``what`` names the model in errors)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = ([f"missing key {missing[0]!r} ({len(missing)} missing)"] if missing else []) + \
                ([f"unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected)"] if unexpected else [])
        raise ValueError(f"{option}: the checkpoint does not fit {what}: {'; '.join(parts)}")
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise ValueError(f"{option}: the checkpoint does not fit {what}: {key!r} has shape "
                             f"{tuple(state[key].shape)} in the checkpoint, {tuple(value.shape)} in the model")
    model.load_state_dict(state)
    return model


def load_module(path: str | Path, option: str = "--original") -> nn.Module:
    """A whole pickled ``nn.Module`` (unsafe load: only for files you trust)."""
    obj = _read(path, option, weights_only=False)
    if not isinstance(obj, nn.Module):
        raise TypeError(f"{option}: {path} holds a {type(obj).__name__}, not a pickled nn.Module; "
                         "for a state_dict leave out --pickled-model")
    return obj


def save_model(model: nn.Module, path: str | Path, whole: bool = False) -> Path:
    """Save ``model``'s state_dict as CPU tensors (loads on any machine) or, with ``whole``, the
    pickled module, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(model if whole else {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
