"""How far two searches that differ only in `--seed` can agree: pairwise Spearman and tied-best
overlap of the given searches, the per-run noise they show, and, from that noise, how often
two searches with `--repeats k` would reach a Spearman of at least 0.9 (issue 10's stability
goal).

    .venv/bin/python benchmarks/seed_agreement.py ROOT0 ROOT1 ROOT2 [--repeats 1,2,3,4]

Each ROOT is a search's `--root` (or its study folder): its results.csv is read. The noise
model: a candidate's top-1 in one search = its true value + an offset the whole search shares
(its data split, which moves every candidate alike and no ranking) + independent noise of
standard deviation sigma; k repeats average k draws. sigma is estimated from the residuals
after removing each search's mean and each candidate's mean ((searches - 1) x (candidates -
1) degrees of freedom). The simulation takes the candidates' means over the searches as their
true values; those are spread wider than the truth by the same noise, so the probabilities it
prints are, if anything, optimistic.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def load(root: str) -> pd.DataFrame:
    """The search's results table, indexed by candidate number."""
    found = sorted(Path(root).glob("**/results.csv"))
    if len(found) != 1:
        raise SystemExit(f"{root}: expected one results.csv below it, found {len(found)}")
    return pd.read_csv(found[0]).set_index("candidate").sort_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", help="two or more searches' --root folders")
    parser.add_argument("--repeats", default="1,2,3,4", help="repeat counts to simulate")
    parser.add_argument("--draws", type=int, default=20000, help="simulated pairs of searches per repeat count")
    args = parser.parse_args()
    if len(args.roots) < 2:
        raise SystemExit("give two or more searches")
    frames = [load(root) for root in args.roots]
    if any(not f.index.equals(frames[0].index) for f in frames):
        raise SystemExit("the searches do not have the same candidates")
    labels = [f"({a:g}, {b:g}, {g:g})" for a, b, g in frames[0][["alpha", "beta", "gamma"]].itertuples(index=False)]
    top1 = np.array([f["top1"].to_numpy(dtype=float) for f in frames])  # searches x candidates
    print("top-1 per search (* tied with the best):")
    for root, frame in zip(args.roots, frames):
        cells = [f"{t:.3f}{'*' if tied else ''}" for t, tied in zip(frame["top1"], frame["tied_with_best"])]
        print(f"  {root}: {' '.join(cells)}")
    print(f"  candidates: {', '.join(labels)}")
    for (i, a), (j, b) in itertools.combinations(enumerate(frames), 2):
        rho = spearmanr(top1[i], top1[j]).statistic
        overlap = sorted(set(a.index[a["tied_with_best"].astype(bool)]) & set(b.index[b["tied_with_best"].astype(bool)]))
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
        print(f"  --repeats {k}: median Spearman {np.median(rhos):.2f}, P(Spearman >= 0.9) {(rhos >= 0.9).mean():.2f}")


if __name__ == "__main__":
    main()
