"""The trainer's image networks (``arch``): the WGAN-GP paper's ResNets beside the DCGAN
nets, the image sizes both take by the rule of :mod:`fastgan.sizes`, the paper's
defaults, and the fused ResNet critic step at parity with eager autograd in the trainer."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from fastgan import models, objectives, resnet, sizes
from fastgan.trainer import TrainConfig, Trainer


@pytest.mark.parametrize("size, dcgan, resnet_levels", [
    (8, (4, 1), None), (10, (5, 1), None), (12, (6, 1), None), (14, (7, 1), None), (16, (4, 2), (4, 2)),
    (28, (7, 2), (7, 2)), (32, (4, 3), (4, 3)), (48, (6, 3), (6, 3)), (64, (4, 4), (4, 4)), (256, (4, 6), (4, 6)),
    (4, None, None), (7, None, None), (9, None, None), (18, None, None), (36, None, None), (100, None, None),
    (320, None, None), (512, None, None)])
def test_the_size_rule(size, dcgan, resnet_levels):
    assert sizes.levels(size, "dcgan") == dcgan
    assert sizes.levels(size, "resnet") == resnet_levels


@pytest.mark.parametrize("arch", sizes.ARCHS)
@pytest.mark.parametrize("size", [10, 16, 20, 28, 32, 40, 64])
def test_every_admitted_size_makes_images_the_critic_scores(arch, size):
    if sizes.levels(size, arch) is None:
        with pytest.raises(ValueError, match=f"images of {size}x{size} pixels: --arch {arch} takes"):
            models.build((1, size, size), 8, 4, torch.device("cpu"), arch)
        return
    torch.manual_seed(0)
    generator, critic = models.build((3, size, size), 8, 4, torch.device("cpu"), arch)
    x = generator(torch.randn(2, 8))
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    assert critic(x).shape == (2, 1)


def _convs(module):
    return [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_the_cifar_nets_are_the_papers():
    generator, critic = models.build((3, 32, 32), 128, 128, torch.device("cpu"), "resnet")
    assert isinstance(critic, resnet.ResNetCritic) and critic.pool == "mean"
    assert generator.project.out_features == 4 * 4 * 128 and len(generator.blocks) == 3
    # gan_cifar_resnet.py: OptimizedResBlockDisc1, then 3 blocks, all 128 wide, no norm
    assert _convs(critic) == [(3, 128, 3), (128, 128, 3), (3, 128, 1)] + [(128, 128, 3), (128, 128, 3),
                                                                          (128, 128, 1)] + [(128, 128, 3)] * 4
    assert not any(isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)) for m in critic.modules())
    assert [b.down for b in critic.blocks] == [True, True, False, False]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in generator.modules()) == 7
    assert _convs(generator)[-1] == (128, 3, 3)


def test_the_64x64_nets_are_the_papers():
    generator, critic = models.build((3, 64, 64), 128, 64, torch.device("cpu"), "resnet")
    assert isinstance(critic, resnet.DeepResNetCritic)
    assert critic.stem.out_channels == 64 and critic.linear.in_features == 4 * 4 * 512
    assert [(b.c1.in_channels, b.c2.out_channels) for b in critic.blocks] == [(64, 128), (128, 256), (256, 512),
                                                                             (512, 512)]
    norms = [m for m in critic.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 8 and all(n.num_groups == 1 for n in norms)
    assert generator.project.out_features == 4 * 4 * 512
    assert [(b.c1.in_channels, b.c1.out_channels) for b in generator.blocks] == [(512, 512), (512, 256),
                                                                                 (256, 128), (128, 64)]


def test_resnet_wgan_gp_takes_the_papers_defaults(tmp_path):
    hp = objectives.defaults("wgan-gp", True, "resnet")
    assert (hp.optimizer, hp.lr, hp.betas, hp.n_critic, hp.lam, hp.lr_decay) == ("adam", 2e-4, (0.0, 0.9), 5, 10.0,
                                                                                  "linear")
    trainer = Trainer(TrainConfig(data=str(_images(tmp_path, 16)), arch="resnet", width=4, batch=4, steps=1,
                                  progress=False, out=str(tmp_path / "run")))
    assert (trainer.lr, trainer.n_critic, trainer.lam, trainer.lr_decay, trainer.latent_dim) == (2e-4, 5, 10.0,
                                                                                                 "linear", 128)
    assert trainer.opt_d.param_groups[0]["betas"] == (0.0, 0.9)
    assert "the linear learning-rate decay" in trainer.schedules()
    assert trainer.critic_path.startswith("critic step: fused, ResNetCritic traced as a graph")
    dcgan = objectives.defaults("wgan-gp", True)
    assert (dcgan.lr, dcgan.lr_decay) == (1e-4, "none")


def _images(tmp_path, size, n=16, channels=1):
    path = tmp_path / f"images{size}.npy"
    np.save(path, np.random.default_rng(size).uniform(-1, 1, (n, channels, size, size)).astype(np.float32))
    return path


@pytest.mark.parametrize("size", [16, 40])
def test_the_fused_resnet_critic_step_in_the_trainer_equals_eager_autograd(tmp_path, size):
    """One float64 critic step of the trainer (fused graph step) against the WGAN-GP loss
    written with autograd's double backward on a copy of the critic: loss and every
    parameter gradient to 1e-10 (32 px: the CIFAR critic; 40 px: the GroupNorm one)."""
    trainer = Trainer(TrainConfig(data=str(_images(tmp_path, size, channels=3)), arch="resnet", width=6, batch=5,
                                  steps=1, dtype="float64", progress=False, out=str(tmp_path / "run")))
    assert trainer.critic_objective.graph is not None
    twin = copy.deepcopy(trainer.critic)
    real = trainer.sample_real(5)
    with torch.no_grad():
        fake = trainer.generator(trainer.sample_latent(5))
    eps = trainer.sample_eps(5)
    trainer.critic.zero_grad(set_to_none=True)
    loss, w, penalty = trainer._critic_loss_backward(real, fake, eps, 10.0, 0.0)

    x_hat = (eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(twin(x_hat).sum(), x_hat, create_graph=True)
    expected_penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    expected_w = twin(real).mean() - twin(fake).mean()
    expected = -expected_w + 10.0 * expected_penalty
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(penalty, expected_penalty.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(w, expected_w.detach(), rtol=0, atol=1e-10)
    for (name, p), q in zip(trainer.critic.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-10, msg=name)


@pytest.mark.parametrize("arch", sizes.ARCHS)
def test_28x28_images_train_with_each_architecture(tmp_path, arch):
    cfg = TrainConfig(data=str(_images(tmp_path, 28)), arch=arch, width=4, latent_dim=8, batch=4, steps=2,
                      n_critic=1, eval_every=0, eval_samples=10, log_every=1, progress=False,
                      out=str(tmp_path / "run"))
    trainer = Trainer(cfg)
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    summary = trainer.run()
    assert summary["step"] == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.generator.parameters()))
    assert trainer.sample(3).shape == (3, 1, 28, 28)
    assert np.isfinite(summary["last"]["critic_loss"]) and summary["last"]["penalty"] > 0
