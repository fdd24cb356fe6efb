"""Test configuration: a fast hypothesis profile, deterministic torch, the devices to test on."""

import os
import shutil

# Without a GPU, run Triton kernels in its CPU interpreter. This must happen before anything
# imports triton (torch does so on import), so it cannot wait for torch.cuda.is_available().
if shutil.which("nvidia-smi") is None and not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch
from hypothesis import settings

try:  # PyTorch's optimizer test inputs (test_adamw.py) come from this module, and importing it loads
    # PyTorch's own hypothesis profile (10 fresh random examples, a 200 ms deadline); Hypothesis binds
    # the profile in force when a test module is imported, so it ran in place of ours from test_adamw.py
    # on (CI drew a failing example that way on 2026-12-05). Imported first, ours below takes over.
    import torch.testing._internal.common_utils
except ImportError:
    pass

settings.register_profile("fast", max_examples=20, deadline=None, derandomize=True)
# `pytest --hypothesis-profile thorough`: fresh random examples, 25 times as many (minutes per file),
# to look for inputs the fixed CI draw misses
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile("fast")
torch.set_num_threads(1)  # the CI machine is shared; threads only add noise at these sizes

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
