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


def _forward_with_preactivations(x, params, act, alpha):
    s = ACTIVATIONS[act]
    hidden, _ = split_params(params)
    hs, pre = [x], []
    for W, b in hidden:
        pre.append(F.linear(hs[-1], W, b))
        hs.append(s.fn(pre[-1], alpha))
    return hs, pre


def mlp_backward(grad_out: Tensor, x: Tensor, params: Sequence[Tensor], act: str, alpha: float):
    """The vector-Jacobian product of :func:`mlp_forward`, by explicit back-propagation.

    Returns ``(grad_x, [grad of each parameter])``. Built from differentiable torch
    ops, so autograd can differentiate it once more (the forward's second order).
    """
    s = ACTIVATIONS[act]
    hidden, (w_out, _) = split_params(params)
    hs, pre = _forward_with_preactivations(x, params, act, alpha)
    seed = grad_out.reshape(-1, 1)
    grads = [seed.t() @ hs[-1], seed.sum(0)]
    signal = seed @ w_out
    for l in range(len(hidden) - 1, -1, -1):
        delta = s.d1(pre[l], alpha) * signal
        grads = [delta.t() @ hs[l], delta.sum(0)] + grads
        signal = delta @ hidden[l][0]
    return signal, grads


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


def critic_step(real, fake, eps, params, act, alpha, lam=10.0, center=1.0, one_sided=False,
                param_grads=True) -> StepResult:
    """The WGAN(-GP) critic step of fused-gp-math.md, without autograd, unfused.

    ``eps`` (B,) gives the WGAN-GP loss; ``eps=None`` the plain WGAN loss.
    """
    s = ACTIVATIONS[act]
    hidden, (w_out, b_out) = split_params(params)
    B = real.shape[0]
    gp = eps is not None
    batches = [real, fake]
    if gp:
        e = eps.reshape(B, 1).to(real.dtype)
        batches.append(e * real + (1 - e) * fake)
    X = torch.cat(batches)
    # Step 1: one stacked forward.
    hs, pre = _forward_with_preactivations(X, params, act, alpha)
    D = F.linear(hs[-1], w_out, b_out).reshape(-1)
    wasserstein = D[:B].mean() - D[B:2 * B].mean()
    penalty = torch.zeros((), dtype=X.dtype, device=X.device)
    # Step 2: one stacked backward with three seeds.
    seed = torch.cat([X.new_full((B,), -1.0 / B), X.new_full((B,), 1.0 / B)]
                     + ([X.new_ones(B)] if gp else []))
    signals, deltas = [None] * len(hidden), [None] * len(hidden)
    signal = seed[:, None] @ w_out
    for l in range(len(hidden) - 1, -1, -1):
        signals[l] = signal
        deltas[l] = s.d1(pre[l], alpha) * signal
        signal = deltas[l] @ hidden[l][0]
    interp = slice(2 * B, 3 * B)
    if gp:
        # Step 3: the penalty and u = dPenalty/dg.
        g = signal[interp]
        n = g.norm(dim=1)
        phi, dphi = penalty_phi(n, center, one_sided)
        penalty = phi.mean()
        scale = torch.where(n > 0, dphi / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(n))
        u = (lam / B) * scale[:, None] * g
    loss = lam * penalty - wasserstein
    if not param_grads:
        return StepResult(loss, wasserstein, penalty, [])

    grad_W = [torch.zeros_like(W) for W, _ in hidden]
    grad_b = [torch.zeros_like(b) for _, b in hidden]
    grad_w_out = torch.zeros_like(w_out)
    abar = [None] * len(hidden)
    if gp:
        # Step 4: the adjoint of the backward chain, interpolate rows only.
        dbar = u @ hidden[0][0].t()
        grad_W[0] += deltas[0][interp].t() @ u
        for l in range(len(hidden)):
            ebar = s.d1(pre[l][interp], alpha) * dbar
            abar[l] = s.d2(pre[l][interp], alpha) * signals[l][interp] * dbar
            if l + 1 < len(hidden):
                grad_W[l + 1] += deltas[l + 1][interp].t() @ ebar
                dbar = ebar @ hidden[l + 1][0].t()
            else:
                grad_w_out += ebar.sum(0, keepdim=True)
    # Step 5: the ordinary backward, with abar injected on the interpolate rows.
    G = seed.clone()
    if gp:
        G[interp] = 0
    grad_w_out += G[None, :] @ hs[-1]
    grad_b_out = G.sum(0, keepdim=True)
    gh = G[:, None] @ w_out
    for l in range(len(hidden) - 1, -1, -1):
        ga = s.d1(pre[l], alpha) * gh
        if gp:
            ga = torch.cat([ga[:2 * B], ga[interp] + abar[l]])
        grad_W[l] += ga.t() @ hs[l]
        grad_b[l] += ga.sum(0)
        gh = ga @ hidden[l][0]
    grads = [t for pair in zip(grad_W, grad_b) for t in pair] + [grad_w_out, grad_b_out]
    return StepResult(loss, wasserstein, penalty, grads)


def row_penalty(g: Tensor, center: float = 1.0, one_sided: bool = False) -> Tensor:
    """mean_i phi(||g_i||) over the batch of per-sample gradients ``g`` (B, ...), the
    norm taken over all non-batch dims. Differentiable (twice) by autograd; the
    gradient at a zero norm is 0, as torch's norm subgradient."""
    phi, _ = penalty_phi(g.flatten(1).norm(2, dim=1), center, one_sided)
    return phi.mean()


def eager_wgan_gp_loss(critic: Callable[[Tensor], Tensor], real, fake, eps=None, lam=10.0,
                       center=1.0, one_sided=False) -> StepResult:
    """The WGAN-GP critic loss as the popular implementations write it.

    Separate forwards for real, fake and interpolates, then
    ``autograd.grad(create_graph=True)`` for the penalty. Call ``loss.backward()``
    for the gradients. ``eps=None`` gives the plain WGAN loss. This is the oracle the
    fused step is tested against and the ``eager`` peer of the benchmarks.
    """
    d_real = critic(real).mean()
    d_fake = critic(fake).mean()
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


def chain_loss(critic: Callable[[Tensor], Tensor], real, fake, loss="wgan-gp", lam=10.0, eps=None,
               center=1.0, one_sided=False, lam2=0.0) -> StepResult:
    """The loss of a fused critic step with autograd: ``wgan``, ``wgan-gp`` (as
    :func:`eager_wgan_gp_loss`) or ``r1`` (``mean softplus(D(fake)) + mean
    softplus(-D(real)) + lam * mean ||grad D(real)||^2``, plus ``lam2 * mean
    ||grad D(fake)||^2`` (R2) when ``lam2 > 0``; the penalty reported is the sum of the
    means; gradients by ``autograd.grad(create_graph=True)``). Call ``loss.backward()``
    for the gradients."""
    if loss != "r1":
        return eager_wgan_gp_loss(critic, real, fake, eps if loss == "wgan-gp" else None, lam, center, one_sided)

    def penalised(batch):
        x = batch.detach().requires_grad_(True)
        d = critic(x)
        (g,) = torch.autograd.grad(d, x, torch.ones_like(d), create_graph=True)
        return d, g.flatten(1).pow(2).sum(1).mean()

    d_real, penalty = penalised(real)
    d_fake, penalty_fake = penalised(fake) if lam2 else (critic(fake), None)
    total = F.softplus(d_fake).mean() + F.softplus(-d_real).mean() + lam * penalty
    if lam2:
        total = total + lam2 * penalty_fake
        penalty = penalty + penalty_fake
    wasserstein = (d_real.mean() - d_fake.mean()).detach()
    return StepResult(total, wasserstein, penalty.detach(), [])


__all__ = [
    "ACTIVATIONS", "Activation", "StepResult", "chain_loss", "critic_step",
    "eager_wgan_gp_loss", "mlp_backward", "mlp_forward", "penalty_phi", "row_penalty",
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
