"""The ``ops`` suite: each drop-in op beside what a user would write instead.

* bias_act (NCHW leaky ReLU) forward, forward+backward and double backward, vs the
  torch composition ``F.leaky_relu(x + b.view(1, -1, 1, 1))``;
* gradient_penalty on the DCGAN critic (fused convolutions) vs the popular eager recipe
  on the same critic written with ``nn.Conv2d`` + ``nn.LeakyReLU``;
* clip_ on the DCGAN critic's parameters vs a Python loop of ``clamp_`` and vs
  ``torch._foreach_clamp_min_/max_``;
* ClippedRMSprop vs ``torch.optim.RMSprop(foreach=True)`` followed by ``clamp_``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import fastgan
from fastgan.benchmarks.harness import Peer
from fastgan.benchmarks.peers import plain_twin
from fastgan.nn import DCGANCritic, FusedConv2d
from fastgan.ops import bias_act, clip_


def bias_act_cases():
    x = torch.randn(64, 128, 16, 16)
    b = torch.randn(128)

    def torch_act(x, b):
        return F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2)

    def fused_act(x, b):
        return bias_act(x, b, "lrelu", 0.2)

    def forward(fn):
        return lambda: fn(x, b)

    def backward(fn):
        def run():
            xr, br = x.detach().requires_grad_(True), b.detach().requires_grad_(True)
            fn(xr, br).sum().backward()
        return run

    def double(fn):
        def run():
            xr, br = x.detach().requires_grad_(True), b.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(fn(xr, br).square().sum(), xr, create_graph=True)
            g.square().sum().backward()
        return run

    for name, wrap in (("forward", forward), ("forward+backward", backward), ("double backward", double)):
        yield "bias_act", f"{name}, 64x128x16x16", {"eager": wrap(torch_act), "fastgan": wrap(fused_act)}


def penalty_cases():
    """gradient_penalty by each method (double backward, first-order jvp) on the DCGAN
    critic, with and without LayerNorm, against the popular eager recipe."""
    for layer_norm in (False, True):
        torch.manual_seed(0)
        critic = DCGANCritic(32, channels=3, width=32, layer_norm=layer_norm)
        assert all(isinstance(m, FusedConv2d) for m in critic.features if isinstance(m, nn.Conv2d))
        twin = plain_twin(critic)
        real, fake = torch.randn(32, 3, 32, 32), torch.randn(32, 3, 32, 32)

        def eager(twin=twin, real=real, fake=fake):
            twin.zero_grad(set_to_none=True)
            e = torch.rand(32, 1, 1, 1)
            x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
            out = twin(x_hat)
            (g,) = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)
            (10.0 * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()).backward()

        def fused(method, critic=critic, real=real, fake=fake):
            def run():
                critic.zero_grad(set_to_none=True)
                fastgan.gradient_penalty(critic, real, fake, lam=10.0, method=method).backward()
            return run

        name = f"DCGAN critic 32x32, width 32, B=32{', LayerNorm' if layer_norm else ''}"
        yield "gradient_penalty", name, {"eager": eager, "fastgan double-backward": fused("double-backward"),
                                         "fastgan jvp": fused("jvp")}


def clip_cases():
    params = [p.detach().clone() for p in DCGANCritic(64, 3, 64).parameters()]

    def loop():
        for p in params:
            p.clamp_(-0.01, 0.01)

    def foreach():
        torch._foreach_clamp_min_(params, -0.01)
        torch._foreach_clamp_max_(params, 0.01)

    n = sum(p.numel() for p in params)
    yield "clip_", f"DCGAN 64x64 critic, {len(params)} tensors, {n / 1e6:.1f}M values", {
        "eager": loop, "eager-foreach": foreach, "fastgan": lambda: clip_(params, 0.01)}


def rmsprop_cases():
    def setup(make_opt):
        params = [torch.nn.Parameter(p.detach().clone()) for p in DCGANCritic(64, 3, 64).parameters()]
        for p in params:
            p.grad = torch.randn_like(p)
        return params, make_opt(params)

    t_params, t_opt = setup(lambda ps: torch.optim.RMSprop(ps, lr=5e-5, foreach=True))
    f_params, f_opt = setup(lambda ps: fastgan.ClippedRMSprop(ps, lr=5e-5, clip=0.01))

    def torch_step():
        t_opt.step()
        with torch.no_grad():
            for p in t_params:
                p.clamp_(-0.01, 0.01)

    yield "ClippedRMSprop", "DCGAN 64x64 critic parameters", {"eager": torch_step, "fastgan": f_opt.step}


def ops(quick: bool, device: torch.device):
    """The suite: one config per case, its candidates as peers."""
    if device.type != "cpu":
        return  # the cases build CPU tensors
    for make_cases in (bias_act_cases, penalty_cases, clip_cases, rmsprop_cases):
        for suite, case, candidates in make_cases():
            yield f"{suite}: {case}", [Peer(name, fn, "cpu" if name.startswith("fastgan") else "")
                                       for name, fn in candidates.items()], None
