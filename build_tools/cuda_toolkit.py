"""Pick the CUDA toolkit to build ``ltu_fast._C_cuda`` with: the one matching torch's CUDA.

The module links the CUDA runtime statically, so it needs a driver at least as new as the
toolkit's major release. torch already needs a driver for ``torch.version.cuda``: building with
the same major release (the closest minor not newer than torch's, if there is one) means any
machine that runs torch on the GPU runs this module too. Loaded by path from ``setup.py`` (no
package import at build time) and by the tests.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

Release = tuple[int, int]


def parse_release(text: str) -> Release | None:
    """``(major, minor)`` from ``nvcc --version`` output or a version string such as ``"12.4"``."""
    match = re.search(r"release (\d+)\.(\d+)", text) or re.fullmatch(r"\s*(\d+)\.(\d+)\S*\s*", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def nvcc_release(nvcc: str) -> Release | None:
    try:
        done = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    return parse_release(done.stdout)


def installed_nvccs() -> list[str]:
    """nvcc executables in the usual places: CUDA_HOME/CUDA_PATH, PATH, /usr/local/cuda*."""
    found = [os.path.join(os.environ[v], "bin", "nvcc") for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    found += [p for p in [shutil.which("nvcc")] if p]
    found += sorted(glob.glob("/usr/local/cuda*/bin/nvcc"))
    unique = {}
    for path in found:
        if os.access(path, os.X_OK):
            unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def choose(torch_cuda: Release, toolkits: dict[str, Release]) -> str | None:
    """The toolkit of torch's major release, closest minor not newer than torch's first; None
    when no toolkit shares torch's major release (the build then takes CMake's default)."""
    same_major = [(release, path) for path, release in toolkits.items() if release[0] == torch_cuda[0]]
    if not same_major:
        return None
    older = [c for c in same_major if c[0] <= torch_cuda]
    return max(older)[1] if older else min(same_major)[1]
