"""The eager PyTorch reference of every fastgan op, written with plain torch ops.

It is the oracle of the parity tests and the implementation of the ``eager``
backend (the fallback when the extension is missing). Parameters are passed as the
flat list of an ``nn.Sequential(Linear, act, ..., Linear(d, 1))``:
``[W_1, b_1, ..., W_{L-1}, b_{L-1}, w_L, b_L]``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

#: torch.nn.Softplus() is the identity above this input (beta = 1).
SOFTPLUS_THRESHOLD = 20.0


class Activation(NamedTuple):
    """An activation with its first and second derivatives, as torch functions of ``a``."""

    fn: Callable[[Tensor, float], Tensor]
    d1: Callable[[Tensor, float], Tensor]
    d2: Callable[[Tensor, float], Tensor]
    smooth: bool


def _softplus_d1(a, alpha):
    return torch.where(a > SOFTPLUS_THRESHOLD, torch.ones_like(a), torch.sigmoid(a))


def _softplus_d2(a, alpha):
    sg = torch.sigmoid(a)
    return torch.where(a > SOFTPLUS_THRESHOLD, torch.zeros_like(a), sg * (1 - sg))


def _silu_d1(a, alpha):
    sg = torch.sigmoid(a)
    return sg * (1 + a * (1 - sg))


def _silu_d2(a, alpha):
    sg = torch.sigmoid(a)
    return sg * (1 - sg) * (2 + a * (1 - 2 * sg))


ACTIVATIONS = {
    "relu": Activation(
        lambda a, alpha: F.relu(a),
        lambda a, alpha: (a > 0).to(a.dtype),
        lambda a, alpha: torch.zeros_like(a),
        smooth=False,
    ),
    "lrelu": Activation(
        lambda a, alpha: F.leaky_relu(a, alpha),
        lambda a, alpha: torch.where(a > 0, torch.ones_like(a), torch.full_like(a, alpha)),
        lambda a, alpha: torch.zeros_like(a),
        smooth=False,
    ),
    "tanh": Activation(
        lambda a, alpha: torch.tanh(a),
        lambda a, alpha: 1 - torch.tanh(a) ** 2,
        lambda a, alpha: -2 * torch.tanh(a) * (1 - torch.tanh(a) ** 2),
        smooth=True,
    ),
    "softplus": Activation(
        lambda a, alpha: F.softplus(a, beta=1.0, threshold=SOFTPLUS_THRESHOLD),
        _softplus_d1,
        _softplus_d2,
        smooth=True,
    ),
    "silu": Activation(lambda a, alpha: F.silu(a), _silu_d1, _silu_d2, smooth=True),
}


def split_params(params: Sequence[Tensor]):
    """``[(W_1, b_1), ..., (W_{L-1}, b_{L-1})]`` and ``(w_L, b_L)``."""
    hidden = [(params[i], params[i + 1]) for i in range(0, len(params) - 2, 2)]
    return hidden, (params[-2], params[-1])


def mlp_forward(x: Tensor, params: Sequence[Tensor], act: str, alpha: float) -> Tensor:
    """D(x) of shape (N, 1) for x of shape (N, d_0)."""
    s = ACTIVATIONS[act]
    hidden, (w_out, b_out) = split_params(params)
    h = x
    for W, b in hidden:
        h = s.fn(F.linear(h, W, b), alpha)
    return F.linear(h, w_out, b_out)


class StepResult(NamedTuple):
    """Loss, W estimate, penalty (mean phi, before lam) and parameter gradients."""

    loss: Tensor
    wasserstein: Tensor
    penalty: Tensor
    grads: list


def penalty_phi(n: Tensor, center: float, one_sided: bool):
    """phi(n) and phi'(n) of the gradient penalty."""
    d = n - center
    if one_sided:
        d = d.clamp(min=0)
    return d * d, 2 * d


def row_penalty(g: Tensor, center: float = 1.0, one_sided: bool = False) -> Tensor:
    """mean_i phi(||g_i||) over the batch of per-sample gradients ``g`` (B, ...), the
    norm taken over all non-batch dims. Differentiable (twice) by autograd; the
    gradient at a zero norm is 0, as torch's norm subgradient."""
    phi, _ = penalty_phi(g.flatten(1).norm(2, dim=1), center, one_sided)
    return phi.mean()


def eager_wgan_gp_loss(critic: Callable[[Tensor], Tensor], real, fake, eps=None, lam=10.0, center=1.0,
                       one_sided=False, fake_critic: Callable[[Tensor], Tensor] | None = None) -> StepResult:
    """The WGAN-GP critic loss as the popular implementations write it.

    Separate forwards for real, fake and interpolates, then
    ``autograd.grad(create_graph=True)`` for the penalty. Call ``loss.backward()``
    for the gradients. ``eps=None`` gives the plain WGAN loss. This is the oracle the
    fused step is tested against and the ``eager`` peer of the benchmarks.
    ``fake_critic`` scores the fakes where it differs (a conditional critic with the
    fakes' classes).
    """
    d_real = critic(real).mean()
    d_fake = (fake_critic or critic)(fake).mean()
    wasserstein = d_real - d_fake
    penalty = torch.zeros((), dtype=real.dtype, device=real.device)
    if eps is not None:
        e = eps.reshape(-1, *([1] * (real.dim() - 1))).to(real.dtype)
        x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
        d_hat = critic(x_hat)
        (g,) = torch.autograd.grad(d_hat, x_hat, torch.ones_like(d_hat), create_graph=True)
        penalty = row_penalty(g, center, one_sided)
    loss = d_fake - d_real + lam * penalty
    return StepResult(loss, wasserstein.detach(), penalty.detach(), [])


def chain_loss(critic: Callable[..., Tensor], real, fake, loss="wgan-gp", lam=10.0, eps=None,
               center=1.0, one_sided=False, lam2=0.0, labels=None) -> StepResult:
    """The loss of a fused critic step with autograd: ``wgan``, ``wgan-gp`` (as
    :func:`eager_wgan_gp_loss`) or ``r1`` (``mean softplus(D(fake)) + mean
    softplus(-D(real)) + lam * mean ||grad D(real)||^2``, plus ``lam2 * mean
    ||grad D(fake)||^2`` (R2) when ``lam2 > 0``; the penalty reported is the sum of the
    means; gradients by ``autograd.grad(create_graph=True)``). Call ``loss.backward()``
    for the gradients. A conditional critic ``critic(x, y)`` takes ``labels``, the real
    and the fake batch's classes; the interpolates take the real ones."""
    fake_critic = critic
    if labels is not None:
        conditional, (real_labels, fake_labels) = critic, labels
        critic, fake_critic = (lambda x: conditional(x, real_labels)), (lambda x: conditional(x, fake_labels))
    if loss != "r1":
        return eager_wgan_gp_loss(critic, real, fake, eps if loss == "wgan-gp" else None, lam, center, one_sided,
                                  fake_critic)

    def penalised(batch, critic=critic):
        x = batch.detach().requires_grad_(True)
        d = critic(x)
        (g,) = torch.autograd.grad(d, x, torch.ones_like(d), create_graph=True)
        return d, g.flatten(1).pow(2).sum(1).mean()

    d_real, penalty = penalised(real)
    d_fake, penalty_fake = penalised(fake, fake_critic) if lam2 else (fake_critic(fake), None)
    total = F.softplus(d_fake).mean() + F.softplus(-d_real).mean() + lam * penalty
    if lam2:
        total = total + lam2 * penalty_fake
        penalty = penalty + penalty_fake
    wasserstein = (d_real.mean() - d_fake.mean()).detach()
    return StepResult(total, wasserstein, penalty.detach(), [])


__all__ = [
    "ACTIVATIONS", "Activation", "StepResult", "chain_loss",
    "eager_wgan_gp_loss", "mlp_forward", "penalty_phi", "row_penalty",
    "split_params",
]


def clip_(params: Sequence[Tensor], c: float) -> None:
    """``p.clamp_(-c, c)`` for every tensor."""
    for p in params:
        p.clamp_(-c, c)


def clipped_rmsprop_(params, grads, square_avgs, grad_avgs, momentum_buffers, lr, alpha, eps,
                     weight_decay, momentum, centered, clip) -> None:
    """torch.optim.RMSprop's single-tensor step, op for op, then ``clamp_(-clip, clip)``
    (``clip < 0``: no clamp)."""
    for i, param in enumerate(params):
        grad = grads[i]
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        square_avg = square_avgs[i]
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if centered:
            grad_avg = grad_avgs[i]
            grad_avg.lerp_(grad, 1 - alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(eps)
        if momentum > 0:
            buf = momentum_buffers[i]
            buf.mul_(momentum).addcdiv_(grad, avg)
            param.add_(buf, alpha=-lr)
        else:
            param.addcdiv_(grad, avg, value=-lr)
        if clip >= 0:
            param.clamp_(-clip, clip)


BIAS_ACT_FUNCTIONS = {
    "linear": lambda x, alpha: x,
    "relu": lambda x, alpha: F.relu(x),
    "lrelu": lambda x, alpha: F.leaky_relu(x, alpha),
    "tanh": lambda x, alpha: torch.tanh(x),
    "sigmoid": lambda x, alpha: torch.sigmoid(x),
    "softplus": lambda x, alpha: F.softplus(x),
    "silu": lambda x, alpha: F.silu(x),
    "elu": lambda x, alpha: F.elu(x, alpha),
    "gelu": lambda x, alpha: F.gelu(x),
}


def bias_act(x: Tensor, b: Tensor | None, act: str, alpha: float, gain: float, dim: int,
             clamp: float | None) -> Tensor:
    """``clamp(gain * act(x + b), -clamp, clamp)`` with plain torch ops."""
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.dim())])
    y = BIAS_ACT_FUNCTIONS[act](x, alpha)
    if gain != 1:
        y = y * gain
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    return y
