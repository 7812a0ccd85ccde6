"""A run's evaluation: the metrics of its generated samples against the data, drawn
from an RNG of their own (seeded by the run's seed) so that evaluating never changes
the training stream, and the models some metrics need (the digits classifier, the
image features)."""
from __future__ import annotations

import os
from typing import Callable

import torch

from fastgan import conditional, image_metrics, metrics
from fastgan.config import ConfigError, TrainConfig

#: The evaluation RNG's seed is the run's seed plus this.
SEED_OFFSET = 1_000_003


class Evaluation:
    """The metrics of a run with settings ``cfg`` on ``data``: W1 always, the modes'
    statistics for the toy sets that have modes, the digits classifier's statistics for
    the digits, and FID, KID and precision/recall for images where their features are
    here. A conditional run's samples take each class in turn; on the digits (and
    digits32, pooled to 8x8) ``class_agreement`` is the share of them the digits
    classifier assigns to the class asked for. ``metric_models=False`` (the ranks that do not evaluate) loads no model."""

    def __init__(self, cfg: TrainConfig, data, device: torch.device, metric_models: bool = True,
                 num_classes: int = 0):
        self.cfg, self.data, self.num_classes = cfg, data, num_classes
        self.classifier = metrics.digit_classifier() if cfg.data == "digits" and metric_models else None
        # a conditional run's class agreement: on the digits, and on digits32 pooled to 8x8
        self.label_classifier = self.classifier or (
            metrics.digit_classifier() if cfg.data == "digits32" and num_classes and metric_models else None)
        self.features = self._image_features(device) if data.is_image and metric_models else None

    def _image_features(self, device: torch.device) -> image_metrics.Features | None:
        """The digits classifier's features for the digits, Inception-v3's for other
        images when its weights are here (else None, said once)."""
        if self.classifier is not None:
            return image_metrics.digit_features(self.classifier)
        if self.cfg.inception_weights and not os.path.isfile(self.cfg.inception_weights):
            raise ConfigError("inception_weights", f"is not a file: {self.cfg.inception_weights}")
        weights = image_metrics.inception_weights(self.cfg.inception_weights)
        if weights is None:
            print("fastgan: no FID, KID or precision/recall: torch-fidelity's Inception-v3 weights are not at "
                  f"{os.path.join(torch.hub.get_dir(), 'checkpoints', image_metrics.INCEPTION_FILE)} "
                  "(--inception-weights PATH; nothing is downloaded)")
            return None
        return image_metrics.inception_features(weights, device)

    def run(self, sample: Callable[[int, torch.Generator], torch.Tensor]) -> dict:
        """The metrics on ``eval_samples`` samples; ``sample(n, generator)`` draws ``n``
        generated samples on the CPU from the RNG ``generator`` (a conditional run's of
        the classes :func:`fastgan.conditional.balanced_labels`)."""
        gen = torch.Generator().manual_seed(self.cfg.seed + SEED_OFFSET)
        real = self.data.sample(self.cfg.eval_samples, gen)
        fake = sample(self.cfg.eval_samples, gen)
        result = {"w1": metrics.w1(fake, real)}
        if self.data.centers is not None:
            result.update(metrics.mode_stats(fake, self.data.centers, self.data.std))
        if self.classifier is not None:
            result.update(metrics.digit_stats(fake, self.classifier))
        if self.num_classes and self.label_classifier is not None:
            asked = conditional.balanced_labels(len(fake), self.num_classes)
            result["class_agreement"] = metrics.class_agreement(fake, asked, self.label_classifier)
        if self.features is not None:
            result.update(image_metrics.image_stats(fake, real, self.features, self.cfg.seed),
                          features=self.features.name)
        return result
