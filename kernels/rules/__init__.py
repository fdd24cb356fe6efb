"""One Triton module per fused update rule, found by the rule's name (``kernels/rules/<name>.py``).

Each holds its column names (``GROUP``, ``STATE``, ``ROW``, ``BUFFERS``: the layouts of
``ltu_fast.rules``, checked by tests/test_codes.py) and two jit functions:

* ``prepare(group, state, active) -> (row, state)``: per block of tensors, in the coefficient solve's
  epilogue (``solve.py``); ``group`` the tuple of group-table columns (float64), ``state`` of
  per-tensor state columns (float32), ``active`` bool; returns the row columns after ``active`` and
  the new state, in their names' order.
* ``element(g, p, s0, s1, s2, h, HAS) -> (p, s0, s1, s2)``: per block of elements, in
  ``apply.apply_kernel``; ``h`` the tensor's row (a tuple of scalars), ``HAS`` bit b set when buffer
  b exists.
"""

import triton.language as tl


def column(names: tuple[str, ...], name: str) -> tl.constexpr:
    """The index of ``name`` in ``names``, as a constant the jit functions can read."""
    return tl.constexpr(names.index(name))
