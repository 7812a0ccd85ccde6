"""Weak scaling of data-parallel training on this machine: `fastgan train` on 1 process
and on 2 gloo processes (torchrun), the latter with fastgan's flat all-reduce and with
torch's DistributedDataParallel (`--ddp`), the per-rank batch held fixed, so the
2-process runs train twice the batch per step. Reports samples per second of training (from the
runs' metrics.jsonl, evaluation excluded) and the scaling efficiency (2-process
throughput over twice the 1-process one; with both processes on the same cores, 50% is
the ideal).

    python bench/weak_scaling.py [--steps 60] [--batch 256] [--reps 3] [--out bench/results]
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

import torch

import fastgan
from fastgan.benchmarks.harness import device_name


#: (label, processes, extra flags) of the runs compared
RUNS = (("1 process", 1, []), ("2 processes, flat all-reduce", 2, []), ("2 processes, DDP", 2, ["--ddp"]))


def train_seconds(nproc: int, batch: int, steps: int, out: str, flags: list[str]) -> float:
    """Training seconds of one run (the ``time`` of its last log line; the evaluations
    at step 0 and at the end are outside it)."""
    command = [sys.executable, "-m", "fastgan.cli", "train", "--nproc-per-node", str(nproc), "--batch",
               str(batch), "--steps", str(steps), "--eval-every", "0", "--log-every", str(steps),
               "--no-progress", "--out", out, *flags]
    subprocess.run(command, check=True, capture_output=True, text=True)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()][-1]["time"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="generator steps per run (5 critic steps each)")
    parser.add_argument("--batch", type=int, default=256, help="per-rank batch")
    parser.add_argument("--reps", type=int, default=3, help="runs per process count, interleaved")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    seconds = {label: [] for label, _, _ in RUNS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for i, (label, nproc, flags) in enumerate(RUNS):
                run_dir = os.path.join(tmp, f"run{i}-{rep}")
                seconds[label].append(train_seconds(nproc, args.batch * nproc, args.steps, run_dir, flags))
    rows = []
    for label, nproc, flags in RUNS:
        median = statistics.median(seconds[label])
        rows.append({"run": label, "processes": nproc, "backend": "gloo" if nproc > 1 else "none",
                     "per_rank_batch": args.batch,
                     "global_batch": args.batch * nproc, "steps": args.steps, "median_s": median,
                     "samples_per_s": args.steps * args.batch * nproc / median,
                     "threads_per_process": 1 if nproc > 1 else torch.get_num_threads(),
                     "cpus": os.cpu_count(), "torch": torch.__version__, "fastgan": fastgan.__version__,
                     "device": device_name(torch.device("cpu")), "date": datetime.date.today().isoformat()})
    efficiency = [r["samples_per_s"] / (2 * rows[0]["samples_per_s"]) for r in rows[1:]]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "weak_scaling.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    with open(os.path.join(args.out, "weak_scaling.md"), "w") as f:
        f.write(f"Command: `{command}`\n\n{rows[0]['device']}, {rows[0]['cpus']} CPU cores, torch {rows[0]['torch']}, "
                f"{rows[0]['date']}. `fastgan train` (WGAN-GP demo nets, fused critic), {args.steps} generator steps, "
                f"median of {args.reps} runs. **Both processes share the same {rows[0]['cpus']} cores** as the single "
                "process (torchrun gives each rank 1 thread, the single process uses all cores), so this measures "
                "the cost of the gradient all-reduces and of splitting the cores, not a speed-up.\n\n")
        f.write("| run | per-rank batch | global batch | training s | samples/s | vs 1 process |\n"
                "|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['run']} | {r['per_rank_batch']} | {r['global_batch']} | {r['median_s']:.1f} | "
                    f"{r['samples_per_s']:.0f} | {r['samples_per_s'] / rows[0]['samples_per_s']:.2f}x |\n")
        f.write("\nWeak-scaling efficiency (2-process throughput over twice the 1-process one): "
                + ", ".join(f"{r['run']} {100 * e:.0f}%" for r, e in zip(rows[1:], efficiency))
                + ". On shared cores 50% is the ideal (1.00x in the last column: the all-reduces and the split of "
                "the cores cost nothing).\n")
    print(open(os.path.join(args.out, "weak_scaling.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
