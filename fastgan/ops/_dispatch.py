"""The implementation of the fused ops for a native backend."""
from fastgan import _extension


def native_ops(backend: str):
    """The extension's ops (``cpu``, ``cuda``) or their Triton twins (``triton``): both
    take and return the same things."""
    if backend == "triton":
        from fastgan.kernels import triton_ops
        return triton_ops
    return _extension.ops()
