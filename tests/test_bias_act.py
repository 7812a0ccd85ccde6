"""bias_act: values and first and second derivatives against the torch composition, on
every backend, activation and layout."""
import pytest
import torch

import fastgan
from fastgan import reference
from fastgan.ops import bias_act

from conftest import rel_err

ACTS = ["linear", "relu", "lrelu", "tanh", "sigmoid", "softplus", "silu", "elu", "gelu"]
DEFAULT_ALPHA = {"lrelu": 0.2, "elu": 1.0}


def make(layout, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    if layout == "nc":
        x, dim = torch.randn(5, 7, generator=g, dtype=dtype), 1
    elif layout == "nlc":  # bias along the last dim, as FusedLinear uses it
        x, dim = torch.randn(2, 3, 7, generator=g, dtype=dtype), 2
    else:
        x, dim = torch.randn(2, 7, 3, 5, generator=g, dtype=dtype), 1
        if layout == "nhwc":
            x = x.contiguous(memory_format=torch.channels_last)
    b = torch.randn(7, generator=g, dtype=dtype)
    return x, b, dim


def derivatives(fn, x, b, seed=1):
    """y, and the first and second derivatives of a random projection of y."""
    x, b = x.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    g = torch.Generator().manual_seed(seed)
    y = fn(x, b)
    w = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
    gx, gb = torch.autograd.grad((y * w).sum(), (x, b), create_graph=True)
    v = torch.randn(gx.shape, generator=g, dtype=torch.float64).to(y.dtype)
    target = (gx * v).sum() + gb.sum()
    if not target.requires_grad:  # a linear activation: no second derivative at all
        return [y, gx, gb, torch.zeros_like(x), torch.zeros_like(b)]
    ggx, ggb = torch.autograd.grad(target, (x, b), allow_unused=True)
    ggx = torch.zeros_like(x) if ggx is None else ggx
    ggb = torch.zeros_like(b) if ggb is None else ggb
    return [y, gx, gb, ggx, ggb]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("layout", ["nc", "nchw", "nhwc", "nlc"])
@pytest.mark.parametrize("clamp", [None, 0.6])
def test_parity_float64(backend, act, layout, clamp):
    x, b, dim = make(layout)
    alpha = DEFAULT_ALPHA.get(act, 0.0)

    def ours(x, b):
        return bias_act(x, b, act, gain=1.7, dim=dim, clamp=clamp)

    def ref(x, b):
        return reference.bias_act(x, b, act, alpha, 1.7, dim, clamp)

    for a, r in zip(derivatives(ours, x, b), derivatives(ref, x, b)):
        assert rel_err(a, r) < 1e-10


@pytest.mark.parametrize("act", ACTS)
def test_parity_float32(backend, act):
    x, b, dim = make("nhwc")
    alpha = DEFAULT_ALPHA.get(act, 0.0)
    ours = derivatives(lambda x, b: bias_act(x, b, act, dim=dim), x.float(), b.float())
    ref = derivatives(lambda x, b: reference.bias_act(x, b, act, alpha, 1.0, dim, None), x, b)
    for a, r in zip(ours, ref):
        assert rel_err(a, r) < 1e-5


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("layout", ["nc", "nchw", "nhwc"])
def test_gradcheck_and_gradgradcheck(backend, act, layout):
    x, b, dim = make(layout)
    x = x[:2] if layout == "nc" else x[:1, :, :2, :2].contiguous()  # small: checks are O(numel^2)
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    x, b = x.detach().requires_grad_(True), b.requires_grad_(True)

    def f(x, b):
        return bias_act(x, b, act, gain=1.3, dim=dim)

    assert torch.autograd.gradcheck(f, (x, b))
    assert torch.autograd.gradgradcheck(f, (x, b))
    assert torch.autograd.gradcheck(lambda x, b: bias_act(x, b, act, dim=dim, clamp=0.5), (x, b))


def test_no_bias_and_alpha(backend):
    x = torch.randn(4, 6, dtype=torch.float64)
    assert rel_err(bias_act(x, act="lrelu", alpha=0.05), torch.nn.functional.leaky_relu(x, 0.05)) < 1e-15
    assert rel_err(bias_act(x, act="elu", alpha=0.7), torch.nn.functional.elu(x, 0.7)) < 1e-15


def test_relu_saves_only_its_output(backend):
    if backend == "eager":
        pytest.skip("the eager backend saves what torch saves")
    x, b, dim = make("nchw")
    x.requires_grad_(True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = bias_act(x, b, "lrelu", dim=dim)
    # the output (its sign), then the bias (and, for the Triton Functions, its expanded
    # view): the bias's memory only
    assert len(saved) == (3 if backend == "triton" else 2) and saved[0] is y
    for t in saved[1:]:
        assert t is None or t.untyped_storage().nbytes() == 7 * x.element_size()


def test_third_derivative_raises_clearly():
    x, b, dim = make("nc")
    x.requires_grad_(True)
    with fastgan.use_backend("cpu"):
        (g,) = torch.autograd.grad(bias_act(x, b, "tanh").sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match="differentiable twice"):
            torch.autograd.grad(gg.sum(), x)


@pytest.mark.parametrize("kw,match", [
    (dict(act="swish"), "unknown activation 'swish'"),
    (dict(b=torch.zeros(5, dtype=torch.float64)), r"b must have shape \(7,\)"),
    (dict(b=torch.zeros(7)), "b has dtype torch.float32 but x has dtype torch.float64"),
    (dict(clamp=-1.0), "clamp must be >= 0"),
    (dict(gain=float("nan")), "gain must be finite"),
])
def test_bad_input(kw, match):
    x, _, _ = make("nc")
    with pytest.raises((ValueError, TypeError), match=match):
        bias_act(x, **kw)


@pytest.mark.parametrize("alpha", [-0.2, -1.5, 0.0])
@pytest.mark.parametrize("layout", ["nc", "nhwc"])
def test_lrelu_slope_outside_the_output_sign_fast_path(backend, alpha, layout):
    """A negative leaky-ReLU slope (StyleGAN2-ADA's bias_act allows any alpha) makes the
    output positive on both sides of 0: s' cannot be read from its sign, and every
    backend must take the path that reads it from the input."""
    x, b, dim = make(layout)

    def ours(x, b):
        return bias_act(x, b, "lrelu", alpha=alpha, gain=1.3, dim=dim)

    def ref(x, b):
        return reference.bias_act(x, b, "lrelu", alpha, 1.3, dim, None)

    for a, r in zip(derivatives(ours, x, b), derivatives(ref, x, b)):
        assert rel_err(a, r) < 1e-12
    small = x[:2] if layout == "nc" else x[:1, :, :2, :2]
    small, b = small.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(ours, (small, b))
    assert torch.autograd.gradgradcheck(ours, (small, b))


def test_the_raw_op_refuses_the_output_sign_for_a_negative_slope():
    x, b, _ = make("nc")
    y = torch.ops.fastgan.bias_act(x, b, 1, "lrelu", -0.2, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="lrelu with alpha >= 0"):
        torch.ops.fastgan.bias_act_grad(torch.ones_like(y), y, b, 1, "lrelu", -0.2, 1.0, -1.0, True)
