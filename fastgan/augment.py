"""Differentiable augmentation (DiffAugment, Zhao et al. 2020): the same random
transforms on the real and the generated images before every critic call, so that a
critic trained on a small data set cannot memorise it, while the generator's gradients
pass through the transforms.

The three transforms of the paper, with its parameters and their distributions, drawn
per sample:

* ``color``: brightness ``x + (b - 0.5)``; saturation ``(x - m_c) * 2s + m_c`` with
  ``m_c`` the mean over the channels of each pixel; contrast ``(x - m) * (c + 0.5) + m``
  with ``m`` the mean of the whole image; ``b, s, c ~ U[0, 1)``;
* ``translation``: a shift of the image by whole pixels, ``t ~ U{-r, ..., r}`` per axis
  with ``r = int(size / 8 + 0.5)``, the uncovered pixels zero;
* ``cutout``: a square of ``k = int(size / 2 + 0.5)`` pixels set to zero, its centre at
  ``o ~ U{0, ..., size - (k mod 2)}`` per axis (the square starts at ``o - k // 2``),
  clipped by the image.

The parameters are drawn in that order (per transform of the policy, in the policy's
order) from torch's generator on the CPU, the stream a run checkpoints, so a resumed
run augments bit for bit. kornia's random translation and erasing interpolate or draw
their parameters otherwise, so the transforms are written here.
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor

TRANSFORMS = ("color", "translation", "cutout")
TRANSLATION_RATIO, CUTOUT_RATIO = 0.125, 0.5


def parse_policy(text: str) -> tuple[str, ...]:
    """The transforms of a policy such as ``"color,translation,cutout"`` (``"none"``:
    no augmentation), in their order; raises ValueError naming a transform that is not
    one of :data:`TRANSFORMS` or one given twice."""
    if text == "none":
        return ()
    names = tuple(name.strip() for name in text.split(","))
    for name in names:
        if name not in TRANSFORMS:
            raise ValueError(f"has {name!r}; expected none, or a comma-separated list of {', '.join(TRANSFORMS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"names a transform twice: {text!r}")
    return names


def brightness(x: Tensor, b: Tensor) -> Tensor:
    """``x + (b - 0.5)``, ``b`` of shape ``(N,)``."""
    return x + (b.view(-1, 1, 1, 1) - 0.5)


def saturation(x: Tensor, s: Tensor) -> Tensor:
    """Each pixel's channels spread from their mean by ``2 s``, ``s`` of shape ``(N,)``."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (2 * s.view(-1, 1, 1, 1)) + mean


def contrast(x: Tensor, c: Tensor) -> Tensor:
    """Each image spread from its mean by ``c + 0.5``, ``c`` of shape ``(N,)``."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (c.view(-1, 1, 1, 1) + 0.5) + mean


def translation(x: Tensor, shift: Tensor) -> Tensor:
    """``out[n, :, i, j] = x[n, :, i + shift[n, 0], j + shift[n, 1]]`` where that pixel
    exists, else 0; ``shift`` an integer ``(N, 2)`` tensor."""
    n, _, h, w = x.shape
    shift = shift.to(x.device)
    # indices into x padded by one zero pixel on each side; out-of-range ones land on it
    rows = (torch.arange(h, device=x.device) + shift[:, :1]).clamp(-1, h) + 1
    cols = (torch.arange(w, device=x.device) + shift[:, 1:]).clamp(-1, w) + 1
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout_size(size: int) -> int:
    """The side of the cutout square in an image of ``size`` pixels."""
    return int(size * CUTOUT_RATIO + 0.5)


def cutout(x: Tensor, centre: Tensor) -> Tensor:
    """``x`` with the square of :func:`cutout_size` pixels per side starting at
    ``centre - side // 2`` (an integer ``(N, 2)`` tensor) set to zero, clipped by the
    image."""
    _, _, h, w = x.shape
    centre = centre.to(x.device)
    k = torch.tensor([cutout_size(h), cutout_size(w)], device=x.device)
    start = centre - k // 2
    i, j = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (i >= start[:, :1]) & (i < start[:, :1] + k[0])
    in_cols = (j >= start[:, 1:]) & (j < start[:, 1:] + k[1])
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep.unsqueeze(1).to(x.dtype)


class DiffAugment:
    """A policy's transforms: :meth:`draw` the per-sample parameters of a batch from
    torch's CPU generator, :meth:`apply` them (differentiable in the images); calling
    the object does both."""

    def __init__(self, policy: str | tuple[str, ...]):
        self.transforms = parse_policy(policy) if isinstance(policy, str) else tuple(policy)

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.transforms) or 'none'})"

    def draw(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The parameters of ``n`` images of ``height`` x ``width`` pixels, in the
        order of the policy."""
        params = {}
        for name in self.transforms:
            if name == "color":
                for key in ("brightness", "saturation", "contrast"):
                    params[key] = torch.rand(n, generator=generator)
            elif name == "translation":
                reach = [int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)]
                params["shift"] = torch.stack([torch.randint(-r, r + 1, (n,), generator=generator)
                                               for r in reach], dim=1)
            else:
                ends = [height + 1 - cutout_size(height) % 2, width + 1 - cutout_size(width) % 2]
                params["cutout"] = torch.stack([torch.randint(0, e, (n,), generator=generator) for e in ends], dim=1)
        return params

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """``x`` (``(N, C, H, W)``) transformed by ``params`` in the policy's order."""
        for name in self.transforms:
            if name == "color":
                x = brightness(x, params["brightness"].to(x.device, x.dtype))
                x = saturation(x, params["saturation"].to(x.device, x.dtype))
                x = contrast(x, params["contrast"].to(x.device, x.dtype))
            elif name == "translation":
                x = translation(x, params["shift"])
            else:
                x = cutout(x, params["cutout"])
        return x

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(x, self.draw(x.shape[0], x.shape[2], x.shape[3], generator)) if self else x
