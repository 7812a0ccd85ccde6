"""bias_act: fused bias add, activation, gain and clamp, differentiable twice.

The extension's ops carry their autograd in C++ (csrc/bias_act_autograd.cpp); the
Functions here are the same derivatives for the Triton kernels.
"""
from __future__ import annotations


import torch
import torch.autograd.forward_ad as fwAD
from torch.autograd.function import once_differentiable

from fastgan import _checks, _extension, backends, reference
from fastgan.activations import DEFAULT_ALPHA, PIECEWISE_LINEAR
from fastgan.ops._dispatch import native_ops

Tensor = torch.Tensor

def _like(t: Tensor, ref: Tensor) -> Tensor:
    """t with ref's memory layout (the kernels walk every operand in the same order)."""
    return t if t.stride() == ref.stride() else torch.empty_like(ref).copy_(t)


def _along(b: Tensor | None, x: Tensor, dim: int) -> Tensor | None:
    """b viewed along ``dim`` and expanded to x's shape (no copy). The Functions take the
    bias twice: detached, for the kernels, and as this view, which carries its gradient.
    They return the per-element gradient for the view and autograd's expand node sums it,
    only when the bias's gradient is asked for (not, e.g., in the penalty's
    ``autograd.grad`` with respect to the input)."""
    if b is None:
        return None
    shape = [1] * x.dim()
    shape[dim] = -1
    return b.view(shape).expand(x.shape)


def _dense(x: Tensor) -> Tensor:
    """x in a layout the kernels walk (contiguous or channels_last); others are copied."""
    if x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return x
    return x.contiguous()


def _saves_output(act: str, alpha: float, clamp: float, gain: float) -> bool:
    """Whether the output's sign gives s', so that only y is saved: ReLU, and leaky ReLU
    with a slope >= 0 (a negative slope makes y positive on both sides of 0), without
    clamp and with a positive gain (the twin of the C++ ``slope_from_output``)."""
    return (act == "relu" or (act == "lrelu" and alpha >= 0)) and clamp < 0 and gain > 0


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, impl, x, b, b_along, dim, act, alpha, gain, clamp):
        y = impl.bias_act(x, b, dim, act, alpha, gain, clamp)
        ref_is_y = _saves_output(act, alpha, clamp, gain)
        ctx.save_for_backward(y if ref_is_y else x, b, b_along)
        ctx.cfg = (impl, dim, act, alpha, gain, clamp, ref_is_y)
        return y

    @staticmethod
    def backward(ctx, dy):
        ref, b, b_along = ctx.saved_tensors
        dx = _BiasActGrad.apply(dy, ref, b, b_along, *ctx.cfg)
        return None, dx, None, dx if ctx.needs_input_grad[3] else None, None, None, None, None, None


class _BiasActGrad(torch.autograd.Function):
    """dy * gain * s'(x + b); linear in dy, so its dy-derivative is itself."""

    @staticmethod
    def forward(ctx, dy, ref, b, b_along, impl, dim, act, alpha, gain, clamp, ref_is_y):
        dy = _like(dy, ref)
        ctx.save_for_backward(dy, ref, b, b_along)
        ctx.cfg = (impl, dim, act, alpha, gain, clamp, ref_is_y)
        return impl.bias_act_grad(dy, ref, b, dim, act, alpha, gain, clamp, ref_is_y)

    @staticmethod
    def backward(ctx, ggx):
        dy, ref, b, b_along = ctx.saved_tensors
        impl, dim, act, alpha, gain, clamp, ref_is_y = ctx.cfg
        need = ctx.needs_input_grad
        d_dy = _BiasActGrad.apply(ggx, ref, b, b_along, *ctx.cfg) if need[0] else None
        d_ref = None  # s' read from the output is piecewise constant: no curvature term
        if not ref_is_y and (need[1] or need[3]):
            d_ref = _BiasActCurvature.apply(ggx, dy, ref, b, impl, dim, act, alpha, gain, clamp)
        return (d_dy, d_ref if need[1] else None, None, d_ref if need[3] else None,
                None, None, None, None, None, None, None)


class _BiasActCurvature(torch.autograd.Function):
    """p * q * gain * s''(x + b): the second derivative's term; a third raises."""

    @staticmethod
    def forward(ctx, p, q, x, b, impl, dim, act, alpha, gain, clamp):
        return impl.bias_act_grad2(_like(p, x), _like(q, x), x, b, dim, act, alpha, gain, clamp)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        raise RuntimeError("fastgan.ops.bias_act is differentiable twice; a third derivative "
                           "is not implemented (use the eager backend for higher orders)")


def bias_act(x: Tensor, b: Tensor | None = None, act: str = "lrelu", alpha: float | None = None,
             gain: float | None = None, dim: int = 1, clamp: float | None = None) -> Tensor:
    """``clamp(gain * act(x + b), -clamp, clamp)`` in one pass, the bias broadcast along
    ``dim``, for any dense layout (NCHW, channels_last, NC, ...).

    Activations: linear, relu, lrelu (``alpha`` = slope, default 0.2), tanh, sigmoid,
    softplus, silu, elu (``alpha`` = scale, default 1), gelu (exact). ``gain`` defaults
    to 1, ``clamp`` to none. Differentiable twice (nested autograd Functions); for ReLU
    and leaky ReLU without clamp only the output is saved for the backward.
    """
    if act not in DEFAULT_ALPHA:
        raise ValueError(f"unknown activation {act!r}; expected one of {', '.join(DEFAULT_ALPHA)}")
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    alpha = _checks.check_number(DEFAULT_ALPHA[act] if alpha is None else alpha, "alpha")
    gain = _checks.check_number(1.0 if gain is None else gain, "gain")
    clamp = -1.0 if clamp is None else _checks.check_number(clamp, "clamp", minimum=0.0)
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if x.dim() and not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim {dim} is out of range for x with {x.dim()} dimensions "
                         f"(expected {-x.dim()} to {x.dim() - 1})")
    if b is not None:
        x = _checks.autocast_to(x, torch.promote_types(x.dtype, b.dtype))  # a half conv output, a float32 bias
        if x.dim() == 0:
            raise ValueError("x must have the bias dimension")
        dim = dim % x.dim()
        if b.dim() != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"b must have shape ({x.shape[dim]},) for dim {dim} of x {tuple(x.shape)}, "
                             f"got {tuple(b.shape)}")
        _checks.check_like(b, "b", x, "x")
    allowed = _checks.CUDA_DTYPES if x.is_cuda else _checks.CPU_DTYPES
    backend = backends.resolve(x.device)
    if backend == "eager" or x.dtype not in allowed:  # torch's ops: forward mode included
        return reference.bias_act(x, b, act, alpha, gain, dim, None if clamp < 0 else clamp)
    (x_primal, x_tangent), (b_primal, b_tangent) = _checks.dual_parts(x), _checks.dual_parts(b)
    if x_tangent is not None or b_tangent is not None:  # inside a forward-mode pass
        return _forward_mode(x_primal, x_tangent, b_primal, b_tangent, dim, act, alpha, gain, clamp)
    x = _dense(x)
    if backend != "triton":  # the extension's op, whose autograd is in C++
        return native_ops(backend).bias_act(x, b, dim, act, alpha, gain, clamp)
    b_kernel = None if b is None else b.detach()
    return _BiasAct.apply(native_ops(backend), x, b_kernel, _along(b, x, dim), dim, act, alpha, gain, clamp)


def _forward_mode(x, x_tangent, b, b_tangent, dim, act, alpha, gain, clamp) -> Tensor:
    """bias_act's forward-mode rule: ``y`` with tangent ``gain * s'(x + b) * (x' + b')``
    (0 where clamped), the tangent by the same fused gradient kernel as the backward
    (from the input, never the output's sign), itself differentiable in reverse mode:
    the jvp penalty's backward runs through it."""
    y = bias_act(x, b, act, alpha, gain, dim, None if clamp < 0 else clamp)
    z_tangent = x_tangent if x_tangent is not None else torch.zeros_like(x)
    if b_tangent is not None:
        z_tangent = z_tangent + _along(b_tangent, x, dim)
    x = _dense(x)
    if act in PIECEWISE_LINEAR:  # s' is piecewise constant: the tangent's derivative in x and b is 0,
        x, b = x.detach(), None if b is None else b.detach()  # so no backward runs into the primal path
    y_tangent = _gradient(z_tangent, x, b, dim, act, alpha, gain, clamp)
    return fwAD.make_dual(y, y_tangent)


def _gradient(dy: Tensor, x: Tensor, b: Tensor | None, dim, act, alpha, gain, clamp) -> Tensor:
    """``dy * gain * s'(x + b)`` (0 where clamped), differentiable in reverse mode."""
    backend = backends.resolve(x.device)
    if backend != "triton":
        return native_ops(backend).bias_act_grad(_like(dy, x), x, b, dim, act, alpha, gain, clamp, False)
    b_kernel = None if b is None else b.detach()
    return _BiasActGrad.apply(dy, x, b_kernel, _along(b, x, dim), native_ops(backend), dim, act, alpha, gain,
                              clamp, False)


def _register_fake_impls() -> None:
    @torch.library.register_fake("fastgan::bias_act")
    def _(x, b, dim, act, alpha, gain, clamp):
        return torch.empty_like(x)

    @torch.library.register_fake("fastgan::bias_act_grad")
    def _(dy, ref, b, dim, act, alpha, gain, clamp, ref_is_y):
        return torch.empty_like(ref)

    @torch.library.register_fake("fastgan::bias_act_grad2")
    def _(p, q, x, b, dim, act, alpha, gain, clamp):
        return torch.empty_like(x)


if _extension.load_error() is None:
    _register_fake_impls()
