"""Residual critics written the way their users write them (plain torch modules, a
``forward`` of their own), which the fused step traces: the bench's configs and the
tests' cases.

* :class:`~fastgan.resnet.ResNetCritic`: the WGAN-GP paper's CIFAR-10 critic
  (``gan_cifar_resnet.py``; mimicry's WGAN-GP 32 and pytorch-gan-collections'
  ``ResDiscriminator32`` use the same blocks with a sum), the trainer's ``--arch
  resnet`` critic, defined in :mod:`fastgan.resnet`; with ``norm`` a per-sample norm in
  every block (the paper's 64x64 critic normalises with ``GroupNorm(1, C)``);
* :class:`GroupedCritic`: R3GAN-style identity residuals around 1x1 / grouped 3x3 / 1x1
  convolutions, a depthwise strided downsampling and a depthwise head.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from fastgan.resnet import ResNetCritic

__all__ = ["GroupedCritic", "ResNetCritic"]


class GroupedCritic(nn.Module):
    """R3GAN-style: ``blocks`` identity residuals around 1x1 / grouped 3x3 (``groups``)
    / 1x1 convolutions with leaky ReLU, each followed by a depthwise 2x2 stride-2
    downsampling, then a depthwise head over the remaining ``4x4`` and a linear output
    (images of ``4 * 2**blocks`` pixels)."""

    def __init__(self, ch: int = 6, blocks: int = 1, groups: int = 3, channels: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(channels, ch, 1)
        self.a = nn.ModuleList(nn.Conv2d(ch, 2 * ch, 1) for _ in range(blocks))
        self.b = nn.ModuleList(nn.Conv2d(2 * ch, 2 * ch, 3, 1, 1, groups=groups) for _ in range(blocks))
        self.c = nn.ModuleList(nn.Conv2d(2 * ch, ch, 1, bias=False) for _ in range(blocks))
        self.down = nn.ModuleList(nn.Conv2d(ch, ch, 2, 2, groups=ch) for _ in range(blocks))
        self.head = nn.Conv2d(ch, ch, 4, groups=ch)
        self.out = nn.Linear(ch, 1)

    def forward(self, x):
        x = self.stem(x)
        for a, b, c, down in zip(self.a, self.b, self.c, self.down):
            x = x + c(F.leaky_relu(b(F.leaky_relu(a(x), 0.2)), 0.2))
            x = down(x)
        return self.out(self.head(x).flatten(1))
