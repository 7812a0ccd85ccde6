"""The activations: one table. Every other list of them in fastgan (the graph's codes,
``bias_act``'s default slopes, the Triton kernels' constants, the modules the tracer
recognises) is derived from it, and tests pin csrc/activation_math.h's ``Act`` codes
and the C++ names to it. :mod:`fastgan.reference` holds their math, the oracle."""
from __future__ import annotations

from typing import NamedTuple

from torch import nn


class Activation(NamedTuple):
    """One activation: its code in csrc/activation_math.h, its default ``alpha`` (the
    leaky-ReLU slope, the ELU scale), whether ``s''`` is non-zero (the fused step then
    has second-order terms) and the torch module that computes it."""

    code: int
    default_alpha: float
    smooth: bool
    module: type[nn.Module]


TABLE = {
    "relu": Activation(0, 0.0, False, nn.ReLU),
    "lrelu": Activation(1, 0.2, False, nn.LeakyReLU),
    "tanh": Activation(2, 0.0, True, nn.Tanh),
    "softplus": Activation(3, 0.0, True, nn.Softplus),
    "silu": Activation(4, 0.0, True, nn.SiLU),
    "sigmoid": Activation(5, 0.0, True, nn.Sigmoid),
    "elu": Activation(6, 1.0, True, nn.ELU),
    "gelu": Activation(7, 0.0, True, nn.GELU),
    "linear": Activation(8, 0.0, False, nn.Identity),
}
CODES = {name: a.code for name, a in TABLE.items()}
DEFAULT_ALPHA = {name: a.default_alpha for name, a in TABLE.items()}
#: Activations whose derivative is piecewise constant (no curvature term).
PIECEWISE_LINEAR = tuple(name for name, a in TABLE.items() if not a.smooth)


def module(name: str, alpha: float | None = None) -> nn.Module:
    """The torch module of activation ``name`` (``alpha`` for lrelu and elu)."""
    if name not in TABLE:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(TABLE)}")
    alpha = TABLE[name].default_alpha if alpha is None else alpha
    return TABLE[name].module(alpha) if name in ("lrelu", "elu") else TABLE[name].module()


def of_module(m: nn.Module) -> tuple[str, float] | None:
    """The name and alpha of a torch activation module, or None when it is none of the
    table's (``Softplus`` with beta or threshold changed, ``GELU(approximate='tanh')``,
    and ``Identity``, which is no activation to a caller)."""
    kind = type(m)
    if kind is nn.LeakyReLU:
        return "lrelu", float(m.negative_slope)
    if kind is nn.ELU:
        return "elu", float(m.alpha)
    if kind is nn.Softplus and not (m.beta == 1 and m.threshold == 20):
        return None
    if kind is nn.GELU and m.approximate != "none":
        return None
    for name, a in TABLE.items():
        if kind is a.module and name != "linear":
            return name, 0.0
    return None
