"""A training step reads nothing back from the device outside logged steps, and NaN
or infinite inputs are still caught: checked on the device, reported at the next log
or checkpoint, naming the steps and the tensor (fastgan.set_checks)."""
import os

import pytest
import torch

import fastgan
from fastgan import checkpoint
from fastgan.trainer import TrainConfig, Trainer

READS = ("item", "__bool__", "__float__", "__int__", "cpu", "tolist", "numpy")


def config(tmp_path, **kw):
    return TrainConfig(**{**dict(steps=12, batch=16, width=16, latent_dim=8, n_critic=2, eval_every=0,
                                 eval_samples=20, log_every=10, checkpoint_every=100, progress=False,
                                 out=str(tmp_path / "run")), **kw})


@pytest.fixture
def no_reads(monkeypatch):
    """Makes every read-back of a tensor's data raise (the CPU stand-in for a sync)."""
    def install():
        for name in READS:
            def read(*args, _name=name, **kwargs):
                raise AssertionError(f"Tensor.{_name}() was called in a step that is not logged")
            monkeypatch.setattr(torch.Tensor, name, read)
    return install


@pytest.mark.parametrize("objective, data", [("wgan-gp", "8gaussians"), ("wgan-gp", "digits"), ("wgan", "8gaussians"),
                                             ("noisy-gan", "8gaussians"), ("nsgan", "digits")])
def test_a_step_that_is_not_logged_reads_nothing_back(tmp_path, monkeypatch, no_reads, objective, data):
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    trainer = Trainer(config(tmp_path, objective=objective, data=data, width=8))
    assert not trainer._logs_at(1) and not trainer._logs_at(2)
    no_reads()
    trainer.train_step()
    trainer.train_step()
    monkeypatch.undo()
    assert trainer.step == 2


def test_checks_modes_of_the_ops():
    critic = fastgan.FusedMLPCritic(2, (8,))
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    real[1, 0] = float("nan")
    assert fastgan.get_checks() == "eager"
    with pytest.raises(ValueError, match="real contains NaN"):
        critic.wgan_gp_loss(real, fake)
    with fastgan.use_checks("off"):
        critic.wgan_gp_loss(real, fake)  # not read: the loss is NaN, as the user asked
    with fastgan.use_checks("deferred"):
        critic.wgan_gp_loss(real, fake)
        fastgan.gradient_penalty(critic.to_sequential(), fake, fake)
        with pytest.raises(fastgan.NonFiniteError, match="^step 7: real contained NaN or infinite values$"):
            fastgan.report_checks("step 7")
        fastgan.report_checks("step 8")  # forgotten once reported
    with pytest.raises(ValueError, match="checks must be one of eager, deferred, off"):
        fastgan.set_checks("sometimes")


def test_a_nan_in_training_is_reported_at_the_next_log_and_not_checkpointed(tmp_path):
    trainer = Trainer(config(tmp_path, log_every=5, checkpoint_every=2))
    sample_real = trainer.sample_real

    def poisoned(n):
        x = sample_real(n)
        if trainer.step == 2:  # during step 3
            x[0, 0] = float("nan")
        return x

    trainer.sample_real = poisoned
    with pytest.raises(fastgan.NonFiniteError, match="steps 3-4: real(, fake)? contained NaN"):
        trainer.run()
    assert checkpoint.load(trainer.checkpoint_path)["step"] == 2  # the last clean one
    assert os.path.getsize(os.path.join(trainer.cfg.out, "metrics.jsonl")) > 0
