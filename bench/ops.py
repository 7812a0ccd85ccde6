"""The drop-in ops beside what a user would write instead: ``fastgan bench --suite ops``
(see fastgan/benchmarks/ops_suite.py), kept here as a script.

    python bench/ops.py [--reps 30] [--only gradient_penalty] [--out bench/results]
"""
import sys

from fastgan.benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main(["--suite", "ops", *sys.argv[1:]]))
