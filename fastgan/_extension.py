"""Loading of the compiled extension ``fastgan._C``, with the reason when it is absent."""
from __future__ import annotations

import torch

OPS = ("graph_step", "row_penalty", "clip_", "clipped_rmsprop_",
       "bias_act", "bias_act_grad", "bias_act_grad2")


class ExtensionNotBuiltError(RuntimeError):
    """fastgan._C could not be imported: the C++/CUDA backends are unavailable."""


_UNKNOWN = object()
_load_error = _UNKNOWN  # None, or why fastgan._C is missing, once tried


def load_error() -> str | None:
    """None when fastgan._C is importable, else why not (tried once per process; a
    plain global rather than a cache wrapper, so that torch.compile reads it as a
    constant instead of tracing the import)."""
    global _load_error
    if _load_error is _UNKNOWN:
        try:
            from fastgan import _C  # noqa: F401  (importing registers the ops)
            _load_error = None
        except ImportError as exc:
            _load_error = (f"the C++ extension fastgan._C is not built ({exc}); build it with "
                           "`make build` or `pip install --no-build-isolation -e .`")
    return _load_error


def ops():
    """``torch.ops.fastgan``, raising ExtensionNotBuiltError if the extension is missing."""
    error = load_error()
    if error is not None:
        raise ExtensionNotBuiltError(error)
    return torch.ops.fastgan


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether the built extension registered a kernel of ``fastgan::op`` for the key."""
    if load_error() is not None:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"fastgan::{op}", dispatch_key)
