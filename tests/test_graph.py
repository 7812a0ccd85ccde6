"""The fused step of critics as graphs (csrc/graph/, fastgan/ops/trace.py): residual,
normalised, grouped and gained critics written as users write them, traced from their
own modules, against the eager autograd oracle (``autograd.grad(create_graph=True)`` +
``backward()``): float64 to 1e-10 relative, float32 to 1e-5.
"""
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastgan
from conftest import BACKENDS, follow_eager, max_grad_err, rel_err
from fastgan import reference
from fastgan.benchmarks.critics import GroupedCritic, ResNetCritic
from fastgan.nn import BiasAct, FusedConv2d, FusedCritic
from fastgan.ops.graph import UnsupportedLayer
from fastgan.ops.trace import fused_critic_loss

NATIVE = BACKENDS[0]
FUSED = [NATIVE, "triton"]


class Critic64(nn.Module):
    """The WGAN-GP paper's 64x64 critic in small: residual blocks with a per-sample norm
    (GroupNorm(1, C) or LayerNorm over (C, H, W)), flattened into a linear head."""

    def __init__(self, size=8, ch=4, layer_norm=False):
        super().__init__()
        self.conv = nn.Conv2d(3, ch, 3, 1, 1)
        sizes = [size, size // 2]
        norm = (lambda c, s: nn.LayerNorm([c, s, s])) if layer_norm else (lambda c, s: nn.GroupNorm(1, c))
        self.n1, self.c1 = norm(ch, sizes[0]), nn.Conv2d(ch, ch, 3, 1, 1)
        self.n2, self.c2 = norm(ch, sizes[0]), nn.Conv2d(ch, 2 * ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(ch, 2 * ch, 1)
        self.out = nn.Linear(2 * ch * sizes[1] ** 2, 1)

    def forward(self, x):
        x = self.conv(x)
        h = self.c1(F.softplus(self.n1(x)))
        h = F.avg_pool2d(self.c2(torch.tanh(self.n2(h))), 2)
        h = h + F.avg_pool2d(self.shortcut(x), 2)
        return self.out(h.view(h.size(0), -1))


class FlatCNN(nn.Module):
    """A plain CNN written as users write it: a Sequential with in-place LeakyReLU,
    flattened with torch.flatten, then a linear layer."""

    def __init__(self, ch=3):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True))
        self.fc = nn.Linear(2 * ch * 4, 1)

    def forward(self, x):
        return self.fc(torch.flatten(self.main(x), 1))


class GainedCritic(nn.Module):
    """StyleGAN2-style: lrelu * sqrt(2) gains and a bias-free skip, the sum scaled by
    sqrt(0.5)."""

    def __init__(self, ch=4):
        super().__init__()
        self.c0 = FusedConv2d(3, ch, 3, 1, 1, act="lrelu", gain=math.sqrt(2))
        self.c1, self.c2 = nn.Conv2d(ch, ch, 3, 1, 1), nn.Conv2d(ch, 2 * ch, 3, 2, 1)
        self.skip = nn.Conv2d(ch, 2 * ch, 1, 2, bias=False)
        self.out = nn.Linear(2 * ch * 16, 1)

    def forward(self, x):
        x = self.c0(x)
        h = F.leaky_relu(self.c1(x), 0.2) * math.sqrt(2)
        h = F.leaky_relu(self.c2(h), 0.2) * math.sqrt(2)
        h = (h + self.skip(x)) * math.sqrt(0.5)
        return self.out(h.reshape(h.shape[0], -1))


class ThreeConsumers(nn.Module):
    """One value read by three nodes (a tanh, a conv and a sum), smooth activations."""

    def __init__(self):
        super().__init__()
        self.c0, self.c1, self.c2 = nn.Conv2d(2, 3, 3, 1, 1), nn.Conv2d(3, 3, 3, 1, 1), nn.Conv2d(3, 3, 1)
        self.out = nn.Linear(3, 1)

    def forward(self, x):
        h = F.silu(self.c0(x))
        y = torch.tanh(h) + self.c1(h)
        y = F.elu(self.c2(y)) + h
        return self.out(y.mean((2, 3)))


class SmoothMLPGraph(nn.Module):
    """2-D values with smooth activations, whose derivatives the forward saves: one on
    the batch itself, in place after a linear, beside a second reader of its input,
    after a bias-free linear; and, evaluated pass by pass, one with a gain."""

    def __init__(self, d=5, h=7):
        super().__init__()
        self.l0, self.l1 = nn.Linear(d, h), nn.Linear(h, h)
        self.l2, self.l3 = nn.Linear(h, h, bias=False), nn.Linear(h, h)
        self.gained = BiasAct(h, "tanh", gain=1.3)
        self.out = nn.Linear(h, 1)

    def forward(self, x):
        h = F.silu(self.l0(torch.tanh(x)))
        y = torch.sigmoid(self.l1(h)) + F.gelu(h)
        y = F.softplus(self.l2(y)) * 1.5 + F.elu(y)
        return self.out(self.gained(self.l3(y)))


def draw(B, shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(B, *shape, generator=g, dtype=dtype)
    fake = torch.randn(B, *shape, generator=g, dtype=dtype) * 1.5 + 0.3
    return real, fake, torch.rand(B, generator=g, dtype=dtype)


def check(critic, real, fake, tol, loss="wgan-gp", eps=None, backend=NATIVE, **kw):
    """The fused step's loss, W, penalty and every gradient against the oracle's."""
    results = []
    for name in ("eager", backend):
        critic.zero_grad(set_to_none=True)
        with fastgan.use_backend(name):
            out = fused_critic_loss(critic, real, fake, loss=loss, eps=eps, **kw)
            out.loss.backward()
        results.append((out, [p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                              for p in critic.parameters()]))
    (ref, ref_grads), (out, grads) = results
    for name in ("loss", "wasserstein", "penalty"):
        assert torch.isfinite(getattr(out, name)).all()
        assert rel_err(getattr(out, name), getattr(ref, name)) < tol, name
    assert all(torch.isfinite(g).all() for g in grads)
    assert max_grad_err(grads, ref_grads) < tol


def build(make, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return make().to(dtype)


CRITICS = {
    "resnet-sum-pool-first": (lambda: ResNetCritic(5, pool="sum", pool_first=True), (3, 8, 8)),
    "resnet-mean-conv-first": (lambda: ResNetCritic(5, pool="mean", pool_first=False), (3, 8, 8)),
    "64-groupnorm": (lambda: Critic64(), (3, 8, 8)),
    "64-layernorm": (lambda: Critic64(layer_norm=True), (3, 8, 8)),
    "flat-cnn-inplace": (FlatCNN, (3, 8, 8)),
    "grouped-depthwise": (GroupedCritic, (3, 8, 8)),
    "gains": (GainedCritic, (3, 8, 8)),
    "three-consumers": (ThreeConsumers, (2, 5, 5)),
    "smooth-mlp-graph": (SmoothMLPGraph, (5,)),
}


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("loss", ["wgan-gp", "r1", "wgan"])
@pytest.mark.parametrize("name", list(CRITICS))
def test_float64_critics(name, loss, backend):
    make, shape = CRITICS[name]
    critic = build(make, seed=1)
    real, fake, eps = draw(3, shape, torch.float64, seed=1)
    check(critic, real, fake, 1e-10, loss, eps=eps if loss == "wgan-gp" else None, backend=backend)


@pytest.mark.parametrize("name", list(CRITICS))
def test_float32_relative_error(name):
    """The float32 fused step against the float64 oracle at the same parameters and
    batch (the truth, rather than float32 eager's own rounding)."""
    make, shape = CRITICS[name]
    critic = build(make, torch.float64, seed=2)
    real, fake, eps = draw(5, shape, torch.float64, seed=2)
    critic.zero_grad(set_to_none=True)
    ref = reference.chain_loss(critic, real, fake, "wgan-gp", eps=eps)
    ref.loss.backward()
    ref_grads = [p.grad.clone() for p in critic.parameters()]
    single = build(make, torch.float64, seed=2).float()
    with fastgan.use_backend(NATIVE):
        out = fused_critic_loss(single, real.float(), fake.float(), eps=eps.float())
        out.loss.backward()
    assert rel_err(out.loss.double(), ref.loss) < 1e-5
    assert max_grad_err([p.grad.double() for p in single.parameters()], ref_grads) < 1e-5


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", ["grouped-depthwise", "64-groupnorm", "three-consumers", "smooth-mlp-graph"])
def test_float64_r1_plus_r2(name, backend):
    """R3GAN's R1 + R2: the penalty on the real and on the fake rows, each with its gamma."""
    make, shape = CRITICS[name]
    critic = build(make, seed=3)
    real, fake, _ = draw(3, shape, torch.float64, seed=3)
    check(critic, real, fake, 1e-10, "r1", lam=2.5, lam2=0.7, backend=backend)


def test_r2_through_r1_loss():
    """r1_loss(real, fake, gamma, r2_gamma): the logistic loss, gamma/2 E|g_real|^2 and
    r2_gamma/2 E|g_fake|^2; penalty is the sum of the two means."""
    critic = FusedCritic.from_module(build(GroupedCritic, seed=4))
    real, fake, _ = draw(4, (3, 8, 8), torch.float64, seed=4)
    out = critic.r1_loss(real, fake, gamma=3.0, r2_gamma=1.0)
    ref = reference.chain_loss(critic, real, fake, "r1", lam=1.5, lam2=0.5)
    assert rel_err(out.loss, ref.loss) < 1e-10 and rel_err(out.penalty, ref.penalty) < 1e-10
    with pytest.raises(ValueError, match="r2_gamma"):
        critic.r1_loss(real, fake, r2_gamma=-1.0)


@pytest.mark.parametrize("loss", ["wgan-gp", "r1"])
def test_float64_edge_cases(loss):
    """B = 1, lam = 0, one-sided, and c != 1 on the residual critic."""
    critic = build(lambda: ResNetCritic(5), seed=5)
    real, fake, eps = draw(1, (3, 8, 8), torch.float64, seed=5)
    check(critic, real, fake, 1e-10, loss, eps=eps if loss == "wgan-gp" else None)
    real, fake, eps = draw(3, (3, 8, 8), torch.float64, seed=6)
    check(critic, real, fake, 1e-10, loss, eps=eps if loss == "wgan-gp" else None, lam=0.0)
    if loss == "wgan-gp":
        check(critic, real, fake, 1e-10, eps=eps, one_sided=True, center=0.5)


def test_float64_sample_with_zero_input_gradient():
    """A relu on the input of a residual critic: a sample whose pixels are all negative
    has g = 0 exactly; its u is 0 by the norm's zero subgradient, nothing is NaN."""
    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(2, 2, 3, 1, 1)
            self.out = nn.Linear(2, 1)

        def forward(self, x):
            h = F.relu(x)
            return self.out((torch.tanh(self.c(h)) + h).mean((2, 3)))

    critic = build(Critic, seed=7)
    real, fake, eps = draw(3, (2, 4, 4), torch.float64, seed=7)
    real[1], fake[1] = -real[1].abs() - 0.1, -fake[1].abs() - 0.1
    for loss in ("wgan-gp", "r1"):
        check(critic, real, fake, 1e-10, loss, eps=eps if loss == "wgan-gp" else None)


@pytest.mark.parametrize("backend", FUSED)
def test_float64_pools_of_every_geometry(backend):
    """Average pools that tile their input (whose input is freed after the forward) and
    that do not (overlapping, padded, ceil mode, a remainder), and a global sum, in a
    residual graph read by several nodes."""
    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(2, 3, 3, 1, 1)
            self.p1, self.p2 = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), nn.AvgPool2d(2)
            self.out = nn.Linear(3, 1)

        def forward(self, x):
            h = self.c(x)
            a = F.avg_pool2d(torch.tanh(h), 2) + self.p2(h)     # tiling: 7x7 -> 3x3 drops a remainder
            b = self.p1(h)                                       # 7x7 -> 4x4, overlapping, padded
            return self.out(a.sum((2, 3)) + F.avg_pool2d(b, 4).flatten(1))

    critic = build(Critic, seed=12)
    real, fake, eps = draw(3, (2, 7, 7), torch.float64, seed=12)
    for loss in ("wgan-gp", "r1"):
        check(critic, real, fake, 1e-10, loss, eps=eps if loss == "wgan-gp" else None, backend=backend)


def test_groupnorm_groups_and_instance_norm():
    """GroupNorm with several groups (its second-order term per group), with and
    without affine, and InstanceNorm2d (affine, no running stats), on channels-last."""
    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 6, 3, 1, 1)
            self.g1, self.g2 = nn.GroupNorm(3, 6), nn.GroupNorm(2, 6, affine=False)
            self.inorm = nn.InstanceNorm2d(6, affine=True)
            self.out = nn.Linear(6, 1)

        def forward(self, x):
            h = F.gelu(self.g1(self.c(x)))
            h = torch.sigmoid(self.g2(h)) + self.inorm(h)
            return self.out(h.sum((2, 3)))

    critic = build(Critic, seed=8)
    with torch.no_grad():
        for p in critic.parameters():
            p.add_(0.3 * torch.randn_like(p))
    real, fake, eps = draw(3, (3, 6, 6), torch.float64, seed=8)
    for loss in ("wgan-gp", "r1"):
        check(critic, real, fake, 1e-10, loss, eps=eps if loss == "wgan-gp" else None)


def test_gradcheck_and_gradgradcheck_of_a_residual_forward():
    """The forward of a residual FusedCritic (FusedConv2d, BiasAct, GroupNorm, a skip) is
    differentiable twice."""
    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = FusedConv2d(2, 3, 3, 1, 1, act="silu")
            self.n, self.act = nn.GroupNorm(1, 3), BiasAct(3, "lrelu", gain=1.4)
            self.out = nn.Linear(3, 1)

        def forward(self, x):
            h = self.c(x)
            return self.out((self.act(self.n(h)) + h).mean((2, 3)))

    critic = FusedCritic.from_module(build(Critic, seed=9))
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in critic.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(critic, dict(zip(names, ps)), (x,))

    params = list(critic.parameters())
    assert torch.autograd.gradcheck(f, (x, *params))
    assert torch.autograd.gradgradcheck(f, (x, *params))


def test_twenty_steps_of_the_resnet_critic_follow_eager():
    """20 float32 Adam steps of the ResNet critic: at every step the fused gradients are
    the oracle's at the same parameters and batch."""
    follow_eager(build(lambda: ResNetCritic(6), torch.float32, seed=10), (3, 8, 8), seed=10)


def test_from_module_keeps_the_module():
    """The same parameters (tensors), state_dict keys and forward as the module."""
    module = build(lambda: ResNetCritic(5), seed=11)
    critic = FusedCritic.from_module(module)
    assert all(a is b for a, b in zip(critic.parameters(), module.parameters()))
    assert list(critic.state_dict()) == list(module.state_dict())
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(critic(x), module(x))
    assert FusedCritic.from_sequential.__func__ is FusedCritic.from_module.__func__


def test_unsupported_nodes_are_named():
    class MinibatchStd(nn.Module):
        def forward(self, x):
            return torch.cat([x, x.std(0).mean().expand_as(x[:, :1])], 1)

    class WithStd(nn.Module):
        def __init__(self):
            super().__init__()
            self.std, self.out = MinibatchStd(), nn.Linear(4 * 16, 1)

        def forward(self, x):
            return self.out(self.std(x).flatten(1))

    class Branchy(nn.Module):
        def forward(self, x):
            return x.sum() if x.sum() > 0 else x

    class Squared(nn.Module):
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(3, 1)

        def forward(self, x):
            return self.out(x * x)

    cases = [(nn.Sequential(nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3)), r"module '1' \(BatchNorm2d\): it mixes"),
             (WithStd(), r"method \.std\(\)"), (Branchy(), r"torch.fx cannot trace Branchy"),
             (Squared(), r"function mul .*only by a Python number")]
    for module, pattern in cases:
        with pytest.raises(UnsupportedLayer, match=pattern + r".*fastgan.gradient_penalty"):
            FusedCritic.from_module(module)


def test_fastgan_ops_loads_without_nn():
    code = "import sys, fastgan.ops; assert 'fastgan.nn' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_trainer_runs_a_users_resnet_fused_and_says_so(tmp_path, capsys):
    """Your own residual critic runs the fused step (every critic step's gradients those
    of the drop-in path at the same point); the run's first line names the path, and for
    a critic the step cannot run, the drop-in path and why."""
    from conftest import lockstep
    from fastgan.objectives import CriticObjective

    images = torch.rand(64, 3, 8, 8) * 2 - 1
    generator = nn.Sequential(nn.Linear(4, 3 * 64), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
    cfg = dict(objective="wgan-gp", steps=2, batch=8, n_critic=2, latent_dim=4, eval_every=0, eval_samples=20,
               log_every=1, progress=False, dtype="float64")
    trainer = fastgan.Trainer(fastgan.TrainConfig(**cfg, out=str(tmp_path / "fused")), generator=generator,
                              critic=ResNetCritic(5), data=images)
    drop_in = CriticObjective(trainer.critic, "wgan-gp", fused=False)
    errors = []
    lockstep(trainer, "_critic_pass", lambda real, fake, eps, lam, sigma, labels: drop_in(
        real, fake, eps=eps, lam=lam, sigma=sigma, labels=labels)[0].backward(), trainer.critic, errors)
    trainer.run()
    assert capsys.readouterr().out.startswith("fastgan: critic step: fused, ResNetCritic traced as a graph of")
    assert len(errors) == 4 and max(errors) < 1e-10

    batch_norm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 1))
    fastgan.Trainer(fastgan.TrainConfig(**cfg, out=str(tmp_path / "drop-in")), generator=generator,
                    critic=batch_norm, data=images).run()
    first = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fastgan: critic step")][0]
    assert "drop-in, Sequential's forward and fastgan.gradient_penalty" in first
    assert "because module '1' (BatchNorm2d): it mixes the samples" in first


@pytest.mark.parametrize("name", ["resnet-mean-conv-first", "smooth-mlp-graph"])
def test_under_autocast_the_step_runs_in_the_parameters_dtype(name):
    """A bf16 fake under CPU autocast: the step casts the batches to the float32
    parameters and its own GEMMs and convolutions are not cast down, so it is the
    float32 step on the fake's bf16 values."""
    make, shape = CRITICS[name]
    critic = build(make, torch.float32, seed=12)
    real, fake, eps = draw(3, shape, torch.float32, seed=12)
    fake = fake.bfloat16()
    results = []
    for autocast in (True, False):
        critic.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), fastgan.use_backend(NATIVE):
            out = fused_critic_loss(critic, real, fake if autocast else fake.float(), eps=eps)
        out.loss.backward()
        results.append((out.loss.detach(), [p.grad.clone() for p in critic.parameters()]))
    (loss, grads), (ref_loss, ref_grads) = results
    assert loss.dtype == torch.float32
    assert rel_err(loss, ref_loss) < 1e-6 and max_grad_err(grads, ref_grads) < 1e-5
