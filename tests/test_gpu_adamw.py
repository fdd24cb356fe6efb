"""The CUDA and Triton fused AdamW on a GPU: kernels vs the float64 reference, the optimizer vs
torch.optim.AdamW(fused=True). Skipped without a GPU."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_adamw import adamw_inputs, assert_adamw_matches_reference
from torch import nn

from ltu_fast import HarmonizedAdamW
from ltu_fast.backends import available_backends
from ltu_fast.plan import SegmentPlan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
GPU_BACKENDS = ["cuda", "triton"]


def _usable(name):
    reason = available_backends()[name]
    if reason is not None:
        pytest.skip(f"{name}: {reason}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", GPU_BACKENDS)
@given(numels=st.lists(st.integers(1, 70_000), min_size=1, max_size=4), k=st.integers(1, 5),
       seed=st.integers(0, 2**16), amsgrad=st.booleans(), align=st.sampled_from([4, 64]))
def test_gpu_adamw_apply_matches_reference(name, dtype, numels, k, seed, amsgrad, align):
    _usable(name)
    plan = SegmentPlan.build(numels, [i % 2 for i in range(len(numels))], list(range(len(numels))),
                             element_size=4, align_bytes=align, device="cuda")
    assert_adamw_matches_reference(name, plan, *adamw_inputs(plan, k, seed, dtype, "cuda", amsgrad))


@pytest.mark.parametrize("name", GPU_BACKENDS)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_one_objective_equals_fused_torch_adamw_on_gpu(name, amsgrad):
    _usable(name)
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 10)).cuda()
    b = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 10)).cuda()
    b.load_state_dict(a.state_dict())
    torch_opt = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=0.1, amsgrad=amsgrad, fused=True)
    ours = HarmonizedAdamW(b.parameters(), lr=1e-2, weight_decay=0.1, amsgrad=amsgrad, aggregator="sum", backend=name)
    for _ in range(10):
        x = torch.randn(32, 64, device="cuda")
        for model, opt in ((a, torch_opt), (b, ours)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
