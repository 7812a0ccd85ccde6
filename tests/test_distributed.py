"""Data-parallel training on gloo, 2 processes on this machine: parity with one
process, the bucketed gradient average, a killed rank, and resuming a 2-rank run."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from fastgan import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _run(command, **kw):
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, **kw)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _params(path):
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("objective,data,options", [("wgan-gp", "8gaussians", ""), ("wgan-gp", "digits", ""),
                                                    ("wgan", "8gaussians", ""), ("wgan-gp", "digits", "conditional")],
                         ids=["fused-critic-step", "gradient-penalty-conv-critic", "clipping-wgan",
                              "conditional-augmented"])
def test_two_ranks_of_half_the_batch_equal_one_rank(tmp_path, objective, data, options):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _run([sys.executable, WORKER, objective, data, str(one), options])
    _run(TORCHRUN + [WORKER, objective, data, str(two), options])
    reference, rank0, rank1 = (_params(one / "params_rank0.pt"), _params(two / "params_rank0.pt"),
                               _params(two / "params_rank1.pt"))
    assert set(reference) == set(rank0) == set(rank1)
    for name, ref in reference.items():
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between the ranks"
        if not ref.is_floating_point():
            assert torch.equal(ref, rank0[name]), name
            continue
        assert ref.dtype == torch.float64
        scale = ref.abs().max().clamp_min(1e-12)
        assert float((rank0[name] - ref).abs().max() / scale) <= 1e-10, name
    initial = _params_at_init(objective, data, options)
    moved = sum(not torch.equal(initial[k], reference[k]) for k in initial if reference[k].is_floating_point())
    assert moved > len(initial) // 2  # the 10 steps did train
    if objective == "wgan":  # clipping identical on every rank, and in force
        clip = max(float(v.abs().max()) for k, v in rank0.items() if k.startswith("critic."))
        assert clip <= 0.01 + 1e-12


DDP_WORKER = os.path.join(ROOT, "tests", "ddp_worker.py")


@pytest.mark.parametrize("kind", ["fused", "conv", "layernorm", "chain"])
def test_ddp_around_the_critic_step_equals_one_process(tmp_path, kind):
    """DistributedDataParallel around the whole critic step, the fused one (MLP or conv
    chain) or a conv critic's jvp penalty: 2 ranks of half the batch give the gradients
    of one process on the whole batch (the drop-in's penalty there by the eager double
    backward), float64, 1e-10."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _run([sys.executable, DDP_WORKER, kind, str(one)])
    _run(TORCHRUN + [DDP_WORKER, kind, str(two)])
    reference = _params(one / "grads_rank0.pt")
    for rank in (0, 1):
        grads = _params(two / f"grads_rank{rank}.pt")
        for ref, got in zip(reference, grads):
            scale = ref.norm().clamp_min(1e-300)
            assert float((got - ref).norm() / scale) <= 1e-10


@pytest.mark.parametrize("data, options", [("8gaussians", "ddp"), ("digits", "ddp"), ("digits", "ddp+conditional")])
def test_the_trainer_with_ddp_equals_one_rank(tmp_path, data, options):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _run([sys.executable, WORKER, "wgan-gp", data, str(one), options])
    _run(TORCHRUN + [WORKER, "wgan-gp", data, str(two), options])
    reference, rank0, rank1 = (_params(one / "params_rank0.pt"), _params(two / "params_rank0.pt"),
                               _params(two / "params_rank1.pt"))
    for name, ref in reference.items():
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between the ranks"
        if ref.is_floating_point():
            assert float((rank0[name] - ref).abs().max() / ref.abs().max().clamp_min(1e-12)) <= 1e-10, name


def _params_at_init(objective, data, options=""):
    from fastgan.trainer import TrainConfig, Trainer

    images = data == "digits"
    t = Trainer(TrainConfig(objective=objective, data=data, batch=8, dtype="float64", seed=3,
                            width=8 if images else 16, latent_dim=8, progress=False,
                            conditional="conditional" in options))
    params = {f"generator.{k}": v for k, v in t.generator.state_dict().items()}
    params.update({f"critic.{k}": v for k, v in t.critic.state_dict().items()})
    return params


def test_one_rank_group_runs_no_collective():
    group = distributed.Group()
    layer = torch.nn.Linear(3, 2)
    layer(torch.randn(4, 3)).sum().backward()
    before = [p.grad.clone() for p in layer.parameters()]
    group.average_gradients(layer)
    assert all(torch.equal(a, p.grad) for a, p in zip(before, layer.parameters()))
    assert group.mean({"a": 1.5}) == {"a": 1.5} and group.gather(7) == [7] and group.any_signal(None) is None


def test_stream_seeds_differ_by_rank_and_step():
    seeds = {distributed.stream_seed(0, r, s) for r in range(4) for s in (0, 10)}
    assert len(seeds) == 8 and distributed.stream_seed(5, 1) == distributed.stream_seed(5, 1)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_killed_rank_makes_the_other_exit_within_the_timeout(tmp_path):
    port, timeout = _free_port(), 30
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "fastgan.cli", "train", "--steps", "1000000", "--width", "16", "--batch", "16",
             "--dist-timeout", str(timeout), "--log-every", "1", "--eval-every", "0", "--no-progress",
             "--out", str(tmp_path / "run")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    log = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) > 5):
        assert procs[0].poll() is None, procs[0].communicate()
        time.sleep(0.2)
    assert log.exists(), "the run never started"
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    _, err = procs[0].communicate(timeout=timeout + 30)
    assert time.time() - killed <= timeout + 10
    assert procs[0].returncode == 1, err[-2000:]
    assert "rank 0: lost contact with the other ranks" in err
    procs[1].wait()


def test_resuming_a_two_rank_run_equals_an_uninterrupted_one(tmp_path):
    common = ["--width", "16", "--batch", "16", "--eval-every", "0", "--no-progress", "--seed", "4"]
    train = [sys.executable, "-m", "fastgan.cli", "train", "--nproc-per-node", "2"]
    _run(train + common + ["--steps", "6", "--out", str(tmp_path / "whole")])
    _run(train + common + ["--steps", "3", "--out", str(tmp_path / "split")])
    _run(train + ["--resume", str(tmp_path / "split"), "--steps", "6", "--no-progress"])
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)
    split = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)
    assert whole["step"] == split["step"] == 6 and len(split["rng"]) == 2
    for key in ("generator", "critic"):
        for name, value in whole[key].items():
            assert torch.equal(value, split[key][name]), f"{key}.{name}"
    assert all(torch.equal(a["torch"], b["torch"]) for a, b in zip(whole["rng"], split["rng"]))
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in lines] == [0, 3, 6]
    # one process can take over a 2-rank checkpoint (fresh random streams)
    out = _run([sys.executable, "-m", "fastgan.cli", "train", "--resume", str(tmp_path / "split"),
                "--steps", "7", "--no-progress"])
    assert "written by 2 rank(s), this run has 1" in out.stdout
