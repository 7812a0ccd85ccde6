"""Fused in-place updates of parameter lists: weight clipping and clipped RMSprop."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch

from fastgan import _checks, backends, reference
from fastgan.ops._dispatch import native_ops

Tensor = torch.Tensor


def dtype_groups(*lists):
    """Index lists of the tensors of lists[0] grouped by (device, dtype)."""
    groups = defaultdict(list)
    for i, p in enumerate(lists[0]):
        groups[(p.device, p.dtype)].append(i)
    return groups.values()


def _impl(device: torch.device, dtype: torch.dtype, contiguous: bool):
    allowed = _checks.CUDA_DTYPES if device.type == "cuda" else _checks.CPU_DTYPES
    backend = backends.resolve(device)
    if backend == "eager" or not contiguous or dtype not in allowed:
        return reference
    return native_ops(backend)


@torch.no_grad()
def clip_(params: Iterable[Tensor], c: float) -> None:
    """Clamps every tensor of ``params`` to ``[-c, c]`` in place (WGAN weight clipping),
    one fused call per (device, dtype) group."""
    params = [p.detach() if isinstance(p, torch.nn.Parameter) else p for p in params]
    c = _checks.check_number(c, "c", minimum=0.0)
    for group in dtype_groups(params):
        tensors = [params[i] for i in group]
        impl = _impl(tensors[0].device, tensors[0].dtype, all(t.is_contiguous() for t in tensors))
        impl.clip_(tensors, c)


@torch.no_grad()
def clipped_rmsprop_(params, grads, square_avgs, grad_avgs, momentum_buffers, *, lr, alpha, eps,
                     weight_decay, momentum, centered, clip) -> None:
    """One RMSprop step (torch.optim.RMSprop's math, bit for bit on the CPU) followed by
    ``clamp_(-clip, clip)`` (``clip < 0``: none), fused per (device, dtype) group.
    ``grad_avgs`` is used when centered, ``momentum_buffers`` when momentum > 0."""
    for group in dtype_groups(params):
        def pick(lst):
            return [lst[i] for i in group] if lst else []
        ps = pick(params)
        contiguous = all(t.is_contiguous() for lst in (params, grads, square_avgs, grad_avgs,
                                                        momentum_buffers) for t in pick(lst))
        impl = _impl(ps[0].device, ps[0].dtype, contiguous)
        impl.clipped_rmsprop_(ps, pick(grads), pick(square_avgs), pick(grad_avgs),
                              pick(momentum_buffers), lr, alpha, eps, weight_decay, momentum,
                              centered, clip)
