"""The compiled extension is present and registered: no silent fallback."""
import os

import pytest
import torch

import fastgan
from fastgan import _extension


def test_extension_is_built():
    # A missing or broken fastgan._C must fail the suite, not skip it.
    assert _extension.load_error() is None, _extension.load_error()
    assert "cpu" in fastgan.available_backends()


@pytest.mark.parametrize("op", _extension.OPS)
def test_ops_have_cpu_kernels(op):
    assert _extension.has_kernel(op, "CPU")


@pytest.mark.skipif(os.environ.get("FASTGAN_FORCE_CUDA") != "1",
                    reason="only a forced CUDA build (CI) promises CUDA kernels without a GPU")
@pytest.mark.parametrize("op", _extension.OPS)
def test_forced_cuda_build_registered_cuda_kernels(op):
    assert _extension.has_kernel(op, "CUDA")


def test_auto_uses_the_extension_on_cpu():
    with fastgan.use_backend("auto"):
        assert fastgan.backends.resolve(torch.device("cpu")) == "cpu"


def test_triton_kernels_package_is_installed_as_fastgan_kernels():
    import fastgan.kernels
    assert fastgan.kernels.__file__.endswith(os.path.join("kernels", "__init__.py"))
