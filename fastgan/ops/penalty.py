"""The gradient penalty's row op: mean_i phi(||g_i||) over a batch of gradients."""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from fastgan import _checks, _extension, backends, reference
from fastgan.ops._dispatch import native_ops

Tensor = torch.Tensor


class _RowPenalty(torch.autograd.Function):
    """Norms, phi and their gradient u in one fused row pass; the backward hands u on.
    The Triton backend's autograd; the extension's op registers the same (below)."""

    @staticmethod
    def forward(ctx, impl, g, center, one_sided):
        mean_phi, u = impl.row_penalty(g, center, one_sided)
        ctx.center, ctx.one_sided = center, one_sided
        ctx.save_for_backward(g, u)
        return mean_phi

    @staticmethod
    def backward(ctx, grad):
        g, u = ctx.saved_tensors
        return None, _RowPenaltyGrad.apply(grad, g, u, ctx.center, ctx.one_sided), None, None


class _RowPenaltyGrad(torch.autograd.Function):
    """grad * u; its own backward (the penalty's second order) differentiates the
    reference's autograd gradient."""

    @staticmethod
    def forward(ctx, grad, g, u, center, one_sided):
        ctx.center, ctx.one_sided = center, one_sided
        ctx.save_for_backward(grad, g, u)
        return grad * u

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_grad):
        grad, g, u = ctx.saved_tensors
        with torch.enable_grad():
            leaf = g.detach().requires_grad_(True)
            (u_ref,) = torch.autograd.grad(reference.row_penalty(leaf, ctx.center, ctx.one_sided),
                                           leaf, create_graph=True)
            (d_g,) = torch.autograd.grad(u_ref, leaf, grad_grad * grad, allow_unused=True)
        d_grad = (grad_grad * u).sum().reshape(grad.shape)
        return d_grad, d_g, None, None, None


def row_penalty(g: Tensor, center: float = 1.0, one_sided: bool = False) -> Tensor:
    """``mean_i phi(||g_i||)`` for per-sample gradients ``g`` of shape (B, ...), the norm
    over all non-batch dims, ``phi(n) = (n - center)^2`` (or ``max(0, n - center)^2``).

    Its gradient with respect to ``g`` is exactly 0 for a sample whose norm is 0, never
    NaN. On the native backends the op is differentiable once (it ends a penalty); the
    ``eager`` backend is plain autograd.
    """
    if not isinstance(g, Tensor) or g.dim() < 1 or g.shape[0] == 0:
        raise ValueError(f"g must be a batch of gradients (B, ...), got {getattr(g, 'shape', g)}")
    allowed = _checks.CUDA_DTYPES if g.is_cuda else _checks.CPU_DTYPES
    if g.dtype not in allowed:
        raise TypeError(f"g has dtype {g.dtype}; supported on {g.device.type}: "
                        + ", ".join(str(d) for d in allowed))
    center = _checks.check_number(center, "center")
    backend = backends.resolve(g.device)
    if backend == "eager":
        return reference.row_penalty(g, center, bool(one_sided))
    if backend != "triton":  # the extension's op, differentiable through its registered autograd
        return native_ops(backend).row_penalty(g, center, bool(one_sided))[0]
    return _RowPenalty.apply(native_ops(backend), g, center, bool(one_sided))


def row_penalty_and_grad(g: Tensor, center: float = 1.0, one_sided: bool = False) -> tuple[Tensor, Tensor]:
    """``(mean_i phi(||g_i||), u)`` with ``u`` its gradient with respect to ``g``, both
    detached, in one fused row pass on the native backends (the first-order penalty's
    closed-form ``u``)."""
    center = _checks.check_number(center, "center")
    backend = backends.resolve(g.device)
    g = g.detach()
    if backend == "eager":
        with torch.enable_grad():
            leaf = g.requires_grad_(True)
            value = reference.row_penalty(leaf, center, bool(one_sided))
            (u,) = torch.autograd.grad(value, leaf)
        return value.detach(), u
    return native_ops(backend).row_penalty(g, center, bool(one_sided))


def _register_fake_impl() -> None:
    @torch.library.register_fake("fastgan::row_penalty")
    def _(g, center, one_sided):
        return g.new_empty(()), torch.empty_like(g)


def _register_autograd() -> None:
    """Makes ``fastgan::row_penalty`` differentiable when called directly, through the
    same Function; its second output ``u`` is the gradient itself, not differentiable."""
    def setup_context(ctx, inputs, output):
        g, center, one_sided = inputs
        ctx.center, ctx.one_sided = center, one_sided
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(g, output[1])

    def backward(ctx, grad, _grad_u):
        g, u = ctx.saved_tensors
        return _RowPenaltyGrad.apply(grad, g, u, ctx.center, ctx.one_sided), None, None

    torch.library.register_autograd("fastgan::row_penalty", backward, setup_context=setup_context)


if _extension.load_error() is None:
    _register_fake_impl()
    _register_autograd()
