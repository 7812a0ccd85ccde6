"""Modules built on bias_act, and the DCGAN nets, against their torch twins."""
import pytest
import torch
from torch import nn

import fastgan
from fastgan.nn import BiasAct, DCGANCritic, DCGANGenerator, FusedConv2d, FusedLinear

from conftest import max_grad_err, rel_err
from test_penalties import eager_gp, grads_of


def test_fused_linear_equals_linear_then_activation(backend):
    torch.manual_seed(0)
    fused = FusedLinear(6, 5, act="silu", dtype=torch.float64)
    plain = nn.Sequential(nn.Linear(6, 5), nn.SiLU()).double()
    plain[0].load_state_dict(fused.state_dict())
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    assert rel_err(fused(x), plain(x)) < 1e-13
    assert max_grad_err(grads_of(fused, fused(x).square().sum()), grads_of(plain, plain(x).square().sum())) < 1e-12


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_conv_equals_conv_then_activation(backend, channels_last):
    torch.manual_seed(1)
    fused = FusedConv2d(3, 4, 3, stride=2, padding=1, act="lrelu", dtype=torch.float64)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.LeakyReLU(0.2)).double()
    plain[0].load_state_dict(fused.state_dict())
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert rel_err(fused(x), plain(x)) < 1e-13
    assert max_grad_err(grads_of(fused, fused(x).square().sum()), grads_of(plain, plain(x).square().sum())) < 1e-12


def test_bias_act_module():
    m = BiasAct(4, "tanh", dtype=torch.float64)
    with torch.no_grad():
        m.bias.copy_(torch.arange(4.0))
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    assert rel_err(m(x), torch.tanh(x + m.bias.view(1, 4, 1))) < 1e-15


def plain_twin(critic: DCGANCritic) -> nn.Module:
    """The same critic from torch's own modules (Conv2d + LeakyReLU)."""
    layers = []
    for m in critic.features:
        if isinstance(m, FusedConv2d):
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding).double()
            conv.load_state_dict(m.state_dict())
            layers.append(conv)
            if m.act == "lrelu":
                layers.append(nn.LeakyReLU(0.2))
        else:
            layers.append(m)
    return nn.Sequential(*layers, nn.Flatten(), critic.out)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_gradient_penalty_on_the_dcgan_critic_equals_eager(backend, layer_norm):
    torch.manual_seed(2)
    critic = DCGANCritic(16, channels=3, width=4, layer_norm=layer_norm, dtype=torch.float64)
    twin = plain_twin(critic)
    g = torch.Generator().manual_seed(3)
    real = torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64)
    fake = torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64)
    eps = torch.rand(4, generator=g, dtype=torch.float64)
    ref = eager_gp(twin, real, fake, eps)
    ref_grads = grads_of(twin, ref)
    out = fastgan.gradient_penalty(critic, real, fake, eps=eps)
    assert rel_err(out, ref) < 1e-10
    assert max_grad_err(grads_of(critic, out), ref_grads) < 1e-10


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_dcgan_shapes(size):
    g, d = DCGANGenerator(16, size, 1, 4), DCGANCritic(size, 1, 4)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, 1, size, size) and d(x).shape == (2, 1)
    assert float(x.detach().abs().max()) <= 1.0
    with pytest.raises(ValueError, match="image_size"):
        DCGANCritic(18)
