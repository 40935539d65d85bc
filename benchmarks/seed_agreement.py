"""How far two searches that differ only in `--seed` can agree: pairwise Spearman and tied-best
overlap of the given searches, the per-run noise they show, and, from that noise, how often
two searches with `--repeats k` would reach a Spearman of at least 0.9 (the default search's
stability goal).

    .venv/bin/python benchmarks/seed_agreement.py ROOT0 ROOT1 ROOT2 [--repeats 1,2,3,4]

Each ROOT is a search's `--root` (or its study folder), read as `scaler report` reads it;
pairs are compared as `scaler report A B` compares them (`compare_searches`). Only
the candidates complete in every search enter the noise figures (the others are named).

The noise model: a candidate's top-1 in one search = its true value + an offset the whole
search shares (its data split, as far as it moves every candidate alike) + independent noise
of standard deviation sigma; k repeats average k independent draws. sigma is estimated from
the residuals after removing each search's mean and each candidate's mean ((searches - 1) x
(candidates - 1) degrees of freedom: with 3 searches of 6 candidates, 10, so sigma itself is
uncertain by about -30% / +75%). The probabilities printed are upper bounds, for two reasons:
the simulation takes the candidates' means over the searches as their true values, which the
same noise spreads wider than the truth; and a search's repeats share its data split and
validation images (only initial weights and batch order change), so the part of sigma that
comes from the split does not shrink with k.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from arguments import positive_ints  # noqa: E402

from scaler.errors import UsageError  # noqa: E402
from scaler.experiments.search import read_results  # noqa: E402
from scaler.reports import COMPARE_KEYS, compare_searches, truth  # noqa: E402
from scaler.states import State  # noqa: E402
from scaler.statistics import per_run_noise  # noqa: E402


def load(root: str) -> pd.DataFrame:
    """The search's results table, checked as `scaler report` checks it."""
    found = sorted(Path(root).glob("**/results.csv"))
    if len(found) != 1:
        raise SystemExit(f"{root}: expected one results.csv below it, found {len(found)}")
    try:
        return read_results(found[0].parent)[0]
    except UsageError as error:
        raise SystemExit(str(error)) from None


def label(row: pd.Series) -> str:
    return f"({row['alpha']:g}, {row['beta']:g}, {row['gamma']:g})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", help="two or more searches' --root folders")
    parser.add_argument("--repeats", type=positive_ints, default="1,2,3,4", help="repeat counts to simulate")
    parser.add_argument("--draws", type=int, default=20000, help="simulated pairs of searches per repeat count")
    args = parser.parse_args(argv)
    counts = args.repeats
    if args.draws < 1:
        parser.error("--draws must be >= 1")
    if len(args.roots) < 2:
        parser.error("give two or more searches")
    frames = [load(root) for root in args.roots]
    for (i, a), (j, b) in itertools.combinations(enumerate(frames), 2):
        comparison = compare_searches(a, b)
        both = comparison.frame
        tied = [label(row) for _, row in both.iterrows()
                if truth(row["tied_with_best_a"]) and truth(row["tied_with_best_b"])]
        rho = "undefined" if comparison.spearman is None else f"{comparison.spearman[0]:.2f}"
        print(f"searches {i} and {j}: Spearman {rho} over {comparison.scored} candidates complete in both; "
              f"tied-best sets share {tied or 'nothing'}")

    # Candidates x searches, over the candidates complete in every search.
    table = frames[0][COMPARE_KEYS]
    for i, frame in enumerate(frames):
        done = frame[frame["state"] == State.COMPLETE.value]
        table = table.merge(done[COMPARE_KEYS + ["top1"]].rename(columns={"top1": i}), on=COMPARE_KEYS, how="left")
    complete = table[list(range(len(frames)))].notna().all(axis=1)
    dropped = [label(row) for _, row in table[~complete].iterrows()]
    if dropped:
        print(f"left out, not complete in every search (or another network in one: another proxy): {', '.join(dropped)}")
    table = table[complete]
    if len(table) < 3:
        raise SystemExit(f"only {len(table)} candidate(s) are complete in every search; need 3 or more")
    labels = [label(row) for _, row in table.iterrows()]
    top1 = table[list(range(len(frames)))].to_numpy(dtype=float).T  # searches x candidates
    centred = top1 - top1.mean(axis=1, keepdims=True)  # each search's shared offset removed
    means = centred.mean(axis=0)
    sigma, dof = per_run_noise(top1)
    order = np.argsort(-means)
    gaps = -np.diff(means[order])
    print(f"per-run noise sigma {100 * sigma:.1f} points ({dof} degrees of freedom); "
          f"candidates' means, best first: {', '.join(f'{labels[k]} {100 * means[k]:+.1f}' for k in order)}; "
          f"smallest gap between neighbours {abs(100 * gaps.min()):.1f} points")  # never "-0.0": gaps are >= 0
    if sigma == 0 and np.ptp(means) == 0:  # the rank correlation of two constant rankings is undefined
        raise SystemExit("every search scores every candidate alike: there is no ranking for two searches to agree on")
    for k in counts:
        rng = np.random.default_rng((0, k))  # a generator per count: its figures do not depend on the others asked
        noise = rng.normal(0.0, sigma / np.sqrt(k), size=(args.draws, 2, len(means)))
        rhos = np.array([spearmanr(means + x[0], means + x[1]).statistic for x in noise])
        print(f"  --repeats {k}: median Spearman {np.median(rhos):.2f}, P(Spearman >= 0.9) {(rhos >= 0.9).mean():.2f} "
              "(upper bounds)")


if __name__ == "__main__":
    main()
