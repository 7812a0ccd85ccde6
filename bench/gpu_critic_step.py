"""GPU benchmark of one WGAN-GP critic step: eager PyTorch vs fastgan's triton and cuda
backends, on the configs of bench/critic_step.py plus B = 4096.

Each candidate is timed with ``triton.testing.do_bench`` (median) and, where the step
can be captured, with CUDA-graph replay (``do_bench_cudagraph``); a capture that fails
is recorded as a row with its error. Achieved TFLOP/s count the math doc's
multiply-adds (bench/common.floor_macs) and are compared with ``torch.mm``'s rate on
the same device for the step's dominant shape, (3B x d) @ (d x d).

On a machine without a GPU it says so and exits 0.

    python bench/gpu_critic_step.py [--dtype float32] [--activation lrelu] [--out bench/results]
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys

import torch

import fastgan
from fastgan import reference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import floor_macs, write_results  # noqa: E402

CONFIGS = [  # (name, widths d_0 .. d_{L-1}, batch)
    ("toy", (2, 512, 512, 512), 256),
    ("mnist-512", (784, 512, 512, 512), 64),
    ("mnist-1024", (784, 1024, 1024, 1024), 256),
    ("toy-4096", (2, 512, 512, 512), 4096),
    ("mnist-1024-4096", (784, 1024, 1024, 1024), 4096),
]


def steps(widths, batch, activation, dtype, lam):
    torch.manual_seed(0)
    critic = fastgan.FusedMLPCritic(widths[0], widths[1:], activation, device="cuda", dtype=dtype)
    seq = critic.to_sequential()
    real = torch.randn(batch, widths[0], device="cuda", dtype=dtype)
    fake = torch.randn(batch, widths[0], device="cuda", dtype=dtype)
    eps = torch.rand(batch, device="cuda", dtype=dtype)

    def eager():
        seq.zero_grad(set_to_none=False)
        reference.eager_wgan_gp_loss(seq, real, fake, eps, lam).loss.backward()

    def fused(backend):
        def step():
            with fastgan.use_backend(backend):
                critic.zero_grad(set_to_none=False)
                critic.wgan_gp_loss(real, fake, lam=lam, eps=eps).loss.backward()
        return step

    found = {"eager": eager}
    for backend in ("triton", "cuda"):
        if fastgan.backends.unavailable_reason(backend) is None:
            found[backend] = fused(backend)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--activation", default="lrelu", choices=list(reference.ACTIVATIONS))
    parser.add_argument("--lam", type=float, default=10.0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no GPU is present (torch sees no CUDA device): bench/gpu_critic_step.py measures "
              "nothing on this machine")
        return 0
    from triton.testing import do_bench, do_bench_cudagraph

    dtype = getattr(torch, args.dtype)
    device = torch.cuda.get_device_name()
    smooth = reference.ACTIVATIONS[args.activation].smooth
    print(fastgan.verify.format_report(fastgan.doctor()))
    rows = []
    for name, widths, batch in CONFIGS:
        a = torch.randn(3 * batch, widths[1], device="cuda", dtype=dtype)
        b = torch.randn(widths[1], widths[1], device="cuda", dtype=dtype)
        mm_tflops = 2 * a.shape[0] * b.shape[0] * b.shape[1] / do_bench(lambda: torch.mm(a, b)) / 1e9
        flops = 2 * floor_macs(widths, batch, smooth)
        for candidate, step in steps(widths, batch, args.activation, dtype, args.lam).items():
            for mode, bench in (("launch", do_bench), ("cuda-graph", do_bench_cudagraph)):
                row = {"suite": "critic-step-gpu", "config": name,
                       "critic": "-".join(map(str, widths)) + "-1", "batch": batch,
                       "activation": args.activation, "dtype": args.dtype, "candidate": candidate,
                       "mode": mode, "median_ms": "", "tflops": "", "mm_tflops": mm_tflops,
                       "fraction_of_mm": "", "error": "", "torch": torch.__version__,
                       "fastgan": fastgan.__version__, "device": device,
                       "date": datetime.date.today().isoformat()}
                try:
                    ms = bench(step)
                    row.update(median_ms=ms, tflops=flops / ms / 1e9,
                               fraction_of_mm=flops / ms / 1e9 / mm_tflops)
                except Exception as exc:  # recorded, not skipped: e.g. a capture that fails
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                rows.append(row)
                print(f"{name:>16} {candidate:>7} {mode:>10}: "
                      + (f"{row['median_ms']:.3f} ms, {row['tflops']:.1f} TFLOP/s "
                         f"({100 * row['fraction_of_mm']:.0f}% of mm)" if not row["error"]
                         else row["error"]), flush=True)
    columns = [
        ("config", lambda r: r["config"]), ("B", lambda r: str(r["batch"])),
        ("candidate", lambda r: r["candidate"]), ("mode", lambda r: r["mode"]),
        ("median ms", lambda r: f"{r['median_ms']:.3f}" if r["median_ms"] != "" else r["error"]),
        ("TFLOP/s", lambda r: f"{r['tflops']:.1f}" if r["tflops"] != "" else ""),
        ("of torch.mm", lambda r: f"{100 * r['fraction_of_mm']:.0f}%" if r["fraction_of_mm"] != "" else ""),
    ]
    preamble = (f"{device}, torch {torch.__version__}, fastgan {fastgan.__version__}, "
                f"{rows[0]['date']}, {args.dtype}, activation {args.activation}. Medians of "
                "triton.testing.do_bench; TFLOP/s count the math doc's multiply-adds.")
    write_results(rows, args.out, f"gpu_critic_step_{args.dtype}", "python "
                  + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]), preamble, columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
