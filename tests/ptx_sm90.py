"""Compile the Triton kernels ahead of time for sm_90 and print their PTX as JSON (no GPU needed).

Run as a subprocess by ``test_triton_ptx.py``: triton's own library functions are built as
interpreter objects when triton is imported with ``TRITON_INTERPRET=1`` (which the test session
sets on a machine without a GPU), so a compiled build needs a fresh interpreter.

Launch-time specialisation is reproduced by hand: every pointer 16-byte divisible, as Triton infers
for aligned tensors, and ``ALIGN`` the 16-byte pack the backend passes for an aligned plan. Integer
arguments (the row stride) get no divisibility: the kernels' own hints must carry the vector width.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import triton
import triton.language as tl

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
ITEMSIZE = {"fp32": 4, "bf16": 2}


def _load(module: str):
    """``kernels/<module>.py`` under a private package name (never the installed ``ltu_fast.kernels``)."""
    name = "_ltu_fast_kernels_aot"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, KERNELS / "__init__.py",
                                                      submodule_search_locations=[str(KERNELS)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.{module}")


@triton.jit
def _probe_kernel(x_ptr):
    tl.store(x_ptr, 1.0)


def compile_ptx(fn, signature: dict, constants: dict) -> str:
    from triton.backends.compiler import GPUTarget  # the ahead-of-time API of Triton 3.x
    from triton.compiler import ASTSource

    attrs = {(i,): [["tt.divisibility", 16]] for i, kind in enumerate(signature.values()) if kind.startswith("*")}
    signature = {**signature, **dict.fromkeys(constants, "constexpr")}
    source = ASTSource(fn=fn, signature=signature, constexprs=constants, attrs=attrs)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32)).asm["ptx"]


def cases() -> dict[str, tuple]:
    """name -> (kernel, signature, constants); ``<rule>_apply`` is the one apply kernel with that rule's
    element update (every buffer it keeps present: SGD's momentum, AdamW's amsgrad maximum)."""
    gram, apply, axpy = _load("gram"), _load("apply"), _load("axpy")
    rules = {"sgd": (_load("rules.sgd"), 1), "adamw": (_load("rules.adamw"), 7), "lion": (_load("rules.lion"), 1)}
    out = {}
    for dtype, size in ITEMSIZE.items():
        rows = {"rows_ptr": f"*{dtype}", "row_stride": "i64"}
        align = 16 // size
        for k in (2, 3, 4):
            out[f"gram/{dtype}/{k}"] = (gram.gram_partial_kernel,
                                        {**rows, "chunks_ptr": "*i64", "partial_ptr": "*fp32"},
                                        {"K": k, "BLOCK": 1024, "ALIGN": align})
        for k in (2, 4):
            for name, (rule, present) in rules.items():
                out[f"{name}_apply/{dtype}/{k}"] = (
                    apply.apply_kernel,
                    {**rows, "beta_ptr": "*fp32", "chunks_ptr": "*i64", "param_ptr": "*fp32", "b0_ptr": "*fp32",
                     "b1_ptr": "*fp32", "b2_ptr": "*fp32", "table_ptr": "*fp32", "found_inf_ptr": "*fp32"},
                    {"ELEMENT": rule.element, "R": len(rule.ROW), "HAS": present, "K": k, "KP": k, "BLOCK": 1024,
                     "ALIGN": align})
            out[f"combine/{dtype}/{k}"] = (apply.combine_kernel,
                                           {**rows, "beta_ptr": "*fp32", "chunks_ptr": "*i64", "out_ptr": f"*{dtype}"},
                                           {"K": k, "KP": k, "BLOCK": 1024, "ALIGN": align})
        out[f"axpy/{dtype}"] = (axpy.axpy_kernel, {"acc_ptr": "*fp32", "x_ptr": f"*{dtype}", "alpha_ptr": "*fp32",
                                                   "alpha": "fp32", "n": "i64"},
                                {"ALPHA_ON_DEVICE": True, "BLOCK": 4096})
    return {**out, **solve_cases()}


# The coefficient solve per aggregator: name -> (kind module, K, update rule of the epilogue, touched flags,
# counter). PCGrad's unrolled random order at the largest K Triton serves; the iterative solvers at K = 4;
# the epilogues of SGD (float32 group table, untouched tensors), AdamW (float64, libdevice pow) and Lion.
SOLVE_CASES = {
    "pcgrad_random/4": ("pcgrad", 4, "sgd", True, True),
    "mgda_frank_wolfe/3": ("mgda_frank_wolfe", 3, "adamw", False, False),
    "sum/2": ("sum", 2, "lion", True, False),
    "upgrad/4": ("upgrad", 4, "sgd", True, False),  # the active-set QP (mgda, dualproj, cagrad share it)
    "imtl_g/4": ("imtl_g", 4, "sgd", True, False),  # the Jacobi sweeps (aligned_mtl, config share them)
    "gradvac/4": ("gradvac", 4, "sgd", True, True),  # per-segment state and the hashed visit order
    "nash_mtl/4": ("nash_mtl", 4, "sgd", False, True),  # damped Newton (fairgrad shares it), state
}


def solve_cases() -> dict[str, tuple]:
    """``solve/<case>`` for every entry of :data:`SOLVE_CASES` (the interpreter accepts code ptxas would not)."""
    solve = _load("solve")
    pointers = {name: "*fp32" for name in ("gram_ptr", "weights_ptr", "grad_scale_ptr", "found_inf_ptr", "beta_ptr",
                                           "flag_ptr", "group_ptr", "state_ptr", "touched_ptr", "rows_ptr")}
    signature = {**pointers, "floats_ptr": "*fp64", "agg_state_ptr": "*fp64", "counter_ptr": "*i64",
                 "skipped_ptr": "*i64", "tensors_ptr": "*i64", "num_segments": "i32", "I0": "i32", "I1": "i64",
                 "I2": "i32", "I3": "i32", "num_tensors": "i32"}
    signature = {name: signature[name] for name in solve.solve_kernel.arg_names if name in signature}
    every = {"HAS_WEIGHTS": True, "HAS_SCALE": True, "UNSCALE": True, "HAS_FOUND_INF": True, "HAS_SKIPPED": True, "BLOCK_L": 64,
             "BLOCK_T": 64}
    out = {}
    for case, (kind, k, rule_name, touched, counter) in SOLVE_CASES.items():
        rule = _load(f"rules.{rule_name}")
        group = "*fp64" if rule_name == "adamw" else "*fp32"
        constants = {"K": k, "KP": 1 << (k - 1).bit_length(), "SEGMENT": _load(f"aggregators.{kind}").segment,
                     "HAS_COUNTER": counter, "PREPARE": rule.prepare, "C": len(rule.GROUP), "S": len(rule.STATE),
                     "R": len(rule.ROW), "HAS_TOUCHED": touched, **every}
        out[f"solve/{case}"] = (solve.solve_kernel, {**signature, "group_ptr": group}, constants)
    return out


def main() -> None:
    """Print ``{"triton": version, "error": ..., "ptx": {case: text}}``; a failure to build a one-line
    probe kernel is reported, not raised, so the caller can tell a toolchain that cannot build sm_90
    from a bug in ours (which raises)."""
    try:
        compile_ptx(_probe_kernel, {"x_ptr": "*fp32"}, {})
    except Exception as exc:  # noqa: BLE001 - any failure of a one-line kernel is the toolchain's
        json.dump({"triton": triton.__version__, "error": repr(exc)}, sys.stdout)
        return
    json.dump({"triton": triton.__version__, "error": None,
               "ptx": {name: compile_ptx(*case) for name, case in cases().items()}}, sys.stdout)


if __name__ == "__main__":
    main()
