"""FID, KID and precision/recall on digits-classifier features and the Inception Score on
its logits: the trainer's logged values against torchmetrics called directly on the
same images, features and logits, and precision/recall against the definition by hand."""
import json
import os

import pytest
import torch
from torch import nn

from fastgan import image_metrics, metrics
from fastgan.cli import main
from fastgan.trainer import TrainConfig, Trainer


@pytest.fixture
def trained(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    cfg = TrainConfig(data="digits", steps=2, batch=16, n_critic=1, width=8, latent_dim=8, eval_every=1,
                      eval_samples=200, progress=False, out=str(tmp_path / "run"))
    trainer = Trainer(cfg)
    trainer.run()
    return trainer


class Body(nn.Module):
    """The classifier's hidden layer as torchmetrics' custom feature extractor."""

    def __init__(self, classifier):
        super().__init__()
        self.body = classifier.net[:-1].double()
        self.num_features = 128

    def forward(self, x):
        return self.body(x.double())


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")
def test_logged_fid_and_kid_equal_torchmetrics_on_the_same_features(trained):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    with open(os.path.join(trained.cfg.out, "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f][-1]
    assert last["features"] == "digits-classifier" and last["step"] == 2
    gen = torch.Generator().manual_seed(trained.cfg.seed + 1_000_003)  # the evaluation's own stream
    real = trained.data.sample(200, gen)
    fake = trained.sample(200, gen)
    body = Body(metrics.digit_classifier())
    fid = FrechetInceptionDistance(feature=body)
    kid = KernelInceptionDistance(feature=body, subsets=3, subset_size=200)  # all 200: no subset randomness
    for m in (fid, kid):
        m.update(real, real=True)
        m.update(fake, real=False)
    assert last["fid"] == pytest.approx(float(fid.compute()), rel=1e-6)
    assert last["kid"] == pytest.approx(float(kid.compute()[0]), rel=1e-6)


def test_precision_and_recall_follow_their_definition():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(60, 5, generator=g, dtype=torch.float64)
    fake = torch.randn(50, 5, generator=g, dtype=torch.float64) * 1.5 + 0.3
    ident = image_metrics.Features("identity", lambda x: (x.double(), None))
    stats = image_metrics.image_stats(fake, real, ident)

    def radius(x):  # the distance to the 3rd nearest other sample
        return torch.cdist(x, x).kthvalue(4, dim=1).values

    inside = lambda a, b: (torch.cdist(a, b) <= radius(b)[None, :]).any(dim=1).double().mean()  # noqa: E731
    assert stats["precision"] == pytest.approx(float(inside(fake, real)))
    assert stats["recall"] == pytest.approx(float(inside(real, fake)))
    assert image_metrics.image_stats(real, real, ident)["fid"] == pytest.approx(0.0, abs=1e-6)


def test_without_inception_weights_the_metrics_are_skipped_with_a_message(tmp_path, monkeypatch, capsys):
    import numpy as np

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty hub cache
    images = tmp_path / "images.npy"
    np.save(images, np.random.default_rng(0).uniform(-1, 1, (40, 3, 8, 8)).astype(np.float32))
    trainer = Trainer(TrainConfig(data=str(images), steps=1, batch=8, n_critic=1, width=8, latent_dim=8,
                                  eval_samples=20, progress=False, out=str(tmp_path / "run")))
    assert "no FID, KID or precision/recall: torch-fidelity's Inception-v3 weights are not at" in capsys.readouterr().out
    assert "fid" not in trainer.run()["last"]
    assert main(["train", "--data", str(images), "--inception-weights", str(tmp_path / "none.pth"),
                 "--out", str(tmp_path / "r2")]) == 2
    assert "--inception-weights is not a file" in capsys.readouterr().err


class Logits(nn.Module):
    """Logits handed to torchmetrics as its feature extractor's output."""

    def forward(self, x):
        return x


@pytest.mark.filterwarnings(r"ignore:std\(\)")  # (torchmetrics' std of one split)
@pytest.mark.filterwarnings("ignore:Metric `InceptionScore` will save all extracted features")
def test_the_inception_score_is_torchmetrics_on_the_same_logits():
    from torchmetrics.image.inception import InceptionScore

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 10, generator=g, dtype=torch.float64) * 3
    ours, std = image_metrics.inception_score(logits, splits=1)
    theirs = InceptionScore(feature=Logits(), splits=1)  # one split: no shuffle to match
    theirs.update(logits)
    assert ours == pytest.approx(float(theirs.compute()[0]), rel=1e-6) and std == 0.0
    uniform = image_metrics.inception_score(torch.zeros(50, 10, dtype=torch.float64))[0]
    assert uniform == pytest.approx(1.0)  # no class preferred: IS 1
    confident = image_metrics.inception_score(torch.eye(10, dtype=torch.float64).repeat(20, 1) * 50, splits=1)[0]
    assert confident == pytest.approx(10.0, rel=1e-6)  # each class sure and all equally often: IS = classes


def test_the_logged_inception_score_is_on_the_digits_classifiers_logits(trained):
    with open(os.path.join(trained.cfg.out, "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f][-1]
    gen = torch.Generator().manual_seed(trained.cfg.seed + 1_000_003)  # the evaluation's own stream
    trained.data.sample(200, gen)
    fake = trained.sample(200, gen)
    logits = metrics.digit_classifier()(fake.float().reshape(-1, 1, 8, 8)).double()
    assert (last["is"], last["is_std"]) == pytest.approx(image_metrics.inception_score(logits, seed=trained.cfg.seed))
