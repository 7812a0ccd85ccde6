"""The Python API for training: a user's own networks and data through
``fastgan.Trainer``, as ``examples/train_own_gan.py`` shows, with checkpoints and a
bit-exact resume."""
import importlib.util
import os
import signal

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import fastgan
from fastgan.cli import main
from fastgan.ops import graph

from test_trainer import assert_same_run, signal_during_step

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "train_own_gan.py")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_own_gan", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config(out, **kw):
    return fastgan.TrainConfig(**{**dict(objective="wgan-gp", steps=4, batch=16, n_critic=2, latent_dim=32,
                                         eval_every=0, eval_samples=50, log_every=1, progress=False,
                                         out=str(out)), **kw})


def own(example, out, **kw):
    generator, critic = example.networks()
    return fastgan.Trainer(config(out, **kw), generator=generator, critic=critic, data=example.images())


def test_the_example_trains_your_conv_gan_and_resumes_bit_for_bit(example, tmp_path):
    whole = own(example, tmp_path / "a")
    summary = whole.run()
    assert summary["step"] == 4 and summary["last"]["w1"] > 0
    assert os.path.getsize(os.path.join(whole.cfg.out, "checkpoint.pt")) > 0
    first = own(example, tmp_path / "b")
    signal_during_step(first, 2)
    assert first.run()["interrupted"] == signal.SIGINT
    generator, critic = example.networks()
    resumed = fastgan.Trainer.resume(first.cfg.out, generator=generator, critic=critic, data=example.images())
    assert resumed.step == 2
    resumed.run()
    assert_same_run(whole, resumed)


def test_resuming_your_run_needs_your_networks_and_data(example, tmp_path):
    own(example, tmp_path, steps=1).run()
    with pytest.raises(fastgan.checkpoint.CheckpointError, match=r"generator=\.\.\., critic=\.\.\., data=\.\.\."):
        fastgan.Trainer.resume(str(tmp_path))
    generator, critic = example.networks()
    with pytest.raises(fastgan.checkpoint.CheckpointError, match="data: checkpoint 'tensor"):
        fastgan.Trainer.resume(str(tmp_path), generator=generator, critic=critic, data=example.images()[:100])


def test_the_cli_says_how_to_continue_a_run_of_your_networks(example, tmp_path, capsys):
    own(example, tmp_path, steps=1).run()
    assert main(["sample", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--out", str(tmp_path / "s.npy")]) == 2
    assert "continue it from Python with Trainer.resume(run_dir, generator=" in capsys.readouterr().err


@pytest.mark.parametrize("wrap", ["dataset", "loader"])
def test_a_dataset_or_a_dataloader_is_sampled_by_the_trainer(example, tmp_path, wrap):
    images = example.images()
    dataset = TensorDataset(images, torch.zeros(len(images)))  # (image, label) items
    data = dataset if wrap == "dataset" else DataLoader(dataset, batch_size=5, shuffle=True)
    generator, critic = example.networks()
    trainer = fastgan.Trainer(config(tmp_path, steps=1), generator=generator, critic=critic, data=data)
    torch.manual_seed(3)
    batch = trainer.sample_real(7)
    torch.manual_seed(3)
    index = torch.randint(0, len(images), (7,))
    assert torch.equal(batch, images[index])
    assert trainer.run()["step"] == 1


def test_a_fused_mlp_critic_of_yours_takes_the_fused_step(tmp_path, monkeypatch):
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
    critic = fastgan.FusedMLPCritic(3, (32, 32))
    calls = []
    step_function = graph._step_function
    monkeypatch.setattr(graph, "_step_function", lambda *a, **k: calls.append(1) or step_function(*a, **k))
    points = torch.randn(500, 3)
    trainer = fastgan.Trainer(config(tmp_path, steps=2, latent_dim=4), generator=generator, critic=critic,
                              data=points)
    assert trainer.critic_path == "critic step: fused, FusedMLPCritic traced as a graph of 5 nodes"
    trainer.run()
    assert len(calls) == 4  # 2 steps of 2 critic iterations, all fused


class Points(IterableDataset):
    def __iter__(self):
        yield torch.zeros(2)


@pytest.mark.parametrize("kwargs, kind, match", [
    (dict(generator=nn.Linear(32, 3)), ValueError, "pass both"),
    (dict(generator=nn.Linear(32, 3), critic="critic"), TypeError, "critic must be an nn.Module"),
    (dict(generator=nn.Linear(32, 3), critic=nn.Linear(3, 1)), ValueError,
     r"generator: makes samples of shape \(3,\), the data's are \(2,\)"),
    (dict(generator=nn.Linear(32, 2), critic=nn.Linear(2, 2)), ValueError, "critic: must return one value per sample"),
    (dict(generator=nn.Linear(31, 2), critic=nn.Linear(2, 1)), ValueError,
     "generator: a batch of 2 latent codes of size 32 fails"),
    (dict(data=Points()), TypeError, "iterable datasets cannot be sampled"),
    (dict(data=torch.zeros(5, 2, dtype=torch.bool)), ValueError, "data: expected an array of numbers, got bool"),
    (dict(data=torch.full((5, 2), 300)), ValueError, r"integer values .* span \[300, 300\]"),
    (dict(data=torch.zeros(0, 2)), ValueError, r"data: expected a non-empty \(N, D\)"),
])
def test_bad_networks_and_data_are_named_before_training(tmp_path, kwargs, kind, match):
    kwargs = {"data": torch.randn(100, 2), **kwargs}
    with pytest.raises(kind, match=match):
        fastgan.Trainer(config(tmp_path), **kwargs)


def test_latent_dim_is_needed_for_your_generator(tmp_path):
    with pytest.raises(fastgan.ConfigError, match="latent_dim must be given"):
        fastgan.Trainer(config(tmp_path, latent_dim=None), generator=nn.Linear(3, 2), critic=nn.Linear(2, 1),
                        data=torch.randn(10, 2))
