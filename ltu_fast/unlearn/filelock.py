"""An advisory lock for the JSON files several experiment processes update (defaults, sweeps)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["locked"]


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
