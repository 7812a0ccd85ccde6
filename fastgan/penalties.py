"""Gradient penalties for any differentiable critic: WGAN-GP, R1 and DRAGAN.

Each takes the user's critic (any module or function of a batch), differentiates it
with ``autograd.grad(create_graph=True)``, and ends with the fused row op
:func:`fastgan.ops.row_penalty` (per-sample norms over all non-batch dims, phi, and
its gradient in one pass). Add the result to the critic's loss.
"""
from __future__ import annotations

from typing import Callable

import torch

from fastgan import _checks
from fastgan.ops.penalty import row_penalty

Tensor = torch.Tensor


def _check_batch(name: str, t: Tensor) -> None:
    if not isinstance(t, Tensor) or t.dim() < 1 or t.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (B, ...), got {getattr(t, 'shape', t)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be floating, got {t.dtype}")


def _check_sources(x: Tensor, **sources: Tensor) -> None:
    """x, computed from ``sources``, is finite; else names the source that is not.
    Usually one reduction: a NaN or an infinity in any source reaches x (lerp multiplies
    it by its weight, 0 * inf is NaN) and then x's sum; only a non-finite sum (or one
    that overflowed) leads to the element-wise checks."""
    if _checks.get_checks() != "eager":  # no reading back: one device flag per source
        for name, t in sources.items():
            _checks.check_finite(t, name)
        return
    if _checks.all_finite(x.sum()):
        return
    for name, t in sources.items():
        _checks.check_finite(t, name)
    if not _checks.all_finite(x):
        raise ValueError("the interpolates contain NaN or infinite values")


def _input_gradient(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    out = critic(x)
    B = x.shape[0]
    if not isinstance(out, Tensor):
        raise TypeError(f"the critic must return a tensor, got {type(out).__name__}")
    if out.dim() < 1 or out.shape[0] != B or out.numel() != B:
        raise ValueError(f"the critic must return one value per sample, shape ({B},) or ({B}, 1), "
                         f"got {tuple(out.shape)}")
    if not out.requires_grad:
        raise ValueError("the critic's output does not depend on its input (it carries no gradient)")
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return g


def _eps(eps: Tensor | None, like: Tensor) -> Tensor:
    shape = (like.shape[0],) + (1,) * (like.dim() - 1)
    if eps is None:
        return torch.rand(shape, dtype=like.dtype, device=like.device)
    return _checks.per_sample_weights(eps, "eps", like).reshape(shape)


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     lam: float = 10.0, eps: Tensor | None = None, center: float = 1.0,
                     one_sided: bool = False) -> Tensor:
    """The WGAN-GP penalty (Gulrajani et al. 2017): ``lam * mean_i phi(||grad D(x^_i)||)``
    with ``x^_i = eps_i real_i + (1 - eps_i) fake_i``, one ``eps_i ~ U[0, 1)`` per sample
    (or given, shape (B,) or (B, 1, ...)), and ``phi(n) = (n - center)^2``, or
    ``max(0, n - center)^2`` when ``one_sided``. ``real`` and ``fake`` are detached.
    """
    _check_batch("real", real)
    _check_batch("fake", fake)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and "
                         f"{tuple(fake.shape)}")
    _checks.check_like(fake, "fake", real, "real")
    lam = _checks.check_number(lam, "lam", minimum=0.0)
    x_hat = torch.lerp(fake.detach(), real.detach(), _eps(eps, real))
    _check_sources(x_hat, real=real, fake=fake)
    return lam * row_penalty(_input_gradient(critic, x_hat), center, one_sided)


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, gamma: float = 10.0) -> Tensor:
    """The R1 penalty (Mescheder et al. 2018) on real data: ``gamma / 2 * mean_i
    ||grad D(real_i)||^2``."""
    _check_batch("real", real)
    _checks.check_finite(real, "real")
    gamma = _checks.check_number(gamma, "gamma", minimum=0.0)
    return 0.5 * gamma * row_penalty(_input_gradient(critic, real), center=0.0)


def dragan_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, lam: float = 10.0,
                   c: float = 0.5, eps: Tensor | None = None, noise: Tensor | None = None,
                   center: float = 1.0) -> Tensor:
    """The DRAGAN penalty (Kodali et al. 2017): the gradient penalty around the data, on
    ``x^ = real + eps (x_p - real)`` with ``x_p = real + c * std(real) * noise`` and
    ``noise ~ U[0, 1)`` (or given, shaped like ``real``)."""
    _check_batch("real", real)
    if noise is None:
        noise = torch.rand_like(real)
    elif noise.shape != real.shape:
        raise ValueError(f"noise must be shaped like real {tuple(real.shape)}, got {tuple(noise.shape)}")
    real = real.detach()
    perturbed = real + _checks.check_number(c, "c") * real.std() * noise
    _check_sources(perturbed, real=real, noise=noise)
    return gradient_penalty(critic, perturbed, real, lam=lam, eps=eps, center=center)
