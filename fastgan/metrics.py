"""Metrics of the distances the theory talks about, on generated samples:

* ``w1``: the exact Wasserstein-1 (Earth-Mover) distance between two equal-weight
  point clouds, by linear programming (POT's ``ot.emd2``), the quantity a WGAN critic
  estimates;
* ``mode_stats``: for Gaussian mixtures, the modes covered and the share of
  high-quality samples (within 3 std of a centre);
* ``digit_stats``: for the 8x8 digits, the classes covered and the KL divergence of the
  class histogram from uniform, from a small classifier trained once and cached.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

Tensor = torch.Tensor


def w1(x: Tensor, y: Tensor) -> float:
    """Exact W1 between the empirical distributions of ``x`` and ``y`` (samples along
    dim 0, flattened), with the Euclidean ground cost, in float64."""
    import ot

    a = x.detach().reshape(len(x), -1).double().cpu()
    b = y.detach().reshape(len(y), -1).double().cpu()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"samples of different dimension: {a.shape[1]} and {b.shape[1]}")
    # differences, not the |a|^2 + |b|^2 - 2ab expansion, whose cancellation is ~1e-8
    cost = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").numpy()
    return float(ot.emd2(np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b)), cost,
                         numItermax=10_000_000))


def covered(counts: Tensor, n: int, min_share: float = 0.2) -> int:
    """How many of the ``len(counts)`` bins hold at least ``min_share`` of the uniform
    expectation ``n / len(counts)``."""
    return int((counts >= max(1.0, min_share * n / len(counts))).sum())


def mode_stats(samples: Tensor, centers: Tensor, std: float) -> dict[str, float]:
    """``high_quality``: the share of samples within 3 std of their nearest centre;
    ``modes``: the centres that hold at least a fifth of the uniform share of
    high-quality samples (of ``len(centers)``)."""
    d = torch.cdist(samples.detach().double().cpu(), centers.double())
    dist, nearest = d.min(dim=1)
    good = dist <= 3.0 * std
    counts = torch.bincount(nearest[good], minlength=len(centers))
    return {"modes": covered(counts, len(samples)), "high_quality": float(good.double().mean())}


class DigitClassifier(nn.Module):
    """A small MLP on 8x8 digits in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


CLASSIFIER_VERSION = 1


def _cache_dir() -> str:
    return os.environ.get("FASTGAN_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "fastgan"))


def digit_classifier() -> DigitClassifier:
    """The digits classifier, trained once (on all 1,797 digits, fixed seed, about a
    second) and cached under ``$FASTGAN_CACHE`` (default ``~/.cache/fastgan``)."""
    path = os.path.join(_cache_dir(), f"digit_classifier_v{CLASSIFIER_VERSION}.pt")
    model = DigitClassifier()
    if os.path.exists(path):
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
            return model.eval()
        except (RuntimeError, OSError, EOFError):
            pass  # a corrupt cache: train again
    from fastgan.data import digits

    data = digits()
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):  # epochs of minibatches of 128
        order = torch.randperm(len(data.data), generator=generator)
        for idx in order.split(128):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(data.data[idx]), data.labels[idx]).backward()
            opt.step()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model.eval()


def class_agreement(images: Tensor, classes: Tensor, classifier: DigitClassifier | None = None) -> float:
    """The share of the generated digits ``images`` that the digits classifier assigns
    to the class each was generated for (``classes``): a conditional generator's
    fidelity to its labels (0.1 by chance). Images of ``8k x 8k`` pixels (``digits32``)
    are mean-pooled to 8x8 first (the classifier finds 99.6% of the real digits32 so)."""
    classifier = classifier or digit_classifier()
    images = images.detach().float().cpu()
    if images.shape[-1] != 8:
        images = torch.nn.functional.avg_pool2d(images, images.shape[-1] // 8)
    with torch.no_grad():
        predicted = classifier(images.reshape(-1, 1, 8, 8)).argmax(dim=1)
    return float((predicted == classes.cpu()).double().mean())


def digit_stats(images: Tensor, classifier: DigitClassifier | None = None) -> dict[str, float]:
    """``classes``: the digits predicted for at least a fifth of the uniform share of
    ``images`` (of 10); ``class_kl``: KL(class histogram || uniform) in nats (0 for
    perfectly balanced classes, log 10 = 2.30 for a single class)."""
    classifier = classifier or digit_classifier()
    with torch.no_grad():
        predicted = classifier(images.detach().float().cpu().reshape(-1, 1, 8, 8)).argmax(dim=1)
    counts = torch.bincount(predicted, minlength=10).double()
    p = counts / counts.sum()
    kl = float((p[p > 0] * torch.log(p[p > 0] * 10)).sum())
    return {"classes": covered(counts, len(images)), "class_kl": kl}
