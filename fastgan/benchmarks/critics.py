"""Residual critics written the way their users write them (plain torch modules, a
``forward`` of their own), which the fused step traces: the bench's configs and the
tests' cases.

* :class:`ResNetCritic`: the WGAN-GP paper's CIFAR-10 critic (``gan_cifar_resnet.py``;
  mimicry's WGAN-GP 32 and pytorch-gan-collections' ``ResDiscriminator32`` use the same
  blocks with a sum): 4 residual blocks, the first two downsampling, relu, a global
  mean or sum, ``Linear(ch, 1)``; with ``norm`` a per-sample norm in every block (the
  paper's 64x64 critic normalises with ``GroupNorm(1, C)``);
* :class:`GroupedCritic`: R3GAN-style identity residuals around 1x1 / grouped 3x3 / 1x1
  convolutions, a depthwise strided downsampling and a depthwise head.
"""
from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """(norm,) relu, conv 3x3, (norm,) relu, conv 3x3, then a 2x2 mean pool when
    downsampling; the shortcut is the identity or a 1x1 conv, which pools first
    (``pool_first``, the paper's first block) or convolves first (its later blocks).
    The first block of a critic reads the image itself: no norm or relu before it."""

    def __init__(self, cin: int, cout: int, down: bool, pool_first: bool = False, first: bool = False,
                 norm: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.n1 = norm(cin) if norm is not None and not first else nn.Identity()
        self.n2 = norm(cout) if norm is not None else nn.Identity()
        self.down, self.pool_first, self.first = down, pool_first, first
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout or down else None

    def forward(self, x):
        h = x if self.first else F.relu(self.n1(x))
        h = self.c2(F.relu(self.n2(self.c1(h))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.shortcut is not None:
            if self.pool_first:
                s = self.shortcut(F.avg_pool2d(s, 2) if self.down else s)
            else:
                s = self.shortcut(s)
                s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ResNetCritic(nn.Module):
    """The CIFAR-10 ResNet critic: ``ch`` channels throughout, relu, a global ``pool``
    (``"mean"``, the paper's, or ``"sum"``), ``Linear(ch, 1)``. ``pool_first`` is the
    second block's shortcut order (the paper convolves first)."""

    def __init__(self, ch: int = 128, pool: str = "mean", pool_first: bool = False, channels: int = 3,
                 norm: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.blocks = nn.Sequential(ResBlock(channels, ch, True, True, first=True, norm=norm),
                                    ResBlock(ch, ch, True, pool_first, norm=norm),
                                    ResBlock(ch, ch, False, norm=norm), ResBlock(ch, ch, False, norm=norm))
        self.linear, self.pool = nn.Linear(ch, 1), pool

    def forward(self, x):
        h = F.relu(self.blocks(x))
        h = h.sum(dim=[2, 3]) if self.pool == "sum" else h.mean((2, 3))
        return self.linear(h)


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
