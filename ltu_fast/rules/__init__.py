"""Fused update rules: one descriptor each (:class:`UpdateRule`), registered here by code.

Adding a rule: its file here (descriptor, torch ``prepare`` and ``element``), its C++/CUDA header
(``csrc/include/ltu_fast/rules/<name>.h``, one line in ``rules.h``), its Triton file
(``kernels/rules/<name>.py``) and its optimizer class (``ltu_fast/optim/<name>.py``); see docs/core.md.
"""

from .adamw import ADAMW
from .base import ROW_ACTIVE, UpdateRule, prepare_rows
from .lion import LION
from .sgd import SGD

RULES: dict[int, UpdateRule] = {rule.code: rule for rule in (SGD, ADAMW, LION)}

__all__ = ["ADAMW", "LION", "ROW_ACTIVE", "RULES", "SGD", "UpdateRule", "prepare_rows"]
