"""The trainer: every objective runs, resume is bit-exact, checkpoints fail clearly,
profiling spans and traces."""
import dataclasses
import json
import math
import os
import signal

import numpy as np
import pytest
import torch

from fastgan import checkpoint
from fastgan.objectives import OBJECTIVES, noise_sigma, wgan_critic_iters
from fastgan.trainer import TrainConfig, Trainer

from conftest import lockstep


def small(tmp_path, **kw):
    base = dict(steps=3, batch=32, width=32, eval_every=0, eval_samples=100, log_every=1,
                checkpoint_every=100, progress=False, out=str(tmp_path / "run"))
    return TrainConfig(**{**base, **kw})


def log_lines(cfg):
    with open(os.path.join(cfg.out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_trains_a_few_steps(tmp_path, objective):
    cfg = small(tmp_path, objective=objective, n_critic=2, steps=2 if objective == "wgan" else 3)
    trainer = Trainer(cfg)
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    summary = trainer.run()
    assert summary["step"] == cfg.steps and summary["interrupted"] is None
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.generator.parameters()))
    lines = log_lines(cfg)
    assert [r["step"] for r in lines] == list(range(cfg.steps + 1))
    last = lines[-1]
    for key in ("time", "critic_loss", "generator_loss", "wasserstein", "penalty", "critic_grad_norm",
                "generator_grad_norm", "w1", "modes", "high_quality"):
        assert key in last and last[key] == last[key], key  # present and not NaN
    if objective == "wgan":  # clipped weights
        assert all(p.abs().max() <= 0.01 for p in trainer.critic.parameters())
    if objective == "wgan-gp":
        assert last["penalty"] > 0
    if objective == "noisy-gan":
        assert last["sigma"] == pytest.approx(noise_sigma(cfg.steps - 1, cfg.steps, 1.0, "linear"))


def test_images_train_with_the_dcgan_nets_and_digit_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    cfg = small(tmp_path, data="digits", steps=2, n_critic=1, width=8, latent_dim=8)
    summary = Trainer(cfg).run()
    assert {"classes", "class_kl", "w1"} <= set(summary["last"])


def test_schedules():
    assert [wgan_critic_iters(s, 5) for s in (0, 24, 25, 499, 500, 501)] == [100, 100, 5, 5, 100, 5]
    assert noise_sigma(0, 10, 2.0, "linear") == 2.0 and noise_sigma(5, 10, 2.0, "linear") == 1.0
    assert noise_sigma(5, 10, 2.0, "cosine") == pytest.approx(1.0)
    assert noise_sigma(10, 10, 2.0, "exponential") == 0.0
    with pytest.raises(ValueError, match="unknown noise schedule"):
        noise_sigma(1, 10, 1.0, "step")


@pytest.mark.parametrize("objective,lr_decay", [("wgan-gp", "linear"), ("noisy-gan", "none")])
def test_resume_equals_an_uninterrupted_run_bit_for_bit(tmp_path, objective, lr_decay):
    whole = Trainer(small(tmp_path / "a", objective=objective, steps=6, n_critic=2, lr_decay=lr_decay))
    whole.run()
    first = Trainer(small(tmp_path / "b", objective=objective, steps=6, n_critic=2, lr_decay=lr_decay))
    signal_during_step(first, 3)
    assert first.run()["interrupted"] == signal.SIGINT
    resumed = Trainer.resume(first.cfg.out)
    assert resumed.step == 3
    resumed.run()
    assert_same_run(whole, resumed)


def signal_during_step(trainer, step: int) -> None:
    """Makes a SIGINT arrive while ``trainer`` runs its step number ``step``."""
    inner = trainer.train_step

    def step_then_signal():
        record = inner()
        if trainer.step == step:
            trainer._on_signal(signal.SIGINT, None)
        return record

    trainer.train_step = step_then_signal


def assert_same_run(whole, resumed):
    """The two trainers hold the same networks, optimiser state, RNG and log, bit for bit."""
    a, b = whole.state(), resumed.state()
    for key in ("generator", "critic"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    assert all(torch.equal(x, y) for x, y in zip(torch.utils._pytree.tree_leaves(a["opt_d"]["state"]),
                                                 torch.utils._pytree.tree_leaves(b["opt_d"]["state"])))
    assert (a["ema"] is None) == (b["ema"] is None)
    if a["ema"] is not None:
        assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    train_keys = ("step", "critic_loss", "generator_loss", "wasserstein", "penalty", "sigma")
    strip = lambda lines: [{k: r[k] for k in train_keys if k in r} for r in lines]  # noqa: E731
    assert strip(log_lines(whole.cfg)) == strip(log_lines(resumed.cfg))


def test_corrupt_foreign_and_mismatched_checkpoints_fail_clearly(tmp_path):
    cfg = small(tmp_path, steps=1)
    Trainer(cfg).run()
    path = os.path.join(cfg.out, "checkpoint.pt")
    with pytest.raises(checkpoint.CheckpointError, match="written by a different run"):
        Trainer.resume(cfg.out, objective="wgan")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="corrupt or not a checkpoint"):
        Trainer.resume(cfg.out)
    with open(path, "wb") as f:
        f.write(b"not a checkpoint at all")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt or not a checkpoint"):
        Trainer.resume(cfg.out)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(checkpoint.CheckpointError, match="not a fastgan checkpoint"):
        Trainer.resume(cfg.out)
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        Trainer.resume(str(tmp_path / "nowhere"))


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "ck.pt")
    checkpoint.save(path, {"step": 1})

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"step": 2})
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1  # the old checkpoint, whole
    assert os.listdir(tmp_path) == ["ck.pt"]  # no temporary left behind


def test_profile_records_the_phases_and_writes_a_trace(tmp_path):
    cfg = small(tmp_path, steps=2, profile=1, n_critic=1)
    summary = Trainer(cfg).run()
    assert "fastgan/critic_forward_backward" in summary["profile"]
    assert "fastgan/generator_step" in summary["profile"]
    with open(os.path.join(cfg.out, "trace.json")) as f:
        assert "fastgan/data" in f.read()


def test_bad_settings_are_named(tmp_path):
    for kw, match in [(dict(objective="lsgan"), "objective must be one of .*got 'lsgan'"),
                      (dict(steps=0), "steps must be >= 1"),
                      (dict(device="tpu"), "device must be"), (dict(noise_schedule="step"), "noise_schedule must be"),
                      (dict(lr_decay="cosine"), "lr_decay must be none or linear")]:
        with pytest.raises(ValueError, match=match):
            Trainer(dataclasses.replace(small(tmp_path), **kw))


def test_linear_lr_decay_reaches_zero_at_the_end(tmp_path):
    trainer = Trainer(small(tmp_path, steps=4, lr=1e-3, lr_decay="linear", n_critic=1))
    seen = []
    for _ in range(4):
        trainer.train_step()
        seen.append(trainer.opt_g.param_groups[0]["lr"])
    assert seen == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(2.5e-4)


@pytest.mark.parametrize("objective, lr_decay", [("wgan-gp", "linear"), ("noisy-gan", "none")])
def test_resuming_with_more_steps_keeps_the_schedules_horizon(tmp_path, capsys, objective, lr_decay):
    """A run of 4 steps extended to 6 on resume continues the schedules it started
    (ending at step 4), exactly as a 6-step run with --schedule-steps 4, and says so."""
    whole = Trainer(small(tmp_path / "a", objective=objective, steps=6, schedule_steps=4, n_critic=1,
                          lr_decay=lr_decay))
    whole.run()
    Trainer(small(tmp_path / "b", objective=objective, steps=4, n_critic=1, lr_decay=lr_decay)).run()
    resumed = Trainer.resume(str(tmp_path / "b" / "run"), steps=6)
    assert "keep their end at step 4 (--schedule-steps N re-times them)" in capsys.readouterr().out
    resumed.run()
    assert_same_run(whole, resumed)


def test_resuming_with_schedule_steps_retimes_and_says_so(tmp_path, capsys):
    Trainer(small(tmp_path, steps=2, n_critic=1, lr_decay="linear")).run()
    resumed = Trainer.resume(str(tmp_path / "run"), steps=4, schedule_steps=4)
    assert "re-timed to end at step 4 (it was 2) from step 2 on" in capsys.readouterr().out
    resumed._set_lr()
    assert resumed.opt_g.param_groups[0]["lr"] == pytest.approx(resumed.lr * 0.5)


def test_a_signal_before_the_first_step_leaves_the_checkpoint_it_names(tmp_path):
    trainer = Trainer(small(tmp_path, steps=3))
    trainer._on_signal(signal.SIGTERM, None)  # e.g. during the start's evaluation
    summary = trainer.run()
    assert summary["interrupted"] == signal.SIGTERM and summary["step"] == 0
    assert checkpoint.load(summary["checkpoint"])["step"] == 0
    resumed = Trainer.resume(trainer.cfg.out)
    resumed.run()
    assert [r["step"] for r in log_lines(resumed.cfg)] == [0, 1, 2, 3]  # one start line, not two


@pytest.mark.parametrize("dim", [1, 3])
def test_points_of_any_dimension_train_and_plot(tmp_path, dim):
    from fastgan import plots

    data = tmp_path / f"points{dim}.npy"
    np.save(data, np.random.default_rng(0).normal(size=(200, dim)).astype(np.float32))
    trainer = Trainer(small(tmp_path, data=str(data), steps=2, n_critic=1))
    trainer.run()
    for path in plots.run_plots(trainer):
        assert os.path.getsize(path) > 0


def test_generator_ema_follows_the_ramped_decay_and_resumes_bit_for_bit(tmp_path):
    from torch.optim.swa_utils import AveragedModel

    cfg = small(tmp_path / "a", steps=5, n_critic=1, ema_decay=0.9, ema_rampup=0.5)
    whole = Trainer(cfg)
    assert isinstance(whole.ema, AveragedModel)
    expected, step = None, whole.train_step

    def step_and_average():  # the EMA by hand, from the generator after each step
        nonlocal expected
        decay = whole.ema_decay(whole.step)
        record = step()
        now = [p.detach().clone() for p in whole.generator.parameters()]
        expected = now if expected is None else [decay * e + (1 - decay) * p for e, p in zip(expected, now)]
        return record

    whole.train_step = step_and_average
    whole.run()
    assert [whole.ema_decay(s) for s in (0, 1, 2, 4, 100)] == [0.0, 0.25, 0.5, 0.7071067811865476, 0.9]
    for e, p in zip(expected, whole.ema.module.parameters()):
        assert torch.allclose(e, p, rtol=1e-6, atol=1e-7)
    assert not torch.equal(whole.sample(10, torch.Generator().manual_seed(0)),
                           whole.sample(10, torch.Generator().manual_seed(0), raw=True))

    first = Trainer(small(tmp_path / "b", steps=5, n_critic=1, ema_decay=0.9, ema_rampup=0.5))
    signal_during_step(first, 2)
    first.run()
    resumed = Trainer.resume(first.cfg.out)
    resumed.run()
    whole.train_step = step
    assert_same_run(whole, resumed)


def test_ema_samples_are_plotted_beside_the_raw_ones(tmp_path, monkeypatch):
    from fastgan import plots

    trainer = Trainer(small(tmp_path, steps=1, n_critic=1, ema_decay=0.99))
    trainer.run()
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    plots.run_plots(trainer)
    titles = [ax.get_title() for ax in figures[0].axes if ax.get_title()]
    assert any("EMA generator" in t for t in titles) and any("raw generator" in t for t in titles)


@pytest.mark.parametrize("data", ["8gaussians", "digits"])
def test_tensorboard_events_read_back(tmp_path, monkeypatch, data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    cfg = small(tmp_path, data=data, steps=2, n_critic=1, width=8, latent_dim=8, eval_every=1, tensorboard=True,
                ema_decay=0.9)
    Trainer(cfg).run()
    events = EventAccumulator(os.path.join(cfg.out, "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    lines = log_lines(cfg)
    for key in ("critic_loss", "generator_loss", "w1"):
        scalars = events.Scalars(key)
        assert [e.step for e in scalars] == [r["step"] for r in lines if key in r]
        assert [e.value for e in scalars] == pytest.approx([r[key] for r in lines if key in r], rel=1e-6)
    for tag in ("samples/EMA generator", "samples/raw generator"):
        pictures = events.Images(tag)
        assert [p.step for p in pictures] == [0, 1, 2] and all(len(p.encoded_image_string) > 100 for p in pictures)


def test_bf16_autocast_trains_200_toy_steps_like_float32(tmp_path):
    """bf16 autocast on this CPU (the generator in bfloat16, the fused critic step in
    float32): the generator does run in bfloat16, no NaN, W1 falls below half its
    start, and the first generator step's gradient is float32's at the same parameters
    and latents to 5% in its worst parameter tensor (bf16 rounds to 2^-8 = 0.4%, a few
    roundings deep: 1.3% here). Later steps are not compared: at
    the same point their bf16 gradients differ from float32's by 0.4% to 13% (here),
    as bf16 roundings flip ReLU units, and two runs drift apart by amounts no test can
    bound on every CPU."""
    cfg = small(tmp_path / "bf16", steps=200, batch=64, width=64, n_critic=5, lr=5e-4, log_every=10,
                eval_samples=500, amp="bf16")
    trainer = Trainer(cfg)
    errors, dtypes = [], set()
    trainer.generator.register_forward_hook(lambda module, inputs, out: dtypes.add(out.dtype))

    def float32_pass(*args):
        amp, trainer.amp_dtype = trainer.amp_dtype, None
        try:
            trainer._generator_loss_backward(*args)
        finally:
            trainer.amp_dtype = amp

    lockstep(trainer, "_generator_pass", float32_pass, trainer.generator, errors)
    summary = trainer.run()
    lines = log_lines(cfg)
    assert torch.bfloat16 in dtypes
    assert all(math.isfinite(v) for r in lines for v in r.values() if isinstance(v, float))
    assert summary["last"]["w1"] < 0.5 * lines[0]["w1"]  # it trained
    assert len(errors) == 200 and errors[0] < 0.05


def test_fp16_scaler_state_resumes_bit_for_bit(tmp_path):
    whole = Trainer(small(tmp_path / "a", steps=4, n_critic=1, amp="fp16"))
    whole.run()
    first = Trainer(small(tmp_path / "b", steps=4, n_critic=1, amp="fp16"))
    signal_during_step(first, 2)
    first.run()
    resumed = Trainer.resume(first.cfg.out)
    assert resumed.scaler_d.state_dict() == first.scaler_d.state_dict()
    resumed.run()
    assert_same_run(whole, resumed)
