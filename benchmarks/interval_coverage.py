"""How often the 95% interval of a mean top-1 over repeats covers the true accuracy: the
coverage and mean width of `scaler.statistics.mean_interval`, the interval that results.csv's
`top1_low` and `top1_high` give a candidate trained with `--repeats 2` or more.

    .venv/bin/python benchmarks/interval_coverage.py [--trials 4000] [--seed 0]

The noise model, that of a search's repeats: a candidate's true accuracy p; the validation
images, shared by every repeat, are right with chance p each (so their own accuracy is
Binomial(images, p) / images); each repeat's seed moves that by a normal draw of standard
deviation `seed noise`; a repeat scores a whole number of images, kept to 0-100%. An interval
covers when p lies inside it. One run's Wilson interval is shown beside it for width.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaler.statistics import mean_interval, proportion_interval  # noqa: E402

# (true accuracy, validation images, seed noise, repeats): mid-range and near the ends, few
# and many images, agreeing and disagreeing seeds, 2 to 5 repeats
CASES = [
    (0.60, 1000, 0.03, 3), (0.60, 1000, 0.01, 3), (0.60, 1000, 0.05, 5), (0.50, 500, 0.03, 2),
    (0.50, 500, 0.03, 3), (0.50, 500, 0.06, 2), (0.80, 500, 0.04, 2), (0.12, 100, 0.03, 3),
    (0.10, 48, 0.00, 2), (0.10, 32, 0.02, 3), (0.05, 64, 0.03, 2), (0.90, 200, 0.02, 2),
    (0.95, 500, 0.04, 2), (0.60, 1000, 0.06, 3), (0.60, 1000, 0.06, 4),
]  # fmt: skip


def coverage(accuracy: float, images: int, seed_noise: float, repeats: int, trials: int,
             rng: np.random.Generator) -> tuple[float, float, float]:
    """(share of trials whose interval covered `accuracy`, mean width, one run's mean width)."""
    covered, width, single = 0, 0.0, 0.0
    for _ in range(trials):
        shared = rng.binomial(images, accuracy) / images
        runs = np.clip(np.round((shared + rng.normal(0.0, seed_noise, repeats)) * images), 0, images)
        _, _, low, high = mean_interval(list(runs / images), images=images)
        covered += low <= accuracy <= high
        width += high - low
        one_low, one_high = proportion_interval(int(runs[0]), images)
        single += one_high - one_low
    return covered / trials, width / trials, single / trials


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    parser.add_argument("--trials", type=int, default=4000, help="simulated candidates per case (default 4000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    parser.add_argument("--cases", type=int, default=len(CASES), help="run only the first N cases")
    args = parser.parse_args(argv)
    if args.trials < 1 or not 1 <= args.cases <= len(CASES):
        parser.error(f"--trials must be >= 1 and --cases 1-{len(CASES)}")
    rng = np.random.default_rng(args.seed)
    print(f"{'accuracy':>8} {'images':>6} {'seed noise':>10} {'repeats':>7} {'covered':>8} {'width':>7} {'one run':>8}")
    shares = []
    for accuracy, images, seed_noise, repeats in CASES[: args.cases]:
        share, width, single = coverage(accuracy, images, seed_noise, repeats, args.trials, rng)
        shares.append(share)
        print(f"{accuracy:>8.0%} {images:>6} {seed_noise * 100:>7.0f} pt {repeats:>7} {share:>8.1%} {width * 100:>5.1f} pt {single * 100:>5.1f} pt")
    print(f"coverage {min(shares):.1%}-{max(shares):.1%} over {len(shares)} cases of {args.trials} trials each (nominal 95%)")


if __name__ == "__main__":
    main()
