"""The data sets: the toy code's constants, shapes, ranges, determinism, user data."""
import math

import numpy as np
import pytest
import torch

from fastgan import data


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name,shape", [("8gaussians", (2,)), ("25gaussians", (2,)), ("swissroll", (2,)),
                                        ("parallel-lines", (2,)), ("digits", (1, 8, 8))])
def test_named_sets_sample_their_shape_deterministically(name, shape):
    ds = data.load(name)
    x = ds.sample(300, gen())
    assert x.shape == (300, *shape) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(x, ds.sample(300, gen()))
    assert not torch.equal(x, ds.sample(300, gen(1)))


@pytest.mark.parametrize("name,radius,std,scale,modes", [("8gaussians", 2.0, 0.02, 1.414, 8),
                                                         ("25gaussians", None, 0.05, 2.828, 25)])
def test_mixtures_use_the_reference_constants(name, radius, std, scale, modes):
    ds = data.load(name)
    assert len(ds.centers) == modes and ds.std == pytest.approx(std / scale)
    if radius:
        assert torch.allclose(ds.centers.norm(dim=1), torch.full((8,), radius / scale))
    else:
        assert sorted(set(ds.centers[:, 0].tolist())) == pytest.approx([2 * i / scale for i in range(-2, 3)])
    x = ds.sample(20000, gen())
    nearest = torch.cdist(x, ds.centers).min(dim=1)
    assert (nearest.values.std() / ds.std) == pytest.approx(math.sqrt(2 - math.pi / 2), rel=0.05)  # Rayleigh
    counts = torch.bincount(nearest.indices, minlength=modes).float()
    assert counts.min() > 0.8 * 20000 / modes


def test_swissroll_and_parallel_lines_ranges():
    roll = data.load("swissroll").sample(5000, gen())
    assert roll.abs().max() < 2.2 and roll.std(0).min() > 0.8  # ~unit scale after / 7.5
    lines = data.load("parallel-lines").sample(1000, gen())
    assert torch.equal(lines[:, 0], torch.zeros(1000))
    assert 0 <= lines[:, 1].min() and lines[:, 1].max() < 1 and abs(lines[:, 1].mean() - 0.5) < 0.05


def test_digits_are_scaled_to_unit_range_with_labels():
    ds = data.load("digits")
    assert ds.data.shape == (1797, 1, 8, 8) and ds.labels.shape == (1797,)
    assert ds.data.min() == -1 and ds.data.max() == 1
    assert set(ds.labels.tolist()) == set(range(10))


def test_user_arrays_and_image_folders(tmp_path):
    points = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.save(tmp_path / "p.npy", points)
    np.savez(tmp_path / "p.npz", x=points, y=points[:, :1])
    for path in ("p.npy", "p.npz"):
        ds = data.load(str(tmp_path / path))
        assert ds.shape == (3,) and torch.equal(ds.data, torch.from_numpy(points))
    import matplotlib.image as mpimg
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        mpimg.imsave(folder / f"{i}.png", np.full((8, 8, 3), i / 2.0))
    ds = data.load(str(folder))
    assert ds.shape == (3, 8, 8) and ds.data[0].max() == -1 and ds.data[2].min() == 1


@pytest.mark.parametrize("make,match", [
    (lambda p: "nosuch", "unknown data set 'nosuch'"),
    (lambda p: np.save(p / "a.npy", np.zeros((4, 2, 3))) or str(p / "a.npy"), r"\(N, D\) or \(N, C, H, W\)"),
    (lambda p: np.save(p / "b.npy", np.array([[0.0, np.nan]])) or str(p / "b.npy"), "NaN"),
    (lambda p: np.savez(p / "c.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2))) or str(p / "c.npz"), "name the data 'x'"),
    (lambda p: (p / "empty").mkdir() or str(p / "empty"), "holds no images"),
])
def test_bad_user_data_is_named(tmp_path, make, match):
    with pytest.raises(ValueError, match=match):
        data.load(make(tmp_path))
