"""How much a measured accuracy can be believed: intervals, ties with the best, and how well a
ranking reproduces itself. Built on scipy.stats; every function takes plain numbers.

* A candidate's top-1 over several repeats (seeds) gets Student's t interval of the mean; a
  single run gets the Wilson interval of its validation sample (k of n images right).
* "Tied with the best" is a paired test on the shared validation images: each image's
  correctness, averaged over a candidate's repeats, is compared with the best candidate's on
  the same image (exact McNemar test for one run each, paired t-test otherwise); tied when
  p >= 0.05 (two-sided).
* Split-half reliability: the repeats are split into two disjoint halves many ways; each half
  ranks the candidates by its mean; the Spearman correlation of the two rankings, with the
  2.5-97.5% range over the splits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95  # every interval and test here is at the 95% level
SPLITS = 200  # random splits of the repeats for split-half reliability


def pack_correct(correct: np.ndarray) -> str:
    """Per-image correctness (bools, in validation order) as a compact hex string."""
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack_correct(text: str, count: int) -> np.ndarray:
    """The bools `pack_correct` stored, `count` of them."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:count].astype(bool)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, sample std, low, high) of repeated measurements: Student's t interval of the mean.
    A constant series has zero width; fewer than 2 values give NaN bounds."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if len(x) else math.nan
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    if std == 0.0:
        return mean, 0.0, mean, mean
    low, high = stats.t.interval(LEVEL, len(x) - 1, loc=mean, scale=std / math.sqrt(len(x)))
    return mean, std, float(low), float(high)


def proportion_interval(correct: int, total: int) -> tuple[float, float]:
    """Wilson interval of an accuracy measured on `total` images, `correct` of them right."""
    if total <= 0:
        return math.nan, math.nan
    ci = stats.binomtest(correct, total).proportion_ci(LEVEL, method="wilson")
    return float(ci.low), float(ci.high)


def paired_p_value(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Two-sided p-value that candidates a and b (each a list of per-repeat correctness arrays
    over the same validation images) have equal accuracy."""
    mean_a = np.mean(np.stack(a).astype(float), axis=0)
    mean_b = np.mean(np.stack(b).astype(float), axis=0)
    if len(a) == 1 and len(b) == 1:  # exact McNemar: only discordant images carry information
        only_a = int(np.sum((mean_a == 1) & (mean_b == 0)))
        only_b = int(np.sum((mean_a == 0) & (mean_b == 1)))
        if only_a + only_b == 0:
            return 1.0
        return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    diff = mean_a - mean_b
    if np.all(diff == diff[0]):
        return 1.0 if diff[0] == 0 else 0.0
    return float(stats.ttest_rel(mean_a, mean_b).pvalue)


def repeat_paired_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value that two configurations have equal mean top-1, from their top-1 per
    repeat where a[r] and b[r] were trained with repeat r's seed: the paired t-test over
    repeats, so seed-to-seed variation counts. Needs 2 or more pairs."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("a paired test over repeats needs 2 or more pairs")
    diff = x - y
    if np.all(diff == diff[0]):
        return 1.0 if diff[0] == 0 else 0.0
    return float(stats.ttest_rel(x, y).pvalue)


def split_half_reliability(scores: Sequence[Sequence[float]], seed: int = 0) -> tuple[float, float, float] | None:
    """(median, low, high) Spearman correlation between the candidate rankings of two disjoint
    halves of the repeats, over random splits; None with fewer than 3 candidates of 2 or more
    repeats, or when most splits leave a half that scores every candidate alike (undefined).
    `scores[c]` holds candidate c's per-repeat top-1."""
    usable = [np.asarray(s, dtype=float) for s in scores if len(s) >= 2]
    if len(usable) < 3:
        return None
    rng = np.random.default_rng(seed)
    correlations = []
    for _ in range(SPLITS):
        first, second = [], []
        for s in usable:
            order = rng.permutation(len(s))
            half = len(s) // 2
            first.append(s[order[:half]].mean())
            second.append(s[order[half : 2 * half]].mean())
        if np.ptp(first) > 0 and np.ptp(second) > 0:  # a half that scores all alike ranks nothing
            correlations.append(float(stats.spearmanr(first, second).statistic))
    if len(correlations) < SPLITS // 2:
        return None
    low, median, high = np.percentile(correlations, [2.5, 50, 97.5])
    return float(median), float(low), float(high)


def rank_agreement(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """(Spearman, Kendall tau-b) of two measurements of the same candidates; None when either
    gives every candidate the same score (no ranking to compare)."""
    if np.ptp(np.asarray(a, dtype=float)) == 0 or np.ptp(np.asarray(b, dtype=float)) == 0:
        return None
    return float(stats.spearmanr(a, b).statistic), float(stats.kendalltau(a, b).statistic)


RESAMPLES = 1000  # bootstrap resamples of the candidates for a rank correlation's interval


def bootstrap_agreement(
    a: Sequence[float], b: Sequence[float], seed: int = 0, resamples: int = RESAMPLES
) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
    """((Spearman, low, high), (Kendall tau-b, low, high)) of two measurements of the same
    candidates, each with its 95% percentile bootstrap interval over candidates (resampled
    with replacement; a resample where either side scores all alike ranks nothing and is
    skipped). Pairs with a NaN on either side are dropped first. None when fewer than 3 pairs
    remain, when `rank_agreement` is undefined, or when most resamples are skipped."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return None
    point = rank_agreement(x, y)
    if point is None:
        return None
    rng = np.random.default_rng(seed)
    spearman, kendall = [], []
    for _ in range(resamples):
        pick = rng.integers(0, len(x), len(x))
        found = rank_agreement(x[pick], y[pick])
        if found is not None and all(math.isfinite(v) for v in found):
            spearman.append(found[0])
            kendall.append(found[1])
    if len(spearman) < resamples // 2:
        return None
    tail = (1 - LEVEL) / 2 * 100
    s_low, s_high = np.percentile(spearman, [tail, 100 - tail])
    k_low, k_high = np.percentile(kendall, [tail, 100 - tail])
    return (point[0], float(s_low), float(s_high)), (point[1], float(k_low), float(k_high))
