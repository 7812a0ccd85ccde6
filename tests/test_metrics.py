"""Metrics on distributions with known answers."""
import math

import pytest
import torch

from fastgan import data, metrics


def test_w1_of_a_translated_cloud_is_the_shift():
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.tensor([0.3, -0.4], dtype=torch.float64)
    assert metrics.w1(x, x + shift) == pytest.approx(0.5, abs=1e-9)
    assert metrics.w1(x, x) == pytest.approx(0.0, abs=1e-12)


def test_w1_in_one_dimension_matches_sorted_samples():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 1, generator=g, dtype=torch.float64)
    y = 2 * torch.rand(200, 1, generator=g, dtype=torch.float64)
    expected = (x.sort(0).values - y.sort(0).values).abs().mean().item()
    assert metrics.w1(x, y) == pytest.approx(expected, rel=1e-9)


def test_w1_of_the_parallel_lines_is_the_offset():
    # The seeds' example: W1((0, U), (theta, U)) = |theta|, estimated from samples.
    real = data.load("parallel-lines").sample(400, torch.Generator().manual_seed(2)).double()
    fake = real + torch.tensor([0.7, 0.0], dtype=torch.float64)
    assert metrics.w1(fake, real) == pytest.approx(0.7, abs=1e-9)


def test_mode_stats_count_modes_and_quality():
    ds = data.load("8gaussians")
    at_six = ds.centers[torch.arange(600) % 6]  # exactly on 6 of the 8 centres
    assert metrics.mode_stats(at_six, ds.centers, ds.std) == {"modes": 6, "high_quality": 1.0}
    off = at_six + torch.tensor([4 * ds.std, 0.0])  # beyond 3 std of any centre
    assert metrics.mode_stats(off, ds.centers, ds.std) == {"modes": 0, "high_quality": 0.0}
    real = ds.sample(4000, torch.Generator().manual_seed(3))
    stats = metrics.mode_stats(real, ds.centers, ds.std)
    assert stats["modes"] == 8 and stats["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)


def test_digit_stats_on_real_digits_and_on_one_class(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path))
    ds = data.load("digits")
    classifier = metrics.digit_classifier()
    assert (tmp_path / f"digit_classifier_v{metrics.CLASSIFIER_VERSION}.pt").exists()
    assert (classifier(ds.data).argmax(1) == ds.labels).float().mean() > 0.97
    stats = metrics.digit_stats(ds.data, classifier)
    assert stats["classes"] == 10 and stats["class_kl"] < 0.01
    sevens = ds.data[ds.labels == 7]
    stats = metrics.digit_stats(sevens, classifier)
    assert stats["classes"] == 1 and stats["class_kl"] == pytest.approx(math.log(10), abs=0.05)
    # the cached copy is what a second call loads
    again = metrics.digit_classifier()
    assert all(torch.equal(a, b) for a, b in zip(classifier.state_dict().values(), again.state_dict().values()))
