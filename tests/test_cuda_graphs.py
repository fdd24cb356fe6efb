"""CUDA graphs: the buffers a step mutates are static addresses for Dynamo (checked on CPU), and on
a GPU ``torch.compile(mode="reduce-overhead")`` and a hand-captured whole training step replay to
the eager result (the recipe of docs/core.md, "CUDA graphs")."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo
from helpers import capture_cuda_graph, compiled_aggregators
from torch._dynamo.utils import counters

from ltu_fast import HarmonizedSGD

GPU_BACKENDS = ["cuda", "triton"]
COMPILED = compiled_aggregators()


def _model(device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(33, 257), torch.nn.GELU(), torch.nn.Linear(257, 10)).to(device)


def _opt(model: torch.nn.Module, backend: str = "auto", lr: float | torch.Tensor = 0.05,
         aggregator: str = "pcgrad") -> HarmonizedSGD:
    return HarmonizedSGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4,
                         objectives=("forget", "retain"), aggregator=COMPILED[aggregator](2, 1), backend=backend)


def _twins(name: str, graph_lr: float | torch.Tensor = 0.05, aggregator: str = "pcgrad"):
    """Two identical CUDA models with an optimizer each: one stepped eagerly, one through a graph."""
    _backend_or_skip(name)
    eager_model = _model("cuda")
    graph_model = copy.deepcopy(eager_model)
    return (eager_model, graph_model, _opt(eager_model, name, aggregator=aggregator),
            _opt(graph_model, name, graph_lr, aggregator=aggregator))


def _static(t: torch.Tensor) -> bool:
    return getattr(t, "_dynamo_static_input_type", None) is not None


def test_step_buffers_are_static_addresses():
    model = _model()
    opt = _opt(model)
    opt.step()  # uploads the hyper-parameters
    for name in ("_flat_params", "_rows", "_momentum", "_ready", "_skipped", "_hyper_tensor"):
        assert _static(getattr(opt, name)), name
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(3))]})  # re-layout: new buffers
    assert _static(opt._flat_params) and _static(opt._rows) and _static(opt._momentum)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _backend_or_skip(name: str) -> None:
    from ltu_fast.backends import get_backend
    reason = get_backend(name).availability()
    if reason is not None:
        pytest.skip(f"{name}: {reason}")


def _fill(opt: HarmonizedSGD, seed: int) -> None:
    gen = torch.Generator(device="cuda").manual_seed(seed)
    opt.grad_rows.copy_(torch.randn(opt.grad_rows.shape, generator=gen, device="cuda"))


@gpu
@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_reduce_overhead_captures_the_step(name):
    eager_model, graph_model, eager, graphed = _twins(name)
    torch._dynamo.reset()
    counters.clear()
    step = torch.compile(graphed.step, mode="reduce-overhead", fullgraph=True)
    for seed in range(5):  # the first calls warm up and record; later ones replay
        _fill(eager, seed)
        _fill(graphed, seed)
        eager.step()
        step()
    torch.cuda.synchronize()
    assert not counters["inductor"]["cudagraph_skips"], dict(counters["inductor"])
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    torch._dynamo.reset()


def _train_step(model, opt, x_f, y_f, x_r, y_r) -> None:
    opt.zero_grad()
    with opt.objective("forget"):
        (-torch.nn.functional.cross_entropy(model(x_f), y_f)).backward()
    with opt.objective("retain"):
        torch.nn.functional.cross_entropy(model(x_r), y_r).backward()
    opt.step()


@gpu
@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_whole_training_step_replays_from_a_cuda_graph(name):
    """Forward, both backwards and the harmonized step in one graph (fixed PCGrad order)."""
    eager_model, graph_model, eager, graphed = _twins(name)
    gen = torch.Generator(device="cuda").manual_seed(0)
    batches = [(torch.randn(16, 33, device="cuda", generator=gen), torch.randint(0, 10, (16,), device="cuda",
                                                                                  generator=gen))
               for _ in range(8)]
    static = [t.clone() for t in (*batches[0], *batches[1])]
    # three warm-up steps outside capture (autograd and the backend set up), matched by the eager copy
    graph = capture_cuda_graph(lambda: _train_step(graph_model, graphed, *static), warmup=3)
    for _ in range(3):
        _train_step(eager_model, eager, *static)
    for i in range(0, 8, 2):
        batch = (*batches[i], *batches[i + 1])
        for dst, src in zip(static, batch):
            dst.copy_(src)
        graph.replay()
        _train_step(eager_model, eager, *batch)
    torch.cuda.synchronize()
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@gpu
@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_tensor_lr_reaches_every_replay(name):
    """The documented way to schedule the learning rate of a captured step: a CUDA tensor updated in place."""
    lr = torch.tensor(0.05, device="cuda")
    eager_model, graph_model, eager, graphed = _twins(name, graph_lr=lr)
    _fill(eager, 0)
    _fill(graphed, 0)
    eager.step()
    graph = capture_cuda_graph(graphed.step)  # one warm-up step outside capture, matched above
    for seed, new_lr in ((1, 0.02), (2, 0.01), (3, 0.1)):
        _fill(eager, seed)
        _fill(graphed, seed)
        eager.param_groups[0]["lr"] = new_lr
        lr.fill_(new_lr)
        eager.step()
        graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@gpu
@pytest.mark.parametrize("name", GPU_BACKENDS)
@pytest.mark.parametrize("aggregator", sorted(COMPILED))
def test_every_compiled_aggregator_replays_from_a_cuda_graph(name, aggregator):
    """The step of every aggregator with a compiled solve (its counter and state advanced on the
    device) captured once and replayed equals the eager steps."""
    eager_model, graph_model, eager, graphed = _twins(name, aggregator=aggregator)
    _fill(graphed, 0)
    graph = capture_cuda_graph(graphed.step, warmup=3)
    for _ in range(3):
        _fill(eager, 0)
        eager.step()
    for seed in range(1, 5):
        _fill(eager, seed)
        _fill(graphed, seed)
        graph.replay()
        eager.step()
    torch.cuda.synchronize()
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

