"""Public trainers converted to fastgan give the same numbers.

Written the way such scripts are: a seed at the top, an ``nn.Sequential`` critic (or a
module wrapping one as ``self.main``), ``eps`` of shape ``(B, 1, 1, 1)`` or ``(B, 1)``
drawn with ``torch.rand``, then the gradient penalty of the WGAN-GP reference code.
A conversion must not change any later random draw of the script."""
import pytest
import torch
from torch import nn

import fastgan

from conftest import max_grad_err, rel_err


def eager_gp(critic, real, fake, eps, lam=10.0):
    """The WGAN-GP reference code's penalty, as public trainers write it."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = critic(x_hat)
    (g,) = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)
    return lam * ((g.reshape(len(g), -1).norm(2, dim=1) - 1) ** 2).mean()


def seeded_script(convert: bool, seed=3, B=16, D=5):
    """A seeded training script's first critic step: builds the critic, maybe converts
    it, then draws the batch and eps. Returns the critic, the draws and the RNG state."""
    torch.manual_seed(seed)
    seq = nn.Sequential(nn.Linear(D, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2),
                        nn.Linear(32, 1)).double()
    critic = fastgan.FusedMLPCritic.from_sequential(seq) if convert else seq
    real, fake = torch.randn(B, D, dtype=torch.float64), torch.randn(B, D, dtype=torch.float64)
    eps = torch.rand(B, 1, dtype=torch.float64)
    return critic, real, fake, eps, torch.random.get_rng_state()


def test_from_sequential_leaves_the_global_rng_untouched():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    before = torch.random.get_rng_state()
    critic = fastgan.FusedMLPCritic.from_sequential(seq)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(critic.state_dict().values(), seq.state_dict().values()))


def test_a_converted_seeded_script_draws_the_same_numbers(backend):
    seq, real, fake, eps, state = seeded_script(convert=False)
    critic, real2, fake2, eps2, state2 = seeded_script(convert=True)
    assert torch.equal(real, real2) and torch.equal(fake, fake2) and torch.equal(eps, eps2)
    assert torch.equal(state, state2)
    # and the converted step gives the eager step's loss and gradients
    seq.zero_grad()
    loss = seq(fake).mean() - seq(real).mean() + eager_gp(seq, real, fake, eps)
    loss.backward()
    out = critic.wgan_gp_loss(real, fake, lam=10.0, eps=eps)
    out.loss.backward()
    assert rel_err(out.loss, loss) < 1e-12
    assert max_grad_err([p.grad for p in critic.parameters()], [p.grad for p in seq.parameters()]) < 1e-10


@pytest.mark.parametrize("shape", [(16,), (16, 1), (16, 1, 1, 1)])
def test_every_per_sample_eps_shape_gives_the_same_step(backend, shape):
    critic, real, fake, eps, _ = seeded_script(convert=True)
    reference = critic.wgan_gp_loss(real, fake, eps=eps.reshape(-1))
    out = critic.wgan_gp_loss(real, fake, eps=eps.reshape(shape))
    assert torch.equal(out.loss, reference.loss)
    seq = critic.to_sequential()
    gp = fastgan.gradient_penalty(seq, real, fake, lam=10.0, eps=eps.reshape(shape))
    assert rel_err(gp, eager_gp(seq, real, fake, eps)) < 1e-12


class DCGANStyleCritic(nn.Module):
    """The common image-critic shape of public trainers: a Sequential in ``self.main``."""

    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 4, 2, 1),
                                  nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(16 * 2 * 2, 1))

    def forward(self, x):
        return self.main(x).view(-1)


def test_gradient_penalty_on_a_wrapped_image_critic_with_4d_eps(backend):
    torch.manual_seed(1)
    critic = DCGANStyleCritic().double()
    real, fake = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.randn(6, 1, 8, 8, dtype=torch.float64)
    eps = torch.rand(6, 1, 1, 1, dtype=torch.float64)
    ours = fastgan.gradient_penalty(critic, real, fake, lam=10.0, eps=eps)
    theirs = eager_gp(critic, real, fake, eps)
    assert rel_err(ours, theirs) < 1e-12
    params = list(critic.parameters())  # the head's bias has no gradient in a penalty: zeros
    g_ours = torch.autograd.grad(ours, params, materialize_grads=True)
    g_theirs = torch.autograd.grad(eager_gp(critic, real, fake, eps), params, materialize_grads=True)
    assert max_grad_err(g_ours, g_theirs) < 1e-10


def test_stylegan_bias_act_with_a_negative_lrelu_slope(backend):
    """StyleGAN2-ADA's bias_act(x, b, act='lrelu', alpha=...) accepts any alpha."""
    torch.manual_seed(2)
    x = torch.randn(4, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    y = fastgan.ops.bias_act(x, b, act="lrelu", alpha=-0.3, gain=2 ** 0.5)
    z = x + b.view(1, -1, 1, 1)
    expected = torch.where(z > 0, z, -0.3 * z) * 2 ** 0.5
    assert rel_err(y, expected) < 1e-15
    w = torch.randn_like(y)
    assert max_grad_err(torch.autograd.grad((y * w).sum(), (x, b)),
                        torch.autograd.grad((expected * w).sum(), (x, b))) < 1e-12
