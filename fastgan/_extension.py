"""Loading of the compiled extension ``fastgan._C``, with the reason when it is absent."""
from __future__ import annotations

import functools

import torch

OPS = ("mlp_forward", "mlp_backward", "critic_step", "row_penalty", "clip_", "clipped_rmsprop_",
       "bias_act", "bias_act_grad", "bias_act_grad2")


class ExtensionNotBuiltError(RuntimeError):
    """fastgan._C could not be imported: the C++/CUDA backends are unavailable."""


@functools.lru_cache(maxsize=None)
def load_error() -> str | None:
    """None when fastgan._C is importable, else why not."""
    try:
        from fastgan import _C  # noqa: F401  (importing registers the ops)
    except ImportError as exc:
        return (f"the C++ extension fastgan._C is not built ({exc}); build it with "
                "`make build` or `pip install --no-build-isolation -e .`")
    return None


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
