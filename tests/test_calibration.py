"""`scaler calibrate`: which candidates it picks, the bootstrap interval of a rank correlation,
the recommendation rule, a training-image prefix of a data set, `--try` parsing, tries added to
an existing calibration, and one micro calibration end to end (with its resume)."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from scipy import stats

from scaler.candidates import Candidate, build_candidates
from scaler.data import Dataset, ImageSplit, load_dataset, take_train
from scaler.errors import RunError, UsageError
from scaler.candidates import CandidateSpace, ProxyBase, Range
from scaler.experiments.calibration import (
    ATTR_CALIBRATION, RESULT_COLUMNS, Calibration, CalibrationConfig, Setting, parse_try, recommend, reference_at_chance,
    reference_setting, spread,
)  # fmt: skip
from scaler.data import SYNTHETIC_TRAIN
from scaler.experiments import calibration
from scaler.experiments.proxy import Timing
from scaler.data.options import DataOptions
from scaler.experiments.repeats import ATTR_REPEATS
from scaler.experiments.search import SearchConfig
from scaler.models.factory import load_factory
from scaler.runtime import Runtime
from scaler.cli.calibrate import recommendation_line, setting_frame
from scaler.states import State
from scaler.study.experiment import Record, WorkItem, experiment_class, identity_digest
from scaler.statistics import agreement_p_value, bootstrap_agreement, pack_correct, split_half_reliability

from test_factories import TINY_NET
from test_search import presplit_folder


def candidate(index: int, alpha: float, beta: float, gamma: float) -> Candidate:
    return Candidate(index, alpha, beta, gamma, alpha * beta**2 * gamma**2, alpha, beta, 64, 1, 1, 1.0, 2.0)


# In logs: 1 (0.69, 0, 0), 2 (0, 0.34, 0), 3 (0, 0, 0.34) are the extremes; then 4 is the
# farthest from those (0.41), then 5 (0.35, ahead of 0 at 0.34).
POINTS = [candidate(0, 1, 1, 1), candidate(1, 2, 1, 1), candidate(2, 1, 1.4, 1), candidate(3, 1, 1, 1.4),
          candidate(4, 1.4, 1.2, 1.2), candidate(5, 1.1, 1, 1)]  # fmt: skip


@pytest.mark.parametrize(
    ("k", "picked"),
    [(3, [1, 2, 3]), (4, [1, 2, 3, 4]), (5, [1, 2, 3, 4, 5]), (6, [0, 1, 2, 3, 4, 5]), (9, [0, 1, 2, 3, 4, 5])],
)
def test_spread_picks_the_extremes_then_the_farthest_points(k, picked):
    assert [c.index for c in spread(POINTS, k)] == picked


def test_spread_takes_the_first_of_equal_extremes():
    points = [candidate(0, 1, 1, 1), candidate(1, 2, 1, 1), candidate(2, 2, 1.1, 1), candidate(3, 1, 1, 1.2), candidate(4, 1.5, 1, 1)]
    # largest alpha: 1 (before 2, tied), largest beta: 2, largest gamma: 3
    assert [c.index for c in spread(points, 3)] == [1, 2, 3]


def test_bootstrap_interval_holds_the_estimate_and_is_reproducible():
    a = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    b = [0.15, 0.1, 0.35, 0.3, 0.6, 0.5]
    (spearman, s_low, s_high), (kendall, k_low, k_high) = bootstrap_agreement(a, b, seed=3)
    assert spearman == pytest.approx(0.8286, abs=1e-3) and kendall == pytest.approx(0.6, abs=1e-9)
    assert -1 <= s_low <= spearman <= s_high <= 1 and -1 <= k_low <= kendall <= k_high <= 1
    # resampled with replacement: some resamples keep mostly the swapped pairs (low), some only
    # the agreeing ones (Spearman 1); a resample without replacement would give a point
    assert s_low < spearman - 0.2 and s_high == 1.0 and k_low < kendall - 0.2 and k_high == 1.0
    assert bootstrap_agreement(a, a, seed=3) == (pytest.approx((1.0, 1.0, 1.0)), pytest.approx((1.0, 1.0, 1.0)))
    assert bootstrap_agreement(a, b, seed=3) == bootstrap_agreement(a, b, seed=3)


def test_bootstrap_is_undefined_without_a_ranking_and_drops_missing_pairs():
    assert bootstrap_agreement([0.1, 0.2, 0.3], [0.5, 0.5, 0.5]) is None  # one side ranks nothing
    assert bootstrap_agreement([0.1, 0.2], [0.3, 0.4]) is None  # too few candidates
    assert bootstrap_agreement([0.1, 0.2, math.nan, 0.4], [0.3, 0.4, 0.9, math.nan]) is None  # two pairs left
    with_gap = bootstrap_agreement([0.1, 0.3, math.nan, 0.2, 0.4], [0.2, 0.3, 0.5, 0.1, 0.4], seed=1)
    assert with_gap == bootstrap_agreement([0.1, 0.3, 0.2, 0.4], [0.2, 0.3, 0.1, 0.4], seed=1)


def test_agreement_beyond_chance_is_a_permutation_p_value():
    """The bootstrap reads [1, 1] for any perfect agreement; the p-value says how often
    unrelated rankings agree as well: 1 pairing of 6 for 3 candidates, 1 of 720 for 6."""
    assert agreement_p_value([0.1, 0.2, 0.3], [0.5, 0.6, 0.7]) == pytest.approx(1 / 6)
    # the bootstrap: three candidates in order read [0, 1] (1 resample in 9 draws one candidate three
    # times, ranks nothing and counts as 0), six read [1, 1]: neither says how often chance agrees
    assert bootstrap_agreement([0.1, 0.2, 0.3], [0.5, 0.6, 0.7])[0] == pytest.approx((1.0, 0.0, 1.0))
    assert bootstrap_agreement([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6])[0] == pytest.approx((1.0, 1.0, 1.0))


def test_a_resample_that_ranks_nothing_counts_as_no_agreement():
    """Tied scores (top-1 on 40 images): skipping the resamples where one side is all alike kept
    only agreeing ones, and the interval's lower bound rose above 0 where the permutation test
    finds nothing (p = 0.5)."""
    a, b = [0.1, 0.075, 0.075, 0.1, 0.075, 0.1], [0.125, 0.075, 0.075, 0.075, 0.075, 0.075]
    (rho, low, high), _ = bootstrap_agreement(a, b)
    assert rho == pytest.approx(0.4472, abs=1e-4) and low <= 0.0 <= high and agreement_p_value(a, b) == pytest.approx(0.5)
    # a correlation that exists always has an interval: two ties of three are still a ranking
    assert bootstrap_agreement([0.5, 0.5, 0.6], [0.1, 0.2, 0.2]) is not None
    ranks = [1, 2, 3, 4, 5, 6]
    assert agreement_p_value(ranks, ranks) == pytest.approx(1 / 720)
    # one swap of neighbours (rho 0.943) is reached by the 1 + 5 pairings with at most one, two
    # disjoint swaps (rho 0.886, as machine A's calibration read) by those and 6 more
    assert agreement_p_value([2, 1, 3, 4, 5, 6], ranks) == pytest.approx(6 / 720)
    assert agreement_p_value([2, 1, 3, 4, 6, 5], ranks) == pytest.approx(12 / 720)
    assert agreement_p_value(ranks[::-1], ranks) == pytest.approx(1.0)  # every pairing agrees at least as well
    assert agreement_p_value([0.1, 0.2, math.nan, 0.3], [0.3, 0.4, 0.9, 0.5]) == pytest.approx(1 / 6)  # NaN pairs dropped
    assert agreement_p_value([0.1, 0.2, 0.3], [0.5, 0.5, 0.5]) is None


def test_recommendation_is_the_cheapest_setting_that_keeps_the_ranking():
    def setting(index, cost, spearman, p=0.01):
        return {"index": index, "cost": cost, "spearman": spearman, "spearman_p": None if spearman is None else p}

    reference = setting(0, 4.0, None)
    assert recommend([reference, setting(1, 1.0, 0.9), setting(2, 0.5, 0.8), setting(3, 0.25, 0.79)]) == 2
    assert recommend([reference, setting(1, 1.0, 0.7), setting(2, 0.5, None)]) is None
    assert recommend([reference, setting(1, 1.0, 0.85), setting(2, 1.0, 0.95)]) == 1  # equal cost: the lower index
    assert recommend([setting(0, 4.0, 1.0), setting(1, 1.0, 0.5)]) is None  # never the reference
    assert recommend([reference, setting(1, 1.0, 1.0, p=1 / 6)]) is None  # 3 candidates in order: chance does it 1 time in 6
    assert recommend([reference, setting(1, 1.0, 0.9, p=0.06), setting(2, 2.0, 0.85, p=0.04)]) == 2
    # a Spearman of exactly 0.8, as scipy computes it for 9 candidates (shown as 0.80), reaches it
    exact = float(stats.spearmanr(range(9), [2, 1, 0, 5, 4, 3, 8, 7, 6]).statistic)
    assert exact < 0.8 and recommend([reference, setting(1, 1.0, exact)]) == 1


def test_a_reference_at_chance_is_said():
    """Its best complete candidate's interval reaching 1/classes: no setting's Spearman with it
    means much, whatever the recommendation."""
    table = pd.DataFrame({"setting": [0, 0, 0, 1], "state": ["complete", "complete", "pruned", "complete"],
                          "top1": [0.17, 0.12, 0.5, 0.6], "top1_low": [0.099, 0.05, 0.4, 0.5]})
    assert reference_at_chance(table, 10).startswith(
        "the reference's best candidate is not above chance: its top-1 interval reaches 10.0% (one of 10 classes), so its ranking")
    assert reference_at_chance(table, 20) is None  # 5% is below the best's interval
    assert reference_at_chance(table.assign(top1_low=[0.101, 0.05, 0.4, 0.5]), 10) is None
    assert reference_at_chance(table[table["setting"] == 1], 10) is None  # no reference trained yet


def test_take_train_keeps_the_first_images_the_synthetic_set_renders():
    big = load_dataset("synthetic", storage_resolution=16, train_images=40, val_images=10, native_resolution=32)
    small = load_dataset("synthetic", storage_resolution=16, train_images=23, val_images=10, native_resolution=32)
    taken = take_train(big, 23)
    assert torch.equal(taken.train.images, small.train.images) and torch.equal(taken.train.labels, small.train.labels)
    assert taken.val is big.val and taken.fingerprint != big.fingerprint
    assert take_train(big, 40) is big and take_train(big, 100) is big


def test_take_train_keeps_every_class_of_a_split_ordered_by_class():
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 6)
    images = torch.arange(18, dtype=torch.uint8).view(18, 1, 1, 1).expand(18, 3, 2, 2).contiguous()
    split = ImageSplit(images, labels)
    dataset = Dataset("folder", ("a", "b", "c"), split, split, "f", 0, 0)
    taken = take_train(dataset, 7)
    assert taken.train.labels.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert taken.train.images[:, 0, 0, 0].tolist() == [0, 1, 2, 6, 7, 12, 13]  # the first of each class, in order


def test_a_try_on_fewer_training_images_than_classes_is_warned_with_its_ceiling(tmp_path):
    """A subset warns of the classes it has no training image of, in place of the whole set's
    warning; a calibration names the try whose subset leaves classes out (it said nothing:
    the whole data set, which covers them, was the only one checked)."""
    big = load_dataset("synthetic", storage_resolution=16, train_images=40, val_images=20, native_resolution=32)
    assert big.warnings == () and take_train(big, 10).warnings == ()
    (warning,) = take_train(big, 4).warnings
    assert warning.startswith("6 of the 10 classes (") and "among the 4" in warning and "cannot exceed 40.0%" in warning
    few = load_dataset("synthetic", storage_resolution=16, train_images=4, val_images=20, native_resolution=32)
    (fewer,) = take_train(few, 3).warnings  # the subset's, in place of the whole set's
    assert few.warnings == (warning,) and fewer.startswith("7 of the 10 classes (") and "among the 3" in fewer
    planned = Calibration.plan(tiny_calibration(tmp_path, "train-images=4", "epochs=1"))
    context = planned.prepare(Runtime(device="cpu"))
    assert [w for w in context.warnings if "no training image" in w] == [f"train-images=4: {warning}"]
    batch = planned.config.search.train.batch_size  # only the try has fewer images than a batch
    assert [w for w in context.warnings if "--batch-size" in w] == [
        f"train-images=4: --batch-size {batch} is more than the 4 training images: each epoch is one step on a batch of 4"]
    small = Calibration.plan(replace(planned.config, search=replace(planned.config.search, data=replace(
        planned.config.search.data, train_images=8)), reference=replace(planned.config.reference, train_images=8)))
    assert [w for w in small.prepare(Runtime(device="cpu")).warnings if "--batch-size" in w] == [  # the settings on all: once
        f"--batch-size {batch} is more than the 8 training images: each epoch is one step on a batch of 8",
        f"train-images=4: --batch-size {batch} is more than the 4 training images: each epoch is one step on a batch of 4"]


def test_config_round_trips_and_refuses_what_cannot_be_calibrated():
    search = SearchConfig()
    config = CalibrationConfig(search, reference_setting(search, 4), tries=(parse_try("epochs=1,base-width=0.25"),))
    config.validate()
    assert config.reference == Setting("reference", epochs=4 * search.train.epochs)
    for epochs, factor, reference in ((1, 2.5, 3), (3, 1.5, 5), (5, 1.5, 8), (5, 1.3, 7), (1, 0.1, 1), (25, 2.3, 58), (15, 4.1, 62)):  # a half rounds up
        proxy = replace(search, train=replace(search.train, epochs=epochs))
        assert reference_setting(proxy, factor).epochs == reference
    restored = CalibrationConfig.from_identity(json.loads(json.dumps(config.identity())))
    assert restored == replace(config, tries=())  # the tries are kept with the study, not in its identity
    assert restored.default_name() == config.default_name() and config.default_name().startswith("calibrate-phi1-grid-b0-r64-w0.5-")
    more = CalibrationConfig(search, reference_setting(search, 4, train_images=4000))
    assert [more.images(s) for s in more.settings()] == [4000, SYNTHETIC_TRAIN]  # the synthetic set's size by default
    with pytest.raises(UsageError, match="at least 3"):
        CalibrationConfig(search, config.reference, k=2).validate()
    with pytest.raises(UsageError, match="given twice"):
        CalibrationConfig(search, config.reference, tries=(parse_try("epochs=1"), parse_try("epochs=1"))).validate()
    many = tuple(parse_try(f"train-images={n}") for n in range(2, calibration.MAX_SETTINGS + 1))
    with pytest.raises(UsageError, match="are more than the 98 a calibration takes"):
        CalibrationConfig(search, config.reference, tries=many).validate()


def tiny_calibration(tmp_path: Path, *tries: str) -> CalibrationConfig:
    """Three candidates of a tiny factory network at 32 px, the reference at twice the epochs."""
    (tmp_path / "tinynet.py").write_text(TINY_NET)
    space = CandidateSpace(alpha=Range(1, 1.2, 0.2), beta=Range(1, 1.1, 0.1), gamma=Range(1, 1.2, 0.1), tolerance=0.5)
    search = SearchConfig(space=space, base=ProxyBase(f"{tmp_path / 'tinynet.py'}:make", resolution=32, width=0.5))
    return CalibrationConfig(search, reference_setting(search, 2), k=3, tries=tuple(parse_try(t) for t in tries))


def test_a_calibration_refuses_another_network_under_its_factory_s_name(tmp_path, monkeypatch):
    """As a search does (test_workers): the base imported where a calibration is restored
    must build the candidates it counted (here the file was edited since), checked before a
    try added now has its networks counted with it."""
    config = tiny_calibration(tmp_path)
    attrs = json.loads(json.dumps(Calibration.plan(config).study_attrs()))
    Calibration.restore(config, attrs)  # the same file: restored
    (tmp_path / "tinynet.py").write_text(TINY_NET.replace("(40, 2, 2)", "(64, 2, 2)"))
    load_factory.cache_clear()  # as a new process would import it
    counted = []
    monkeypatch.setattr(calibration, "count_networks", lambda *args: counted.append(args))
    with pytest.raises(UsageError, match=r"builds [\d,]+ parameters when called with width=[\d.]+, depth=[\d.]+, "
                                         r"num_classes=10, where the study counted [\d,]+: it is not the network") as refused:
        Calibration.restore(replace(config, tries=(parse_try("base-width=1"),)), attrs)
    assert refused.value.param == "base" and counted == []


def test_a_calibration_stores_the_size_of_the_search_s_set_and_keeps_it_when_restored(tmp_path):
    """So a summary can say whether more --candidates could be picked (k equal to the set's
    size picks the whole set, which `k > picked` alone cannot tell)."""
    config = tiny_calibration(tmp_path)
    whole = build_candidates(config.search.space, config.search.base, config.search.flops_tolerance)
    planned = Calibration.plan(config)
    assert len(planned.candidates) == planned.set_size == len(whole) == 3  # k = 3 takes the whole set
    attrs = json.loads(json.dumps(planned.study_attrs()))
    assert attrs[ATTR_CALIBRATION]["set_size"] == len(whole)
    assert Calibration.restore(replace(config, tries=(parse_try("epochs=1"),)), attrs).set_size == len(whole)
    del attrs[ATTR_CALIBRATION]["set_size"]  # made before the size was stored
    assert Calibration.restore(config, attrs).set_size is None


def test_a_try_asked_later_is_added_and_counts_only_its_own_networks(tmp_path, monkeypatch):
    config = tiny_calibration(tmp_path, "base-resolution=24")
    attrs = json.loads(json.dumps(Calibration.plan(config).study_attrs()))
    counted = []
    real = calibration.count_networks
    monkeypatch.setattr(calibration, "count_networks", lambda c, cands: counted.append([s.label for s in c.settings()]) or real(c, cands))
    # asked again with one try the study has and one it lacks: the study's first, then the new one
    grown = Calibration.restore(replace(config, tries=(parse_try("base-width=1"), parse_try("base-resolution=24"))), attrs)
    assert [s.label for s in grown.settings] == ["reference", "proxy", "base-resolution=24", "base-width=1"]
    assert counted == [["reference", "proxy", "base-width=1"]]  # the study's networks are not counted again
    assert grown.networks[:3] == attrs[ATTR_CALIBRATION]["networks"] and len(grown.networks) == 4
    assert grown.networks[3][0]["params"] > grown.networks[1][0]["params"]  # the wider base's own network
    assert grown.study_attrs()[ATTR_CALIBRATION]["tries"][1]["label"] == "base-width=1"
    assert parse_try("train-images=1281167").label == "train-images=1281167"  # exact: two tries never share a label
    # an earlier scaler labelled tries with :g and kept them in the identity: its fingerprint is still found
    big = replace(config, tries=(parse_try("epochs=1"), parse_try("train-images=1000000")))
    written = {**big.identity(), "tries": [asdict(big.tries[0]), {**asdict(big.tries[1]), "label": "train-images=1e+06"}]}
    assert big.earlier_fingerprints() == [identity_digest(written), identity_digest({**written, "tries": written["tries"][:1]})]
    # asked with no try at all, the study keeps its own
    assert [s.label for s in Calibration.restore(replace(config, tries=()), attrs).settings][2:] == ["base-resolution=24"]
    # the "setting" parameter is an integer range, so a study's trials stay valid as tries are added
    assert grown.distributions()["setting"] == optuna.distributions.IntDistribution(0, calibration.MAX_SETTINGS - 1)
    # a try that needs more of the data than the study prepared is refused: it would change the
    # data (a higher resolution here; more images than the reference's are refused for any try)
    with pytest.raises(UsageError, match="needs more of the data than this calibration prepares") as refused:
        Calibration.restore(replace(config, tries=(parse_try("base-resolution=48"),)), attrs)
    assert f"({SYNTHETIC_TRAIN} training images, stored at 40 px)" in str(refused.value) and refused.value.param == "try"
    with pytest.raises(UsageError, match="raise --reference-train-images"):
        Calibration.restore(replace(config, tries=(parse_try("train-images=5000"),)), attrs)
    # a worker that opened the study before the try was added takes it up before its next item
    worker = Calibration.restore(Calibration.config_from_identity(config.identity()), attrs)
    worker.refresh(json.loads(json.dumps(grown.study_attrs())))
    assert worker.settings == grown.settings and worker.networks == grown.networks and worker.items() == grown.items()
    # two processes that added different tries at once: setting 2 would mean two things
    other = Calibration.restore(replace(config, tries=(parse_try("base-width=0.25"),)), attrs)
    with pytest.raises(RunError, match=r"changed this calibration's tries while this one ran \(base-resolution=24, base-width=1 -> "):
        grown.refresh(json.loads(json.dumps(other.study_attrs())))


def test_a_calibration_made_before_tries_were_stored_resumes_with_its_settings_fixed(tmp_path):
    config = tiny_calibration(tmp_path)
    attrs = json.loads(json.dumps(Calibration.plan(config).study_attrs()))
    del attrs[ATTR_CALIBRATION]["tries"]  # what an earlier scaler stored
    old = Calibration.restore(config, attrs)
    assert old.distributions()["setting"] == optuna.distributions.CategoricalDistribution([0, 1])  # as its trials have it
    assert "tries" not in old.study_attrs()[ATTR_CALIBRATION]  # and it stays recognisable as such
    with pytest.raises(UsageError, match="fixed its tries when it started; calibrate new tries under a new --name"):
        Calibration.restore(replace(config, tries=(parse_try("epochs=1"),)), attrs)
    # its tries were part of its configuration: a worker that joins it reads them from there
    attrs[ATTR_CALIBRATION]["networks"] *= 2  # as if it had two tries of the proxy's networks
    joined = Calibration.restore(replace(config, tries=(parse_try("epochs=1"), parse_try("train-images=900"))), attrs)
    assert [s.label for s in joined.settings] == ["reference", "proxy", "epochs=1", "train-images=900"]
    assert joined.distributions()["setting"].choices == (0, 1, 2, 3)


def test_plan_counts_each_settings_networks_and_restores_without_counting(tmp_path):
    (tmp_path / "tinynet.py").write_text(TINY_NET)
    space = CandidateSpace(alpha=Range(1, 1.2, 0.2), beta=Range(1, 1.1, 0.1), gamma=Range(1, 1.2, 0.1), tolerance=0.5)
    search = SearchConfig(space=space, base=ProxyBase(f"{tmp_path / 'tinynet.py'}:make", resolution=32, width=0.5))
    tries = (parse_try("base-resolution=24"), parse_try("base-width=1"))
    config = CalibrationConfig(search, reference_setting(search, 2), k=3, tries=tries)
    planned = Calibration.plan(config, repeats=2)
    assert [c.index for c in planned.candidates] == [0, 1, 2]
    reference, proxy, low, wide = planned.networks
    assert reference == proxy == [{"resolution": c.resolution, "params": c.params, "macs": c.macs} for c in planned.candidates]
    assert [n["resolution"] for n in low] == [28, 28, 28] and all(a["macs"] > b["macs"] for a, b in zip(proxy, low))
    assert all(a["params"] < b["params"] for a, b in zip(proxy, wide))
    assert len(planned.items()) == 4 * 3 * 2 and WorkItem.of(setting=3, candidate=2, repeat=1) in planned.items()
    attrs = json.loads(json.dumps(planned.study_attrs()))  # what a study stores
    assert experiment_class("calibration") is Calibration
    restored = Calibration.restore(Calibration.config_from_identity(json.loads(json.dumps(config.identity()))), attrs)
    assert restored.items() == planned.items() and restored.networks == planned.networks
    assert Calibration.restore(config, attrs, repeats=1).repeats == 2  # repeats never shrink
    restored.refresh({ATTR_CALIBRATION: attrs[ATTR_CALIBRATION], ATTR_REPEATS: 3})
    assert len(restored.items()) == 4 * 3 * 3


def test_a_try_not_cheaper_than_the_proxy_is_named_at_the_start(tmp_path):
    """Tries are meant to be cheaper settings; one that costs as much or more (a higher base
    resolution, more epochs) is still trained, and the start line says what it costs."""
    config = tiny_calibration(tmp_path, "base-resolution=48", "epochs=1", "train-images=900", "epochs=9")
    planned = Calibration.plan(config)
    costs = planned.nominal_costs()
    macs = [sum(n["macs"] for n in networks) for networks in planned.networks]
    epochs = config.search.train.epochs
    assert costs[0] == pytest.approx(2.0) and costs[1] == 1.0  # the reference at twice the epochs
    assert costs[2] == pytest.approx(macs[2] / macs[1]) and costs[2] > 1  # 48 px against 32
    assert costs[3] == pytest.approx(1 / epochs) and costs[4] == pytest.approx(900 / SYNTHETIC_TRAIN)
    assert costs[5] == pytest.approx(9 / epochs)
    assert planned.describe() == (f"6 settings x 3 candidates x 1 repeat(s) = 18 trainings (not cheaper than the proxy: "
                                  f"base-resolution=48 at {costs[2]:.2f}x, epochs=9 at {costs[5]:.2f}x its cost)")
    assert "not cheaper" not in Calibration.plan(tiny_calibration(tmp_path, "epochs=1")).describe()


def test_estimate_times_each_distinct_network_once_and_trains_each_setting_from_its_rates(tmp_path, monkeypatch):
    (tmp_path / "tinynet.py").write_text(TINY_NET)
    space = CandidateSpace(alpha=Range(1, 1.2, 0.2), beta=Range(1, 1.1, 0.1), gamma=Range(1, 1.2, 0.1), tolerance=0.5)
    search = SearchConfig(space=space, base=ProxyBase(f"{tmp_path / 'tinynet.py'}:make", resolution=32, width=0.5))
    tries = (parse_try("base-resolution=24"), parse_try("epochs=1"), parse_try("train-images=900"))
    planned = Calibration.plan(CalibrationConfig(search, reference_setting(search, 2), k=3, tries=tries), repeats=2)
    timed, cost = [], [0.0]

    def rate(resolution, params):  # images per second, different for every network
        return 1e6 / (resolution * params)

    def timing(build, resolution, *args):
        params = sum(p.numel() for p in build().parameters())
        timed.append((resolution, params))
        return Timing(seconds=math.nan, first_use=0.5, images_per_s=rate(resolution, params), evaluation=2.0,
                      spent=cost[0])

    monkeypatch.setattr(calibration, "estimate_seconds", timing)
    each, how = planned.estimate_seconds(None, Runtime(device="cpu"), planned.items(), in_process=False)
    total = sum(each.values())
    proxy, low = planned.networks[1], planned.networks[2]
    # the reference and the epochs and images tries train the proxy's networks; two of the
    # low-resolution try's candidates round to the same network: 5 networks, each timed once
    distinct = {(n["resolution"], n["params"]) for n in proxy + low}
    assert len(distinct) == 5 and sorted(timed) == sorted(distinct)
    epochs, images = search.train.epochs, SYNTHETIC_TRAIN
    runs = {0: (2 * epochs, images), 1: (epochs, images), 2: (epochs, images), 3: (1, images), 4: (epochs, 900)}
    # each epoch passes the setting's training images (its last partial batch dropped) and
    # evaluates the same validation split (2 s)
    b = search.train.batch_size
    expected = sum(
        e * ((n // b) * b / rate(net["resolution"], net["params"]) + 2.0)
        for s, (e, n) in runs.items() for net in (low if s == 2 else proxy) for _ in range(2)
    )  # fmt: skip
    assert total == pytest.approx(expected + 0.5 * 5) and how.startswith("timed 5 networks")
    # run in this process, the networks the estimate timed are warm: no first use left
    assert sum(planned.estimate_seconds(None, Runtime(device="cpu"), planned.items())[0].values()) == pytest.approx(expected)
    # a timing that costs more than a tenth of the work stops after the minimum of one network
    # (the cheapest), and the others take its rate scaled by their MACs
    cost[0] = expected
    scaled, how = planned.estimate_seconds(None, Runtime(device="cpu"), planned.items())
    assert how.startswith("timed 1 of 5 networks") and sum(scaled.values()) != pytest.approx(expected)
    # one that costs a fifteenth of it times a second network, and stops there
    cost[0] = expected / 15
    assert planned.estimate_seconds(None, Runtime(device="cpu"), planned.items())[1].startswith("timed 2 of 5 networks")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("epoch=1", "unknown key 'epoch'"),
        ("epochs", "is not key=value"),
        ("epochs=two", "epochs needs a whole number"),
        ("epochs=0", "epochs = 0 is not allowed; it must be an integer from 1 to 10000"),
        ("base-width=wide", "base-width needs a number"),
        ("base-resolution=100000", "'base-resolution=100000': base-resolution 100000 is not allowed; it must be 8..4096 pixels"),
        # each value named by its --try key, not by the library's parameter (train_images)
        ("train-images=1", "'train-images=1': train-images = 1 is not allowed; it must be an integer from 2 to "),
        ("base-width=0", "'base-width=0': base-width = 0.0 is not allowed; it must be a number in (0, 16]"),
        ("epochs=1,epochs=2", "given twice"),
    ],
)
def test_bad_try_is_one_line_and_exit_2(cli, tmp_path, value, message):
    result = cli("calibrate", "--try", value, "--root", tmp_path)
    assert result.code == 2
    assert result.err.startswith("error: --try: ") and message in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not any(tmp_path.iterdir())


def test_bad_calibration_options_are_refused_before_anything_is_created(cli, tmp_path):
    result = cli("calibrate", "--candidates", "2", "--root", tmp_path)
    assert result.code == 2 and result.err.startswith("error: --candidates 2 is not allowed; ") and result.err.count("\n") == 1
    for flag in ("--steps", "--max-seconds"):  # a calibration runs every training to its epochs: no such options
        result = cli("calibrate", flag, "10", "--root", tmp_path)
        assert result.code == 2 and f"No such option: {flag}" in result.err and result.err.count("\n") == 1
        assert flag not in cli("calibrate", "--help").out
    for flag, value in (("--repeats", "0"), ("--reference-epochs", "0"), ("--reference-factor", "0")):
        result = cli("calibrate", flag, value, "--root", tmp_path)
        assert result.code == 2 and result.err.startswith(f"error: {flag} {value} is not allowed; ") and result.err.count("\n") == 1
    both = cli("calibrate", "--reference-factor", "2", "--reference-epochs", "30", "--root", tmp_path)  # one would be ignored
    assert both.code == 2 and both.err == (
        "error: --reference-factor 2 and --reference-epochs 30 both set the reference's epochs; give one\n")
    epochs = SearchConfig().train.epochs
    for flag, value in (("--reference-factor", "1"), ("--reference-epochs", str(epochs))):  # as long as the proxy
        result = cli("calibrate", flag, value, "--root", tmp_path)
        assert result.code == 2 and f"trains no longer than the proxy ({epochs} epochs on {SYNTHETIC_TRAIN} images)" in result.err
    fewer = cli("calibrate", "--reference-train-images", "10", "--root", tmp_path)  # 4x the epochs, but on 10 images
    assert fewer.code == 2 and fewer.err == (
        f"error: --reference-train-images: the reference trains on 10 images, fewer than the proxy setting's {SYNTHETIC_TRAIN}: "
        "every setting trains on the first of the reference's images; raise --reference-train-images\n")
    above = cli("calibrate", "--try", "train-images=99999", "--root", tmp_path)  # the try is at fault, and named first
    assert above.code == 2 and above.err == (
        f"error: --try: 'train-images=99999': the reference trains on {SYNTHETIC_TRAIN} images, fewer than this setting's 99999: "
        "every setting trains on the first of the reference's images; lower train-images or raise --reference-train-images\n")
    longer = cli("calibrate", "--reference-epochs", str(epochs), "--reference-train-images", "4000", "--candidates", "2", "--root", tmp_path)
    assert longer.err.startswith("error: --candidates 2 is not allowed")  # as many epochs on more images is longer: only k is refused
    assert not any(tmp_path.iterdir())


def micro(tmp_path: Path) -> list[str]:
    """A micro calibration: the 3 candidates (the whole set) of a tiny factory network at 16-20 px on 64
    synthetic images, 1 epoch (the reference 2), one cheaper try."""
    net = tmp_path / "tinynet.py"
    net.write_text(TINY_NET)
    return [
        "calibrate", "--base", f"{net}:make", "--base-width", "0.5", "--base-resolution", "16",
        "--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1", "--gamma-range", "1:1.2:0.1", "--tolerance", "0.5",
        "--train-images", "64", "--val-images", "32", "--batch-size", "16", "--epochs", "1", "--lr", "0.05",
        "--threads", "1", "--device", "cpu", "--candidates", "3", "--reference-factor", "2",
        "--try", "train-images=32", "--standard-init", "--quiet",
    ]  # fmt: skip


def test_a_calibration_an_earlier_scaler_began_with_tries_resumes_by_the_same_command(cli, tmp_path, monkeypatch):
    """Before tries were stored with the study they were part of its identity (and name), and
    its "setting" parameter was a categorical of the settings it began with."""
    args = [*micro(tmp_path), "--repeats", "1", "--root", tmp_path / "studies"]
    with monkeypatch.context() as old:
        old.setattr(CalibrationConfig, "identity", lambda self: {
            "search": self.search.identity(), "k": self.k, "reference": asdict(self.reference), "tries": [asdict(t) for t in self.tries]})
        study_attrs = Calibration.study_attrs
        old.setattr(Calibration, "study_attrs", lambda self: {
            k: {n: x for n, x in v.items() if n != "tries"} if k == ATTR_CALIBRATION else v for k, v in study_attrs(self).items()})
        distributions = Calibration.distributions
        old.setattr(Calibration, "distributions", lambda self: {
            **distributions(self), "setting": optuna.distributions.CategoricalDistribution(list(range(len(self.settings))))})
        first = cli(*args)
        assert first.code == 0, first.err
    def studies() -> list[Path]:
        return [f for f in (tmp_path / "studies").iterdir() if not f.name.startswith(".")]  # not the data cache

    (folder,) = studies()
    frame = pd.read_csv(folder / "results.csv")
    again = cli(*args)
    assert again.code == 0, again.err
    assert "9 already finished, 0 to train" in again.err and studies() == [folder]
    assert pd.read_csv(folder / "results.csv").equals(frame)
    more = cli(*args, "--try", "train-images=48")
    assert more.code == 2 and "fixed its tries when it started; calibrate new tries under a new --name" in more.err


def test_a_reference_on_the_proxy_s_own_images_is_one_configuration_however_typed(cli, tmp_path, monkeypatch):
    """--reference-train-images equal to the proxy's images is no cap of its own: the same
    study as without it. An earlier scaler kept it as typed; the same command resumes that."""
    search = tiny_calibration(tmp_path).search
    assert reference_setting(search, 2, train_images=SYNTHETIC_TRAIN) == reference_setting(search, 2)  # synthetic's own
    capped = replace(search, data=replace(search.data, train_images=64))
    assert reference_setting(capped, 2, train_images=64) == reference_setting(capped, 2) != reference_setting(capped, 2, train_images=65)
    args = [*micro(tmp_path), "--repeats", "1", "--root", tmp_path / "studies", "--reference-train-images", "64"]
    typed = calibration.reference_setting
    with monkeypatch.context() as old:  # as an earlier scaler did: the cap kept as given
        old.setattr(calibration, "reference_setting", lambda search, factor, epochs, images: replace(
            typed(search, factor, epochs, images), train_images=images))
        first = cli(*args)
        assert first.code == 0, first.err
    (folder,) = [f for f in (tmp_path / "studies").iterdir() if not f.name.startswith(".")]
    assert json.loads((folder / "calibration.json").read_text())["config"]["reference"]["train_images"] == 64
    again = cli(*args)
    assert again.code == 0 and "9 already finished, 0 to train" in again.err, again.err
    assert [f for f in (tmp_path / "studies").iterdir() if not f.name.startswith(".")] == [folder]


def test_micro_calibration_end_to_end_and_resume(cli, tmp_path, monkeypatch):
    args = [*micro(tmp_path), "--repeats", "1", "--root", tmp_path / "studies", "--name", "cal"]
    result = cli(*args)
    assert result.code == 0, result.err
    folder = tmp_path / "studies" / "cal"
    frame = pd.read_csv(folder / "results.csv")
    assert list(frame.columns) == RESULT_COLUMNS
    assert len(frame) == 3 * 3 and set(frame["state"]) == {"complete"}
    assert list(frame["label"].unique()) == ["reference", "proxy", "train-images=32"]
    assert list(frame["candidate"][:3]) == [0, 1, 2]  # 4 candidates: the 3 extremes are picked
    info = json.loads((folder / "calibration.json").read_text())
    assert info["kind"] == "calibration" and info["candidates"] == [0, 1, 2] and info["repeats"] == 1
    reference, proxy, cheap = info["settings"]
    assert (reference["epochs"], reference["train_images"], reference["cost"]) == (2, 64, 2.0)
    assert (proxy["epochs"], proxy["cost"], cheap["train_images"], cheap["cost"]) == (1, 1.0, 32, 0.5)
    assert reference["spearman"] is None and cheap["overrides"] == {"train-images": 32}
    assert all(s["reliability"] is None for s in info["settings"])  # one repeat: nothing to split
    for setting in (proxy, cheap):
        assert {"spearman", "spearman_low", "spearman_high", "kendall", "kendall_low", "kendall_high", "train_seconds", "recommended"} <= set(setting)
    assert info["recommended"] in (None, "proxy", "train-images=32")
    assert (folder / "calibration.png").stat().st_size > 0
    if info["recommended"]:
        assert "scaler search " in result.out and "--train-images" in result.out
    else:
        assert "no setting keeps Spearman >= 0.8" in result.out

    again = cli(*args, "--format", "json")
    assert again.code == 0, again.err
    json.loads(again.out)  # the document alone on stdout, the advice beside it on stderr
    assert ("recommended (" if info["recommended"] else "no setting keeps Spearman >= 0.8") in again.err
    chance = reference_at_chance(frame, 10)  # said with the recommendation wherever the reference is at chance
    assert (chance in again.err) if chance else ("not above chance" not in again.err), again.err
    markdown = cli(*args, "--format", "markdown").out.rstrip("\n").split("\n\n")
    if info["recommended"]:  # the command as code, a paragraph of its own
        assert any(part.startswith("`scaler search ") and part.endswith("`") for part in markdown), markdown
    else:  # written as it reads: >= is not the start of a quote
        assert any(part.startswith("no setting keeps Spearman \\>= 0.8") for part in markdown), markdown
    assert "9 already finished, 0 to train" in again.err
    assert "training" not in again.err.replace("trainings", "")
    clash = cli(*args, "--candidates", "4")  # named by its option, not the configuration's key (k)
    assert clash.code == 2 and "already exists with another configuration (--candidates: 3 -> 4)" in clash.err
    longer = cli(*args, "--epochs", "2")  # the reference's epochs follow, with the same --reference-factor
    assert longer.code == 2 and ("another configuration (the reference's epochs (--reference-epochs, or --reference-factor x "
                                 "--epochs): 2 -> 4; --epochs: 1 -> 2)") in longer.err, longer.err
    with monkeypatch.context() as full:  # a plot that cannot be written: the table still shown, the plot not named
        full.setattr("scaler.plots.atomic_write_bytes", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        unplotted = cli(*args)
    assert unplotted.code == 1 and unplotted.err.endswith(f"error: cannot write plot {folder / 'calibration.png'}: No space left on device\n")
    assert "reference" in unplotted.out and "calibration.png" not in unplotted.out and "calibration.png" in cli(*args).out
    assert pd.read_csv(folder / "results.csv").equals(frame)

    # `scaler report` renders the folder as calibrate does, from its files, training nothing
    reported = cli("report", folder, "--format", "json")
    assert reported.code == 0 and "training" not in reported.err
    read_back = json.loads(reported.out)  # each setting's overrides and flags where calibrate gave its command
    assert [{k: v for k, v in r.items() if k not in ("overrides", "flags")} for r in read_back] == \
        [{k: v for k, v in r.items() if k != "command"} for r in json.loads(again.out)]
    assert [r["flags"] for r in read_back] == ["--epochs 2", "", "--train-images 32"]
    table = cli("report", folder)
    points = ", ".join(f"({a:g}, {b:g}, {g:.4g})" for a, b, g in frame[["alpha", "beta", "gamma"]][:3].itertuples(index=False))
    assert table.code == 0 and "Calibration cal: 3 candidates x 1 repeat" in table.out
    assert f"candidates {points} all 3 of the search's set" in " ".join(table.out.split())  # --candidates 3 of a set of 3

    # A try asked later trains only itself; the reference and the other settings are kept.
    grown = cli(*args, "--try", "train-images=48")
    assert grown.code == 0, grown.err
    assert "9 already finished, 3 to train" in grown.err
    table = pd.read_csv(folder / "results.csv")
    assert list(table["label"].unique()) == ["reference", "proxy", "train-images=32", "train-images=48"]
    assert table[:9].equals(frame) and set(table["state"]) == {"complete"}
    assert json.loads((folder / "calibration.json").read_text())["settings"][3]["train_images"] == 48

    rows = json.loads(again.out)
    # A setting's `scaler search` command trains exactly what the calibration trained for it.
    assert [r["label"] for r in rows] == ["reference", "proxy", "train-images=32"]
    command = shlex.split(rows[2]["command"])
    assert command[:2] == ["scaler", "search"] and command[command.index("--train-images") + 1] == "32"
    assert "--try" not in command and "--candidates" not in command and "--epochs" in command
    assert "--standard-init" in command  # an on/off flag is passed on as itself
    searched = cli(*command[1:], "--quiet", "--format", "json")
    assert searched.code == 0, searched.err
    by_candidate = {r["candidate"]: r["val_loss"] for r in json.loads(searched.out)}
    for _, row in frame[frame["setting"] == 2].iterrows():
        assert by_candidate[row["candidate"]] == pytest.approx(row["val_loss"], rel=1e-12)


def test_a_worker_joins_a_calibration_kept_in_postgres(postgres_url, tmp_path):
    name = f"cal-pg-{uuid.uuid4().hex[:8]}"
    scaler = str(Path(sys.executable).parent / "scaler")
    args = [*micro(tmp_path), "--repeats", "2", "--root", tmp_path, "--name", name, "--storage", postgres_url]
    first = subprocess.Popen([scaler, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    storage = optuna.storages.RDBStorage(postgres_url)
    deadline = time.time() + 120
    while not any(s.study_name == name and ATTR_CALIBRATION in s.user_attrs for s in optuna.get_all_study_summaries(storage, False)):
        assert time.time() < deadline and first.poll() is None, "the calibration's study never appeared"
        time.sleep(0.2)
    worker = subprocess.run(
        [scaler, "worker", "--storage", postgres_url, "--study", name, "--device", "cpu", "--threads", "1", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    complete: dict[tuple, int] = {}
    for trial in optuna.load_study(study_name=name, storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        key = (trial.params["setting"], trial.params["candidate"], trial.params["repeat"])
        complete[key] = complete.get(key, 0) + 1
    assert complete == {(s, c, r): 1 for s in range(3) for c in range(3) for r in range(2)}
    frame = pd.read_csv(tmp_path / name / "results.csv")
    assert len(frame) == 9 and set(frame["state"]) == {"complete"} and set(frame["repeats"]) == {2}


def test_each_item_s_progress_bar_counts_its_own_setting_s_epochs():
    """The reference trains 4x the proxy's epochs: a proxy item's bar reads 'epoch 1/5', not
    '1/20' (it showed the longest setting's count for every item)."""
    search = SearchConfig()
    config = CalibrationConfig(search, reference_setting(search), tries=(parse_try("epochs=2"),))
    networks = [[{"resolution": 64, "params": 1, "macs": 1} for _ in POINTS[:3]] for _ in config.settings()]
    planned = Calibration(config, POINTS[:3], networks)
    epochs = {item["setting"]: planned.epochs(None, item) for item in planned.items()}
    assert epochs == {0: 4 * search.train.epochs, 1: search.train.epochs, 2: 2}


def test_each_setting_reports_how_well_its_own_repeats_agree():
    """A setting's split-half reliability over its repeats; a reference that disagrees with
    itself is named beside the recommendation, since a Spearman with it says little."""
    search = SearchConfig()
    config = CalibrationConfig(search, reference_setting(search))
    points = POINTS[:5]
    networks = [[{"resolution": 64, "params": 1, "macs": 1} for _ in points] for _ in config.settings()]
    planned = Calibration(config, points, networks, repeats=2)
    steady, reversed_ = ([0.5, 0.6, 0.7, 0.8, 0.9], [0.51, 0.61, 0.71, 0.81, 0.91]), ([0.5, 0.6, 0.7, 0.8, 0.9], [0.9, 0.8, 0.7, 0.6, 0.5])

    def summary(reference, proxy):  # per setting, per repeat: each candidate's top-1
        records = [
            Record(WorkItem.of(setting=s, candidate=c.index, repeat=r), State.COMPLETE, attrs={"top1": top1[r][i]})
            for s, top1 in enumerate((reference, proxy)) for r in range(2) for i, c in enumerate(points)
        ]  # fmt: skip
        return planned.summary(planned.table(records), records)

    info = summary(steady, reversed_)
    reference, proxy = info["settings"]
    assert (reference["reliability"], reference["reliability_low"], reference["reliability_high"]) == pytest.approx((1.0, 1.0, 1.0))
    expected = split_half_reliability([list(pair) for pair in zip(*reversed_)], seed=search.train.seed)
    assert (proxy["reliability"], proxy["reliability_low"], proxy["reliability_high"]) == expected and expected[0] < 0.8
    frame = setting_frame(info, ["scaler search", "scaler search"])
    assert list(frame["reliability_text"]) == ["1.00 [1.00, 1.00]", f"{expected[0]:.2f} [{expected[1]:.2f}, {expected[2]:.2f}]"]
    assert "agree at only" not in recommendation_line(frame)  # the proxy's noise is its own Spearman's business

    shuffled = ([0.5, 0.6, 0.7, 0.8, 0.9], [0.8, 0.5, 0.9, 0.6, 0.7])
    noisy = setting_frame(summary(shuffled, steady), ["scaler search", "scaler search"])
    line = recommendation_line(noisy).splitlines()[-1]
    assert line.startswith(f"the reference's own repeats agree at only {noisy['reliability_text'][0]} (split-half Spearman, below 0.8)")
    # judged on what its split-half figure predicts for all its repeats (Spearman-Brown): 0.7 between halves of
    # 2 is 0.82 for both, 0.6 is 0.75
    assert "agree at only" not in recommendation_line(noisy.assign(reliability=[0.7, 1.0]), repeats=2)
    line = recommendation_line(noisy.assign(reliability=[0.6, 1.0]), repeats=2).splitlines()[-1]
    assert "(split-half Spearman; about 0.75 for all 2 of them, by Spearman-Brown, below 0.8)" in line

    # a summary written before the figure existed renders without it
    for setting in info["settings"]:
        for key in ("reliability", "reliability_low", "reliability_high"):
            del setting[key]
    older = setting_frame(info, ["scaler search", "scaler search"])
    assert list(older["reliability_text"]) == ["undefined", "undefined"] and "agree at only" not in recommendation_line(older)


def test_the_reference_s_epochs_and_images_are_checked_as_given(cli, tmp_path):
    """--reference-epochs replaces the factor, so the default factor is not checked beside it;
    a default factor that gives too many epochs is named as the default; the reference's images
    have the data's own cap, refused before anything is created."""
    long = SearchConfig(train=replace(SearchConfig().train, epochs=3000))
    assert reference_setting(long, epochs=10000).epochs == 10000
    with pytest.raises(UsageError, match=r"^the reference trains 4 x the proxy's 3000 epochs by default, more than the 10,000 allowed; "):
        reference_setting(long)
    refused = cli("calibrate", "--epochs", "3000", "--root", tmp_path)
    assert refused.code == 2 and refused.err.startswith("error: --epochs: the reference trains 4 x the proxy's 3000 epochs by default")
    many = cli("calibrate", "--reference-train-images", "200000000", "--root", tmp_path)
    assert (many.code, many.err) == (2, "error: --reference-train-images 200000000 is not allowed; it must be an integer from 2 to 100000000\n")
    assert not any(tmp_path.iterdir())


def test_a_recommendation_read_back_from_its_folder_names_the_setting_s_flags():
    """Where the options given to calibrate are not known (`scaler report` of its folder), the
    recommended setting is named by the flags it adds to them, never as a half command."""
    search = SearchConfig()
    config = CalibrationConfig(search, reference_setting(search), tries=(Setting("epochs=1,base-width=0.25", epochs=1, base_width=0.25),))
    points = POINTS[:5]
    networks = [[{"resolution": 64, "params": 1, "macs": 1} for _ in points] for _ in config.settings()]
    planned = Calibration(config, points, networks)
    records = [
        Record(WorkItem.of(setting=s, candidate=c.index, repeat=0), State.COMPLETE, attrs={"top1": 0.1 * (i + 1)})
        for s in range(3) for i, c in enumerate(points)
    ]  # fmt: skip
    info = planned.summary(planned.table(records), records)
    assert info["recommended"] == "epochs=1,base-width=0.25"  # in the reference's order, and the cheapest
    with_commands = recommendation_line(setting_frame(info, ["a", "b", "scaler search --epochs 1 --base-width 0.25"]))
    assert with_commands.endswith("\n  scaler search --epochs 1 --base-width 0.25")
    read_back = setting_frame(info, None)
    assert "command" not in read_back.columns and "overrides" not in read_back.columns  # the flags say it, also in CSV
    assert read_back["flags"][2] == "--epochs 1 --base-width 0.25"
    assert recommendation_line(read_back).endswith(
        "\n  the search options this calibration was given, with --epochs 1 --base-width 0.25 "
        "(the `scaler calibrate` command that made it prints the whole command)"
    )
    info["settings"][2]["overrides"] = {"base-width": 0.3333333, "train-images": 1234567}  # exact, as a flag takes them
    assert setting_frame(info, None)["flags"][2] == "--base-width 0.3333333 --train-images 1234567"
    info["repeats"] = 3  # the agreement of means over 3 repeats: a search of 3 repeats
    assert list(setting_frame(info, None)["flags"]) == [f"--epochs {4 * search.train.epochs} --repeats 3", "--repeats 3", "--base-width 0.3333333 --train-images 1234567 --repeats 3"]


def test_a_setting_is_judged_on_the_pairs_the_reference_tells_apart():
    """Of the reference's pairs whose gap exceeds its noise (seeds and validation images), how
    many a setting orders alike; pairs within the noise are not counted either way."""
    search = SearchConfig()
    config = CalibrationConfig(search, reference_setting(search))
    points = POINTS[:4]
    networks = [[{"resolution": 64, "params": 1, "macs": 1} for _ in points] for _ in config.settings()]
    planned = Calibration(config, points, networks, repeats=2)
    images = 400

    def runs(top1s):  # per candidate: the top-1 of repeats 0 and 1, as the first k images right
        return [[np.arange(images) < round(t * images) for t in pair] for pair in top1s]

    # The reference: 0.9 > 0.7 > 0.5 ~ 0.49: five pairs apart, (2, 3) within the noise.
    reference = runs([(0.90, 0.91), (0.70, 0.71), (0.50, 0.51), (0.49, 0.50)])
    # The proxy: 0 and 1 swapped (one pair broken), 2 and 3 swapped (not judged).
    proxy = runs([(0.60, 0.61), (0.65, 0.66), (0.30, 0.31), (0.40, 0.41)])
    records = [
        Record(WorkItem.of(setting=s, candidate=c.index, repeat=r), State.COMPLETE,
               attrs={"top1": float(correct[i][r].mean()), "val_images": images, "val_correct": pack_correct(correct[i][r])})
        for s, correct in enumerate((reference, proxy)) for r in range(2) for i, c in enumerate(points)
    ]  # fmt: skip
    info = planned.summary(planned.table(records), records)
    assert info["separated_pairs"] == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3]]
    ref, prox = info["settings"]
    assert (ref["pairs_apart"], ref["pairs_tested"], ref["pairs_kept"]) == (5, 6, None)
    assert (prox["pairs_kept"], prox["pairs_judged"], prox["pairs_apart"]) == (4, 5, None)
    frame = setting_frame(info, ["scaler search", "scaler search"])
    assert list(frame["pairs_text"]) == ["5 of 6 apart", "4 of 5"]
    counts = frame[["pairs_apart", "pairs_tested", "pairs_judged", "pairs_kept"]].to_csv(index=False)
    assert counts == "pairs_apart,pairs_tested,pairs_judged,pairs_kept\n5,6,,\n,,5,4\n"  # counts, not 5.0
    assert "pairs of candidates apart" not in recommendation_line(frame)  # the reference agrees with itself
    # no setting recommended: more --candidates is advised only where the search's set has more
    none = frame.assign(recommended=False)
    assert recommendation_line(none).splitlines()[0].endswith(
        "trust the proxy's ranking less, train it longer, or calibrate on more --candidates where the search's set has more")
    assert recommendation_line(none, whole_set=True).splitlines()[0].endswith("trust the proxy's ranking less or train it longer")

    def warned(frame):  # the line beside a reference that disagrees with itself
        frame.loc[frame["role"] == "reference", ["reliability", "reliability_text"]] = (0.5, "0.50 [0.10, 0.90]")
        return recommendation_line(frame).splitlines()[-1]

    assert warned(frame) == "the reference tells 5 of its 6 pairs of candidates apart (p < 0.05 for each); the proxy orders 4 as the reference does"

    # a candidate the proxy did not score: only the pairs it scored are judged
    partial = [r for r in records if not (r.item["setting"] == 1 and r.item["candidate"] == 3)]
    some = setting_frame(planned.summary(planned.table(partial), partial), ["scaler search", "scaler search"])
    assert list(some["pairs_text"]) == ["5 of 6 apart", "2 of 3"]
    assert warned(some).endswith("the proxy orders 2 of the 3 it scored as the reference does")

    # a reference candidate with one counted repeat is not tested: (0, 1) and (1, 2) remain of 3
    lone = [r for r in records if not (r.item["setting"] == 0 and r.item["candidate"] == 3 and r.item["repeat"] == 1)]
    fewer = planned.summary(planned.table(lone), lone)
    assert fewer["separated_pairs"] == [[0, 1], [0, 2], [1, 2]] and fewer["settings"][0]["pairs_tested"] == 3

    # a reference whose candidates are all within the noise tells nothing apart
    flat = runs([(0.50, 0.52), (0.51, 0.49), (0.52, 0.50), (0.49, 0.51)])
    even = [
        Record(r.item, r.state, attrs={"top1": float(flat[r.item["candidate"]][r.item["repeat"]].mean()), "val_images": images,
                                       "val_correct": pack_correct(flat[r.item["candidate"]][r.item["repeat"]])})
        if r.item["setting"] == 0 else r
        for r in records
    ]  # fmt: skip
    nothing = setting_frame(planned.summary(planned.table(even), even), ["scaler search", "scaler search"])
    assert list(nothing["pairs_text"]) == ["0 of 6 apart", "0 of 0"]
    assert warned(nothing) == "the reference tells none of its 6 pairs of candidates apart (p < 0.05 for each)"

    # one repeat: the seed's noise is unmeasured, so no pair is called apart
    single = [r for r in records if r.item["repeat"] == 0]
    alone = planned.summary(planned.table(single), single)
    assert alone["separated_pairs"] is None and alone["settings"][1]["pairs_kept"] is None
    assert list(setting_frame(alone, ["scaler search", "scaler search"])["pairs_text"]) == ["", ""]
    # nor without per-image results (runs recorded before they were kept)
    bare = [Record(r.item, r.state, attrs={"top1": r.attrs["top1"]}) for r in records]
    assert planned.summary(planned.table(bare), bare)["separated_pairs"] is None


def test_the_recommendation_counts_the_candidates_scored_under_both_settings():
    """Spearman is over the candidates the setting and the reference both scored: the line said
    the setting's own count (6 where the reference's failed training left 5)."""
    search = SearchConfig()
    config = CalibrationConfig(search, reference_setting(search))
    points = POINTS[:6]
    networks = [[{"resolution": 64, "params": 1, "macs": 1} for _ in points] for _ in config.settings()]
    planned = Calibration(config, points, networks)
    records = [
        Record(WorkItem.of(setting=s, candidate=c.index, repeat=0), State.FAILED, "boom") if s == 0 and i == 0 else
        Record(WorkItem.of(setting=s, candidate=c.index, repeat=0), State.COMPLETE, attrs={"top1": 0.3 + 0.1 * i})
        for s in range(2) for i, c in enumerate(points)
    ]  # fmt: skip
    info = planned.summary(planned.table(records), records)
    assert [(s["scored"], s["compared"]) for s in info["settings"]] == [(5, None), (6, 5)]
    line = recommendation_line(setting_frame(info, ["scaler search", "scaler search"]))
    assert line.startswith("recommended (proxy, Spearman 1.00 [1.00, 1.00] over 5 candidates, p = 0.008;")  # 1/120


def test_a_setting_is_scored_against_the_reference_s_ranking_not_its_own():
    search = SearchConfig()
    config = CalibrationConfig(search, reference_setting(search))
    points = POINTS[:6]
    networks = [[{"resolution": 64, "params": 1, "macs": 1} for _ in points] for _ in config.settings()]
    planned = Calibration(config, points, networks)
    orders = {0: [0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 1: [0.8, 0.7, 0.6, 0.5, 0.4, 0.3]}  # the proxy reverses the reference

    def records(proxy):
        return [Record(WorkItem.of(setting=s, candidate=c.index, repeat=0), State.COMPLETE, attrs={"top1": top1[i]})
                for s, top1 in ((0, orders[0]), (1, proxy)) for i, c in enumerate(points)]

    reversed_info = planned.summary(planned.table(records(orders[1])), records(orders[1]))
    proxy = reversed_info["settings"][1]
    assert proxy["spearman"] == pytest.approx(-1.0) and proxy["kendall"] == pytest.approx(-1.0)
    assert reversed_info["recommended"] is None
    swapped = [0.3, 0.4, 0.5, 0.6, 0.8, 0.7]  # one swap of neighbours: 1 - 6 * 2 / (6 * 35)
    info = planned.summary(planned.table(records(swapped)), records(swapped))
    assert info["settings"][1]["spearman"] == pytest.approx(1 - 12 / 210) and info["recommended"] == "proxy"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("base-resolution=4", "'base-resolution=4': base-resolution 4 is not allowed; it must be 8..4096 pixels"),
        (f"epochs={SearchConfig().train.epochs}", "trains as the proxy setting does"),
        (f"epochs={SearchConfig().train.epochs * 4}", "trains as the reference setting does"),
        (f"epochs=1,base-resolution={SearchConfig().base.resolution}", "'epochs=1' trains as the epochs=1,base-resolution=64 setting does"),
    ],
)
def test_a_try_that_cannot_train_or_repeats_a_setting_is_refused_before_anything_is_created(cli, tmp_path, value, message):
    result = cli("calibrate", "--try", value, *(["--try", "epochs=1"] if "base-resolution=64" in message else []), "--root", tmp_path)
    assert result.code == 2 and result.err.startswith("error: --try: ") and result.err.count("\n") == 1, result.err
    assert message in result.err and not any(tmp_path.iterdir())


def test_a_try_capped_at_or_above_the_folder_s_images_is_the_proxy_and_refused(cli, tmp_path):
    """A cap takes at most what the data has: train-images=1000 on a folder of 20 training
    images trains as the proxy (all 20) does."""
    data = presplit_folder(tmp_path / "images")
    assert DataOptions(str(data)).train_images_in_all() == 20
    result = cli("calibrate", "--data", str(data), "--try", "train-images=1000", "--root", tmp_path / "root")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert result.err.startswith("error: --try: 'train-images=1000' trains as the proxy setting does (5 epoch(s) on all images")
    assert not (tmp_path / "root").exists()


def test_a_search_set_too_small_to_rank_is_refused_before_training(cli, tmp_path):
    result = cli("calibrate", "--alpha-range", "1:2:1", "--beta-range", "1", "--gamma-range", "1", "--root", tmp_path)
    assert result.code == 2 and result.err == (
        "error: the search's set has 1 candidate(s); a rank correlation needs at least 3: "
        "widen the coefficient ranges or the tolerance (see scaler candidates)\n")
    assert not any(tmp_path.iterdir())  # no empty journal and lock left in a study folder


def test_plot_paths_that_fail_only_when_written_are_refused_first(cli, tmp_path):
    (tmp_path / "dir.png").mkdir()
    folder = cli("calibrate", "--plot", tmp_path / "dir.png", "--root", tmp_path / "r")
    assert folder.code == 2 and folder.err == f"error: --plot: plot '{tmp_path / 'dir.png'}' is a folder; name a file in it\n"
    pgf = cli("calibrate", "--plot", tmp_path / "x.pgf", "--root", tmp_path / "r")  # needs LaTeX to write
    assert pgf.code == 2 and "has no picture format" in pgf.err and ".pgf" not in pgf.err.split("end it with one of")[1]


def test_a_setting_at_another_base_resolution_trains_on_data_stored_as_its_search_stores_it(cli, tmp_path):
    """The data was stored once at the largest resolution of every setting: a try at a higher
    base resolution changed the proxy's pixels, so its `scaler search` command no longer
    reproduced the calibration's numbers."""
    args = [*micro(tmp_path), "--repeats", "1", "--root", tmp_path / "studies", "--name", "cal", "--format", "json"]
    args[args.index("train-images=32")] = "base-resolution=12"
    result = cli(*args, "--try", "base-resolution=24")
    assert result.code == 0, result.err
    frame = pd.read_csv(tmp_path / "studies" / "cal" / "results.csv")
    for row in json.loads(result.out)[1:3]:  # the proxy, and the try below the largest resolution
        command = shlex.split(row["command"])
        searched = cli(*command[1:], "--root", tmp_path / "searches", "--quiet", "--format", "json")
        assert searched.code == 0, searched.err
        by_candidate = {r["candidate"]: r["val_loss"] for r in json.loads(searched.out)}
        for _, trained in frame[frame["label"] == row["label"]].iterrows():
            assert by_candidate[trained["candidate"]] == pytest.approx(trained["val_loss"], rel=1e-12)


def test_ctrl_c_while_a_finished_calibration_is_drawn_says_nothing_is_left_to_resume(cli, tmp_path, monkeypatch):
    """A Ctrl-C while the plot or table of a calibration whose trainings all finished is made
    names the folder and that nothing is left to train, not a bare 'interrupted'."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    args = [*micro(tmp_path), "--repeats", "1", "--root", tmp_path / "studies", "--name", "cal"]
    monkeypatch.setattr(sys.modules["scaler.cli.calibrate"], "draw", interrupted)
    result = cli(*args)
    assert result.code == 130 and result.err.strip().splitlines()[-1] == (
        f"interrupted: all 9 trainings had finished; the same command shows the results (in {tmp_path / 'studies' / 'cal'})")
    monkeypatch.undo()
    assert cli(*args).code == 0 and (tmp_path / "studies" / "cal" / "calibration.png").is_file()


def test_a_calibration_recorded_with_a_tolerance_as_typed_resumes_under_that_spelling(tmp_path):
    """A surface search's --tolerance (unused) is now left at its default, and a
    --reference-train-images equal to the proxy's images unset; a calibration an earlier
    scaler recorded with either as typed is still found by its command's options."""
    search = replace(SearchConfig(), space=CandidateSpace(mode="surface"))
    config = CalibrationConfig(search=search, reference=reference_setting(search))
    assert config.resumable(tmp_path, "old", 900, 0.5, 0.2) == config  # nothing recorded: as this scaler spells it
    loose = replace(config, search=replace(search, space=replace(search.space, tolerance=0.5)))  # the tolerance as typed
    both = replace(loose, reference=replace(loose.reference, train_images=900))
    for recorded in (loose, both):
        (tmp_path / "old").mkdir(exist_ok=True)
        (tmp_path / "old" / "calibration.json").write_text(json.dumps({"fingerprint": recorded.fingerprint()}))
        assert config.resumable(tmp_path, "old", 900, 0.5, 0.2) == recorded
