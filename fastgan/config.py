"""The settings of a training run: :class:`TrainConfig`, every field with its
command-line help, type and range, checked by :meth:`TrainConfig.validate` (no files
read), and the errors that name the setting at fault."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from fastgan import _checks, augment, conditional, objectives, sizes


def _setting(default, help: str, kind: type | None = None, unset: str = "set by the objective and the data"):
    """A TrainConfig field with its command-line help, value type, and for a None
    default what None means (``unset``)."""
    return field(default=default, metadata={"help": help, "type": kind or type(default), "unset": unset})


class ConfigError(ValueError):
    """A run setting that cannot be used; ``setting`` names it (the field's name)."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting} {problem}")
        self.setting, self.problem = setting, problem


class ConfigTypeError(ConfigError, TypeError):
    """A run setting of the wrong type (a float ``steps``, a string ``lr``)."""


_CHOICES = {"amp": ("none", "bf16", "fp16"), "arch": sizes.ARCHS, "critic_step": ("fused", "drop-in"),
            "checks": _checks.MODES, "lr_decay": ("none", "linear"), "cond_critic": conditional.HEADS,
            "noise_schedule": ("linear", "exponential", "cosine"), "dtype": ("float32", "float64")}
# (minimum, whether the minimum itself is allowed) of the numeric settings
_BOUNDS = {"steps": (1, True), "batch": (1, True), "n_critic": (1, True), "lr": (0, False),
           "beta1": (0, True), "beta2": (0, True), "lam": (0, True), "lazy_penalty": (1, True),
           "clip": (0, False), "sigma": (0, True), "width": (1, True), "latent_dim": (1, True),
           "schedule_steps": (1, True), "eval_every": (0, True), "ema_decay": (0, True), "ema_rampup": (0, True), "eval_samples": (10, True),
           "log_every": (1, True), "checkpoint_every": (1, True), "seed": (0, True), "dist_timeout": (0, False),
           "profile": (0, True)}


@dataclass
class TrainConfig:
    """A run's settings. ``None`` takes the objective's paper default
    (:func:`fastgan.objectives.defaults`) or the model's default size.

    :meth:`validate` checks every value's type and range; it raises
    :class:`ConfigError` (a ``ValueError``) or :class:`ConfigTypeError` (a
    ``TypeError``) naming the setting."""

    objective: str = _setting("wgan-gp", "gan, nsgan, noisy-gan, wgan, wgan-gp or nsgan-r1")
    data: str = _setting("8gaussians", "a data set's name or the path of an array or image folder")
    steps: int = _setting(2000, "generator steps")
    batch: int = _setting(256, "batch size (the whole batch, over all ranks)")
    n_critic: int | None = _setting(None, "critic steps per generator step", int)
    lr: float | None = _setting(None, "learning rate of both networks", float)
    lr_decay: str | None = _setting(None, "learning-rate schedule: none, or linear to 0 at the last step", str,
                                    unset="linear for --arch resnet with wgan-gp (the paper's), else none")
    beta1: float | None = _setting(None, "Adam's beta1, in [0, 1)", float)
    beta2: float | None = _setting(None, "Adam's beta2, in [0, 1)", float)
    lam: float | None = _setting(None, "gradient penalty weight (wgan-gp), R1's gamma (nsgan-r1)", float)
    lazy_penalty: int = _setting(1, "penalty every k critic steps, scaled by k (wgan-gp, nsgan-r1)")
    critic_step: str = _setting("fused", "the WGAN(-GP) critic step of fastgan's critics: fused (one pass, no double "
                                         "backward) or drop-in (their forward and fastgan.gradient_penalty, for "
                                         "comparison)")
    clip: float | None = _setting(None, "weight clipping bound c (wgan)", float)
    sigma: float = _setting(1.0, "initial instance-noise std (noisy-gan)")
    noise_schedule: str = _setting("linear", "instance-noise annealing: linear, exponential or cosine")
    schedule_steps: int | None = _setting(
        None, "the generator step at which the lr decay and the noise annealing end", int,
        unset="--steps; a resumed run keeps the end it started with")
    augment: str = _setting("none", "differentiable augmentation of real and fake images before every critic "
                                    "call (DiffAugment): none, or a comma-separated policy of color, translation "
                                    "and cutout")
    conditional: bool = _setting(False, "class-conditional training on the data's labels (the digits', an .npz's "
                                        "y, class sub-folders, (sample, label) items): the generator takes the "
                                        "class, the critic a class head (--cond-critic)")
    cond_critic: str | None = _setting(None, "the conditional critic's class head: projection (Miyato & Koyama "
                                             "2018; fused) or acgan (the WGAN-GP paper's AC-GAN)", str,
                                       unset="projection with --conditional")
    arch: str = _setting("dcgan", "the image networks: dcgan (DCGAN-style conv nets) or resnet (the WGAN-GP "
                                  "paper's ResNets: its CIFAR nets up to 32 pixels, its 64x64 nets above)")
    width: int | None = _setting(None, "network width", int,
                                 unset="512 for points, 64 for dcgan images, for resnet 128 up to 32 pixels "
                                       "and 64 above")
    latent_dim: int | None = _setting(None, "latent size", int,
                                      unset="2 for points (the toy code), 64 for dcgan images, 128 for resnet")
    eval_every: int = _setting(500, "metrics every k steps (0: at the start and the end only)")
    eval_samples: int = _setting(1000, "samples per metric evaluation")
    log_every: int = _setting(10, "a metrics.jsonl line every k steps")
    checkpoint_every: int = _setting(500, "a checkpoint every k steps (and at the end)")
    seed: int = _setting(0, "random seed (>= 0)")
    device: str = _setting("auto", "cpu, cuda, cuda:N or auto")
    dtype: str = _setting("float32", "float32 or float64 (networks and samples)")
    amp: str = _setting("none", "mixed precision: none, bf16 (autocast), or fp16 (autocast and a GradScaler "
                                "per network)")
    dist_timeout: float = _setting(300.0, "seconds a rank waits for the others before it gives up (distributed runs)")
    out: str = _setting("runs/demo", "the run folder")
    overwrite: bool = _setting(False, "replace the run that the run folder holds (its checkpoint, log, plots, "
                                      "profile and TensorBoard events); without it such a folder is refused")
    profile: int = _setting(0, "record this many steps with torch.profiler (trace.json)")
    ema_decay: float | None = _setting(None, "keep an exponential moving average of the generator with this decay "
                                             "per step (e.g. 0.999), used for metrics and samples", float,
                                       unset="no EMA")
    ema_rampup: float = _setting(0.05, "the EMA's ramp: its half-life is at most this fraction of the steps "
                                       "so far (StyleGAN2-ADA's ema_rampup; 0: no ramp)")
    inception_weights: str | None = _setting(
        None, "a local file of torch-fidelity's Inception-v3 weights, for FID, KID and precision/recall on images "
              "other than digits; nothing is downloaded", str, unset="torch.hub's cache, if it holds them")
    checks: str = _setting("deferred", "NaN/inf checks of the inputs: deferred (on the device, read back on logged "
                                       "steps and before checkpoints: no host sync per step), eager, or off")
    ddp: bool = _setting(False, "average gradients with torch's DistributedDataParallel (the critic step as one "
                                "module, any penalty by jvp) instead of fastgan's flat all-reduce (distributed runs)")
    compile: bool = _setting(False, "torch.compile (fullgraph) each network's loss with its backward; any "
                                    "penalty by jvp (torch.compile refuses a double backward)")
    tensorboard: bool = _setting(False, "TensorBoard events in RUN_DIR/tensorboard: scalars, samples, the critic "
                                        "surface")
    progress: bool = _setting(True, "the progress bar (shown on a terminal only)")

    def validate(self) -> None:
        """Checks every setting's type and range (no files are read)."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, _typed(f, getattr(self, f.name)))
        if self.objective not in objectives.OBJECTIVES:
            raise ConfigError("objective", f"must be one of {', '.join(objectives.OBJECTIVES)}, "
                                           f"got {self.objective!r}")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices and not (name in ("lr_decay", "cond_critic")
                                                           and getattr(self, name) is None):
                raise ConfigError(name, f"must be {' or '.join(choices)}, got {getattr(self, name)!r}")
        for name, (low, inclusive) in _BOUNDS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(name, f"must be finite, got {value}")
            if value < low or (value == low and not inclusive):
                raise ConfigError(name, f"must be {'>=' if inclusive else '>'} {low}, got {value}")
        for name in ("beta1", "beta2", "ema_decay"):
            if getattr(self, name) is not None and getattr(self, name) >= 1:
                raise ConfigError(name, f"must be < 1, got {getattr(self, name)}")
        if not self.data:
            raise ConfigError("data", "must name a data set or a path, got ''")
        if self.cond_critic is not None and not self.conditional:
            raise ConfigError("cond_critic", "applies to conditional runs (--conditional)")
        try:
            augment.parse_policy(self.augment)
        except ValueError as exc:
            raise ConfigError("augment", str(exc)) from None
        if self.compile and self.amp == "fp16":
            raise ConfigError("amp", "fp16 cannot be combined with compile: torch.compile does not trace the "
                                     "GradScaler (use bf16, which needs none)")
        if self.compile and self.checks == "eager":
            raise ConfigError("checks", "cannot be eager with compile: reading a check back breaks the graph "
                                        "(use deferred or off)")
        if not self.out:
            raise ConfigError("out", "must be a folder path, got ''")
        try:
            device = torch.device(self.device) if self.device != "auto" else None
        except RuntimeError:
            device = None
        if self.device != "auto" and (device is None or device.type not in ("cpu", "cuda")):
            raise ConfigError("device", f"must be cpu, cuda, cuda:N or auto, got {self.device!r}")


def _typed(f: dataclasses.Field, value):
    """``value`` of setting ``f`` checked against its type (an int where a float is
    wanted becomes a float); None only where the default is None."""
    kind = f.metadata["type"]
    if value is None and f.default is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    raise ConfigTypeError(f.name, f"must be {names[kind]}{' or unset' if f.default is None else ''}, "
                                  f"got {value!r} ({type(value).__name__})")


# Settings a resumed run must share with its checkpoint (the rest may change, e.g. steps).
RESUME_KEYS = ("objective", "data", "arch", "augment", "conditional", "cond_critic", "batch", "n_critic", "lr",
               "lr_decay", "beta1", "beta2", "lam", "lazy_penalty", "clip", "sigma", "noise_schedule", "width",
               "latent_dim", "seed", "dtype", "ema_decay", "ema_rampup", "amp")


def resolve_device(name: str) -> torch.device:
    """The device of setting ``device``: ``auto`` is a GPU where torch sees one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no GPU")
    return device
