"""Timing helpers shared by the benches: CUDA events or wall clock, CUDA-graph capture, copy bandwidth."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def time_once(device: torch.device, fn: Callable[[], object], calls: int = 1) -> float:
    """Milliseconds per call of ``calls`` back-to-back calls: CUDA events around them on a GPU (device
    time, no host sync inside), wall clock on CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / calls
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) * 1e3 / calls


def timer(device: torch.device, reps: int, warmup: int, calls: int = 1) -> Callable[[Callable[[], None]], float]:
    def run(fn: Callable[[], None]) -> float:
        for _ in range(warmup):
            fn()
        return statistics.median(time_once(device, fn, calls) for _ in range(reps))
    return run


def capture_cuda_graph(fn: Callable[[], object], warmup: int = 1) -> torch.cuda.CUDAGraph:
    """``fn`` run ``warmup`` times on a side stream (state, caches and Triton compiles set up outside
    the capture, as PyTorch's graph recipe asks), then captured once; returns the graph."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def copy_bandwidth(device: torch.device, nbytes: int) -> float:
    """Bytes/s of a large copy (read + write counted)."""
    src = torch.rand(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    ms = timer(device, 10, 3)(lambda: dst.copy_(src))
    return 2 * src.numel() * 4 / (ms * 1e-3)
