"""Float64 math the Triton kernels share where the interpreter and a GPU differ: ``pow`` (libdevice
on a GPU; the C library's, as the C++ backend's, in ``TRITON_INTERPRET=1``, which has no libdevice)."""

import math
import os

import numpy as np
import triton
import triton.language as tl
from triton.language.extra import libdevice

if os.environ.get("TRITON_INTERPRET", "0") == "1":
    _libm_pow = np.frompyfunc(math.pow, 2, 1)

    def pow(x, y):
        """The interpreter has no libdevice: the C library's pow, element by element."""
        from triton.runtime.interpreter import TensorHandle

        return tl.tensor(TensorHandle(_libm_pow(x.handle.data, y.handle.data).astype(np.float64), x.handle.dtype),
                         x.type)
else:
    @triton.jit
    def pow(x, y):
        return libdevice.pow(x, y)
