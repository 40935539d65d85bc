"""Repeated trainings, intervals, ties and ranking reliability: the statistics on constructed
data whose answer is known, then micro searches with --repeats (kills, raising the count).
Two real searches compared: tests/test_report_compare.py."""

from __future__ import annotations

import itertools
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats

from scaler.cli.app import Format
from scaler.cli.render import interval
from scaler.cli.train import _show_repeats
from scaler.cli.results import reliability_lines
from scaler.experiments.repeats import aggregate
from scaler.experiments.search import RESULT_COLUMNS, CompoundSearch, SearchConfig, _tied_with_best, rank, survivors_note
from scaler.states import State
from scaler.study.experiment import Record, WorkItem
from scaler.reports import compare_searches
from scaler.statistics import (
    difference_test,
    mean_accuracy,
    mean_interval,
    per_run_noise,
    pack_correct,
    proportion_interval,
    rank_agreement,
    split_half_reliability,
    unpack_correct,
)
from scaler.training import EpochMetrics, TrainResult, repeat_seed
from tests.conftest import TINY_BASE

SCALER = str(Path(sys.executable).parent / "scaler")
# 3 candidates on a tiny proxy, 2 epochs each.
MICRO = [
    "--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1", "--gamma-range", "1.1", "--tolerance", "0.56",
    "--base-resolution", "32", "--base-width", "1", "--base", TINY_BASE, "--train-images", "64", "--val-images", "40",
    "--batch-size", "16", "--epochs", "2", "--threads", "1", "--device", "cpu", "--quiet",
]  # fmt: skip


def search_args(root: Path, *extra: str, name: str = "rep") -> list[str]:
    return ["search", *MICRO, "--root", str(root), "--name", name, *extra]


def complete_trials(folder: Path) -> dict[tuple[int, int], int]:
    """How many COMPLETE trials each (candidate, repeat) has in the search's journal."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "study.journal")))
    try:
        study = optuna.load_study(study_name=folder.name, storage=storage)
    except KeyError:  # the journal exists, the study is not in it yet
        return {}
    counts: dict[tuple[int, int], int] = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        key = (t.params["candidate"], t.params.get("repeat", 0))
        counts[key] = counts.get(key, 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------
# The statistics, on constructed data


def test_identical_per_image_outcomes_are_tied():
    rng = np.random.default_rng(0)
    runs = [rng.random(500) < 0.4 for _ in range(3)]
    assert difference_test(runs, [r.copy() for r in runs]) == (0.0, 1.0)
    assert difference_test(runs, [r.copy() for r in runs], paired=True) == (0.0, 1.0)
    assert difference_test(runs[:1], [runs[0].copy()]) == (0.0, 1.0)  # one run each: McNemar with no discordant image


def test_candidates_far_apart_are_not_tied_and_close_ones_are():
    rng = np.random.default_rng(1)
    weak = [rng.random(500) < 0.2 for _ in range(3)]
    strong = [rng.random(500) < 0.6 for _ in range(3)]
    assert difference_test(strong, weak)[1] < 0.05 and difference_test(strong[:1], weak[:1])[1] < 1e-6
    assert difference_test(strong, weak)[0] == pytest.approx(np.mean(strong) - np.mean(weak))
    nearly = [w.copy() for w in weak]
    for n in nearly:
        n[:2] = ~n[:2]  # two images of 500 differ
    assert difference_test(weak, nearly)[1] >= 0.05


def test_one_run_against_several_takes_the_seed_noise_the_several_measure():
    """A candidate with one counted run (its other repeats pruned or diverged) against a best
    of three spread over 24 points: the per-image noise alone called a run 4.6 points lower
    different (p = 6e-11 on these images), as if seeds did not move a run 12 points."""
    images = 1000
    best = [np.arange(images) < k for k in (470, 630, 710)]  # 47, 63 and 71%: seeds 12 points apart
    one = [np.arange(images) < 557]  # 4.6 points under the best's mean
    difference, p = difference_test(best, one)
    assert difference == pytest.approx((0.47 + 0.63 + 0.71) / 3 - 0.557)
    seed = np.var([0.47, 0.63, 0.71], ddof=1) * (1 / 3 + 1)  # the best's per-run variance, for both sides
    per_image = (np.mean(best, axis=0) - one[0]).var(ddof=1) / images
    variance, dof = seed + per_image, (seed + per_image) ** 2 / (seed**2 / 2 + per_image**2 / (images - 1))
    assert p == pytest.approx(2 * stats.t.sf(difference / np.sqrt(variance), dof)) and p > 0.5  # tied: seeds alone move 12 points
    assert difference_test(one, best) == pytest.approx((-difference, p))  # either side may hold the one run


def test_a_constant_gap_over_two_seeds_is_not_certainty():
    # two seeds, each one point apart on 200 images: the seeds agree exactly, but 2 of 200
    # images are no evidence; the old paired t-test over repeats returned p = 0 here
    base = [np.arange(200) < 100, np.arange(200) < 120]
    ahead = [b.copy() for b in base]
    for run in ahead:
        run[150:152] = True
    difference, p = difference_test(ahead, base, paired=True)
    assert difference == pytest.approx(0.01) and p > 0.05


def wilson(share: float, total: float, z: float) -> tuple[float, float]:
    """Wilson's interval, written out (Wilson 1927): the centre and half-width at quantile z."""
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return centre - half, centre + half


def test_interval_of_a_constant_series_has_zero_width_and_others_cover_the_mean():
    assert mean_interval([0.3, 0.3, 0.3]) == (0.3, 0.0, 0.3, 0.3)
    mean, std, low, high = mean_interval([0.2, 0.3, 0.4])
    assert mean == pytest.approx(0.3) and std == pytest.approx(0.1)
    assert low == pytest.approx(0.3 - 4.302653 * 0.1 / 3**0.5, abs=1e-5) and high > mean
    # repeats on the same 64 validation images that agree exactly: the images' noise remains,
    # as Wilson's interval at 64 images with t's quantile at 63 degrees of freedom (1.9983)
    mean, std, low, high = mean_interval([0.25, 0.25], images=64)
    one_run = proportion_interval(16, 64)
    assert wilson(0.25, 64, stats.norm.ppf(0.975)) == pytest.approx(one_run)  # the formula is scipy's
    assert std == 0.0 and low < one_run[0] and high > one_run[1]  # never narrower than one run's
    assert (low, high) == pytest.approx(wilson(0.25, 64, 1.9983), abs=1e-4)
    # at 100% (or 0%) the images' variance mean x (1 - mean) / images is zero: one run's Wilson interval stays
    assert mean_interval([1.0, 1.0], images=60) == (1.0, 0.0, *proportion_interval(60, 60)) and proportion_interval(60, 60)[0] < 0.95
    assert mean_interval([0.0, 0.0], images=60)[2:] == proportion_interval(0, 60)
    # seeds that disagree: their variance of the mean and the images' add up (Welch-Satterthwaite
    # degrees of freedom), and Wilson's interval is taken at the images that total amounts to
    both = 0.1**2 / 3 + 0.3 * 0.7 / 1000
    dof = both**2 / ((0.1**2 / 3) ** 2 / 2 + (0.3 * 0.7 / 1000) ** 2 / 999)
    assert mean_interval([0.2, 0.3, 0.4], images=1000)[2:] == pytest.approx(wilson(0.3, 0.3 * 0.7 / both, stats.t.ppf(0.975, dof)))
    single = mean_interval([0.5])
    assert single[0] == 0.5 and np.isnan(single[2])
    # one run on 64 images: Wilson's interval of 32/64, the noise one run measures; not a number, none
    assert mean_interval([0.5], images=64) == (0.5, pytest.approx(math.nan, nan_ok=True), *proportion_interval(32, 64))
    assert all(math.isnan(v) for v in mean_interval([math.nan], images=64)[1:] + mean_interval([], images=64)[1:])
    assert mean_interval([0.5, 0.6], images=0) == mean_interval([0.5, 0.6])  # no images: the seeds' t interval alone
    # never narrower than one run's Wilson interval at the mean, for every count of 2 and 3
    # repeats on 1-12 images (the effective images never exceed the real ones, t >= z)
    for images in range(1, 13):
        for counts in itertools.combinations_with_replacement(range(images + 1), 3):
            for runs in (counts[:2], counts):
                low, high = mean_interval([k / images for k in runs], images=images)[2:]
                wilson_low, wilson_high = wilson(sum(runs) / len(runs) / images, images, stats.norm.ppf(0.975))
                assert low <= wilson_low + 1e-12 and high >= wilson_high - 1e-12 and 0.0 <= low <= high <= 1.0, (images, runs)
    # near 0%, where few images are right, the interval keeps Wilson's skew: 4, 3 and 3 of 32
    # right reached 0.0% as a symmetric t interval, and 3 of 32 in one run gives 3.2-24.2%
    low, high = mean_interval([4 / 32, 3 / 32, 3 / 32], images=32)[2:]
    assert low == pytest.approx(0.0359, abs=1e-3) and high == pytest.approx(0.2661, abs=1e-3)
    # two accuracies far apart, 1 degree of freedom: wide, and still inside [0%, 100%]
    low, high = mean_interval([0.90, 0.97], images=1000)[2:]
    assert 0.0 < low < 0.5 and 0.97 < high < 1.0
    low, high = proportion_interval(50, 500)  # Wilson, 10% of 500 images
    assert low == pytest.approx(0.0767, abs=1e-3) and high == pytest.approx(0.1294, abs=1e-3)


def test_a_ranking_compared_with_itself_agrees_perfectly():
    scores = [0.1, 0.5, 0.3, 0.9, 0.7]
    assert rank_agreement(scores, scores) == pytest.approx((1.0, 1.0))
    separated = [[0.1 * c + 0.001 * r for r in range(4)] for c in range(6)]  # noise far below the gaps
    assert split_half_reliability(separated) == pytest.approx((1.0, 1.0, 1.0))
    noise = np.random.default_rng(2).random((6, 4)).tolist()  # no signal at all
    median, low, high = split_half_reliability(noise)
    assert abs(median) < 0.5 and low < median < high and high - low > 0.5  # near zero, and the splits disagree widely
    assert split_half_reliability([[0.1], [0.2], [0.3]]) is None  # one repeat each
    # 2 repeats, the first scoring all four alike: a split whose half is that repeat ranks
    # nothing and counts 0; skipped, it left only the mixed halves, which disagree by
    # construction (each candidate's other value sits in the other half), every one below 0
    one_flat = [[0.094, 0.2], [0.094, 0.3], [0.094, 0.1], [0.094, 0.4]]
    median, low, high = split_half_reliability(one_flat)
    assert low < median < 0.0 and high == 0.0
    assert split_half_reliability([[0.094, 0.094]] * 4) is None  # every split ranks nothing: undefined


def test_correctness_round_trips_and_seeds_are_independent_but_reproducible():
    bits = np.random.default_rng(3).random(501) < 0.5
    assert (unpack_correct(pack_correct(bits), 501) == bits).all()
    seeds = {repeat_seed(0, c, r) for c in range(5) for r in range(1, 4)}
    assert len(seeds) == 15 and repeat_seed(7, 2, 0) == 7
    # the same in every process (a resumed search trains its missing repeats under the seeds it began with)
    assert (repeat_seed(0, 1, 1), repeat_seed(3, 0, 1), repeat_seed(0, 1, 2)) == (1122056301, 812268359, 1855805557)


# ---------------------------------------------------------------------------------------------
# Micro searches with repeats


def test_repeats_give_intervals_ties_and_reliability(cli, tmp_path):
    result = cli(*search_args(tmp_path, "--repeats", "3"))
    assert result.code == 0, result.err
    folder = tmp_path / "rep"
    frame = pd.read_csv(folder / "results.csv")
    assert list(frame.columns) == RESULT_COLUMNS
    assert len(frame) == 3 and (frame["repeats"] == 3).all() and set(frame["state"]) == {"complete"}
    assert complete_trials(folder) == {(c, r): 1 for c in range(3) for r in range(3)}
    assert ((frame["top1_low"] <= frame["top1"]) & (frame["top1"] <= frame["top1_high"])).all()
    assert frame["tied_with_best"].iloc[0]  # the best is tied with itself
    info = json.loads((folder / "search.json").read_text())
    assert info["repeats"] == 3 and info["tied_best"][0] == frame["candidate"].iloc[0]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "study.journal")))
    trials = optuna.load_study(study_name="rep", storage=storage).trials
    scores = [[t.user_attrs["top1"] for t in trials if t.params["candidate"] == c] for c in range(3)]
    expected = split_half_reliability(scores, seed=0)  # None when the halves score all alike
    assert info["reliability"] == (None if expected is None else dict(zip(("spearman", "low", "high"), expected)))
    seeds = {t.user_attrs["seed"] for t in trials}
    assert len(seeds) == 7  # repeat 0 shares the search seed; the 6 others are distinct
    runs = {c: [unpack_correct(t.user_attrs["val_correct"], t.user_attrs["val_images"]) for t in trials if t.params["candidate"] == c]
            for c in range(3)}  # fmt: skip
    best = int(frame["candidate"].iloc[0])
    for _, row in frame.iloc[1:].iterrows():  # tied exactly where the seeds and images leave the difference untested at 5%
        assert bool(row["tied_with_best"]) == (difference_test(runs[best], runs[int(row["candidate"])])[1] >= 0.05)
    words = "ranking reliability (split-half Spearman over 3 repeats)" if expected else "ranking reliability: undefined"
    assert words in " ".join(result.out.split())  # the caption under the table says which


def test_raising_repeats_trains_only_the_missing_ones(cli, tmp_path):
    assert cli(*search_args(tmp_path, "--repeats", "2")).code == 0
    folder = tmp_path / "rep"
    before = pd.read_csv(folder / "results.csv")
    assert complete_trials(folder) == {(c, r): 1 for c in range(3) for r in range(2)}
    result = cli(*search_args(tmp_path, "--repeats", "3"))
    assert result.code == 0, result.err
    assert "6 already finished, 3 to train" in result.err
    assert complete_trials(folder) == {(c, r): 1 for c in range(3) for r in range(3)}
    fewer = cli(*search_args(tmp_path))  # asking for fewer keeps them all: nothing trained
    assert fewer.code == 0 and "9 already finished, 0 to train" in fewer.err
    assert (pd.read_csv(folder / "results.csv")["repeats"] == 3).all() and len(before) == 3


def test_sigkill_mid_repeat_then_resume_trains_each_repeat_once(tmp_path):
    args = search_args(tmp_path, "--repeats", "2", name="killed")
    args[args.index("--epochs") + 1] = "40"  # about 2 s per training: the kill lands between 2 and 5 of 6, however late a look comes
    folder = tmp_path / "killed"
    process = subprocess.Popen([SCALER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if (folder / "study.journal").exists() and 2 <= sum(complete_trials(folder).values()) < 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = complete_trials(folder)
    assert 2 <= sum(done_before.values()) < 6
    result = subprocess.run([SCALER, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert complete_trials(folder) == {(c, r): 1 for c in range(3) for r in range(2)}


def test_comparison_of_constructed_searches():
    def frame(top1: list[float], tied: list[bool]) -> pd.DataFrame:
        rows = pd.DataFrame({"alpha": [1.0, 1.2, 1.4, 1.6], "beta": 1.0, "gamma": 1.1, "resolution": 36,
                             "depth_mult": [1.0, 1.2, 1.4, 1.6], "width_mult": 0.5, "params": [1000, 1100, 1200, 1300], "top1": top1,
                             "top1_low": 0.0, "top1_high": 1.0, "state": "complete", "tied_with_best": tied})  # fmt: skip
        rows = rows.sort_values("top1", ascending=False).reset_index(drop=True)
        rows.insert(0, "rank", range(1, 5))
        return rows

    a = frame([0.5, 0.4, 0.3, 0.2], [True, False, False, False])
    same = compare_searches(a, a)
    assert same.spearman[0] == pytest.approx(1.0) and same.kendall[0] == pytest.approx(1.0) and same.shared == 4
    assert same.spearman_p == pytest.approx(1 / 24)  # 4 candidates in order: one pairing in 24
    reversed_ = compare_searches(a, frame([0.2, 0.3, 0.4, 0.5], [False, False, False, True]))
    assert reversed_.spearman[0] == pytest.approx(-1.0) and reversed_.spearman_p == pytest.approx(1.0)
    assert reversed_.spearman[1] <= -1 + 1e-9 and reversed_.spearman[2] == pytest.approx(-1.0)
    assert reversed_.best_lines[0] == "best of A: (1, 1, 1.1) is rank 4 in B, not tied with its best there"
    flat = compare_searches(a, frame([0.1, 0.1, 0.1, 0.1], [True] * 4))
    assert flat.spearman is None and flat.spearman_p is None
    capped = frame([0.2, 0.3, 0.4, 0.5], [False, False, False, True]).assign(state=["complete", "complete", "complete", "timeout"])
    differences = compare_searches(a, capped).frame.set_index("alpha")["difference"]  # a shorter training's top-1 is no match
    assert differences.isna().tolist() == [True, False, False, False] and differences[1.2] == pytest.approx(-0.1)
    # equal top-1s: the rank columns order them by MACs, the correlations count ties, and a line says so
    from scaler.cli.report import _ties_line
    tied = compare_searches(frame([0.5, 0.5, 0.3, 0.2], [True, True, False, False]), a)
    assert tied.frame["rank_a"].tolist() == tied.frame["rank_b"].tolist() == [1, 2, 3, 4] and tied.spearman[0] < 1
    assert _ties_line(tied.frame) == ["equal top-1s (A 2 candidates share one with another): the rank columns order them by MACs, "
                                      "the correlations count them as ties"]
    assert _ties_line(same.frame) == []
    # the table on the terminal names each side's state once a row is not complete
    from scaler.cli.report import COMPARE_COLUMNS, shown_compare_columns
    assert shown_compare_columns(same.frame) == COMPARE_COLUMNS
    headers = [c.header for c in shown_compare_columns(compare_searches(a, capped).frame)]
    assert headers[headers.index("95% A") + 1] == "state A" and headers[headers.index("95% B") + 1] == "state B"


def test_train_with_repeats_reports_mean_and_spread(cli):
    result = cli("train", "b0", "--width", "0.25", "--depth", "0.25", "--resolution", "32", "--train-images", "48",
                 "--val-images", "20", "--epochs", "1", "--batch-size", "16", "--threads", "1", "--repeats", "3", "--format", "json")  # fmt: skip
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert len(data["runs"]) == 3 and data["repeats"] == 3
    assert [r["seed"] for r in data["runs"]][0] == 0 and len({r["seed"] for r in data["runs"]}) == 3
    top1 = [r["top1"] for r in data["runs"]]
    assert data["top1_mean"] == pytest.approx(np.mean(top1)) and data["top1_std"] == pytest.approx(np.std(top1, ddof=1))


def record(candidate: int, repeat: int, state: str, top1: float | None, **attrs) -> Record:
    return Record(WorkItem.of(candidate=candidate, repeat=repeat), State(state), attrs.pop("reason", ""),
                  {"top1": top1, "epochs": 3, **attrs} if top1 is not None else {})  # fmt: skip


def test_a_pruned_repeat_never_enters_a_complete_candidates_mean():
    row = aggregate([
        record(0, 0, "complete", 0.8), record(0, 1, "complete", 0.6),
        record(0, 2, "pruned", 0.1, reason="pruned after epoch 1"),
    ])  # fmt: skip
    assert row["state"] == "complete" and row["top1"] == pytest.approx(0.7) and row["repeats"] == 2
    assert row["reason"] == "1 of 3 repeats pruned (pruned after epoch 1)"
    twice = aggregate([record(0, 0, "complete", 0.8), *(record(0, r, "pruned", 0.1, reason=f"pruned after epoch {r}") for r in (1, 2))])
    assert twice["reason"] == "2 of 3 repeats pruned (pruned after epoch 1, pruned after epoch 2)"  # each, not the first alone
    only_pruned = aggregate([record(1, 0, "pruned", 0.2, reason="pruned after epoch 1"), record(1, 1, "pruned", 0.4, reason="pruned after epoch 2")])
    assert only_pruned["state"] == "pruned" and only_pruned["top1"] == pytest.approx(0.3) and only_pruned["repeats"] == 2
    # where each repeat stopped, as one run's row says it (the reason was empty with two or more)
    assert only_pruned["reason"] == "2 of 2 repeats pruned (pruned after epoch 1, pruned after epoch 2)"
    timed_out = aggregate([record(2, 0, "timeout", 0.3, reason="time limit reached at epoch 2 step 1"), record(2, 1, "failed", None, reason="diverged: loss nan")])
    assert timed_out["reason"] == "1 of 2 repeats timed out (time limit reached at epoch 2 step 1); 1 of 2 repeats failed (diverged: loss nan)"


def test_equal_accuracies_over_repeats_are_equal_and_rank_by_macs():
    """9 of 120 images right over two repeats of 60 is 7.5% however the repeats split them:
    the means compare equal, so the cheaper network ranks first (a float mean of 0.05 and
    0.1 is 0.07500000000000001, of 4/60 and 5/60 0.075)."""
    assert np.mean([3 / 60, 6 / 60]) != np.mean([4 / 60, 5 / 60])  # what the mean of fractions does
    costly = aggregate([record(0, 0, "complete", 3 / 60, val_images=60), record(0, 1, "complete", 6 / 60, val_images=60)])
    cheap = aggregate([record(1, 0, "complete", 4 / 60, val_images=60), record(1, 1, "complete", 5 / 60, val_images=60)])
    assert costly["top1"] == cheap["top1"] == 0.075
    frame = pd.DataFrame([{"candidate": 0, "macs": 2000, **costly}, {"candidate": 1, "macs": 1000, **cheap}])
    assert rank(frame)["candidate"].tolist() == [1, 0]
    # the same mean wherever repeats are averaged: `scaler train --repeats`, the split halves
    assert mean_interval([3 / 60, 6 / 60], images=60)[0] == mean_interval([4 / 60, 5 / 60], images=60)[0] == 0.075
    assert mean_accuracy(np.array([3 / 60, 6 / 60])) == mean_accuracy(np.array([4 / 60, 5 / 60]))  # sample size unknown
    assert math.isnan(mean_accuracy([0.5, math.nan], images=60)) and math.isnan(mean_accuracy([]))


def test_per_run_noise_is_the_residual_spread_after_row_and_column_means():
    # two configurations x two seeds: every residual is +-(d0 - d1) / 4, one degree of freedom,
    # so the noise is |d0 - d1| / 2, d being the configurations' difference on one seed
    assert per_run_noise([[0.5, 0.6], [0.7, 0.9]]) == (pytest.approx(0.05), 1)
    shifted = np.array([[0.5, 0.6, 0.55], [0.7, 0.9, 0.8], [0.4, 0.42, 0.47]])
    assert per_run_noise(shifted + [[0.0, 0.3, -0.1]])[0] == pytest.approx(per_run_noise(shifted)[0])  # a seed's offset
    assert per_run_noise(shifted.T)[0] == pytest.approx(per_run_noise(shifted)[0]) and per_run_noise(shifted)[1] == 4
    assert math.isnan(per_run_noise([[0.5, 0.6]])[0])


def test_a_single_run_without_its_sample_size_has_no_interval():
    row = aggregate([record(0, 0, "complete", 0.5)])  # a run from before val_images was stored
    assert np.isnan(row["top1_low"]) and np.isnan(row["top1_high"])
    known = aggregate([record(0, 0, "complete", 0.1, val_images=500)])
    assert known["top1_low"] == pytest.approx(0.0767, abs=1e-3)


def test_ties_are_unknown_without_per_image_results_and_reliability_undefined_when_flat():
    frame = pd.DataFrame({"candidate": [0, 1], "state": ["complete", "complete"]})
    groups = {0: [record(0, 0, "complete", 0.5)], 1: [record(1, 0, "complete", 0.4)]}
    assert _tied_with_best(frame, groups) == [None, None]
    assert split_half_reliability([[0.1, 0.1], [0.1, 0.1], [0.1, 0.1]]) is None


def _runs(candidate: int, shares: list[float], state: str = "complete", images: int = 2000) -> list[Record]:
    """Repeats of one candidate, repeat r right on a random share shares[r] of the images."""
    rng = np.random.default_rng(candidate)
    out = []
    for r, share in enumerate(shares):
        correct = rng.random(images) < share
        out.append(record(candidate, r, state, float(correct.mean()), val_correct=pack_correct(correct), val_images=images))
    return out


def test_a_tie_with_the_best_counts_seed_noise_and_skips_rows_of_fewer_epochs():
    groups = {
        0: _runs(0, [0.62, 0.58, 0.60]),  # the best, steady over seeds
        1: _runs(1, [0.40, 0.80, 0.45]),  # 5 points behind on average, but all over the place
        2: _runs(2, [0.50, 0.51, 0.49]),  # 10 points behind on every seed
        3: _runs(3, [0.59], state="pruned"),  # its top-1 comes from fewer epochs
    }
    frame = pd.DataFrame({"candidate": [0, 1, 2, 3], "state": ["complete"] * 3 + ["pruned"]})
    assert _tied_with_best(frame, groups) == [True, True, False, None]
    # on the images alone (one repeat each), candidate 1's first seed is far behind the best's
    one = {c: runs[:1] for c, runs in groups.items()}
    assert _tied_with_best(frame, one)[:3] == [True, False, False]


def test_reliability_ranks_only_complete_candidates():
    records = [record(c, r, "complete", top1) for c, tops in enumerate([[0.5, 0.52], [0.6, 0.58], [0.7, 0.71]]) for r, top1 in enumerate(tops)]
    records += [record(3, 0, "pruned", 0.1), record(3, 1, "pruned", 0.9)]  # partial accuracies of fewer epochs
    frame = pd.DataFrame({"candidate": [2, 1, 0, 3], "state": ["complete"] * 3 + ["pruned"], "tied_with_best": [True, False, False, None]})
    summary = CompoundSearch(SearchConfig(), [], repeats=2).summary(frame, records)
    expected = split_half_reliability([[0.5, 0.52], [0.6, 0.58], [0.7, 0.71]], seed=SearchConfig().train.seed)
    assert summary["reliability"] == dict(zip(("spearman", "low", "high"), expected))


def test_complete_candidates_with_pruned_repeats_are_said_to_rank_on_their_survivors():
    """With --pruner and --repeats, a candidate with a repeat pruned ranks on those that passed
    every cut (a pruned repeat's partial top-1 is not comparable): its mean leaves out a seed
    that fell below one and may read high. The summary names such candidates; the table says so."""
    records = [record(0, 0, "complete", 0.125), record(0, 1, "pruned", 0.05), record(1, 0, "complete", 0.11),
               record(1, 1, "complete", 0.10), record(2, 0, "pruned", 0.05), record(2, 1, "pruned", 0.06)]
    frame = pd.DataFrame({"candidate": [0, 1, 2], "state": ["complete", "complete", "pruned"], "tied_with_best": [True, True, None]})
    summary = json.loads(json.dumps(CompoundSearch(SearchConfig(), [], repeats=2).summary(frame, records)))
    assert summary["pruned_repeats"] == [0]  # not 2: pruned on every repeat, it ranks as pruned
    said = ("1 complete candidate(s) (#0) had repeats pruned: their mean is over the repeats that passed every cut, leaving "
            "out a seed that fell below one, so it may read high")
    best = {**summary, "best": {"candidate": 0}}
    assert reliability_lines(best)[0] == f"{said}; the best is one of them; a search without --pruner trains every repeat to its end"
    assert reliability_lines({**best, "best": {"candidate": 1}})[0] == f"{said}; a search without --pruner trains every repeat to its end"
    assert not any("pruned" in line for line in reliability_lines({**best, "pruned_repeats": []}))
    # --from's note speaks of the best alone (another search's numbers mean nothing there)
    assert survivors_note(best, best_only=True) == ("its best candidate had repeats pruned: its mean is over the repeats that "
                                                   "passed every cut, leaving out a seed that fell below one, so it may read "
                                                   "high; a search without --pruner trains every repeat to its end")
    assert survivors_note({**best, "best": {"candidate": 1}}, best_only=True) is None


def test_a_worker_takes_up_repeats_raised_after_it_joined():
    search = CompoundSearch(SearchConfig(), [], repeats=2)
    search.refresh({"scaler_repeats": 3})
    assert search.repeats == 3
    search.refresh({"scaler_repeats": 1})  # never fewer
    assert search.repeats == 3


def test_train_repeats_with_one_completed_run_print_no_spread(capsys):
    epoch = EpochMetrics(epoch=1, train_loss=1.0, top1=0.25, top5=None, val_loss=1.0, images_per_s=1.0, seconds=1.0,
                         peak_memory_mb=0.0)
    runs = [TrainResult(State.COMPLETE, "", (epoch,), "cpu", 1.0, 1.0), TrainResult(State.DIVERGED, "loss nan", (), "cpu", 1.0, 1.0)]
    _show_repeats(runs, [0, 1], 32, Format.table, "t", "c")
    out = capsys.readouterr().out
    low, high = proportion_interval(8, 32)  # its top-1 over the validation images, as the JSON and CSV have it
    assert (f"1 of 2 runs completed (top-1 25.0%, 95% interval {interval(low, high)} over its 32 validation images): no spread "
            "over seeds") in " ".join(out.split()) and "nan" not in out


def test_finished_repeats_stay_visible_while_others_wait():
    # Raising --repeats, or a kill mid-search, must not blank a candidate's row: it shows the
    # mean of the repeats finished so far, and stays unfinished (ranked after complete rows,
    # never tested for ties).
    row = aggregate([
        record(0, 0, "complete", 0.8, val_images=100), record(0, 1, "complete", 0.6, val_images=100),
        record(0, 2, "queued", None),
    ])  # fmt: skip
    assert row["state"] == "queued" and row["repeats"] == 2 and row["top1"] == pytest.approx(0.7)
    running = aggregate([record(1, 0, "running", None), record(1, 1, "pruned", 0.3), record(1, 2, "complete", 0.5)])
    assert running["state"] == "running" and running["repeats"] == 1 and running["top1"] == pytest.approx(0.5)
    assert aggregate([record(2, 0, "queued", None)])["repeats"] == 0
    frame = pd.DataFrame({"candidate": [0, 1], "state": ["complete", "queued"]})
    groups = {0: _runs(0, [0.9, 0.8]), 1: _runs(1, [0.3, 0.3])[:1] + [record(1, 1, "queued", None)]}
    assert _tied_with_best(frame, groups) == [True, None]
