"""fastgan: fused kernels and a thin trainer for Wasserstein GANs.

Public API of this version:

* :class:`FusedMLPCritic`, whose ``wgan_gp_loss`` is the fused WGAN-GP critic step;
* :class:`FusedCritic` (``FusedCritic.from_sequential(seq)``): the fused WGAN, WGAN-GP
  and R1 steps of convolutional and MLP critics written as a chain of layers;
* input checks that read data (NaN/inf): :func:`set_checks` / :func:`use_checks`
  (``eager``, ``deferred``, ``off``), :func:`report_checks`, :class:`NonFiniteError`;
* backend selection: :func:`set_backend`, :func:`use_backend`, :func:`get_backend`,
  :func:`available_backends` (and ``FASTGAN_BACKEND``);
* :func:`gradient_penalty`, :func:`r1_penalty`, :func:`dragan_penalty` for any critic;
* weight clipping: :func:`fastgan.ops.clip_` and :class:`ClippedRMSprop`;
* :func:`doctor`, the self-check of every backend (also ``fastgan doctor``);
* :mod:`fastgan.reference`, the eager PyTorch oracle of every op;
* :class:`Trainer` and :class:`TrainConfig`: the trainer, for the built-in networks
  and data sets or for your own networks and data (``examples/train_own_gan.py``).
"""
import importlib
import importlib.util

from fastgan.backends import (
    BackendUnavailableError,
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)
from fastgan._checks import FastganWarning, NonFiniteError, get_checks, report_checks, set_checks, use_checks
from fastgan._extension import ExtensionNotBuiltError

# The rest of the API loads on first use, so that `import fastgan.ops` (the fused ops
# alone) does not load the modules above them (nn, the trainer).
_LAZY = {
    "doctor": "fastgan.verify", "FusedCritic": "fastgan.nn", "FusedMLPCritic": "fastgan.nn",
    "CriticLoss": "fastgan.ops.graph", "ClippedRMSprop": "fastgan.optim", "dragan_penalty": "fastgan.penalties",
    "gradient_penalty": "fastgan.penalties", "r1_penalty": "fastgan.penalties", "ConfigError": "fastgan.config",
    "ConfigTypeError": "fastgan.config", "TrainConfig": "fastgan.config", "Trainer": "fastgan.trainer",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: fastgan.nn, ...
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError", "ClippedRMSprop", "ConfigError", "ConfigTypeError", "CriticLoss",
    "ExtensionNotBuiltError", "FastganWarning", "FusedCritic", "FusedMLPCritic", "NonFiniteError", "TrainConfig", "Trainer",
    "available_backends", "doctor", "dragan_penalty", "get_backend", "get_checks", "gradient_penalty",
    "r1_penalty", "report_checks", "set_backend", "set_checks", "use_backend", "use_checks", "__version__",
]
