"""The launch budget of the Triton path: the graph step's C++ orchestration runs the
GEMMs through ATen and calls the Triton elementwise kernels, a fixed few per activation
for a whole critic step."""
import pytest
import torch

import fastgan
from fastgan.kernels import LAUNCHES

from conftest import make_critic


def count_launches(fn):
    LAUNCHES.clear()
    fn()
    return sum(LAUNCHES.values()), dict(LAUNCHES)


def gp_step(critic, B=8):
    real = torch.randn(B, critic.in_features, dtype=torch.float64)
    fake = torch.randn(B, critic.in_features, dtype=torch.float64)

    def run():
        with fastgan.use_backend("triton"):
            critic.zero_grad(set_to_none=True)
            critic.wgan_gp_loss(real, fake).loss.backward()
    return run


@pytest.mark.parametrize("hidden", [(17,), (17, 19), (17, 19, 23, 29)])
def test_relu_like_gp_step_launches(hidden):
    # Per activation: the forward, the backward signal and the tangent; then the penalty.
    H = len(hidden)
    total, by_kernel = count_launches(gp_step(make_critic(5, hidden, "lrelu")))
    assert by_kernel == {"bias_act": 3 * H, "penalty": 1}, by_kernel


@pytest.mark.parametrize("activation", ["tanh", "softplus", "silu"])
def test_smooth_gp_step_launches(activation):
    # Smooth activations add the second-order injection in the tangent, and the hbar
    # pass (which starts from zero above the top one).
    H = 3
    total, by_kernel = count_launches(gp_step(make_critic(5, (17, 19, 23), activation)))
    assert by_kernel == {"bias_act": 5 * H - 1, "penalty": 1}, by_kernel


def test_plain_wgan_step_launches():
    critic = make_critic(5, (17, 19, 23), "relu")
    real, fake = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)

    def wgan():
        with fastgan.use_backend("triton"):
            critic.wgan_loss(real, fake).loss.backward()

    # The forward and the backward signal of each activation.
    assert count_launches(wgan)[1] == {"bias_act": 2 * 3}
