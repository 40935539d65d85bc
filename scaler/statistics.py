"""How much a measured accuracy can be believed: intervals, ties with the best, and how well a
ranking reproduces itself. Built on scipy.stats; every function takes plain numbers.

* A candidate's top-1 over several repeats (seeds) gets Wilson's interval at the effective
  number of images that the seeds' spread and the shared validation sample's noise amount
  to, with t's quantile; a single run gets the Wilson interval of its validation sample (k of
  n images right).
* "Tied with the best" tests the difference of mean top-1 against two noises added up: the
  validation sample's (each image's correctness, averaged over a candidate's repeats, paired
  with the best candidate's on the same image) and the seed's (each side's spread over its
  repeats; where one side has a single run, the other's stands for both); exact McNemar for
  one run each; tied when p >= 0.05 (two-sided).
* Split-half reliability: the repeats are split into two disjoint halves many ways; each half
  ranks the candidates by its mean; the Spearman correlation of the two rankings, with the
  2.5-97.5% range over the splits; Spearman-Brown predicts from it how two rankings of all
  the repeats would agree.

scipy.stats is imported by the functions that use it: imported with this module, it added
half a second to the start-up of every command and worker process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LEVEL = 0.95  # every interval and test here is at the 95% level
SPLITS = 200  # random splits of the repeats for split-half reliability


def pack_correct(correct: np.ndarray) -> str:
    """Per-image correctness (bools, in validation order) as a compact hex string."""
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack_correct(text: str, count: int) -> np.ndarray:
    """The bools `pack_correct` stored, `count` of them."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:count].astype(bool)


def mean_accuracy(values: Sequence[float], images: int | None = None) -> float:
    """The mean of accuracies such that equal accuracies compare equal (ranks, ties by MACs,
    rank correlations): a float mean of fractions is not exact ((0.05 + 0.1) / 2 gives
    0.07500000000000001, (1/15 + 1/12) / 2 gives 0.075). With `images` (each value is right /
    images), images right over images seen; without, the float mean to 12 places. NaN for none."""
    if not len(values):
        return math.nan
    if images and all(math.isfinite(float(v)) for v in values):
        return sum(round(float(v) * images) for v in values) / (len(values) * images)
    return round(float(np.mean(values)), 12)  # NaN stays NaN


def per_run_noise(table: Sequence[Sequence[float]]) -> tuple[float, int]:
    """(standard deviation, degrees of freedom) of one run's noise, from a table of runs whose
    rows are configurations and columns runs that differ only in seed (searches, say): the
    residuals once each row's and each column's mean is removed, so an offset a whole column
    shares (its data split) is not counted; (rows - 1) x (columns - 1) degrees of freedom,
    NaN where there are none. The same figure for the table's transpose."""
    x = np.asarray(table, dtype=float)
    residual = x - x.mean(axis=0) - x.mean(axis=1, keepdims=True) + x.mean()
    dof = (x.shape[0] - 1) * (x.shape[1] - 1)
    return (math.sqrt(float((residual**2).sum()) / dof) if dof else math.nan), dof


def mean_interval(values: Sequence[float], images: int | None = None) -> tuple[float, float, float, float]:
    """(mean, sample std, low, high) of repeated measurements, low-high the 95% interval of the
    mean: Student's t, or, with `images`, Wilson's at the images the noise amounts to.

    With `images`, the values are accuracies of repeats on the same `images` validation images,
    whose sampling noise does not average out over repeats: its variance, mean x (1 - mean) /
    images, is added to the seeds' variance of the mean (Welch-Satterthwaite degrees of
    freedom), and the interval is Wilson's at the effective number of images that total
    variance amounts to, mean x (1 - mean) / variance, with t's quantile at those degrees of
    freedom in place of the normal's: the design-effect Wilson interval of survey sampling.
    Like Wilson's, it stays in [0, 1] and keeps its skew near the ends, where a symmetric t
    interval reached past them; and, the effective images never exceeding the real ones,
    repeats that agree keep at least one run's Wilson interval at the mean (at 0% or 100%
    exactly that). Without `images` (or with fewer than 1), Student's t, and a constant series has
    zero width. One value gives Wilson's interval at `images` (the only noise one run can
    measure), and NaN bounds without them; no value, or NaN, gives NaN bounds."""
    from scipy import stats

    if images is not None and images < 1:  # no validation sample to speak of
        images = None
    x = np.asarray(values, dtype=float)
    mean = mean_accuracy(x, images)
    if len(x) < 2:
        single = len(x) == 1 and images is not None and math.isfinite(mean)
        return mean, math.nan, *(proportion_interval(round(mean * images), images) if single else (math.nan, math.nan))
    std = float(x.std(ddof=1))
    parts = [(std**2 / len(x), len(x) - 1)]  # (variance of the mean, degrees of freedom)
    if images is None or not math.isfinite(mean):
        low = high = mean
        if std > 0.0:
            low, high = (float(b) for b in stats.t.interval(LEVEL, len(x) - 1, loc=mean, scale=math.sqrt(parts[0][0])))
        return mean, std, low, high
    spread = mean * (1 - mean)  # one image's variance; zero only where every repeat scored 0% or 100%
    if spread == 0.0:
        return mean, std, *proportion_interval(round(mean * images), images)
    variance, dof = _welch([*parts, (spread / images, max(images - 1, 1))])
    low, high = _wilson(mean, spread / variance, float(stats.t.ppf((1 + LEVEL) / 2, dof)))
    return mean, std, max(low, 0.0), min(high, 1.0)


def reaches_chance(top1_low: float | None, classes: int | None) -> str | None:
    """'its top-1 interval reaches 10.0% (one of 10 classes)' where an accuracy's interval
    reaches one in as many as the classes (as if they were equally frequent): it is not told
    from a guess. None where it is above that, or either is unknown."""
    if not classes or top1_low is None or not math.isfinite(top1_low) or top1_low > 1 / classes:
        return None
    return f"its top-1 interval reaches {1 / classes:.1%} (one of {classes} classes)"


def best_reaches_chance(top1: Sequence[float], top1_low: Sequence[float], classes: int | None) -> str | None:
    """`reaches_chance` of the best of several accuracies (the highest top-1, the first of
    equals; unmeasured ones left out): where even the best is not told from a guess, no
    ranking or tie among them says anything. None where none is measured."""
    measured = [(float(t), float(low)) for t, low in zip(top1, top1_low) if math.isfinite(float(t))]
    if not measured:
        return None
    return reaches_chance(max(measured, key=lambda pair: pair[0])[1], classes)


def _wilson(share: float, total: float, z: float) -> tuple[float, float]:
    """Wilson's interval of a share of `total` trials (not necessarily whole) at the quantile
    `z`; with the normal's quantile and whole counts, `proportion_interval`'s."""
    shrink = 1 + z**2 / total
    centre = (share + z**2 / (2 * total)) / shrink
    half = z * math.sqrt(share * (1 - share) / total + z**2 / (4 * total**2)) / shrink
    return centre - half, centre + half


def _welch(parts: Sequence[tuple[float, int]]) -> tuple[float, float]:
    """(variance, degrees of freedom) of a sum of independent variance estimates, each given
    as (variance, its degrees of freedom): Welch-Satterthwaite. NaN degrees when all are 0."""
    variance = sum(v for v, _ in parts)
    weights = sum(v**2 / k for v, k in parts if v > 0)
    return variance, (variance**2 / weights if weights > 0 else math.nan)


def proportion_interval(correct: int, total: int) -> tuple[float, float]:
    """Wilson interval of an accuracy measured on `total` images, `correct` of them right."""
    if total <= 0:
        return math.nan, math.nan
    from scipy import stats

    ci = stats.binomtest(correct, total).proportion_ci(LEVEL, method="wilson")
    return float(ci.low), float(ci.high)


def difference_test(a: Sequence[np.ndarray], b: Sequence[np.ndarray], paired: bool = False) -> tuple[float, float]:
    """(difference, p): a's mean top-1 minus b's, and the two-sided p-value that the two
    configurations have equal expected top-1. Each is a list of per-repeat correctness arrays
    over the same validation images.

    Two noises are added up, because a configuration is better only if it would stay better
    on other images and other seeds: the validation sample's (the per-image differences of
    the repeat-averaged correctness, as in a paired t-test over images) and the seed's (each
    side's variance of top-1 over its repeats; with `paired`, where a[r] and b[r] were trained
    with the same seed, the variance of their differences). The sum is tested with Student's
    t on Welch-Satterthwaite degrees of freedom. With one run on a side and more on the other,
    the other side's variance over its repeats stands for the seed noise of a run on both (it
    was left out: one run 4.6 points below a best of 3 runs at 47, 63 and 71% on 1,000 images
    read p = 6e-11, now 0.77). With one run each the seed's noise cannot be measured: exact McNemar on the
    images alone, which may call a difference that another seed would undo."""
    from scipy import stats

    runs_a, runs_b = np.stack(a).astype(float), np.stack(b).astype(float)  # (repeats, images)
    per_image = runs_a.mean(axis=0) - runs_b.mean(axis=0)
    difference = float(per_image.mean())
    if len(runs_a) == 1 and len(runs_b) == 1:  # exact McNemar: only discordant images carry information
        only_a = int(np.sum(per_image == 1))
        only_b = int(np.sum(per_image == -1))
        p = 1.0 if only_a + only_b == 0 else float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
        return difference, p
    parts = [(float(per_image.var(ddof=1)) / len(per_image), len(per_image) - 1)]  # (variance of the mean, dof)
    if paired and len(runs_a) == len(runs_b) >= 2:
        seed = runs_a.mean(axis=1) - runs_b.mean(axis=1)
        parts.append((float(seed.var(ddof=1)) / len(seed), len(seed) - 1))
    elif len(runs_a) >= 2 and len(runs_b) >= 2:
        parts += [(float(top1.var(ddof=1)) / len(top1), len(top1) - 1) for top1 in (runs_a.mean(axis=1), runs_b.mean(axis=1))]
    else:  # one run on one side (its other repeats pruned, timed out or diverged): the other side's spread stands for both
        many = runs_a if len(runs_a) >= 2 else runs_b
        parts.append((float(many.mean(axis=1).var(ddof=1)) * (1 / len(runs_a) + 1 / len(runs_b)), len(many) - 1))
    variance, dof = _welch(parts)
    if variance <= 1e-18:  # every image and every seed says the same
        return difference, 1.0 if abs(difference) <= 1e-12 else 0.0
    return difference, float(2 * stats.t.sf(abs(difference) / math.sqrt(variance), dof))


def split_half_reliability(scores: Sequence[Sequence[float]], seed: int = 0) -> tuple[float, float, float] | None:
    """(median, low, high) Spearman correlation between the candidate rankings of two disjoint
    halves of the repeats, over random splits (low and high: the 2.5 and 97.5 percentiles);
    None with fewer than 3 candidates of 2 or more repeats, or when most splits leave a half
    that scores every candidate alike (undefined). A split whose half scores all alike ranks
    nothing and counts as no agreement (0), as in `bootstrap_agreement`: skipping it kept only
    the other splits, whose halves can disagree by construction (with 2 repeats, where one
    repeat scored every candidate alike, the halves left mix the two repeats, and each
    candidate's other value lies in the other half: every one below 0). `scores[c]` holds
    candidate c's per-repeat top-1."""
    usable = [np.asarray(s, dtype=float) for s in scores if len(s) >= 2]
    if len(usable) < 3:
        return None
    from scipy import stats

    rng = np.random.default_rng(seed)
    correlations, degenerate = [], 0
    for _ in range(SPLITS):
        first, second = [], []
        for s in usable:
            order = rng.permutation(len(s))
            half = len(s) // 2
            first.append(mean_accuracy(s[order[:half]]))
            second.append(mean_accuracy(s[order[half : 2 * half]]))
        if np.ptp(first) > 0 and np.ptp(second) > 0:
            correlations.append(float(stats.spearmanr(first, second).statistic))
        else:  # a half that scores all alike ranks nothing
            correlations.append(0.0)
            degenerate += 1
    if degenerate > SPLITS // 2:
        return None
    low, median, high = np.percentile(correlations, [2.5, 50, 97.5])
    return float(median), float(low), float(high)


def spearman_brown(split_half: float, repeats: int) -> float | None:
    """The agreement of two rankings of all `repeats` predicted from `split_half_reliability`'s
    figure, whose halves hold repeats // 2 each (Spearman-Brown: k r / (1 + (k - 1) r), k the
    whole over a half): a half of the repeats ranks less reliably than all of them. None
    where the halves do not agree at all (r <= 0)."""
    if not split_half > 0:
        return None
    k = repeats / max(1, repeats // 2)
    return k * split_half / (1 + (k - 1) * split_half)


def rank_agreement(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """(Spearman, Kendall tau-b) of two measurements of the same candidates; None when either
    gives every candidate the same score (no ranking to compare)."""
    if np.ptp(np.asarray(a, dtype=float)) == 0 or np.ptp(np.asarray(b, dtype=float)) == 0:
        return None
    from scipy import stats

    return float(stats.spearmanr(a, b).statistic), float(stats.kendalltau(a, b).statistic)


RESAMPLES = 1000  # bootstrap resamples of the candidates for a rank correlation's interval


def bootstrap_agreement(
    a: Sequence[float], b: Sequence[float], seed: int = 0, resamples: int = RESAMPLES
) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
    """((Spearman, low, high), (Kendall tau-b, low, high)) of two measurements of the same
    candidates, each with its 95% percentile bootstrap interval over candidates (resampled
    with replacement). A resample where either side scores all alike ranks nothing: it counts
    as no agreement (0). Skipping those would bias the interval upward on tied scores (they
    are the resamples that disagree), up to a lower bound above 0 where a permutation test
    finds nothing. Pairs with a NaN on either side are dropped first. None when fewer than 3
    pairs remain or when `rank_agreement` is undefined.

    Not scipy.stats.bootstrap: with 3-6 candidates many resamples score one side all alike,
    and there one undefined resample makes its whole interval NaN."""
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
        if found is None or not all(math.isfinite(v) for v in found):
            found = (0.0, 0.0)
        spearman.append(found[0])
        kendall.append(found[1])
    tail = (1 - LEVEL) / 2 * 100
    s_low, s_high = np.percentile(spearman, [tail, 100 - tail])
    k_low, k_high = np.percentile(kendall, [tail, 100 - tail])
    return (point[0], float(s_low), float(s_high)), (point[1], float(k_low), float(k_high))


def agreement_p_value(a: Sequence[float], b: Sequence[float], seed: int = 0) -> float | None:
    """One-sided p-value of Spearman's rho between two measurements of the same candidates,
    were they unrelated: the share of the pairings of `a` with `b` whose rho reaches the one
    observed (scipy.stats.permutation_test: every pairing up to 7 candidates, 9,999 drawn
    ones above). The bootstrap interval cannot tell chance agreement: 6 candidates ranked
    alike resample to [1.00, 1.00] and 3 to [0.00, 1.00], where chance ranks them alike in
    1 pairing of 720 and 1 of 6.
    Pairs with a NaN are dropped; None as for `bootstrap_agreement`."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or rank_agreement(x, y) is None:
        return None
    # Spearman's rho is Pearson's r of the ranks: pairing x's ranks anew is pairing x anew, and
    # r of many pairings at once is a few array operations (a study rewrites this per item).
    ranks = stats.rankdata(x) - (len(x) + 1) / 2
    centred = stats.rankdata(y) - (len(y) + 1) / 2

    def rho(shuffled: np.ndarray, axis: int = -1) -> np.ndarray:
        return (shuffled * centred).sum(axis=axis) / np.sqrt((shuffled**2).sum(axis=axis) * (centred**2).sum())

    result = stats.permutation_test((ranks,), rho, permutation_type="pairings", alternative="greater", vectorized=True, rng=seed)
    return float(result.pvalue)
