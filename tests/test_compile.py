"""torch.compile(fullgraph=True): 0 graph breaks and the eager results, for the fused
critic step with its backward, bias_act with its first and second derivatives, the
jvp penalty on MLP and conv critics, and the trainer's compiled step (--compile).
Checks are deferred (reading one back would break the graph)."""
import pytest
import torch
import torch._dynamo
from torch import nn

import fastgan
from fastgan.ops import bias_act
from fastgan.trainer import TrainConfig, Trainer

from conftest import max_grad_err, rel_err


@pytest.fixture(autouse=True)
def compilable():
    torch._dynamo.reset()
    with fastgan.use_checks("deferred"), torch._dynamo.config.patch(trace_autograd_ops=True):
        yield


def no_breaks(fn, *args):
    explained = torch._dynamo.explain(fn)(*args)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    torch._dynamo.reset()


def grads_of(module, fn, *args):
    module.zero_grad(set_to_none=True)
    out = fn(*args)
    return [out] + [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


def test_the_fused_critic_step_with_its_backward():
    torch.manual_seed(0)
    critic = fastgan.FusedMLPCritic(3, (17, 9)).double()
    real, fake = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    eps = torch.rand(8, dtype=torch.float64)

    def step(real, fake, eps):
        out = critic.wgan_gp_loss(real, fake, lam=10.0, eps=eps)
        out.loss.backward()
        return out.wasserstein.detach(), out.penalty.detach()

    no_breaks(step, real, fake, eps)
    eager = grads_of(critic, step, real, fake, eps)
    compiled = grads_of(critic, torch.compile(step, fullgraph=True), real, fake, eps)
    assert torch.equal(torch.stack(eager[0]), torch.stack(compiled[0]))
    assert all(torch.equal(a, b) for a, b in zip(eager[1:], compiled[1:]))


@pytest.mark.parametrize("act", ["lrelu", "tanh", "gelu"])
def test_bias_act_with_its_first_and_second_derivatives(act):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)

    def second_order(x, b):  # a penalty-like use: the gradient, then a backward through it
        y = bias_act(x, b, act, gain=1.3)
        (gx,) = torch.autograd.grad((y * y).sum(), x, create_graph=True)
        (gx * gx).sum().backward()
        return y.detach()

    no_breaks(lambda x, b: bias_act(x, b, act, gain=1.3), x, b)
    results = []
    for fn in (second_order, torch.compile(second_order, fullgraph=True)):
        x.grad = b.grad = None
        y = fn(x, b)
        results.append((y, x.grad.clone(), b.grad.clone()))
    for a, c in zip(*results):
        assert rel_err(c, a) < 1e-12


@pytest.mark.parametrize("kind", ["mlp", "dcgan", "dcgan-layernorm"])
def test_the_jvp_penalty(kind):
    torch.manual_seed(2)
    if kind == "mlp":
        critic, shape = nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)), (3,)
    else:
        critic, shape = fastgan.nn.DCGANCritic(8, 3, 8, layer_norm=kind == "dcgan-layernorm"), (3, 8, 8)
    critic = critic.double()
    real, fake = torch.randn(6, *shape, dtype=torch.float64), torch.randn(6, *shape, dtype=torch.float64)
    eps = torch.rand(6, dtype=torch.float64)

    def penalty(real, fake, eps):
        p = fastgan.gradient_penalty(critic, real, fake, eps=eps, method="jvp")
        p.backward()
        return p.detach()

    no_breaks(penalty, real, fake, eps)
    eager = grads_of(critic, penalty, real, fake, eps)
    compiled = grads_of(critic, torch.compile(penalty, fullgraph=True), real, fake, eps)
    assert rel_err(compiled[0], eager[0]) < 1e-12
    assert max_grad_err(compiled[1:], eager[1:]) < 1e-10


@pytest.mark.parametrize("objective, data", [("wgan-gp", "8gaussians"), ("wgan-gp", "digits"),
                                             ("noisy-gan", "8gaussians")])
def test_the_compiled_train_step_follows_eager(tmp_path, monkeypatch, objective, data):
    """`fastgan train --compile`: each network's loss and backward one fullgraph graph
    (a graph break would raise); 3 steps in float64 follow the eager trainer (whose
    conv-critic penalty is the double backward) to 1e-9."""
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    params = []
    for compile in (False, True):
        cfg = TrainConfig(objective=objective, data=data, steps=3, batch=16, width=16 if data != "digits" else 8,
                          latent_dim=8, n_critic=2, dtype="float64", eval_every=0, eval_samples=20, log_every=1,
                          progress=False, out=str(tmp_path / f"c{int(compile)}"), compile=compile)
        trainer = Trainer(cfg)
        trainer.run()
        params.append([p.detach() for m in (trainer.generator, trainer.critic) for p in m.parameters()])
    assert max_grad_err(params[1], params[0]) < 1e-9


def test_compile_refuses_eager_checks():
    with pytest.raises(fastgan.ConfigError, match="checks cannot be eager with compile"):
        TrainConfig(compile=True, checks="eager").validate()
