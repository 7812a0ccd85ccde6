"""The activations of fastgan's Triton kernels, with their first and second derivatives:
the same formulas as csrc/activation_math.h, under the codes of fastgan.activations."""
from __future__ import annotations

import triton
import triton.language as tl

from fastgan.activations import CODES

#: Activation codes: fastgan.activations' table (csrc/activation_math.h's).
ACT_CODES = CODES
RELU, LRELU, TANH, SOFTPLUS, SILU, SIGMOID, ELU, GELU, LINEAR = (
    CODES[n] for n in ("relu", "lrelu", "tanh", "softplus", "silu", "sigmoid", "elu", "gelu", "linear"))


@triton.jit
def _sigmoid(a):
    return 1.0 / (1.0 + tl.exp(-a))


@triton.jit
def _activation(a, ALPHA: tl.constexpr, ACT: tl.constexpr):
    """s(a), s'(a), s''(a); the same formulas as csrc/activation_math.h. Scalars that
    must keep double precision are constexpr: float arguments would arrive as fp32."""
    zero = tl.zeros_like(a)
    one = zero + 1.0
    if ACT == 0:  # relu
        s = tl.where(a > 0, a, zero)
        ds = tl.where(a > 0, one, zero)
        d2s = zero
    elif ACT == 1:  # lrelu
        s = tl.where(a > 0, a, ALPHA * a)
        ds = tl.where(a > 0, one, zero + ALPHA)
        d2s = zero
    elif ACT == 2:  # tanh, from exp(-2|a|) so that it never overflows
        t = tl.exp(-2.0 * tl.abs(a))
        s = tl.where(a >= 0, one, -one) * (1.0 - t) / (1.0 + t)
        ds = 1.0 - s * s
        d2s = -2.0 * s * ds
    elif ACT == 3:  # softplus (beta 1, identity above the threshold, as torch.nn.Softplus)
        sg = _sigmoid(a)
        linear = a > 20.0
        s = tl.where(linear, a, tl.maximum(a, zero) + tl.log(1.0 + tl.exp(-tl.abs(a))))
        ds = tl.where(linear, one, sg)
        d2s = tl.where(linear, zero, sg * (1.0 - sg))
    elif ACT == 4:  # silu
        sg = _sigmoid(a)
        s = a * sg
        ds = sg * (1.0 + a * (1.0 - sg))
        d2s = sg * (1.0 - sg) * (2.0 + a * (1.0 - 2.0 * sg))
    elif ACT == 5:  # sigmoid
        s = _sigmoid(a)
        ds = s * (1.0 - s)
        d2s = ds * (1.0 - 2.0 * s)
    elif ACT == 6:  # elu (scale ALPHA)
        e = tl.exp(tl.minimum(a, zero))
        s = tl.where(a > 0, a, ALPHA * (e - 1.0))
        ds = tl.where(a > 0, one, ALPHA * e)
        d2s = tl.where(a > 0, zero, ALPHA * e)
    elif ACT == 7:  # gelu, the exact erf form
        cdf = 0.5 * (1.0 + tl.math.erf(a * 0.70710678118654752440))
        pdf = tl.exp(-0.5 * a * a) * 0.39894228040143267794
        s = a * cdf
        ds = cdf + a * pdf
        d2s = pdf * (2.0 - a * a)
    else:  # linear
        s = a
        ds = one
        d2s = zero
    return s, ds, d2s


@triton.jit
def _derivative_from_saved(saved, ALPHA: tl.constexpr, ACT: tl.constexpr):
    """s'(a) from what the forward kept: the output's sign for relu/lrelu, else s'(a)."""
    zero = tl.zeros_like(saved)
    if ACT == 0:
        return tl.where(saved > 0, zero + 1.0, zero)
    elif ACT == 1:
        return tl.where(saved > 0, zero + 1.0, zero + ALPHA)
    elif ACT == 8:
        return zero + 1.0
    else:
        return saved
