"""``acc += alpha * x`` over a flat buffer, in fp32; ``alpha`` a float or read from a device scalar."""

import triton
import triton.language as tl


@triton.jit
def axpy_kernel(acc_ptr, x_ptr, alpha_ptr, alpha, n, ALPHA_ON_DEVICE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    if ALPHA_ON_DEVICE:
        a = tl.load(alpha_ptr).to(tl.float32)
    else:
        a = alpha
    acc = tl.load(acc_ptr + offs, mask=m, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
    tl.store(acc_ptr + offs, (acc + a * x).to(acc_ptr.dtype.element_ty), mask=m)
