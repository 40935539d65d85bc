"""Time counting B0-B7 at native resolution: the project's path vs a plain fvcore pass.

The project's path is `scaler.counting.count_model` (distinct pieces, one trace, no weight
initialisation) with its cache cleared; the plain pass builds each real model, feeds a real
random tensor and runs one `FlopCountAnalysis` over the whole model. Both run in this process,
after one small warm-up of each (so neither pays PyTorch's first-use costs), and their totals
must be identical. Goal: the project's path takes at most 1/4 of the plain pass.

    .venv/bin/python benchmarks/flops_speed.py [--threads 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's scaler, whatever the venv points at

from scaler import build_model, get_preset, network_spec  # noqa: E402
from scaler.counting import count_model, count_whole_model  # noqa: E402

VARIANTS = [f"b{i}" for i in range(8)]


def project_pass() -> tuple[float, dict[str, int]]:
    count_model.cache_clear()
    start = time.perf_counter()
    totals = {v: count_model(network_spec(v), get_preset(v).resolution).fvcore_total for v in VARIANTS}
    return time.perf_counter() - start, totals


def plain_pass() -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    totals = {
        v: count_whole_model(build_model(v), get_preset(v).resolution).fvcore_total for v in VARIANTS
    }
    return time.perf_counter() - start, totals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; the best is kept")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        parser.error("--threads and --rounds must be >= 1")
    torch.set_num_threads(args.threads)

    tiny = network_spec(width=0.25, depth=0.25, num_classes=10)
    count_model(tiny, 32)
    count_whole_model(build_model(width=0.25, depth=0.25, num_classes=10), 32)

    project_times, plain_times = [], []
    for _ in range(args.rounds):
        seconds, project_totals = project_pass()
        project_times.append(seconds)
        seconds, plain_totals = plain_pass()
        plain_times.append(seconds)
    identical = project_totals == plain_totals
    project, plain = min(project_times), min(plain_times)
    print(f"threads: {args.threads}, models: {', '.join(VARIANTS)} at native resolution")
    print(f"{'model':<6}{'fvcore total':>16}")
    for v in VARIANTS:
        print(f"{v:<6}{project_totals[v]:>16,}")
    print(f"project path (count_model, cold cache): {project:.2f} s")
    print(f"plain fvcore pass (whole real models):  {plain:.2f} s")
    print(f"ratio project / plain: {project / plain:.3f}  (goal <= 0.25)")
    print(f"identical totals: {identical}")
    if not identical:
        raise SystemExit("totals differ")


if __name__ == "__main__":
    main()
