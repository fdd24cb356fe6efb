"""One layout in every language: dtype codes, table columns, aggregator kinds, limits and every
update rule's columns, as Python builds them, as both compiled modules export them (from
csrc/include/ltu_fast/codes.h and rules.h) and as the Triton kernels read them.

A disagreement is silent in the kernels (they read the wrong column or the wrong dtype), so it must
fail here: e.g. the CPU and CUDA modules once numbered float16 and bfloat16 differently.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from ltu_fast import aggregators, rules
from ltu_fast.backends import available_backends
from ltu_fast.backends.base import DTYPE_CODES, MAX_BUFFERS
from ltu_fast.plan import CHUNK_COLUMNS, TABLE_COLUMNS


def _modules() -> list:
    """The compiled modules that import here (``_C_cuda`` imports without a GPU)."""
    found = []
    for name in ("ltu_fast._C", "ltu_fast._C_cuda"):
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            pass
    return found


MODULES = _modules()
PYTHON = {
    "DTYPE_CODES": {str(d).removeprefix("torch."): code for d, code in DTYPE_CODES.items()},
    "TABLE_COLUMNS": {name: i for i, name in enumerate(TABLE_COLUMNS)},
    "CHUNK_COLUMNS": {name: i for i, name in enumerate(CHUNK_COLUMNS)},
    "MAX_SOLVE_K": aggregators.MAX_SOLVE_K,
    "SPEC_INTS": aggregators.SPEC_INTS,
    "SPEC_FLOATS": aggregators.SPEC_FLOATS,
    "SPEC_PREFERENCE": aggregators.SPEC_PREFERENCE,
    "MAX_BUFFERS": MAX_BUFFERS,
    "ROW_ACTIVE": rules.ROW_ACTIVE,
    "RULES": {rule.name: {"code": code, "group_columns": rule.group_columns, "tensor_state": rule.tensor_state,
                          "row_columns": rule.row_columns, "buffers": rule.buffers}
              for code, rule in rules.RULES.items()},
}


@pytest.mark.skipif(not MODULES, reason="no compiled module is built")
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("name", sorted(PYTHON))
def test_compiled_modules_export_the_python_layouts(module, name):
    assert getattr(module, name) == PYTHON[name], name


def test_python_tables_are_consistent():
    assert set(DTYPE_CODES) == {torch.float32, torch.bfloat16, torch.float16}
    assert sorted(rules.RULES) == list(range(len(rules.RULES)))  # codes 0..n-1, one per rule
    for code, rule in rules.RULES.items():
        assert rule.code == code and rule.row_columns[rules.ROW_ACTIVE] == "active"
        assert len(rule.buffers) <= MAX_BUFFERS


def test_triton_kernels_read_the_same_layouts():
    pytest.importorskip("triton")
    from ltu_fast.backends import triton as triton_backend

    triton_backend._load_kernels()
    chunks, solve, apply = (importlib.import_module(f"ltu_fast.kernels.{m}") for m in ("chunks", "solve", "apply"))
    assert chunks.CHUNK_COLUMNS == CHUNK_COLUMNS and solve.TABLE_COLUMNS == TABLE_COLUMNS
    assert importlib.import_module("ltu_fast.kernels.aggregators.common").PREFERENCE == aggregators.SPEC_PREFERENCE
    assert [a for a in apply.apply_kernel.arg_names if a.startswith("b") and a.endswith("_ptr") and a != "beta_ptr"] \
        == [f"b{i}_ptr" for i in range(MAX_BUFFERS)]
    for rule in rules.RULES.values():
        module = triton_backend._rule_kernels(rule.name)
        assert (module.GROUP, module.STATE, module.ROW, module.BUFFERS) == \
            (rule.group_columns, rule.tensor_state, rule.row_columns, rule.buffers), rule.name


def _compiled_kinds() -> dict[str, int]:
    """Every kind a registered aggregator's ``solver_spec`` can name (MGDA: both methods)."""
    specs = [cls().solver_spec(3) for cls in aggregators.AGGREGATORS.values()]
    specs.append(aggregators.MGDA(method="frank_wolfe").solver_spec(3))
    names = {code: name for name, code in aggregators.SOLVER_KINDS.items()}
    return {names[s.kind]: s.kind for s in specs if s is not None}


@pytest.mark.skipif(not MODULES, reason="no compiled module is built")
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_compiled_modules_number_the_aggregators_as_python(module):
    """The C++ list (aggregators.h) holds a function for every kind Python's specs name, under the
    same code, and no kind Python does not know."""
    exported = module.AGGREGATOR_KINDS
    assert exported.items() <= aggregators.SOLVER_KINDS.items(), exported
    assert _compiled_kinds().items() <= exported.items(), (_compiled_kinds(), exported)


def test_triton_has_a_function_for_every_compiled_kind():
    pytest.importorskip("triton")
    from ltu_fast.backends import triton as triton_backend

    triton_backend._load_kernels()
    for code in _compiled_kinds().values():
        assert callable(triton_backend._aggregator_kernel(code))
    with pytest.raises(ValueError, match="no compiled aggregator for kind 99"):
        triton_backend._aggregator_kernel(99)


@pytest.mark.skipif(available_backends()["cpu"] is not None, reason="the C++ extension is not built")
def test_an_unknown_kind_or_too_many_slots_is_refused_before_any_kernel():
    from ltu_fast import _C

    args = {"gram": 0, "num_segments": 1, "k": 2, "counter": 0, "aggregator_state": 0, "state_width": 0, "weights": 0,
            "grad_scale": 0, "unscale_gram": False, "found_inf": 0, "beta": 0, "flag": 0, "skipped": 0, "rule": -1, "tensors": 0,
            "num_tensors": 0, "group_f32": 0, "group_f64": 0, "state": 0, "touched": 0, "rows": 0}
    with pytest.raises(ValueError, match="unknown aggregator kind 99"):
        _C.solve(kind=99, ints=[], floats=[], **args)
    with pytest.raises(ValueError, match="int / 0 float slots"):
        _C.solve(kind=0, ints=[0] * 5, floats=[], **args)
    with pytest.raises(ValueError, match="k = 9 outside"):
        _C.solve(kind=0, ints=[], floats=[], **{**args, "k": 9})


def test_every_backend_that_runs_here_knows_every_rule():
    """The registries agree: a rule in Python is a rule in C++ (the apply refuses an unknown code)."""
    for module in MODULES:
        assert set(module.RULES) == {rule.name for rule in rules.RULES.values()}
    if available_backends()["cpu"] is None:
        from ltu_fast import _C
        with pytest.raises(ValueError, match="unknown update rule code 99"):
            _C.apply(99, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, torch.zeros(1).data_ptr(), 1)
