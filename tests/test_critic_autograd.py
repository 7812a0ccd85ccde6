"""FusedMLPCritic behaves like the nn.Sequential it mirrors, under autograd, and its
fused step hands autograd the eager recipe's gradients."""
import pytest
import torch
from torch import nn

import fastgan
from conftest import FUSED_BACKENDS, eager_step, follow_eager, make_critic, max_grad_err, rel_err

ACTIVATIONS = ["relu", "lrelu", "tanh", "softplus", "silu"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_matches_sequential(activation):
    critic = make_critic(5, (9, 13, 4), activation, seed=1)
    seq = critic.to_sequential()
    x = torch.randn(7, 5, dtype=torch.float64)
    assert rel_err(critic(x), seq(x)) < 1e-13


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradcheck_and_gradgradcheck_on_forward(activation):
    critic = make_critic(3, (5, 4), activation, seed=3)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(critic, (x,))
    assert torch.autograd.gradgradcheck(critic, (x,))


def test_penalty_through_forward_matches_fused_step(backend):
    # The forward's double backward is what a hand-written penalty needs: the eager recipe
    # run on the fused forward gives the fused step's gradients.
    critic = make_critic(3, (8, 7), "tanh", seed=4)
    real, fake = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    eps = torch.rand(6, dtype=torch.float64)
    through_forward = eager_step(critic, real, fake, eps)
    critic.zero_grad(set_to_none=True)
    critic.wgan_gp_loss(real, fake, eps=eps).loss.backward()
    assert max_grad_err([p.grad for p in critic.parameters()], through_forward.grads) < 1e-10


def test_generator_step_skips_critic_weight_gradients():
    critic = make_critic(2, (8, 8), "lrelu", seed=6)
    seq = critic.to_sequential()
    critic.requires_grad_(False)
    seq.requires_grad_(False)
    z = torch.randn(5, 2, dtype=torch.float64)
    xa, xb = z.clone().requires_grad_(), z.clone().requires_grad_()
    (-critic(xa).mean()).backward()
    (-seq(xb).mean()).backward()
    assert all(p.grad is None for p in critic.parameters())
    assert rel_err(xa.grad, xb.grad) < 1e-13


def test_loss_backward_accumulates_and_scales(backend):
    critic = make_critic(3, (10, 6), "silu", seed=7)
    real, fake = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    eps = torch.rand(8, dtype=torch.float64)
    critic.zero_grad(set_to_none=True)
    critic.wgan_gp_loss(real, fake, eps=eps).loss.backward()
    once = [p.grad.clone() for p in critic.parameters()]
    critic.wgan_gp_loss(real, fake, eps=eps).loss.backward()  # accumulates, like autograd
    assert max_grad_err([p.grad for p in critic.parameters()], [2 * g for g in once]) < 1e-14
    critic.zero_grad(set_to_none=True)
    (0.25 * critic.wgan_gp_loss(real, fake, eps=eps).loss).backward()
    assert max_grad_err([p.grad for p in critic.parameters()], [0.25 * g for g in once]) < 1e-14


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_step_graph_is_first_order_only(backend):
    # No create_graph: the loss hangs off one node whose inputs are the parameters.
    critic = make_critic(3, (6, 5), "softplus", seed=8)
    real, fake = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    out = critic.wgan_gp_loss(real, fake)
    node = out.loss.grad_fn
    assert type(node).__name__ == "_CriticStepBackward"
    leaves = [fn for fn, _ in node.next_functions if fn is not None]
    assert all(type(fn).__name__ == "AccumulateGrad" for fn in leaves)
    assert len(leaves) == len(list(critic.parameters()))
    assert not out.wasserstein.requires_grad and not out.penalty.requires_grad


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_frozen_critic_step_returns_loss_without_gradients(backend):
    critic = make_critic(3, (6,), "relu", seed=9)
    critic.requires_grad_(False)
    real, fake = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    eps = torch.rand(4, dtype=torch.float64)
    out = critic.wgan_gp_loss(real, fake, eps=eps)
    ref = eager_step(critic.to_sequential().requires_grad_(True), real, fake, eps)
    assert not out.loss.requires_grad
    assert rel_err(out.loss, ref.loss) < 1e-12


@pytest.mark.parametrize("activation", ["lrelu", "tanh"])
def test_twenty_adam_steps_follow_eager(activation):
    # 20 WGAN-GP steps of a float32 critic: at every step its fused gradients are the
    # float64 eager recipe's at the same parameters and batch.
    torch.manual_seed(10)
    follow_eager(fastgan.FusedMLPCritic(2, (64, 64, 64), activation), (2,), seed=11, batch=32)


def test_sequential_round_trip_and_state_dict():
    seq = nn.Sequential(nn.Linear(4, 7), nn.LeakyReLU(0.1), nn.Linear(7, 5), nn.LeakyReLU(0.1),
                        nn.Linear(5, 1)).double()
    critic = fastgan.FusedMLPCritic.from_sequential(seq)
    assert critic.activation == "lrelu" and critic.negative_slope == 0.1
    assert list(critic.state_dict()) == list(seq.state_dict())
    x = torch.randn(6, 4, dtype=torch.float64)
    assert rel_err(critic(x), seq(x)) < 1e-13
    back = critic.to_sequential()
    assert all(torch.equal(a, b) for a, b in zip(back.parameters(), seq.parameters()))
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(back.parameters(), critic.parameters()))
    fresh = fastgan.FusedMLPCritic(4, (7, 5), "lrelu", 0.1, dtype=torch.float64)
    fresh.load_state_dict(seq.state_dict())
    assert rel_err(fresh(x), seq(x)) < 1e-13


def test_forward_accepts_leading_dimensions():
    critic = make_critic(3, (4,), "relu", seed=12)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    assert critic(x).shape == (2, 5, 1)
    assert rel_err(critic(x), critic.to_sequential()(x)) < 1e-13
