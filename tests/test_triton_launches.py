"""The launch budget of the Triton path: about 4 kernel launches per layer for a whole
WGAN-GP critic step (eager PyTorch dispatches hundreds of ops for the same step)."""
import pytest
import torch

import fastgan
from fastgan.kernels import critic as triton_critic

from conftest import make_critic


def count_launches(fn):
    triton_critic.LAUNCHES.clear()
    fn()
    return sum(triton_critic.LAUNCHES.values()), dict(triton_critic.LAUNCHES)


def gp_step(critic, B=8):
    real = torch.randn(B, critic.in_features, dtype=torch.float64)
    fake = torch.randn(B, critic.in_features, dtype=torch.float64)

    def run():
        with fastgan.use_backend("triton"):
            critic.zero_grad(set_to_none=True)
            critic.wgan_gp_loss(real, fake).loss.backward()
    return run


@pytest.mark.parametrize("hidden", [(17,), (17, 19), (17, 19, 23), (17, 19, 23, 29)])
def test_relu_like_gp_step_launches(hidden):
    # Per hidden layer: forward GEMM, backward GEMM, adjoint GEMM, weight-gradient GEMM
    # (bias gradient fused in); plus the stacking of [real; fake; x^], the input
    # gradient, the penalty, and the two small output-layer GEMMs.
    H = len(hidden)
    total, by_kernel = count_launches(gp_step(make_critic(5, hidden, "lrelu")))
    assert total == 4 * H + 5, by_kernel
    assert by_kernel == {"stack": 1, "penalty": 1, "gemm": 4 * H + 3}
    layers = H + 1  # the output layer counts too
    assert total == 4 * layers + 1


@pytest.mark.parametrize("activation", ["tanh", "softplus", "silu"])
def test_smooth_gp_step_launches(activation):
    # Smooth activations add the abar terms: an adjoint weight GEMM and an extra
    # backward GEMM per layer.
    H = 3
    total, by_kernel = count_launches(gp_step(make_critic(5, (17, 19, 23), activation)))
    assert total == 6 * H + 4, by_kernel


def test_plain_wgan_step_and_forward_launches():
    critic = make_critic(5, (17, 19, 23), "relu")
    real, fake = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)

    def wgan():
        with fastgan.use_backend("triton"):
            critic.wgan_loss(real, fake).loss.backward()

    def forward_backward():
        with fastgan.use_backend("triton"):
            critic(real.clone().requires_grad_(True)).sum().backward()

    # stack, 3 forward GEMMs, the output GEMM, 3 backward GEMMs, 3 weight GEMMs.
    assert count_launches(wgan)[0] == 1 + 3 + 1 + 3 + 3
    # 3 forward + output; backward: 3 signal GEMMs, the input gradient, 4 weight GEMMs.
    assert count_launches(forward_backward)[0] == 4 + 3 + 1 + 4


def test_eager_dispatches_far_more_ops():
    critic = make_critic(5, (17, 19, 23), "lrelu")
    seq = critic.to_sequential()
    real, fake = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)
    with torch.profiler.profile() as prof:
        fastgan.reference.eager_wgan_gp_loss(seq, real, fake, torch.rand(8, dtype=torch.float64)).loss.backward()
    # Leaf ATen ops that do arithmetic (each one a kernel launch on a GPU).
    kernels = [e for e in prof.events() if e.name.startswith("aten::") and not e.cpu_children
               and e.name not in ("aten::empty", "aten::empty_strided", "aten::as_strided",
                                  "aten::view", "aten::t", "aten::transpose", "aten::expand",
                                  "aten::detach", "aten::resolve_conj", "aten::resolve_neg",
                                  "aten::_reshape_alias", "aten::unsqueeze", "aten::squeeze",
                                  "aten::alias", "aten::lift_fresh", "aten::set_")]
    fused, _ = count_launches(gp_step(critic))
    assert len(kernels) > 3 * fused, (len(kernels), fused)
