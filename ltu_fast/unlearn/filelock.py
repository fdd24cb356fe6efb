"""An advisory lock and an atomic rewrite for the JSON files several experiment processes update
(defaults, sweeps)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["locked", "replace_text"]


@contextmanager
def locked(path: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (through ``path.lock``) for a read-modify-write, so that
    processes sharing a results file (tunes of different settings, sweeps of different modes) keep
    each other's entries. A no-op where ``fcntl`` is missing (Windows: run one at a time there)."""
    path = Path(path)
    try:
        import fcntl
    except ImportError:
        yield path
        return
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a per-process temporary file, then a rename), so a
    reader never sees half a file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
