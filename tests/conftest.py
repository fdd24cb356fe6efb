"""Test configuration: a fast hypothesis profile, deterministic torch, the devices to test on."""

import os
import shutil

# Without a GPU, run Triton kernels in its CPU interpreter. This must happen before anything
# imports triton (torch does so on import), so it cannot wait for torch.cuda.is_available().
if shutil.which("nvidia-smi") is None and not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch
from hypothesis import settings

settings.register_profile("fast", max_examples=20, deadline=None, derandomize=True)
# `pytest --hypothesis-profile thorough`: fresh random examples, 25 times as many (minutes per file),
# to look for inputs the fixed CI draw misses (another CPU's last bits drew one in CI on 2026-12-05)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile("fast")
torch.set_num_threads(1)  # the CI machine is shared; threads only add noise at these sizes

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
