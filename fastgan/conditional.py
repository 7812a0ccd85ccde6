"""Class-conditional GANs: the critics' two class heads and the AC-GAN losses.

* ``projection`` (Miyato & Koyama 2018): ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``,
  per sample and linear in ``phi(x)``: the critic's ``forward(x, y)``, which the fused
  step traces (its projection node, the labels the graph's second input);
* ``acgan`` (Odena et al. 2017; the WGAN-GP paper's conditional CIFAR-10 model): a
  second linear head of class logits on ``phi(x)``; the critic's ``forward(x)`` is its
  WGAN output alone (the penalty's), :meth:`ClassHeads.heads` gives both from one
  ``phi``. The critic adds the cross-entropy of the real and the fake batch's logits
  (weight 1), the generator that of its samples' (weight 0.1, the paper's
  ``ACGAN_SCALE_G``).

The critics share :class:`ClassHeads`; each defines ``phi(x)`` (its features, ``(B,
F)``) and ``psi(h)`` (its output layer).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor

HEADS = ("projection", "acgan")
#: The weights of the AC-GAN cross-entropy in the critic's and the generator's loss.
ACGAN_CRITIC_WEIGHT, ACGAN_GENERATOR_WEIGHT = 1.0, 0.1


class ClassHeads:
    """The class heads of a critic with features ``phi(x)`` and output layer ``psi``:
    none (``num_classes = 0``), a projection or an AC-GAN classifier
    (:func:`add_heads` makes them)."""

    num_classes: int = 0
    head: str | None = None

    def add_heads(self, features: int, num_classes: int, head: str | None, device=None, dtype=None) -> None:
        if num_classes and head not in HEADS:
            raise ValueError(f"head must be {' or '.join(HEADS)} for a conditional critic, got {head!r}")
        self.num_classes, self.head = int(num_classes), head if num_classes else None
        if self.head == "projection":
            self.embed = nn.Embedding(num_classes, features, device=device, dtype=dtype)
        elif self.head == "acgan":
            self.classify = nn.Linear(features, num_classes, device=device, dtype=dtype)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """``D(x)``, or with a projection ``D(x, y)``."""
        h = self.phi(x)
        out = self.psi(h)
        if self.head == "projection":
            out = out + torch.sum(self.embed(y) * h, 1, keepdim=True)
        return out

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """An AC-GAN critic's WGAN output and class logits, from one ``phi(x)``."""
        if self.head != "acgan":
            raise ValueError("heads() is the AC-GAN critic's (head='acgan')")
        h = self.phi(x)
        return self.psi(h), self.classify(h)


def class_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The AC-GAN cross-entropy of class ``logits`` (float32 at least) against ``labels``."""
    return F.cross_entropy(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, labels)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d without its own affine map, then a scale and a shift per class
    (initialised to 1 and 0): the WGAN-GP paper's conditional BatchNorm."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.norm(x) * self.scale(y)[:, :, None, None] + self.shift(y)[:, :, None, None]


def check_classes(num_classes: int, y: Tensor | None) -> None:
    """A generator of ``num_classes`` classes (0: unconditional) takes ``(z, y)``, any
    other ``z`` alone."""
    if (y is None) != (not num_classes):
        raise ValueError(f"this generator takes {'(z, y)' if num_classes else 'z alone'}")


def normed(norm: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
    """``norm(x)``, or a conditional norm's ``norm(x, y)``."""
    return norm(x) if y is None else norm(x, y)


def balanced_labels(n: int, num_classes: int) -> Tensor:
    """``0, 1, ..., K-1, 0, 1, ...``: ``n`` classes, each as often as the others (+-1)."""
    return torch.arange(n) % num_classes
