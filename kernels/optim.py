"""Triton kernels of the list updates: weight clipping and the clipped RMSprop step.

One launch per tensor and pass. The RMSprop step is split where torch's step takes
the square root, which is taken with torch in between (see csrc/optim_math.h), so that
on every device the step rounds like torch's. Hyperparameters travel in a small tensor
of the accumulation dtype: float kernel arguments would arrive as fp32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastgan.kernels import LAUNCHES

BLOCK = 1024
# The RMSprop kernels read their hyperparameters from a tensor laid out as
# [lr, alpha, 1 - alpha, eps, weight_decay, momentum, clip].


@triton.jit
def _clip_kernel(p_ptr, n, hp_ptr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = tl.load(hp_ptr)
    p = tl.load(p_ptr + offs, mask=mask).to(c.dtype)
    p = tl.where(p < -c, -c, tl.where(p > c, c, p))
    tl.store(p_ptr + offs, p.to(p_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _radicand_kernel(p_ptr, g_ptr, sa_ptr, ga_ptr, r_ptr, n, hp_ptr,
                     WEIGHT_DECAY: tl.constexpr, CENTERED: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    alpha = tl.load(hp_ptr + 1)
    one_minus_alpha = tl.load(hp_ptr + 2)
    acc = alpha.dtype
    grad = tl.load(g_ptr + offs, mask=mask).to(acc)
    if WEIGHT_DECAY:
        grad = tl.fma(tl.load(hp_ptr + 4), tl.load(p_ptr + offs, mask=mask).to(acc), grad)
    sa = tl.load(sa_ptr + offs, mask=mask).to(acc) * alpha
    sa = tl.fma(one_minus_alpha * grad, grad, sa)
    tl.store(sa_ptr + offs, sa.to(sa_ptr.dtype.element_ty), mask=mask)
    radicand = sa
    if CENTERED:
        ga = tl.load(ga_ptr + offs, mask=mask).to(acc)
        if one_minus_alpha < 0.5:
            ga = tl.fma(one_minus_alpha + tl.zeros_like(ga), grad - ga, ga)
        else:
            ga = tl.fma(-(grad - ga), 1.0 - one_minus_alpha + tl.zeros_like(ga), grad)
        tl.store(ga_ptr + offs, ga.to(ga_ptr.dtype.element_ty), mask=mask)
        radicand = tl.fma(-1.0 * ga, ga, sa)
    tl.store(r_ptr + offs, radicand.to(r_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _update_kernel(p_ptr, g_ptr, r_ptr, mb_ptr, n, hp_ptr, WEIGHT_DECAY: tl.constexpr,
                   MOMENTUM: tl.constexpr, CLIP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    lr = tl.load(hp_ptr)
    acc = lr.dtype
    param = tl.load(p_ptr + offs, mask=mask).to(acc)
    grad = tl.load(g_ptr + offs, mask=mask).to(acc)
    if WEIGHT_DECAY:
        grad = tl.fma(tl.load(hp_ptr + 4) + tl.zeros_like(grad), param, grad)
    avg = tl.load(r_ptr + offs, mask=mask).to(acc) + tl.load(hp_ptr + 3)
    if MOMENTUM:
        buf = tl.load(mb_ptr + offs, mask=mask).to(acc) * tl.load(hp_ptr + 5)
        buf = buf + 1.0 * grad / avg
        tl.store(mb_ptr + offs, buf.to(mb_ptr.dtype.element_ty), mask=mask)
        param = tl.fma(-lr + tl.zeros_like(buf), buf, param)
    else:
        param = param + (-lr) * grad / avg
    if CLIP:
        c = tl.load(hp_ptr + 6)
        param = tl.where(param < -c, -c, tl.where(param > c, c, param))
    tl.store(p_ptr + offs, param.to(p_ptr.dtype.element_ty), mask=mask)


def _hyperparameters(like, *values):
    acc = torch.float64 if like.dtype == torch.float64 else torch.float32
    return torch.tensor(values, dtype=acc, device=like.device)


def clip_(params, c):
    """Triton twin of ``fastgan::clip_``."""
    if not params:
        return
    hp = _hyperparameters(params[0], c)
    for p in params:
        if p.numel():
            _clip_kernel[(triton.cdiv(p.numel(), BLOCK),)](p, p.numel(), hp, BLOCK=BLOCK)
            LAUNCHES["clip"] += 1


def clipped_rmsprop_(params, grads, square_avgs, grad_avgs, momentum_buffers, lr, alpha, eps,
                     weight_decay, momentum, centered, clip):
    """Triton twin of ``fastgan::clipped_rmsprop_``."""
    if not params:
        return
    hp = _hyperparameters(params[0], lr, alpha, 1.0 - alpha, eps, weight_decay, momentum, clip)
    roots = []
    for i, p in enumerate(params):
        r = torch.empty_like(p)
        grid = (triton.cdiv(max(p.numel(), 1), BLOCK),)
        _radicand_kernel[grid](p, grads[i], square_avgs[i], grad_avgs[i] if centered else p, r,
                               p.numel(), hp, WEIGHT_DECAY=weight_decay != 0, CENTERED=bool(centered),
                               BLOCK=BLOCK)
        LAUNCHES["rmsprop"] += 1
        roots.append(r)
    torch._foreach_sqrt_(roots)
    for i, p in enumerate(params):
        grid = (triton.cdiv(max(p.numel(), 1), BLOCK),)
        _update_kernel[grid](p, grads[i], roots[i], momentum_buffers[i] if momentum > 0 else p,
                             p.numel(), hp, WEIGHT_DECAY=weight_decay != 0, MOMENTUM=momentum > 0,
                             CLIP=clip >= 0, BLOCK=BLOCK)
        LAUNCHES["rmsprop"] += 1
