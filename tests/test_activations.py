"""The one activation table (fastgan/activations.py) and everything pinned to it: the
C++ codes and names, the Triton kernels' codes, the oracle's math, the modules."""
import os
import re

import pytest
import torch
from torch import nn

from fastgan import _extension, activations, reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_cpp_codes_are_the_tables():
    with open(os.path.join(ROOT, "csrc", "activation_math.h")) as f:
        enum = re.search(r"enum class Act : int32_t \{(.*?)\};", f.read(), re.S).group(1)
    cpp = {name: int(code) for name, code in re.findall(r"(\w+) = (\d+)", enum)}
    names = {"ReLU": "relu", "LeakyReLU": "lrelu", "Tanh": "tanh", "Softplus": "softplus", "SiLU": "silu",
             "Sigmoid": "sigmoid", "ELU": "elu", "GELU": "gelu", "Linear": "linear"}
    assert {names[n]: c for n, c in cpp.items()} == activations.CODES


def test_the_kernels_read_the_table():
    from fastgan.kernels import activation as kernels

    assert kernels.ACT_CODES == activations.CODES
    assert {name: getattr(kernels, name.upper()) for name in activations.CODES} == activations.CODES


@pytest.mark.skipif(_extension.load_error() is not None, reason="the extension is checked by test_extension")
def test_the_cpp_names_are_the_tables():
    """bias_act accepts every name of the table, with its default alpha, and no other."""
    x = torch.randn(3, 4, dtype=torch.float64)
    ops = _extension.ops()
    for name, a in activations.TABLE.items():
        y = ops.bias_act(x, None, 1, name, a.default_alpha, 1.0, -1.0)
        assert torch.allclose(y, activations.module(name)(x), atol=1e-12), name
    with pytest.raises(RuntimeError, match="no activation 'swish'"):
        ops.bias_act(x, None, 1, "swish", 0.0, 1.0, -1.0)


def test_the_oracles_math_agrees():
    for name, act in reference.ACTIVATIONS.items():
        spec = activations.TABLE[name]
        assert act.smooth == spec.smooth, name
        a = torch.randn(50, dtype=torch.float64)
        assert torch.allclose(act.fn(a, spec.default_alpha), activations.module(name)(a)), name


def test_modules_round_trip():
    for name in activations.TABLE:
        m = activations.module(name, 0.3 if name in ("lrelu", "elu") else None)
        assert activations.of_module(m) == (None if name == "linear" else
                                            (name, 0.3 if name in ("lrelu", "elu") else 0.0))
    assert activations.of_module(nn.Softplus(beta=2)) is None
    assert activations.of_module(nn.GELU(approximate="tanh")) is None
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activations.module("swish")
