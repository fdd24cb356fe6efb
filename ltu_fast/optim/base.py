"""The base every harmonizing optimizer shares: layout, objectives, gradient rows, statistics, checkpoints.

An update rule (SGD, AdamW, ...) is a small subclass that says which hyper-parameters it reads,
which per-element state buffers it keeps and which fused step it runs. Everything else lives here:

* one :class:`~ltu_fast.plan.SegmentPlan` lays out parameters ``[P]`` (each ``param.data`` a view,
  as FSDP's FlatParameter), per-element state buffers ``[P]`` and the gradient rows ``[K, P]``;
* each parameter's ``.grad`` is a view into the row of the active objective, so ``backward()``
  accumulates straight into that row (``with opt.objective(name): loss.backward()``);
* ``step()`` runs the rule's fused step (Gram -> coefficients -> one update pass, no host sync)
  and keeps its :class:`~ltu_fast.functional.StepStats` for ``conflict_rate()`` and skip counts;
* which parameters a backward reached (torch's ``grad is None`` rule, :mod:`.touched`) is kept on
  the host for every front end, so untouched parameters are skipped as torch skips them;
* ``state_dict()`` / ``load_state_dict()`` carry torch's per-parameter state (views of the flat
  buffers, so torch's own checkpoints load) plus the harmonization state.

The hot path of a step is kept in small methods (:meth:`_absorb_foreign_grads`,
:meth:`_point_grads`, :meth:`_hyper`, :meth:`_touched_on_device`, :meth:`step`) so it can be tuned
in one place for every rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.optim import Optimizer

from ..aggregators import Aggregator, as_weights, make_aggregator
from ..backends import Backend, resolve_backend
from ..functional import StepStats, segment_labels, tensor_plan
from ..ops import through_ops
from ..plan import SegmentPlan
from .touched import ReachedFlags

__all__ = ["GRANULARITIES", "HarmonizedOptimizer", "check_betas", "check_hyper"]

GRANULARITIES = ("layer", "module", "global")


def check_hyper(name: str, value: Any, where: str, *, tensor_ok: bool = False) -> None:
    """Numbers >= 0; a one-element tensor where ``tensor_ok`` (read on the device, e.g. for graph capture)."""
    if isinstance(value, torch.Tensor) and tensor_ok:
        if value.numel() != 1:
            raise ValueError(f"{name}{where}: a tensor {name} must have one element, got shape {tuple(value.shape)}")
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name}{where}: expected a number, got {type(value).__name__}")
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{name}{where}: must be >= 0, got {value}")


def check_betas(betas: Any, where: str) -> None:
    """Two coefficients in [0, 1), numbers or one-element tensors (Adam's and Lion's ``betas``)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas{where}: expected two numbers, got {betas!r}")
    for i, b in enumerate(betas):
        check_hyper(f"betas[{i}]", b, where, tensor_ok=True)
        if not isinstance(b, torch.Tensor) and not b < 1.0:
            raise ValueError(f"betas[{i}]{where}: must be in [0, 1), got {b}")


def _objective_names(objectives: int | Sequence[str]) -> tuple[str, ...]:
    if isinstance(objectives, int) and not isinstance(objectives, bool):
        if objectives < 1:
            raise ValueError(f"objectives: need K >= 1 objectives, got {objectives}")
        return tuple(f"objective{k}" for k in range(objectives)) if objectives > 1 else ("loss",)
    names = tuple(objectives)
    if not names:
        raise ValueError("objectives: need K >= 1 objectives, got an empty list")
    if any(not isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise ValueError(f"objectives: expected distinct names, got {names}")
    return names


class HarmonizedOptimizer(Optimizer):
    """Base of the harmonizing optimizers (see the module docstring); not used directly.

    Subclasses set :attr:`hyper_columns` (group keys uploaded as one ``[G, C]`` device table per
    change), :attr:`tensor_hyper` (keys that may be one-element tensors), and implement
    :meth:`_check_group`, :meth:`_state_buffers` and :meth:`_update`.

    ``skip_untouched`` (default True): a parameter no objective's backward reached since the
    gradients were last cleared is skipped as torch skips ``grad is None`` (docs/core.md,
    "Untouched parameters"); False: every parameter steps (an untouched one on a zero gradient).
    """

    _step_supports_amp_scaling = True  # GradScaler passes grad_scale / found_inf; we unscale in-kernel
    _statistics = None  # subclasses (sharded training) set a ``(rows, plan) -> gram`` to see all ranks
    _defer_zero_grad = True  # zero_grad leaves rows pending (see there); False: fill them
    _touched_from_hooks = True  # False: a subclass writes ``_touched`` on the device itself (sharded training)
    hyper_columns: tuple[str, ...] = ()
    tensor_hyper: tuple[str, ...] = ("lr",)

    def __init__(
        self,
        params,
        defaults: dict[str, Any],
        *,
        objectives: int | Sequence[str] = 1,
        aggregator: str | Aggregator = "pcgrad",
        granularity: str | Sequence[int] = "layer",
        weights: Sequence[float] | torch.Tensor | None = None,
        backend: str = "auto",
        align_bytes: int = 64,
        skip_untouched: bool = True,
    ):
        self.objectives = _objective_names(objectives)
        self.skip_untouched = skip_untouched
        self._reached = ReachedFlags()
        self.aggregator = make_aggregator(aggregator)
        self.aggregator.validate(len(self.objectives))
        self.weights = as_weights(weights, len(self.objectives))
        if isinstance(granularity, str) and granularity not in GRANULARITIES:
            raise ValueError(f"granularity: unknown {granularity!r}; choose one of {GRANULARITIES} or a sequence of ids")
        self.granularity = granularity
        self.backend_name = backend
        self.align_bytes = align_bytes
        self._layout_ready = False
        super().__init__(params, defaults)
        self._build_layout()

    # ------------------------------------------------------------------------ rule hooks
    def _check_group(self, group: dict, where: str) -> None:
        """Validate one param group's hyper-parameters (``where`` names it in errors)."""
        raise NotImplementedError

    def _group_values(self, group: dict) -> list[Any]:
        """One group's row of the device hyper-parameter table (numbers, bools or one-element tensors)."""
        return [group[name] for name in self.hyper_columns]

    def _state_buffers(self) -> tuple[str, ...]:
        """Names of the per-element state buffers the current hyper-parameters need (flat, [P] each)."""
        return ()

    def _state_dtype(self, param_dtype: torch.dtype) -> torch.dtype:
        """dtype of the per-element state buffers."""
        return param_dtype

    def _table_dtype(self, param_dtype: torch.dtype) -> torch.dtype:
        """dtype of the device hyper-parameter table: float64 parameters get float64 hyper-parameters
        (a float32 lr would perturb every float64 step)."""
        return torch.float64 if param_dtype == torch.float64 else torch.float32

    def _layout_changed(self, first: bool) -> None:
        """Called after every (re-)layout: allocate or grow per-group device state."""

    def _device_state(self) -> tuple[torch.Tensor, ...]:
        """Per-group device tensors the step updates in place (static addresses for CUDA graphs)."""
        return ()

    def _update(self, backend: Backend, hyper: torch.Tensor, grad_scale: torch.Tensor | None,
                found_inf: torch.Tensor | None) -> StepStats:
        """The fused step on the flat buffers (counting a skipped step in ``_skipped``); returns its statistics."""
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        """Rule state beyond torch's per-parameter state, saved under ``state_dict()["harmonized"]``."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        """Restore :meth:`_extra_state`; ``extra`` is None for a plain torch optimizer's state_dict."""

    # ----------------------------------------------------------------- construction and layout
    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._check_group(group, f" (param group {len(self.param_groups) - 1})")
        if self._layout_ready:  # a group added after construction: re-lay the buffers out
            self._build_layout()

    def _named_params(self) -> list[tuple[str, torch.nn.Parameter, int]]:
        """(display name, param, group index) for every trainable parameter, in layout order."""
        out = []
        for g, group in enumerate(self.param_groups):
            names = group.get("param_names")
            for i, p in enumerate(group["params"]):
                if p.requires_grad:
                    out.append((names[i] if names else f"param_groups[{g}]['params'][{i}]", p, g))
        return out

    def _validate_params(self, named: list[tuple[str, torch.nn.Parameter, int]]) -> None:
        if not named:
            raise ValueError("params: no trainable parameters (empty list, or none requires grad)")
        ref_name, ref, _ = named[0]
        seen: dict[int, str] = {}
        for name, p, _ in named:
            if id(p) in seen:  # torch only warns, then updates it twice; one flat slot per tensor cannot
                raise ValueError(f"params: {name} is the same tensor as {seen[id(p)]}; pass each parameter once")
            seen[id(p)] = name
            if p.layout != torch.strided:
                raise TypeError(f"params: {name} has layout {p.layout}; only dense tensors are supported")
            if not p.dtype.is_floating_point:
                raise TypeError(f"params: {name} has dtype {p.dtype}; parameters must be floating point")
            if p.device != ref.device or p.dtype != ref.dtype:
                raise ValueError(f"params: {name} is {p.dtype} on {p.device} but {ref_name} is {ref.dtype} on "
                                 f"{ref.device}; {type(self).__name__} needs one device and one dtype")

    def _segment_labels(self, named) -> list:
        if self.granularity == "module":
            if any(name.startswith("param_groups[") for name, _, _ in named):
                raise ValueError("granularity='module' needs parameter names: pass model.named_parameters()")
            return [name.rpartition(".")[0] for name, _, _ in named]
        return segment_labels(len(named), self.granularity)

    def _build_layout(self) -> None:
        """Move parameters, state buffers and gradient rows into flat buffers (keeping any values)."""
        named = self._named_params()
        self._validate_params(named)
        params = [p for _, p, _ in named]
        ref = params[0]
        if self._layout_ready:
            self._materialize_rows()  # pending rows hold their gradients in .grad: write them first
        old_rows = getattr(self, "_row_views", None)
        old_index = {id(p): i for i, p in enumerate(getattr(self, "_params", []))}
        plan = SegmentPlan.build([p.numel() for p in params], self._segment_labels(named),
                                 [g for _, _, g in named], element_size=ref.element_size(),
                                 align_bytes=self.align_bytes, device=ref.device)
        shapes = [p.shape for p in params]
        k = len(self.objectives)
        flat = plan.flatten([p.detach() for p in params])
        rows = torch.zeros(k, plan.total, dtype=ref.dtype, device=ref.device)
        row_views = [plan.views(rows[j], shapes) for j in range(k)]
        for i, p in enumerate(params):
            j = old_index.get(id(p))
            if j is not None:  # re-layout: keep gradient rows
                for obj in range(k):
                    row_views[obj][i].copy_(old_rows[obj][j])
        buffers = {}
        for name in self._state_buffers():  # per-element state: keep any history the parameters hold
            buffers[name] = torch.zeros(plan.total, dtype=self._state_dtype(ref.dtype), device=ref.device)
            for p, view in zip(params, plan.views(buffers[name], shapes)):
                old = self.state.get(p, {}).get(name)
                if old is not None:
                    view.copy_(old)
                self.state[p][name] = view
        for p, view in zip(params, plan.views(flat, shapes)):
            p.data = view
        tensor_plan(plan), plan.table  # built here, outside any compiled step (tracing cannot build them)
        self.plan, self._params, self._shapes = plan, params, shapes
        self._flat_params, self._rows, self._row_views, self._buffers = flat, rows, row_views, buffers
        self._pending = [False] * k  # see zero_grad
        if not self._layout_ready:
            self._skipped = torch.zeros(1, dtype=torch.int64, device=ref.device)
            self._active = 0
            self.last_stats: StepStats | None = None
            if self.weights is not None:  # moved once, so step() uploads nothing
                self.weights = self.weights.to(ref.device)
        self._touched = torch.zeros(plan.num_tensors, dtype=torch.float32, device=ref.device)  # see _touched_on_device
        self._untouched = torch.zeros(plan.num_tensors, dtype=torch.float32, device=ref.device)
        self._touched_key = None  # the host flags _touched holds (None: not uploaded yet)
        self._reached.relayout(self, params, k, hooks=self.skip_untouched and self._touched_from_hooks)
        self._layout_changed(first=not self._layout_ready)
        self._hyper_dtype = self._table_dtype(ref.dtype)
        self._backend = resolve_backend(self.backend_name, ref.device, ref.dtype, ref.dtype)
        self._hyper_key = None
        self._layout_ready = True
        self._mark_static_addresses(self._flat_params, self._rows, self._skipped, self.weights, self._touched,
                                    self._untouched,
                                    *self.aggregator.device_state(plan.num_segments, k, ref.device),
                                    *self._buffers.values(), *self._device_state())
        self._point_grads()
        self._hyper()  # the first upload, eagerly: traced by torch.compile, a host copy would cost the step its CUDA graph

    def _empty_buffer(self) -> torch.Tensor:
        """What a kernel receives for a state buffer no group needs (numel 0)."""
        return self._flat_params.new_zeros(0, dtype=self._state_dtype(self._flat_params.dtype))

    @staticmethod
    def _mark_static_addresses(*buffers: torch.Tensor | None) -> None:
        """Tell Dynamo these buffers keep their address between steps, so
        ``torch.compile(mode="reduce-overhead")`` captures the step in a CUDA graph instead of
        skipping it for mutated (or copying read-only) inputs. A re-layout makes new buffers, and
        CUDA graphs re-record for them. (Buffers made while tracing are graph intermediates.)"""
        if torch.compiler.is_compiling():
            return
        for t in buffers:
            if t is not None:
                torch._dynamo.mark_static_address(t)

    # ----------------------------------------------------------------------- objectives and grads
    def _objective_index(self, which: int | str) -> int:
        if isinstance(which, str):
            if which not in self.objectives:
                raise ValueError(f"objective: unknown {which!r}; this optimizer has {self.objectives}")
            return self.objectives.index(which)
        if not isinstance(which, int) or not 0 <= which < len(self.objectives):
            raise ValueError(f"objective: expected a name or an index in [0, {len(self.objectives)}), got {which!r}")
        return which

    def _point_grads(self) -> None:
        """``.grad`` of every parameter: a view of the active row, or None while that row is pending."""
        if self._pending[self._active]:
            for p in self._params:
                p.grad = None
            return
        for p, view in zip(self._params, self._row_views[self._active]):
            p.grad = view

    @torch.no_grad()
    def _absorb_foreign_grads(self) -> None:
        """Bring any ``.grad`` that is no longer our row view back into the active row.

        Code outside the optimizer may replace ``.grad``. None comes from ``model.zero_grad()``:
        that parameter's gradient is cleared in *every* objective's row (so the usual loop
        ``model.zero_grad(); with opt.objective(...): backward()`` per objective sees no stale
        rows). A new tensor (a backward after that, or ``create_graph=True``) is copied into the
        active row, so nothing written to ``.grad`` is lost. A pending row (see :meth:`zero_grad`)
        is written whole from ``.grad``.
        """
        if self._pending[self._active]:
            self._write_pending_row()
            return
        for i, (p, view) in enumerate(zip(self._params, self._row_views[self._active])):
            g = p.grad
            if g is view:
                continue
            if g is None:
                for row_views in self._row_views:
                    row_views[i].zero_()
            else:
                self._check_dense(i, g)
                view.copy_(g)
            self._grad_replaced(i, g)
            p.grad = view

    def _grad_replaced(self, i: int, grad: torch.Tensor | None) -> None:
        """Parameter ``i``'s ``.grad`` was replaced outside the optimizer and is now absorbed
        (None: cleared in every row; a tensor: copied into the active row)."""
        self._reached.replaced(self._active, i, grad)

    def _check_dense(self, i: int, g: torch.Tensor) -> None:
        if g.layout != torch.strided:
            raise TypeError(f"params: a sparse gradient was assigned to parameter {i} ({tuple(g.shape)}); "
                            f"{type(self).__name__} supports dense gradients only")

    def _write_pending_row(self) -> None:
        """The active pending row := ``.grad`` (what backward wrote; None is zero): one foreach copy
        and one foreach zero, instead of a zero fill plus an accumulation per backward."""
        self._reached.row_written(self._active, [p.grad for p in self._params])  # None: no backward reached it
        sources, targets, absent = [], [], []
        for i, (p, view) in enumerate(zip(self._params, self._row_views[self._active])):
            g = p.grad
            if g is None:
                absent.append(view)
            elif g is not view:
                self._check_dense(i, g)
                sources.append(g)
                targets.append(view)
            p.grad = view
        if targets:
            torch._foreach_copy_(targets, sources)
        if absent:
            torch._foreach_zero_(absent)
        self._pending[self._active] = False

    def _materialize_rows(self) -> None:
        """Every row holds its gradients (the active one absorbed, pending ones written or zeroed)."""
        self._absorb_foreign_grads()
        for k, pending in enumerate(self._pending):
            if pending:
                self._rows[k].zero_()
                self._pending[k] = False

    def set_objective(self, which: int | str) -> None:
        """Route subsequent ``backward()`` calls into the row of objective ``which``."""
        k = self._objective_index(which)
        if k == self._active and self._pending[k]:
            return  # .grad (None, or what backward wrote) is this row's content until it is written
        self._absorb_foreign_grads()
        self._active = k
        self._point_grads()

    @contextmanager
    def objective(self, which: int | str) -> Iterator[torch.Tensor]:
        """Context manager: gradients inside accumulate into ``which``'s row (yielded)."""
        previous = self._active
        self.set_objective(which)
        try:
            yield self._rows[self._active]
        finally:
            self.set_objective(previous)

    @property
    def active_objective(self) -> str:
        return self.objectives[self._active]

    @property
    def grad_rows(self) -> torch.Tensor:
        """The flat gradient rows ``[K, P]`` (live: writes go straight to the optimizer).

        Rows handed out count as holding a gradient of every parameter (code writing there bypasses
        autograd, as assigning ``.grad`` does in torch): all of them step, untouched or not."""
        self._materialize_rows()
        self._reached.mark_all()
        return self._rows

    def grad_row(self, which: int | str) -> torch.Tensor:
        """One objective's flat gradient row ``[P]`` (live)."""
        return self.grad_rows[self._objective_index(which)]

    @property
    def flat_params(self) -> torch.Tensor:
        """The flat parameter buffer ``[P]`` every parameter is a view of."""
        return self._flat_params

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every objective's gradients.

        By default no row is filled: each becomes *pending*, ``.grad`` is None, the first
        backward into a row leaves its gradients in ``.grad`` (autograd's own fresh tensors, as
        after ``torch.optim``'s ``zero_grad``), and they are copied into the row once, when the
        objective changes or the step reads the rows: one write per element instead of a K x P
        zero fill plus an accumulating read-modify-write. ``set_to_none=False`` (or a subclass
        with ``_defer_zero_grad = False``) fills the rows with zeros and keeps ``.grad`` views.
        """
        if set_to_none:  # as torch: zeroing in place keeps every .grad that existed, None stays None
            self._reached.clear()
        if not (set_to_none and self._defer_zero_grad):
            self._rows.zero_()
            self._pending = [False] * len(self.objectives)
            self._point_grads()
            return
        self._pending = [True] * len(self.objectives)
        for p in self._params:
            p.grad = None

    # -------------------------------------------------------------------------------- the step
    def _hyper(self) -> torch.Tensor:
        """[G, C] hyper-parameters (:meth:`_group_values`) on the device.

        Host values are uploaded only when one changed (a scheduler), from pinned memory without
        blocking; a tensor hyper-parameter is copied on the device every step. May re-lay the
        buffers out (a state buffer switched on after construction), so call it before reading them.
        """
        values = [self._group_values(group) for group in self.param_groups]
        tensors = [(g, c, v) for g, row in enumerate(values) for c, v in enumerate(row)
                   if isinstance(v, torch.Tensor)]
        key = tuple(tuple(0.0 if isinstance(v, torch.Tensor) else float(v) for v in row) for row in values)
        if key != self._hyper_key:
            if not set(self._state_buffers()) <= set(self._buffers):
                self._build_layout()  # e.g. momentum switched on after construction: allocate its buffer
            device = self._flat_params.device
            host = torch.tensor(key, dtype=self._hyper_dtype, pin_memory=device.type == "cuda")
            self._hyper_tensor = host.to(device, non_blocking=True)
            self._mark_static_addresses(self._hyper_tensor)
            self._hyper_key = key
        if not tensors:
            return self._hyper_tensor
        hyper = self._hyper_tensor.clone()
        for g, c, value in tensors:
            hyper[g, c] = value.reshape(())
        return hyper

    def _touched_on_device(self) -> torch.Tensor | None:
        """``[T]`` float32 on the device: some backward reached the tensor (None: every tensor steps).

        All reached (steady training) needs no tensor and none reached a constant one; a mix is
        uploaded (pinned, without blocking) only when it changed. So a step dispatches nothing for
        it, and a compiled step traces no host-to-device copy unless the mix changes."""
        if not self.skip_untouched:
            return None
        flags = self._reached.per_tensor()
        if all(flags):
            return None
        if not any(flags):
            return self._untouched
        if flags != self._touched_key:
            host = torch.tensor(flags, dtype=torch.float32, pin_memory=self._touched.device.type == "cuda")
            self._touched.copy_(host, non_blocking=True)
            self._touched_key = flags
        return self._touched

    def _step_backend(self) -> Backend:
        """Compiled: the kernels as opaque custom ops (no graph break); eager: direct, less overhead."""
        return through_ops(self._backend) if torch.compiler.is_compiling() else self._backend

    @torch.no_grad()
    def step(self, closure=None):
        """Harmonize the K rows per segment and apply one fused update. No host sync."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._materialize_rows()
        grad_scale = getattr(self, "grad_scale", None)  # set by torch.amp.GradScaler.step
        found_inf = getattr(self, "found_inf", None)
        if found_inf is not None and grad_scale is None and len(self.objectives) > 1:
            raise RuntimeError("GradScaler.unscale_ reaches only the active objective's row (.grad); with several "
                               "objectives let scaler.step() unscale in the fused pass instead")
        backend = self._step_backend()
        hyper = self._hyper()  # first: it may re-lay out the buffers read below
        self.last_stats = self._update(backend, hyper, grad_scale, found_inf)
        return loss

    def scaler_step(self, scaler: torch.amp.GradScaler, *args, **kwargs):
        """``scaler.step(self)`` that also reports overflow in *any* objective's row to ``scaler``.

        GradScaler checks only ``param.grad``, i.e. the active objective's row; the step itself
        is skipped whenever any row is non-finite (the Gram statistics see every row), but a plain
        ``scaler.update()`` would then not back off and the loss scale would stay too large. This
        ORs the step's device flag into the scaler's per-device record (no host sync), so
        ``scaler.update()`` reacts as it would for a single gradient.
        """
        result = scaler.step(self, *args, **kwargs)
        if scaler.is_enabled() and self.last_stats is not None:
            flag = self.last_stats.found_inf
            for t in scaler._per_optimizer_states[id(self)]["found_inf_per_device"].values():
                torch.maximum(t, flag.to(t).reshape(t.shape), out=t)
        return result

    # -------------------------------------------------------------------------------- reporting
    @property
    def step_skipped(self) -> torch.Tensor:
        """Device flag [1]: nonzero if the last step was skipped for non-finite gradients."""
        return self.last_stats.found_inf if self.last_stats is not None else torch.zeros(1)

    @property
    def skipped_steps(self) -> int:
        """How many steps were skipped for non-finite gradients so far (synchronises)."""
        return int(self._skipped.item())

    def conflict_rate(self) -> float:
        """Share of segments whose objectives conflicted in the last step (synchronises)."""
        if self.last_stats is None:
            raise RuntimeError("conflict_rate: no step has been taken yet")
        return self.last_stats.conflict_rate()

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["harmonized"] = self._harmonized_state()
        return state

    def _harmonized_state(self) -> dict[str, Any]:
        return {
            "objectives": list(self.objectives),
            "active": self._active,
            "skipped": self._skipped.clone(),
            "aggregator": self.aggregator.state_dict(),
            **self._extra_state(),
        }

    def _check_saved_objectives(self, extra: dict[str, Any] | None) -> None:
        if extra is not None and list(extra["objectives"]) != list(self.objectives):
            raise ValueError(f"state_dict: saved objectives {extra['objectives']} differ from {list(self.objectives)}")

    def _restore_harmonized(self, extra: dict[str, Any] | None) -> None:
        if extra is not None:
            self._skipped.copy_(extra["skipped"])
            self.aggregator.load_state_dict(extra["aggregator"])
            self._active = extra["active"]
        self._hyper_key = None
        self._point_grads()
        self._hyper()  # re-uploaded here, eagerly (see _build_layout)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("harmonized", None)
        self._check_saved_objectives(extra)
        super().load_state_dict(state_dict)
        self._load_extra_state(extra)  # first: a plain torch state_dict's history is read from what it holds
        for name, flat in self._buffers.items():  # loaded per-parameter state goes back into the flat buffers
            for p, view in zip(self._params, self.plan.views(flat, self._shapes)):
                loaded = self.state[p].get(name)
                if loaded is not None and loaded is not view:
                    view.copy_(loaded)
                self.state[p][name] = view
        self._restore_harmonized(extra)
