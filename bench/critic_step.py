"""Benchmark of one WGAN-GP critic step: eager PyTorch vs the reference vs fastgan.

All candidates run side by side in one process, interleaved repetition by repetition,
on the same inputs; each step includes zero_grad and the backward that fills .grad
(no optimizer step). Candidates:

* eager: nn.Sequential with the popular recipe, separate forwards for real, fake and
  interpolates, autograd.grad(create_graph=True), then backward();
* reference: fastgan's eager backend (the steps of fused-gp-math.md in plain torch);
* fused-cpu: FusedMLPCritic.wgan_gp_loss on the C++ CPU backend.

The GEMM floor is the math doc's multiply-add count (10 B sum_l d_{l-1} d_l for
ReLU-like activations, 11 B for smooth ones) over the GEMM rate measured in the same
run, interleaved with the candidates: the rate at which this machine runs exactly the
GEMMs that count, back to back (per layer: forward and backward signal over 3B rows,
adjoint over B rows, weight gradient over 3B rows, plus B rows of extra backward signal
for smooth activations). The floor is therefore the time those GEMMs alone take here.
The peak rate of the step's hottest single shape, (3B x d) @ (d x d), is reported too.

    python bench/critic_step.py [--reps 30] [--activation lrelu] [--out bench/results]
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import torch

import fastgan
from fastgan import reference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_name, floor_macs, write_results  # noqa: E402

from fastgan.benchmarks.harness import quantiles  # noqa: E402
from fastgan.benchmarks.suites import floor_gemms, fused_critic_step  # noqa: E402

CONFIGS = [  # (name, widths d_0 .. d_{L-1}, batch)
    ("toy", (2, 512, 512, 512), 256),
    ("mnist-512", (784, 512, 512, 512), 64),
    ("mnist-1024", (784, 1024, 1024, 1024), 256),
]


def peak_gemm_rate(rows, width, reps):
    """FLOP/s of (rows x width) @ (width x width), the same operands over and over."""
    a, b = torch.randn(rows, width), torch.randn(width, width)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2.0 * rows * width * width / statistics.median(times)


def candidates(widths, batch, activation, lam):
    torch.manual_seed(0)
    critic = fastgan.FusedMLPCritic(widths[0], widths[1:], activation)
    seq = critic.to_sequential()
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(batch, widths[0], generator=gen)
    fake = torch.randn(batch, widths[0], generator=gen)

    def eager():
        seq.zero_grad(set_to_none=True)
        eps = torch.rand(batch)
        reference.eager_wgan_gp_loss(seq, real, fake, eps, lam).loss.backward()

    return {"eager": eager, "reference": fused_critic_step(critic, real, fake, lam, "eager"),
            "fused-cpu": fused_critic_step(critic, real, fake, lam, "cpu")}


def run(args):
    rows = []
    smooth = reference.ACTIVATIONS[args.activation].smooth
    for name, widths, batch in CONFIGS:
        gemms, macs = floor_gemms(widths, batch, smooth), floor_macs(widths, batch, smooth)
        timed = dict(candidates(widths, batch, args.activation, args.lam), **{"gemm-floor": gemms})
        for fn in timed.values():
            for _ in range(args.warmup):
                fn()
        times = {k: [] for k in timed}
        for _ in range(args.reps):
            for k, fn in timed.items():
                start = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - start)
        floor_s = quantiles(times.pop("gemm-floor"))[0]
        peak = peak_gemm_rate(3 * batch, widths[1], args.reps)
        eager_median = quantiles(times["eager"])[0]
        for k, ts in times.items():
            median, p20, p80 = quantiles(ts)
            rows.append({
                "suite": "critic-step", "config": name,
                "critic": "-".join(map(str, widths)) + "-1", "batch": batch,
                "activation": args.activation, "candidate": k,
                "median_ms": median * 1e3, "p20_ms": p20 * 1e3, "p80_ms": p80 * 1e3,
                "eager_over_this": eager_median / median, "floor_ms": floor_s * 1e3,
                "fraction_of_floor": floor_s / median,
                "floor_gflops": 2.0 * macs / floor_s / 1e9, "peak_gemm_gflops": peak / 1e9,
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "fastgan": fastgan.__version__, "device": cpu_name(),
                "date": datetime.date.today().isoformat(),
            })
            r = rows[-1]
            print(f"{name:>11} {k:>10}: {r['median_ms']:8.2f} ms (p20 {r['p20_ms']:.2f}, p80 "
                  f"{r['p80_ms']:.2f})  eager/this {r['eager_over_this']:.2f}x  "
                  f"floor {r['floor_ms']:.2f} ms = {100 * r['fraction_of_floor']:.0f}%  "
                  f"(GEMMs at {r['floor_gflops']:.0f} GFLOP/s, peak {r['peak_gemm_gflops']:.0f})",
                  flush=True)
    return rows


def write(rows, out_dir, command):
    first = rows[0]
    preamble = (f"{first['device']}, {first['threads']} threads, torch {first['torch']}, fastgan "
                f"{first['fastgan']}, {first['date']}. Activation {first['activation']}. Times are "
                "the median (p20-p80) of one critic step, backward included. The GEMM floor is "
                "the time this machine takes, in the same run, for the GEMMs that "
                "fused-gp-math.md counts; their rate and the peak rate of the hottest single "
                "shape are the last two columns.")
    columns = [
        ("config", lambda r: r["config"]), ("critic", lambda r: r["critic"]),
        ("B", lambda r: str(r["batch"])), ("candidate", lambda r: r["candidate"]),
        ("median ms (p20-p80)", lambda r: f"{r['median_ms']:.2f} ({r['p20_ms']:.2f}-{r['p80_ms']:.2f})"),
        ("eager / this", lambda r: f"{r['eager_over_this']:.2f}x"),
        ("GEMM floor ms", lambda r: f"{r['floor_ms']:.2f}"),
        ("fraction of floor", lambda r: f"{100 * r['fraction_of_floor']:.0f}%"),
        ("floor GFLOP/s", lambda r: f"{r['floor_gflops']:.0f}"),
        ("peak GFLOP/s", lambda r: f"{r['peak_gemm_gflops']:.0f}"),
    ]
    write_results(rows, out_dir, "critic_step", command, preamble, columns)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--activation", default="lrelu", choices=list(reference.ACTIVATIONS))
    parser.add_argument("--lam", type=float, default=10.0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    if "cpu" not in fastgan.available_backends():
        sys.exit("fastgan's C++ extension is not built: run `make build` first")
    rows = run(args)
    write(rows, args.out, "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]))


if __name__ == "__main__":
    main()
