"""How far two searches that differ only in `--seed` can agree: pairwise Spearman and tied-best
overlap of the given searches, the per-run noise they show, and, from that noise, how often
two searches with `--repeats k` would reach a Spearman of at least 0.9 (issue 10's stability
goal).

    .venv/bin/python benchmarks/seed_agreement.py ROOT0 ROOT1 ROOT2 [--repeats 1,2,3,4]

Each ROOT is a search's `--root` (or its study folder): its results.csv is read. Only the
candidates complete in every search are compared (the others are named). The noise model: a candidate's top-1 in one search = its true value + an offset the whole search shares
(its data split, as far as it moves every candidate alike) + independent noise of standard
deviation sigma; k repeats average k independent draws. sigma is estimated from the residuals
after removing each search's mean and each candidate's mean ((searches - 1) x (candidates -
1) degrees of freedom: with 3 searches of 6 candidates, 10, so sigma itself is uncertain by
about -30% / +75%). The probabilities printed are upper bounds, for two reasons: the
simulation takes the candidates' means over the searches as their true values, which the
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

from scaler.reports import truth  # noqa: E402


def load(root: str) -> pd.DataFrame:
    """The search's results table, indexed by candidate number, tied_with_best as booleans
    (unknown: False)."""
    found = sorted(Path(root).glob("**/results.csv"))
    if len(found) != 1:
        raise SystemExit(f"{root}: expected one results.csv below it, found {len(found)}")
    frame = pd.read_csv(found[0]).set_index("candidate").sort_index()
    frame["tied_with_best"] = [truth(v) is True for v in frame["tied_with_best"]]
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", help="two or more searches' --root folders")
    parser.add_argument("--repeats", default="1,2,3,4", help="repeat counts to simulate")
    parser.add_argument("--draws", type=int, default=20000, help="simulated pairs of searches per repeat count")
    args = parser.parse_args()
    if len(args.roots) < 2:
        raise SystemExit("give two or more searches")
    frames = [load(root) for root in args.roots]
    coefficients = ["alpha", "beta", "gamma"]
    if any(not f.index.equals(frames[0].index) or not f[coefficients].equals(frames[0][coefficients]) for f in frames):
        raise SystemExit("the searches do not have the same candidates")
    complete = np.logical_and.reduce([(f["state"] == "complete").to_numpy() for f in frames])
    dropped = [f"({a:g}, {b:g}, {g:g})" for a, b, g in frames[0].loc[~complete, coefficients].itertuples(index=False)]
    if dropped:
        print(f"left out, not complete in every search: {', '.join(dropped)}")
    frames = [f[complete] for f in frames]
    if len(frames[0]) < 3:
        raise SystemExit(f"only {len(frames[0])} candidate(s) are complete in every search; need 3 or more")
    labels = [f"({a:g}, {b:g}, {g:g})" for a, b, g in frames[0][["alpha", "beta", "gamma"]].itertuples(index=False)]
    top1 = np.array([f["top1"].to_numpy(dtype=float) for f in frames])  # searches x candidates
    print("top-1 per search (* tied with the best):")
    for root, frame in zip(args.roots, frames):
        cells = [f"{t:.3f}{'*' if tied else ''}" for t, tied in zip(frame["top1"], frame["tied_with_best"])]
        print(f"  {root}: {' '.join(cells)}")
    print(f"  candidates: {', '.join(labels)}")
    for (i, a), (j, b) in itertools.combinations(enumerate(frames), 2):
        rho = spearmanr(top1[i], top1[j]).statistic
        overlap = [k for k in range(len(a)) if a["tied_with_best"].iloc[k] and b["tied_with_best"].iloc[k]]
        print(f"searches {i} and {j}: Spearman {rho:.2f}; tied-best sets share {[labels[k] for k in overlap] or 'nothing'}")

    centred = top1 - top1.mean(axis=1, keepdims=True)  # each search's shared offset removed
    means = centred.mean(axis=0)
    residual = centred - means
    n, m = top1.shape
    sigma = float(np.sqrt((residual**2).sum() / ((n - 1) * (m - 1))))
    order = np.argsort(-means)
    gaps = -np.diff(means[order])
    print(f"per-run noise sigma {100 * sigma:.1f} points ({(n - 1) * (m - 1)} degrees of freedom); "
          f"candidates' means, best first: {', '.join(f'{labels[k]} {100 * means[k]:+.1f}' for k in order)}; "
          f"smallest gap between neighbours {100 * gaps.min():.1f} points")
    rng = np.random.default_rng(0)
    for k in (int(v) for v in args.repeats.split(",")):
        noise = rng.normal(0.0, sigma / np.sqrt(k), size=(args.draws, 2, m))
        rhos = np.array([spearmanr(means + x[0], means + x[1]).statistic for x in noise])
        print(f"  --repeats {k}: median Spearman {np.median(rhos):.2f}, P(Spearman >= 0.9) {(rhos >= 0.9).mean():.2f} "
              "(upper bounds)")


if __name__ == "__main__":
    main()
