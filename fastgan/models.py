"""The trainer's networks: the WGAN-GP toy code's MLPs for points (the critic a
FusedMLPCritic) and the DCGAN-style conv nets of :mod:`fastgan.nn` for images."""
from __future__ import annotations

import torch
from torch import nn

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


def build(shape: tuple[int, ...], latent_dim: int, width: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """(generator, critic) for samples of ``shape``: (D,) points or (C, H, W) images
    with H = W in 8, 16, 32, 64."""
    if len(shape) == 1:
        generator = MLPGenerator(latent_dim, shape[0], width)
        critic = FusedMLPCritic(shape[0], (width,) * 3, activation="relu")
    elif len(shape) == 3 and shape[1] == shape[2] and shape[1] in (8, 16, 32, 64):
        generator = DCGANGenerator(latent_dim, shape[1], shape[0], width)
        critic = DCGANCritic(shape[1], shape[0], width)
    else:
        raise ValueError(f"samples of shape {shape}: expected (D,) points or square (C, H, W) images of "
                         "8, 16, 32 or 64 pixels")
    return generator.to(device), critic.to(device)
