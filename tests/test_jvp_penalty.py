"""The first-order penalties (``method="jvp"``): the same value and parameter
gradients as the eager double backward, for MLP, conv, LayerNorm and BatchNorm-free
ResNet-style critics, and bias_act's forward-mode rule."""
import copy

import pytest
import torch
from torch import nn

import fastgan
from fastgan import nn as fnn
from fastgan import reference
from fastgan.ops import bias_act
from fastgan.ops.bias_act import DEFAULT_ALPHA

from conftest import max_grad_err, rel_err


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, 1, 1))

    def forward(self, x):
        return x + 0.5 * self.body(x)


def critics(channels=3, size=8):
    """(name, critic, input shape) of the kinds users train."""
    flat = channels * size * size
    yield "mlp", nn.Sequential(nn.Flatten(), nn.Linear(flat, 33), nn.LeakyReLU(0.2), nn.Linear(33, 17), nn.Tanh(),
                               nn.Linear(17, 1)), (channels, size, size)
    yield "conv", nn.Sequential(nn.Conv2d(channels, 7, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(7, 9, 3, 2, 1),
                                nn.SiLU(), nn.Flatten(), nn.Linear(9 * (size // 4) ** 2, 1)), (channels, size, size)
    yield "layernorm", nn.Sequential(nn.Conv2d(channels, 6, 4, 2, 1), nn.LayerNorm([6, size // 2, size // 2]),
                                     nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(6 * (size // 2) ** 2, 1)), \
        (channels, size, size)
    yield "resnet", nn.Sequential(nn.Conv2d(channels, 5, 3, 1, 1), ResBlock(5), nn.Softplus(), ResBlock(5),
                                  nn.AvgPool2d(2), nn.Flatten(), nn.Linear(5 * (size // 2) ** 2, 1)), \
        (channels, size, size)
    yield "fastgan-dcgan", fnn.DCGANCritic(size, channels, 6), (channels, size, size)
    yield "fastgan-dcgan-layernorm", fnn.DCGANCritic(size, channels, 6, layer_norm=True), (channels, size, size)
    yield "fused-mlp", fastgan.FusedMLPCritic(11, (13, 7)), (11,)


CRITICS = [name for name, _, _ in critics()]


def eager_penalty(critic, x, lam, center, one_sided):
    """The oracle: autograd.grad(create_graph=True) and the penalty in plain torch."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    n = g.flatten(1).norm(dim=1)
    d = (n - center).clamp_min(0) if one_sided else n - center
    return lam * (d * d).mean()


def parameter_grads(critic, loss):
    return torch.autograd.grad(loss, list(critic.parameters()), allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("name", CRITICS)
@pytest.mark.parametrize("lam, center, one_sided", [(10.0, 1.0, False), (3.0, 0.7, True), (0.0, 1.0, False)])
def test_gradient_penalty_jvp_equals_eager_float64(backend, name, lam, center, one_sided):
    torch.manual_seed(0)
    _, critic, shape = next(c for c in critics() if c[0] == name)
    critic = critic.double()
    real, fake = torch.randn(5, *shape, dtype=torch.float64), torch.randn(5, *shape, dtype=torch.float64)
    eps = torch.rand(5, 1, dtype=torch.float64)
    ours = fastgan.gradient_penalty(critic, real, fake, lam=lam, eps=eps, center=center, one_sided=one_sided,
                                    method="jvp")
    x_hat = eps.reshape(-1, *[1] * len(shape)) * real + (1 - eps.reshape(-1, *[1] * len(shape))) * fake
    theirs = eager_penalty(critic, x_hat, lam, center, one_sided)
    assert rel_err(ours, theirs) < 1e-10
    if lam:
        assert max_grad_err(parameter_grads(critic, ours), parameter_grads(critic, theirs)) < 1e-10


@pytest.mark.parametrize("name", ["conv", "fastgan-dcgan-layernorm"])
def test_gradient_penalty_jvp_float32(backend, name):
    torch.manual_seed(1)
    _, critic, shape = next(c for c in critics() if c[0] == name)
    real, fake = torch.randn(6, *shape), torch.randn(6, *shape)
    eps = torch.rand(6)
    oracle = copy.deepcopy(critic).double()  # the float64 oracle on the same weights
    e = eps.double().reshape(-1, 1, 1, 1)
    theirs = eager_penalty(oracle, e * real.double() + (1 - e) * fake.double(), 10.0, 1.0, False)
    ours = fastgan.gradient_penalty(critic, real, fake, eps=eps, method="jvp")
    assert rel_err(ours, theirs) < 1e-5
    assert max_grad_err(parameter_grads(critic, ours), parameter_grads(oracle, theirs)) < 1e-4


def test_a_sample_with_zero_input_gradient_gives_no_nan(backend):
    torch.manual_seed(2)
    critic = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1)).double()
    with torch.no_grad():
        critic[0].bias.fill_(-100.0)  # every unit dead: zero input gradient everywhere
    real, fake = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    p = fastgan.gradient_penalty(critic, real, fake, method="jvp")
    grads = parameter_grads(critic, p)
    assert p.item() == pytest.approx(10.0) and all(torch.isfinite(g).all() for g in grads)


def test_r1_and_dragan_jvp_equal_eager(backend):
    torch.manual_seed(3)
    _, critic, shape = next(c for c in critics() if c[0] == "resnet")
    critic = critic.double()
    real = torch.randn(4, *shape, dtype=torch.float64)
    ours = fastgan.r1_penalty(critic, real, gamma=5.0, method="jvp")
    theirs = eager_penalty(critic, real, 2.5, 0.0, False)
    assert rel_err(ours, theirs) < 1e-10
    assert max_grad_err(parameter_grads(critic, ours), parameter_grads(critic, theirs)) < 1e-10
    noise, eps = torch.rand_like(real), torch.rand(4, dtype=torch.float64)
    a = fastgan.dragan_penalty(critic, real, noise=noise, eps=eps, method="jvp")
    b = fastgan.dragan_penalty(critic, real, noise=noise, eps=eps, method="double-backward")
    assert rel_err(a, b) < 1e-10
    assert max_grad_err(parameter_grads(critic, a), parameter_grads(critic, b)) < 1e-10


def test_auto_and_bad_method():
    assert fastgan.penalties._method("auto", torch.device("cpu")) in fastgan.penalties.METHODS
    with pytest.raises(ValueError, match="method must be auto, double-backward or jvp"):
        fastgan.gradient_penalty(nn.Linear(2, 1), torch.randn(3, 2), torch.randn(3, 2), method="forward")


ACTS = ["linear", "relu", "lrelu", "tanh", "sigmoid", "softplus", "silu", "elu", "gelu"]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.5])
def test_bias_act_forward_mode_rule(backend, act, clamp):
    """gradcheck's forward-mode check (tangents against finite differences) and the
    reverse mode of the tangent (what the jvp penalty's backward runs through)."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)

    def f(x, b):
        return bias_act(x, b, act, alpha=-0.3 if act == "lrelu" else None, gain=1.4, clamp=clamp)

    assert torch.autograd.gradcheck(f, (x, b), check_forward_ad=True, check_backward_ad=False, check_batched_grad=False)
    t = torch.randn(x.shape, generator=g, dtype=torch.float64, requires_grad=True)

    def tangent(fn):
        def run(x, b, t):
            import torch.autograd.forward_ad as fwAD
            with fwAD.dual_level():
                return fwAD.unpack_dual(fn(fwAD.make_dual(x, t), b)).tangent
        return run

    def ref(x, b):
        alpha = -0.3 if act == "lrelu" else DEFAULT_ALPHA[act]
        return reference.bias_act(x, b, act, alpha, 1.4, 1, clamp)

    ours, theirs = tangent(f)(x, b, t), tangent(ref)(x, b, t)
    assert rel_err(ours, theirs) < 1e-12
    w = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    assert max_grad_err(torch.autograd.grad((ours * w).sum(), (x, b, t), allow_unused=True, materialize_grads=True),
                        torch.autograd.grad((theirs * w).sum(), (x, b, t), allow_unused=True,
                                            materialize_grads=True)) < 1e-10


@pytest.mark.parametrize("training", [True, False])
def test_a_batchnorm_critic_jvp_equals_eager(training):
    """BatchNorm runs composite in the jvp passes: in training mode by the batch's
    statistics (the same value and gradients as the double backward, the batch's
    coupling included), its running statistics untouched; in eval mode by them."""
    torch.manual_seed(5)
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.LeakyReLU(0.2), nn.Flatten(),
                           nn.Linear(4 * 8 * 8, 1)).double().train(training)
    with torch.no_grad():
        critic[1].running_mean.normal_()
        critic[1].running_var.uniform_(0.5, 2.0)
        critic[1].weight.normal_()
    real, fake = torch.randn(5, 3, 8, 8, dtype=torch.float64), torch.randn(5, 3, 8, 8, dtype=torch.float64)
    eps = torch.rand(5, dtype=torch.float64)
    stats = [b.clone() for b in critic.buffers()]
    with pytest.warns(fastgan.penalties.BatchNormPenaltyWarning):
        ours = fastgan.gradient_penalty(critic, real, fake, eps=eps, method="jvp")
    assert all(torch.equal(a, b) for a, b in zip(stats, critic.buffers()))
    x_hat = eps.reshape(-1, 1, 1, 1) * real + (1 - eps.reshape(-1, 1, 1, 1)) * fake
    theirs = eager_penalty(critic, x_hat, 10.0, 1.0, False)
    assert rel_err(ours, theirs) < 1e-10
    assert max_grad_err(parameter_grads(critic, ours), parameter_grads(critic, theirs)) < 1e-10
