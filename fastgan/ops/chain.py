"""The fused critic step of a chain of layers: convolutional and MLP critics, with the
WGAN, WGAN-GP and R1 losses (``fastgan::chain_step``, csrc/chain.cpp).

A chain is a list of torch modules applied in order, from this table:

======================  ============================================================
module                  chain layers
======================  ============================================================
``nn.Linear``           linear (bias optional)
``nn.Conv2d``           conv2d: any kernel, stride, padding, dilation; groups 1, zero
                        padding mode, bias optional
activations             act: ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``,
                        ``Softplus()``, ``SiLU``, ``ELU``, ``GELU()``; ``Identity`` is
                        skipped
``fastgan.BiasAct``     act with a bias, gain and clamp (channels on dim 1)
``fastgan.FusedConv2d`` conv2d without bias, then act with the bias
``fastgan.FusedLinear`` linear without bias, then act with the bias
``nn.Flatten()``        flatten (all non-batch dimensions)
``nn.AvgPool2d``        avgpool (no ``divisor_override``)
``nn.LayerNorm``        layernorm over all non-batch dimensions (WGAN-GP's critic norm)
======================  ============================================================

BatchNorm is not in the table on purpose: it mixes the samples of a batch, which makes
the per-sample gradient penalty meaningless (Gulrajani et al. 2017, section 4).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from fastgan import _checks, _extension, backends, reference
from fastgan.ops.bias_act import DEFAULT_ALPHA
from fastgan.ops.critic import CriticLoss, _check_batch, _CriticStep, _prepare_eps

Tensor = torch.Tensor

LINEAR, CONV2D, ACT, FLATTEN, AVGPOOL, LAYERNORM = range(6)
LAYER_INTS, LAYER_FLOATS = 8, 3
#: Activation codes of csrc/activation_math.h.
ACT_CODES = {"relu": 0, "lrelu": 1, "tanh": 2, "softplus": 3, "silu": 4, "sigmoid": 5, "elu": 6,
             "gelu": 7, "linear": 8}
LOSSES = {"wgan": 0, "wgan-gp": 1, "r1": 2}


class ChainSpec(NamedTuple):
    """A chain as ``fastgan::chain_step`` takes it: per-layer records and the
    parameters in layer order."""

    ints: list
    floats: list
    params: list


class UnsupportedLayer(TypeError):
    """A module the fused chain cannot run."""


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def activation_of(module: nn.Module) -> tuple[str, float] | None:
    """The bias_act name and alpha of a torch activation module, or None."""
    kind = type(module)
    if kind is nn.ReLU:
        return "relu", 0.0
    if kind is nn.LeakyReLU:
        return "lrelu", float(module.negative_slope)
    if kind in (nn.Tanh, nn.Sigmoid, nn.SiLU):
        return {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu"}[kind], 0.0
    if kind is nn.Softplus and module.beta == 1 and module.threshold == 20:
        return "softplus", 0.0
    if kind is nn.ELU:
        return "elu", float(module.alpha)
    if kind is nn.GELU and module.approximate == "none":
        return "gelu", 0.0
    return None


def _unsupported(index: int, module: nn.Module, why: str = "") -> UnsupportedLayer:
    return UnsupportedLayer(
        f"layer {index} ({module!r}) is not supported by the fused chain{': ' + why if why else ''}; "
        "supported: Linear, Conv2d, ReLU/LeakyReLU/Tanh/Sigmoid/Softplus/SiLU/ELU/GELU, BiasAct, "
        "FusedConv2d, FusedLinear, Flatten, AvgPool2d, LayerNorm. For any other critic use "
        "fastgan.gradient_penalty(critic, real, fake)")


def _act_record(name: str, alpha: float, gain: float, clamp: float, has_bias: bool):
    return [ACT, int(has_bias), ACT_CODES[name], 0, 0, 0, 0, 0], [float(alpha), float(gain), float(clamp)]


def chain_spec(modules: Sequence[nn.Module]) -> ChainSpec:
    """The chain records of ``modules`` (see the module's table); raises
    :class:`UnsupportedLayer` naming the first module it cannot run."""
    from fastgan.nn import BiasAct, FusedConv2d, FusedLinear

    ints, floats, params = [], [], []

    def add(record, fl=(0.0, 0.0, 0.0)):
        ints.extend(record + [0] * (LAYER_INTS - len(record)))
        floats.extend(list(fl))

    def add_act(index, m, has_bias):
        if m.act not in ACT_CODES:
            raise _unsupported(index, m, f"activation {m.act!r}")
        alpha = DEFAULT_ALPHA[m.act] if m.alpha is None else m.alpha
        record, fl = _act_record(m.act, alpha, 1.0 if m.gain is None else m.gain,
                                 -1.0 if m.clamp is None else m.clamp, has_bias)
        add(record, fl)
        if has_bias:
            params.append(m.bias)

    for i, m in enumerate(modules):
        if isinstance(m, FusedConv2d) or type(m) is nn.Conv2d:
            if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
                raise _unsupported(i, m, "groups, padding_mode and string padding other than 'valid' are not")
            padding = (0, 0) if isinstance(m.padding, str) else _pair(m.padding)
            own_bias = type(m) is nn.Conv2d and m.bias is not None
            add([CONV2D, int(own_bias), *_pair(m.stride), *padding, *_pair(m.dilation)])
            params.append(m.weight)
            if own_bias:
                params.append(m.bias)
            if isinstance(m, FusedConv2d):
                add_act(i, m, m.bias is not None)
        elif isinstance(m, FusedLinear) or type(m) is nn.Linear:
            own_bias = type(m) is nn.Linear and m.bias is not None
            add([LINEAR, int(own_bias)])
            params.append(m.weight)
            if own_bias:
                params.append(m.bias)
            if isinstance(m, FusedLinear):
                add_act(i, m, m.bias is not None)
        elif type(m) is BiasAct:
            if m.dim != 1:
                raise _unsupported(i, m, "the chain's BiasAct adds its bias along dim 1")
            add_act(i, m, True)
        elif activation_of(m) is not None:
            name, alpha = activation_of(m)
            add(*_act_record(name, alpha, 1.0, -1.0, False))
        elif type(m) is nn.Identity:
            continue
        elif type(m) is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1:
                raise _unsupported(i, m, "only Flatten(1, -1)")
            add([FLATTEN])
        elif type(m) is nn.AvgPool2d:
            if m.divisor_override is not None:
                raise _unsupported(i, m, "divisor_override")
            stride = m.kernel_size if m.stride is None else m.stride
            add([AVGPOOL, int(m.ceil_mode) | int(m.count_include_pad) << 1, *_pair(m.kernel_size), *_pair(stride),
                 *_pair(m.padding)])
        elif type(m) is nn.LayerNorm:
            add([LAYERNORM, int(m.weight is not None) | int(m.bias is not None) << 1], (float(m.eps), 0.0, 0.0))
            params += [p for p in (m.weight, m.bias) if p is not None]
        else:
            raise _unsupported(i, m)
    if not ints:
        raise ValueError("the chain has no layers")
    return ChainSpec(ints, floats, params)


def _step_function(backend: str, spec: ChainSpec, loss: str, lam: float, center: float, one_sided: bool):
    """The step on ``backend``: the extension's ``chain_step``, whose elementwise kernels
    are the Triton ones on the ``triton`` backend (one C++ orchestration for all)."""
    triton = backend == "triton"
    if triton:
        from fastgan.kernels import chain_elementwise  # noqa: F401  (registers the Triton kernels)
    op = _extension.ops().chain_step

    def step(real, fake, eps, params, param_grads):
        return op(real, fake, eps, params, spec.ints, spec.floats, LOSSES[loss], lam, center, one_sided,
                  param_grads, triton)
    return step


def chain_loss(modules: Sequence[nn.Module], real: Tensor, fake: Tensor, *, loss: str = "wgan-gp",
               lam: float = 10.0, eps: Tensor | None = None, center: float = 1.0,
               one_sided: bool = False) -> CriticLoss:
    """The critic loss of the chain ``modules`` on ``real`` and ``fake``, with every
    parameter gradient computed in one fused pass; ``loss.backward()`` accumulates them.

    ``loss``: ``"wgan"`` (``mean D(fake) - mean D(real)``), ``"wgan-gp"`` (plus ``lam``
    times the mean of ``phi(||grad D(x^)||)``, ``x^ = eps real + (1 - eps) fake``, ``phi``
    two- or one-sided about ``center``) or ``"r1"`` (the non-saturating logistic loss
    ``mean softplus(D(fake)) + mean softplus(-D(real))`` plus ``lam`` times the mean of
    ``||grad D(real)||^2``: R1 with ``lam = gamma / 2``). On the ``eager`` backend the
    same loss is built with autograd (``create_graph=True``): the oracle of the tests.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    spec = chain_spec(modules)
    params = spec.params
    if params:
        real, fake = _checks.autocast_to(real, params[0].dtype), _checks.autocast_to(fake, params[0].dtype)
    _check_batch(real, fake)
    for i, p in enumerate(params):
        _checks.check_like(p, f"parameter {i}", real, "real")
    lam = _checks.check_number(lam, "lam", minimum=0.0)
    center = _checks.check_number(center, "center")
    if loss == "wgan-gp":
        eps = _prepare_eps(eps, real)
    elif eps is not None:
        raise ValueError("eps is only used with the wgan-gp loss")
    backend = backends.resolve(real.device)
    if backend == "eager":
        r = reference.chain_loss(nn.Sequential(*modules), real, fake, loss, lam, eps, center, bool(one_sided))
        return CriticLoss(r.loss, r.wasserstein, r.penalty)
    step = _step_function(backend, spec, loss, lam, center, bool(one_sided))
    return CriticLoss(*_CriticStep.apply(step, real.contiguous(), fake.contiguous(), eps, *params))


def _register_fake_impls() -> None:
    @torch.library.register_fake("fastgan::chain_step")
    def _(real, fake, eps, params, ints, floats, loss, lam, center, one_sided, param_grads, triton):
        grads = [torch.empty_like(p) for p in params] if param_grads else []
        return real.new_empty(()), real.new_empty(()), real.new_empty(()), grads


if _extension.load_error() is None:
    _register_fake_impls()
