"""The trainer's networks: the WGAN-GP toy code's MLPs for points (the critic a
FusedMLPCritic), and for images the DCGAN-style conv nets of :mod:`fastgan.nn` or the
WGAN-GP paper's ResNets of :mod:`fastgan.resnet` (``arch``).

Image sizes follow :mod:`fastgan.sizes`. The ResNets up to 32 pixels are the CIFAR
nets (128 channels; the critic downsamples twice, then two blocks and a global mean),
above that the 64x64 nets (widths from 64 doubling to 8x, the critic's GroupNorm(1, C),
down to the start size and a flatten).
"""
from __future__ import annotations

import torch
from torch import nn

from fastgan import resnet, sizes
from fastgan.nn import DCGANCritic, DCGANGenerator, FusedMLPCritic

class MLPGenerator(nn.Sequential):
    """``latent_dim -> width x 3 (ReLU) -> out_features``: the toy code's generator."""

    def __init__(self, latent_dim: int, out_features: int, width: int = 512, depth: int = 3):
        layers, d = [], latent_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        super().__init__(*layers, nn.Linear(d, out_features))
        self.latent_dim = latent_dim


def default_width(shape: tuple[int, ...], arch: str) -> int:
    """The network width of data of ``shape``: 512 for points, 64 for DCGAN images,
    the paper's 128 for the CIFAR ResNets (up to 32 pixels) and 64 above."""
    if len(shape) == 1:
        return 512
    return 128 if arch == "resnet" and shape[1] <= 32 else 64


def default_latent(shape: tuple[int, ...], arch: str) -> int:
    """The latent size: 2 for points (the toy code's), 64 for DCGAN images, the
    paper's 128 for the ResNets."""
    if len(shape) == 1:
        return 2
    return 128 if arch == "resnet" else 64


def image_shape_problem(shape: tuple[int, ...], arch: str) -> str | None:
    """Why ``arch``'s networks cannot take samples of ``shape``, or None."""
    if len(shape) == 1:
        return None
    if len(shape) != 3 or shape[1] != shape[2]:
        return f"samples of shape {shape}: expected (D,) points or square (C, H, W) images"
    if sizes.levels(shape[1], arch) is None:
        return f"images of {shape[1]}x{shape[2]} pixels: --arch {arch} takes {sizes.supported_sizes(arch)}"
    return None


def build(shape: tuple[int, ...], latent_dim: int, width: int, device: torch.device,
          arch: str = "dcgan", num_classes: int = 0, head: str | None = None) -> tuple[nn.Module, nn.Module]:
    """(generator, critic) for samples of ``shape``: (D,) points, or (C, H, W) images of
    a size :func:`fastgan.sizes.levels` admits for ``arch``; with ``num_classes`` the
    conditional image nets, the critic's class ``head`` a projection or an AC-GAN one."""
    problem = image_shape_problem(shape, arch)
    if problem:
        raise ValueError(problem)
    if num_classes and len(shape) == 1:
        raise ValueError("the conditional networks are image networks; the data are points")
    if len(shape) == 1:
        generator = MLPGenerator(latent_dim, shape[0], width)
        critic = FusedMLPCritic(shape[0], (width,) * 3, activation="relu")
    elif arch == "dcgan":
        generator = DCGANGenerator(latent_dim, shape[1], shape[0], width, num_classes=num_classes)
        critic = DCGANCritic(shape[1], shape[0], width, num_classes=num_classes, head=head)
    else:
        generator, critic = resnets(shape, latent_dim, width, num_classes, head)
    return generator.to(device), critic.to(device)


def resnets(shape: tuple[int, ...], latent_dim: int, width: int, num_classes: int = 0,
            head: str | None = None) -> tuple[nn.Module, nn.Module]:
    """The paper's ResNet (generator, critic) for images of ``shape``: the CIFAR nets up
    to 32 pixels, the 64x64 nets above (see the module's rule)."""
    start, n = sizes.levels(shape[1], "resnet")
    heads = dict(num_classes=num_classes, head=head)
    if shape[1] <= 32:
        return (resnet.ResNetGenerator(latent_dim, (width,) * (n + 1), start, shape[0], num_classes),
                resnet.ResNetCritic(width, channels=shape[0], **heads))
    widths = [width * min(2 ** i, 8) for i in range(n + 1)]
    return (resnet.ResNetGenerator(latent_dim, widths[::-1], start, shape[0], num_classes),
            resnet.DeepResNetCritic(widths, start, shape[0], **heads))
