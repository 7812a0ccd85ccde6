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
from fastgan.backends import (
    BackendUnavailableError,
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)
from fastgan._checks import FastganWarning, NonFiniteError, get_checks, report_checks, set_checks, use_checks
from fastgan._extension import ExtensionNotBuiltError
from fastgan.verify import doctor
from fastgan.nn import FusedCritic, FusedMLPCritic
from fastgan.ops.critic import CriticLoss
from fastgan.optim import ClippedRMSprop
from fastgan.penalties import dragan_penalty, gradient_penalty, r1_penalty
from fastgan.trainer import ConfigError, ConfigTypeError, TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError", "ClippedRMSprop", "ConfigError", "ConfigTypeError", "CriticLoss",
    "ExtensionNotBuiltError", "FastganWarning", "FusedCritic", "FusedMLPCritic", "NonFiniteError", "TrainConfig", "Trainer",
    "available_backends", "doctor", "dragan_penalty", "get_backend", "get_checks", "gradient_penalty",
    "r1_penalty", "report_checks", "set_backend", "set_checks", "use_backend", "use_checks", "__version__",
]
