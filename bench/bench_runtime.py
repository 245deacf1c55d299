"""PyTorch eager vs the latentforge runtime, side by side in one run (same as `latentforge
bench`). Prints times, speed-ups (eager time / runtime time) and the core count.

    python bench/bench_runtime.py [--quick] [--threads N]
"""
import sys

from latentforge.runtime.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
