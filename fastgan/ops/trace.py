"""A user's critic as a graph of the fused step's nodes, traced with ``torch.fx``.

:class:`TracedCritic` traces the module once (its own code, its own parameters: no
copies) and encodes the traced graph into :class:`~fastgan.ops.graph.GraphSpec` per
input shape. What it supports, as modules and as their functional or method forms:

=============================================  ==========================================
torch                                          graph node
=============================================  ==========================================
``nn.Linear``, ``F.linear``                    linear
``nn.Conv2d``, ``F.conv2d``                    conv2d (any groups, stride, padding,
                                               dilation; zero padding; bias optional)
``ReLU LeakyReLU Tanh Sigmoid Softplus() SiLU  act (``inplace=True`` included)
ELU GELU()`` and their functions
``a + b``, ``torch.add``, ``a += b``           add (a residual)
``x * c``, ``x / c`` (``c`` a Python number)   scale (a gain)
``nn.AvgPool2d``, ``F.avg_pool2d``             avgpool (no ``divisor_override``)
``x.mean((2, 3))``, ``x.sum(dim=[2, 3])``,     global_pool
``nn.AdaptiveAvgPool2d(1)``,
``F.adaptive_avg_pool2d(x, 1)``
``flatten``/``view``/``reshape`` to ``(B, -1)``  flatten
``nn.LayerNorm`` over every non-batch dim      norm (a weight per feature)
``nn.GroupNorm``, ``F.group_norm``,            norm (a weight per channel)
``nn.InstanceNorm2d`` (no running stats)
``nn.Identity``, ``x.contiguous()``            nothing
fastgan's ``BiasAct``, ``FusedConv2d``,        their own nodes (``encode_graph_node``)
``FusedLinear``
``torch.sum(embed(y) * h, 1, keepdim=True)``   projection (a conditional critic's class
(``y`` the forward's second input, ``embed``   term; ``torch.mul``, ``.sum`` and either
an ``nn.Embedding``, ``h`` a ``(B, F)``        order of the product too)
value)
=============================================  ==========================================

A conditional critic's forward takes the samples' classes as its second input,
``forward(x, y)``, and uses them only in projections (Miyato & Koyama 2018's
``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``).

Anything else raises :class:`~fastgan.ops.graph.UnsupportedLayer` naming the node and
why. Layers that mix the samples of a batch (every BatchNorm, a minibatch standard
deviation) are refused for that reason: the per-sample gradient penalty is then no
longer the paper's (Gulrajani et al. 2017, section 4).
"""
from __future__ import annotations

import operator
import weakref
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from fastgan import activations
from fastgan.ops import graph as G
from fastgan.ops.graph import GraphBuilder, GraphSpec, UnsupportedLayer

Tensor = torch.Tensor

HINT = "for any critic, fastgan.gradient_penalty(critic, real, fake) runs the penalty with autograd"


def _mixes_samples(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm) or (
        isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.track_running_stats)


class _Tracer(fx.Tracer):
    """torch.nn's modules and modules that encode themselves (fastgan's) are leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return hasattr(m, "encode_graph_node") or super().is_leaf_module(m, qualname)


class _NoShape(Exception):
    """A check that needs the shapes of a batch, before the first batch."""


class _Encoding:
    """One pass over a traced graph: the fx node -> graph value map and the builder;
    for a conditional critic its labels input and the class embeddings (and their
    products with a value) on the way to a projection."""

    def __init__(self, gm: fx.GraphModule, shaped: bool):
        self.gm, self.shaped = gm, shaped
        self.g = GraphBuilder()
        self.values: dict[fx.Node, int] = {}
        self.labels: fx.Node | None = None
        self.embeddings: dict[fx.Node, Tensor] = {}
        self.products: dict[fx.Node, tuple[int, Tensor]] = {}

    def reads_labels(self, node: fx.Node) -> bool:
        return any(isinstance(a, fx.Node) and (a is self.labels or a in self.embeddings or a in self.products)
                   for a in (*node.args, *node.kwargs.values()))

    def value(self, arg) -> int:
        if isinstance(arg, fx.Node) and arg in self.values:
            return self.values[arg]
        raise UnsupportedLayer(f"reads {arg!r}, which is not a value of the critic's input")

    def tensor(self, arg) -> Tensor | None:
        """A parameter argument of a functional form: a module attribute (get_attr) or None."""
        if arg is None:
            return None
        if isinstance(arg, fx.Node) and arg.op == "get_attr":
            return _attribute(self.gm, arg.target)
        raise UnsupportedLayer(f"takes {arg!r} as a parameter; only the module's own parameters are supported")

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        if not self.shaped:
            raise _NoShape
        meta = node.meta.get("tensor_meta")
        if not isinstance(meta, TensorMetadata):
            raise UnsupportedLayer("makes something other than one tensor")
        return tuple(meta.shape)


def _attribute(root: nn.Module, target: str):
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _number(arg, what: str) -> float:
    if isinstance(arg, bool) or not isinstance(arg, (int, float)):
        raise UnsupportedLayer(f"{what} by {arg!r}: only by a Python number")
    return float(arg)


def _arg(node: fx.Node, index: int, name: str, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


# ------------------------------------------------------- the forms of each node kind

def _act_function(name: str, alpha_arg: tuple[int, str, float] | None = None, check=None):
    def encode(e: _Encoding, node: fx.Node) -> int:
        alpha = float(_arg(node, *alpha_arg)) if alpha_arg else 0.0
        if check is not None:
            check(node)
        return G.act(e.g, e.value(node.args[0]), name, alpha)
    return encode


def _softplus_default(node):
    if _arg(node, 1, "beta", 1) != 1 or _arg(node, 2, "threshold", 20) != 20:
        raise UnsupportedLayer("softplus with beta != 1 or threshold != 20")


def _gelu_exact(node):
    if node.kwargs.get("approximate", "none") != "none":
        raise UnsupportedLayer("gelu with approximate='tanh'")


LABEL_USE = "uses the labels other than in a projection torch.sum(embed(y) * h, 1, keepdim=True)"


def _label_node(e: _Encoding, node: fx.Node) -> int | None:
    """A node on the labels' way to a projection: the embedding of the labels, its
    product with a value, or the sum of that product over the features (the projection
    node, whose value it returns; None for the other two)."""
    args = node.args
    if node.op == "call_module" and isinstance(e.gm.get_submodule(node.target), nn.Embedding) and \
            len(args) == 1 and args[0] is e.labels:
        m = e.gm.get_submodule(node.target)
        if m.padding_idx is not None or m.max_norm is not None or m.scale_grad_by_freq or m.sparse:
            raise UnsupportedLayer("an Embedding with padding_idx, max_norm, scale_grad_by_freq or sparse")
        e.embeddings[node] = m.weight
        return None
    mul = (node.op == "call_function" and node.target in (operator.mul, torch.mul)) or (
        node.op == "call_method" and node.target == "mul")
    if mul and len(args) == 2 and not node.kwargs:
        embedding, value = (args[0], args[1]) if args[0] in e.embeddings else (args[1], args[0])
        if embedding in e.embeddings and value in e.values:
            if e.shaped and len(e.shape(value)) != 2:
                raise UnsupportedLayer(f"projects a value of shape {list(e.shape(value))}: only (B, features)")
            e.products[node] = (e.values[value], e.embeddings[embedding])
            return None
    total = (node.op == "call_function" and node.target is torch.sum) or (
        node.op == "call_method" and node.target == "sum")
    if total and args and args[0] in e.products and _arg(node, 1, "dim") in (1, -1, (1,), [1], (-1,), [-1]) \
            and _arg(node, 2, "keepdim", False) is True and node.kwargs.get("dtype") is None:
        return G.projection(e.g, *e.products[args[0]])
    raise UnsupportedLayer(LABEL_USE)


def _add(e: _Encoding, node: fx.Node) -> int:
    a, b = node.args[0], node.args[1]
    if node.kwargs.get("alpha", 1) != 1:
        raise UnsupportedLayer("add with alpha")
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
        raise UnsupportedLayer("adds a constant; only the sum of two values (a residual)")
    return G.add(e.g, e.value(a), e.value(b))


def _mul(e: _Encoding, node: fx.Node) -> int:
    a, b = node.args[0], node.args[1]
    x, c = (a, b) if isinstance(a, fx.Node) else (b, a)
    return G.scale(e.g, e.value(x), _number(c, "multiplication"))


def _div(e: _Encoding, node: fx.Node) -> int:
    if not isinstance(node.args[0], fx.Node):
        raise UnsupportedLayer("divides a number by a value")
    c = _number(node.args[1], "division")
    if c == 0:
        raise UnsupportedLayer("division by zero")
    return G.scale(e.g, e.value(node.args[0]), 1.0 / c)


def _reshape(e: _Encoding, node: fx.Node) -> int:
    """view / reshape / flatten / squeeze to (B, features), or (B,) from (B, 1): a flatten."""
    x = node.args[0]
    shape_in, shape_out = e.shape(x), e.shape(node)
    features = 1
    for s in shape_in[1:]:
        features *= s
    if shape_out not in ((shape_in[0], features),) + (((shape_in[0],),) if features == 1 else ()):
        raise UnsupportedLayer(f"reshapes {list(shape_in)} to {list(shape_out)}: only to (B, -1)")
    return G.flatten(e.g, e.value(x))


def _flatten(e: _Encoding, node: fx.Node) -> int:
    if _arg(node, 1, "start_dim", 0) != 1 or _arg(node, 2, "end_dim", -1) != -1:
        raise UnsupportedLayer("flatten other than flatten(x, 1)")
    return _reshape(e, node)


def _pool_dims(dims, rank: int) -> bool:
    dims = [dims] if isinstance(dims, int) else list(dims or ())
    return rank == 4 and sorted(d % 4 for d in dims) == [2, 3]


def _reduce(mean: bool):
    def encode(e: _Encoding, node: fx.Node) -> int:
        x = node.args[0]
        if not _pool_dims(_arg(node, 1, "dim"), len(e.shape(x))) or node.kwargs.get("dtype") is not None:
            raise UnsupportedLayer("a reduction other than over the two spatial dimensions of (B, C, H, W)")
        return G.global_pool(e.g, e.value(x), mean)
    return encode


def _adaptive_pool(e: _Encoding, node: fx.Node, size) -> int:
    if size not in (1, (1, 1), [1, 1]):
        raise UnsupportedLayer(f"adaptive average pooling to {size!r}: only to 1")
    return G.global_pool(e.g, e.value(node.args[0]), True)


def _avg_pool(e: _Encoding, node: fx.Node, kernel, stride, padding, ceil_mode, count_include_pad, divisor) -> int:
    if divisor is not None:
        raise UnsupportedLayer("average pooling with divisor_override")
    return G.avgpool(e.g, e.value(node.args[0]), kernel, stride, padding, ceil_mode, count_include_pad)


def _conv(e: _Encoding, node: fx.Node, weight, bias, stride, padding, dilation, groups) -> int:
    if padding == "same":
        k, d = weight.shape[2:], (dilation,) * 2 if isinstance(dilation, int) else dilation
        if any((ki - 1) * di % 2 for ki, di in zip(k, d)):
            raise UnsupportedLayer("padding='same' with an even kernel extent")
        padding = tuple((ki - 1) * di // 2 for ki, di in zip(k, d))
    return G.conv2d(e.g, e.value(node.args[0]), weight, bias, stride, padding, dilation, groups)


def _layer_norm(e: _Encoding, node: fx.Node, shape, weight, bias, eps) -> int:
    x = node.args[0]
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if shape != e.shape(x)[1:]:
        raise UnsupportedLayer(f"LayerNorm over {list(shape)} of {list(e.shape(x))}: only over every "
                               "non-batch dimension")
    return G.norm(e.g, e.value(x), 1, False, weight, bias, eps)


FUNCTIONS: dict[Callable, Callable[[_Encoding, fx.Node], int]] = {
    torch.relu: _act_function("relu"), F.relu: _act_function("relu"),
    F.leaky_relu: _act_function("lrelu", (1, "negative_slope", 0.01)),
    torch.tanh: _act_function("tanh"), F.tanh: _act_function("tanh"),
    torch.sigmoid: _act_function("sigmoid"), F.sigmoid: _act_function("sigmoid"),
    F.silu: _act_function("silu"), F.gelu: _act_function("gelu", check=_gelu_exact),
    F.elu: _act_function("elu", (1, "alpha", 1.0)),
    F.softplus: _act_function("softplus", check=_softplus_default),
    operator.add: _add, operator.iadd: _add, torch.add: _add,
    operator.mul: _mul, operator.imul: _mul, torch.mul: _mul,
    operator.truediv: _div, operator.itruediv: _div, torch.div: _div,
    torch.flatten: _flatten,
    torch.reshape: _reshape,
    torch.mean: _reduce(True), torch.sum: _reduce(False),
    F.adaptive_avg_pool2d: lambda e, n: _adaptive_pool(e, n, _arg(n, 1, "output_size")),
    F.avg_pool2d: lambda e, n: _avg_pool(e, n, _arg(n, 1, "kernel_size"), _arg(n, 2, "stride"),
                                         _arg(n, 3, "padding", 0), _arg(n, 4, "ceil_mode", False),
                                         _arg(n, 5, "count_include_pad", True), _arg(n, 6, "divisor_override")),
    F.linear: lambda e, n: G.linear(e.g, e.value(n.args[0]), e.tensor(_arg(n, 1, "weight")),
                                    e.tensor(_arg(n, 2, "bias"))),
    F.conv2d: lambda e, n: _conv(e, n, e.tensor(_arg(n, 1, "weight")), e.tensor(_arg(n, 2, "bias")),
                                 _arg(n, 3, "stride", 1), _arg(n, 4, "padding", 0), _arg(n, 5, "dilation", 1),
                                 _arg(n, 6, "groups", 1)),
    F.layer_norm: lambda e, n: _layer_norm(e, n, _arg(n, 1, "normalized_shape"), e.tensor(_arg(n, 2, "weight")),
                                           e.tensor(_arg(n, 3, "bias")), _arg(n, 4, "eps", 1e-5)),
    F.group_norm: lambda e, n: G.norm(e.g, e.value(n.args[0]), int(_arg(n, 1, "num_groups")), True,
                                      e.tensor(_arg(n, 2, "weight")), e.tensor(_arg(n, 3, "bias")),
                                      _arg(n, 4, "eps", 1e-5)),
}

METHODS: dict[str, Callable[[_Encoding, fx.Node], int]] = {
    "relu": _act_function("relu"), "relu_": _act_function("relu"), "tanh": _act_function("tanh"),
    "sigmoid": _act_function("sigmoid"),
    "add": _add, "add_": _add, "__add__": _add, "mul": _mul, "mul_": _mul, "div": _div, "div_": _div,
    "view": _reshape, "reshape": _reshape, "squeeze": _reshape,
    "flatten": _flatten,
    "mean": _reduce(True), "sum": _reduce(False),
    "contiguous": lambda e, n: e.value(n.args[0]),
}


def _module(e: _Encoding, node: fx.Node, m: nn.Module) -> int:
    x = e.value(node.args[0]) if node.args else None
    if len(node.args) != 1 or node.kwargs:
        raise UnsupportedLayer("called with more than one input")
    if hasattr(m, "encode_graph_node"):
        return m.encode_graph_node(e.g, x)
    if _mixes_samples(m):
        raise UnsupportedLayer("it mixes the samples of a batch, so the per-sample gradient penalty is no longer "
                               "the paper's; use GroupNorm, LayerNorm or no norm")
    kind = type(m)
    if kind is nn.Identity:
        return x
    found = activations.of_module(m)
    if found is not None:
        return G.act(e.g, x, *found)
    if kind is nn.Linear:
        return G.linear(e.g, x, m.weight, m.bias)
    if kind is nn.Conv2d:
        if m.padding_mode != "zeros":
            raise UnsupportedLayer(f"padding_mode={m.padding_mode!r}")
        return _conv(e, node, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
    if kind is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            raise UnsupportedLayer("Flatten other than Flatten(1, -1)")
        return _reshape(e, node)
    if kind is nn.AvgPool2d:
        return _avg_pool(e, node, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                         m.divisor_override)
    if kind is nn.AdaptiveAvgPool2d:
        return _adaptive_pool(e, node, m.output_size)
    if kind is nn.LayerNorm:
        return _layer_norm(e, node, m.normalized_shape, m.weight, m.bias, m.eps)
    if kind is nn.GroupNorm:
        return G.norm(e.g, x, m.num_groups, True, m.weight, m.bias, m.eps)
    if kind is nn.InstanceNorm2d:
        return G.norm(e.g, x, e.shape(node.args[0])[1], True, m.weight, m.bias, m.eps)
    raise UnsupportedLayer("not a layer the fused step supports")


def _in_place(node: fx.Node, gm: fx.GraphModule) -> bool:
    if node.op == "call_module":
        return bool(getattr(gm.get_submodule(node.target), "inplace", False))
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.startswith("__")
    return node.kwargs.get("inplace", False) is True or node.target in (operator.iadd, operator.imul,
                                                                          operator.itruediv)


def _is_shape_query(node: fx.Node) -> bool:
    return (node.op == "call_method" and node.target in ("size", "dim")) or (
        node.op == "call_function" and node.target is getattr)


def _where(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({type(gm.get_submodule(node.target)).__name__})"
    if node.op == "call_method":
        return f"method .{node.target}() (node {node.name})"
    name = getattr(node.target, "__name__", repr(node.target))
    return f"function {name} (node {node.name})"


def _encode(gm: fx.GraphModule, sample: Tensor | None) -> GraphBuilder:
    """The graph of ``gm``; with ``sample`` (a batch) its shapes are checked too, without
    it only the kinds of its nodes (what can be known before the first batch)."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    used = [n for n in placeholders if n.users]
    if not used or used[0] is not placeholders[0] or used[1:] not in ([], placeholders[1:2]):
        raise UnsupportedLayer(f"the critic's forward reads {len(used)} of its {len(placeholders)} inputs; the "
                               f"fused step takes the batch, and a conditional critic's classes second; {HINT}")
    conditional = len(used) == 2
    if sample is not None:
        labels = (torch.zeros(sample.shape[0], dtype=torch.long, device=sample.device),) if conditional else ()
        try:
            with torch.no_grad():
                ShapeProp(gm).propagate(sample, *labels)
        except Exception as exc:  # noqa: BLE001  (the module's own error, whatever it is)
            raise ValueError(f"the critic cannot run on samples of shape {tuple(sample.shape[1:])}: {exc}") from None
    e = _Encoding(gm, sample is not None)
    e.labels = used[1] if conditional else None
    out = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":  # the batch is value 0; the labels are no value
            if node is placeholders[0]:
                e.values[node] = 0
            continue
        if node.op == "output":
            out = node.args[0]
            break
        if e.reads_labels(node):
            try:
                made = _label_node(e, node)
            except UnsupportedLayer as exc:
                raise UnsupportedLayer(f"{_where(node, gm)}: {exc}; {HINT}") from None
            if made is not None:
                e.values[node] = made
            continue
        reads_a_value = any(isinstance(a, fx.Node) and a in e.values for a in (*node.args, *node.kwargs.values()))
        if node.op == "get_attr" or not reads_a_value or _is_shape_query(node):
            continue  # parameters, shapes and sizes: not values of the batch
        try:
            first = node.args[0] if node.args else None
            if _in_place(node, gm) and isinstance(first, fx.Node) and len(first.users) > 1:
                raise UnsupportedLayer("it writes over a tensor that other nodes also read")
            if node.op == "call_module":
                encode = lambda e, n: _module(e, n, gm.get_submodule(n.target))  # noqa: E731
            elif node.op == "call_method":
                encode = METHODS.get(node.target)
            else:
                encode = FUNCTIONS.get(node.target)
            if encode is None:
                raise UnsupportedLayer("not a layer the fused step supports")
            try:
                e.values[node] = encode(e, node)
            except _NoShape:  # checked on the first batch; a stand-in keeps the values in step
                e.values[node] = G.flatten(e.g, e.value(first))
        except UnsupportedLayer as exc:
            raise UnsupportedLayer(f"{_where(node, gm)}: {exc}; {HINT}") from None
    if not isinstance(out, fx.Node) or out not in e.values:
        raise UnsupportedLayer(f"the critic's forward returns {out!r}, not one tensor made from its input; {HINT}")
    if e.values[out] != e.g.nodes or e.g.nodes == 0:
        raise UnsupportedLayer(f"the critic's output is not its last node ({out.name}); {HINT}")
    return e.g


class TracedCritic:
    """A critic module traced by ``torch.fx`` into the fused step's graph. Construction
    traces and checks every node's kind (:class:`UnsupportedLayer` otherwise); the
    shapes are checked on the first batch of each input shape, whose graph is kept."""

    def __init__(self, module: nn.Module):
        if not isinstance(module, nn.Module):
            raise TypeError(f"expected an nn.Module critic, got {type(module).__name__}")
        self.module = module
        try:
            self.gm = fx.GraphModule(module, _Tracer().trace(module))
        except Exception as exc:  # noqa: BLE001  (fx raises many kinds; each is a refusal)
            raise UnsupportedLayer(f"torch.fx cannot trace {type(module).__name__}: {exc}; {HINT}") from None
        self.gm.graph.eliminate_dead_code()
        self.nodes = _encode(self.gm, None).nodes
        self._specs: dict[tuple, GraphSpec] = {}

    def spec(self, batch: Tensor) -> GraphSpec:
        """The graph for batches shaped like ``batch``."""
        key = (tuple(batch.shape[1:]), str(batch.dtype), str(batch.device))  # (torch.compile guards on it)
        if key not in self._specs:
            encode = torch.compiler.disable(_encode) if torch.compiler.is_compiling() else _encode  # (plain Python)
            self._specs[key] = encode(self.gm, batch[:2].detach()).spec()
        return self._specs[key]

    def loss(self, real: Tensor, fake: Tensor, **kwargs):
        """:func:`fastgan.ops.graph.graph_loss` on this critic (``labels`` and
        ``fake_labels`` for a conditional one); the batches are checked before the graph
        of their shape is built."""
        real, fake = G.check_inputs(real, fake, list(self.module.parameters()))
        return G.graph_loss(self.spec(real), self.module, real, fake, **kwargs)


_TRACED: "weakref.WeakKeyDictionary[nn.Module, TracedCritic]" = weakref.WeakKeyDictionary()


def traced(module: nn.Module) -> TracedCritic:
    """The :class:`TracedCritic` of ``module``, traced once per module. A module that
    names the module to trace by a ``graph_module()`` method (fastgan's critics) has
    that one traced."""
    inner = getattr(module, "graph_module", None)
    if callable(inner):
        module = inner()
    found = _TRACED.get(module)
    if found is None:
        found = _TRACED[module] = TracedCritic(module)
    return found


def fused_critic_loss(critic: nn.Module, real: Tensor, fake: Tensor, *, loss: str = "wgan-gp", lam: float = 10.0,
                      eps: Tensor | None = None, center: float = 1.0, one_sided: bool = False, lam2: float = 0.0,
                      labels: Tensor | None = None, fake_labels: Tensor | None = None):
    """The fused critic step of any critic module the graph supports (see this module's
    table), with every parameter gradient computed in one pass; ``loss.backward()``
    accumulates them. The arguments are :func:`fastgan.ops.graph.graph_loss`'s."""
    return traced(critic).loss(real, fake, loss=loss, lam=lam, eps=eps, center=center, one_sided=one_sided,
                               lam2=lam2, labels=labels, fake_labels=fake_labels)
