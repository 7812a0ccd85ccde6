"""The fused step of an MLP critic in functional form: its parameters as the flat list
of an ``nn.Sequential(Linear, act, ..., Linear(d, 1))``, run as a graph of linear and
act nodes by the one graph engine (:mod:`fastgan.ops.graph`); ``eager`` runs
:func:`fastgan.reference.mlp_forward` with autograd."""
from __future__ import annotations

import functools
from typing import Sequence

import torch

from fastgan import _checks, reference
from fastgan.ops import graph as G
from fastgan.ops.graph import CriticLoss, graph_loss

Tensor = torch.Tensor
ACTIVATIONS = tuple(reference.ACTIVATIONS)


def _check_params(params: Sequence[Tensor], like: Tensor, like_name: str) -> None:
    if len(params) < 4 or len(params) % 2:
        raise ValueError("params must be [W_1, b_1, ..., w_L, b_L] with at least one hidden "
                         f"layer, got {len(params)} tensors")
    width = like.shape[1]
    for i, p in enumerate(params):
        _checks.check_like(p, f"parameter {i}", like, like_name)
        last = i >= len(params) - 2
        if i % 2 == 0:
            if p.dim() != 2 or p.shape[1] != width or (last and p.shape[0] != 1):
                raise ValueError(f"parameter {i} (a weight) must be ({1 if last else 'd'}, {width}), "
                                 f"got {tuple(p.shape)}")
            width = p.shape[0]
        elif tuple(p.shape) != (width,):
            raise ValueError(f"parameter {i} (a bias) must be ({width},), got {tuple(p.shape)}")


def _check_activation(act: str, alpha: float) -> float:
    if act not in reference.ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {', '.join(ACTIVATIONS)}")
    return _checks.check_number(alpha, "negative_slope", minimum=0.0)


def mlp_spec(params: Sequence[Tensor], act: str, alpha: float) -> G.GraphSpec:
    """The graph of the MLP with parameters ``params``: linear and act nodes, the bias
    of each hidden linear folded into its activation."""
    g = G.GraphBuilder()
    x = 0
    for i in range(0, len(params) - 2, 2):
        x = G.act(g, G.linear(g, x, params[i], params[i + 1]), act, alpha)
    G.linear(g, x, params[-2], params[-1])
    return g.spec()


class MLPGraph:
    """The graph of an MLP critic, known from its parameters without tracing (so that
    ``torch.compile`` runs its fused step from the first call), with what a
    :class:`~fastgan.ops.trace.TracedCritic` offers: ``nodes`` and ``loss``. ``forward``
    is the critic's forward, which the ``eager`` backend differentiates."""

    def __init__(self, params: Sequence[Tensor], act: str, alpha: float, forward):
        self.params, self.forward = list(params), forward
        self.spec = mlp_spec(self.params, act, alpha)
        self.nodes = len(self.params) - 1  # a linear and an act per hidden layer, and the output linear

    def loss(self, real: Tensor, fake: Tensor, **kwargs) -> CriticLoss:
        """:func:`fastgan.ops.graph.graph_loss` on this critic."""
        return graph_loss(self.spec, self.forward, real, fake, **kwargs)


def critic_loss(real: Tensor, fake: Tensor, params: Sequence[Tensor], act: str = "lrelu",
                alpha: float = 0.2, *, penalty: bool = True, lam: float = 10.0,
                eps: Tensor | None = None, center: float = 1.0,
                one_sided: bool = False) -> CriticLoss:
    """The fused WGAN-GP (``penalty=True``) or WGAN critic loss of an MLP critic.

    Computes the loss and every parameter gradient in one pass, with no
    ``create_graph``; ``loss.backward()`` then accumulates the gradients into the
    parameters' ``.grad``. ``eps`` (one per sample: ``(B,)``, ``(B, 1)``, ``(B, 1, 1, 1)``...)
    are the interpolation weights; drawn from ``U[0, 1)`` with torch's RNG when omitted.
    """
    alpha = _check_activation(act, alpha)
    if params:  # under autocast: the step runs in the parameters' dtype
        real, fake = _checks.autocast_to(real, params[0].dtype), _checks.autocast_to(fake, params[0].dtype)
    for name, t in (("real", real), ("fake", fake)):
        _checks.check_features(t, name, params[0].shape[1] if params else 0)
    _check_params(params, real, "real")
    if not penalty and eps is not None:
        raise ValueError("eps is only used with the gradient penalty")
    graph = MLPGraph(params, act, alpha, functools.partial(reference.mlp_forward, params=params, act=act, alpha=alpha))
    return graph.loss(real, fake, loss="wgan-gp" if penalty else "wgan", lam=lam, eps=eps, center=center,
                      one_sided=one_sided)
