"""Aggregators with per-segment state on the device (GradVac's targets, Nash-MTL's last weights).

The state tensors are made for the L segments of the Gram they first see (or that an optimizer
announces through :meth:`~.base.Aggregator.device_state` when it lays its buffers out), live on
its device, and are updated in place with no host synchronisation, so their addresses stay fixed
for CUDA graphs. A new layout (other L or K) starts from fresh state, as torchjd resets when the
number of objectives changes; a *loaded* state that does not fit is an error instead.
"""

from __future__ import annotations

import torch

from .base import Aggregator

__all__ = ["StatefulAggregator"]

StateSpec = dict[str, tuple[tuple[int, ...], torch.dtype, float]]


class StatefulAggregator(Aggregator):
    """Base of the stateful aggregators: subclasses describe their tensors in :meth:`state_spec`."""

    def __init__(self) -> None:
        self._state: dict[str, torch.Tensor] | None = None
        self._loaded = False  # the state came from a checkpoint: it must fit, never silently reset

    def state_spec(self, num_segments: int, num_objectives: int) -> StateSpec:
        """name -> (shape, dtype, initial value) of each state tensor."""
        raise NotImplementedError

    def state(self, gram: torch.Tensor) -> dict[str, torch.Tensor]:
        """The state for this Gram batch ``[L, K, K]`` (made, or moved to its device, on first use)."""
        self.device_state(gram.shape[0], gram.shape[-1], gram.device)
        return self._state

    def device_state(self, num_segments: int, num_objectives: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        spec = self.state_spec(num_segments, num_objectives)
        device = torch.device(device)
        if self._state is not None and not self._fits(self._state, spec):
            if self._loaded:
                raise ValueError(f"{type(self).__name__}: the loaded state ({_shapes(self._state)}) does not fit "
                                 f"L = {num_segments} segments and K = {num_objectives} objectives ({_spec_shapes(spec)})")
            self._state = None  # a new layout: fresh state, as torchjd after a change of K
        if self._state is None:
            self._state = {key: torch.full(shape, fill, dtype=dtype, device=device)
                           for key, (shape, dtype, fill) in spec.items()}
            self._loaded = False
        elif any(t.device != device for t in self._state.values()):  # once: the state follows the Gram
            self._state = {key: t.to(device) for key, t in self._state.items()}
        return tuple(self._state.values())

    @staticmethod
    def _fits(state: dict[str, torch.Tensor], spec: StateSpec) -> bool:
        return set(state) == set(spec) and all(tuple(state[k].shape) == shape for k, (shape, _, _) in spec.items())

    def reset(self) -> None:
        """Back to the initial state, in place (the tensors keep their addresses)."""
        if self._state is not None:
            for key, (_, _, fill) in self.state_spec(1, 1).items():  # initial values do not depend on L, K
                self._state[key].fill_(fill)

    def state_dict(self) -> dict:
        return {} if self._state is None else {key: t.clone() for key, t in self._state.items()}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        loaded = {key: torch.as_tensor(value) for key, value in state.items()}
        if self._state is None:
            self._state, self._loaded = {key: t.clone() for key, t in loaded.items()}, True
            return
        if set(loaded) != set(self._state) or any(loaded[k].shape != t.shape for k, t in self._state.items()):
            raise ValueError(f"{type(self).__name__}: saved state ({_shapes(loaded)}) does not fit this layout "
                             f"({_shapes(self._state)})")
        for key, t in self._state.items():
            t.copy_(loaded[key])


def _shapes(state: dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{key} {tuple(t.shape)}" for key, t in state.items())


def _spec_shapes(spec: StateSpec) -> str:
    return ", ".join(f"{key} {shape}" for key, (shape, _, _) in spec.items())
