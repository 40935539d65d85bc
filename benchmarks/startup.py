"""How long the `scaler` command takes to answer before any work: `--help`, a flag the parser
refuses, a value refused before and after the library loads, and a command that runs
(`flops b0`), each against the reference measured in the same
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout whose `scaler` is timed
CASES = (  # label, arguments, the exit code that shows the command did what the label says
    ("scaler --help", ["--help"], 0),
    ("scaler search --help", ["search", "--help"], 0),
    ("scaler search --epochs abc (refused by the parser)", ["search", "--epochs", "abc"], 2),
    ("scaler flops --help (lists the presets: imports torch)", ["flops", "--help"], 0),
    ("scaler search --phi 0 (refused by the space's own check)", ["search", "--phi", "0"], 2),
    ("scaler search --base b12 (refused by the library: imports torch)", ["search", "--base", "b12"], 2),
    ("scaler flops b0 (a command that runs)", ["flops", "b0"], 0),
)


def median_seconds(argv: list[str], runs: int, code: int = 0) -> float:
    """The median wall time of `runs` fresh processes running `argv` in the checkout (so that
    `-m scaler` is this checkout's); SystemExit where one exits with another code than `code`
    (a command that failed to start would time as a fast one)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode != code:
            raise SystemExit(f"{' '.join(argv[1:])} exited {proc.returncode}, not {code}: {proc.stderr.strip()[-300:]}")
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per figure (the median is shown)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    reference = median_seconds([sys.executable, "-c", "import torch"], args.runs)
    print(f"reference: import torch in a fresh interpreter {reference:.2f} s (median of {args.runs})", flush=True)
    for label, case, code in CASES:
        seconds = median_seconds([sys.executable, "-m", "scaler", *case], args.runs, code)
        print(f"{label}: {seconds:.2f} s = {seconds / reference:.2f}x the reference", flush=True)


if __name__ == "__main__":
    main()
