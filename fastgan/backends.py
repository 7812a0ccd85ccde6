"""Which implementation of the fused ops runs: ``eager | cpu | triton | cuda | auto``.

* ``eager``: the plain PyTorch reference (:mod:`fastgan.reference`), any device;
* ``cpu``: the C++ extension's CPU kernels (ATen GEMMs + OpenMP epilogues);
* ``cuda``: the C++ extension's CUDA kernels (cuBLAS GEMMs + CUDA epilogues);
* ``triton``: Triton kernels (:mod:`fastgan.kernels`), on CUDA tensors, or on CPU
  tensors through Triton's interpreter when ``TRITON_INTERPRET=1``;
* ``auto`` (the default): per device, the fastest implementation available, falling
  back to ``eager`` with a one-time warning. On a GPU it uses only a backend that
  passed its self-check (:mod:`fastgan.verify`), run on first use and cached per
  process; ``FASTGAN_VERIFY=0`` skips that check.

Select with :func:`set_backend`, :func:`use_backend` or the environment variable
``FASTGAN_BACKEND``. Asking explicitly for an unavailable backend raises
:class:`BackendUnavailableError` saying why.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import warnings

import torch

from fastgan import _extension

NAMES = ("eager", "cpu", "triton", "cuda", "auto")
ENV_VAR = "FASTGAN_BACKEND"


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here (not built, no GPU, no kernels)."""


#: What ``auto`` tries, in order, per device type, before the eager reference. The
#: Triton interpreter is never chosen automatically: it is for tests.
AUTO_ORDER = {"cpu": ("cpu",), "cuda": ("cuda", "triton")}

_selected: contextvars.ContextVar[str | None] = contextvars.ContextVar("fastgan_backend", default=None)
# The latest selection made in any context, read while torch.compile traces: dynamo
# guards a plain global (a later change recompiles), and torch before 2.14 cannot trace
# ContextVar.get at all.
_latest_selection: str | None = None
_warned_fallbacks: set[str] = set()
_reference_depth = 0  # > 0 inside reference_ops()


def _check_name(name: str, source: str) -> str:
    if name not in NAMES:
        raise ValueError(f"{source}: unknown backend {name!r}; expected one of {', '.join(NAMES)}")
    return name


def unavailable_reason(name: str) -> str | None:
    """None when backend ``name`` can run on this machine, else the reason it cannot."""
    _check_name(name, "unavailable_reason")
    if name in ("eager", "auto"):
        return None
    if name == "triton":
        return _triton_reason()
    error = _extension.load_error()
    if error is not None:
        return error
    if name == "cuda":
        if not _extension.has_kernel("graph_step", "CUDA"):
            return "fastgan._C was built without CUDA kernels (rebuild with a CUDA toolkit)"
        if not torch.cuda.is_available():
            return "no CUDA GPU is visible to torch"
    return None


def interpreting() -> bool:
    """Whether Triton kernels run through Triton's CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _triton_reason() -> str | None:
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return f"triton is not installed ({exc})"
    if not interpreting() and not torch.cuda.is_available():
        return ("no CUDA GPU is visible to torch (TRITON_INTERPRET=1, set before triton is "
                "imported, runs the Triton kernels on CPU tensors through its interpreter)")
    return None


def available_backends() -> list[str]:
    """The backends that can run on this machine, ``eager`` always among them."""
    return [n for n in NAMES if n != "auto" and unavailable_reason(n) is None]


def _require(name: str) -> str:
    reason = unavailable_reason(name)
    if reason is not None:
        raise BackendUnavailableError(f"fastgan backend {name!r} is unavailable: {reason}")
    return name


def get_backend() -> str:
    """The backend in force: the innermost :func:`use_backend`, else :func:`set_backend`,
    else ``FASTGAN_BACKEND``, else ``auto``."""
    name = _latest_selection if torch.compiler.is_compiling() else _selected.get()
    if name is None:
        name = _check_name(os.environ.get(ENV_VAR, "auto"), f"environment variable {ENV_VAR}")
    return name


def _select(name: str | None) -> contextvars.Token:
    global _latest_selection
    _latest_selection = name
    return _selected.set(name)


def set_backend(name: str) -> None:
    """Selects the backend for this context (thread or task) from now on. Code that
    torch.compile traces sees the latest selection made in any context."""
    _select(_require(_check_name(name, "set_backend")))


@contextlib.contextmanager
def use_backend(name: str):
    """``with fastgan.use_backend("eager"): ...`` selects a backend for a block."""
    global _latest_selection
    previous = _selected.get()
    token = _select(_require(_check_name(name, "use_backend")))
    try:
        yield name
    finally:
        _selected.reset(token)
        _latest_selection = previous


@contextlib.contextmanager
def reference_ops():
    """Within the block every op resolves to ``eager``, whatever the backend in force:
    for a ``torch.func`` transform around a critic (it cannot enter the extension's C++
    autograd functions). A plain counter rather than a context variable, so that
    torch.compile traces it."""
    global _reference_depth
    _reference_depth += 1
    try:
        yield
    finally:
        _reference_depth -= 1


def resolve(device: torch.device) -> str:
    """The concrete backend (``eager``, ``cpu``, ``cuda`` or ``triton``) for tensors on
    ``device`` under the backend in force (``eager`` within :func:`reference_ops`)."""
    if _reference_depth:
        return "eager"
    name = get_backend()
    native = "cuda" if device.type == "cuda" else "cpu" if device.type == "cpu" else None
    if name == "auto":
        if native is None:
            return "eager"
        reasons = []
        for candidate in AUTO_ORDER[native]:
            reason = unavailable_reason(candidate)
            if reason is None and native == "cuda":
                from fastgan.verify import verified  # the first use on a GPU runs the self-check

                if not verified(candidate, device):
                    reason = "it failed its self-check on this GPU (run `fastgan doctor`)"
            if reason is None:
                return candidate
            reasons.append(f"{candidate}: {reason}")
        if native not in _warned_fallbacks:
            _warned_fallbacks.add(native)
            warnings.warn(f"fastgan: backend 'auto' falls back to the eager reference on "
                          f"{device.type} tensors ({'; '.join(reasons)})", RuntimeWarning,
                          stacklevel=3)
        return "eager"
    _require(name)
    if name == "cpu" and device.type != "cpu":
        raise BackendUnavailableError(f"fastgan backend 'cpu' runs on CPU tensors, got {device} tensors")
    if name == "cuda" and device.type != "cuda":
        raise BackendUnavailableError(f"fastgan backend 'cuda' runs on CUDA tensors, got {device} tensors")
    if name == "triton" and device.type != "cuda" and not (interpreting() and device.type == "cpu"):
        raise BackendUnavailableError(
            f"fastgan backend 'triton' runs on CUDA tensors (or on CPU tensors with "
            f"TRITON_INTERPRET=1), got {device} tensors")
    return name
