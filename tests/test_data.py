"""The data sets: the toy code's constants, shapes, ranges, determinism, user data."""
import math
import warnings

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


def test_uint8_and_integer_arrays_are_scaled_from_0_255_to_unit_range(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (6, 3, 8, 8)).astype(np.uint8)
    pixels[0, 0, 0, :2] = (0, 255)
    np.save(tmp_path / "u8.npy", pixels)
    np.save(tmp_path / "i64.npy", pixels.astype(np.int64))
    for name in ("u8.npy", "i64.npy"):
        ds = data.load(str(tmp_path / name))
        assert ds.shape == (3, 8, 8) and ds.data.dtype == torch.float32
        assert ds.data[0, 0, 0, 0] == -1 and ds.data[0, 0, 0, 1] == 1
        assert torch.allclose(ds.data, torch.from_numpy(pixels).float() / 127.5 - 1, rtol=0, atol=1e-6)
    np.save(tmp_path / "wide.npy", np.full((4, 1, 8, 8), 1000, dtype=np.int16))
    with pytest.raises(ValueError, match=r"wide.npy: integer values are read as 0..255 pixels .* span \[1000, 1000\]"):
        data.load(str(tmp_path / "wide.npy"))
    # from Python too: a uint8 tensor or array
    t = data.from_user(torch.from_numpy(pixels))
    assert torch.equal(t.data, data.load(str(tmp_path / "u8.npy")).data)


def test_hwc_images_are_transposed_and_said_once(tmp_path):
    nchw = np.random.default_rng(2).uniform(-1, 1, (5, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "hwc.npy", nchw.transpose(0, 2, 3, 1))
    with pytest.warns(data.DataWarning, match=r"hwc.npy: read as \(N, H, W, C\) = \(5, 8, 8, 3\)") as said:
        ds = data.load(str(tmp_path / "hwc.npy"))
    assert len(said) == 1 and ds.shape == (3, 8, 8) and torch.equal(ds.data, torch.from_numpy(nchw))
    gray = (nchw[:, :1] * 127.5 + 127.5).round().astype(np.uint8)
    np.save(tmp_path / "gray.npy", gray.transpose(0, 2, 3, 1))  # (N, H, W, 1) uint8
    with pytest.warns(data.DataWarning, match="transposed"):
        assert data.load(str(tmp_path / "gray.npy")).shape == (1, 8, 8)
    with warnings.catch_warnings():  # (N, C, H, W) is read as it is, without a word
        warnings.simplefilter("error")
        np.save(tmp_path / "nchw.npy", nchw)
        assert torch.equal(data.load(str(tmp_path / "nchw.npy")).data, torch.from_numpy(nchw))


def test_float_images_far_outside_unit_range_train_with_a_warning(tmp_path):
    images = np.random.default_rng(3).uniform(0, 255, (4, 1, 8, 8)).astype(np.float32)
    images[0, 0, 0, 0] = 0.0
    np.save(tmp_path / "raw.npy", images)
    with pytest.warns(data.DataWarning, match=r"raw.npy: image values span \[0, .*x / 127.5 - 1") as said:
        ds = data.load(str(tmp_path / "raw.npy"))
    assert len(said) == 1 and torch.equal(ds.data, torch.from_numpy(images))  # used as they are
    with warnings.catch_warnings():  # within 1.5, and points of any scale: no word
        warnings.simplefilter("error")
        np.save(tmp_path / "near.npy", np.full((4, 1, 8, 8), 1.4, dtype=np.float32))
        data.load(str(tmp_path / "near.npy"))
        np.save(tmp_path / "points.npy", np.full((4, 2), 100.0, dtype=np.float32))
        data.load(str(tmp_path / "points.npy"))


def test_a_uint8_image_array_trains_on_unit_range_samples(tmp_path):
    """`fastgan train --data images.npy` with uint8 pixels: the critic sees [-1, 1]."""
    from fastgan.trainer import TrainConfig, Trainer

    pixels = np.random.default_rng(4).integers(0, 256, (32, 3, 8, 8)).astype(np.uint8)
    np.save(tmp_path / "images.npy", pixels)
    trainer = Trainer(TrainConfig(data=str(tmp_path / "images.npy"), steps=1, batch=8, width=8, progress=False,
                                  out=str(tmp_path / "run")))
    real = trainer.sample_real(8)
    assert real.min() >= -1 and real.max() <= 1 and real.dtype == torch.float32
