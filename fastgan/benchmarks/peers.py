"""The ways a user would run a WGAN critic step or training iteration instead of
fastgan, each written as its best version of its kind:

* ``eager``: the popular recipe: separate forwards for real, fake and interpolates,
  ``autograd.grad(create_graph=True)``, ``backward()``, default optimisers;
* ``eager-careful``: one concatenated forward, ``set_to_none``, foreach optimisers;
* ``torch.func``: the penalty's per-sample input gradients by ``vmap(grad(...))``;
* ``torch.compile``: the eager step compiled (it refuses the penalty's double backward,
  which then shows as an error row).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

Tensor = torch.Tensor


def interpolate(real: Tensor, fake: Tensor) -> Tensor:
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), dtype=real.dtype, device=real.device)
    return (eps * real + (1 - eps) * fake).requires_grad_(True)


def popular_loss(critic: nn.Module, real: Tensor, fake: Tensor, lam: float) -> Tensor:
    """Separate forwards, then the penalty through autograd.grad(create_graph=True)."""
    loss = critic(fake).mean() - critic(real).mean()
    if lam:
        x_hat = interpolate(real, fake)
        out = critic(x_hat)
        (g,) = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)
        loss = loss + lam * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
    return loss


def careful_loss(critic: nn.Module, real: Tensor, fake: Tensor, lam: float) -> Tensor:
    """One forward over real, fake and interpolates concatenated."""
    b = real.shape[0]
    if not lam:
        out = critic(torch.cat([real, fake]))
        return out[b:].mean() - out[:b].mean()
    x_hat = interpolate(real, fake)
    out = critic(torch.cat([real, fake, x_hat]))
    (g,) = torch.autograd.grad(out[2 * b:].sum(), x_hat, create_graph=True)
    return out[b:2 * b].mean() - out[:b].mean() + lam * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def func_loss(critic: nn.Module, real: Tensor, fake: Tensor, lam: float) -> Tensor:
    """The penalty's per-sample gradients with torch.func: vmap over samples of the
    gradient of the critic's scalar output (differentiable with respect to the
    parameters by ordinary autograd)."""
    from torch.func import functional_call, grad, vmap

    params = dict(critic.named_parameters())

    def single(x):
        return functional_call(critic, params, (x.unsqueeze(0),)).squeeze()

    g = vmap(grad(single))(interpolate(real, fake).detach())
    return critic(fake).mean() - critic(real).mean() + lam * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def plain_twin(critic: nn.Module) -> nn.Module:
    """The critic as torch modules only: a FusedMLPCritic's nn.Sequential, a
    DCGANCritic's FusedConv2d blocks as nn.Conv2d + nn.LeakyReLU (same weights), or a
    copy of the paper's ResNet critics (plain torch modules)."""
    from fastgan.nn import DCGANCritic, FusedMLPCritic
    from fastgan.resnet import DeepResNetCritic, ResNetCritic

    if isinstance(critic, (ResNetCritic, DeepResNetCritic)):  # torch modules already
        return copy.deepcopy(critic)
    if isinstance(critic, FusedMLPCritic):
        return critic.to_sequential()
    if isinstance(critic, DCGANCritic):
        layers = []
        for m in critic.features:
            if not hasattr(m, "act"):
                layers.append(m)
                continue
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
            conv.load_state_dict(m.state_dict())
            layers += [conv] + ([nn.LeakyReLU(m.alpha if m.alpha is not None else 0.2)] if m.act == "lrelu" else [])
        return nn.Sequential(*layers, nn.Flatten(), critic.out)
    raise TypeError(f"no plain twin for {type(critic).__name__}")
