"""Triton kernel of bias_act: one elementwise pass over any dense layout, the bias
indexed by each element's channel, (offset // stride[dim]) % size[dim]."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastgan.kernels import LAUNCHES
from fastgan.kernels.activation import ACT_CODES, _activation, _derivative_from_saved

BLOCK = 1024


@triton.jit
def _bias_act_kernel(out_ptr, x_ptr, b_ptr, p_ptr, q_ptr, n, channels, stride,
                     ALPHA: tl.constexpr, GAIN: tl.constexpr, CLAMP: tl.constexpr,
                     ACT: tl.constexpr, MODE: tl.constexpr, HAS_B: tl.constexpr,
                     X_IS_Y: tl.constexpr, FP64: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    acc = tl.float64 if FP64 else tl.float32
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(acc)
    z = x
    if HAS_B:
        z += tl.load(b_ptr + (offs // stride) % channels, mask=mask, other=0.0).to(acc)
    s, ds, d2s = _activation(z, ALPHA, ACT)
    y = GAIN * s
    c = tl.zeros_like(y) + CLAMP  # at y's precision: a bare float constant would be fp32
    if MODE == 0:
        value = y
        if CLAMP >= 0:
            value = tl.minimum(tl.maximum(y, -c), c)
    else:
        # The derivatives vanish where the clamp bites (torch.clamp keeps its ends).
        if MODE == 1:
            factor = GAIN * ds
        else:
            factor = GAIN * d2s
        if CLAMP >= 0:
            factor = tl.where((y <= c) & (y >= -c), factor, 0.0)
        if MODE == 1:
            if X_IS_Y:
                factor = GAIN * _derivative_from_saved(x, ALPHA, ACT)
            value = tl.load(p_ptr + offs, mask=mask, other=0.0).to(acc) * factor
        else:
            value = (tl.load(p_ptr + offs, mask=mask, other=0.0).to(acc)
                     * tl.load(q_ptr + offs, mask=mask, other=0.0).to(acc) * factor)
    tl.store(out_ptr + offs, value.to(out_ptr.dtype.element_ty), mask=mask)


def _launch(mode, x, b, dim, act, alpha, gain, clamp, p=None, q=None, x_is_y=False, out=None):
    """One pass of the kernel in ``mode`` into ``out`` (new, or given: it may be x, p or q
    itself, as every element is read before it is written), all operands in x's layout."""
    out = torch.empty_like(x) if out is None else out
    n = x.numel()
    if n == 0:
        return out
    channels, stride = (x.shape[dim], max(x.stride(dim), 1)) if b is not None else (1, 1)
    _bias_act_kernel[(triton.cdiv(n, BLOCK),)](
        out, x, b if b is not None else x, p if p is not None else x, q if q is not None else x,
        n, channels, stride, ALPHA=float(alpha), GAIN=float(gain), CLAMP=float(clamp),
        ACT=ACT_CODES[act], MODE=mode, HAS_B=b is not None, X_IS_Y=bool(x_is_y),
        FP64=x.dtype == torch.float64, BLOCK=BLOCK)
    LAUNCHES["bias_act"] += 1
    return out


def bias_act(x, b, dim, act, alpha, gain, clamp):
    """Triton twin of ``fastgan::bias_act``."""
    return _launch(0, x, b, dim, act, alpha, gain, clamp)


def bias_act_grad(dy, ref, b, dim, act, alpha, gain, clamp, ref_is_y):
    """Triton twin of ``fastgan::bias_act_grad``."""
    return _launch(1, ref, b, dim, act, alpha, gain, clamp, p=dy, x_is_y=ref_is_y)


def bias_act_grad2(p, q, x, b, dim, act, alpha, gain, clamp):
    """Triton twin of ``fastgan::bias_act_grad2``."""
    return _launch(2, x, b, dim, act, alpha, gain, clamp, p=p, q=q)
