"""Two builds of fastgan in one interleaved run: ``fastgan bench`` of each tree in
turn, ``--rounds`` times, then the median over the rounds of each (config, peer)
median, side by side, as CSV and markdown.

Two builds cannot share a process (both register the ``fastgan`` torch ops), so each
round runs one process per build, alternating (the first of a round swaps from round
to round), on the same machine and load::

    git worktree add /tmp/before <commit> && (cd /tmp/before && python setup.py build_ext --inplace)
    python bench/compare_builds.py /tmp/before . --suite critic-step --only "toy" --rounds 3

The trees must have their extension built in place; the bench arguments after the two
trees are passed on (``--reps``, ``--only``, ``--suite``, ``--quick``).
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile


def run_once(tree: str, bench_args: list[str], out: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    subprocess.run([sys.executable, "-m", "fastgan", "bench", *bench_args, "--out", out], env=env, check=True,
                   cwd=os.path.abspath(tree), stdout=subprocess.DEVNULL)
    rows = []
    for name in os.listdir(out):
        if name.endswith(".csv"):
            with open(os.path.join(out, name)) as f:
                rows += list(csv.DictReader(f))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="the tree of the earlier build")
    parser.add_argument("after", help="the tree of the later build")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="bench/results", help="where the CSV and markdown go")
    parser.add_argument("--name", default="compare_builds", help="the name of the CSV and markdown files")
    args, bench_args = parser.parse_known_args(argv)
    medians: dict[tuple[str, str, str], list[float]] = {}
    ratios: dict[tuple[str, str, str], list[float]] = {}
    trees = (("before", args.before), ("after", args.after))
    for round_ in range(args.rounds):
        for label, tree in trees if round_ % 2 == 0 else trees[::-1]:  # neither build always runs first
            with tempfile.TemporaryDirectory() as out:
                for r in run_once(tree, bench_args, out):
                    if r["median_ms"]:
                        peer = f"{r['peer']} ({r['backend']})" if r["backend"] else r["peer"]
                        medians.setdefault((r["config"], peer, label), []).append(float(r["median_ms"]))
                        if r["ratio_to_eager"]:
                            ratios.setdefault((r["config"], peer, label), []).append(float(r["ratio_to_eager"]))
    keys = sorted({(c, p) for c, p, _ in medians})

    def median(store, key):
        return statistics.median(store.get(key, [float("nan")]))
    commits = {label: subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip() or "?"
               for label, tree in (("before", args.before), ("after", args.after))}
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, args.name)
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["config", "peer", "before_ms", "after_ms", "after_vs_before", "before_vs_eager", "after_vs_eager"])
        rows = []
        for c, p in keys:
            before, after = (median(medians, (c, p, k)) for k in ("before", "after"))
            eager_before, eager_after = (median(ratios, (c, p, k)) for k in ("before", "after"))
            rows.append((c, p, before, after, before / after, eager_before, eager_after))
            w.writerow([c, p, f"{before:.3f}", f"{after:.3f}", f"{before / after:.3f}", f"{eager_before:.3f}",
                        f"{eager_after:.3f}"])
    with open(base + ".md", "w") as f:
        name = f" --name {args.name}" if args.name != "compare_builds" else ""
        f.write(f"`python bench/compare_builds.py {args.before} {args.after} --rounds {args.rounds}{name} "
                f"{' '.join(bench_args)}` (before: commit {commits['before']}, after: {commits['after']}): "
                f"median over {args.rounds} alternating rounds of each build's median (above 1: the later build is "
                "faster), and of each build's ratio to eager in its own runs.\n\n")
        f.write("| config | peer | before ms | after ms | before / after | vs eager before | vs eager after |\n"
                "|---|---|---|---|---|---|---|\n")
        for c, p, before, after, ratio, eager_before, eager_after in rows:
            f.write(f"| {c} | {p} | {before:.2f} | {after:.2f} | {ratio:.2f}x | {eager_before:.2f}x | "
                    f"{eager_after:.2f}x |\n")
    print(open(base + ".md").read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
