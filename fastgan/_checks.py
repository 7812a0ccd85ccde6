"""Input checks shared by the public ops: errors that name the offending argument.

Shape, dtype and device checks read no data and always run. Checks that read data
(NaN and infinity) follow the mode of :func:`set_checks`:

* ``eager`` (the ops' default): each check reads its result back and raises at once,
  a device-to-host synchronisation per check on a GPU;
* ``deferred`` (the trainer's default): each check is a reduction on the device, kept
  per tensor name; :func:`report_checks` reads them all back with one
  synchronisation and raises :class:`NonFiniteError` naming the tensors and the span;
* ``off``: no data is read.

Inside ``torch.compile`` a check cannot read its result back without breaking the
graph, so there ``eager`` checks run as ``deferred`` ones: a flag on the device per
tensor name, read by :func:`report_checks` (call it where a synchronisation is
acceptable, e.g. on logged steps). ``off`` stays off.
"""
from __future__ import annotations

import contextlib

import torch
import torch.autograd.forward_ad as fwAD

CPU_DTYPES = (torch.float32, torch.float64)
CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def autocast_to(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype`` when autocast is on for its device and they differ (a fused op
    whose parameters are float32, fed a half-precision activation: it computes in
    float32, as autocast does for ops it does not list); ``t`` otherwise."""
    if isinstance(t, torch.Tensor) and t.dtype != dtype and torch.is_autocast_enabled(t.device.type):
        return t.to(dtype)
    return t


def dual_parts(t: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(primal, tangent)`` of ``t`` inside a forward-mode pass (``tangent`` None when
    it carries none, or when no pass is on). Under torch.compile the pass's level is
    not visible as a Python global, so the first level (0) is read there."""
    if t is None or not (fwAD._current_level >= 0 or torch.compiler.is_compiling()):
        return t, None
    return fwAD.unpack_dual(t, level=max(fwAD._current_level, 0))


def check_features(t: torch.Tensor, name: str, features: int) -> None:
    """``t`` is a floating (batch, features) matrix of a dtype the kernels support."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2 or t.shape[1] != features:
        raise ValueError(f"{name} must have shape (batch, {features}), got {tuple(t.shape)}")
    check_dtype(t, name)


def check_dtype(t: torch.Tensor, name: str) -> None:
    """``t`` has a floating dtype the kernels support on its device."""
    allowed = CUDA_DTYPES if t.is_cuda else CPU_DTYPES
    if t.dtype not in allowed:
        raise TypeError(f"{name} has dtype {t.dtype}; supported on {t.device.type}: "
                        + ", ".join(str(d) for d in allowed))


def check_like(t: torch.Tensor, name: str, ref: torch.Tensor, ref_name: str) -> None:
    """``t`` has the dtype and device of ``ref``."""
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but {ref_name} has dtype {ref.dtype}")


def per_sample_weights(eps, name: str, like: torch.Tensor) -> torch.Tensor:
    """``eps`` as a detached ``(B,)`` tensor of ``like``'s dtype: one weight per sample
    of the batch ``like``, in any shape that holds one value per sample, ``(B,)``,
    ``(B, 1)``, ``(B, 1, 1, 1)``, ..."""
    B = like.shape[0]
    if not isinstance(eps, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape ({B},) or ({B}, 1, ...), got {type(eps).__name__}")
    if eps.dim() < 1 or eps.shape[0] != B or eps.numel() != B:
        raise ValueError(f"{name} must hold one weight per sample, shape ({B},) or ({B}, 1, ...), "
                         f"got {tuple(eps.shape)}")
    if not eps.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {eps.dtype}")
    if eps.device != like.device:
        raise ValueError(f"{name} is on {eps.device} but the batch is on {like.device}")
    check_finite(eps, name)
    return eps.detach().reshape(B).to(like.dtype)


MODES = ("eager", "deferred", "off")
_mode = "eager"
_pending: dict[str, torch.Tensor] = {}  # name -> "finite so far" flag, on the tensor's device


class NonFiniteError(ValueError):
    """Tensors checked in ``deferred`` mode held NaN or infinite values."""


class FastganWarning(UserWarning):
    """The base of fastgan's warnings (filter them with ``warnings``); the ``fastgan``
    command prints each as one line."""


def set_checks(mode: str) -> None:
    """Sets how the ops check their inputs for NaN and infinity: ``"eager"``,
    ``"deferred"`` or ``"off"`` (see the module's documentation)."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"checks must be one of {', '.join(MODES)}, got {mode!r}")
    _mode = mode


def get_checks() -> str:
    """The current mode of :func:`set_checks`."""
    return _mode


def active_checks() -> str:
    """The mode the checks follow here: :func:`get_checks`, except that ``eager``
    becomes ``deferred`` while torch.compile traces (a value read back would break
    the graph)."""
    if _mode == "eager" and torch.compiler.is_compiling():
        return "deferred"
    return _mode


@contextlib.contextmanager
def use_checks(mode: str):
    """``with fastgan.use_checks("deferred"):`` the mode for a block, then the previous one."""
    previous = _mode
    set_checks(mode)
    try:
        yield
    finally:
        set_checks(previous)


def report_checks(where: str = "since the last report") -> None:
    """Reads back the flags of the checks deferred since the last report (one
    synchronisation) and forgets them; raises :class:`NonFiniteError` naming the
    tensors that held NaN or infinite values, and ``where`` (e.g. "steps 31-40")."""
    if not _pending:
        return
    names = list(_pending)
    flags = [_pending.pop(name) for name in names]
    ok = torch.stack([f.to(flags[0].device) for f in flags]).cpu().tolist()
    bad = [name for name, fine in zip(names, ok) if not fine]
    if bad:
        raise NonFiniteError(f"{where}: {', '.join(bad)} contained NaN or infinite values")


def all_finite(t: torch.Tensor) -> bool:
    """``t`` holds no NaN or infinity. True while a CUDA graph is being captured: the
    check reads the data back, which a capture cannot do."""
    if t.is_cuda and torch.cuda.is_current_stream_capturing():
        return True
    return bool(torch.isfinite(t).all())


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raises if ``t`` holds a NaN or an infinity (see :func:`all_finite`); in
    ``deferred`` mode records the answer on the device instead, in ``off`` mode does
    nothing. Under torch.compile eager checks are deferred (:func:`active_checks`)."""
    mode = active_checks()
    if mode == "off":
        return
    if mode == "deferred":
        flag = torch.isfinite(t.detach()).all()
        _pending[name] = flag if name not in _pending else _pending[name] & flag
        return
    if not all_finite(t):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_number(value: float, name: str, minimum: float | None = None) -> float:
    """``value`` is a finite real number, at least ``minimum`` when given."""
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value
