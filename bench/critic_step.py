"""The fused WGAN-GP critic step beside eager PyTorch, torch.func, torch.compile and
fastgan's reference, with the GEMM floor: ``fastgan bench --suite critic-step`` (see
fastgan/benchmarks/suites.py), kept here as a script. On a GPU it adds the B = 4096
configs, CUDA-event timing and CUDA-graph replay.

    python bench/critic_step.py [--reps 40] [--only toy] [--out bench/results]
"""
import sys

from fastgan.benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main(["--suite", "critic-step", *sys.argv[1:]]))
