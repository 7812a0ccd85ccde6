"""The ``fastgan`` command line: ``fastgan doctor``."""
from __future__ import annotations

import argparse
import os
import sys


def _doctor(args) -> int:
    if args.interpret:
        # Before anything imports triton: its kernels then run on CPU tensors.
        os.environ["TRITON_INTERPRET"] = "1"
    from fastgan.verify import doctor, format_report

    checks = doctor()
    print(format_report(checks))
    failed = [c.backend for c in checks if c.available and not c.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastgan`` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="fastgan", description="fastgan: fused WGAN kernels")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser(
        "doctor", help="check every backend: built, device, parity with the reference",
        description="For each backend: whether it is built or importable, the device it "
                    "would run on, and a parity self-check against the reference there. "
                    "Exits 1 if an available backend fails its check.")
    doctor.add_argument("--interpret", action="store_true",
                        help="check the Triton backend through Triton's interpreter on the CPU")
    doctor.set_defaults(run=_doctor)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
