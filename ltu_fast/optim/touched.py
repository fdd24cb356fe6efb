"""Which parameters a backward reached since the gradients were last cleared: torch's ``grad is None``
rule, kept on the host for every front end.

torch skips a parameter whose ``.grad`` is None (no weight decay, no momentum or moment change, no
step count). The optimizers keep gradients in rows, so ``.grad`` is rarely None; this records the
same fact as it happens, per objective and parameter, from autograd's post-accumulate-grad hooks,
what a pending row finds in ``.grad`` when it is written and gradients replaced behind the
optimizer's back (see :class:`~ltu_fast.optim.HarmonizedOptimizer`). Nothing is read back from the
device to know it.
"""

from __future__ import annotations

import functools
import weakref

import torch

__all__ = ["ReachedFlags"]


class ReachedFlags:
    """Per objective and parameter: reached by a backward since the last clear."""

    def __init__(self):
        self.rows: list[list[bool]] = []
        self._params: list[torch.Tensor] = []
        self._hooks: list = []

    def relayout(self, owner, params: list[torch.Tensor], objectives: int, hooks: bool) -> None:
        """New parameters (kept flags for the ones seen before) and, with ``hooks``, hooks that mark
        ``owner``'s active objective (weak: a parameter does not keep its optimizer alive)."""
        old = {id(p): [row[i] for row in self.rows] for i, p in enumerate(self._params)}
        self.rows = [[old[id(p)][j] if id(p) in old else False for p in params] for j in range(objectives)]
        self._params = list(params)
        for handle in self._hooks:
            handle.remove()
        ref = weakref.ref(owner)
        self._hooks = [p.register_post_accumulate_grad_hook(functools.partial(_mark_reached, ref, i))
                       for i, p in enumerate(params)] if hooks else []

    def clear(self) -> None:
        """``zero_grad()`` set every ``.grad`` to None: nothing is reached."""
        self.rows = [[False] * len(self._params) for _ in self.rows]

    def mark_all(self) -> None:
        """Gradients were written by hand (the rows were handed out): every parameter counts as reached."""
        self.rows = [[True] * len(self._params) for _ in self.rows]

    def row_written(self, objective: int, grads: list[torch.Tensor | None]) -> None:
        """A pending row was written from ``.grad``: exactly the parameters with a gradient were reached."""
        self.rows[objective] = [g is not None for g in grads]

    def replaced(self, objective: int, i: int, grad: torch.Tensor | None) -> None:
        """Parameter ``i``'s ``.grad`` was replaced behind the optimizer's back and absorbed: None
        (``model.zero_grad()``) clears it in every row; a tensor (assigned, or left by a backward,
        which the hook saw too) was reached in the active one."""
        if grad is None:
            for row in self.rows:
                row[i] = False
        else:
            self.rows[objective][i] = True

    def per_tensor(self) -> tuple[bool, ...]:
        """Whether any objective reached each parameter (torch's ``grad is not None``)."""
        return tuple(map(any, zip(*self.rows)))


def _mark_reached(ref: weakref.ref, index: int, param: torch.Tensor) -> None:
    """Post-accumulate-grad hook: a backward reached parameter ``index`` in the active objective."""
    opt = ref()
    if opt is not None:
        opt._reached.rows[opt._active][index] = True
