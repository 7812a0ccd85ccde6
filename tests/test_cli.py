"""The fastgan command line, end to end: train, resume, sample, plot, config files,
help, and a SIGINT in the middle of a run."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

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
    with pytest.raises(SystemExit, match="unknown settings"):
        main(["train", "--config", str(config)])


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--objective", "lsgan", "--out", str(tmp_path / "r")]) == 2
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert main(["sample", "--checkpoint", str(tmp_path / "nowhere.pt"), "--out", "x.npy"]) == 2
    err = capsys.readouterr().err
    assert "unknown objective 'lsgan'" in err and err.count("no checkpoint at") == 2


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
