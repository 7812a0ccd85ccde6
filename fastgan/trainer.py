"""The thin trainer: one loop for every objective of :mod:`fastgan.objectives`, with the
fused ops underneath, metrics, ``metrics.jsonl``, plots, checkpoints that resume bit for
bit, a clean stop on Ctrl-C / SIGTERM, and profiling spans around every phase.

Started by ``torchrun`` (or ``fastgan train --nproc-per-node N``), each rank trains on
its shard of every batch and the gradients are averaged across ranks
(:mod:`fastgan.distributed`); rank 0 alone evaluates and writes.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import time
import warnings

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fastgan import _checks, augment, build, checkpoint, conditional, data as datasets, distributed, evaluation
from fastgan import objectives, profiling, run_folder, run_log, run_state
from fastgan.config import ConfigError, TrainConfig, resolve_device
from fastgan.penalties import BatchNormPenaltyWarning, warn_batch_mixing
from fastgan.profiling import span

Tensor = torch.Tensor


def _compiled(loss_backward):
    """``loss_backward`` as one ``torch.compile(fullgraph=True)`` graph, loss and backward
    together. The two settings it needs hold for its calls only, never for the rest of
    the process: ``trace_autograd_ops`` (dynamo traces the ``backward()`` call into the
    graph) and inductor's ``fallback_random`` (the instance noise comes from torch's own
    stream, as in the eager run)."""
    compiled = torch.compile(loss_backward, fullgraph=True)

    def call(*args, **kwargs):
        with torch._dynamo.config.patch(trace_autograd_ops=True), \
                torch._inductor.config.patch(fallback_random=True):
            return compiled(*args, **kwargs)
    return call


def _grad_norm(module: torch.nn.Module) -> float:
    norms = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


class Trainer:
    """Trains the networks of a run: the built-in ones for ``cfg.data``, or the user's
    own ``generator`` and ``critic`` (any ``nn.Module``s) on the user's ``data`` (a
    tensor, an array, a map-style ``Dataset`` or a ``DataLoader``, see
    :func:`fastgan.data.from_user`). ``Trainer.resume(run_dir)`` continues a
    checkpointed run bit for bit (given the same networks and data, when they were the
    user's).

    A critic the fused step runs (fastgan's, or any module it can trace) takes the fused
    critic step; any other critic gets :func:`fastgan.gradient_penalty` (the run's first
    line says which, and why). The generator takes
    ``(B, latent_dim)`` codes: ``cfg.latent_dim``, or the generator's ``latent_dim``
    attribute. The networks are moved to the run's device and dtype. Every draw of
    randomness goes through :meth:`sample_real`, :meth:`sample_latent` and
    :meth:`sample_eps`, in a fixed order per step."""

    def __init__(self, cfg: TrainConfig | None = None, *, generator: torch.nn.Module | None = None,
                 critic: torch.nn.Module | None = None, data=None, _resuming: bool = False):
        cfg = TrainConfig() if cfg is None else cfg
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
        if (generator is None) != (critic is None):
            raise ValueError("generator and critic: pass both (your own networks) or neither (the built-in ones)")
        for name, module in (("generator", generator), ("critic", critic)):
            if module is not None and not isinstance(module, torch.nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(module).__name__}")
        self.data = None if data is None else datasets.from_user(data)
        if self.data is not None:
            cfg = dataclasses.replace(cfg, data=self.data.name)
        cfg.validate()
        if generator is not None and cfg.arch != "dcgan":
            raise ConfigError("arch", "chooses the built-in networks; it cannot be combined with your own")
        self.cfg = cfg
        self.user = {"networks": generator is not None, "data": data is not None}
        self.group, self.device = distributed.setup(resolve_device(cfg.device), cfg.dist_timeout)
        if cfg.batch % self.group.world_size:
            raise ValueError(f"batch {cfg.batch} does not split evenly over {self.group.world_size} ranks")
        self.batch = cfg.batch // self.group.world_size  # this rank's shard
        self.dtype = getattr(torch, cfg.dtype)
        self.horizon = cfg.schedule_steps or cfg.steps  # where the lr decay and noise annealing end
        if not _resuming:
            self._claim_run_folder()
        try:
            os.makedirs(cfg.out, exist_ok=True)
        except OSError as exc:
            raise ConfigError("out", f"{cfg.out!r} cannot be made a run folder: {exc.strerror}") from None
        self.data = self.data or datasets.load(cfg.data)
        hp = objectives.defaults(cfg.objective, self.data.is_image, cfg.arch)
        self.lr_decay = cfg.lr_decay or hp.lr_decay
        self.n_critic = cfg.n_critic or hp.n_critic
        self.lam = hp.lam if cfg.lam is None else cfg.lam
        self.clip = hp.clip if cfg.clip is None else cfg.clip
        self.num_classes = self._classes() if cfg.conditional else 0
        self.head = (cfg.cond_critic or "projection") if cfg.conditional else None  # the critic's class head
        self.augment = augment.DiffAugment(cfg.augment)
        if self.augment and not self.data.is_image:
            raise ConfigError("augment", f"transforms images; the data {cfg.data} are points of shape "
                                         f"{tuple(self.data.shape)}")
        torch.manual_seed(cfg.seed)
        self.generator, self.critic, self.latent_dim = build.networks(cfg, self.data, self.device, self.dtype,
                                                                      generator, critic, self.num_classes, self.head)
        if self.lam and cfg.objective in ("wgan-gp", "nsgan-r1"):  # a per-sample penalty: no BatchNorm
            with warnings.catch_warnings():
                if not self.group.is_main:  # said once per run
                    warnings.simplefilter("ignore", BatchNormPenaltyWarning)
                warn_batch_mixing(self.critic)
        if self.group.active:
            self.generator = distributed.sync_batch_norm(self.generator, self.device)
            self.group.broadcast_(self.generator)
            self.group.broadcast_(self.critic)
            torch.manual_seed(distributed.stream_seed(cfg.seed, self.group.rank))  # this rank's own streams
        self.opt_d, self.opt_g, self.lr = build.optimizers(cfg, hp, self.generator, self.critic, self.clip)
        # mixed precision: autocast around the forwards, a loss scaler per network for fp16
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        # the critic's loss as one module, and with --ddp both networks' steps under DDP
        self.ddp = cfg.ddp and self.group.active
        self.critic_objective = objectives.CriticObjective(self.critic, cfg.objective,
                                                           "jvp" if cfg.ddp or cfg.compile else "auto",
                                                           self.scaler_d if cfg.amp == "fp16" else None,
                                                           fused=cfg.critic_step == "fused", head=self.head)
        self.critic_scores = self.critic_objective.score  # (the generator step's, also under DDP)
        self.critic_path = self.critic_objective.describe()
        if self.group.is_main:
            print(f"fastgan: {self.critic_path}")
        self.generator_forward = self.generator
        # the two losses with their backward, one torch.compile'd graph each with --compile
        self._critic_pass, self._generator_pass = self._critic_loss_backward, self._generator_loss_backward
        if cfg.compile:
            self.critic_objective.prepare(torch.zeros(2, *self.data.shape, device=self.device, dtype=self.dtype))
            self._critic_pass = _compiled(self._critic_loss_backward)
            self._generator_pass = _compiled(self._generator_loss_backward)
        if self.ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.critic_objective = DDP(self.critic_objective, device_ids=ids, broadcast_buffers=False)
            self.generator_forward = DDP(self.generator, device_ids=ids, broadcast_buffers=False)
        # the generator's exponential moving average, for evaluation and samples
        self.ema = (AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
                    if cfg.ema_decay is not None else None)
        self.step = self._checked = 0  # _checked: the last step whose deferred checks were read
        self.elapsed = 0.0  # training seconds before this process (resumed runs)
        self.evaluation = evaluation.Evaluation(cfg, self.data, self.device, metric_models=self.group.is_main,
                                                num_classes=self.num_classes)
        if cfg.tensorboard and self.group.is_main:
            try:
                from torch.utils import tensorboard  # noqa: F401
            except ImportError:
                raise ConfigError("tensorboard", "needs the tensorboard package: pip install tensorboard") from None
        self._stop = None

    def _classes(self) -> int:
        """The number of classes of a conditional run's data (labelled images)."""
        if not self.data.is_image:
            raise ConfigError("conditional", f"trains image GANs; the data {self.cfg.data} are points")
        if self.data.label_problem:
            raise ConfigError("conditional", f"needs labelled data: {self.data.label_problem}")
        if self.data.num_classes is None:
            raise ConfigError("conditional", f"needs labelled data, and {self.cfg.data} has none: use the digits, "
                                             "an .npz with x and y, a folder of one sub-folder per class, or a "
                                             "dataset of (sample, label) items")
        return self.data.num_classes

    def _claim_run_folder(self) -> None:
        """A new run never lands on a finished or interrupted one: a folder that holds
        one is refused, unless ``overwrite`` says to replace it (rank 0 removes the old
        run's files, and says so)."""
        refusal = run_folder.refusal(self.cfg.out)
        if refusal is None:
            return
        if not self.cfg.overwrite:
            raise ConfigError("out", refusal)
        if self.group.is_main:
            removed = run_folder.clear(self.cfg.out)
            print(f"fastgan: --overwrite: replaced the run in {self.cfg.out} (removed {', '.join(removed)})")

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.cfg.out, "checkpoint.pt")

    def state(self) -> dict:
        """The run's state (:func:`fastgan.run_state.state`; a collective in a
        distributed run: every rank calls it)."""
        return run_state.state(self)

    def save(self) -> str:
        """Writes the checkpoint (rank 0; every rank must call it)."""
        state = self.state()
        if self.group.is_main:
            checkpoint.save(self.checkpoint_path, state)
        return self.checkpoint_path

    @classmethod
    def from_checkpoint(cls, path: str, *, generator: torch.nn.Module | None = None,
                        critic: torch.nn.Module | None = None, data=None, **overrides) -> "Trainer":
        """The run saved in the checkpoint at ``path`` (its folder becomes ``out``);
        ``overrides`` may change settings outside RESUME_KEYS (steps, logging, device).
        A run of the user's own networks or data needs them again (the same
        architecture and data; their weights come from the checkpoint)."""
        saved = checkpoint.load(path)
        cfg = run_state.resumed_config(path, saved, networks=generator is not None, data=data is not None,
                                       overrides=overrides)
        trainer = cls(cfg, generator=generator, critic=critic, data=data, _resuming=True)
        run_state.restore(trainer, path, saved)
        return trainer

    @classmethod
    def resume(cls, run_dir: str, **kwargs) -> "Trainer":
        """The run checkpointed in ``run_dir``, ready to continue bit for bit from its
        step (log lines written after the checkpoint are dropped); ``kwargs`` as for
        :meth:`from_checkpoint`."""
        trainer = cls.from_checkpoint(os.path.join(run_dir, "checkpoint.pt"), **kwargs)
        if trainer.group.is_main:
            run_log.truncate(trainer.cfg.out, trainer.step)
        return trainer

    # ------------------------------------------------------------------ one step

    def sample_real(self, n: int) -> Tensor:
        """``n`` real samples for this rank, from its own data stream."""
        return self.data.sample(n).to(self.device, self.dtype)

    def sample_latent(self, n: int) -> Tensor:
        """``n`` latent codes for this rank, from its own noise stream."""
        return torch.randn(n, self.latent_dim).to(self.device, self.dtype)

    def sample_real_labeled(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` real samples and their classes (a conditional run), from this rank's
        data stream."""
        x, y = self.data.sample_labeled(n)
        return x.to(self.device, self.dtype), y.to(self.device)

    def sample_classes(self, n: int) -> Tensor:
        """``n`` classes drawn uniformly, the generator step's (a conditional run)."""
        return torch.randint(0, self.num_classes, (n,)).to(self.device)

    def augment_params(self) -> dict[str, Tensor]:
        """The per-sample parameters of ``cfg.augment`` for one batch of this rank
        (:meth:`fastgan.augment.DiffAugment.draw`), from its own stream."""
        return self.augment.draw(self.batch, *self.data.shape[1:]) if self.augment else {}

    def sample_eps(self, n: int) -> Tensor:
        """The ``n`` interpolation weights of the gradient penalty, shape ``(n,)``."""
        return torch.rand(n, dtype=self.dtype, device=self.device)

    def schedules(self) -> list[str]:
        """The schedules this run follows, in words (none, one or both)."""
        names = []
        if self.lr_decay != "none":
            names.append(f"the {self.lr_decay} learning-rate decay")
        if self.cfg.objective == "noisy-gan":
            names.append(f"the {self.cfg.noise_schedule} instance-noise annealing")
        return names

    def _sigma(self) -> float:
        if self.cfg.objective != "noisy-gan":
            return 0.0
        return objectives.noise_sigma(self.step, self.horizon, self.cfg.sigma, self.cfg.noise_schedule)

    def _autocast(self):
        """Autocast to ``cfg.amp``'s dtype around the forwards (a no-op without amp)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                              enabled=self.amp_dtype is not None)

    def _critic_iteration(self, it: int, sigma: float, log: bool) -> dict:
        obj, cfg = self.cfg.objective, self.cfg
        with span("data"):
            labels = None
            if self.num_classes:  # the fakes take the real batch's classes (the paper's code)
                real, labels = self.sample_real_labeled(self.batch)
            else:
                real = self.sample_real(self.batch)
            with torch.no_grad():
                fake = self.generator(self.sample_latent(self.batch), *([] if labels is None else [labels]))
        if self.augment:  # (a penalty then interpolates between the augmented batches)
            with span("augment"):
                real = self.augment.apply(real, self.augment_params())
                fake = self.augment.apply(fake, self.augment_params())
        # every k-th critic step of the run (n_critic is constant for the penalised objectives)
        penalised = obj in ("wgan-gp", "nsgan-r1") and (self.step * self.n_critic + it) % cfg.lazy_penalty == 0
        lam = self.lam * cfg.lazy_penalty if penalised else 0.0
        eps = self.sample_eps(self.batch) if lam and obj == "wgan-gp" else None
        self.opt_d.zero_grad(set_to_none=True)
        with span("critic_forward_backward"):
            loss, w, penalty = self._critic_pass(real, fake, eps, lam, sigma, labels)
        if not self.ddp:  # (DDP averaged them in the backward)
            with span("gradient_sync"):
                self.group.average_gradients(self.critic)
        stats = {}
        if log:  # reading values back syncs a GPU: only for the steps that are logged
            stats = self.group.mean({"critic_loss": float(loss), "wasserstein": float(w),
                                     "penalty": 0.0 if penalty is None else float(penalty)})
            self.scaler_d.unscale_(self.opt_d)  # (fp16) the norm of the true gradient
            stats["critic_grad_norm"] = _grad_norm(self.critic)
        with span("clip" if self.cfg.objective == "wgan" else "critic_optimizer"):
            self.scaler_d.step(self.opt_d)  # ClippedRMSprop clips in the same pass (wgan)
            self.scaler_d.update()
        return stats

    def _critic_loss_backward(self, real: Tensor, fake: Tensor, eps: Tensor | None, lam: float, sigma: float,
                              labels: Tensor | None = None):
        """The critic's loss (:class:`fastgan.objectives.CriticObjective`; ``labels``
        the classes of a conditional run) and its backward; returns (loss, W estimate,
        penalty or None), detached. With ``--compile`` this is one torch.compile'd graph
        (fullgraph)."""
        with self._autocast():
            loss, w, penalty = self.critic_objective(real, fake, eps=eps, lam=lam, sigma=sigma, labels=labels)
        (self.scaler_d.scale(loss) if self.cfg.amp == "fp16" else loss).backward()
        return loss.detach(), w, None if penalty is None else penalty.detach()

    def _generator_loss_backward(self, z: Tensor, sigma: float, augment_params: dict[str, Tensor],
                                 labels: Tensor | None = None) -> Tensor:
        """The generator's loss and its backward (compiled with ``--compile``), through
        the augmentation of ``augment_params``, for the classes ``labels`` of a
        conditional run (an AC-GAN critic adds their cross-entropy, weight 0.1); returns
        the loss, detached."""
        with self._autocast():
            x = self.generator_forward(z, *([] if labels is None else [labels]))
            if self.augment:
                x = self.augment.apply(x, augment_params)
            x = objectives.instance_noise(x, sigma)  # through the noise (Cor. 3.2)
            d, logits = self.critic_scores(x, labels)
            loss = objectives.generator_loss(self.cfg.objective, d)
            if logits is not None:
                loss = loss + conditional.ACGAN_GENERATOR_WEIGHT * conditional.class_loss(logits, labels)
        (self.scaler_g.scale(loss) if self.cfg.amp == "fp16" else loss).backward()
        return loss.detach()

    def _generator_step(self, sigma: float, log: bool) -> dict:
        with span("generator_step"):
            self.critic.requires_grad_(False)
            self.opt_g.zero_grad(set_to_none=True)
            z = self.sample_latent(self.batch)
            labels = self.sample_classes(self.batch) if self.num_classes else None
            loss = self._generator_pass(z, sigma, self.augment_params(), labels)
            if not self.ddp:
                self.group.average_gradients(self.generator)
            stats = {}
            if log:
                stats = self.group.mean({"generator_loss": float(loss)})
                self.scaler_g.unscale_(self.opt_g)
                stats["generator_grad_norm"] = _grad_norm(self.generator)
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
            self._update_ema()
            self.critic.requires_grad_(True)
        return stats

    def ema_decay(self, step: int) -> float:
        """The EMA's decay at generator step ``step`` (counted before it): ``ema_decay``,
        capped by StyleGAN2-ADA's ramp ``0.5 ** (1 / (ema_rampup * step))`` (its
        half-life of at most ``ema_rampup`` times the images seen so far), so that the
        average forgets the first, untrained generators; 0 at the first step."""
        decay = self.cfg.ema_decay
        if self.cfg.ema_rampup:
            decay = min(decay, 0.5 ** (1.0 / (self.cfg.ema_rampup * step))) if step else 0.0
        return decay

    def _update_ema(self) -> None:
        if self.ema is None:
            return
        with span("ema"):
            self.ema.multi_avg_fn = get_ema_multi_avg_fn(self.ema_decay(self.step))
            self.ema.update_parameters(self.generator)

    def _set_lr(self) -> None:
        """The learning rate of this step: constant, or decayed linearly to 0 at the
        schedule's end (the last step unless ``schedule_steps`` says otherwise), as the
        WGAN-GP reference image code does; a function of the step alone, so a resumed
        run follows it exactly."""
        decayed = self.lr * max(0.0, 1 - self.step / self.horizon)
        lr = decayed if self.lr_decay == "linear" else self.lr
        for opt in (self.opt_d, self.opt_g):
            for group in opt.param_groups:
                group["lr"] = lr

    def _evaluates_at(self, step: int) -> bool:
        return step == self.cfg.steps or bool(self.cfg.eval_every and step % self.cfg.eval_every == 0)

    def _logs_at(self, step: int) -> bool:
        return step % self.cfg.log_every == 0 or self._evaluates_at(step)

    def train_step(self) -> dict:
        """One generator step and the critic steps before it; returns the log record
        (empty for a step that is not logged). It reads nothing back from the device
        unless the step is logged; input checks follow ``cfg.checks`` (see
        :func:`fastgan.set_checks`; deferred ones are read by :meth:`report_checks`)."""
        with _checks.use_checks(self.cfg.checks):
            return self._train_step()

    def report_checks(self) -> None:
        """Reads back the deferred input checks of the steps since the last report;
        raises :class:`fastgan.NonFiniteError` naming the steps and the tensors."""
        first, self._checked = self._checked + 1, self.step
        _checks.report_checks(f"step {first}" if first == self.step else f"steps {first}-{self.step}")

    def _train_step(self) -> dict:
        log = self._logs_at(self.step + 1)
        self._set_lr()
        sigma = self._sigma()
        iters = (objectives.wgan_critic_iters(self.step, self.n_critic) if self.cfg.objective == "wgan"
                 else self.n_critic)
        for it in range(iters):
            record = self._critic_iteration(it, sigma, log and it == iters - 1)
        record.update(self._generator_step(sigma, log))
        self.step += 1
        if log and self.cfg.objective == "noisy-gan":
            record["sigma"] = sigma
        return record

    # ------------------------------------------------------------------ evaluation

    def sample(self, n: int, generator: torch.Generator | None = None, raw: bool = False,
               labels: Tensor | None = None) -> Tensor:
        """``n`` generated samples, on the CPU: from the EMA generator when the run keeps
        one (unless ``raw``), else from the trained generator (in eval mode). A
        conditional run makes the classes ``labels``, by default each class in turn
        (:func:`fastgan.conditional.balanced_labels`)."""
        net = self.generator if raw or self.ema is None else self.ema.module
        was_training = net.training
        net.eval()
        classes = []
        if self.num_classes:
            labels = conditional.balanced_labels(n, self.num_classes) if labels is None else labels
            classes = [labels.to(self.device)]
        elif labels is not None:
            raise ValueError("labels are for the samples of a conditional run (--conditional)")
        with torch.no_grad():
            z = torch.randn(n, self.latent_dim, generator=generator).to(self.device, self.dtype)
            x = net(z, *classes).float().cpu()
        net.train(was_training)
        return x

    def sample_labels(self) -> list[tuple[str, bool]]:
        """(label, raw) of the generators a picture shows: the EMA one beside the raw
        one when the run keeps an EMA, else the generator alone."""
        return [("EMA generator", False), ("raw generator", True)] if self.ema is not None else [("", True)]

    def evaluate(self) -> dict:
        """The metrics (:class:`fastgan.evaluation.Evaluation`) on ``eval_samples``
        samples of the generator :meth:`sample` uses, from an RNG of their own, so that
        evaluating never changes the training stream."""
        return self.evaluation.run(self.sample)

    # ------------------------------------------------------------------ the loop

    def _on_signal(self, signum, _frame):
        self._stop = signum

    def run(self) -> dict:
        """Trains up to ``cfg.steps`` generator steps; returns a summary. Ctrl-C or
        SIGTERM stops after the current step with a checkpoint (``interrupted`` holds
        the signal's number). In a distributed run every rank calls it; rank 0 alone
        evaluates, logs, profiles and writes, and a signal to any rank stops all of them
        after the same step."""
        cfg = self.cfg
        main = self.group.is_main
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: no signal handling
                pass
        profile = (profiling.Profile(cfg.profile, os.path.join(cfg.out, "trace.json"))
                   if cfg.profile and main else None)
        summary = {"start_step": self.step, "interrupted": None, "profile": None}
        log = run_log.RunLog(cfg.out, self.step, cfg.steps, writes=main, tensorboard=cfg.tensorboard,
                             progress=cfg.progress)
        first = last = None
        try:
            if self.step == 0 and main:
                first = {"step": 0, "time": 0.0, **self.evaluate()}
                log.write(first)
                log.pictures(self)
            started = time.perf_counter() - self.elapsed
            while self.step < cfg.steps and self._stop is None:
                record = self.train_step()
                self._stop = self.group.any_signal(self._stop)
                log.advance()
                if profile is not None and summary["profile"] is None:
                    summary["profile"] = profile.step()
                due_eval = self._evaluates_at(self.step) and main
                if due_eval:
                    record.update(self.evaluate())
                    log.pictures(self)
                if self._logs_at(self.step):
                    self.report_checks()
                    self.elapsed = time.perf_counter() - started
                    record = {"step": self.step, "time": round(self.elapsed, 3), **record}
                    log.write(record)
                    last = record if due_eval else last
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or self._stop is not None:
                    self.report_checks()  # no checkpoint of a step trained on NaNs
                    self.elapsed = time.perf_counter() - started
                    self.save()
            if self._stop is not None and self.step == summary["start_step"]:
                self.save()  # stopped before its first step: the checkpoint it names exists
            if profile is not None and summary["profile"] is None:  # fewer steps than asked to profile
                summary["profile"] = profile.stop()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            log.close()
        summary.update(step=self.step, interrupted=self._stop, first=first, last=last,
                       checkpoint=self.checkpoint_path, log=log.path)
        return summary
