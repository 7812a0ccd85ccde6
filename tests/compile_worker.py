"""The torch.compile cases of ``tests/test_compile.py`` that must hold with torch's
default settings, run in a fresh process so that no fixture's flag can hide a failure:
a user compiles the loss of their own critic step with ``fullgraph=True`` and calls
``loss.backward()`` outside the compiled function. For each case it prints one JSON
line: the graphs and graph breaks ``torch._dynamo.explain`` finds, and the largest
relative difference of the compiled loss and parameter gradients from the eager ones
(float64).

    python tests/compile_worker.py [CASE ...]     (default: every case)
"""
import json
import sys

import torch
import torch._dynamo
from torch import nn

import fastgan
from fastgan import nn as fnn
from fastgan.benchmarks.critics import ResNetCritic

from conftest import max_grad_err, rel_err

B = 6


def critic(kind: str) -> tuple[nn.Module, tuple[int, ...]]:
    """(critic, sample shape) of each kind, float64."""
    torch.manual_seed(0)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)).double(), (3,)
    if kind == "fused-mlp":
        return fastgan.FusedMLPCritic(3, (17, 9)).double(), (3,)
    if kind == "conv":  # the shape the issue names
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 6 * 6, 1)).double(), \
            (3, 8, 8)
    if kind == "layernorm-conv":
        return nn.Sequential(nn.Conv2d(3, 5, 4, 2, 1), nn.LayerNorm([5, 4, 4]), nn.LeakyReLU(0.2), nn.Flatten(),
                             nn.Linear(5 * 4 * 4, 1)).double(), (3, 8, 8)
    if kind == "groupnorm-conv":
        return nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.GroupNorm(2, 4), nn.Tanh(), nn.Flatten(),
                             nn.Linear(4 * 8 * 8, 1)).double(), (3, 8, 8)
    if kind == "resnet":  # a user's residual critic, its own forward
        return ResNetCritic(4).double(), (3, 8, 8)
    if kind == "dcgan":
        return fnn.DCGANCritic(8, 3, 8).double(), (3, 8, 8)
    if kind == "dcgan-layernorm":
        return fnn.DCGANCritic(8, 3, 8, layer_norm=True).double(), (3, 8, 8)
    raise ValueError(kind)


def loss_fn(case: str, module: nn.Module):
    """The compiled function of a case: ``how:kind``, ``how`` being ``fused`` (the
    critic's own ``wgan_gp_loss``) or ``jvp`` (``fastgan.gradient_penalty``)."""
    how, _ = case.split(":")
    if how == "fused":
        return lambda real, fake, eps: module.wgan_gp_loss(real, fake, lam=10.0, eps=eps).loss
    return lambda real, fake, eps: fastgan.gradient_penalty(module, real, fake, lam=10.0, eps=eps, method="jvp")


CASES = ["fused:fused-mlp", "fused:dcgan", "fused:dcgan-layernorm", "fused:conv", "fused:resnet",
         "fused:groupnorm-conv", "jvp:mlp", "jvp:conv", "jvp:dcgan", "jvp:layernorm-conv", "jvp:groupnorm-conv",
         "jvp:resnet"]


def loss_and_grads(fn, module, args):
    module.zero_grad(set_to_none=True)
    loss = fn(*args)
    loss.backward()  # outside the compiled function
    return loss.detach(), [p.grad if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


def run(case: str) -> dict:
    how, kind = case.split(":")
    module, shape = critic(kind)
    if how == "fused" and not hasattr(module, "wgan_gp_loss"):
        module = fastgan.FusedCritic.from_module(module)  # a user's critic, converted
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(B, *shape, generator=g, dtype=torch.float64), \
        torch.randn(B, *shape, generator=g, dtype=torch.float64)
    eps = torch.rand(B, *[1] * len(shape), generator=g, dtype=torch.float64)  # the (B, 1, 1, 1) of public code
    fn = loss_fn(case, module)
    eager = loss_and_grads(fn, module, (real, fake, eps))
    explained = torch._dynamo.explain(fn)(real, fake, eps)
    torch._dynamo.reset()
    compiled = loss_and_grads(torch.compile(fn, fullgraph=True), module, (real, fake, eps))
    torch._dynamo.reset()
    result = {"case": case, "graphs": explained.graph_count, "breaks": explained.graph_break_count,
              "reasons": [str(r.reason)[:300] for r in explained.break_reasons],
              "loss_err": rel_err(compiled[0], eager[0]), "grad_err": max_grad_err(compiled[1], eager[1])}
    if how == "jvp":  # and the double backward's penalty, the oracle
        oracle = loss_and_grads(lambda r, f, e: fastgan.gradient_penalty(module, r, f, eps=e, method="double-backward"),
                                module, (real, fake, eps))
        result["oracle_err"] = max(rel_err(compiled[0], oracle[0]), max_grad_err(compiled[1], oracle[1]))
    return result


def main(cases: list[str]) -> None:
    assert not torch._dynamo.config.trace_autograd_ops, "torch's default settings are expected"
    assert fastgan.get_checks() == "eager", "fastgan's default checks are expected"
    for case in cases:
        try:
            result = run(case)
        except Exception as exc:  # noqa: BLE001 - reported to the test, which names the case
            result = {"case": case, "error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or CASES)
