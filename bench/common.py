"""What the benchmark scripts share: the math doc's MAC count, device names, and the
CSV + markdown writer."""
from __future__ import annotations

import csv
import os

import torch

from fastgan.benchmarks.harness import device_name


def floor_macs(widths, batch, smooth):
    """Multiply-adds of a fused WGAN-GP critic step as fused-gp-math.md counts them:
    10 B sum_l d_{l-1} d_l for ReLU-like activations, 11 B for smooth ones."""
    dims = list(widths) + [1]
    per_row = sum(d_in * d_out for d_in, d_out in zip(dims[:-1], dims[1:]))
    return (11 if smooth else 10) * batch * per_row


def cpu_name():
    return device_name(torch.device("cpu"))


def write_results(rows, out_dir, stem, command, preamble, columns):
    """``out_dir/stem.csv`` with every field of ``rows`` and ``out_dir/stem.md`` with the
    command, the preamble and a table of ``columns`` ((header, formatter) pairs)."""
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, f"{stem}.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    md_path = os.path.join(out_dir, f"{stem}.md")
    with open(md_path, "w") as f:
        f.write(f"Command: `{command}`\n\n{preamble}\n\n")
        f.write("| " + " | ".join(h for h, _ in columns) + " |\n")
        f.write("|" + "---|" * len(columns) + "\n")
        for r in rows:
            f.write("| " + " | ".join(fmt(r) for _, fmt in columns) + " |\n")
    print(f"wrote {csv_path} and {md_path}")
