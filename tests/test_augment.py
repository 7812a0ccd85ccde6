"""DiffAugment (``--augment``): each transform against its definition on fixed
parameters, differentiable in the images, parameters drawn per sample from the run's
seeded stream; in the trainer, real and fake augmented before every critic call (the
penalty's interpolates between the augmented batches), the generator's loss through
the same policy, and a resumed run augmenting bit for bit."""
import copy

import numpy as np
import pytest
import torch

import fastgan
from fastgan import augment
from fastgan.augment import DiffAugment
from fastgan.trainer import TrainConfig, Trainer

from test_trainer import assert_same_run, signal_during_step


def _images(n=3, c=3, h=8, w=6, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_color_follows_its_definition_pixel_by_pixel():
    x = _images()
    b, s, c = (torch.tensor(v, dtype=torch.float64) for v in ([0.1, 0.5, 0.9], [0.0, 0.3, 0.99], [0.2, 0.7, 0.0]))
    out = augment.contrast(augment.saturation(augment.brightness(x, b), s), c)
    for n in range(3):
        y = x[n] + (b[n].item() - 0.5)
        for i in range(8):
            for j in range(6):
                m = y[:, i, j].mean()
                y[:, i, j] = (y[:, i, j] - m) * 2 * s[n].item() + m
        y = (y - y.mean()) * (c[n].item() + 0.5) + y.mean()
        torch.testing.assert_close(out[n], y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shift", [(0, 0), (1, -1), (-2, 3), (8, 0), (-9, -6)])
def test_translation_moves_whole_pixels_and_fills_with_zeros(shift):
    x = _images(n=2)
    shifts = torch.tensor([shift, (shift[1], shift[0])])
    out = augment.translation(x, shifts)
    for n in range(2):
        dy, dx = shifts[n].tolist()
        for i in range(8):
            for j in range(6):
                inside = 0 <= i + dy < 8 and 0 <= j + dx < 6
                expected = x[n, :, i + dy, j + dx] if inside else torch.zeros(3, dtype=x.dtype)
                assert torch.equal(out[n, :, i, j], expected), (n, i, j)


@pytest.mark.parametrize("centre", [(0, 0), (4, 3), (7, 5), (8, 6), (2, 5)])
def test_cutout_zeroes_the_square_around_its_centre(centre):
    x = _images(n=1, h=8, w=7)
    k = (augment.cutout_size(8), augment.cutout_size(7))
    assert k == (4, 4)  # int(size / 2 + 0.5)
    out = augment.cutout(x, torch.tensor([centre]))
    for i in range(8):
        for j in range(7):
            inside = centre[0] - k[0] // 2 <= i < centre[0] - k[0] // 2 + k[0] and \
                centre[1] - k[1] // 2 <= j < centre[1] - k[1] // 2 + k[1]
            assert torch.equal(out[0, :, i, j], torch.zeros(3, dtype=x.dtype) if inside else x[0, :, i, j])


def test_every_transform_is_differentiable_in_the_images():
    x = _images(n=2, h=6, w=5).requires_grad_(True)
    policy = DiffAugment("color,translation,cutout")
    params = policy.draw(2, 6, 5, torch.Generator().manual_seed(3))
    params = {k: v.double() if v.is_floating_point() else v for k, v in params.items()}
    assert torch.autograd.gradcheck(lambda t: policy.apply(t, params), (x,))
    assert torch.autograd.gradgradcheck(lambda t: policy.apply(t, params), (x,))


def test_parameters_are_drawn_per_sample_with_the_papers_ranges():
    policy = DiffAugment("color,translation,cutout")
    params = policy.draw(4000, 32, 20, torch.Generator().manual_seed(0))
    for key in ("brightness", "saturation", "contrast"):
        assert params[key].shape == (4000,) and 0 <= params[key].min() and params[key].max() < 1
        assert params[key].std() > 0.25  # one value per sample, U[0, 1)
    # translation: int(32 / 8 + 0.5) = 4 and int(20 / 8 + 0.5) = 3 pixels each way
    assert set(params["shift"][:, 0].tolist()) == set(range(-4, 5))
    assert set(params["shift"][:, 1].tolist()) == set(range(-3, 4))
    # cutout: side 16 (even) on 32 rows, centres 0..32; side 10 (even) on 20 columns, 0..20
    assert set(params["cutout"][:, 0].tolist()) == set(range(0, 33))
    assert set(params["cutout"][:, 1].tolist()) == set(range(0, 21))
    odd = DiffAugment("cutout").draw(2000, 14, 14, torch.Generator().manual_seed(0))  # side 7 (odd): 0..13
    assert set(odd["cutout"][:, 0].tolist()) == set(range(0, 14))


def test_calling_the_policy_draws_then_applies_and_none_is_the_identity():
    x = _images(n=4, h=8, w=8)
    drawn = DiffAugment("translation,cutout").draw(4, 8, 8, torch.Generator().manual_seed(2))
    called = DiffAugment("translation,cutout")(x, torch.Generator().manual_seed(2))
    assert torch.equal(called, DiffAugment("translation,cutout").apply(x, drawn))
    assert DiffAugment("none")(x) is x and not DiffAugment("none")


def test_the_parameters_come_from_torchs_seeded_stream_in_the_policys_order():
    torch.manual_seed(5)
    first = DiffAugment("cutout,color").draw(6, 8, 8)
    torch.manual_seed(5)
    again = DiffAugment("cutout,color").draw(6, 8, 8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    torch.manual_seed(5)
    centre = torch.stack([torch.randint(0, 9, (6,)), torch.randint(0, 9, (6,))], dim=1)
    assert torch.equal(first["cutout"], centre) and torch.equal(first["brightness"], torch.rand(6))


@pytest.mark.parametrize("policy, problem", [("blur", "has 'blur'"), ("color,color", "names a transform twice"),
                                             ("", "has ''"), ("color, cutout,", "has ''")])
def test_bad_policies_are_named(policy, problem):
    with pytest.raises(ValueError, match=problem):
        augment.parse_policy(policy)


def _augmented_run(tmp_path, name, **kw):
    data = tmp_path / "images.npy"
    if not data.exists():
        np.save(data, np.random.default_rng(0).uniform(-1, 1, (32, 3, 8, 8)).astype(np.float32))
    base = dict(data=str(data), augment="color,translation,cutout", width=4, latent_dim=8, batch=6, steps=4,
                n_critic=2, eval_every=0, eval_samples=10, log_every=1, checkpoint_every=100, progress=False,
                out=str(tmp_path / name))
    return Trainer(TrainConfig(**{**base, **kw}))


class Recorder(torch.nn.Module):
    """A CriticObjective that records its inputs."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, real, fake, **kwargs):
        self.calls.append((real.clone(), fake.clone(), kwargs.get("eps")))
        return self.inner(real, fake, **kwargs)


def test_the_critic_sees_augmented_batches_and_the_penalty_interpolates_between_them(tmp_path):
    trainer = _augmented_run(tmp_path, "run")
    trainer.critic_objective = Recorder(trainer.critic_objective)
    weights = copy.deepcopy(trainer.critic.state_dict())
    state = torch.get_rng_state()
    trainer._critic_iteration(0, 0.0, False)
    (seen_real, seen_fake, seen_eps), = trainer.critic_objective.calls

    torch.set_rng_state(state)  # the same draws, in the trainer's order
    real = trainer.sample_real(6)
    with torch.no_grad():
        fake = trainer.generator(trainer.sample_latent(6))
    real_params, fake_params = trainer.augment_params(), trainer.augment_params()
    eps = trainer.sample_eps(6)
    expected_real, expected_fake = trainer.augment.apply(real, real_params), trainer.augment.apply(fake, fake_params)
    assert not torch.equal(expected_real, real)
    assert torch.equal(seen_real, expected_real) and torch.equal(seen_fake, expected_fake)
    assert torch.equal(seen_eps, eps)

    critic = copy.deepcopy(trainer.critic)
    critic.load_state_dict(weights)
    out = critic.wgan_gp_loss(seen_real, seen_fake, lam=10.0, eps=eps)
    penalty = fastgan.gradient_penalty(critic, expected_real, expected_fake, lam=1.0, eps=eps)
    torch.testing.assert_close(out.penalty, penalty.detach())


def test_the_generator_loss_goes_through_the_same_policy(tmp_path):
    trainer = _augmented_run(tmp_path, "run", dtype="float64")
    z = trainer.sample_latent(6)
    params = trainer.augment_params()
    trainer.generator.zero_grad(set_to_none=True)
    loss = trainer._generator_loss_backward(z, 0.0, params)
    grads = [p.grad.clone() for p in trainer.generator.parameters()]
    trainer.generator.zero_grad(set_to_none=True)
    expected = -trainer.critic(trainer.augment.apply(trainer.generator(z), params)).mean()
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-12)
    for a, p in zip(grads, trainer.generator.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=0, atol=1e-12)
    plain = -trainer.critic(trainer.generator(z)).mean()
    assert not torch.allclose(plain, expected)


def test_a_resumed_augmented_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path):
    whole = _augmented_run(tmp_path, "a")
    whole.run()
    first = _augmented_run(tmp_path, "b")
    signal_during_step(first, 2)
    first.run()
    resumed = Trainer.resume(first.cfg.out)
    assert resumed.step == 2 and resumed.augment.transforms == ("color", "translation", "cutout")
    resumed.run()
    assert_same_run(whole, resumed)
    other = _augmented_run(tmp_path, "c", augment="none")
    other.run()
    key = next(iter(whole.state()["critic"]))
    assert not torch.equal(other.state()["critic"][key], whole.state()["critic"][key])
