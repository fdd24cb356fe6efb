"""Triton kernels for the backend ops (installed as ``ltu_fast.kernels``).

Imported only by :mod:`ltu_fast.backends.triton` once Triton is known to be importable; launch
logic and the chunk layout live there, the per-element math here.
"""
