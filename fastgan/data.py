"""Toy data sets, generated on the fly (no downloads)."""
from __future__ import annotations

import math

import torch


def eight_gaussians(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """``n`` points of the WGAN-GP toy code's ``8gaussians``: eight Gaussians of std
    0.02 on a circle of radius 2, the whole set divided by 1.414."""
    s = 1.0 / math.sqrt(2.0)
    centers = 2.0 * torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)],
                                 dtype=dtype)
    idx = torch.randint(0, 8, (n,), generator=generator)
    points = torch.randn(n, 2, generator=generator, dtype=dtype) * 0.02 + centers[idx]
    return points / 1.414
