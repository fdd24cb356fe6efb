"""How many torch ops one fused step (``HarmonizedSGD``, ``HarmonizedAdamW``, ``HarmonizedLion``)
dispatches besides the compiled kernels.

On a GPU every dispatched op is a launch; the step's budget is the compiled kernels plus at most
a handful of torch ops whatever the rule, the aggregator and K (views and allocations not
counted), so the coefficient solve and every rule's per-tensor bookkeeping (its ``prepare``: SGD's
momentum history, AdamW's bias corrections and step counts) must stay inside the compiled backend.
Which parameters a backward reached is known on the host and uploaded only when it changes.

Writing a row that is still pending (``zero_grad`` defers it: backward leaves the gradients in
``.grad``) is gradient routing, not harmonization, and has its own budget of one foreach copy: for
K >= 2 it runs when the objective changes, for K = 1 (and for a row whose objective is still
active) when the rows are first read, i.e. at the start of ``step()``. It is the same copy for every
K and cheaper than what it replaces (a zero fill plus an accumulating backward), so the tests
measure it apart (``opt.grad_row(0)`` writes it, as ``step()`` would) and the step proper against its
own budget.
"""

from __future__ import annotations

import pytest
import torch
from helpers import compiled_aggregators
from torch.utils._python_dispatch import TorchDispatchMode

from ltu_fast import HarmonizedAdamW, HarmonizedLion, HarmonizedSGD
from ltu_fast.backends import available_backends

MAX_OPS = 6  # with or without torch's "grad is None" rule (skip_untouched): the solve does its bookkeeping
RULES = {"sgd": lambda ps, **kw: HarmonizedSGD(ps, lr=0.1, **kw),
         "sgd-momentum": lambda ps, **kw: HarmonizedSGD(ps, lr=0.1, momentum=0.9, **kw),
         "adamw": lambda ps, **kw: HarmonizedAdamW(ps, lr=0.1, **kw),
         "adamw-amsgrad": lambda ps, **kw: HarmonizedAdamW(ps, lr=0.1, amsgrad=True, **kw),
         "lion": lambda ps, **kw: HarmonizedLion(ps, lr=0.1, weight_decay=0.01, **kw)}
FREE = {"empty", "empty_like", "empty_strided", "new_empty", "view", "_unsafe_view", "as_strided", "detach",
        "alias", "slice", "select", "reshape", "expand"}


class _Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in FREE and not name.startswith("_record_function"):  # profiler markers, no kernel
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


AGGREGATORS = compiled_aggregators()  # every aggregator with a compiled solve (K <= 4: Triton's limit)


@pytest.mark.skipif(available_backends()["cpu"] is not None, reason="the C++ extension is not built")
@pytest.mark.parametrize("aggregator", sorted(AGGREGATORS))
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("skip_untouched", [False, True])
def test_step_dispatches_at_most_a_handful_of_ops(aggregator, k, rule, skip_untouched):
    torch.manual_seed(0)
    model = _model()
    opt = RULES[rule](model.parameters(), objectives=k, aggregator=AGGREGATORS[aggregator](k, 1), backend="cpu",
                      weights=[1.0] * k, skip_untouched=skip_untouched)
    x = torch.randn(5, 8)
    for step in range(2):  # the second step runs with every cache warm
        opt.zero_grad()
        for j in range(k):
            with opt.objective(j):
                (model(x).sum() * (j + 1)).backward()
        with _Count() as routing:
            opt.grad_row(0)  # a row still pending (K = 1) is written here, as step() would first
        with _Count() as counted:
            opt.step()
    assert routing.ops == (["_foreach_copy_"] if k == 1 else []), routing.ops
    assert len(counted.ops) <= MAX_OPS, f"{rule} {aggregator} K={k}: {len(counted.ops)} ops: {counted.ops}"


class _Heads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.a, self.b = torch.nn.Linear(6, 8), torch.nn.Linear(8, 2), torch.nn.Linear(8, 2)

    def forward(self, x, head):
        return getattr(self, head)(torch.tanh(self.body(x)))


@pytest.mark.skipif(available_backends()["cpu"] is not None, reason="the C++ extension is not built")
def test_touched_flags_are_uploaded_only_when_they_change():
    """Which parameters a backward reached is host data: a step with the same flags as the last
    uploads nothing (every tensor reached needs no tensor at all), a change is one upload and takes
    effect (torch.optim.SGD skips the untouched head, so must we)."""
    ours_model, torch_model = _Heads(), _Heads()
    ours = HarmonizedSGD(ours_model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1, aggregator="sum",
                         backend="cpu")
    plain = torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    x = torch.randn(5, 6)
    uploads = []
    for heads in (("a", "b"), ("a", "b"), ("a",), ("a",), ("b",), ("a", "b")):
        for model, opt in ((ours_model, ours), (torch_model, plain)):
            opt.zero_grad()
            sum(model(x, h).pow(2).mean() for h in heads).backward()
        ours._materialize_rows()
        with _Count() as counted:
            ours.step()
        plain.step()
        uploads.append(counted.ops)
        for p, q in zip(ours_model.parameters(), torch_model.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert uploads[1] == uploads[3] == uploads[5] == [], uploads  # all reached, or unchanged (step 0: cold caches)
    assert 1 <= len(uploads[2]) <= 2 and 1 <= len(uploads[4]) <= 2, uploads  # a new mix: one copy to the device


MAX_LAUNCHES = 4  # gram partials, gram reduce, solve (coefficients + bookkeeping), apply
ROUTING_LAUNCHES = 1  # a pending row written from .grad: one foreach copy (every parameter has a gradient here)


def _gpu_backends() -> list[str]:
    if not torch.cuda.is_available():
        return []
    status = available_backends()
    return [name for name in ("cuda", "triton") if status[name] is None]


@pytest.mark.skipif(not _gpu_backends(), reason="needs a GPU with the cuda or triton backend")
@pytest.mark.parametrize("backend", _gpu_backends() or ["none"])
@pytest.mark.parametrize("aggregator", sorted(AGGREGATORS))
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("rule", ["sgd-momentum", "adamw-amsgrad", "lion"])
@pytest.mark.parametrize("skip_untouched", [False, True])
def test_step_launches_at_most_four_kernels(backend, aggregator, k, rule, skip_untouched):
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = _model().cuda()
    opt = RULES[rule](model.parameters(), objectives=k, aggregator=AGGREGATORS[aggregator](k, 1), backend=backend,
                      skip_untouched=skip_untouched)
    x = torch.randn(5, 8, device="cuda")
    def launches(region) -> list[str]:
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            region()
            torch.cuda.synchronize()
        return [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]

    for _ in range(2):  # warm: Triton compiles, caches fill
        opt.zero_grad()
        for j in range(k):
            with opt.objective(j):
                model(x).sum().backward()
        routing = launches(lambda: opt.grad_row(0))  # K = 1: its pending row, written as step() would first
        kernels = launches(opt.step)
    assert len(routing) <= ROUTING_LAUNCHES, f"{backend} K={k}: writing the pending row launched {routing}"
    assert len(kernels) <= MAX_LAUNCHES, f"{backend} {rule} {aggregator} K={k} {skip_untouched=}: {kernels}"
