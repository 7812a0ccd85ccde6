"""FID, KID, precision/recall and the Inception Score of generated images, by
torch-fidelity's formulas (``fid_statistics_to_metric``, ``kid_features_to_metric``,
``prc_features_to_metric``, ``isc_features_to_metric``) on the features and class
logits of an extractor named with every number:

* ``digits-classifier``: the 128 hidden features and the 10 class logits of the shipped
  8x8 digits classifier (:func:`fastgan.metrics.digit_classifier`), for the digits:
  "FID on digits-classifier features", "IS on digits-classifier logits", not
  comparable with published numbers;
* ``inception-v3``: the 2048 pool features and the 1008 unbiased logits of
  torch-fidelity's Inception-v3, for other images, when its weights are on this
  machine (a path given, or torch.hub's cache).
  Nothing is downloaded: without the weights these metrics are skipped, and the
  trainer says so once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor

#: The file torch-fidelity loads its Inception-v3 weights from (in torch.hub's cache).
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


@dataclass
class Features:
    """A feature extractor: ``name`` for the log, ``extract(images)`` -> ((N, d) features,
    (N, classes) logits or None), float64 on the CPU, for images in [-1, 1] of shape
    (N, C, H, W), from one pass of the network."""

    name: str
    extract: Callable[[Tensor], tuple[Tensor, Tensor | None]]


def digit_features(classifier) -> Features:
    """The digits classifier's hidden layer (its last ReLU's output) and its logits."""
    body, head = classifier.net[:-1], classifier.net[-1]

    def extract(images):
        with torch.no_grad():
            hidden = body(images.detach().float().cpu().reshape(-1, 1, 8, 8))
            return hidden.double(), head(hidden).double()
    return Features("digits-classifier", extract)


def inception_weights(path: str | None = None) -> str | None:
    """The Inception-v3 weights to use: ``path`` if given, else torch.hub's cached
    copy if there is one, else None."""
    if path:
        return path
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)
    return cached if os.path.isfile(cached) else None


def inception_features(weights: str, device: torch.device, batch: int = 100) -> Features:
    """torch-fidelity's Inception-v3 pool features (2048) and unbiased logits (1008, the
    ones its Inception Score reads), from the local ``weights``; gray images are
    repeated to 3 channels, all are resized to 299 x 299 inside."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=weights)
    net = net.to(device).eval()

    def extract(images):
        pools, logits = [], []
        for chunk in images.split(batch):
            x = ((chunk.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            with torch.no_grad():
                pool, logit = net(x.to(device))
            pools.append(pool.double().cpu())
            logits.append(logit.double().cpu())
        return torch.cat(pools), torch.cat(logits)
    return Features("inception-v3", extract)


def image_stats(fake: Tensor, real: Tensor, features: Features, seed: int = 0) -> dict[str, float]:
    """``fid``, ``kid`` (its mean over 100 subsets of up to 1000 samples, seeded),
    ``precision`` and ``recall`` (3 nearest neighbours, Kynkaanniemi et al. 2019) of
    ``fake`` against ``real`` on ``features``; with class logits also ``is`` and
    ``is_std`` of ``fake`` (:func:`inception_score`)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    (f_fake, logits), (f_real, _) = features.extract(fake), features.extract(real)
    fid = fid_statistics_to_metric(fid_features_to_statistics(f_fake), fid_features_to_statistics(f_real),
                                   verbose=False)[KEY_METRIC_FID]
    kid = kid_features_to_metric(f_fake, f_real, kid_subset_size=min(1000, len(f_fake), len(f_real)),
                                 rng_seed=seed, verbose=False)[KEY_METRIC_KID_MEAN]
    prc = prc_features_to_metric(f_fake, f_real, verbose=False)
    stats = {"fid": fid, "kid": kid, "precision": prc[KEY_METRIC_PRECISION], "recall": prc[KEY_METRIC_RECALL]}
    if logits is not None:
        stats["is"], stats["is_std"] = inception_score(logits, seed=seed)
    return stats


def inception_score(logits: Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """The Inception Score of samples with class ``logits`` (N, classes), mean and
    standard deviation over ``splits`` splits of the samples shuffled by ``seed``:
    torch-fidelity's ``isc_features_to_metric``, ``exp(E_x KL(p(y|x) || p(y)))``
    (Salimans et al. 2016)."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    out = isc_features_to_metric(logits, splits=min(splits, len(logits)), shuffle=True, rng_seed=seed)
    return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]
