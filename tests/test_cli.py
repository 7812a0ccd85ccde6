"""The fastgan command line, end to end: train, resume, sample, plot, config files,
help, and a SIGINT in the middle of a run."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from fastgan import checkpoint
from fastgan.cli import main
from fastgan.objectives import OBJECTIVES

SMALL = ["--batch", "32", "--width", "32", "--eval-samples", "100", "--eval-every", "0", "--no-progress"]


def test_train_resume_sample_and_plot(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--steps", "2", "--n-critic", "1", "--out", run, *SMALL]) == 0
    out = capsys.readouterr().out
    assert "start (step 0): W1" in out and "end (step 2): W1" in out and "modes" in out
    for name in ("metrics.jsonl", "checkpoint.pt", "samples.png", "curves.png"):
        assert os.path.getsize(os.path.join(run, name)) > 0
    assert main(["train", "--resume", run, "--steps", "3"]) == 0
    assert checkpoint.load(os.path.join(run, "checkpoint.pt"))["step"] == 3
    assert main(["sample", "--checkpoint", os.path.join(run, "checkpoint.pt"), "-n", "50",
                 "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    assert main(["sample", "--checkpoint", os.path.join(run, "checkpoint.pt"), "-n", "50",
                 "--out", str(tmp_path / "s.png")]) == 0
    assert os.path.getsize(tmp_path / "s.png") > 0
    os.remove(os.path.join(run, "samples.png"))
    assert main(["plot", run]) == 0
    assert os.path.exists(os.path.join(run, "samples.png"))


def test_config_file_and_flags(tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text(f'objective = "nsgan"\nsteps = 2\nout = "{run}"\nlog-every = 1\n')
    assert main(["train", "--config", str(config), "--steps", "1", *SMALL]) == 0  # the flag wins
    lines = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [r["step"] for r in lines] == [0, 1]
    saved = checkpoint.load(str(run / "checkpoint.pt"))["config"]
    assert saved["objective"] == "nsgan" and saved["steps"] == 1
    config.write_text('objective = "nsgan"\nlearning_rate = 1.0\n')
    assert main(["train", "--config", str(config)]) == 2  # the message: tests/test_input_errors.py


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--objective", "lsgan", "--out", str(tmp_path / "r")]) == 2
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert main(["sample", "--checkpoint", str(tmp_path / "nowhere.pt"), "--out", "x.npy"]) == 2
    err = capsys.readouterr().err
    assert "--objective must be one of" in err and err.count("no checkpoint at") == 2


def test_help_explains_every_objective(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert all(f"  {name} " in text for name in OBJECTIVES) and "Gulrajani" in text


def test_sigint_mid_run_leaves_a_loadable_checkpoint(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "fastgan", "train", "--steps", "100000", "--log-every", "1",
           "--checkpoint-every", "100000", "--out", str(run), *SMALL]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err and "interrupted at step" in out
    state = checkpoint.load(str(run / "checkpoint.pt"))
    assert state["step"] >= 3
    assert main(["train", "--resume", str(run), "--steps", str(state["step"] + 1), "--no-progress"]) == 0


def test_train_without_arguments_is_the_demo(tmp_path, monkeypatch, capsys):
    import fastgan.cli as cli
    monkeypatch.setattr(cli, "DEMO", {**cli.DEMO, "steps": 1, "batch": 16, "width": 16, "eval_samples": 50,
                                      "out": str(tmp_path / "demo"), "progress": False})
    assert main(["train"]) == 0
    assert "the demo (objective wgan-gp, data 8gaussians" in capsys.readouterr().out
    saved = checkpoint.load(str(tmp_path / "demo" / "checkpoint.pt"))["config"]
    assert saved["lr"] == 5e-4 and saved["lr_decay"] == "linear"


def test_every_option_has_help_that_reads_well():
    from fastgan.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"fastgan {name} {action.option_strings or action.dest} has no help"
    text = commands.choices["train"].format_help()
    assert "--no-progress" in text and "turn off the progress bar" in text and "no a " not in text


def test_bench_help_keeps_its_whole_description(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "profiles one suite's first config per peer" in " ".join(capsys.readouterr().out.split())


def test_sample_creates_its_folder_and_draws_images_as_one_grid(tmp_path, monkeypatch):
    from fastgan import plots

    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    run = str(tmp_path / "run")
    assert main(["train", "--data", "digits", "--steps", "1", "--n-critic", "1", "--width", "8",
                 "--latent-dim", "8", "--out", run, *SMALL]) == 0
    assert main(["sample", "--checkpoint", os.path.join(run, "checkpoint.pt"), "-n", "7",
                 "--out", str(tmp_path / "new" / "dir" / "s.npy")]) == 0
    assert np.load(tmp_path / "new" / "dir" / "s.npy").shape == (7, 1, 8, 8)
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    assert main(["sample", "--checkpoint", os.path.join(run, "checkpoint.pt"), "-n", "1000",
                 "--out", str(tmp_path / "grid.png")]) == 0
    (fig,) = figures
    assert len(fig.axes) == 1  # one picture, not 1000 subplots
    assert fig.axes[0].images[0].get_array().shape == (32 * 9 - 1, 32 * 9 - 1)  # 32 x 32 tiles of 8 px + gaps


def test_tile_places_every_image():
    from fastgan.plots import tile

    images = torch.arange(5.0).reshape(5, 1, 1, 1) / 2 - 1  # values -1, -0.5, 0, 0.5, 1
    canvas = tile(images, columns=2)
    assert canvas.shape == (5, 3, 1)
    assert canvas[::2, ::2, 0].flatten().tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]  # 1.0: the empty slot


def test_curves_name_the_gap_for_gan_runs(tmp_path, monkeypatch):
    from fastgan import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    records = [{"step": 1, "critic_loss": 1.0, "generator_loss": 0.5, "wasserstein": 0.1, "w1": 0.3}]
    plots.curves("x.png", records, "nsgan")
    plots.curves("x.png", records, "wgan-gp")
    gan, wgan = (fig.axes[1] for fig in figures)
    assert "Wasserstein" not in gan.get_title() and "gap" in gan.get_legend().get_texts()[0].get_text()
    assert wgan.get_title() == "Wasserstein distance"


def test_curves_draw_the_image_metrics_the_run_has(monkeypatch):
    from fastgan import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    base = {"critic_loss": 1.0, "generator_loss": 0.5, "wasserstein": 0.1, "w1": 0.3, "fid": 9.0, "kid": 0.1,
            "precision": 0.5, "recall": 0.4, "features": "digits-classifier"}
    plots.curves("x.png", [{"step": s, **base} for s in (1, 2)], "wgan-gp")
    plots.curves("x.png", [{"step": s, **base, "is": 4.0 + s, "is_std": 0.2} for s in (1, 2)], "wgan-gp")
    without, with_is = figures
    assert len(without.axes) == 4 and len(with_is.axes) == 5
    assert with_is.axes[4].get_title() == "Inception Score on digits-classifier logits"
    assert list(with_is.axes[4].lines[0].get_ydata()) == [5.0, 6.0]


def test_no_progress_bar_is_drawn_into_a_pipe(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastgan", "train", "--steps", "2", "--out", str(tmp_path / "r"),
                             *SMALL[:-1]], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "%|" not in result.stderr and "step/s" not in result.stderr


def test_a_new_run_never_replaces_a_finished_one_unless_told(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--steps", "1", "--n-critic", "1", "--out", run, *SMALL]) == 0
    (tmp_path / "run" / "notes.txt").write_text("mine")
    saved = {name: (tmp_path / "run" / name).read_bytes() for name in ("checkpoint.pt", "metrics.jsonl")}
    capsys.readouterr()
    assert main(["train", "--steps", "1", "--n-critic", "1", "--seed", "1", "--out", run, *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"fastgan train: --out {run} already holds a run (checkpoint.pt, metrics.jsonl)")
    assert "--resume" in err and "--overwrite" in err
    assert all((tmp_path / "run" / name).read_bytes() == data for name, data in saved.items())
    assert main(["train", "--resume", run, "--overwrite", "--steps", "2"]) == 2
    assert "--overwrite cannot be combined with resuming" in capsys.readouterr().err
    # --overwrite replaces the run, says so, and leaves the folder's other files alone
    assert main(["train", "--steps", "2", "--n-critic", "1", "--seed", "1", "--out", run, "--overwrite", *SMALL]) == 0
    assert f"fastgan: --overwrite: replaced the run in {run} (removed checkpoint.pt, metrics.jsonl, samples.png, " \
           "curves.png)" in capsys.readouterr().out
    state = checkpoint.load(os.path.join(run, "checkpoint.pt"))
    assert state["step"] == 2 and state["config"]["seed"] == 1
    assert [json.loads(line)["step"] for line in open(os.path.join(run, "metrics.jsonl"))] == [0, 2]  # (log-every 10)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_the_python_trainer_refuses_a_folder_that_holds_a_run(tmp_path, capsys):
    from fastgan.trainer import ConfigError, TrainConfig, Trainer

    cfg = TrainConfig(steps=1, n_critic=1, batch=16, width=16, eval_every=0, eval_samples=20, progress=False,
                      out=str(tmp_path / "run"))
    Trainer(cfg).run()
    with pytest.raises(ConfigError, match=r"already holds a run \(checkpoint.pt, metrics.jsonl\).*Trainer.resume.*"
                                          r"overwrite=True") as refused:
        Trainer(cfg)
    assert refused.value.setting == "out"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metrics.jsonl").write_text("")  # a run stopped before its first checkpoint
    with pytest.raises(ConfigError, match=r"already holds a run \(metrics.jsonl\)"):
        Trainer(TrainConfig(out=str(tmp_path / "other")))
    Trainer(TrainConfig(**{**cfg.__dict__, "overwrite": True})).run()
    assert "replaced the run" in capsys.readouterr().out
    assert Trainer.resume(str(tmp_path / "run")).step == 1  # resuming is no new run


def test_fastgan_warnings_are_one_line(tmp_path, capsys):
    images = np.random.default_rng(0).uniform(0, 255, (40, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "raw.npy", images)
    assert main(["train", "--data", str(tmp_path / "raw.npy"), "--steps", "1", "--n-critic", "1", "--batch", "8",
                 "--width", "8", "--eval-every", "0", "--eval-samples", "20", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(said) == 1 and said[0].startswith("fastgan: warning: ") and "raw.npy: image values span [0" in said[0]


def test_a_multi_process_run_into_a_held_folder_is_refused_once_before_its_ranks_start(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text("")
    assert main(["train", "--nproc-per-node", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"fastgan train: --out {tmp_path} already holds a run (metrics.jsonl): continue it "
                   "(--resume RUN_DIR, Trainer.resume) or replace it (--overwrite, overwrite=True)")

