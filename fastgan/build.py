"""The parts of a run built from its settings: the networks (the built-in ones for the
data, or the user's, each checked with one forward before any training) and the
optimisers of the objective."""
from __future__ import annotations

import torch

from fastgan import models
from fastgan.config import ConfigError, TrainConfig
from fastgan.optim import ClippedRMSprop

Tensor = torch.Tensor


def networks(cfg: TrainConfig, data, device: torch.device, dtype: torch.dtype, generator=None, critic=None,
             num_classes: int = 0, head: str | None = None) -> tuple[torch.nn.Module, torch.nn.Module, int]:
    """(generator, critic, latent size) of a run on ``data``, on ``device`` in
    ``dtype``: the built-in networks of the data's kind and ``cfg.arch`` (drawn from
    torch's RNG; conditional on ``num_classes`` classes, the critic's class ``head``),
    or the user's, whose latent size is ``cfg.latent_dim`` or the generator's
    ``latent_dim`` (conditional ones as :func:`check_networks` says)."""
    if generator is None:
        problem = models.image_shape_problem(tuple(data.shape), cfg.arch)
        if problem:
            raise ConfigError("data", f"{cfg.data}: {problem}")
        latent_dim = cfg.latent_dim or models.default_latent(data.shape, cfg.arch)
        width = cfg.width or models.default_width(data.shape, cfg.arch)
        generator, critic = models.build(data.shape, latent_dim, width, device, cfg.arch, num_classes, head)
    else:
        latent_dim = cfg.latent_dim or getattr(generator, "latent_dim", None)
        if not isinstance(latent_dim, int):
            raise ConfigError("latent_dim", "must be given for your own generator (its input size), or set "
                                            "as the generator's latent_dim attribute")
    generator, critic = generator.to(device, dtype), critic.to(device, dtype)
    check_networks(generator, critic, latent_dim, tuple(data.shape), device, dtype, num_classes, head)
    return generator, critic, latent_dim


def check_networks(generator: torch.nn.Module, critic: torch.nn.Module, latent_dim: int, shape: tuple,
                   device: torch.device, dtype: torch.dtype, num_classes: int = 0, head: str | None = None) -> None:
    """One forward of 2 samples (eval mode, no randomness drawn) shows that the
    generator makes samples of the data's ``shape`` and the critic scores each with one
    value, before any training. Conditional networks (``num_classes``) are called with
    class 0: ``generator(z, y)``, and ``critic(x, y)`` for a ``projection`` head, or for
    an ``acgan`` one ``critic(x)`` and ``critic.heads(x)``, its output and its class
    logits ``(B, num_classes)``."""
    modes = generator.training, critic.training
    generator.eval()
    critic.eval()
    classes = (torch.zeros(2, dtype=torch.long, device=device),) if num_classes else ()
    projection = head == "projection"
    try:
        with torch.no_grad():
            z = torch.zeros(2, latent_dim, device=device, dtype=dtype)
            try:
                x = generator(z, *classes)
            except Exception as exc:  # noqa: BLE001 - the user's network: say which call failed
                raise ValueError(f"generator: a batch of 2 latent codes of size {latent_dim} fails: "
                                 f"{type(exc).__name__}: {exc}") from None
            if not isinstance(x, Tensor) or tuple(x.shape[1:]) != shape:
                raise ValueError(f"generator: makes samples of shape {tuple(getattr(x, 'shape', ()))[1:]}, "
                                 f"the data's are {shape}")
            try:
                d = critic(x, *classes) if projection else critic(x)
            except Exception as exc:  # noqa: BLE001
                raise ValueError(f"critic: a batch of 2 samples of shape {shape} fails: "
                                 f"{type(exc).__name__}: {exc}") from None
            if not isinstance(d, Tensor) or d.dim() < 1 or d.shape[0] != 2 or d.numel() != 2:
                raise ValueError("critic: must return one value per sample, shape (B,) or (B, 1), got "
                                 f"{tuple(getattr(d, 'shape', ()))} for B = 2")
            if head == "acgan":
                _check_heads(critic, x, num_classes)
    finally:
        generator.train(modes[0])
        critic.train(modes[1])


def _check_heads(critic: torch.nn.Module, x: Tensor, num_classes: int) -> None:
    """An AC-GAN critic's ``heads(x)``: its output and ``(B, num_classes)`` logits."""
    if not callable(getattr(critic, "heads", None)):
        raise ValueError("critic: --cond-critic acgan needs a heads(x) method returning (D(x), class logits)")
    out = critic.heads(x)
    logits = out[1] if isinstance(out, tuple) and len(out) == 2 else None
    if not isinstance(logits, Tensor) or tuple(logits.shape) != (2, num_classes):
        raise ValueError(f"critic: heads(x) must return (D(x), logits of shape (B, {num_classes})), got "
                         f"{tuple(getattr(logits, 'shape', ()))} logits for B = 2")


def optimizers(cfg: TrainConfig, hp, generator: torch.nn.Module, critic: torch.nn.Module,
               clip: float) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer, float]:
    """(critic's, generator's optimiser, learning rate) of the objective's defaults
    ``hp`` (:func:`fastgan.objectives.defaults`) with the settings' overrides: RMSprop,
    the critic's clipping its weights to ``clip`` in the same pass (wgan), or torch's
    fused Adam (one kernel over all parameters, CPU and CUDA)."""
    lr = hp.lr if cfg.lr is None else cfg.lr
    betas = (hp.betas[0] if cfg.beta1 is None else cfg.beta1, hp.betas[1] if cfg.beta2 is None else cfg.beta2)
    if hp.optimizer == "rmsprop":
        return ClippedRMSprop(critic.parameters(), lr=lr, clip=clip), torch.optim.RMSprop(generator.parameters(),
                                                                                          lr=lr), lr
    return (torch.optim.Adam(critic.parameters(), lr=lr, betas=betas, fused=True),
            torch.optim.Adam(generator.parameters(), lr=lr, betas=betas, fused=True), lr)
