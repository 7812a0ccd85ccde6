"""The fused chain step (conv and MLP critics; WGAN, WGAN-GP, R1) against the eager
autograd oracle (``autograd.grad(create_graph=True)`` + ``backward()`` on the same
torch modules): float64 to 1e-10 relative, float32 to 1e-5.
"""
import numpy as np
import pytest
import torch
from torch import nn

import fastgan
from conftest import BACKENDS, follow_eager, lockstep, max_grad_err, rel_err
from fastgan import reference
from fastgan.nn import BiasAct, DCGANCritic, FusedConv2d, FusedCritic
from fastgan.ops.graph import UnsupportedLayer
from fastgan.ops.trace import fused_critic_loss

NATIVE = BACKENDS[0]  # the extension: cpu here, cuda under make gpu-check
FUSED = [NATIVE, "triton"]  # triton: the same C++ orchestration with the Triton elementwise kernels
ACTIVATIONS = [nn.ReLU, lambda: nn.LeakyReLU(0.2), nn.Tanh, nn.Sigmoid, nn.Softplus, nn.SiLU,
               lambda: nn.ELU(0.7), nn.GELU, lambda: BiasAct(1, "linear", gain=1.3, clamp=0.8)]


def draw(B, shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(B, *shape, generator=g, dtype=dtype)
    fake = torch.randn(B, *shape, generator=g, dtype=dtype) * 1.5 + 0.3
    return real, fake, torch.rand(B, generator=g, dtype=dtype)


def oracle(seq, real, fake, loss="wgan-gp", eps=None, **kw):
    seq.zero_grad(set_to_none=True)
    res = reference.chain_loss(seq, real, fake, loss, eps=eps, **kw)
    res.loss.backward()
    return res, [p.grad.clone() for p in seq.parameters()]


def fused(seq, real, fake, loss="wgan-gp", eps=None, backend=NATIVE, **kw):
    seq.zero_grad(set_to_none=True)
    with fastgan.use_backend(backend):
        out = fused_critic_loss(seq, real, fake, loss=loss, eps=eps, **kw)
        out.loss.backward()
    return out, [p.grad.clone() for p in seq.parameters()]


def check(seq, real, fake, tol, loss="wgan-gp", eps=None, backend=NATIVE, **kw):
    ref, ref_grads = oracle(seq, real, fake, loss, eps, **kw)
    out, grads = fused(seq, real, fake, loss, eps, backend, **kw)
    for name in ("loss", "wasserstein", "penalty"):
        assert torch.isfinite(getattr(out, name)).all()
        assert rel_err(getattr(out, name), getattr(ref, name)) < tol, name
    assert all(torch.isfinite(g).all() for g in grads)
    assert max_grad_err(grads, ref_grads) < tol


def dcgan(size, channels=3, width=3, act=lambda: nn.LeakyReLU(0.2), layer_norm=False, dtype=torch.float64,
          seed=0):
    """Stride-2 4x4 convolutions down to 4x4, odd widths, then a linear head."""
    torch.manual_seed(seed)
    layers, s, c = [], size, channels
    while s > 4:
        s //= 2
        layers.append(nn.Conv2d(c, width, 4, 2, 1))
        if layer_norm:
            layers.append(nn.LayerNorm([width, s, s]))
        layers.append(act())
        c, width = width, 2 * width + 1
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * 16, 1)).to(dtype)


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("backend", FUSED)
def test_float64_dcgan_sizes(size, layer_norm, backend):
    seq = dcgan(size, layer_norm=layer_norm, seed=size)
    real, fake, eps = draw(3 if size < 64 else 2, (3, size, size), torch.float64, seed=size)
    check(seq, real, fake, 1e-10, eps=eps, backend=backend)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 0), (3, 2, 1), (5, 1, 1), (5, 2, 0), (3, 1, 1)])
@pytest.mark.parametrize("backend", FUSED)
def test_float64_conv_geometries(kernel, stride, padding, backend):
    torch.manual_seed(kernel * 10 + stride)
    seq = nn.Sequential(nn.Conv2d(3, 5, kernel, stride, padding), nn.LeakyReLU(0.2),
                        nn.Conv2d(5, 7, kernel, stride, padding, bias=False), nn.Tanh(),
                        nn.Conv2d(7, 1, 3, 1, 1, dilation=1), nn.Flatten()).double()
    side = 15
    x_shape = (3, side, side)
    out_side = seq[:-1](torch.zeros(1, *x_shape, dtype=torch.float64)).shape[-1]
    seq.append(nn.Linear(out_side * out_side, 1).double())
    real, fake, eps = draw(4, x_shape, torch.float64, seed=kernel)
    check(seq, real, fake, 1e-10, eps=eps, backend=backend)


@pytest.mark.parametrize("act", range(len(ACTIVATIONS)))
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("backend", FUSED)
def test_float64_every_activation(act, layer_norm, backend):
    make = ACTIVATIONS[act]

    def act_module():
        m = make()
        if isinstance(m, BiasAct):  # a StyleGAN-style bias_act with its own bias, per channel
            m = BiasAct(5, m.act, gain=m.gain, clamp=m.clamp, dtype=torch.float64)
            nn.init.uniform_(m.bias, -0.3, 0.3)
        return m

    torch.manual_seed(act)
    layers = [nn.Conv2d(2, 5, 3, 2, 1)] + ([nn.LayerNorm([5, 4, 4])] if layer_norm else [])
    seq = nn.Sequential(*layers, act_module(), nn.Conv2d(5, 5, 3, 1, 1), act_module(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(20, 1)).double()
    real, fake, eps = draw(5, (2, 8, 8), torch.float64, seed=act)
    check(seq, real, fake, 1e-10, eps=eps, backend=backend)


@pytest.mark.parametrize("loss", ["wgan-gp", "wgan", "r1"])
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("backend", FUSED)
def test_float64_batch_of_one(loss, layer_norm, backend):
    seq = dcgan(16, layer_norm=layer_norm, seed=1)
    real, fake, eps = draw(1, (3, 16, 16), torch.float64, seed=1)
    check(seq, real, fake, 1e-10, loss, eps=eps if loss == "wgan-gp" else None, backend=backend)


@pytest.mark.parametrize("lam,center,one_sided", [(0.0, 1.0, False), (3.5, 0.7, False), (10.0, 1.0, True),
                                                  (2.0, 0.05, True)])
@pytest.mark.parametrize("act", [lambda: nn.LeakyReLU(0.2), nn.SiLU])
@pytest.mark.parametrize("backend", FUSED)
def test_float64_penalty_variants(lam, center, one_sided, act, backend):
    seq = dcgan(16, act=act, seed=2)
    real, fake, eps = draw(4, (3, 16, 16), torch.float64, seed=3)
    check(seq, real, fake, 1e-10, eps=eps, lam=lam, center=center, one_sided=one_sided, backend=backend)


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("act", [lambda: nn.LeakyReLU(0.2), nn.Softplus, nn.GELU])
@pytest.mark.parametrize("backend", FUSED)
def test_float64_r1(layer_norm, act, backend):
    seq = dcgan(16, act=act, layer_norm=layer_norm, seed=4)
    real, fake, _ = draw(5, (3, 16, 16), torch.float64, seed=4)
    check(seq, real, fake, 1e-10, "r1", lam=5.0, backend=backend)


def test_float64_zero_input_gradient_has_no_nan():
    """A ReLU critic whose first layer is dead for every input: every g_i is exactly 0,
    the penalty (0 - 1)^2 with the norm's zero subgradient, and no NaN anywhere."""
    seq = dcgan(8, act=nn.ReLU, seed=5)
    with torch.no_grad():
        seq[0].bias.fill_(-1e3)
    real, fake, eps = draw(3, (3, 8, 8), torch.float64, seed=5)
    out, _ = fused(seq, real, fake, eps=eps)
    assert out.penalty.item() == 1.0
    check(seq, real, fake, 1e-10, eps=eps)
    check(seq, real, fake, 1e-10, "r1")


@pytest.mark.parametrize("backend", FUSED)
def test_float64_one_sample_with_zero_input_gradient(backend):
    """A ReLU on the input: a sample whose pixels are all negative has g = 0 exactly (the
    others do not); its u is 0 by the norm's zero subgradient, nothing is NaN."""
    torch.manual_seed(14)
    seq = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 3, 3, 2, 1), nn.Tanh(), nn.Flatten(), nn.Linear(12, 1)).double()
    real, fake, eps = draw(3, (2, 4, 4), torch.float64, seed=14)
    real[1], fake[1] = -real[1].abs() - 0.1, -fake[1].abs() - 0.1
    x_hat = (eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(seq(x_hat).sum(), x_hat)
    assert g[1].abs().max() == 0 and g[0].abs().max() > 0
    for loss in ("wgan-gp", "r1"):
        check(seq, real, fake, 1e-10, loss, eps=eps if loss == "wgan-gp" else None, backend=backend)


@pytest.mark.parametrize("backend", FUSED)
def test_float64_mlp_chain(backend):
    torch.manual_seed(6)
    seq = nn.Sequential(nn.Linear(7, 13), nn.LeakyReLU(0.2), nn.Linear(13, 9), nn.LayerNorm(9), nn.Tanh(),
                        nn.Linear(9, 1)).double()
    real, fake, eps = draw(6, (7,), torch.float64, seed=6)
    for loss in ("wgan-gp", "wgan", "r1"):
        check(seq, real, fake, 1e-10, loss, eps=eps if loss == "wgan-gp" else None, backend=backend)


@pytest.mark.parametrize("loss", ["wgan-gp", "r1"])
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("backend", FUSED)
def test_float32_relative_error(loss, layer_norm, backend):
    seq = dcgan(32, width=8, layer_norm=layer_norm, dtype=torch.float32, seed=7)
    real, fake, eps = draw(6, (3, 32, 32), torch.float32, seed=7)
    check(seq, real, fake, 1e-5, loss, eps=eps if loss == "wgan-gp" else None, backend=backend)


def test_dcgan_critic_is_a_chain():
    """DCGANCritic (FusedConv2d blocks) takes the fused step: with and without LayerNorm."""
    for layer_norm in (False, True):
        torch.manual_seed(8)
        critic = DCGANCritic(16, 1, 5, layer_norm=layer_norm, dtype=torch.float64)
        real, fake, eps = draw(4, (1, 16, 16), torch.float64, seed=8)
        critic.zero_grad()
        with fastgan.use_backend(NATIVE):
            critic.wgan_gp_loss(real, fake, eps=eps).loss.backward()
        grads = [p.grad.clone() for p in critic.parameters()]
        _, ref_grads = oracle(critic, real, fake, eps=eps)
        assert max_grad_err(grads, ref_grads) < 1e-10


def test_gradcheck_and_gradgradcheck_of_the_chain_forward():
    """The chain's forward (FusedConv2d and BiasAct layers) is differentiable twice."""
    torch.manual_seed(9)
    critic = FusedCritic(FusedConv2d(2, 3, 3, 2, 1, act="silu", dtype=torch.float64), nn.LayerNorm([3, 3, 3]).double(),
                         BiasAct(3, "lrelu", gain=1.4, dtype=torch.float64), nn.Flatten(),
                         nn.Linear(27, 1).double())
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    params = list(critic.parameters())

    def f(x, *ps):
        return torch.func.functional_call(critic, dict(zip([n for n, _ in critic.named_parameters()], ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))
    assert torch.autograd.gradgradcheck(f, (x, *params))


def test_twenty_adam_steps_follow_eager():
    """20 float32 Adam steps of the fused DCGAN (LayerNorm) critic: at every step its
    gradients are the oracle's at the same parameters and batch."""
    follow_eager(dcgan(16, width=6, layer_norm=True, dtype=torch.float32, seed=10), (3, 16, 16), seed=10)


def test_from_sequential_keeps_the_modules():
    seq = dcgan(8, seed=11)
    critic = FusedCritic.from_sequential(seq)
    assert all(a is b for a, b in zip(critic.parameters(), seq.parameters()))
    assert critic.state_dict().keys() == seq.state_dict().keys()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(critic(x), seq(x))


def test_unsupported_layers_are_named():
    for bad, why in ((nn.BatchNorm2d(4), "it mixes the samples"), (nn.Dropout(), "not a layer"),
                     (nn.Softplus(beta=2), "not a layer")):
        seq = nn.Sequential(nn.Conv2d(1, 4, 3), bad, nn.Flatten(), nn.Linear(4, 1))
        name = type(bad).__name__
        with pytest.raises(UnsupportedLayer, match=rf"module '1' \({name}\): {why}.*fastgan.gradient_penalty"):
            FusedCritic.from_sequential(seq)


def test_wrapped_critic_runs_fused():
    """A module whose forward applies its Sequential is traced through: the fused step."""
    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = dcgan(8)

        def forward(self, x):
            return self.main(x)

    critic = Critic()
    real, fake, eps = draw(3, (3, 8, 8), torch.float64, seed=14)
    check(critic, real, fake, 1e-10, eps=eps)


@pytest.mark.parametrize("loss", ["wgan-gp", "wgan", "r1"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_triton_elementwise_kernels(loss, layer_norm):
    """The triton backend: the same orchestration with the Triton elementwise kernels
    (the interpreter here), float64 and float32."""
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        seq = dcgan(8, act=nn.SiLU if layer_norm else (lambda: nn.LeakyReLU(0.2)), layer_norm=layer_norm,
                    dtype=dtype, seed=12)
        real, fake, eps = draw(3, (3, 8, 8), dtype, seed=12)
        check(seq, real, fake, tol, loss, eps=eps if loss == "wgan-gp" else None, backend="triton")


def test_triton_every_activation_with_bias_gain_and_clamp():
    torch.manual_seed(13)
    acts = [BiasAct(4, name, gain=1.2, clamp=2.0, dtype=torch.float64) for name in
            ("relu", "lrelu", "tanh", "sigmoid", "softplus", "silu", "elu", "gelu", "linear")]
    for act in acts:
        nn.init.uniform_(act.bias, -0.5, 0.5)
        seq = nn.Sequential(nn.Conv2d(2, 4, 3, 1, 1), act, nn.Flatten(), nn.Linear(4 * 25, 1)).double()
        real, fake, eps = draw(2, (2, 5, 5), torch.float64, seed=13)
        check(seq, real, fake, 1e-10, eps=eps, backend="triton")


def test_bad_arguments():
    seq = dcgan(8)
    real, fake, _ = draw(2, (3, 8, 8), torch.float64, seed=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        fused_critic_loss(seq, real, fake, loss="hinge")
    with pytest.raises(ValueError, match="same batch size"):
        fused_critic_loss(seq, real, fake[:1])
    with pytest.raises(ValueError, match="same shape"):
        fused_critic_loss(seq, real, fake[:, :, :4])
    with pytest.raises(ValueError, match="requires grad"):
        fused_critic_loss(seq, real.requires_grad_(), fake)
    with pytest.raises(ValueError, match="gamma"):
        FusedCritic.from_sequential(seq).r1_loss(real.detach(), fake, gamma=-1)


@pytest.mark.parametrize("objective", ["wgan-gp", "wgan", "nsgan-r1"])
def test_trainer_images_path_runs_the_fused_chain(tmp_path, monkeypatch, objective):
    """`fastgan train --data images.npy` takes the fused chain step by default; at every
    critic step of a float64 run its gradients are those of `--critic-step drop-in` (the
    critic's forward and fastgan.gradient_penalty) at the same parameters and batch, and
    a drop-in run never calls the fused step. The images are continuous: clipping (wgan)
    sets weights to exactly +-c, and on the digits' constant background pre-activations
    are then exactly 0 in exact arithmetic, which the two paths round to either side of
    the leaky ReLU's kink (a gradient no code path determines)."""
    import fastgan.ops.graph as graph_ops
    from fastgan.objectives import CriticObjective
    from fastgan.trainer import TrainConfig, Trainer

    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    calls = []
    original = graph_ops.graph_loss
    monkeypatch.setattr(graph_ops, "graph_loss", lambda *a, **k: calls.append(1) or original(*a, **k))
    images = tmp_path / "images.npy"
    np.save(images, np.random.default_rng(0).uniform(-1, 1, (64, 1, 8, 8)).astype(np.float32))
    for step in ("fused", "drop-in"):
        calls.clear()
        cfg = TrainConfig(objective=objective, data=str(images), steps=2, batch=8, n_critic=2, width=6, latent_dim=4,
                          eval_every=0, eval_samples=20, log_every=1, checkpoint_every=100, progress=False,
                          dtype="float64", critic_step=step, lazy_penalty=2, out=str(tmp_path / step))
        trainer = Trainer(cfg)
        errors = []
        if step == "fused":
            drop_in = CriticObjective(trainer.critic, objective, fused=False)

            def reference(real, fake, eps, lam, sigma, labels):
                drop_in(real, fake, eps=eps, lam=lam, sigma=sigma, labels=labels)[0].backward()
            lockstep(trainer, "_critic_pass", reference, trainer.critic, errors)
        trainer.run()
        assert (len(calls) > 0) == (step == "fused")
        if step == "fused":  # (wgan: 100 critic steps per generator step at first)
            assert len(errors) == len(calls) and max(errors) < 1e-10


@pytest.mark.parametrize("objective", ["wgan-gp", "nsgan-r1"])
def test_lazy_penalty_every_kth_critic_step(tmp_path, monkeypatch, objective):
    """--lazy-penalty 2 with one critic step per generator step: the penalty on steps
    1, 3, ... (the run's critic steps 0, 2, ...), none in between."""
    import json

    from fastgan.trainer import TrainConfig, Trainer

    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    cfg = TrainConfig(objective=objective, data="digits", steps=4, batch=8, n_critic=1, width=6, latent_dim=4,
                      eval_every=0, eval_samples=20, log_every=1, checkpoint_every=100, progress=False,
                      lazy_penalty=2, out=str(tmp_path / "run"))
    Trainer(cfg).run()
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        penalties = [r["penalty"] for r in map(json.loads, f) if "penalty" in r]
    assert [p > 0 for p in penalties] == [True, False, True, False]


def test_a_users_sequential_critic_takes_the_fused_chain():
    """The trainer's critic objective runs a plain nn.Sequential of supported layers (your
    own critic, examples/train_own_gan.py) through the fused chain; any other critic, or
    fused=False, through the drop-in penalty; both give the same loss and gradients."""
    from fastgan.objectives import CriticObjective

    seq = dcgan(8, seed=15)
    assert CriticObjective(seq, "wgan-gp").graph.module is seq
    assert CriticObjective(seq, "wgan-gp", fused=False).graph is None
    batch_norm = CriticObjective(nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
                                               nn.Linear(72, 1)), "wgan-gp")
    assert batch_norm.graph is None and "BatchNorm2d): it mixes the samples" in batch_norm.drop_in_reason
    real, fake, eps = draw(4, (3, 8, 8), torch.float64, seed=15)
    results = []
    for fused_step in (True, False):
        seq.zero_grad(set_to_none=True)
        loss, w, penalty = CriticObjective(seq, "wgan-gp", fused=fused_step)(real, fake, eps=eps, lam=10.0)
        loss.backward()
        results.append([loss.detach(), w, penalty.detach(), *[p.grad.clone() for p in seq.parameters()]])
    assert max(rel_err(a, b) for a, b in zip(*results)) < 1e-10
