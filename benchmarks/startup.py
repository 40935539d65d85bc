"""How long the `scaler` command takes to answer before any work: `--help`, a flag the parser
refuses, and a command that runs (`flops b0`), each against the reference measured in the same
run, a bare `import torch` in a fresh interpreter (what every command that runs pays).

    python benchmarks/startup.py            # 5 runs each, the median
    python benchmarks/startup.py --runs 9

Each figure is the median wall time of fresh processes (`python -m scaler ARGS`), shown beside
its ratio to the reference: on a faster or slower machine the times move, the ratios far less.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = (
    ("scaler --help", ["--help"]),
    ("scaler search --help", ["search", "--help"]),
    ("scaler search --epochs abc (refused by the parser)", ["search", "--epochs", "abc"]),
    ("scaler flops --help (lists the presets: imports torch)", ["flops", "--help"]),
    ("scaler search --phi 0 (refused by the library)", ["search", "--phi", "0"]),
    ("scaler flops b0 (a command that runs)", ["flops", "b0"]),
)


def median_seconds(argv: list[str], runs: int) -> float:
    """The median wall time of `runs` fresh processes running `argv`."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per figure (the median is shown)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    reference = median_seconds([sys.executable, "-c", "import torch"], args.runs)
    print(f"reference: import torch in a fresh interpreter {reference:.2f} s (median of {args.runs})", flush=True)
    for label, case in CASES:
        seconds = median_seconds([sys.executable, "-m", "scaler", *case], args.runs)
        print(f"{label}: {seconds:.2f} s = {seconds / reference:.2f}x the reference", flush=True)


if __name__ == "__main__":
    main()
