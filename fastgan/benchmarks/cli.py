"""``fastgan bench``: runs the suites, writes ``bench/results/bench.csv`` / ``.md``,
compares with an earlier CSV, or profiles one suite's first config per peer. On a GPU
it runs the GPU configs too, timed by CUDA events and replayed from CUDA graphs."""
from __future__ import annotations

import argparse
import os
import sys

import torch

import fastgan.verify
from fastgan.benchmarks import harness
from fastgan.benchmarks.suites import SUITES


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_suites(names, quick: bool, reps: int, warmup: int, device: torch.device, only: str = "",
               log=print) -> list[dict]:
    rows = []
    for name in names:
        for config, peers, floor in SUITES[name](quick, device):
            if only not in config:
                continue
            timed = peers + ([harness.Peer("GEMM floor", floor)] if floor else [])
            measured = harness.measure(timed, reps, warmup, device)
            floor_s = None
            if floor:
                floor_m = measured.pop()
                floor_s = harness.quantiles(floor_m.times)[0] if floor_m.times else None
            for row in harness.rows(name, config, measured, device, floor_s):
                rows.append(row)
                log(_line(row))
    return rows


def _line(r: dict) -> str:
    peer = r["peer"] + (f" ({r['backend']})" if r["backend"] else "")
    if r["status"] == "error":
        return f"{r['suite']:>11} | {r['config']:<32} | {peer:<16} fails: {r['error']}"
    extra = f"  {100 * r['fraction_of_floor']:.0f}% of GEMM floor" if r["fraction_of_floor"] != "" else ""
    ratio = f"{r['ratio_to_eager']:.2f}x eager" if r["ratio_to_eager"] != "" else ""
    return (f"{r['suite']:>11} | {r['config']:<32} | {peer:<16} {r['median_ms']:9.2f} ms  {ratio}{extra}  "
            f"peak {r['peak_mem_mb']:.1f} MB")


def profile_suite(name: str, device: torch.device, out_dir: str, warmup: int = 2) -> list[str]:
    """A torch.profiler trace of the suite's first config, one per peer, and the top
    operators of each."""
    config, peers, _ = next(iter(SUITES[name](True, device)))
    tables = []
    for peer in peers:
        if peer.compiled:
            torch._dynamo.reset()
        try:
            for _ in range(warmup):
                peer.fn()
            with torch.profiler.profile() as prof:
                peer.fn()
        except Exception as exc:  # noqa: BLE001
            tables.append(f"== {peer.name}: fails: {harness._error_line(exc)}")
            continue
        path = os.path.join(out_dir, f"profile_{name}_{peer.name.replace('.', '_')}.json")
        os.makedirs(out_dir, exist_ok=True)
        prof.export_chrome_trace(path)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        tables.append(f"== {peer.name} ({config}), trace {path}\n"
                      + prof.key_averages().table(sort_by=sort, row_limit=12))
    return tables


def _check_args(args) -> str | None:
    """What is wrong with the arguments, before any suite runs (None: nothing)."""
    if args.reps is not None and args.reps < 1:
        return f"--reps must be >= 1, got {args.reps}"
    if args.warmup < 0:
        return f"--warmup must be >= 0, got {args.warmup}"
    if args.compare:
        try:
            harness.read_csv(args.compare)
        except (OSError, ValueError) as exc:
            return f"--compare {args.compare}: {exc}"
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        return f"--out {args.out}: cannot create the folder: {exc.strerror}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastgan bench", description=" ".join(__doc__.split()))
    parser.add_argument("--suite", nargs="+", choices=list(SUITES), default=list(SUITES),
                        help="the suites to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small configs and few repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 20, quick 8)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before the timed ones (default 3)")
    parser.add_argument("--only", default="", metavar="TEXT", help="only the configs whose name holds TEXT")
    parser.add_argument("--out", default=os.path.join("bench", "results"),
                        help="the folder of the CSV, markdown and plot (default bench/results)")
    parser.add_argument("--compare", metavar="OLD.csv", help="print the change against an earlier run")
    parser.add_argument("--profile", metavar="SUITE", choices=list(SUITES),
                        help="profile the suite's first config per peer instead of timing")
    args = parser.parse_args(argv)
    problem = _check_args(args)
    if problem:
        print(f"fastgan bench: {problem}", file=sys.stderr)
        return 2
    device = _device()
    if device.type == "cpu":
        print("no GPU is present: CPU configs only")
    else:  # the GPU kernels are timed only after they are seen to agree with the reference
        print(fastgan.verify.format_report(fastgan.verify.doctor()))
    if args.profile:
        for table in profile_suite(args.profile, device, args.out):
            print(table)
        return 0
    reps = args.reps or (8 if args.quick else 20)
    rows = run_suites(args.suite, args.quick, reps, args.warmup, device, args.only)
    if not rows:
        print(f"no config matches --only {args.only!r}", file=sys.stderr)
        return 2
    command = "fastgan bench " + " ".join(argv if argv is not None else sys.argv[2:])
    parts = ["bench"] + (["quick"] if args.quick else []) + (args.suite if len(args.suite) < len(SUITES) else [])
    parts += ["".join(c if c.isalnum() else "-" for c in args.only)] if args.only else []
    stem = "_".join(parts)
    paths = harness.write(rows, args.out, stem, command.strip())
    paths.append(harness.plot_scaling(rows, os.path.join(args.out, f"{stem}_scaling.png")))
    for path in filter(None, paths):
        print(f"wrote {path}")
    if args.compare:
        print(f"against {args.compare}:")
        for line in harness.compare(rows, args.compare):
            print("  " + line)
    return 0
