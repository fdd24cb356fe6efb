"""``acc += alpha * x`` over a flat buffer, in fp32; ``alpha`` a float or read from a device scalar.

Every program but the last covers a full block without a mask, so the loads and stores are 128
bits wide when Triton sees 16-byte aligned pointers (it specialises on that at launch).
"""

import triton
import triton.language as tl


@triton.jit
def _axpy_block(acc_ptr, x_ptr, a, offs, n, MASKED: tl.constexpr):
    if MASKED:
        m = offs < n
        acc = tl.load(acc_ptr + offs, mask=m, other=0.0).to(tl.float32)
        x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
        tl.store(acc_ptr + offs, (acc + a * x).to(acc_ptr.dtype.element_ty), mask=m)
    else:
        acc = tl.load(acc_ptr + offs).to(tl.float32)
        x = tl.load(x_ptr + offs).to(tl.float32)
        tl.store(acc_ptr + offs, (acc + a * x).to(acc_ptr.dtype.element_ty))


@triton.jit
def axpy_kernel(acc_ptr, x_ptr, alpha_ptr, alpha, n, ALPHA_ON_DEVICE: tl.constexpr, BLOCK: tl.constexpr):
    first = tl.program_id(0).to(tl.int64) * BLOCK
    offs = first + tl.arange(0, BLOCK)
    if ALPHA_ON_DEVICE:
        a = tl.load(alpha_ptr).to(tl.float32)
    else:
        a = alpha
    if first + BLOCK <= n:
        _axpy_block(acc_ptr, x_ptr, a, offs, n, False)
    else:
        _axpy_block(acc_ptr, x_ptr, a, offs, n, True)
