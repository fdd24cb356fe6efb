"""Test configuration: a fast hypothesis profile, deterministic torch, the devices to test on."""

import torch
from hypothesis import settings

settings.register_profile("fast", max_examples=20, deadline=None, derandomize=True)
settings.load_profile("fast")
torch.set_num_threads(1)  # the CI machine is shared; threads only add noise at these sizes

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
