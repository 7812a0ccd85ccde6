"""Triton kernels of fastgan, installed as ``fastgan.kernels``.

The GPU backends issue fills this package; until then no op has a Triton
implementation and ``fastgan.set_backend("triton")`` says so.
"""
