"""The elementwise kernels of the graph step (csrc/graph) in Triton, registered as torch
ops, ``fastgan_triton::bias_act_into`` and ``fastgan_triton::penalty_rows``, which the
C++ orchestration calls through the dispatcher when the ``triton`` backend runs the
step: one orchestration, the elementwise work in Triton. Importing registers them."""
from __future__ import annotations

from typing import Optional

import torch

from fastgan.kernels.bias_act import _launch
from fastgan.kernels.activation import ACT_CODES
from fastgan.kernels.penalty import penalty_rows

Tensor = torch.Tensor
ACT_NAMES = {code: name for name, code in ACT_CODES.items()}


@torch.library.custom_op("fastgan_triton::bias_act_into", mutates_args=("out",))
def bias_act_into(out: Tensor, mode: int, x: Tensor, p: Optional[Tensor], q: Optional[Tensor], b: Optional[Tensor],
                  dim: int, act: int, alpha: float, gain: float, clamp: float, x_is_y: bool) -> None:
    """The twin of the C++ ``bias_act_into``: mode 0 (value), 1 (p * slope) or 2
    (p * q * curvature) of the activation with code ``act``, into ``out``."""
    for name, t in (("out", out), ("p", p), ("q", q)):
        if t is not None and (t.shape != x.shape or t.stride() != x.stride()):
            raise ValueError(f"bias_act_into: {name} must have x's shape and layout")
    _launch(mode, x, b, dim, ACT_NAMES[act], alpha, gain, clamp, p=p, q=q, x_is_y=x_is_y, out=out)


@torch.library.custom_op("fastgan_triton::penalty_rows", mutates_args=("u",))
def penalty_sum(g: Tensor, u: Tensor, lam_over_batch: float, center: float, one_sided: bool) -> Tensor:
    """The twin of the C++ penalty epilogue on (B, d) rows: writes
    ``u = lam_over_batch * phi'(|g_i|) g_i / |g_i|`` and returns the sum of ``phi``."""
    phi = penalty_rows(g, u, lam_over_batch * g.shape[0], center, one_sided)
    return phi.sum().to(g.dtype)


@penalty_sum.register_fake
def _(g, u, lam_over_batch, center, one_sided):
    return g.new_empty(())
