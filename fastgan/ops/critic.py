"""The fused MLP critic: its forward (differentiable twice) and its WGAN(-GP) step.

Parameters are the flat list of an ``nn.Sequential(Linear, act, ..., Linear(d, 1))``.
The ``cpu`` and ``cuda`` backends run the ops of ``fastgan._C`` (csrc/critic.cpp);
``eager`` runs :mod:`fastgan.reference`.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch.autograd.function import once_differentiable

from fastgan import _checks, _extension, backends, reference
from fastgan.ops._dispatch import native_ops

Tensor = torch.Tensor
ACTIVATIONS = tuple(reference.ACTIVATIONS)


class CriticLoss(NamedTuple):
    """Result of a critic step.

    ``loss``: the critic's loss, ``mean D(fake) - mean D(real) + lam * penalty``;
    ``loss.backward()`` accumulates its exact parameter gradients.
    ``wasserstein``: the W estimate ``mean D(real) - mean D(fake)`` (detached).
    ``penalty``: ``mean phi(||grad D(x^)||)`` before ``lam`` (detached; 0 for WGAN).
    """

    loss: Tensor
    wasserstein: Tensor
    penalty: Tensor


# ----------------------------------------------------------------------------- forward

class _MLPForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, impl, x, act, alpha, *params):
        out, saved = impl.mlp_forward(x, list(params), act, alpha)
        ctx.impl, ctx.act, ctx.alpha, ctx.n_params = impl, act, alpha, len(params)
        ctx.save_for_backward(x, *params, *saved)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, *rest = ctx.saved_tensors
        params, saved = rest[:ctx.n_params], rest[ctx.n_params:]
        need_x = ctx.needs_input_grad[1]
        need_params = any(ctx.needs_input_grad[4:])
        if not (need_x or need_params):
            return (None,) * (4 + ctx.n_params)
        grad_out = grad_out.to(x.dtype)  # autocast may hand back a half-precision gradient
        grads = list(_MLPBackward.apply(ctx.impl, grad_out, x, ctx.act, ctx.alpha, need_x,
                                        need_params, ctx.n_params, *params, *saved))
        grad_x = grads.pop(0) if need_x else None
        grad_params = grads if need_params else [None] * ctx.n_params
        return (None, grad_x, None, None, *grad_params)


class _MLPBackward(torch.autograd.Function):
    """The forward's gradient op. Its own backward (the forward's second order)
    differentiates the reference's explicit back-propagation."""

    @staticmethod
    def forward(ctx, impl, grad_out, x, act, alpha, need_x, need_params, n_params, *tensors):
        params, saved = list(tensors[:n_params]), list(tensors[n_params:])
        grads = impl.mlp_backward(grad_out, x, params, saved, act, alpha, need_x, need_params)
        ctx.act, ctx.alpha, ctx.need_x, ctx.need_params = act, alpha, need_x, need_params
        ctx.n_params, ctx.n_saved = n_params, len(saved)
        ctx.save_for_backward(grad_out, x, *params)
        return tuple(grads)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_grads):
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
            grad_x, grad_params = reference.mlp_backward(leaves[0], leaves[1], leaves[2:],
                                                         ctx.act, ctx.alpha)
            outputs = ([grad_x] if ctx.need_x else []) + (grad_params if ctx.need_params else [])
            results = torch.autograd.grad(outputs, leaves, grad_grads, allow_unused=True)
        return (None, results[0], results[1], None, None, None, None, None, *results[2:],
                *([None] * ctx.n_saved))


def _check_params(params: Sequence[Tensor], like: Tensor, like_name: str) -> None:
    if len(params) < 4 or len(params) % 2:
        raise ValueError("params must be [W_1, b_1, ..., w_L, b_L] with at least one hidden "
                         f"layer, got {len(params)} tensors")
    for i, p in enumerate(params):
        _checks.check_like(p, f"parameter {i}", like, like_name)


def _check_activation(act: str, alpha: float) -> float:
    if act not in reference.ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {', '.join(ACTIVATIONS)}")
    alpha = _checks.check_number(alpha, "negative_slope", minimum=0.0)
    return alpha


def _has_tangent(*tensors: Tensor) -> bool:
    """Whether a forward-mode pass is on and any of ``tensors`` carries a tangent."""
    return any(_checks.dual_parts(t)[1] is not None for t in tensors)


def mlp_critic(x: Tensor, params: Sequence[Tensor], act: str = "lrelu", alpha: float = 0.2) -> Tensor:
    """D(x), shape (N, 1), of the MLP critic with parameters ``params``.

    Differentiable twice with respect to ``x`` and ``params``; the gradient op skips
    the weight gradients when no parameter requires grad (the generator step).
    """
    alpha = _check_activation(act, alpha)
    x = _checks.autocast_to(x, params[0].dtype) if params else x
    _checks.check_features(x, "x", params[0].shape[1] if params else 0)
    _check_params(params, x, "x")
    backend = backends.resolve(x.device)
    if backend == "eager" or _has_tangent(x, *params):  # torch's ops carry forward mode
        return reference.mlp_forward(x, params, act, alpha)
    return _MLPForward.apply(native_ops(backend), x.contiguous(), act, alpha, *params)


# ----------------------------------------------------------------------------- step

class _CriticStep(torch.autograd.Function):
    """Runs a whole critic step in its forward and hands the parameter gradients it
    computed to autograd, scaled by the incoming gradient, in its (first-order) backward.

    The gradients are intermediates, neither inputs nor outputs, so they are kept on
    ctx rather than saved: the backward then owns the only reference, scales them in
    place and gives them away, and AccumulateGrad can adopt them without a copy.
    """

    @staticmethod
    def forward(ctx, step, real, fake, eps, *params):
        param_grads = any(ctx.needs_input_grad[4:])
        loss, wasserstein, penalty, grads = step(real, fake, eps, list(params), param_grads)
        ctx.n_params = len(params)
        ctx.grads = grads
        ctx.mark_non_differentiable(wasserstein, penalty)
        return loss, wasserstein, penalty

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, _grad_wasserstein, _grad_penalty):
        grads, ctx.grads = ctx.grads, None
        if grads is None:
            raise RuntimeError("the critic step's backward ran twice: its gradients were "
                               "already handed over (compute a new loss for each backward)")
        if not grads:
            return (None,) * (4 + ctx.n_params)
        for g in grads:
            g.mul_(grad_loss)
        return (None, None, None, None, *grads)


def _step_function(backend: str, act: str, alpha: float, lam: float, center: float, one_sided: bool):
    if backend == "eager":
        def step(real, fake, eps, params, param_grads):
            return reference.critic_step(real, fake, eps, params, act, alpha, lam, center,
                                         one_sided, param_grads)
    else:
        op = native_ops(backend).critic_step

        def step(real, fake, eps, params, param_grads):
            return op(real, fake, eps, params, act, alpha, lam, center, one_sided, param_grads)
    return step


def _check_batch(real: Tensor, fake: Tensor, features: int | None = None) -> None:
    """The real and fake batches of a critic step: (B, features) matrices, or with
    ``features=None`` any (B, ...) batches of one shape; detached, alike, finite."""
    for name, t in (("real", real), ("fake", fake)):
        if features is not None:
            _checks.check_features(t, name, features)
        elif not isinstance(t, Tensor) or t.dim() < 2:
            raise ValueError(f"{name} must be a (batch, ...) tensor, got {getattr(t, 'shape', type(t).__name__)}")
        if t.requires_grad:
            raise ValueError(
                f"{name} requires grad, but this is the critic step: pass {name}.detach() "
                "(the generator is trained in its own step)")
    if real.shape[0] != fake.shape[0]:
        raise ValueError(f"real and fake must have the same batch size, got {real.shape[0]} "
                         f"and {fake.shape[0]}")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.shape[0] == 0:
        raise ValueError("real and fake are empty batches")
    _checks.check_like(fake, "fake", real, "real")
    _checks.check_finite(real, "real")
    _checks.check_finite(fake, "fake")


def _prepare_eps(eps: Tensor | None, real: Tensor) -> Tensor:
    if eps is None:
        return torch.rand(real.shape[0], dtype=real.dtype, device=real.device)
    return _checks.per_sample_weights(eps, "eps", real)


def critic_loss(real: Tensor, fake: Tensor, params: Sequence[Tensor], act: str = "lrelu",
                alpha: float = 0.2, *, penalty: bool = True, lam: float = 10.0,
                eps: Tensor | None = None, center: float = 1.0,
                one_sided: bool = False) -> CriticLoss:
    """The fused WGAN-GP (``penalty=True``) or WGAN critic loss of an MLP critic.

    Computes the loss and every parameter gradient in one pass, with no
    ``create_graph``; ``loss.backward()`` then accumulates the gradients into the
    parameters' ``.grad``. ``eps`` (one per sample: ``(B,)``, ``(B, 1)``, ``(B, 1, 1, 1)``...)
    are the interpolation weights; drawn from ``U[0, 1)`` with torch's RNG when omitted.
    """
    alpha = _check_activation(act, alpha)
    if params:  # under autocast: the step runs in the parameters' dtype
        real, fake = _checks.autocast_to(real, params[0].dtype), _checks.autocast_to(fake, params[0].dtype)
    _check_batch(real, fake, params[0].shape[1] if params else 0)
    _check_params(params, real, "real")
    if penalty:
        lam = _checks.check_number(lam, "lam", minimum=0.0)
        center = _checks.check_number(center, "center")
        eps = _prepare_eps(eps, real)
    elif eps is not None:
        raise ValueError("eps is only used with the gradient penalty")
    step = _step_function(backends.resolve(real.device), act, alpha, lam, center, bool(one_sided))
    return CriticLoss(*_CriticStep.apply(step, real.contiguous(), fake.contiguous(),
                                         eps if penalty else None, *params))


# ----------------------------------------------------------------------------- fake impls

def _hidden_widths(params):
    return [p.shape[0] for p in params[:-2:2]]


def _register_fake_impls() -> None:
    """Shapes of the extension's outputs, so that torch.compile can trace through them."""

    @torch.library.register_fake("fastgan::mlp_forward")
    def _(x, params, act, alpha):
        widths = _hidden_widths(params)
        saved = [x.new_empty(x.shape[0], w) for w in widths]
        if reference.ACTIVATIONS[act].smooth:
            saved += [x.new_empty(x.shape[0], w) for w in widths]
        return x.new_empty(x.shape[0], 1), saved

    @torch.library.register_fake("fastgan::mlp_backward")
    def _(grad_out, x, params, saved, act, alpha, input_grad, param_grads):
        grads = [torch.empty_like(x)] if input_grad else []
        return grads + ([torch.empty_like(p) for p in params] if param_grads else [])

    @torch.library.register_fake("fastgan::critic_step")
    def _(real, fake, eps, params, act, alpha, lam, center, one_sided, param_grads):
        scalar = real.new_empty(())
        grads = [torch.empty_like(p) for p in params] if param_grads else []
        return scalar, real.new_empty(()), real.new_empty(()), grads


if _extension.load_error() is None:
    _register_fake_impls()
