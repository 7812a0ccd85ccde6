"""Modules users drop into their GAN code."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastgan import _checks, activations, sizes
from fastgan.activations import DEFAULT_ALPHA
from fastgan.conditional import ClassHeads, check_classes
from fastgan.ops import graph as G
from fastgan.ops.bias_act import bias_act
from fastgan.ops.critic import ACTIVATIONS, MLPGraph
from fastgan.ops.graph import CriticLoss
from fastgan.ops.trace import TracedCritic, traced

Tensor = torch.Tensor


def _activation_module(activation: str, negative_slope: float) -> nn.Module:
    """The torch module of one of FusedMLPCritic's activations."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
    return activations.module(activation, negative_slope if activation == "lrelu" else None)


def _activation_name(module: nn.Module) -> tuple[str, float]:
    """FusedMLPCritic's name and slope of a torch activation module (the graph's table,
    restricted to FusedMLPCritic's five)."""
    found = activations.of_module(module)
    if found is None or found[0] not in ACTIVATIONS:
        raise ValueError(f"FusedMLPCritic supports ReLU, LeakyReLU, Tanh, Softplus() and SiLU "
                         f"activations, got {module!r}")
    return found


def _sequential_layers(seq, caller: str) -> list[nn.Module]:
    """The layers of ``seq``, an ``nn.Sequential``; any other module is refused with a
    message that names its Sequential attribute when it has one (``self.main``)."""
    if isinstance(seq, nn.Sequential):
        return list(seq)
    if not isinstance(seq, nn.Module):
        raise TypeError(f"{caller} expects an nn.Sequential, got {type(seq).__name__}")
    inner = [name for name, m in seq.named_children() if isinstance(m, nn.Sequential)]
    hint = (f"; if its forward only applies its Sequential, pass that: {caller}(model.{inner[0]})"
            if len(inner) == 1 else "")
    raise TypeError(f"{caller} expects an nn.Sequential, got {type(seq).__name__}{hint}")


class GraphCritic:
    """The fused losses of a critic traced as a graph (:mod:`fastgan.ops.trace`): each
    computes the loss and every parameter gradient in one pass, with no
    ``create_graph``; ``loss.backward()`` accumulates the gradients into ``.grad``.
    Subclasses name the module to trace by :meth:`graph_module` (themselves by default)."""

    def graph_module(self) -> nn.Module:
        return self

    def traced(self) -> TracedCritic:
        """The traced graph of :meth:`graph_module` (traced once)."""
        return traced(self.graph_module())

    def check_batches(self, real: Tensor, fake: Tensor) -> None:
        """The checks of the losses' batches particular to this critic (none here)."""

    def _loss(self, real: Tensor, fake: Tensor, **kwargs) -> CriticLoss:
        self.check_batches(real, fake)
        return self.traced().loss(real, fake, **kwargs)

    def wgan_gp_loss(self, real: Tensor, fake: Tensor, lam: float = 10.0, eps: Tensor | None = None,
                     center: float = 1.0, one_sided: bool = False, *, labels: Tensor | None = None,
                     fake_labels: Tensor | None = None) -> CriticLoss:
        """The WGAN-GP critic loss (Gulrajani et al. 2017), fused:
        ``mean D(fake) - mean D(real) + lam * mean phi(||grad D(x^)||)`` with
        ``x^ = eps real + (1 - eps) fake`` (``eps`` one per sample, drawn when omitted) and
        ``phi(n) = (n - center)^2``, or ``max(0, n - center)^2`` when ``one_sided``.

        A conditional critic (``forward(x, y)`` with a projection) takes the real
        batch's classes ``labels`` and the fake batch's ``fake_labels`` (``labels`` when
        omitted); ``x^`` takes its real sample's class. So do the other losses."""
        return self._loss(real, fake, loss="wgan-gp", lam=lam, eps=eps, center=center, one_sided=one_sided,
                          labels=labels, fake_labels=fake_labels)

    def wgan_loss(self, real: Tensor, fake: Tensor, *, labels: Tensor | None = None,
                  fake_labels: Tensor | None = None) -> CriticLoss:
        """The WGAN critic loss ``mean D(fake) - mean D(real)`` (for weight clipping), fused."""
        return self._loss(real, fake, loss="wgan", labels=labels, fake_labels=fake_labels)

    def r1_loss(self, real: Tensor, fake: Tensor, gamma: float = 10.0, r2_gamma: float = 0.0, *,
                labels: Tensor | None = None, fake_labels: Tensor | None = None) -> CriticLoss:
        """The non-saturating logistic loss with the R1 penalty on the reals (the StyleGAN
        recipe), fused: ``mean softplus(D(fake)) + mean softplus(-D(real)) +
        gamma / 2 * mean ||grad D(real)||^2``, plus R2, ``r2_gamma / 2 * mean
        ||grad D(fake)||^2`` (R3GAN's R1 + R2). ``penalty`` is the mean squared norm (the
        sum of the two means with R2)."""
        gamma, r2_gamma = float(gamma), float(r2_gamma)
        for name, value in (("gamma", gamma), ("r2_gamma", r2_gamma)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        return self._loss(real, fake, loss="r1", lam=gamma / 2, lam2=r2_gamma / 2, labels=labels,
                          fake_labels=fake_labels)


class FusedMLPCritic(GraphCritic, nn.Sequential):
    """An MLP critic ``in_features -> hidden_features... -> 1`` with the fused step.

    It is an ``nn.Sequential(Linear, act, ..., Linear(h, 1))``: same modules, same
    parameter names and ``state_dict``, same initialisation, and its ``forward`` is the
    Sequential's (differentiable twice). :meth:`wgan_gp_loss`, :meth:`wgan_loss` and
    :meth:`r1_loss` run a whole critic step, gradients included, in one fused pass of
    the graph engine.

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

    def traced(self) -> MLPGraph:
        """This critic's graph, known from its layers without tracing, so that
        ``torch.compile`` runs its fused step from the first call; kept while its
        parameters stay the same tensors."""
        params = list(self.parameters())
        held = self.__dict__.get("_graph")
        if held is None or len(held.params) != len(params) or any(a is not b for a, b in zip(held.params, params)):
            held = MLPGraph(params, self.activation, self.negative_slope, self)
            self.__dict__["_graph"] = held  # (plain state: not a module, parameter or buffer)
        return held

    def graph_module(self) -> nn.Module:
        """A plain Sequential of this critic's own layers (no copies), kept while they
        stay the same modules: what :func:`fastgan.ops.fused_critic_loss` traces."""
        layers = tuple(self)
        held = self.__dict__.get("_graph_sequential")
        if held is None or len(held) != len(layers) or any(a is not b for a, b in zip(held, layers)):
            held = nn.Sequential(*layers)
            self.__dict__["_graph_sequential"] = held  # not a child: its layers are this module's
        return held

    def check_batches(self, real: Tensor, fake: Tensor) -> None:
        """Each batch is a ``(B, in_features)`` matrix of a supported dtype."""
        for name, t in (("real", real), ("fake", fake)):
            _checks.check_features(t, name, self.in_features)

    def forward(self, x: Tensor) -> Tensor:
        """D(x) of shape ``(..., 1)`` for ``x`` of shape ``(..., in_features)``."""
        if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {tuple(getattr(x, 'shape', ()))}")
        if not x.is_floating_point():
            raise TypeError(f"x has dtype {x.dtype}; the critic takes floating-point inputs")
        return super().forward(x)

    @classmethod
    def from_sequential(cls, seq: nn.Sequential) -> "FusedMLPCritic":
        """A FusedMLPCritic with a copy of the parameters of
        ``nn.Sequential(Linear, act, ..., Linear(h, 1))``, on their device and dtype.

        Converting draws no random numbers: the critic is built on the meta device and
        only then given storage and the copied parameters, so a seeded script's later
        draws are the same with and without the conversion."""
        modules = _sequential_layers(seq, "FusedMLPCritic.from_sequential")
        linears, acts = modules[0::2], modules[1::2]
        if (len(modules) < 3 or len(modules) % 2 == 0
                or not all(type(m) is nn.Linear and m.bias is not None for m in linears)
                or linears[-1].out_features != 1):
            raise ValueError("from_sequential expects Sequential(Linear, act, ..., Linear(h, 1)) "
                             "with biases and at least one hidden layer, got "
                             + ", ".join(type(m).__name__ for m in modules))
        names = {_activation_name(a) for a in acts}
        if len(names) != 1:
            raise ValueError(f"from_sequential expects one activation throughout, got {sorted(names)}")
        activation, slope = names.pop()
        first = linears[0].weight
        critic = cls(linears[0].in_features, [m.out_features for m in linears[:-1]], activation,
                     slope if activation == "lrelu" else 0.2, device="meta", dtype=first.dtype)
        critic.to_empty(device=first.device)
        critic.load_state_dict(seq.state_dict())
        return critic

    def to_sequential(self) -> nn.Sequential:
        """A plain ``nn.Sequential`` with a copy of these modules and parameters."""
        return nn.Sequential(*copy.deepcopy(list(self)))

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


class FusedCritic(GraphCritic, nn.Module):
    """Any per-sample critic the fused step supports, run as a graph traced from its own
    module (:mod:`fastgan.ops.trace` lists the nodes): plain chains, flattening CNNs,
    residual networks with GroupNorm/LayerNorm, grouped and depthwise convolutions.

    Build it from layers like an ``nn.Sequential``, or convert your critic with
    :meth:`from_module`. Either way it holds the module's own parameters (no copies):
    the same tensors, the same ``state_dict`` keys; its ``forward`` is the module's
    (differentiable twice), and its losses run the fused step.
    """

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self._adopt(nn.Sequential(*layers))

    def _adopt(self, module: nn.Module) -> None:
        traced(module)  # an unsupported node fails here, by name
        object.__setattr__(self, "_source", module)  # not a child: its children are this module's
        self._modules, self._parameters, self._buffers = module._modules, module._parameters, module._buffers

    @classmethod
    def from_module(cls, module: nn.Module) -> "FusedCritic":
        """A FusedCritic running ``module`` itself: the same parameters, ``state_dict``
        keys and device. Raises :class:`~fastgan.ops.graph.UnsupportedLayer` naming the
        first node the fused step cannot run and why; such critics take
        :func:`fastgan.gradient_penalty` instead."""
        if not isinstance(module, nn.Module):
            raise TypeError(f"FusedCritic.from_module expects an nn.Module, got {type(module).__name__}")
        critic = cls.__new__(cls)
        nn.Module.__init__(critic)
        critic._adopt(module)
        return critic

    #: The name kept from the chain engine; any module is accepted.
    from_sequential = from_module

    def graph_module(self) -> nn.Module:
        return self._source

    def forward(self, *args, **kwargs):
        return self._source(*args, **kwargs)

    def train(self, mode: bool = True) -> "FusedCritic":
        self._source.train(mode)
        return super().train(mode)

    def __iter__(self):
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index):
        return self._source[index]


def _encode_act(g: G.GraphBuilder, x: int, m, bias: Tensor | None) -> int:
    """The act node of a fastgan module with ``act``, ``alpha``, ``gain`` and ``clamp``."""
    alpha = DEFAULT_ALPHA.get(m.act, 0.0) if m.alpha is None else m.alpha
    return G.act(g, x, m.act, alpha, 1.0 if m.gain is None else m.gain, -1.0 if m.clamp is None else m.clamp, bias)


class BiasAct(nn.Module):
    """A learned bias followed by an activation, fused: ``bias_act(x, self.bias, act)``.

    ``num_channels`` is the size of ``dim`` (1 for NCHW, NHWC in channels_last memory
    and NC alike; -1 for features last).
    """

    def __init__(self, num_channels: int, act: str = "lrelu", alpha: float | None = None,
                 gain: float | None = None, clamp: float | None = None, dim: int = 1,
                 *, device=None, dtype=None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_channels, device=device, dtype=dtype))
        self.act, self.alpha, self.gain, self.clamp, self.dim = act, alpha, gain, clamp, dim

    def forward(self, x: Tensor) -> Tensor:
        return bias_act(x, self.bias, self.act, self.alpha, self.gain, self.dim, self.clamp)

    def encode_graph_node(self, g: G.GraphBuilder, x: int) -> int:
        """Its node in the fused step's graph (an act with its bias along dim 1)."""
        if self.dim != 1:
            raise G.UnsupportedLayer("the fused step's BiasAct adds its bias along dim 1")
        return _encode_act(g, x, self, self.bias)

    def extra_repr(self) -> str:
        return f"{self.bias.shape[0]}, act={self.act!r}, dim={self.dim}"


class FusedLinear(nn.Linear):
    """``nn.Linear`` whose bias add and activation run as one fused ``bias_act``. Same
    parameters and initialisation as ``nn.Linear``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, act: str = "linear",
                 alpha: float | None = None, gain: float | None = None, clamp: float | None = None,
                 *, device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.act, self.alpha, self.gain, self.clamp = act, alpha, gain, clamp

    def forward(self, x: Tensor) -> Tensor:
        return bias_act(F.linear(x, self.weight), self.bias, self.act, self.alpha, self.gain,
                        dim=-1, clamp=self.clamp)

    def encode_graph_node(self, g: G.GraphBuilder, x: int) -> int:
        """Its nodes in the fused step's graph: linear without bias, then an act with it."""
        return _encode_act(g, G.linear(g, x, self.weight, None), self, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, act={self.act!r}"


class FusedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (torch's convolution, without its bias) followed by one fused
    ``bias_act`` over the channels. Same parameters and initialisation as
    ``nn.Conv2d``; works on NCHW and channels_last inputs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, act: str = "linear", alpha: float | None = None,
                 gain: float | None = None, clamp: float | None = None, *, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias,
                         device=device, dtype=dtype)
        self.act, self.alpha, self.gain, self.clamp = act, alpha, gain, clamp

    def forward(self, x: Tensor) -> Tensor:
        y = self._conv_forward(x, self.weight, None)
        return bias_act(y, self.bias, self.act, self.alpha, self.gain, dim=1, clamp=self.clamp)

    def encode_graph_node(self, g: G.GraphBuilder, x: int) -> int:
        """Its nodes in the fused step's graph: conv2d without bias, then an act with it."""
        if self.padding_mode != "zeros":
            raise G.UnsupportedLayer(f"padding_mode={self.padding_mode!r}")
        y = G.conv2d(g, x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        return _encode_act(g, y, self, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, act={self.act!r}"


def _levels(image_size: int) -> tuple[int, int]:
    """``(start, n)`` of a DCGAN image size; a size the nets cannot take is refused."""
    found = sizes.levels(image_size, "dcgan")
    if found is None:
        raise ValueError(f"image_size {image_size}: the DCGAN nets take {sizes.supported_sizes('dcgan')}")
    return found


class DCGANCritic(GraphCritic, ClassHeads, nn.Module):
    """A DCGAN-style convolutional critic for square images of the sizes of
    :mod:`fastgan.sizes` (``start * 2**n`` pixels, ``start`` in 4..7, ``n >= 1``), built
    from FusedConv2d: stride-2 4x4 convolutions with leaky ReLU, doubling the channels
    down to ``start`` x ``start``, then a linear output. No BatchNorm (WGAN-GP's penalty is per sample);
    ``layer_norm=True`` normalises each block's features per sample instead. With
    ``num_classes``, a class ``head`` on the flattened features (:mod:`fastgan.conditional`). Its
    ``wgan_gp_loss``, ``wgan_loss`` and ``r1_loss`` run the fused step.
    """

    def __init__(self, image_size: int = 64, channels: int = 3, width: int = 64,
                 layer_norm: bool = False, negative_slope: float = 0.2, *, num_classes: int = 0,
                 head: str | None = None, device=None, dtype=None):
        super().__init__()
        start, _ = _levels(image_size)
        blocks, size, c_in, c_out = [], image_size, channels, width
        while size > start:
            act = "linear" if layer_norm else "lrelu"
            blocks.append(FusedConv2d(c_in, c_out, 4, 2, 1, act=act, alpha=negative_slope,
                                      device=device, dtype=dtype))
            size //= 2
            if layer_norm:
                blocks += [nn.LayerNorm([c_out, size, size], device=device, dtype=dtype),
                           nn.LeakyReLU(negative_slope)]
            c_in, c_out = c_out, c_out * 2
        self.features = nn.Sequential(*blocks)
        self.out = nn.Linear(c_in * start * start, 1, device=device, dtype=dtype)
        self.add_heads(c_in * start * start, num_classes, head, device, dtype)

    def phi(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)

    def psi(self, h: Tensor) -> Tensor:
        return self.out(h)


class DCGANGenerator(nn.Module):
    """A DCGAN generator for square images of the sizes of :mod:`fastgan.sizes`
    (``start * 2**n`` pixels): a linear map of the latent to ``start`` x ``start``
    features (7x7 for 28 pixels), then stride-2 transposed convolutions with BatchNorm
    and ReLU, halving the channels, and a tanh image. With ``num_classes`` it takes
    ``(z, y)``: an embedding of the class (of the latent's size) concatenated to ``z``."""

    def __init__(self, latent_dim: int = 100, image_size: int = 64, channels: int = 3,
                 width: int = 64, *, num_classes: int = 0, device=None, dtype=None):
        super().__init__()
        self.start, ups = _levels(image_size)
        c = width * 2 ** (ups - 1)
        kw = dict(device=device, dtype=dtype)
        self.latent_dim, self.c0, self.num_classes = latent_dim, c, num_classes
        area = self.start * self.start
        if num_classes:
            self.embed = nn.Embedding(num_classes, latent_dim, **kw)
        inputs = 2 * latent_dim if num_classes else latent_dim
        self.project = nn.Sequential(nn.Linear(inputs, c * area, **kw), nn.BatchNorm1d(c * area, **kw),
                                     nn.ReLU())
        layers = []
        for i in range(ups):
            last = i == ups - 1
            c_out = channels if last else c // 2
            layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1, **kw))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(c_out, **kw), nn.ReLU()]
            c = c_out
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        check_classes(self.num_classes, y)
        if self.num_classes:
            z = torch.cat([z, self.embed(y)], 1)
        return self.body(self.project(z).view(-1, self.c0, self.start, self.start))
