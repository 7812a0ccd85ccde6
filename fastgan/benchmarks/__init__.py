"""``fastgan bench``: the suites that measure fastgan against what a user would run
instead, side by side in one process (see :mod:`fastgan.benchmarks.harness`)."""
