"""torch.compile(fullgraph=True): 0 graph breaks and the eager results.

With torch's and fastgan's default settings, in a fresh process (``compile_worker.py``),
a user's compiled loss with ``loss.backward()`` outside: the fused critics'
``wgan_gp_loss`` and ``fastgan.gradient_penalty(method="jvp")`` on MLP, conv, DCGAN and
LayerNorm critics. Then the backward inside the compiled function (which torch traces
only with ``trace_autograd_ops``, a setting of its own that a ``.backward()`` call in a
graph needs, whatever it differentiates), bias_act's second derivative, the checks
deferred under compilation, and the trainer's compiled steps (--compile)."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch._dynamo
from torch import nn

import fastgan
from fastgan.ops import bias_act
from fastgan.trainer import TrainConfig, Trainer

from compile_worker import CASES
from conftest import lockstep, max_grad_err, rel_err

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def fresh_process_results():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCH", "FASTGAN_CHECKS"))}
    out = subprocess.run([sys.executable, os.path.join(HERE, "compile_worker.py")], capture_output=True, text=True,
                         timeout=900, cwd=HERE, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in results}


@pytest.mark.parametrize("case", CASES)
def test_default_settings_backward_outside(fresh_process_results, case):
    result = fresh_process_results[case]
    assert "error" not in result, result.get("error")
    assert (result["graphs"], result["breaks"]) == (1, 0), result["reasons"]
    assert result["loss_err"] < 1e-12 and result["grad_err"] < 1e-10
    if "oracle_err" in result:
        assert result["oracle_err"] < 1e-10


@pytest.fixture
def backward_in_graph():
    torch._dynamo.reset()
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        yield
    torch._dynamo.reset()


def no_breaks(fn, *args):
    explained = torch._dynamo.explain(fn)(*args)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    torch._dynamo.reset()


def grads_of(module, fn, *args):
    module.zero_grad(set_to_none=True)
    out = fn(*args)
    return [out] + [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


def test_the_fused_critic_step_with_its_backward(backward_in_graph):
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
def test_bias_act_with_its_first_and_second_derivatives(backward_in_graph, act):
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
def test_the_jvp_penalty_with_its_backward(backward_in_graph, kind):
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


def test_under_compilation_eager_checks_are_deferred_flags():
    """With the default "eager" checks a compiled call records a flag per tensor on the
    device instead of reading it back; fastgan.report_checks() reads them."""
    torch._dynamo.reset()
    critic = fastgan.FusedMLPCritic(3, (8,)).double()
    step = torch.compile(lambda r, f: critic.wgan_gp_loss(r, f).loss, fullgraph=True)
    real, fake = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    assert fastgan.get_checks() == "eager"
    step(real, fake).backward()
    fastgan.report_checks()  # finite: nothing to say
    fake[1, 2] = float("nan")
    step(real, fake)  # no error here: nothing is read back inside the graph
    with pytest.raises(fastgan.NonFiniteError, match="fake contained NaN"):
        fastgan.report_checks()
    torch._dynamo.reset()


def _eager_beside_compiled(trainer) -> dict:
    """Runs the eager pass before each compiled pass of ``trainer`` (:func:`lockstep`);
    the gradient errors per network."""
    errors = {"critic": [], "generator": []}
    lockstep(trainer, "_critic_pass", trainer._critic_loss_backward, trainer.critic, errors["critic"])
    lockstep(trainer, "_generator_pass", trainer._generator_loss_backward, trainer.generator, errors["generator"])
    return errors


@pytest.mark.parametrize("objective, data", [("wgan-gp", "8gaussians"), ("wgan-gp", "digits"),
                                             ("noisy-gan", "8gaussians")])
def test_the_compiled_train_step_follows_eager(tmp_path, monkeypatch, objective, data):
    """`fastgan train --compile`: each network's loss and backward is one fullgraph graph
    (a graph break would raise); at every step of a 3-step float64 run the compiled
    passes give the gradients of the same passes run eagerly, at the same parameters,
    batch and noise. The settings the compiled passes need hold for their calls only."""
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    torch._dynamo.reset()
    cfg = TrainConfig(objective=objective, data=data, steps=3, batch=16, width=16 if data != "digits" else 8,
                      latent_dim=8, n_critic=2, dtype="float64", eval_every=0, eval_samples=20, log_every=1,
                      progress=False, out=str(tmp_path / "run"), compile=True)
    trainer = Trainer(cfg)
    errors = _eager_beside_compiled(trainer)
    trainer.run()
    assert len(errors["critic"]) == 6 and len(errors["generator"]) == 3
    assert max(errors["critic"] + errors["generator"]) < 1e-10
    assert not torch._dynamo.config.trace_autograd_ops and not torch._inductor.config.fallback_random
    torch._dynamo.reset()


@pytest.mark.parametrize("conditional", [False, True])
def test_a_compiled_image_run_with_augmentation_trains_from_its_first_call(tmp_path, monkeypatch, conditional):
    """The traced critic's graph is built before the first compiled call (dynamo cannot
    trace its construction), so a --compile run of a conv critic, here with --augment
    (and a conditional one, its projection fused), trains without an eager call first;
    its compiled passes then follow eager."""
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    torch._dynamo.reset()
    cfg = TrainConfig(data="digits", augment="color,translation,cutout", steps=2, batch=8, width=4, latent_dim=8,
                      n_critic=1, dtype="float64", eval_every=0, eval_samples=20, log_every=1, progress=False,
                      out=str(tmp_path / "run"), compile=True, conditional=conditional)
    trainer = Trainer(cfg)
    assert "critic_loss" in trainer.train_step()  # the first calls compiled, before any eager one
    errors = _eager_beside_compiled(trainer)
    trainer.train_step()
    assert len(errors["critic"]) == 1 and len(errors["generator"]) == 1
    assert max(errors["critic"] + errors["generator"]) < 1e-10
    torch._dynamo.reset()


def test_compile_refuses_eager_checks():
    with pytest.raises(fastgan.ConfigError, match="checks cannot be eager with compile"):
        TrainConfig(compile=True, checks="eager").validate()
