"""Class-conditional training (``--conditional``): labels from every data layout, the
AC-GAN losses against a hand-written eager version, the projection critic's fused step
in the trainer against eager autograd, bit-exact resume, the class-agreement metric and
``fastgan sample --class``."""
import copy

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastgan import conditional, data, metrics
from fastgan.cli import main
from fastgan.trainer import TrainConfig, Trainer

from test_trainer import assert_same_run, signal_during_step


def _config(tmp_path, name="run", **kw):
    base = dict(data="digits", conditional=True, width=4, latent_dim=8, batch=6, steps=3, n_critic=2, eval_every=0,
                eval_samples=50, log_every=1, checkpoint_every=100, progress=False, out=str(tmp_path / name))
    return TrainConfig(**{**base, **kw})


# ------------------------------------------------------------------------- the labels

def test_every_data_layout_gives_its_labels(tmp_path):
    digits = data.load("digits")
    assert digits.num_classes == 10
    x, y = digits.sample_labeled(5, torch.Generator().manual_seed(0))
    index = torch.randint(0, 1797, (5,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, digits.data[index]) and torch.equal(y, digits.labels[index])
    assert torch.equal(digits.sample(5, torch.Generator().manual_seed(0)), x)  # the unlabelled stream's draws

    np.savez(tmp_path / "xy.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.array([0, 2, 1, 2]))
    assert data.load(str(tmp_path / "xy.npz")).num_classes == 3

    for k, value in enumerate((0.0, 1.0, 0.5)):
        (tmp_path / "classes" / f"c{k}").mkdir(parents=True)
        for i in range(k + 1):
            mpimg.imsave(tmp_path / "classes" / f"c{k}" / f"{i}.png", np.full((8, 8, 3), value))
    folder = data.load(str(tmp_path / "classes"))
    assert folder.num_classes == 3 and folder.labels.tolist() == [0, 1, 1, 2, 2, 2]
    assert torch.allclose(folder.data[folder.labels == 1], torch.ones(2, 3, 8, 8))

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return torch.full((1, 8, 8), float(i)), torch.tensor(i % 4)

    items = data.from_user(Items())
    images, labels = items.sample_labeled(6, torch.Generator().manual_seed(1))
    assert items.num_classes == 4 and torch.equal(images[:, 0, 0, 0].long() % 4, labels)


# -------------------------------------------------------------------- AC-GAN losses

@pytest.mark.parametrize("critic_step", ["fused", "drop-in"])
def test_acgan_losses_equal_a_hand_written_eager_version(tmp_path, critic_step):
    """The WGAN-GP critic loss plus the cross-entropy of real and fake (weight 1), and the
    generator's -E D(G(z, y)) plus 0.1 times its cross-entropy: loss and every gradient,
    float64, against the same losses written out with autograd (the fused step and the
    drop-in path alike)."""
    trainer = Trainer(_config(tmp_path, cond_critic="acgan", dtype="float64", critic_step=critic_step))
    assert "plus the AC-GAN class loss by autograd" in trainer.critic_path
    assert trainer.critic_path.startswith(f"critic step: {critic_step}")
    critic, twin = trainer.critic, copy.deepcopy(trainer.critic)
    real, labels = trainer.sample_real_labeled(6)
    with torch.no_grad():
        fake = trainer.generator(trainer.sample_latent(6), labels)
    eps = trainer.sample_eps(6)
    critic.zero_grad(set_to_none=True)
    loss, w, penalty = trainer._critic_loss_backward(real, fake, eps, 10.0, 0.0, labels)

    d_real, logits_real = twin.heads(real)
    d_fake, logits_fake = twin.heads(fake)
    x_hat = (eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(twin(x_hat).sum(), x_hat, create_graph=True)  # the WGAN output only
    expected_penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    expected = (d_fake.mean() - d_real.mean() + 10.0 * expected_penalty
                + 0.5 * (F.cross_entropy(logits_real, labels) + F.cross_entropy(logits_fake, labels)))
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(penalty, expected_penalty.detach(), rtol=0, atol=1e-10)
    for (name, p), q in zip(critic.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-10, msg=name)
    assert critic.classify.weight.grad.abs().sum() > 0

    z, classes = trainer.sample_latent(6), trainer.sample_classes(6)
    generator = trainer.generator
    twin_g = copy.deepcopy(generator)
    generator.zero_grad(set_to_none=True)
    g_loss = trainer._generator_loss_backward(z, 0.0, {}, classes)
    d, logits = twin.heads(twin_g(z, classes))
    expected_g = -d.mean() + 0.1 * F.cross_entropy(logits, classes)
    expected_g.backward()
    torch.testing.assert_close(g_loss, expected_g.detach(), rtol=0, atol=1e-12)
    for p, q in zip(generator.parameters(), twin_g.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("arch, data_name, critic_step", [("dcgan", "digits", "fused"), ("resnet", "digits32", "fused"),
                                                        ("dcgan", "digits", "drop-in")])
def test_the_projection_critic_step_in_the_trainer_equals_eager_autograd(tmp_path, arch, data_name, critic_step):
    """float64, one critic step of a conditional run (fused, and the drop-in path)
    against D(x, y) written with autograd's double backward (the interpolates of the
    real batch's classes)."""
    trainer = Trainer(_config(tmp_path, data=data_name, arch=arch, dtype="float64", critic_step=critic_step))
    assert trainer.critic_path.startswith(f"critic step: {critic_step}") and "projection" in trainer.critic_path
    _assert_the_critic_step_is_eager_autograds(trainer)


def _assert_the_critic_step_is_eager_autograds(trainer):
    """One critic step of a conditional projection run (float64) against D(x, y) written
    with autograd's double backward: the loss and every gradient to 1e-10."""
    twin = copy.deepcopy(trainer.critic)
    real, labels = trainer.sample_real_labeled(6)
    with torch.no_grad():
        fake = trainer.generator(trainer.sample_latent(6), labels)
    eps = trainer.sample_eps(6)
    trainer.critic.zero_grad(set_to_none=True)
    loss, _, penalty = trainer._critic_loss_backward(real, fake, eps, 10.0, 0.0, labels)
    x_hat = (eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(twin(x_hat, labels).sum(), x_hat, create_graph=True)
    expected = twin(fake, labels).mean() - twin(real, labels).mean() + 10.0 * (
        (grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-10)
    for (name, p), q in zip(trainer.critic.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-10, msg=name)


# ------------------------------------------------------------------- runs and resume

@pytest.mark.parametrize("head", conditional.HEADS)
def test_a_resumed_conditional_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path, head):
    whole = Trainer(_config(tmp_path, "a", cond_critic=head, steps=4))
    whole.run()
    first = Trainer(_config(tmp_path, "b", cond_critic=head, steps=4))
    signal_during_step(first, 2)
    first.run()
    resumed = Trainer.resume(first.cfg.out)
    assert resumed.step == 2 and resumed.num_classes == 10 and resumed.critic.head == head
    resumed.run()
    assert_same_run(whole, resumed)


def test_the_classes_steer_the_samples_and_are_logged(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    trainer = Trainer(_config(tmp_path))
    summary = trainer.run()
    assert 0 <= summary["last"]["class_agreement"] <= 1 and 0 <= summary["first"]["class_agreement"] <= 1
    gen = torch.Generator().manual_seed(0)
    threes = trainer.sample(8, gen, labels=torch.full((8,), 3))
    sevens = trainer.sample(8, torch.Generator().manual_seed(0), labels=torch.full((8,), 7))
    assert not torch.equal(threes, sevens)  # the same latents, another class
    with pytest.raises(ValueError, match="labels are for the samples of a conditional run"):
        Trainer(_config(tmp_path, "plain", conditional=False)).sample(2, labels=torch.zeros(2, dtype=torch.long))


def test_class_agreement_is_the_classifiers_share_of_the_asked_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    digits = data.load("digits")
    classifier = metrics.digit_classifier()
    true = metrics.class_agreement(digits.data, digits.labels, classifier)
    with torch.no_grad():
        predicted = classifier(digits.data).argmax(1)
    assert true == pytest.approx(float((predicted == digits.labels).double().mean()))
    assert true > 0.9
    assert metrics.class_agreement(digits.data, (digits.labels + 1) % 10, classifier) < 0.1
    digits32 = data.load("digits32")  # pooled to 8x8
    assert metrics.class_agreement(digits32.data, digits32.labels, classifier) > 0.99


def test_a_conditional_resnet_run_on_digits32_logs_its_class_agreement(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    summary = Trainer(_config(tmp_path, data="digits32", arch="resnet", steps=1, eval_samples=20)).run()
    assert 0 <= summary["first"]["class_agreement"] <= 1 and 0 <= summary["last"]["class_agreement"] <= 1


def test_fastgan_sample_draws_one_class(tmp_path, capsys):
    trainer = Trainer(_config(tmp_path, steps=1))
    trainer.run()
    out = tmp_path / "fives.npy"
    assert main(["sample", "--checkpoint", trainer.checkpoint_path, "--class", "5", "-n", "7", "--out",
                 str(out)]) == 0
    assert np.load(out).shape == (7, 1, 8, 8) and "class 5" in capsys.readouterr().out


# ------------------------------------------------------------- your own networks

class Items(torch.utils.data.Dataset):
    """A torchvision-style dataset of (image, label) items: 3 classes of 8x8 images."""

    def __len__(self):
        return 24

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.rand(1, 8, 8, generator=g) * 2 - 1, i % 3


class UserGenerator(torch.nn.Module):
    """``(z, y) -> images``: a class embedding concatenated to z, as users write it."""

    def __init__(self, latent_dim=6, classes=3):
        super().__init__()
        self.latent_dim = latent_dim
        self.embed = torch.nn.Embedding(classes, latent_dim)
        self.net = torch.nn.Sequential(torch.nn.Linear(2 * latent_dim, 32), torch.nn.ReLU(), torch.nn.Linear(32, 64),
                                       torch.nn.Tanh())

    def forward(self, z, y):
        return self.net(torch.cat([z, self.embed(y)], 1)).view(-1, 1, 8, 8)


class UserProjectionCritic(torch.nn.Module):
    """StudioGAN's projection form: ``linear(h) + sum(embed(y) * h)``."""

    def __init__(self, classes=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 4, 2, 1)
        self.linear, self.embed = torch.nn.Linear(64, 1), torch.nn.Embedding(classes, 64)

    def forward(self, x, y):
        h = F.leaky_relu(self.conv(x), 0.2).flatten(1)
        return self.linear(h) + torch.sum(self.embed(y) * h, 1, keepdim=True)


class UserACGANCritic(torch.nn.Module):
    """An AC-GAN critic: ``forward(x)`` its WGAN output, ``heads(x)`` with the logits."""

    def __init__(self, classes=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 4, 2, 1)
        self.linear, self.classify = torch.nn.Linear(64, 1), torch.nn.Linear(64, classes)

    def forward(self, x):
        return self.linear(F.leaky_relu(self.conv(x), 0.2).flatten(1))

    def heads(self, x):
        h = F.leaky_relu(self.conv(x), 0.2).flatten(1)
        return self.linear(h), self.classify(h)


def test_your_own_conditional_networks_train_fused(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(_config(tmp_path, data="unused", dtype="float64", latent_dim=None), generator=UserGenerator(),
                      critic=UserProjectionCritic(), data=Items())
    assert trainer.num_classes == 3
    assert trainer.critic_path.startswith("critic step: fused, UserProjectionCritic traced as a graph")
    _assert_the_critic_step_is_eager_autograds(trainer)
    acgan = Trainer(_config(tmp_path, "acgan", data="unused", cond_critic="acgan", latent_dim=None),
                    generator=UserGenerator(), critic=UserACGANCritic(), data=Items())
    assert acgan.run()["step"] == 3 and acgan.critic.classify.weight.grad is not None


def test_your_own_acgan_critic_needs_its_heads(tmp_path):
    with pytest.raises(ValueError, match=r"critic: --cond-critic acgan needs a heads\(x\) method"):
        Trainer(_config(tmp_path, data="unused", cond_critic="acgan", latent_dim=None), generator=UserGenerator(),
                critic=torch.nn.Sequential(torch.nn.Conv2d(1, 1, 8), torch.nn.Flatten()), data=Items())
