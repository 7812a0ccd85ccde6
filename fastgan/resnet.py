"""The WGAN-GP paper's ResNet generator and critic (Gulrajani et al. 2017, its
``gan_cifar_resnet.py`` and ``gan_64x64.py``), written as plain torch modules; the fused
step traces the critics (:class:`fastgan.FusedCritic`).

Two families, as in the paper:

* **CIFAR** (:class:`ResNetCritic`, a generator of constant width): the critic's 4
  residual blocks (the first two downsampling by mean pools, no norm), relu, a global
  mean and ``Linear(ch, 1)``; the generator's ``Linear(z, 4*4*ch)``, 3 upsampling
  blocks with BatchNorm, then BatchNorm, relu, a 3x3 conv to the image and tanh;
* **64x64** (:class:`DeepResNetCritic`, a generator of halving widths): a 3x3 stem,
  4 downsampling blocks of widths ``2w, 4w, 8w, 8w`` normalised by ``GroupNorm(1, C)``
  (the paper's layer norm over C, H, W with a per-channel affine map), a flatten and
  ``Linear(4*4*8w, 1)``; the generator mirrors it from ``Linear(z, 4*4*8w)``.

The resolution changes by 2 per block (nearest upsampling in the generator, 2x2 mean
pools in the critic). :func:`fastgan.models.build` picks the family by the image size.
With ``num_classes``, the generator's BatchNorms are conditional (a scale and shift
per class, the paper's conditional model) and the critics carry a class head
(:mod:`fastgan.conditional`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastgan.conditional import ClassHeads, ConditionalBatchNorm2d, check_classes, normed

Tensor = torch.Tensor


class ResBlock(nn.Module):
    """The critic's residual block: (norm,) relu, conv 3x3 ``cin -> cin``, (norm,) relu,
    conv 3x3 ``cin -> cout``, then a 2x2 mean pool when downsampling. The shortcut is
    the identity or a 1x1 conv, which pools first (``pool_first``, the paper's first
    block) or convolves first (its later blocks). The first block of a critic reads the
    image itself: no norm or relu before it, and its first conv maps ``cin -> cout``."""

    def __init__(self, cin: int, cout: int, down: bool, pool_first: bool = False, first: bool = False,
                 norm: Callable[[int], nn.Module] | None = None):
        super().__init__()
        mid = cout if first else cin
        self.c1, self.c2 = nn.Conv2d(cin, mid, 3, 1, 1), nn.Conv2d(mid, cout, 3, 1, 1)
        self.n1 = norm(cin) if norm is not None and not first else nn.Identity()
        self.n2 = norm(mid) if norm is not None else nn.Identity()
        self.down, self.pool_first, self.first = down, pool_first, first
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout or down else None

    def forward(self, x: Tensor) -> Tensor:
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


class ResNetCritic(ClassHeads, nn.Module):
    """The CIFAR-10 ResNet critic: ``ch`` channels throughout, relu, a global ``pool``
    (``"mean"``, the paper's, or ``"sum"``, mimicry's), ``Linear(ch, 1)``. ``pool_first``
    is the second block's shortcut order (the paper convolves first). Images of any
    size divisible by 4. With ``num_classes``, a class ``head``
    (:mod:`fastgan.conditional`) on the pooled features."""

    def __init__(self, ch: int = 128, pool: str = "mean", pool_first: bool = False, channels: int = 3,
                 norm: Callable[[int], nn.Module] | None = None, num_classes: int = 0, head: str | None = None):
        super().__init__()
        self.blocks = nn.Sequential(ResBlock(channels, ch, True, True, first=True, norm=norm),
                                    ResBlock(ch, ch, True, pool_first, norm=norm),
                                    ResBlock(ch, ch, False, norm=norm), ResBlock(ch, ch, False, norm=norm))
        self.linear, self.pool = nn.Linear(ch, 1), pool
        self.add_heads(ch, num_classes, head)

    def phi(self, x: Tensor) -> Tensor:
        h = F.relu(self.blocks(x))
        return h.sum(dim=[2, 3]) if self.pool == "sum" else h.mean((2, 3))

    def psi(self, h: Tensor) -> Tensor:
        return self.linear(h)


def group_norm(channels: int) -> nn.Module:
    """The 64x64 critic's norm: ``GroupNorm(1, C)``, the paper's layer norm over
    (C, H, W) with a per-channel scale and shift."""
    return nn.GroupNorm(1, channels)


class DeepResNetCritic(ClassHeads, nn.Module):
    """The 64x64 ResNet critic, for ``widths[-1]`` features of ``start`` x ``start``: a
    3x3 stem to ``widths[0]`` channels, a downsampling block per later width (normalised
    by ``norm``), a flatten and a linear output. The paper's 64x64 critic is
    ``widths = (w, 2w, 4w, 8w, 8w)``, ``start = 4``. With ``num_classes``, a class
    ``head`` on the flattened features."""

    def __init__(self, widths: Sequence[int], start: int, channels: int = 3,
                 norm: Callable[[int], nn.Module] | None = group_norm, num_classes: int = 0, head: str | None = None):
        super().__init__()
        self.stem = nn.Conv2d(channels, widths[0], 3, 1, 1)
        self.blocks = nn.Sequential(*(ResBlock(a, b, True, norm=norm) for a, b in zip(widths[:-1], widths[1:])))
        self.linear = nn.Linear(widths[-1] * start * start, 1)
        self.add_heads(widths[-1] * start * start, num_classes, head)

    def phi(self, x: Tensor) -> Tensor:
        return self.blocks(self.stem(x)).flatten(1)

    def psi(self, h: Tensor) -> Tensor:
        return self.linear(h)


class UpBlock(nn.Module):
    """The generator's residual block: norm, relu, 2x nearest upsampling, conv 3x3
    ``cin -> cout``, norm, relu, conv 3x3; the shortcut upsamples and maps by a 1x1
    conv. The norms are BatchNorm, or conditional BatchNorm with ``num_classes``."""

    def __init__(self, cin: int, cout: int, num_classes: int = 0):
        super().__init__()
        self.n1, self.n2 = (ConditionalBatchNorm2d(cin, num_classes), ConditionalBatchNorm2d(cout, num_classes)) \
            if num_classes else (nn.BatchNorm2d(cin), nn.BatchNorm2d(cout))
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = F.interpolate(F.relu(normed(self.n1, x, y)), scale_factor=2, mode="nearest")
        h = self.c2(F.relu(normed(self.n2, self.c1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResNetGenerator(nn.Module):
    """The paper's ResNet generator: ``Linear(latent_dim, widths[0] * start**2)``, an
    upsampling block per later width, then norm, relu, a 3x3 conv to ``channels`` and
    tanh: images of ``start * 2**(len(widths) - 1)`` pixels. The CIFAR generator is
    ``widths = (w,) * 4``, the 64x64 one ``(8w, 8w, 4w, 2w, w)``, both from ``start =
    4``. With ``num_classes`` it takes ``(z, y)``, its norms conditional on the class."""

    def __init__(self, latent_dim: int, widths: Sequence[int], start: int, channels: int = 3,
                 num_classes: int = 0):
        super().__init__()
        self.latent_dim, self.num_classes, self.start, self.c0 = latent_dim, num_classes, start, widths[0]
        self.project = nn.Linear(latent_dim, widths[0] * start * start)
        self.blocks = nn.ModuleList(UpBlock(a, b, num_classes) for a, b in zip(widths[:-1], widths[1:]))
        self.norm = ConditionalBatchNorm2d(widths[-1], num_classes) if num_classes else nn.BatchNorm2d(widths[-1])
        self.out = nn.Conv2d(widths[-1], channels, 3, 1, 1)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        check_classes(self.num_classes, y)
        h = self.project(z).view(-1, self.c0, self.start, self.start)
        for block in self.blocks:
            h = block(h, y)
        h = normed(self.norm, h, y)
        return torch.tanh(self.out(F.relu(h)))
