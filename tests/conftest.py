"""Shared helpers of the test suite: the eager oracle and error measures.

``FASTGAN_TEST_DEVICE=cuda`` runs the suite's parity tests on a GPU (``make
gpu-check``): every tensor a test creates without naming a device is made as on the
CPU (the same values from the same seeded generators) and moved to the GPU, and the
backends checked are ``cuda``, ``eager`` and ``triton`` (compiled, not interpreted).
"""
import os

DEVICE = os.environ.get("FASTGAN_TEST_DEVICE", "cpu")
if DEVICE == "cpu":
    # The Triton kernels then run on CPU tensors through Triton's interpreter, which
    # must be switched on before triton is first imported.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils._device import _device_constructors  # noqa: E402

import fastgan  # noqa: E402
from fastgan import reference  # noqa: E402

# The implementations every fused op is checked on. `cpu` (`cuda` on a GPU) is the C++
# extension: it must be built, so that a missing extension fails the suite instead of
# skipping it; `triton` runs through the interpreter on the CPU.
BACKENDS = ["cpu", "eager", "triton"] if DEVICE == "cpu" else ["cuda", "eager", "triton"]
#: The backends that run the fused step (eager builds the loss with autograd instead).
FUSED_BACKENDS = [b for b in BACKENDS if b != "eager"]


#: Packages that `make gpu-check` found missing on its machine (bench/gpu_check.sh sets
#: FASTGAN_TEST_MISSING): a test that stops on importing one of them is reported as
#: skipped, naming the package. Unset elsewhere, CI included, where such a test fails.
MISSING = set(filter(None, os.environ.get("FASTGAN_TEST_MISSING", "").split(",")))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in MISSING:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1], f"needs {error.name}, which this machine lacks")


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fastgan.use_backend(request.param):
        yield request.param


class MadeOn(TorchFunctionMode):
    """Tensors made by factory functions without a device go to ``device`` (made on the
    CPU first, so that CPU generators give the values the CPU suite sees)."""

    def __init__(self, device: str):
        super().__init__()
        self.device = torch.device(device)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _device_constructors() and kwargs.get("device") is None and isinstance(out, torch.Tensor):
            out = out.to(self.device)
        return out


@pytest.fixture(autouse=True)
def on_test_device():
    if DEVICE == "cpu":
        yield
        return
    with MadeOn(DEVICE):
        yield


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative Frobenius error of a against b (absolute where b is exactly zero)."""
    a, b = a.detach().double(), b.detach().double()
    diff = (a - b).norm().item()
    scale = b.norm().item()
    return diff / scale if scale > 0 else diff


def make_critic(in_features, hidden, activation, dtype=torch.float64, slope=0.2, seed=0):
    torch.manual_seed(seed)
    return fastgan.FusedMLPCritic(in_features, hidden, activation, slope, dtype=dtype)


def eager_step(seq: nn.Module, real, fake, eps=None, lam=10.0, center=1.0, one_sided=False):
    """The oracle: autograd.grad(create_graph=True) + backward() on an nn.Sequential.
    Returns the StepResult with the parameter gradients filled in."""
    seq.zero_grad(set_to_none=True)
    res = reference.eager_wgan_gp_loss(seq, real, fake, eps, lam, center, one_sided)
    res.loss.backward()
    return res._replace(grads=[p.grad.clone() for p in seq.parameters()])


def fused_step(critic, real, fake, eps=None, lam=10.0, center=1.0, one_sided=False, penalty=True):
    critic.zero_grad(set_to_none=True)
    if penalty:
        out = critic.wgan_gp_loss(real, fake, lam=lam, eps=eps, center=center, one_sided=one_sided)
    else:
        out = critic.wgan_loss(real, fake)
    out.loss.backward()
    return out, [p.grad.clone() for p in critic.parameters()]


def max_grad_err(grads, ref_grads):
    """The largest relative Frobenius error over the parameter gradients.

    A gradient can be zero analytically (a bias whose real and fake seeds cancel) and
    then holds rounding noise only, of the size of eps_machine times its summands, not
    times its own norm. Such a tensor (norm below 1e-3 of the whole gradient's) has its
    error measured against 1e-3 of the whole gradient's norm.
    """
    total = torch.sqrt(sum(b.detach().double().norm() ** 2 for b in ref_grads)).item()
    errs = []
    for a, b in zip(grads, ref_grads):
        scale = max(b.detach().double().norm().item(), 1e-3 * total) or 1.0  # all zero: absolute
        errs.append((a.detach().double() - b.detach().double()).norm().item() / scale)
    return max(errs)


def lockstep(trainer, attr: str, reference, module: nn.Module, errors: list) -> None:
    """Wraps ``trainer.<attr>``, one of its loss-and-backward passes, so that each call
    first runs ``reference`` (the other code path) with the same arguments, the same
    random stream and the same parameters, then the pass itself; ``errors`` gets
    :func:`max_grad_err` of ``module``'s gradients for each call.

    Two code paths are compared where they are determined: at the same point, step by
    step. Comparing parameters after optimiser steps would compare rounding, which
    Adam and RMSprop amplify (they divide by sqrt(v) + eps, so a gradient that is zero
    analytically becomes an lr-sized step of either sign) by amounts that differ
    between CPUs."""
    original = getattr(trainer, attr)

    def grads():
        return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]

    def call(*args, **kwargs):
        state = torch.get_rng_state()
        module.zero_grad(set_to_none=True)
        reference(*args, **kwargs)
        theirs = grads()
        torch.set_rng_state(state)
        module.zero_grad(set_to_none=True)
        out = original(*args, **kwargs)
        errors.append(max_grad_err(grads(), theirs))
        return out

    setattr(trainer, attr, call)


def follow_eager(critic: nn.Module, shape, seed: int, steps: int = 20, batch: int = 8, loss: str = "wgan-gp",
                 tol: float = 1e-5, **kw) -> None:
    """``steps`` Adam steps of ``critic``'s fused step in float32; at every step its
    gradients are the eager oracle's (``reference.chain_loss`` in float64, on a float64
    copy of the parameters) at the same point, to ``tol``. The training follows the
    fused gradients."""
    import copy

    from fastgan.ops.trace import fused_critic_loss

    opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        real, fake = torch.randn(batch, *shape, generator=g), torch.randn(batch, *shape, generator=g)
        eps = torch.rand(batch, generator=g) if loss == "wgan-gp" else None
        twin = copy.deepcopy(critic).double()
        reference.chain_loss(twin, real.double(), fake.double(), loss,
                             eps=None if eps is None else eps.double(), **kw).loss.backward()
        critic.zero_grad(set_to_none=True)
        with fastgan.use_backend(BACKENDS[0]):
            fused_critic_loss(critic, real, fake, loss=loss, eps=eps, **kw).loss.backward()
        assert max_grad_err([p.grad.double() for p in critic.parameters()], [p.grad for p in twin.parameters()]) < tol
        opt.step()
