"""Self-checks of the backends: ``fastgan doctor`` and the verification behind ``auto``.

Each check runs a small fused WGAN-GP critic step and a forward/backward of the fused
MLP critic, and the fused chain step of a small conv critic with LayerNorm (WGAN-GP and
R1), on the backend and device in question, and compares loss, W estimate and every
gradient with the eager reference evaluated in float64 on the CPU.
"""
from __future__ import annotations

import copy
import functools
import os
from typing import NamedTuple

import torch

from fastgan import backends

#: Relative error a check accepts: float32 arithmetic with any summation order stays
#: orders of magnitude below it, a wrong kernel lands orders of magnitude above it.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}
VERIFY_ENV = "FASTGAN_VERIFY"
BACKENDS = ("eager", "cpu", "cuda", "triton")


class Check(NamedTuple):
    """One backend's line of the report."""

    backend: str
    available: bool
    device: str | None
    passed: bool | None  # None: not checked (unavailable)
    detail: str


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def _max_error(backend: str, device: torch.device, dtype: torch.dtype) -> float:
    """Largest relative error of small fused steps (an MLP and a conv critic) against float64 eager."""
    from torch import nn

    from fastgan.ops.critic import critic_loss

    errors = []
    gen = torch.Generator().manual_seed(0)
    for activation, alpha in (("lrelu", 0.2), ("tanh", 0.0)):
        torch.manual_seed(0)
        layers = [nn.Linear(5, 17), nn.Linear(17, 13), nn.Linear(13, 1)]
        oracle = [p.detach().double().requires_grad_(True) for m in layers for p in m.parameters()]
        params = [p.detach().to(device, dtype).requires_grad_(True) for p in oracle]
        real = torch.randn(8, 5, generator=gen, dtype=torch.float64)
        fake = torch.randn(8, 5, generator=gen, dtype=torch.float64) + 0.5
        eps = torch.rand(8, generator=gen, dtype=torch.float64)

        results = []
        for ps, backend_name, cast in ((oracle, "eager", lambda t: t),
                                       (params, backend, lambda t: t.to(device, dtype))):
            with backends.use_backend(backend_name):
                out = critic_loss(cast(real), cast(fake), ps, activation, alpha, lam=10.0, eps=cast(eps))
                step_grads = torch.autograd.grad(out.loss, ps)
                results.append([out.loss, out.wasserstein, out.penalty, *step_grads])
        errors += [_rel(a, b) for a, b in zip(results[1], results[0]) if b.abs().max() > 0]
    return max(errors + _chain_errors(backend, device, dtype, gen))


def _chain_errors(backend: str, device: torch.device, dtype: torch.dtype, gen: torch.Generator) -> list[float]:
    """Relative errors of the graph step (csrc/graph/) of a conv, LayerNorm, leaky
    ReLU, linear critic against float64 eager: WGAN-GP and R1."""
    from torch import nn

    from fastgan.ops.trace import fused_critic_loss

    torch.manual_seed(0)
    oracle = nn.Sequential(nn.Conv2d(2, 3, 3, 2, 1), nn.LayerNorm([3, 3, 3]), nn.LeakyReLU(0.2), nn.Flatten(),
                           nn.Linear(27, 1)).double()
    critic = copy.deepcopy(oracle).to(device, dtype)
    real, fake = torch.randn(4, 2, 5, 5, generator=gen, dtype=torch.float64), torch.randn(4, 2, 5, 5, generator=gen,
                                                                                           dtype=torch.float64)
    eps = torch.rand(4, generator=gen, dtype=torch.float64)
    errors = []
    for loss in ("wgan-gp", "r1"):
        results = []
        for model, backend_name, cast in ((oracle, "eager", lambda t: t), (critic, backend, lambda t: t.to(device, dtype))):
            with backends.use_backend(backend_name):
                model.zero_grad(set_to_none=True)
                out = fused_critic_loss(model, cast(real), cast(fake), loss=loss,
                                 eps=cast(eps) if loss == "wgan-gp" else None)
                out.loss.backward()
                results.append([out.loss, out.wasserstein, out.penalty, *[p.grad for p in model.parameters()]])
        errors += [_rel(a, b) for a, b in zip(results[1], results[0]) if b.abs().max() > 0]
    return errors


def self_check(backend: str, device: torch.device | str) -> Check:
    """Runs the check of ``backend`` on ``device`` (not cached)."""
    device = torch.device(device)
    reason = backends.unavailable_reason(backend)
    if reason is not None:
        return Check(backend, False, None, None, reason)
    dtypes = (torch.float32,) if device.type == "cuda" else (torch.float32, torch.float64)
    if device.type == "cuda" and backend == "triton":
        major, _ = torch.cuda.get_device_capability(device)
        if major < 8:
            return Check(backend, False, str(device), None, "the Triton kernels need sm_80 or newer")
    details, passed = [], True
    for dtype in dtypes:
        try:
            err = _max_error(backend, device, dtype)
        except Exception as exc:  # a crash is a failed check, reported with its message
            passed = False
            details.append(f"{str(dtype).replace('torch.', '')}: error {type(exc).__name__}: {exc}")
            continue
        ok = err < TOLERANCE[dtype]
        passed &= ok
        details.append(f"{str(dtype).replace('torch.', '')} max rel err {err:.1e} "
                       f"({'ok' if ok else 'FAILED'}, tol {TOLERANCE[dtype]:.0e})")
    return Check(backend, True, str(device), passed, "; ".join(details))


@functools.lru_cache(maxsize=None)
def _verified(backend: str, device: str) -> bool:
    return bool(self_check(backend, device).passed)


def verified(backend: str, device: torch.device) -> bool:
    """Whether ``backend`` passed its self-check on ``device``; runs it on first use and
    caches the answer for the process. ``FASTGAN_VERIFY=0`` skips the check."""
    if os.environ.get(VERIFY_ENV, "1") == "0":
        return True
    index = device.index if device.index is not None else (
        torch.cuda.current_device() if device.type == "cuda" else None)
    return _verified(backend, f"{device.type}:{index}" if index is not None else device.type)


def _device_for(backend: str) -> torch.device:
    if backend == "cpu":
        return torch.device("cpu")
    if backend == "triton" and backends.interpreting():
        return torch.device("cpu")
    if backend in ("cuda", "triton"):
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def doctor() -> list[Check]:
    """Checks every backend on this machine: built or importable, the device it would
    run on, and a parity self-check against the reference there."""
    return [self_check(name, _device_for(name)) for name in BACKENDS]


def format_report(checks: list[Check]) -> str:
    """The report ``fastgan doctor`` prints."""
    gpu = (f"{torch.cuda.device_count()} CUDA GPU(s): {torch.cuda.get_device_name(0)}"
           if torch.cuda.is_available() else "no GPU is present (torch sees no CUDA device)")
    lines = [f"torch {torch.__version__}; {gpu}; backend in force: {backends.get_backend()}"]
    for c in checks:
        if not c.available:
            status = "unavailable"
        else:
            status = "ok" if c.passed else "FAILED"
        where = f" on {c.device}" if c.device else ""
        lines.append(f"  {c.backend:<7} {status}{where}: {c.detail}")
    return "\n".join(lines)
