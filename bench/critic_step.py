"""Benchmark of one WGAN-GP critic step: eager PyTorch vs the reference vs fastgan.

All candidates run side by side in one process, interleaved repetition by repetition,
on the same inputs; each step includes zero_grad and the backward that fills .grad
(no optimizer step). Candidates:

* eager: nn.Sequential with the popular recipe, separate forwards for real, fake and
  interpolates, autograd.grad(create_graph=True), then backward();
* reference: fastgan's eager backend (the steps of fused-gp-math.md in plain torch);
* fused-cpu: FusedMLPCritic.wgan_gp_loss on the C++ CPU backend.

The GEMM floor is the math doc's multiply-add count (10 B sum_l d_{l-1} d_l for
ReLU-like activations, 11 B for smooth ones) over a GEMM rate measured in the same run
on the step's dominant GEMM shape, (3B x d) @ (d x d) with d the hidden width.

    python bench/critic_step.py [--reps 30] [--activation lrelu] [--out bench/results]
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import statistics
import sys
import time

import torch

import fastgan
from fastgan import reference

CONFIGS = [  # (name, widths d_0 .. d_{L-1}, batch)
    ("toy", (2, 512, 512, 512), 256),
    ("mnist-512", (784, 512, 512, 512), 64),
    ("mnist-1024", (784, 1024, 1024, 1024), 256),
]


def quantiles(times):
    times = sorted(times)
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
    return statistics.median(times), pick(0.2), pick(0.8)


def gemm_rate(rows, width, reps):
    a, b = torch.randn(rows, width), torch.randn(width, width)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2.0 * rows * width * width / statistics.median(times)


def floor_macs(widths, batch, smooth):
    dims = list(widths) + [1]
    per_row = sum(dims[i] * dims[i + 1] for i in range(len(dims) - 1))
    return (11 if smooth else 10) * batch * per_row


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

    def fused(backend):
        def step():
            with fastgan.use_backend(backend):
                critic.zero_grad(set_to_none=True)
                critic.wgan_gp_loss(real, fake, lam=lam).loss.backward()
        return step

    return {"eager": eager, "reference": fused("eager"), "fused-cpu": fused("cpu")}


def run(args):
    rows = []
    for name, widths, batch in CONFIGS:
        steps = candidates(widths, batch, args.activation, args.lam)
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        times = {k: [] for k in steps}
        for _ in range(args.reps):
            for k, step in steps.items():
                start = time.perf_counter()
                step()
                times[k].append(time.perf_counter() - start)
        rate = gemm_rate(3 * batch, widths[1], args.reps)
        smooth = reference.ACTIVATIONS[args.activation].smooth
        floor_s = 2.0 * floor_macs(widths, batch, smooth) / rate
        eager_median = quantiles(times["eager"])[0]
        for k, ts in times.items():
            median, p20, p80 = quantiles(ts)
            rows.append({
                "suite": "critic-step", "config": name,
                "critic": "-".join(map(str, widths)) + "-1", "batch": batch,
                "activation": args.activation, "candidate": k,
                "median_ms": median * 1e3, "p20_ms": p20 * 1e3, "p80_ms": p80 * 1e3,
                "eager_over_this": eager_median / median, "floor_ms": floor_s * 1e3,
                "fraction_of_floor": floor_s / median, "gemm_gflops": rate / 1e9,
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "fastgan": fastgan.__version__, "device": cpu_name(),
                "date": datetime.date.today().isoformat(),
            })
            r = rows[-1]
            print(f"{name:>11} {k:>10}: {r['median_ms']:8.2f} ms (p20 {r['p20_ms']:.2f}, p80 "
                  f"{r['p80_ms']:.2f})  eager/this {r['eager_over_this']:.2f}x  "
                  f"floor {r['floor_ms']:.2f} ms = {100 * r['fraction_of_floor']:.0f}%  "
                  f"(GEMM {r['gemm_gflops']:.0f} GFLOP/s)", flush=True)
    return rows


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write(rows, out_dir, command):
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, "critic_step.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    md_path = os.path.join(out_dir, "critic_step.md")
    with open(md_path, "w") as f:
        f.write(f"Command: `{command}`\n\n")
        f.write(f"{rows[0]['device']}, {rows[0]['threads']} threads, torch {rows[0]['torch']}, "
                f"fastgan {rows[0]['fastgan']}, {rows[0]['date']}. Activation "
                f"{rows[0]['activation']}. Times are the median (p20-p80) of one critic step, "
                "backward included.\n\n")
        f.write("| config | critic | B | candidate | median ms (p20-p80) | eager / this | "
                "GEMM floor ms | fraction of floor |\n|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['config']} | {r['critic']} | {r['batch']} | {r['candidate']} | "
                    f"{r['median_ms']:.2f} ({r['p20_ms']:.2f}-{r['p80_ms']:.2f}) | "
                    f"{r['eager_over_this']:.2f}x | {r['floor_ms']:.2f} | "
                    f"{100 * r['fraction_of_floor']:.0f}% |\n")
    print(f"wrote {csv_path} and {md_path}")


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
