"""Data sets, generated or shipped (no downloads), each sampled with a torch.Generator so
that a run's data stream is part of its checkpointed RNG state.

* ``8gaussians``, ``25gaussians``, ``swissroll``: the WGAN-GP reference toy code's sets,
  with its constants;
* ``parallel-lines``: the seed papers' example, real samples ``(0, U[0, 1])``;
* ``digits``: scikit-learn's 8x8 handwritten digits, scaled to [-1, 1];
* a user's ``.npy`` / ``.npz`` array, or a folder of images.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

Tensor = torch.Tensor
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Dataset:
    """A distribution to sample from: ``sample(n, generator)`` returns ``(n, *shape)``
    float32 samples. Gaussian mixtures carry their ``centers`` and component ``std``
    (for the mode metrics); finite sets carry their ``data`` and, when known, ``labels``."""

    name: str
    shape: tuple[int, ...]
    _sample: object = field(repr=False)
    centers: Tensor | None = None
    std: float | None = None
    data: Tensor | None = field(default=None, repr=False)
    labels: Tensor | None = field(default=None, repr=False)

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        return self._sample(n, generator)


def _mixture(name: str, centers: Tensor, std: float, scale: float) -> Dataset:
    """Equal-weight Gaussians of ``std`` around ``centers``, the whole set divided by
    ``scale``."""
    def sample(n, generator):
        idx = torch.randint(0, len(centers), (n,), generator=generator)
        return (torch.randn(n, 2, generator=generator) * std + centers[idx]) / scale
    return Dataset(name, (2,), sample, centers=centers / scale, std=std / scale)


def eight_gaussians() -> Dataset:
    """Eight Gaussians of std 0.02 on a circle of radius 2, the whole set divided by 1.414."""
    s = 1.0 / math.sqrt(2.0)
    centers = 2.0 * torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    return _mixture("8gaussians", centers, 0.02, 1.414)


def twenty_five_gaussians() -> Dataset:
    """A 5x5 grid of Gaussians of std 0.05 at (2i, 2j), i, j in -2..2, divided by 2.828."""
    centers = torch.tensor([(2.0 * i, 2.0 * j) for i in range(-2, 3) for j in range(-2, 3)])
    return _mixture("25gaussians", centers, 0.05, 2.828)


def swiss_roll() -> Dataset:
    """scikit-learn's swiss roll (noise 0.25), its (x, z) plane, divided by 7.5."""
    def sample(n, generator):
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
        height = 21 * torch.rand(n, generator=generator)
        points = torch.stack([t * torch.cos(t), height, t * torch.sin(t)], dim=1)
        points = points + 0.25 * torch.randn(n, 3, generator=generator)
        return points[:, [0, 2]] / 7.5
    return Dataset("swissroll", (2,), sample)


def parallel_lines() -> Dataset:
    """Real samples ``(0, U[0, 1])``: the seeds' example of disjoint low-dimensional
    supports (a generator ``(theta, U[0, 1])`` has W1 = |theta|)."""
    def sample(n, generator):
        return torch.stack([torch.zeros(n), torch.rand(n, generator=generator)], dim=1)
    return Dataset("parallel-lines", (2,), sample)


def _finite(name: str, data: Tensor, labels: Tensor | None = None) -> Dataset:
    """Uniform sampling with replacement from a fixed float32 array."""
    def sample(n, generator):
        return data[torch.randint(0, len(data), (n,), generator=generator)]
    return Dataset(name, tuple(data.shape[1:]), sample, data=data, labels=labels)


def _to_unit_range(x: np.ndarray, low: float, high: float) -> Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float32) * (2.0 / (high - low)) - (high + low) / (high - low))


def digits() -> Dataset:
    """The 1,797 8x8 digits that scikit-learn ships (16 gray levels), as (1, 8, 8) images
    in [-1, 1], with their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = _to_unit_range(bunch.images, 0.0, 16.0).unsqueeze(1)
    return _finite("digits", images, torch.from_numpy(bunch.target).long())


def from_path(path: str) -> Dataset:
    """A user's data: an ``.npy`` array, an ``.npz`` archive (its only array, or the one
    named ``x``), or a folder of images (all the same size; gray or RGB). Image values in
    [0, 255] (or [0, 1] for float PNGs) are scaled to [-1, 1]; arrays are used as they
    are, (N, D) for points or (N, C, H, W) for images."""
    if os.path.isdir(path):
        return _finite(os.path.basename(os.path.normpath(path)), _read_images(path))
    if path.endswith(".npz"):
        with np.load(path) as archive:
            keys = list(archive.keys())
            if "x" not in keys and len(keys) != 1:
                raise ValueError(f"{path} holds arrays {keys}; name the data 'x' or keep one array")
            array = archive["x" if "x" in keys else keys[0]]
    elif path.endswith(".npy"):
        array = np.load(path)
    else:
        raise ValueError(f"{path}: expected a .npy or .npz file or a folder of images")
    if array.ndim not in (2, 4) or len(array) == 0:
        raise ValueError(f"{path}: expected a non-empty (N, D) or (N, C, H, W) array, got shape {array.shape}")
    data = torch.from_numpy(np.asarray(array, dtype=np.float32))
    if not torch.isfinite(data).all():
        raise ValueError(f"{path} contains NaN or infinite values")
    return _finite(os.path.splitext(os.path.basename(path))[0], data)


def _read_images(folder: str) -> Tensor:
    import matplotlib.image as mpimg

    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for f in files:
        image = np.asarray(mpimg.imread(os.path.join(folder, f)))
        high = 1.0 if image.dtype.kind == "f" else 255.0
        image = image[..., :3] if image.ndim == 3 else image[..., None]  # drop alpha; gray gets a channel
        images.append(_to_unit_range(image, 0.0, high).permute(2, 0, 1))
    if len({tuple(i.shape) for i in images}) != 1:
        raise ValueError(f"the images in {folder} differ in size or channels")
    return torch.stack(images)


DATASETS = {"8gaussians": eight_gaussians, "25gaussians": twenty_five_gaussians, "swissroll": swiss_roll,
            "parallel-lines": parallel_lines, "digits": digits}


def load(name: str) -> Dataset:
    """A data set by name (see ``DATASETS``) or by path (``.npy``, ``.npz``, a folder)."""
    if name in DATASETS:
        return DATASETS[name]()
    if os.path.exists(name):
        return from_path(name)
    raise ValueError(f"unknown data set {name!r}: expected one of {', '.join(DATASETS)} "
                     "or the path of a .npy/.npz file or a folder of images")
