"""The bench harness at tiny sizes: CSV schema, ratio arithmetic, the torch.compile
failure row, compare mode, and `fastgan bench` end to end."""
import csv

import pytest
import torch
from torch import nn

from fastgan.benchmarks import harness, suites
from fastgan.benchmarks.critics import GroupedCritic, ResNetCritic
from fastgan.benchmarks.harness import Measured, Peer
from fastgan.cli import main

CPU = torch.device("cpu")


def test_ratio_and_floor_arithmetic():
    measured = [Measured(Peer("eager", None), times=[0.010, 0.030, 0.020]),
                Measured(Peer("fastgan", None, "cpu"), times=[0.005, 0.004, 0.006]),
                Measured(Peer("torch.compile", None), error="RuntimeError: no")]
    rows = harness.rows("s", "c", measured, CPU, floor_s=0.002)
    eager, fused, failed = rows
    assert eager["median_ms"] == pytest.approx(20.0) and eager["ratio_to_eager"] == pytest.approx(1.0)
    assert fused["ratio_to_eager"] == pytest.approx(4.0) and fused["fraction_of_floor"] == pytest.approx(0.4)
    assert (fused["p20_ms"], fused["p80_ms"]) == (pytest.approx(4.0), pytest.approx(6.0))
    assert failed["status"] == "error" and failed["median_ms"] == "" and failed["error"] == "RuntimeError: no"


def test_csv_schema_markdown_and_compare(tmp_path):
    rows = harness.rows("s", "c", [Measured(Peer("eager", None), times=[0.01]),
                                   Measured(Peer("fastgan", None, "cpu"), times=[0.005])], CPU)
    csv_path, md_path = harness.write(rows, str(tmp_path), "run", "fastgan bench --quick")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == harness.SCHEMA
        assert [r["peer"] for r in reader] == ["eager", "fastgan"]
    text = open(md_path).read()
    assert "fastgan bench --quick" in text and "| s | c | fastgan (cpu) | 5.00 (5.00-5.00) | 2.00x |" in text
    newer = harness.rows("s", "c", [Measured(Peer("eager", None), times=[0.01]),
                                    Measured(Peer("fastgan", None, "cpu"), times=[0.0025]),
                                    Measured(Peer("torch.func", None), times=[0.02])], CPU)
    lines = harness.compare(newer, csv_path)
    assert "s / c / fastgan / cpu: 5.000 ms -> 2.500 ms (2.00x)" in lines
    assert "s / c / torch.func: new" in lines and "s / c / eager: 10.000 ms -> 10.000 ms (1.00x)" in lines


def test_torch_compile_refusing_the_double_backward_is_an_error_row():
    critic = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    from fastgan.benchmarks import peers

    step = torch.compile(lambda: peers.popular_loss(critic, real, fake, 10.0).backward())
    (m,) = harness.measure([Peer("torch.compile", step, compiled=True)], reps=2, warmup=1, device=CPU)
    assert m.times == [] and "double backward" in m.error
    (row,) = harness.rows("critic-step", "tiny", [m], CPU)
    assert row["status"] == "error" and "double backward" in row["error"]


def test_a_cuda_graph_that_cannot_be_captured_is_an_error_row():
    calls = []
    peer = Peer("fastgan", lambda: calls.append(1), "cpu")
    assert suites.with_cuda_graphs([peer], CPU) == [peer]  # no graphs off the GPU
    graphed = harness.cuda_graph(peer)
    assert graphed.name == "fastgan (cuda graph)" and graphed.backend == "cpu"
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: this capture would succeed")
    (m,) = harness.measure([graphed], reps=2, warmup=1, device=CPU)
    assert m.times == [] and m.error and calls == []


def test_peak_memory_counts_live_tensors():
    def two_buffers():
        a = torch.ones(1024, 1024)
        b = a * 2
        return float(b[0, 0])

    assert harness.peak_memory_mb(two_buffers, CPU) == pytest.approx(8.0, rel=0.01)
    assert "profiler" in harness.memory_method(CPU)


def test_fastgan_bench_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(suites, "QUICK_CRITIC_CONFIGS", [("tiny", (3, 16, 16), 8)])
    monkeypatch.setattr(suites, "QUICK_CONV_CONFIGS", [("tiny conv", 8, 1, 4, 4)])
    monkeypatch.setattr(suites, "QUICK_GRAPH_CONFIGS", [
        ("tiny resnet", lambda: ResNetCritic(3), (3, 8, 8), 4, "wgan-gp"),
        ("tiny grouped", lambda: GroupedCritic(6, blocks=1, groups=3), (3, 8, 8), 4, "r1+r2")])
    out = str(tmp_path / "results")
    assert main(["bench", "--quick", "--suite", "critic-step", "--reps", "2", "--warmup", "1", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "no GPU is present" in text and "torch.compile" in text and "double backward" in text
    with open(f"{out}/bench_quick_critic-step.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    torch_peers = {("eager", ""), ("eager-careful", ""), ("torch.func", ""), ("torch.compile", "")}
    by_config = {}
    for r in rows:
        by_config.setdefault(r["config"], {})[r["peer"], r["backend"]] = r
    assert sorted(by_config) == ["tiny 3-16-16-1 B=8", "tiny conv width 4 B=4 wgan-gp",
                                 "tiny conv width 4 B=4 wgan-gp, LayerNorm", "tiny grouped B=4 R1+R2",
                                 "tiny resnet B=4 wgan-gp"]
    peers = by_config["tiny 3-16-16-1 B=8"]
    assert set(peers) == torch_peers | {("fastgan", "cpu"), ("fastgan", "eager"), ("fastgan compiled", "cpu")}
    assert float(peers["fastgan", "cpu"]["fraction_of_floor"]) > 0
    assert peers["fastgan compiled", "cpu"]["status"] == "ok"  # fullgraph: no double backward to refuse
    for config in ("tiny conv width 4 B=4 wgan-gp", "tiny conv width 4 B=4 wgan-gp, LayerNorm"):
        conv = by_config[config]
        assert set(conv) == torch_peers | {("fastgan drop-in gradient_penalty", "cpu"), ("fastgan", "cpu")}
        assert conv["fastgan", "cpu"]["status"] == "ok" and float(conv["fastgan", "cpu"]["fraction_of_floor"]) > 0
        assert conv["torch.compile", ""]["status"] == "error"
    resnet, grouped = by_config["tiny resnet B=4 wgan-gp"], by_config["tiny grouped B=4 R1+R2"]
    assert set(resnet) == {("eager", ""), ("torch.func", ""), ("fastgan drop-in gradient_penalty", "cpu"),
                           ("torch.compile of the jvp form", "cpu"), ("fastgan", "cpu")}
    assert set(grouped) == {("eager", ""), ("fastgan drop-in r1_penalty", "cpu"), ("fastgan", "cpu")}
    for r in (*resnet.values(), *grouped.values()):
        assert r["status"] == "ok" and float(r["fraction_of_floor"]) > 0
    assert {r["timing"] for r in rows} == {"wall clock"}
    assert main(["bench", "--quick", "--suite", "critic-step", "--reps", "2", "--warmup", "1", "--out", out,
                 "--compare", f"{out}/bench_quick_critic-step.csv"]) == 0
    assert "tiny 3-16-16-1 B=8 / fastgan / cpu:" in capsys.readouterr().out


def test_conv_floor_runs_the_schedules_convolutions(monkeypatch):
    """The conv floor: per conv layer 2 forwards (stacked and penalised rows), 2 weight
    gradients (2B, P), 1 input gradient (P rows for the layer reading the batch); a
    second-order graph adds a weight gradient per layer and an input gradient per layer
    but the first. R1 + R2 and residual graphs count the same per conv module."""
    from torch.ops import aten

    calls = []
    for name in ("convolution_backward", "convolution"):
        real = getattr(aten, name)
        monkeypatch.setattr(aten, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))

    def critic(act):
        return nn.Sequential(nn.Conv2d(1, 3, 3, 2, 1), act(), nn.Conv2d(3, 5, 3, 2, 1), act(), nn.Flatten(),
                             nn.Linear(20, 1))

    for act, backward_calls in ((lambda: nn.LeakyReLU(0.2), 2 * 3), (nn.Tanh, 2 * 4 + 1)):
        for loss in ("wgan-gp", "r1", "r1+r2"):
            run = suites.floor_convolutions(critic(act), (1, 8, 8), 2, loss)
            calls.clear()
            run()
            assert calls.count("convolution_backward") == backward_calls
            assert calls.count("convolution") == 2 * 2
    run = suites.floor_convolutions(ResNetCritic(3), (3, 8, 8), 2)
    calls.clear()
    run()
    assert calls.count("convolution") == 2 * 10 and calls.count("convolution_backward") == 3 * 10


def test_profile_writes_a_trace_per_peer(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(suites, "QUICK_CRITIC_CONFIGS", [("tiny", (3, 16, 16), 8)])
    assert main(["bench", "--profile", "critic-step", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "== eager (tiny" in text and "== fastgan (tiny" in text and "fastgan::graph_step" in text
    assert "== torch.compile: fails:" in text
    assert (tmp_path / "profile_critic-step_eager.json").exists()


def test_only_filters_configs(tmp_path, capsys):
    assert main(["bench", "--suite", "ops", "--only", "no such config", "--out", str(tmp_path)]) == 2
    assert "no config matches" in capsys.readouterr().err


def test_scaling_suite_writes_its_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(suites, "QUICK_SCALING_BATCHES", (8, 16))
    monkeypatch.setattr(suites, "QUICK_SCALING_WIDTHS", (8, 16))
    assert main(["bench", "--quick", "--suite", "scaling", "--reps", "2", "--warmup", "1", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "bench_quick_scaling.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(0 < float(r["fraction_of_floor"]) for r in rows)
    assert (tmp_path / "bench_quick_scaling_scaling.png").stat().st_size > 0
