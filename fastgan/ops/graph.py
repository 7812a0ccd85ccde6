"""The fused critic step of a graph of layer nodes (``fastgan::graph_step``,
csrc/graph/): one engine for every critic fastgan runs fused, from an ``nn.Sequential``
chain to a residual network traced from the user's own module
(:mod:`fastgan.ops.trace`).

A graph is built node by node with :class:`GraphBuilder`: value 0 is the critic's
input, each node reads values and makes a new one, the last node is the critic's
output (one value per sample). Each node kind has one encoder below and one C++ unit
(csrc/graph/<kind>.cpp); ``KINDS`` is their table, in the order of graph.cpp's.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from fastgan import _checks, _extension, activations, backends, reference

Tensor = torch.Tensor

#: The node kinds, in the order of csrc/graph/graph.cpp's table.
KINDS = ("linear", "conv2d", "act", "flatten", "avgpool", "norm", "add", "scale", "global_pool", "projection")
NODE_INTS, NODE_FLOATS = 12, 3
LOSSES = {"wgan": 0, "wgan-gp": 1, "r1": 2}


class UnsupportedLayer(TypeError):
    """A node of a critic that the fused step cannot run; the message names it and why."""


class GraphSpec(NamedTuple):
    """A graph as ``fastgan::graph_step`` takes it: per-node records and the parameters
    in node order."""

    ints: list
    floats: list
    params: list

    def conditional(self) -> bool:
        """Whether the graph takes the samples' classes (it has a projection node)."""
        return any(KINDS[self.ints[i]] == "projection" for i in range(0, len(self.ints), NODE_INTS))

    def second_order(self) -> bool:
        """Whether a node injects a second-order term (a norm, a smooth activation): the
        step then runs the hbar pass."""
        records = [self.ints[i:i + NODE_INTS] for i in range(0, len(self.ints), NODE_INTS)]
        smooth = {a.code for a in activations.TABLE.values() if a.smooth}
        return any(KINDS[r[0]] == "norm" or (KINDS[r[0]] == "act" and r[4] in smooth) for r in records)


class GraphBuilder:
    """Collects a graph's nodes. Each encoder adds one node reading values and returns
    the value it makes; value 0 is the input."""

    def __init__(self):
        self.ints: list[int] = []
        self.floats: list[float] = []
        self.params: list[Tensor] = []
        self.nodes = 0

    def node(self, kind: str, inputs, flags: int = 0, ints=(), floats=(), params=()) -> int:
        inputs = list(inputs)
        if not 1 <= len(inputs) <= 2 or len(ints) > NODE_INTS - 4 or len(floats) > NODE_FLOATS:
            raise ValueError(f"a {kind} node takes 1 or 2 inputs, {NODE_INTS - 4} integers and "
                             f"{NODE_FLOATS} floats")
        self.ints += [KINDS.index(kind), *(inputs + [-1])[:2], int(flags), *map(int, ints),
                      *[0] * (NODE_INTS - 4 - len(ints))]
        self.floats += [*map(float, floats), *[0.0] * (NODE_FLOATS - len(floats))]
        self.params += [p for p in params if p is not None]
        self.nodes += 1
        return self.nodes

    def spec(self) -> GraphSpec:
        if not self.nodes:
            raise ValueError("the graph has no nodes")
        return GraphSpec(self.ints, self.floats, self.params)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


# ----------------------------------------------------------------------- the encoders

def linear(g: GraphBuilder, x: int, weight: Tensor, bias: Tensor | None) -> int:
    """``x W^T + b``."""
    return g.node("linear", [x], bias is not None, params=(weight, bias))


def conv2d(g: GraphBuilder, x: int, weight: Tensor, bias: Tensor | None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> int:
    """A 2-D convolution with zero padding (``padding`` numbers or ``"valid"``)."""
    if isinstance(padding, str):
        if padding != "valid":
            raise UnsupportedLayer(f"padding={padding!r}")
        padding = 0
    return g.node("conv2d", [x], bias is not None, [*_pair(stride), *_pair(padding), *_pair(dilation), groups],
                  params=(weight, bias))


def act(g: GraphBuilder, x: int, name: str, alpha: float, gain: float = 1.0, clamp: float = -1.0,
        bias: Tensor | None = None) -> int:
    """``clamp(gain * s(x + bias))`` with a bias along dim 1 (``clamp < 0``: none)."""
    if name not in activations.CODES:
        raise UnsupportedLayer(f"activation {name!r}")
    return g.node("act", [x], bias is not None, [activations.CODES[name]], [alpha, gain, clamp], params=(bias,))


def flatten(g: GraphBuilder, x: int) -> int:
    """``(B, ...)`` to ``(B, features)``."""
    return g.node("flatten", [x])


def avgpool(g: GraphBuilder, x: int, kernel, stride=None, padding=0, ceil_mode=False,
            count_include_pad=True) -> int:
    """2-D average pooling (no divisor override)."""
    stride = kernel if stride is None or stride == [] else stride
    return g.node("avgpool", [x], int(ceil_mode) | int(count_include_pad) << 1,
                  [*_pair(kernel), *_pair(stride), *_pair(padding)])


def norm(g: GraphBuilder, x: int, groups: int, per_channel: bool, weight: Tensor | None, bias: Tensor | None,
         eps: float) -> int:
    """Per-sample normalisation over ``groups`` groups of channels with an affine map per
    channel (GroupNorm) or per feature (LayerNorm over all non-batch dimensions)."""
    return g.node("norm", [x], int(weight is not None) | int(bias is not None) << 1, [groups, int(per_channel)],
                  [eps], params=(weight, bias))


def add(g: GraphBuilder, x: int, y: int) -> int:
    """``x + y`` of one shape."""
    return g.node("add", [x, y])


def scale(g: GraphBuilder, x: int, c: float) -> int:
    """``c * x`` for a constant ``c``."""
    return g.node("scale", [x], floats=[c])


def global_pool(g: GraphBuilder, x: int, mean: bool) -> int:
    """The mean (or sum) over the two spatial dimensions: ``(B, C, H, W)`` to ``(B, C)``."""
    return g.node("global_pool", [x], int(mean))


def projection(g: GraphBuilder, x: int, embedding: Tensor) -> int:
    """``<embedding[y], x>`` per sample for a ``(B, features)`` value and the step's
    labels ``y``: a projection discriminator's class term (the labels are the graph's
    second input)."""
    return g.node("projection", [x], params=(embedding,))


# ------------------------------------------------------------------------- the losses

class CriticLoss(NamedTuple):
    """Result of a critic step.

    ``loss``: the critic's loss, ``mean D(fake) - mean D(real) + lam * penalty``;
    ``loss.backward()`` accumulates its exact parameter gradients.
    ``wasserstein``: the W estimate ``mean D(real) - mean D(fake)`` (detached).
    ``penalty``: ``mean phi(||grad D(x^)||)`` before ``lam`` (detached; 0 for WGAN;
    for R1 the mean squared norm, plus R2's).
    """

    loss: Tensor
    wasserstein: Tensor
    penalty: Tensor


class _CriticStep(torch.autograd.Function):
    """Runs a whole critic step in its forward and hands the parameter gradients it
    computed to autograd, scaled by the incoming gradient, in its (first-order) backward.

    The gradients are intermediates, neither inputs nor outputs, so they are kept on
    ctx rather than saved: the backward then owns the only reference, scales them in
    place and gives them away, and AccumulateGrad can adopt them without a copy.
    """

    @staticmethod
    def forward(ctx, step, real, fake, eps, labels, *params):
        param_grads = any(ctx.needs_input_grad[5:])
        loss, wasserstein, penalty, grads = step(real, fake, eps, labels, list(params), param_grads)
        ctx.n_params = len(params)
        ctx.grads = grads
        ctx.mark_non_differentiable(wasserstein, penalty)
        return loss, wasserstein, penalty

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, _grad_wasserstein, _grad_penalty):
        grads, ctx.grads = ctx.grads, None
        if grads is None:
            raise RuntimeError("the critic step's backward ran twice: its gradients were "
                               "already handed over (compute a new loss for each backward)")
        if not grads:
            return (None,) * (5 + ctx.n_params)
        for g in grads:
            g.mul_(grad_loss)
        return (None, None, None, None, None, *grads)


def check_inputs(real: Tensor, fake: Tensor, params) -> tuple[Tensor, Tensor]:
    """The real and fake batches of a critic step, checked without reading their data:
    any (B, ...) tensors of one shape, detached, alike, with the dtype and device of the
    parameters ``params``. Returns them in the parameters' dtype under autocast."""
    if params:
        real, fake = _checks.autocast_to(real, params[0].dtype), _checks.autocast_to(fake, params[0].dtype)
    for name, t in (("real", real), ("fake", fake)):
        if not isinstance(t, Tensor) or t.dim() < 2:
            raise ValueError(f"{name} must be a (batch, ...) tensor, got {getattr(t, 'shape', type(t).__name__)}")
        if t.requires_grad:
            raise ValueError(
                f"{name} requires grad, but this is the critic step: pass {name}.detach() "
                "(the generator is trained in its own step)")
    if real.shape[0] != fake.shape[0]:
        raise ValueError(f"real and fake must have the same batch size, got {real.shape[0]} "
                         f"and {fake.shape[0]}")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.shape[0] == 0:
        raise ValueError("real and fake are empty batches")
    _checks.check_like(fake, "fake", real, "real")
    _checks.check_dtype(real, "real")
    for i, p in enumerate(params):
        _checks.check_like(p, f"parameter {i}", real, "real")
    return real, fake


def _prepare_eps(eps: Tensor | None, real: Tensor) -> Tensor:
    if eps is None:
        return torch.rand(real.shape[0], dtype=real.dtype, device=real.device)
    return _checks.per_sample_weights(eps, "eps", real)


def _step_function(backend: str, spec: GraphSpec, loss: str, lam: float, lam2: float, center: float,
                   one_sided: bool):
    """The step on ``backend``: the extension's ``graph_step``, whose elementwise kernels
    are the Triton ones on the ``triton`` backend (one C++ orchestration for all)."""
    triton = backend == "triton"
    if triton:
        from fastgan.kernels import graph_elementwise  # noqa: F401  (registers the Triton kernels)
    op = _extension.ops().graph_step

    def step(real, fake, eps, labels, params, param_grads):
        return op(real, fake, eps, labels, params, spec.ints, spec.floats, LOSSES[loss], lam, lam2, center,
                  one_sided, param_grads, triton)
    return step


def graph_loss(spec: GraphSpec, critic: Callable[..., Tensor], real: Tensor, fake: Tensor, *,
               loss: str = "wgan-gp", lam: float = 10.0, eps: Tensor | None = None, center: float = 1.0,
               one_sided: bool = False, lam2: float = 0.0, labels: Tensor | None = None,
               fake_labels: Tensor | None = None):
    """The critic loss of the graph ``spec`` (whose forward is ``critic``) on ``real``
    and ``fake``, with every parameter gradient computed in one fused pass;
    ``loss.backward()`` accumulates them.

    ``loss``: ``"wgan"`` (``mean D(fake) - mean D(real)``), ``"wgan-gp"`` (plus ``lam``
    times the mean of ``phi(||grad D(x^)||)``, ``x^ = eps real + (1 - eps) fake``, ``phi``
    two- or one-sided about ``center``) or ``"r1"`` (the non-saturating logistic loss
    ``mean softplus(D(fake)) + mean softplus(-D(real))`` plus ``lam`` times the mean of
    ``||grad D(real)||^2`` and ``lam2`` times the mean of ``||grad D(fake)||^2``: R1 and
    R2 with ``lam = gamma / 2``; ``penalty`` is then the sum of the two means). On the
    ``eager`` backend the same loss is built with autograd (``create_graph=True``) on
    ``critic``: the oracle of the tests.

    A conditional graph (one with a projection node) takes the classes of the real
    batch, ``labels``, and of the fake one, ``fake_labels`` (``labels`` when omitted),
    and ``critic`` is then ``critic(x, y)``; the interpolates take their real sample's
    class.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    params = spec.params
    real, fake = check_inputs(real, fake, params)
    _checks.check_finite(real, "real")
    _checks.check_finite(fake, "fake")
    lam = _checks.check_number(lam, "lam", minimum=0.0)
    lam2 = _checks.check_number(lam2, "lam2", minimum=0.0)
    center = _checks.check_number(center, "center")
    if lam2 and loss != "r1":
        raise ValueError("lam2 (R2) is only used with the r1 loss")
    if loss == "wgan-gp":
        eps = _prepare_eps(eps, real)
    elif eps is not None:
        raise ValueError("eps is only used with the wgan-gp loss")
    classes = _prepare_labels(spec, labels, fake_labels, real)
    backend = backends.resolve(real.device)
    if backend == "eager":
        r = reference.chain_loss(critic, real, fake, loss, lam, eps, center, bool(one_sided), lam2,
                                 labels=None if classes is None else classes.chunk(2))
        return CriticLoss(r.loss, r.wasserstein, r.penalty)
    step = _step_function(backend, spec, loss, lam, lam2, center, bool(one_sided))
    return CriticLoss(*_CriticStep.apply(step, real.contiguous(), fake.contiguous(), eps, classes, *params))


def _prepare_labels(spec: GraphSpec, labels: Tensor | None, fake_labels: Tensor | None, real: Tensor):
    """The real then the fake batch's classes, one ``(2B,)`` int64 tensor, for a
    conditional graph; None for an unconditional one (which takes no labels)."""
    if not spec.conditional():
        if labels is not None or fake_labels is not None:
            raise ValueError("labels are only taken by a conditional critic (one with a projection "
                             "<embed(y), h>)")
        return None
    if labels is None:
        raise ValueError("this critic is conditional: pass the real batch's classes, labels=...")
    fake_labels = labels if fake_labels is None else fake_labels
    for name, t in (("labels", labels), ("fake_labels", fake_labels)):
        if not isinstance(t, Tensor) or t.dtype != torch.int64 or tuple(t.shape) != (real.shape[0],):
            raise ValueError(f"{name} must be an int64 tensor of shape ({real.shape[0]},), one class per sample, "
                             f"got {getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}")
        if t.device != real.device:
            raise ValueError(f"{name} is on {t.device}, the batches on {real.device}")
    return torch.cat([labels, fake_labels])


def _register_fake_impls() -> None:
    @torch.library.register_fake("fastgan::graph_step")
    def _(real, fake, eps, labels, params, ints, floats, loss, lam, lam2, center, one_sided, param_grads, triton):
        grads = [torch.empty_like(p) for p in params] if param_grads else []
        return real.new_empty(()), real.new_empty(()), real.new_empty(()), grads


if _extension.load_error() is None:
    _register_fake_impls()
