"""Triton kernel of the gradient penalty on per-sample input gradients: the norms, phi
and u = dPenalty/dg in one pass over the rows."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastgan.kernels import LAUNCHES


@triton.jit
def _penalty_kernel(g_ptr, u_ptr, phi_ptr, B, D, LAM: tl.constexpr, CENTER: tl.constexpr,
                    ONE_SIDED: tl.constexpr, FP64: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    rm = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    acc_dtype = tl.float64 if FP64 else tl.float32
    sq = tl.zeros((BLOCK_M,), dtype=acc_dtype)
    for d0 in range(0, D, BLOCK_D):
        rd = d0 + tl.arange(0, BLOCK_D)
        g = tl.load(g_ptr + rm[:, None] * D + rd[None, :],
                    mask=(rm[:, None] < B) & (rd[None, :] < D), other=0.0).to(acc_dtype)
        sq += tl.sum(g * g, axis=1)
    n = tl.sqrt(sq)
    d = n - CENTER
    if ONE_SIDED:
        d = tl.maximum(d, 0.0)
    tl.store(phi_ptr + rm, (d * d).to(phi_ptr.dtype.element_ty), mask=rm < B)
    scale = LAM / (tl.zeros_like(n) + B)  # lam / B at the accumulation precision
    k = tl.where(n > 0, scale * 2.0 * d / tl.where(n > 0, n, 1.0), 0.0)
    for d0 in range(0, D, BLOCK_D):
        rd = d0 + tl.arange(0, BLOCK_D)
        m = (rm[:, None] < B) & (rd[None, :] < D)
        g = tl.load(g_ptr + rm[:, None] * D + rd[None, :], mask=m, other=0.0).to(acc_dtype)
        tl.store(u_ptr + rm[:, None] * D + rd[None, :], (k[:, None] * g).to(u_ptr.dtype.element_ty), mask=m)


def _block(n: int, cap: int) -> int:
    return max(16, min(cap, triton.next_power_of_2(max(int(n), 1))))


def penalty_rows(g, u, lam, center, one_sided):
    """Writes ``u = (lam/B) phi'(|g|) g/|g|`` (may alias ``g``) and returns the
    per-sample ``phi``."""
    B, D = g.shape
    phi = torch.empty(B, dtype=torch.float64 if g.dtype == torch.float64 else torch.float32,
                      device=g.device)
    bm = _block(B, 32)
    _penalty_kernel[(triton.cdiv(B, bm),)](
        g, u, phi, B, D, LAM=float(lam), CENTER=float(center), ONE_SIDED=bool(one_sided),
        FP64=g.dtype == torch.float64, BLOCK_M=bm, BLOCK_D=_block(D, 64))
    LAUNCHES["penalty"] += 1
    return phi


def row_penalty(g, center, one_sided):
    """Triton twin of ``fastgan::row_penalty``: (mean phi, u shaped like g)."""
    B = g.shape[0]
    rows = g.reshape(B, -1).contiguous()
    u = torch.empty_like(rows)
    mean_phi = (penalty_rows(rows, u, 1.0, center, one_sided).sum() / B).to(g.dtype)
    return mean_phi, u.view(g.shape)
