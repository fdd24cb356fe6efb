"""Build script: setuptools drives CMake + Ninja to build the pybind11 extension(s).

    pip install --no-build-isolation .        # uses the cmake/ninja/pybind11 already installed
    pip install .                              # isolated: pip fetches them (see pyproject.toml)
    python setup.py build_ext --inplace        # development: modules land in ./ltu_fast

Environment: LTU_FAST_NATIVE=0 for a portable build (no -march=native), LTU_FAST_CUDA=0 to skip
the CUDA module, LTU_FAST_CUDA_ARCHS for its architectures (default ``80;90``, A100 and H100; ``90``
alone halves the CUDA build), CMAKE_BUILD_PARALLEL_LEVEL to cap build jobs (default: all cores),
CUDACXX to name the nvcc (default: the installed toolkit matching ``torch.version.cuda``, see
build_tools/cuda_toolkit.py, else CMake's choice).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
CUDA_ARCHS = "80;90"  # csrc/cuda/CMakeLists.txt's default too, for CMake run by hand


def _flag(name: str, default: str = "1") -> str:
    """CMake ON/OFF from an environment variable ("0", "off", "false", "no" mean OFF)."""
    return "OFF" if os.environ.get(name, default).strip().lower() in ("0", "off", "false", "no") else "ON"


def _cuda_compiler() -> list[str]:
    """``-DCMAKE_CUDA_COMPILER=...`` for the toolkit matching torch's CUDA, when torch is a CUDA build
    installed here and such a toolkit is found (``_C_cuda`` links its runtime statically)."""
    if _flag("LTU_FAST_CUDA") == "OFF" or os.environ.get("CUDACXX"):
        return []
    try:
        import torch
    except ImportError:  # an isolated build without torch: CMake's default nvcc
        return []
    source = ROOT / "build_tools" / "cuda_toolkit.py"
    if not source.exists():
        return []
    spec = importlib.util.spec_from_file_location("cuda_toolkit", source)
    toolkit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toolkit)
    wanted = toolkit.parse_release(torch.version.cuda or "")
    if wanted is None:
        return []
    found = {path: release for path in toolkit.installed_nvccs() if (release := toolkit.nvcc_release(path))}
    nvcc = toolkit.choose(wanted, found)
    if nvcc is None:
        print(f"ltu_fast: no CUDA {wanted[0]}.x toolkit for torch's CUDA {torch.version.cuda} among {found}; "
              "_C_cuda may need a newer driver than torch (backends.available_backends() will say so)")
        return []
    return [f"-DCMAKE_CUDA_COMPILER={nvcc}"]


class CMakeExtension(Extension):
    """An extension whose sources CMake compiles (setuptools only sees its name)."""

    def __init__(self, name: str):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """Configure and build the top-level CMakeLists.txt once, writing modules into the package dir.

    CMake may build more modules than setuptools knows of (``ltu_fast._C_cuda`` when nvcc is
    found), so copying back for ``--inplace``/editable installs takes every module CMake wrote.
    """

    def build_extension(self, ext: Extension) -> None:
        import pybind11

        output_dir = self._output_dir()
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
            f"-DCMAKE_BUILD_TYPE={'Debug' if self.debug else 'Release'}",
            f"-DLTU_FAST_OUTPUT_DIR={output_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DLTU_FAST_NATIVE={_flag('LTU_FAST_NATIVE')}",
            f"-DLTU_FAST_CUDA={_flag('LTU_FAST_CUDA')}",
            f"-DLTU_FAST_CUDA_ARCHS={os.environ.get('LTU_FAST_CUDA_ARCHS') or CUDA_ARCHS}",
            *_cuda_compiler(),
        ]
        subprocess.run(configure, check=True)
        build = ["cmake", "--build", str(build_dir)]
        if "CMAKE_BUILD_PARALLEL_LEVEL" not in os.environ:
            build += ["--parallel", str(os.cpu_count() or 1)]
        subprocess.run(build, check=True)

    def _output_dir(self) -> Path:
        """``<build_lib>/ltu_fast``: setuptools builds there even for --inplace, then copies."""
        return Path(self.build_lib).resolve() / "ltu_fast"

    def _built_modules(self) -> list[Path]:
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        return sorted(self._output_dir().glob(f"_C*{suffix}"))

    def copy_extensions_to_source(self) -> None:
        for module in self._built_modules():
            shutil.copyfile(module, ROOT / "ltu_fast" / module.name)

    def get_outputs(self) -> list[str]:
        return sorted({*super().get_outputs(), *(str(m) for m in self._built_modules())})


def _packages() -> tuple[list[str], dict[str, str]]:
    """The ``ltu_fast`` packages, plus the top-level ``kernels/`` installed as ``ltu_fast.kernels``."""
    packages = find_packages(include=["ltu_fast", "ltu_fast.*"])
    package_dir = {}
    if (ROOT / "kernels").is_dir():  # the Triton kernels (absent from a CPU-only checkout), with kernels/rules
        for sub in ["", *(f".{name}" for name in find_packages(where="kernels"))]:
            packages.append(f"ltu_fast.kernels{sub}")
            package_dir[f"ltu_fast.kernels{sub}"] = "kernels" + sub.replace(".", "/")
        packages = sorted(set(packages))  # a development symlink ltu_fast/kernels may have listed them already
    return packages, package_dir


packages, package_dir = _packages()
setup(
    packages=packages,
    package_dir=package_dir,
    ext_modules=[CMakeExtension("ltu_fast._C")],
    cmdclass={"build_ext": CMakeBuild},
)
