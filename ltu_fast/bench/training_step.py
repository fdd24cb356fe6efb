"""Full training step, small batches (LTU's inner loop), timed as a training loop runs it.

    ltu-fast bench step                                   # every case and contender, CPU or GPU
    ltu-fast bench step --threads 1 2 --cases cnn --rounds 12 --steps 100

One step = forward of a forget and a retain batch, then the update, per contender:
  sgd          one backward per loss into ``.grad``, ``torch.optim.SGD(momentum, foreach=True)``
  summed       the two losses summed, one backward, the same SGD                     (vs sgd)
  pcgrad, project, sum   ``HarmonizedSGD`` with that aggregator, one backward per objective (vs sgd)
  foreach      ``torch.autograd.grad`` per loss, per-layer PCGrad in ``_foreach`` ops
               (no host sync), ``.grad`` set, the same SGD                            (vs sgd)
  adamw        one backward per loss into ``.grad``, ``torch.optim.AdamW(foreach=True)``
  h-adamw      ``HarmonizedAdamW``, PCGrad                                          (vs adamw)
  adamw-fused  one backward per loss into ``.grad``, ``torch.optim.AdamW(fused=True)``
  wrapped      ``Harmonized(AdamW(fused=True))``, PCGrad                       (vs adamw-fused)
  upgrad       ``HarmonizedSGD`` with UPGrad (its compiled active-set solve)     (vs sgd)
  jd-upgrad, jd-pcgrad   torchjd (where installed): ``autojac.backward`` of both losses, then
               ``jac_to_grad`` per parameter with its own aggregator (per-layer grouping), the same
               SGD                                                                    (vs sgd)

Each contender steps its own copy of one model (same initial weights) on the same batches, in
blocks of ``--steps`` consecutive steps (as a training loop runs: the state one step leaves is
what the next one meets). The learning rate is 0 by default: every kernel of every update still
runs, but the network stays the same for all contenders. With a real learning rate the copies
drift apart, and a network's own speed depends on its weights (ATen's CPU max-pool branches on
the data: the unlearning CNN trained by plain SGD on the bench's batches loses most of its
second-layer units to ReLU and runs its forward ~15% faster than the same CNN trained by
PCGrad, with no optimizer in the process; docs/core.md), which would be charged to the optimizer.
A round runs one block per contender, the order rotating from round to round, so load from other processes hits all alike; round 0 is warm-up. Columns: the median over
rounds of ms per step; "x base" the median over rounds of the block's time over its baseline's
block in the same round (paired: slow drifts of the load cancel), with the interquartile range
of that ratio; the median split of a step into forward, backward (the ``backward()`` calls) and
optimizer (``zero_grad``, objective switches, the harmonization and the update); "held" the
bytes that live between steps (parameters, ``.grad`` or the K x P rows, optimizer state) and
"peak" the most a step holds at once (held + the step's own allocations), measured on one step
with the profiler's memory events (CPU) or the CUDA allocator's peak.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..optim import Harmonized, HarmonizedAdamW, HarmonizedOptimizer, HarmonizedSGD
from ..unlearn.models import MLP, ResNet18, SmallCNN
from .baselines import pcgrad_foreach

MOMENTUM = 0.9
OBJECTIVES = ("forget", "retain")


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Mute file descriptor 2 (some torch builds' profiler prints two lines per start and stop there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# name -> (model factory, input shape, classes, batch per objective, default steps per block)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int, int, int]] = {
    "cnn": (lambda: SmallCNN(1, 10), (1, 28, 28), 10, 16, 50),  # the unlearning default (MNIST)
    "resnet18": (lambda: ResNet18(3, 10), (3, 32, 32), 10, 8, 5),
    "mlp25m": (lambda: MLP(3072, 10, hidden=3712), (3072,), 10, 8, 10),  # 25.2M parameters
}

# name -> (optimizer factory (params, lr), baseline the paired ratio divides by, how the step computes gradients)
Factory = Callable[[list[nn.Parameter], float], torch.optim.Optimizer]


def _sgd(ps: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(ps, lr=lr, momentum=MOMENTUM, foreach=True)


def _harmonized_sgd(aggregator: str) -> Factory:
    return lambda ps, lr: HarmonizedSGD(ps, lr=lr, momentum=MOMENTUM, objectives=OBJECTIVES, aggregator=aggregator)


CONTENDERS: dict[str, tuple[Factory, str, str]] = {
    "sgd": (_sgd, "sgd", "backward"),
    "summed": (_sgd, "sgd", "summed"),
    **{name: (_harmonized_sgd(name), "sgd", "objectives") for name in ("pcgrad", "project", "sum")},
    "foreach": (_sgd, "sgd", "foreach"),
    "adamw": (lambda ps, lr: torch.optim.AdamW(ps, lr=lr, foreach=True), "adamw", "backward"),
    "h-adamw": (lambda ps, lr: HarmonizedAdamW(ps, lr=lr, objectives=OBJECTIVES, aggregator="pcgrad"),
                "adamw", "objectives"),
    "adamw-fused": (lambda ps, lr: torch.optim.AdamW(ps, lr=lr, fused=True), "adamw-fused", "backward"),
    "wrapped": (lambda ps, lr: Harmonized(torch.optim.AdamW(ps, lr=lr, fused=True), objectives=OBJECTIVES,
                                          aggregator="pcgrad"), "adamw-fused", "objectives"),
    "upgrad": (_harmonized_sgd("upgrad"), "sgd", "objectives"),
}
if importlib.util.find_spec("torchjd") is not None:  # torchjd's per-layer path, where it is installed
    CONTENDERS["jd-upgrad"] = (_sgd, "sgd", "torchjd:UPGrad")
    CONTENDERS["jd-pcgrad"] = (_sgd, "sgd", "torchjd:PCGrad")
PHASES = ("forward", "backward", "optimizer")


class _Contender:
    """One contender's model copy, optimizer and step, timing its three phases."""

    def __init__(self, name: str, model: nn.Module, sync: Callable[[], None], lr: float):
        factory, self.baseline, self.mode = CONTENDERS[name]
        self.name, self.model, self.sync = name, model, sync
        self.params = list(model.parameters())
        self.opt = factory(self.params, lr)
        self.phase_s = dict.fromkeys(PHASES, 0.0)
        if self.mode.startswith("torchjd:"):  # one aggregator per parameter: torchjd's per-layer grouping
            from torchjd import aggregation

            self.per_param = {p: getattr(aggregation, self.mode.split(":")[1])() for p in self.params}

    def step(self, xf, yf, xr, yr) -> None:
        """One training step, adding each phase's seconds to :attr:`phase_s`."""
        model, opt, spent, sync, clock = self.model, self.opt, self.phase_s, self.sync, time.perf_counter
        t0 = clock()
        opt.zero_grad()
        t1 = clock()
        losses = (F.cross_entropy(model(xf), yf), F.cross_entropy(model(xr), yr))
        sync()
        t2 = clock()
        spent["optimizer"] += t1 - t0
        spent["forward"] += t2 - t1
        self._gradients(*losses)
        t0 = clock()
        opt.step()
        sync()
        spent["optimizer"] += clock() - t0

    def _gradients(self, loss_f: torch.Tensor, loss_r: torch.Tensor) -> None:
        """Gradients into ``.grad`` (or the optimizer's rows): backward time apart from the optimizer's work."""
        opt, spent, sync, clock = self.opt, self.phase_s, self.sync, time.perf_counter
        if self.mode == "objectives":  # the context manager's two calls per block, timed apart from backward
            for objective, loss in zip(OBJECTIVES, (loss_f, loss_r)):
                t0 = clock()
                opt.set_objective(objective)
                t1 = clock()
                loss.backward()
                sync()
                t2 = clock()
                opt.set_objective(OBJECTIVES[0])
                spent["optimizer"] += t1 - t0 + clock() - t2
                spent["backward"] += t2 - t1
            return
        t0 = clock()
        if self.mode.startswith("torchjd:"):  # the Jacobian of both losses, then each layer's aggregation
            from torchjd import autojac

            autojac.backward([loss_f, loss_r])
            sync()
            t1 = clock()
            for p in self.params:
                autojac.jac_to_grad([p], self.per_param[p])
            spent["optimizer"] += clock() - t1
        elif self.mode == "foreach":
            grads = [torch.autograd.grad(loss, self.params) for loss in (loss_f, loss_r)]
            sync()
            t1 = clock()
            for p, g in zip(self.params, pcgrad_foreach([list(g) for g in grads])):
                p.grad = g
            spent["optimizer"] += clock() - t1
        else:
            for loss in (loss_f + loss_r,) if self.mode == "summed" else (loss_f, loss_r):
                loss.backward()
            sync()
            t1 = clock()
        spent["backward"] += t1 - t0

    def block(self, batches, steps: int) -> tuple[float, dict[str, float]]:
        """``steps`` consecutive steps: (ms per step, ms per step of each phase)."""
        self.phase_s = dict.fromkeys(PHASES, 0.0)
        self.sync()
        t0 = time.perf_counter()
        for i in range(steps):
            self.step(*batches[i % len(batches)])
        self.sync()
        total = (time.perf_counter() - t0) * 1e3 / steps
        return total, {k: v * 1e3 / steps for k, v in self.phase_s.items()}

    def held_bytes(self) -> int:
        """Bytes of every storage that lives between steps: parameters, gradients, optimizer state."""
        tensors = [*self.params, *(p.grad for p in self.params if p.grad is not None)]
        for state in self.opt.state.values():
            tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
        if isinstance(self.opt, HarmonizedOptimizer):  # its flat buffers (parameters and state are views)
            opt = self.opt
            tensors += [opt._rows, opt._flat_params, *opt._buffers.values()]
            tensors += [t for t in (getattr(opt, "_combined", None),) if t is not None]
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
        return sum(storages.values())

    def peak_bytes(self, batch) -> int:
        """Held bytes plus the most one step allocates on top of them at any moment."""
        if self.params[0].is_cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            self.step(*batch)
            torch.cuda.synchronize()
            return self.held_bytes() + torch.cuda.max_memory_allocated() - base
        from torch.profiler import ProfilerActivity, profile, record_function

        with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            self.step(*batch)  # what it leaves gets a known size when the measured step frees it
            held = self.held_bytes()
            with record_function("measured step"):
                self.step(*batch)
        events = prof.profiler.kineto_results.events()
        start = min(e.start_ns() for e in events if e.name() == "measured step")
        current = most = 0
        for _, nbytes in sorted((e.start_ns(), e.nbytes()) for e in events
                                if e.name() == "[memory]" and e.start_ns() >= start):
            current += nbytes
            most = max(most, current)
        return held + most


def _setup(name: str, device: torch.device, contenders: list[str], lr: float) -> tuple[list[_Contender], list[tuple]]:
    """One copy of the case's model per contender (same initial weights) and the two (forget, retain)
    batches every contender steps on."""
    factory, shape, classes, batch, _ = CASES[name]
    torch.manual_seed(0)
    base = factory().to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    runners = [_Contender(c, copy.deepcopy(base), sync, lr) for c in contenders]
    gen = torch.Generator(device=device).manual_seed(1)
    data = [(torch.randn(batch, *shape, generator=gen, device=device),
             torch.randint(0, classes, (batch,), generator=gen, device=device)) for _ in range(4)]
    return runners, [(*data[i], *data[2 + i]) for i in range(2)]


def bench_case(name: str, device: torch.device, rounds: int, steps: int | None, contenders: list[str],
               lr: float = 0.0) -> dict:
    """Time ``contenders`` on case ``name``: per contender, medians and paired ratios (see module doc)."""
    steps = steps or CASES[name][4]
    runners, batches = _setup(name, device, contenders, lr)
    totals: dict[str, list[float]] = {c: [] for c in contenders}
    phases: dict[str, list[dict[str, float]]] = {c: [] for c in contenders}
    for r in range(rounds + 1):
        for runner in runners[r % len(runners):] + runners[:r % len(runners)]:  # rotated: no fixed neighbour
            total, split = runner.block(batches, steps)
            if r:  # round 0 warms every contender up
                totals[runner.name].append(total)
                phases[runner.name].append(split)
    params = list(runners[0].model.parameters())
    out = {"case": name, "params_m": sum(p.numel() for p in params) / 1e6, "tensors": len(params),
           "batch": CASES[name][3], "steps": steps, "rows": {}}
    for runner in runners:
        c = runner.name
        own = totals[c]
        ref = totals.get(runner.baseline, own)
        ratios = [a / b for a, b in zip(own, ref)]
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        out["rows"][c] = {
            "ms": statistics.median(own), "baseline": runner.baseline if runner.baseline in totals else c,
            "ratio": statistics.median(ratios), "iqr": (q1, q3),
            **{p: statistics.median(s[p] for s in phases[c]) for p in PHASES},
            "held_mb": runner.held_bytes() / 2**20, "peak_mb": runner.peak_bytes(batches[0]) / 2**20,
        }
    return out


def print_case(r: dict) -> None:
    print(f"{r['case']}: {r['params_m']:.1f}M parameters, {r['tensors']} tensors, batch {r['batch']}+{r['batch']}, "
          f"blocks of {r['steps']} steps")
    print(f"  {'contender':<12}{'ms/step':>9}{'x base':>8}{'IQR':>16}  {'base':<12}"
          + "".join(f"{p:>10}" for p in PHASES) + f"{'held MB':>9}{'peak MB':>9}")
    for c, row in r["rows"].items():
        q1, q3 = row["iqr"]
        print(f"  {c:<12}{row['ms']:>9.2f}{row['ratio']:>8.3f}{f'[{q1:.3f}, {q3:.3f}]':>16}  {row['baseline']:<12}"
              + "".join(f"{row[p]:>10.2f}" for p in PHASES) + f"{row['held_mb']:>9.1f}{row['peak_mb']:>9.1f}")


def drift(name: str, device: torch.device, steps: int, contenders: list[str], lr: float, rounds: int = 60) -> dict:
    """Why the bench freezes the network: each contender's copy trains ``steps`` steps at ``lr`` on
    the bench's batches, then the forward alone of every resulting network is timed (no optimizer
    involved; ``rounds`` rounds of 10 forwards each, interleaved), with the share of exact zeros
    each ReLU produces on the first batch."""
    runners, batches = _setup(name, device, contenders, lr)
    x = batches[0][0]
    for runner in runners:
        runner.block(batches, steps)
    times: dict[str, list[float]] = {c: [] for c in contenders}
    with torch.no_grad():
        zeros = {runner.name: _relu_zeros(runner.model, x) for runner in runners}
        for _ in range(rounds):
            for runner in runners:
                for _ in range(10):
                    runner.sync()
                    t0 = time.perf_counter()
                    runner.model(x)
                    runner.sync()
                    times[runner.name].append((time.perf_counter() - t0) * 1e3)
    ms = {c: statistics.median(t) for c, t in times.items()}
    return {"case": name, "steps": steps, "lr": lr, "ms": ms, "zeros": zeros,
            "ratio": {c: statistics.median(a / b for a, b in zip(times[c], times[contenders[0]])) for c in contenders}}


def _relu_zeros(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Share of exact zeros in each ReLU's output on ``x``, in call order."""
    seen: list[float] = []
    hooks = [m.register_forward_hook(lambda m, i, out: seen.append((out == 0).float().mean().item()))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    model(x)
    for h in hooks:
        h.remove()
    return seen


def print_drift(r: dict) -> None:
    print(f"{r['case']}: the forward alone (no optimizer) of the network each contender reached after {r['steps']} "
          f"steps at lr {r['lr']}")
    print(f"  {'contender':<12}{'fwd ms':>8}{'x first':>9}  share of zeros out of each ReLU, in order")
    for c, ms in r["ms"].items():
        print(f"  {c:<12}{ms:>8.2f}{r['ratio'][c]:>9.3f}  " + " ".join(f"{z:.0%}" for z in r["zeros"][c]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ltu-fast bench step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds after one warm-up round")
    parser.add_argument("--steps", type=int, default=None,
                        help="consecutive steps per block (default per case: cnn 50, resnet18 5, mlp25m 10)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate of every contender; 0 (default) keeps one network for all (see above)")
    parser.add_argument("--drift", type=int, default=0, metavar="STEPS",
                        help="instead: train each contender STEPS steps at --lr (default 0.01 here), then time "
                             "the forward alone of each network (why the step bench keeps lr 0)")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()],
                        help="torch.set_num_threads, one table per value (CPU), e.g. --threads 1 2")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.drift:
        for threads in args.threads:
            torch.set_num_threads(threads)
            print(f"threads {torch.get_num_threads()}; torch {torch.__version__}")
            for case in args.cases:
                print_drift(drift(case, device, args.drift, args.contenders, 0.01 if args.lr is None else args.lr))
        return
    args.lr = args.lr or 0.0
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}; "
              f"threads {torch.get_num_threads()}; torch {torch.__version__}; medians of {args.rounds} interleaved "
              f"rounds of consecutive-step blocks; lr {args.lr}; ms per step")
        for case in args.cases:
            print_case(bench_case(case, device, args.rounds, args.steps, args.contenders, args.lr))


if __name__ == "__main__":
    main()
