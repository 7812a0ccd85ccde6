"""torch.library.opcheck, every default check (schema, autograd registration, fake
tensors, AOTAutograd with dynamic shapes), on every op of fastgan._C; and the raw ops'
autograd: twice differentiable where the op has a derivative, a clear error otherwise."""
import pytest
import torch

import fastgan
from fastgan import _extension

ops = _extension.ops()


def bias_act_args(requires_grad, act="silu", clamp=-1.0, layout="nchw"):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 3, generator=g, dtype=torch.float64)
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    b, dy = torch.randn(5, generator=g, dtype=torch.float64), torch.randn_like(x)
    for t in (x, b, dy):
        t.requires_grad_(requires_grad)
    return x, b, dy, (1, act, 0.2, 1.3, clamp)


def critic_args():
    critic = fastgan.FusedMLPCritic(3, (5, 4), "tanh").double()
    params = [p.detach() for p in critic.parameters()]
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    return params, real, fake, torch.rand(6, generator=g, dtype=torch.float64)


def graph_args(real, fake, eps):
    """graph_step's arguments for a conditional residual Linear, LayerNorm, SiLU graph
    with a Linear and a projection head (WGAN-GP, the labels of 4 classes)."""
    from torch import nn

    from fastgan.ops import graph as G

    torch.manual_seed(2)
    first, norm, last = nn.Linear(3, 3).double(), nn.LayerNorm(3).double(), nn.Linear(3, 1).double()
    embedding = torch.randn(4, 3, dtype=torch.float64)
    g = G.GraphBuilder()
    h = G.act(g, G.norm(g, G.linear(g, 0, first.weight, first.bias), 1, False, norm.weight, norm.bias, 1e-5),
              "silu", 0.0)
    h = G.add(g, h, 0)
    G.add(g, G.linear(g, h, last.weight, last.bias), G.projection(g, h, embedding))
    spec = g.spec()
    labels = torch.randint(0, 4, (2 * real.shape[0],))
    return (real, fake, eps, labels, [p.detach() for p in spec.params], spec.ints, spec.floats, 1, 10.0, 0.0, 1.0,
            False, True, False)


def differentiable_cases(requires_grad):
    x, b, dy, (dim, act, alpha, gain, clamp) = bias_act_args(requires_grad)
    yield ops.bias_act.default, (x, b, dim, act, alpha, gain, clamp)
    yield ops.bias_act.default, (x, None, dim, "lrelu", alpha, gain, 1.0)
    yield ops.bias_act_grad.default, (dy, x, b, dim, act, alpha, gain, clamp, False)
    yield ops.bias_act_grad2.default, (dy, dy.detach(), x.detach(), b.detach(), dim, act, alpha, gain, clamp)
    yield ops.row_penalty.default, (torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=requires_grad), 1.0, False)


def mlp_graph_args(params, real, fake, eps, loss=1, lam2=0.0):
    """graph_step's arguments for the MLP of ``params`` (tanh: the derivatives the forward saves)."""
    from fastgan.ops.critic import mlp_spec

    spec = mlp_spec(params, "tanh", 0.0)
    return real, fake, eps, None, params, spec.ints, spec.floats, loss, 10.0, lam2, 1.0, False, True, False


def other_cases():
    params, real, fake, eps = critic_args()
    yield ops.graph_step.default, mlp_graph_args(params, real, fake, eps)
    yield ops.graph_step.default, mlp_graph_args(params, real, fake, None, loss=2, lam2=3.0)
    yield ops.graph_step.default, graph_args(real, fake, eps)
    yield ops.clip_.default, ([p.clone() for p in params], 0.1)
    grads = [torch.randn_like(p) for p in params]
    yield ops.clipped_rmsprop_.default, ([p.clone() for p in params], grads, [torch.rand_like(p) for p in params],
                                         [], [], 1e-3, 0.99, 1e-8, 0.0, 0.0, False, 0.01)


def test_every_registered_op_is_covered():
    covered = {op.name().split("::")[1] for op, _ in [*differentiable_cases(False), *other_cases()]}
    assert covered == set(_extension.OPS)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_differentiable_ops(requires_grad):
    for op, args in differentiable_cases(requires_grad):
        if op is ops.bias_act_grad2.default and requires_grad:
            # AOTAutograd would take its derivative, the third order, which raises (below)
            torch.library.opcheck(op, args, test_utils=("test_schema", "test_autograd_registration",
                                                        "test_faketensor"))
        else:
            torch.library.opcheck(op, args)


def test_opcheck_ops_without_derivatives():
    for op, args in other_cases():
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("act,clamp", [("silu", -1.0), ("lrelu", -1.0), ("tanh", 0.5), ("gelu", -1.0)])
def test_raw_bias_act_ops_are_differentiable_twice(act, clamp, layout):
    x, b, dy, cfg = bias_act_args(True, act, clamp, layout)
    torch.autograd.gradcheck(lambda x, b: ops.bias_act(x, b, *cfg), (x, b))
    torch.autograd.gradgradcheck(lambda x, b: ops.bias_act(x, b, *cfg), (x, b))
    torch.autograd.gradcheck(lambda dy, x, b: ops.bias_act_grad(dy, x, b, *cfg, False), (dy, x, b))


def test_raw_row_penalty_gradient_is_u():
    g = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    g.data[1] = 0.0  # a zero row: gradient exactly 0
    torch.autograd.gradcheck(lambda g: ops.row_penalty(g, 1.0, False)[0], (g,))
    mean_phi, u = ops.row_penalty(g, 1.0, False)
    (grad,) = torch.autograd.grad(mean_phi, g)
    assert torch.equal(grad, u) and not u.requires_grad and torch.equal(grad[1], torch.zeros(3, 2, dtype=torch.float64))


def test_raw_bias_act_third_derivative_raises():
    x, b, _, cfg = bias_act_args(True, "tanh")
    (g,) = torch.autograd.grad(ops.bias_act(x, b, *cfg).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable twice"):
        torch.autograd.grad(gg.sum(), x)


def test_ops_without_derivatives_refuse_inputs_that_require_grad():
    params, real, fake, eps = critic_args()
    live = [p.clone().requires_grad_(True) for p in params]
    with pytest.raises(RuntimeError, match="fastgan::graph_step has no autograd formula"):
        ops.graph_step(*mlp_graph_args(live, real, fake, eps))
    with pytest.raises(RuntimeError, match="fastgan::graph_step has no autograd formula"):
        ops.graph_step(*mlp_graph_args(params, real.requires_grad_(True), fake, eps))
    with torch.no_grad():  # the optimisers' way: fine
        ops.clip_(live, 0.1)
    assert all(p.abs().max() <= 0.1 for p in live)
