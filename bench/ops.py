"""Benchmark of the drop-in ops against what a user would write instead, side by side in
one process (candidates interleaved repetition by repetition):

* bias_act (NCHW leaky ReLU) forward, forward+backward, and double backward, vs the
  torch composition ``F.leaky_relu(x + b.view(1, -1, 1, 1))``;
* gradient_penalty on the DCGAN critic (fused convolutions) vs the popular eager recipe
  on the same critic written with ``nn.Conv2d`` + ``nn.LeakyReLU``;
* clip_ on the DCGAN critic's parameters vs a Python loop of ``clamp_`` and vs
  ``torch._foreach_clamp_min_/max_``;
* ClippedRMSprop vs ``torch.optim.RMSprop(foreach=True)`` followed by ``clamp_``.

    python bench/ops.py [--reps 30] [--suites bias_act gradient_penalty clip_ ClippedRMSprop]
                        [--out bench/results]

Suites run in the order given, in one process: earlier suites change the state of the
allocator the later ones see (large frees raise glibc's mmap threshold), so a suite run
alone can read differently from the same suite after ``bias_act``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

import fastgan
from fastgan.nn import DCGANCritic, FusedConv2d
from fastgan.ops import bias_act, clip_

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_name, write_results  # noqa: E402


def bias_act_cases():
    x = torch.randn(64, 128, 16, 16)
    b = torch.randn(128)

    def torch_act(x, b):
        return F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2)

    def fused_act(x, b):
        return bias_act(x, b, "lrelu", 0.2)

    def forward(fn):
        return lambda: fn(x, b)

    def backward(fn):
        def run():
            xr, br = x.detach().requires_grad_(True), b.detach().requires_grad_(True)
            fn(xr, br).sum().backward()
        return run

    def double(fn):
        def run():
            xr, br = x.detach().requires_grad_(True), b.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(fn(xr, br).square().sum(), xr, create_graph=True)
            g.square().sum().backward()
        return run

    for name, wrap in (("forward", forward), ("forward+backward", backward), ("double backward", double)):
        yield "bias_act", f"{name}, 64x128x16x16", {"torch": wrap(torch_act), "fastgan": wrap(fused_act)}


def plain_twin(critic):
    layers = []
    for m in critic.features:
        conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
        conv.load_state_dict(m.state_dict())
        layers += [conv, nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Flatten(), critic.out)


def penalty_cases():
    torch.manual_seed(0)
    critic = DCGANCritic(32, channels=3, width=32)
    assert all(isinstance(m, FusedConv2d) for m in critic.features)
    twin = plain_twin(critic)
    real, fake = torch.randn(32, 3, 32, 32), torch.randn(32, 3, 32, 32)

    def eager():
        twin.zero_grad(set_to_none=True)
        e = torch.rand(32, 1, 1, 1)
        x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
        out = twin(x_hat)
        (g,) = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)
        (10.0 * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()).backward()

    def fused():
        critic.zero_grad(set_to_none=True)
        fastgan.gradient_penalty(critic, real, fake, lam=10.0).backward()

    yield "gradient_penalty", "DCGAN critic 32x32, width 32, B=32", {"torch": eager, "fastgan": fused}


def clip_cases():
    params = [p.detach().clone() for p in DCGANCritic(64, 3, 64).parameters()]

    def loop():
        for p in params:
            p.clamp_(-0.01, 0.01)

    def foreach():
        torch._foreach_clamp_min_(params, -0.01)
        torch._foreach_clamp_max_(params, 0.01)

    n = sum(p.numel() for p in params)
    yield "clip_", f"DCGAN 64x64 critic, {len(params)} tensors, {n / 1e6:.1f}M values", {
        "torch": loop, "torch foreach": foreach, "fastgan": lambda: clip_(params, 0.01)}


def rmsprop_cases():
    def setup(make_opt):
        params = [torch.nn.Parameter(p.detach().clone()) for p in DCGANCritic(64, 3, 64).parameters()]
        for p in params:
            p.grad = torch.randn_like(p)
        return params, make_opt(params)

    t_params, t_opt = setup(lambda ps: torch.optim.RMSprop(ps, lr=5e-5, foreach=True))
    f_params, f_opt = setup(lambda ps: fastgan.ClippedRMSprop(ps, lr=5e-5, clip=0.01))

    def torch_step():
        t_opt.step()
        with torch.no_grad():
            for p in t_params:
                p.clamp_(-0.01, 0.01)

    yield "ClippedRMSprop", "DCGAN 64x64 critic parameters", {"torch": torch_step, "fastgan": f_opt.step}


SUITES = {"bias_act": bias_act_cases, "gradient_penalty": penalty_cases, "clip_": clip_cases,
          "ClippedRMSprop": rmsprop_cases}


def measure(candidates, reps, warmup):
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in candidates}
    for _ in range(reps):
        for k, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--suites", nargs="+", choices=list(SUITES), default=list(SUITES))
    args = parser.parse_args()
    if "cpu" not in fastgan.available_backends():
        sys.exit("fastgan's C++ extension is not built: run `make build` first")
    rows = []
    for make_cases in (SUITES[name] for name in args.suites):
        for suite, case, candidates in make_cases():
            times = measure(candidates, args.reps, args.warmup)
            base = statistics.median(times["torch"])
            for name, ts in times.items():
                ts = sorted(ts)
                median = statistics.median(ts)
                rows.append({
                    "suite": suite, "case": case, "candidate": name, "median_ms": median * 1e3,
                    "p20_ms": ts[int(0.2 * len(ts))] * 1e3, "p80_ms": ts[min(len(ts) - 1, int(0.8 * len(ts)))] * 1e3,
                    "torch_over_this": base / median, "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "fastgan": fastgan.__version__, "device": cpu_name(),
                    "date": datetime.date.today().isoformat()})
                r = rows[-1]
                print(f"{suite:>16} | {case:<44} | {name:<13} {r['median_ms']:9.3f} ms  "
                      f"torch/this {r['torch_over_this']:.2f}x", flush=True)
    first = rows[0]
    preamble = (f"{first['device']}, {first['threads']} threads, torch {first['torch']}, fastgan "
                f"{first['fastgan']}, {first['date']}, float32, CPU. Median (p20-p80) of "
                f"{args.reps} interleaved repetitions; the last column is the torch "
                "candidate's median over this one's.")
    columns = [("suite", lambda r: r["suite"]), ("case", lambda r: r["case"]),
               ("candidate", lambda r: r["candidate"]),
               ("median ms (p20-p80)", lambda r: f"{r['median_ms']:.3f} ({r['p20_ms']:.3f}-{r['p80_ms']:.3f})"),
               ("torch / this", lambda r: f"{r['torch_over_this']:.2f}x")]
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    stem = "ops" if args.suites == list(SUITES) else "ops_" + "_".join(args.suites)
    write_results(rows, args.out, stem, command, preamble, columns)


if __name__ == "__main__":
    main()
