"""Gradient penalties for any differentiable critic: WGAN-GP, R1 and DRAGAN.

Each takes the user's critic (any module or function of a batch) and one of two
methods, with the same value and the same parameter gradients:

* ``"double-backward"``: ``autograd.grad(create_graph=True)``, then the fused row op
  :func:`fastgan.ops.row_penalty` (norms, phi and its gradient in one pass); the
  penalty's backward is a double backward through the critic;
* ``"jvp"``: first order only. The penalty's parameter gradient is
  ``sum_i u_i^T dg_i/dtheta = d/dtheta sum_i <u_i, grad_x D(x_i)>`` with ``u`` held
  constant: ``g`` comes from ``torch.func.vjp`` (no graph kept), ``u = d mean phi / dg``
  in closed form (the same row op), and ``torch.func.jvp`` of the critic at ``x`` with
  tangent ``u`` gives ``<u_i, grad_x D(x_i)>`` as its output tangent. Its sum, added to
  the penalty's value with a zero value of its own, carries the gradient into an
  ordinary ``backward()``: no double backward anywhere, so it works where double
  backward does not (DistributedDataParallel), and torch.compile traces it with its
  default settings (``fullgraph=True``, the backward inside the compiled function or
  outside it). The critic's ops need forward-mode derivatives: torch's layers have
  them, and fastgan's own ops run their reference form within the two transforms.

``method="auto"`` (the default) takes the faster of the two on the device at hand, as
measured by ``fastgan bench`` (:data:`AUTO_METHOD`). Add the result to the critic's loss.
"""
from __future__ import annotations

import contextlib
import warnings
import weakref
from typing import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from fastgan import _checks, backends
from fastgan._checks import FastganWarning
from fastgan.ops.penalty import row_penalty, row_penalty_and_grad

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
    if _checks.active_checks() != "eager":  # no reading back: one device flag per source
        for name, t in sources.items():
            _checks.check_finite(t, name)
        return
    if _checks.all_finite(x.sum()):
        return
    for name, t in sources.items():
        _checks.check_finite(t, name)
    if not _checks.all_finite(x):
        raise ValueError("the interpolates contain NaN or infinite values")


METHODS = ("double-backward", "jvp")
#: The method ``method="auto"`` takes per device type: the faster one in ``fastgan bench``
#: (ops suite, gradient_penalty rows). CPU, measured: jvp 0.65x eager against 1.00x for the
#: double backward on the DCGAN critic, 0.53x against 0.93x with LayerNorm, so the double
#: backward; CUDA: not measured yet, so the established double backward.
AUTO_METHOD = {"cpu": "double-backward", "cuda": "double-backward"}


def _input_gradient(critic: Callable[[Tensor], Tensor], x: Tensor, scaler=None) -> Tensor:
    """grad_x of sum_i D(x_i), in x's dtype, differentiable (``autograd.grad`` with
    ``create_graph``: the double backward's first half). With an enabled
    ``torch.amp.GradScaler`` (fp16) the output is scaled before the backward and the
    gradient unscaled after, as PyTorch's gradient-penalty recipe does, with the scale
    kept on the device."""
    scale = _scale(scaler, x.device)
    x = x.detach().requires_grad_(True)
    out = _checked_output(critic(x), x.shape[0])
    (g,) = torch.autograd.grad(out.sum() if scale is None else out.sum() * scale, x, create_graph=True)
    return g if scale is None else g / scale


def _scale(scaler, device: torch.device) -> Tensor | None:
    """An enabled GradScaler's scale as a tensor on the device (no sync), else None."""
    if scaler is None or not scaler.is_enabled():
        return None
    return scaler.scale(torch.ones((), device=device))


def _jvp_penalty(critic, x: Tensor, lam: float, center: float, one_sided: bool, scaler=None) -> Tensor:
    """The penalty by the first-order method (the module's doc): ``g`` from
    ``torch.func.vjp`` (a constant), ``u`` from the row op, then ``torch.func.jvp`` of the
    critic at ``x`` with tangent ``lam u``; torch.compile traces both transforms with its
    default settings. Inside them fastgan's own ops run their reference form
    (:func:`fastgan.backends.reference_ops`: the transforms cannot enter the extension's
    C++ autograd functions) and the norms theirs (:class:`_CompositeNorms`)."""
    scale = _scale(scaler, x.device)
    x = x.detach()
    with _CompositeNorms(), backends.reference_ops(), _running_stats_frozen(critic):
        total, pullback = torch.func.vjp(lambda x: _checked_output(critic(x), x.shape[0]).sum(), x)
        (g,) = pullback(torch.ones_like(total) if scale is None else scale.to(total.dtype))
    g = (g if scale is None else g / scale).detach()
    value, u = row_penalty_and_grad(g, center, one_sided)
    with _CompositeNorms(), backends.reference_ops(), _running_stats_frozen(critic):
        _, tangent = torch.func.jvp(critic, (x,), (lam * u.to(x.dtype),))
    surrogate = tangent.float().sum()  # its parameter gradient is the penalty's; its value is not
    return lam * value + (surrogate - surrogate.detach())


def _checked_output(out, B: int) -> Tensor:
    """The critic's output ``out`` for a batch of ``B``, checked: one value per sample,
    that depends on the input; half precision made float32."""
    if not isinstance(out, Tensor):
        raise TypeError(f"the critic must return a tensor, got {type(out).__name__}")
    if out.dim() < 1 or out.shape[0] != B or out.numel() != B:
        raise ValueError(f"the critic must return one value per sample, shape ({B},) or ({B}, 1), "
                         f"got {tuple(out.shape)}")
    if not out.requires_grad:
        raise ValueError("the critic's output does not depend on its input (it carries no gradient)")
    return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out


@contextlib.contextmanager
def _running_stats_frozen(critic):
    """The critic's BatchNorm layers with ``track_running_stats`` off for the block:
    ``torch.func`` refuses their in-place update of the running statistics (and of the
    batch count), so in the jvp method's passes a training-mode BatchNorm normalises by
    the batch and leaves them as they are (the double-backward method's pass updates
    them); an eval-mode one still reads them."""
    layers = [m for m in critic.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
              and m.track_running_stats] if isinstance(critic, torch.nn.Module) else []
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


class _CompositeNorms(TorchFunctionMode):
    """The normalisations of the jvp method's passes as composite torch ops: torch's
    fused ``layer_norm`` has a forward-mode derivative whose own reverse-mode derivative
    is wrong (torch 2.14: the gradient of a conv before a LayerNorm off by 90% and more
    against the double backward, cf. pytorch#196700 on its second-order JVP);
    ``group_norm``'s fused kernel fails under torch.compile in these passes ("Cannot
    access data pointer of Tensor that doesn't have storage"), and ``batch_norm``'s is
    kept to the same exact composite form."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.layer_norm:
            return _layer_norm(*args, **kwargs)
        if func is F.group_norm:
            return _group_norm(*args, **kwargs)
        if func is F.batch_norm:
            return _batch_norm(*args, **kwargs)
        return func(*args, **kwargs)


def _normalise(x: Tensor, dims: tuple[int, ...], eps: float) -> Tensor:
    centred = x - x.mean(dims, keepdim=True)
    return centred * torch.rsqrt((centred * centred).mean(dims, keepdim=True) + eps)


def _layer_norm(x: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """``F.layer_norm`` from composite ops."""
    y = _normalise(x, tuple(range(x.dim() - len(normalized_shape), x.dim())), eps)
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


def _group_norm(x: Tensor, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """``F.group_norm`` from composite ops."""
    y = _normalise(x.reshape(x.shape[0], num_groups, -1), (2,), eps).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.dim() - 2)  # per channel
    y = y if weight is None else y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


def _batch_norm(x: Tensor, running_mean, running_var, weight=None, bias=None, training: bool = False,
                momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """``F.batch_norm`` from composite ops: by the batch's statistics in training (the
    running ones are not updated), else by the running ones."""
    shape = (1, -1) + (1,) * (x.dim() - 2)  # per channel
    if training:
        y = _normalise(x, (0, *range(2, x.dim())), eps)
    else:
        y = (x - running_mean.reshape(shape)) * torch.rsqrt(running_var.reshape(shape) + eps)
    y = y if weight is None else y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


def _method(method: str, device: torch.device) -> str:
    if method == "auto":
        return AUTO_METHOD.get(device.type, "double-backward")
    if method not in METHODS:
        raise ValueError(f"method must be auto, double-backward or jvp, got {method!r}")
    return method


def _penalty(critic, x: Tensor, lam: float, center: float, one_sided: bool, method: str, scaler=None) -> Tensor:
    """``lam * mean_i phi(||grad D(x_i)||)`` by ``method`` (see the module's doc)."""
    if _method(method, x.device) == "double-backward":
        return lam * row_penalty(_input_gradient(critic, x, scaler=scaler), center, one_sided)
    return _jvp_penalty(critic, x, lam, center, one_sided, scaler)


class BatchNormPenaltyWarning(FastganWarning):
    """A critic with a layer that mixes the samples of a batch (BatchNorm) is trained
    with a per-sample gradient penalty."""


_checked_critics: weakref.WeakSet = weakref.WeakSet()


def warn_batch_mixing(critic) -> None:
    """Once per critic module: a :class:`BatchNormPenaltyWarning` naming its first
    BatchNorm layer (any ``_BatchNorm``, ``SyncBatchNorm`` included; GroupNorm, LayerNorm
    and InstanceNorm normalise each sample alone and are fine). Nothing for a plain
    function, nor while torch.compile traces (the eager calls say it)."""
    if not isinstance(critic, torch.nn.Module) or torch.compiler.is_compiling() or critic in _checked_critics:
        return
    _checked_critics.add(critic)
    layer = next(((name, m) for name, m in critic.named_modules()
                  if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)), None)
    if layer is not None:
        name, module = layer
        warnings.warn(f"the critic's layer {name or '(the critic itself)'} ({type(module).__name__}) mixes the "
                      "samples of a batch: each sample's gradient penalty then depends on the others, which is not "
                      "the per-sample penalty of WGAN-GP, R1 or DRAGAN (Gulrajani et al. 2017, sec. 4, advise "
                      "against BatchNorm in the critic; LayerNorm, GroupNorm or InstanceNorm are per sample)",
                      BatchNormPenaltyWarning, stacklevel=3)


def _eps(eps: Tensor | None, like: Tensor) -> Tensor:
    shape = (like.shape[0],) + (1,) * (like.dim() - 1)
    if eps is None:
        return torch.rand(shape, dtype=like.dtype, device=like.device)
    return _checks.per_sample_weights(eps, "eps", like).reshape(shape)


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     lam: float = 10.0, eps: Tensor | None = None, center: float = 1.0,
                     one_sided: bool = False, method: str = "auto", scaler=None) -> Tensor:
    """The WGAN-GP penalty (Gulrajani et al. 2017): ``lam * mean_i phi(||grad D(x^_i)||)``
    with ``x^_i = eps_i real_i + (1 - eps_i) fake_i``, one ``eps_i ~ U[0, 1)`` per sample
    (or given, shape (B,) or (B, 1, ...)), and ``phi(n) = (n - center)^2``, or
    ``max(0, n - center)^2`` when ``one_sided``. ``real`` and ``fake`` are detached.
    ``method``: ``"auto"``, ``"double-backward"`` or ``"jvp"`` (the module's doc).

    Mixed precision: under autocast, ``real`` and ``fake`` are taken to the wider of
    their dtypes, the critic runs autocast, and the gradient, its norm and the penalty
    are float32. With fp16, pass the ``torch.amp.GradScaler`` that scales the critic's
    loss as ``scaler``: the penalty's own backward is then scaled and unscaled too.
    """
    _check_batch("real", real)
    _check_batch("fake", fake)
    warn_batch_mixing(critic)
    wider = torch.promote_types(real.dtype, fake.dtype)  # under autocast, a half fake beside float32 data
    real, fake = _checks.autocast_to(real, wider), _checks.autocast_to(fake, wider)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and "
                         f"{tuple(fake.shape)}")
    _checks.check_like(fake, "fake", real, "real")
    lam = _checks.check_number(lam, "lam", minimum=0.0)
    x_hat = torch.lerp(fake.detach(), real.detach(), _eps(eps, real))
    _check_sources(x_hat, real=real, fake=fake)
    return _penalty(critic, x_hat, lam, center, one_sided, method, scaler)


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, gamma: float = 10.0,
               method: str = "auto") -> Tensor:
    """The R1 penalty (Mescheder et al. 2018) on real data: ``gamma / 2 * mean_i
    ||grad D(real_i)||^2``; ``method`` as for :func:`gradient_penalty`."""
    _check_batch("real", real)
    warn_batch_mixing(critic)
    _checks.check_finite(real, "real")
    gamma = _checks.check_number(gamma, "gamma", minimum=0.0)
    return _penalty(critic, real, 0.5 * gamma, 0.0, False, method)


def dragan_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, lam: float = 10.0,
                   c: float = 0.5, eps: Tensor | None = None, noise: Tensor | None = None,
                   center: float = 1.0, method: str = "auto") -> Tensor:
    """The DRAGAN penalty (Kodali et al. 2017): the gradient penalty around the data, on
    ``x^ = real + eps (x_p - real)`` with ``x_p = real + c * std(real) * noise`` and
    ``noise ~ U[0, 1)`` (or given, shaped like ``real``); ``method`` as for
    :func:`gradient_penalty`."""
    _check_batch("real", real)
    warn_batch_mixing(critic)
    if noise is None:
        noise = torch.rand_like(real)
    elif noise.shape != real.shape:
        raise ValueError(f"noise must be shaped like real {tuple(real.shape)}, got {tuple(noise.shape)}")
    real = real.detach()
    perturbed = real + _checks.check_number(c, "c") * real.std() * noise
    _check_sources(perturbed, real=real, noise=noise)
    return gradient_penalty(critic, perturbed, real, lam=lam, eps=eps, center=center, method=method)
