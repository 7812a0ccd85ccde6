"""Modules users drop into their GAN code."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from fastgan.ops.critic import ACTIVATIONS, CriticLoss, critic_loss, mlp_critic

Tensor = torch.Tensor


def _activation_module(activation: str, negative_slope: float) -> nn.Module:
    if activation == "relu":
        return nn.ReLU()
    if activation == "lrelu":
        return nn.LeakyReLU(negative_slope)
    if activation == "tanh":
        return nn.Tanh()
    if activation == "softplus":
        return nn.Softplus()
    if activation == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")


def _activation_name(module: nn.Module) -> tuple[str, float]:
    if type(module) is nn.ReLU:
        return "relu", 0.0
    if type(module) is nn.LeakyReLU:
        return "lrelu", float(module.negative_slope)
    if type(module) is nn.Tanh:
        return "tanh", 0.0
    if type(module) is nn.Softplus and module.beta == 1 and module.threshold == 20:
        return "softplus", 0.0
    if type(module) is nn.SiLU:
        return "silu", 0.0
    raise ValueError(f"FusedMLPCritic supports ReLU, LeakyReLU, Tanh, Softplus() and SiLU "
                     f"activations, got {module!r}")


class FusedMLPCritic(nn.Sequential):
    """An MLP critic ``in_features -> hidden_features... -> 1`` with fused kernels.

    It is an ``nn.Sequential(Linear, act, ..., Linear(h, 1))``: same modules, same
    parameter names and ``state_dict``, same initialisation. Its ``forward`` runs the
    fused forward (differentiable twice), and :meth:`wgan_gp_loss` / :meth:`wgan_loss`
    run a whole critic step, gradients included, in one fused pass.

    Args:
        in_features: width of the critic's input.
        hidden_features: widths of the hidden layers (at least one).
        activation: ``relu``, ``lrelu``, ``tanh``, ``softplus`` or ``silu``.
        negative_slope: slope of ``lrelu`` for negative inputs (>= 0).
    """

    def __init__(self, in_features: int, hidden_features: Sequence[int] = (512, 512, 512),
                 activation: str = "lrelu", negative_slope: float = 0.2, *, device=None, dtype=None):
        hidden_features = tuple(int(h) for h in hidden_features)
        if int(in_features) < 1 or not hidden_features or min(hidden_features) < 1:
            raise ValueError("FusedMLPCritic needs in_features >= 1 and at least one hidden layer "
                             f"of width >= 1, got {in_features} and {hidden_features}")
        if negative_slope < 0:
            raise ValueError(f"negative_slope must be >= 0, got {negative_slope}")
        layers = []
        width = int(in_features)
        for h in hidden_features:
            layers += [nn.Linear(width, h, device=device, dtype=dtype),
                       _activation_module(activation, negative_slope)]
            width = h
        layers.append(nn.Linear(width, 1, device=device, dtype=dtype))
        super().__init__(*layers)
        self.in_features = int(in_features)
        self.hidden_features = hidden_features
        self.activation = activation
        self.negative_slope = float(negative_slope)

    @property
    def _alpha(self) -> float:
        return self.negative_slope if self.activation == "lrelu" else 0.0

    def _params(self) -> list[Tensor]:
        return list(self.parameters())

    def forward(self, x: Tensor) -> Tensor:
        """D(x) of shape ``(..., 1)`` for ``x`` of shape ``(..., in_features)``."""
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {tuple(x.shape)}")
        lead = x.shape[:-1]
        out = mlp_critic(x.reshape(-1, self.in_features), self._params(), self.activation, self._alpha)
        return out.reshape(*lead, 1)

    def wgan_gp_loss(self, real: Tensor, fake: Tensor, lam: float = 10.0, eps: Tensor | None = None,
                     center: float = 1.0, one_sided: bool = False) -> CriticLoss:
        """The WGAN-GP critic loss (Gulrajani et al. 2017), fused.

        ``loss = mean D(fake) - mean D(real) + lam * mean phi(||grad D(x^)||)``, with
        ``x^ = eps real + (1 - eps) fake`` and ``phi(n) = (n - center)^2``, or
        ``max(0, n - center)^2`` when ``one_sided``. ``real`` and ``fake`` are
        ``(B, in_features)`` and must not require grad. ``loss.backward()``
        accumulates the exact gradients into the parameters' ``.grad``.
        """
        return critic_loss(real, fake, self._params(), self.activation, self._alpha, penalty=True,
                           lam=lam, eps=eps, center=center, one_sided=one_sided)

    def wgan_loss(self, real: Tensor, fake: Tensor) -> CriticLoss:
        """The WGAN critic loss ``mean D(fake) - mean D(real)`` (for weight clipping), fused."""
        return critic_loss(real, fake, self._params(), self.activation, self._alpha, penalty=False)

    @classmethod
    def from_sequential(cls, seq: nn.Sequential) -> "FusedMLPCritic":
        """A FusedMLPCritic with a copy of the parameters of
        ``nn.Sequential(Linear, act, ..., Linear(h, 1))``."""
        modules = list(seq)
        linears, acts = modules[0::2], modules[1::2]
        if (len(modules) < 3 or len(modules) % 2 == 0
                or not all(type(m) is nn.Linear and m.bias is not None for m in linears)
                or linears[-1].out_features != 1):
            raise ValueError("from_sequential expects Sequential(Linear, act, ..., Linear(h, 1)) "
                             "with biases and at least one hidden layer")
        names = {_activation_name(a) for a in acts}
        if len(names) != 1:
            raise ValueError(f"from_sequential expects one activation throughout, got {sorted(names)}")
        activation, slope = names.pop()
        first = linears[0].weight
        critic = cls(linears[0].in_features, [m.out_features for m in linears[:-1]], activation,
                     slope if activation == "lrelu" else 0.2, device=first.device, dtype=first.dtype)
        critic.load_state_dict(seq.state_dict())
        return critic

    def to_sequential(self) -> nn.Sequential:
        """A plain ``nn.Sequential`` with a copy of these modules and parameters."""
        return nn.Sequential(*copy.deepcopy(list(self)))

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"
