"""Data sets, generated or shipped (no downloads), each sampled with a torch.Generator so
that a run's data stream is part of its checkpointed RNG state.

* ``8gaussians``, ``25gaussians``, ``swissroll``: the WGAN-GP reference toy code's sets,
  with its constants;
* ``parallel-lines``: the seed papers' example, real samples ``(0, U[0, 1])``;
* ``digits``: scikit-learn's 8x8 handwritten digits, scaled to [-1, 1];
* ``digits32``: the same digits upsampled bilinearly to 32x32 (1024 dimensions, the
  same low intrinsic dimension);
* a user's ``.npy`` / ``.npz`` array, or a folder of images;
* from Python, a user's tensor, array, map-style ``torch.utils.data.Dataset`` or the
  dataset of a ``DataLoader`` (:func:`from_user`).
"""
from __future__ import annotations

import functools
import math
import os
import warnings
import zipfile
from dataclasses import dataclass, field

import numpy as np
import torch

from fastgan._checks import FastganWarning

Tensor = torch.Tensor
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Dataset:
    """A distribution to sample from: ``sample(n, generator)`` returns ``(n, *shape)``
    float32 samples. Gaussian mixtures carry their ``centers`` and component ``std``
    (for the mode metrics); finite sets carry their ``data`` and, when known, ``labels``.
    Labelled sets (``num_classes``) also draw ``(samples, classes)`` pairs with
    :meth:`sample_labeled`, by the same draws as :meth:`sample`."""

    name: str
    shape: tuple[int, ...]
    _sample: object = field(repr=False)
    centers: Tensor | None = None
    std: float | None = None
    data: Tensor | None = field(default=None, repr=False)
    labels: Tensor | None = field(default=None, repr=False)
    _sample_labeled: object = field(default=None, repr=False)
    _count_classes: object = field(default=None, repr=False)
    label_problem: str | None = None  # why labels that came with the data cannot be used

    @functools.cached_property
    def num_classes(self) -> int | None:
        """The number of classes of a labelled set (counted on first use), else None."""
        return None if self._count_classes is None else self._count_classes()

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        return self._sample(n, generator)

    def sample_labeled(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` samples and their int64 classes."""
        if self._sample_labeled is None:
            raise ValueError(f"the data {self.name} have no labels")
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        return self._sample_labeled(n, generator)


def checked_labels(labels, n: int, source: str) -> Tensor:
    """A data set's classes as int64: one integer >= 0 per sample; at least two classes."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.shape != (n,):
        raise ValueError(f"{source}: labels must be {n} integers, one per sample, got {labels.dtype} of shape "
                         f"{labels.shape}")
    if n and (labels.min() < 0 or labels.max() < 1):
        raise ValueError(f"{source}: labels must be classes 0..K-1 with K >= 2, got the range "
                         f"[{labels.min()}, {labels.max()}]")
    return torch.from_numpy(labels.astype(np.int64))


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
    """Uniform sampling with replacement from a fixed float32 array (and its labels)."""
    def sample(n, generator):
        return data[torch.randint(0, len(data), (n,), generator=generator)]

    def sample_labeled(n, generator):
        idx = torch.randint(0, len(data), (n,), generator=generator)
        return data[idx], labels[idx]
    if labels is None:
        return Dataset(name, tuple(data.shape[1:]), sample, data=data)
    return Dataset(name, tuple(data.shape[1:]), sample, data=data, labels=labels, _sample_labeled=sample_labeled,
                   _count_classes=lambda: int(labels.max()) + 1)


def _to_unit_range(x: np.ndarray, low: float, high: float) -> Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float32) * (2.0 / (high - low)) - (high + low) / (high - low))


def digits() -> Dataset:
    """The 1,797 8x8 digits that scikit-learn ships (16 gray levels), as (1, 8, 8) images
    in [-1, 1], with their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = _to_unit_range(bunch.images, 0.0, 16.0).unsqueeze(1)
    return _finite("digits", images, torch.from_numpy(bunch.target).long())


def upsample(images: Tensor, size: int) -> Tensor:
    """``(N, C, H, W)`` images resized bilinearly to ``size`` x ``size`` (half-pixel
    centres, ``align_corners=False``): each output pixel is a convex combination of
    input pixels, so the range stays inside the input's."""
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def digits32() -> Dataset:
    """The digits (:func:`digits`) upsampled bilinearly to (1, 32, 32), with their labels."""
    small = digits()
    return _finite("digits32", upsample(small.data, 32), small.labels)


def from_path(path: str) -> Dataset:
    """A user's data: an ``.npy`` array, an ``.npz`` archive (its only array, or the one
    named ``x``, with its labels when it holds ``y``), or a folder of images (all the same
    size; gray or RGB), or of one sub-folder of images per class (the labels, in the
    sorted order of the sub-folders' names). Image values in
    [0, 255] (or [0, 1] for float PNGs) are scaled to [-1, 1]; arrays are read by
    :func:`samples_from_array` (integers scaled from [0, 255], ``(N, H, W, C)``
    transposed, a warning for floats far outside [-1, 1])."""
    if os.path.isdir(path):
        return _finite(os.path.basename(os.path.normpath(path)), *_read_folder(path))
    if not path.endswith((".npy", ".npz")):
        raise ValueError(f"{path}: expected a .npy or .npz file or a folder of images")
    try:
        array, labels = _read_array(path)
        if array.dtype.kind not in "iuf":
            raise ValueError(f"holds {array.dtype} values, not numbers")
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: cannot read the array ({exc})") from None
    samples = samples_from_array(array, path)
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        return _finite(name, samples, None if labels is None else checked_labels(labels, len(samples), f"{path}: y"))
    except ValueError as exc:  # a y that is not labels: an unconditional run does not read it
        dataset = _finite(name, samples)
        dataset.label_problem = str(exc)
        return dataset


class DataWarning(FastganWarning):
    """The data were read in a way worth a word: transposed, or out of the range the
    networks expect."""


#: Float images whose largest magnitude exceeds this train with a DataWarning.
RANGE_LIMIT = 1.5
CHANNELS = (1, 3, 4)


def samples_from_array(array: np.ndarray, source: str) -> Tensor:
    """The float32 samples of a user's array (or tensor), ``(N, D)`` points or
    ``(N, C, H, W)`` images; ``source`` names it in messages.

    * integers (``uint8`` pixels and any other integer type) must lie in [0, 255] and
      are scaled to [-1, 1], as image folders are;
    * ``(N, H, W, C)`` images, recognised by a last axis of 1, 3 or 4 entries where the
      second axis has another size, are transposed to ``(N, C, H, W)`` (said once);
    * floats are used as they are; images with values beyond +-1.5 (far outside the
      [-1, 1] of the image generator's tanh) train, with a :class:`DataWarning` that
      names their range and how to rescale them. Points may have any scale (their
      generator's output is linear)."""
    array = np.asarray(array)
    if array.ndim not in (2, 4) or len(array) == 0:
        raise ValueError(f"{source}: expected a non-empty (N, D) or (N, C, H, W) array, got shape {array.shape}")
    if array.dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(f"{source}: integer values are read as 0..255 pixels and scaled to [-1, 1], but they "
                             f"span [{low}, {high}]; save floats in the range you mean (e.g. [-1, 1])")
        array = array.astype(np.float32) / 127.5 - 1.0
    data = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if data.dim() == 4 and data.shape[3] in CHANNELS and data.shape[1] not in CHANNELS:
        warnings.warn(f"{source}: read as (N, H, W, C) = {tuple(data.shape)} and transposed to (N, C, H, W)",
                      DataWarning, stacklevel=2)
        data = data.permute(0, 3, 1, 2).contiguous()
    if not torch.isfinite(data).all():
        raise ValueError(f"{source} contains NaN or infinite values")
    low, high = float(data.min()), float(data.max())
    if data.dim() == 4 and max(-low, high) > RANGE_LIMIT:
        warnings.warn(f"{source}: image values span [{low:.4g}, {high:.4g}], far outside the [-1, 1] of the "
                      "generator's tanh; rescale them (x / 127.5 - 1 for 0..255 pixels, 2 * x - 1 for 0..1)",
                      DataWarning, stacklevel=2)
    return data


def _read_array(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The array of an .npy file, or of an .npz archive (its only one, or ``x``, and
    ``y`` when it is there); no pickled objects are loaded."""
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False), None
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.keys())
        if "x" not in keys and len(keys) != 1:
            raise ValueError(f"it holds arrays {keys}; name the data 'x' (and the labels 'y') or keep one array")
        return archive["x" if "x" in keys else keys[0]], (archive["y"] if "x" in keys and "y" in keys else None)


def _read_folder(folder: str) -> tuple[Tensor, Tensor | None]:
    """The images of a folder, or of its class sub-folders with their labels."""
    if any(f.lower().endswith(IMAGE_SUFFIXES) for f in os.listdir(folder)):
        return _read_images(folder), None
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if len(classes) < 2:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), nor two or more sub-folders of "
                         "images, one per class")
    per_class = [_read_images(os.path.join(folder, c)) for c in classes]
    sizes = {tuple(images.shape[1:]) for images in per_class}
    if len(sizes) != 1:
        raise ValueError(f"the images in the class folders of {folder} differ in size or channels: {sorted(sizes)}")
    labels = torch.cat([torch.full((len(images),), k, dtype=torch.int64) for k, images in enumerate(per_class)])
    return torch.cat(per_class), labels


def _read_images(folder: str) -> Tensor:
    import matplotlib.image as mpimg

    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for f in files:
        try:
            image = np.asarray(mpimg.imread(os.path.join(folder, f)))
        except (OSError, ValueError, SyntaxError) as exc:  # PIL raises all three for a bad file
            raise ValueError(f"{os.path.join(folder, f)}: cannot decode the image ({exc})") from None
        high = 1.0 if image.dtype.kind == "f" else 255.0
        image = image[..., :3] if image.ndim == 3 else image[..., None]  # drop alpha; gray gets a channel
        images.append(_to_unit_range(image, 0.0, high).permute(2, 0, 1))
    sizes = {tuple(i.shape) for i in images}
    if len(sizes) != 1:
        raise ValueError(f"the images in {folder} differ in size or channels: {sorted(sizes)}")
    return torch.stack(images)


def from_user(data) -> Dataset:
    """The data a user hands to :class:`fastgan.Trainer`: a tensor or array of samples,
    ``(N, D)`` points or ``(N, C, H, W)`` images, read as :func:`samples_from_array`
    reads arrays; a map-style
    ``torch.utils.data.Dataset`` whose items are samples or ``(sample, label, ...)``
    tuples (torchvision's form); or a ``DataLoader`` of such a dataset. A loader's
    dataset is sampled by the trainer itself (its batch size and its own seeded
    stream, so that a resumed run continues bit for bit); its sampler, batch size and
    ``collate_fn`` are not used. Iterable datasets cannot be sampled reproducibly and
    are refused."""
    from torch.utils.data import DataLoader, IterableDataset

    if isinstance(data, Tensor):
        data = (data.detach().float() if data.is_floating_point() else data.detach()).cpu().numpy()
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "iuf":
            raise ValueError(f"data: expected an array of numbers, got {data.dtype}")
        samples = samples_from_array(data, "data")
        return _finite(f"tensor {tuple(samples.shape)}", samples)
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, IterableDataset) or not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise TypeError(f"data must be a tensor, an array, a map-style Dataset or a DataLoader of one, got "
                        f"{type(data).__name__} (iterable datasets cannot be sampled reproducibly)")
    if len(data) == 0:
        raise ValueError(f"data: the {type(data).__name__} is empty")
    shape = tuple(_item(data, 0).shape)
    if len(shape) not in (1, 3):
        raise ValueError(f"data: {type(data).__name__} items must be (D,) points or (C, H, W) images, got {shape}")

    def sample(n, generator):
        return torch.stack([_item(data, int(i)) for i in torch.randint(0, len(data), (n,), generator=generator)])

    def sample_labeled(n, generator):
        idx = torch.randint(0, len(data), (n,), generator=generator)
        return torch.stack([_item(data, int(i)) for i in idx]), torch.stack([_label(data, int(i)) for i in idx])

    def count_classes():  # torchvision's targets, else every item's label read once
        targets = getattr(data, "targets", None)
        labels = targets if targets is not None else [int(_label(data, i)) for i in range(len(data))]
        return int(checked_labels(np.asarray(labels), len(data), f"data: the {type(data).__name__}'s").max()) + 1

    first = data[0]
    labeled = isinstance(first, (tuple, list)) and len(first) > 1
    return Dataset(f"{type(data).__name__} of {len(data)}", shape, sample,
                   _sample_labeled=sample_labeled if labeled else None,
                   _count_classes=count_classes if labeled else None)


def _label(dataset, index: int) -> Tensor:
    """The class of item ``index`` of a map-style dataset of ``(sample, label)`` items."""
    label = dataset[index][1]
    value = label.item() if isinstance(label, Tensor) and label.numel() == 1 else label
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"data: the label of item {index} of the {type(dataset).__name__} is {label!r}, not a class "
                        "number")
    return torch.tensor(int(value), dtype=torch.int64)


def _item(dataset, index: int) -> Tensor:
    """Sample ``index`` of a map-style dataset as a float32 tensor (the first element of
    a ``(sample, label)`` item)."""
    item = dataset[index]
    if isinstance(item, (tuple, list)):
        item = item[0]
    item = torch.as_tensor(np.asarray(item) if not isinstance(item, Tensor) else item)
    if not item.is_floating_point():
        raise TypeError(f"data: item {index} of the {type(dataset).__name__} is {item.dtype}, not floating "
                        "(convert images to floats in [-1, 1])")
    return item.float()


DATASETS = {"8gaussians": eight_gaussians, "25gaussians": twenty_five_gaussians, "swissroll": swiss_roll,
            "parallel-lines": parallel_lines, "digits": digits, "digits32": digits32}


def load(name: str) -> Dataset:
    """A data set by name (see ``DATASETS``) or by path (``.npy``, ``.npz``, a folder)."""
    if name in DATASETS:
        return DATASETS[name]()
    if os.path.exists(name):
        return from_path(name)
    raise ValueError(f"unknown data set {name!r}: expected one of {', '.join(DATASETS)} "
                     "or the path of a .npy/.npz file or a folder of images")
