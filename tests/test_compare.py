"""`scaler compare`: strategies at equal nominal FLOPs, the paired verdicts, and the study's
promises (resume after SIGKILL with every (network, repeat) trained once, a clash refused)."""

from __future__ import annotations

import io
import json
from collections import Counter
import math
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
from markdown_it import MarkdownIt
from rich.console import Console
import pandas as pd
import pytest
from scipy import stats

from scaler.candidates import ProxyBase
from scaler.counting import count_model
from scaler.errors import UsageError
from scaler.models.factory import load_factory
from scaler.models import network_spec
from scaler.models.init import no_zero_init_note
from scaler.experiments.comparison import ATTR_POINTS, Comparison, CompareConfig, at_equal_macs, build_points, strategies, verdict
from scaler.scaling import round_resolution
from scaler.states import State
from scaler.experiments.repeats import correctness
from scaler.experiments.search import SearchConfig, SearchFolder
from scaler.data import load_dataset
from scaler.data.manifest import keep_files
from scaler.data.options import DataOptions
from PIL import Image
from scaler.cli.compare import _from_search, tally_lines, verdict_text
from scaler.statistics import best_reaches_chance, difference_test, pack_correct
from scaler.study.experiment import Record, WorkItem
from tests.test_factories import TINY_NET
from tests.test_hostile import make_folder

SCALER = str(Path(sys.executable).parent / "scaler")
MICRO = ["--base-resolution", "32", "--phis", "2", "--train-images", "64", "--val-images", "40", "--batch-size", "16",
         "--epochs", "1", "--threads", "1", "--device", "cpu", "--quiet"]  # fmt: skip


@pytest.fixture
def net(tmp_path: Path) -> str:
    path = tmp_path / "tinynet.py"
    path.write_text(TINY_NET)
    return f"{path}:make"


def compare_args(net: str, root: Path, *extra: str, name: str = "cmp") -> list[str]:
    return ["compare", "--base", net, *MICRO, "--root", str(root), "--name", name, *extra]


def complete_trials(folder: Path) -> dict[tuple[int, int], int]:
    """How many COMPLETE trials each (point, repeat) has in the study's journal."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "study.journal")))
    try:
        study = optuna.load_study(study_name=folder.name, storage=storage)
    except KeyError:
        return {}
    counts: dict[tuple[int, int], int] = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        key = (t.params["point"], t.params["repeat"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_compound_may_equal_another_strategy():
    """A search whose best is a single dimension hands compound that point: the duel is then its own control."""
    assert [s.name for s in strategies("depth", 2.0, (2.0, 1.0, 1.0))] == ["compound", "depth"]


def test_single_dimension_strategies_spend_exactly_t():
    chosen = strategies("width,depth,resolution,fast=1.07:1.32:1.035", 2.0, (1.2, 1.1, 1.15))
    by_name = {s.name: s for s in chosen}
    assert list(by_name) == ["compound", "width", "depth", "resolution", "fast"]
    assert (by_name["width"].alpha, by_name["width"].beta, by_name["width"].gamma) == (1.0, math.sqrt(2), 1.0)
    assert (by_name["depth"].alpha, by_name["depth"].beta) == (2.0, 1.0)
    assert by_name["resolution"].gamma == math.sqrt(2)
    for name in ("width", "depth", "resolution"):
        assert by_name[name].product == pytest.approx(2.0)


@pytest.mark.parametrize(
    "text, words",
    [("width,height", "'height' is unknown"), ("x=2:2:2", "more than 10% from T"), ("x=1:2", "malformed"),
     ("depth=1:1:1.41", "not a built-in name"), ("x=0.5:2:1", "strategy x"),
     ("fast=2:1:1,fast=1:1:1.41", "strategy 'fast' is given twice; give each strategy once"),
     ("width,depth,width", "strategy 'width' is given twice; give each strategy once"),  # not merged unsaid
     ("depth,x=2:1:1", r"strategies depth and x are both \(2, 1, 1\): they would train the same networks twice; keep one")],
)  # fmt: skip
def test_bad_strategies_are_refused(text, words):
    with pytest.raises(UsageError, match=words):
        strategies(text, 2.0, (1.2, 1.1, 1.15))


@pytest.mark.parametrize(
    "args, flag, words",
    [(["--target", "-1"], "--target", "must be in (1, 64]"), (["--phis", "5"], "--phis", "strategy depth at phi 5"),
     (["--strategies", ""], "--strategies", "nothing to compare"), (["--plot", "no/such/dir/x.png"], "--plot", "does not exist"),
     (["--phis", "0"], "--phis", "1..8"), (["--strategies", "fast=2:1:1,fast=1:1:1.41"], "--strategies", "given twice"),
     (["--strategies", "x=2:1:1,y=2:1:1"], "--strategies", "strategies x and y are both (2, 1, 1)")],
)  # fmt: skip
def test_bad_compare_input_is_one_line_before_anything_is_created(cli, tmp_path, args, flag, words):
    result = cli("compare", *args, "--root", tmp_path)
    assert result.code == 2 and re.match(rf"error: {flag}[: ]", result.err) and words in result.err, result.err
    assert result.err.count("\n") == 1 and not any(tmp_path.iterdir())


def test_points_are_the_base_then_every_strategy_at_each_phi(net):
    config = CompareConfig(base=ProxyBase(net, 32, 1.0, 10), max_phi=2)
    points = build_points(config)
    assert [(p.strategy, p.phi) for p in points] == [("base", 0)] + [
        (s, phi) for phi in (1, 2) for s in ("compound", "width", "depth", "resolution")
    ]
    depth2 = next(p for p in points if p.strategy == "depth" and p.phi == 2)
    res2 = next(p for p in points if p.strategy == "resolution" and p.phi == 2)
    assert depth2.depth_mult == 4.0 and depth2.width_mult == 1.0 and depth2.resolution == 32
    assert res2.resolution == round_resolution(32 * 2.0) and res2.params == points[0].params
    assert [p.nominal_ratio for p in points if p.strategy != "compound"][1:] == [2.0] * 3 + [4.0] * 3  # not 2.0000000000000004
    compound2 = next(p for p in points if p.strategy == "compound" and p.phi == 2)
    assert compound2.nominal_ratio == pytest.approx((1.2 * 1.1**2 * 1.15**2) ** 2)  # its own product, not T
    count = count_model(config.base.spec(depth2.width_mult, depth2.depth_mult), depth2.resolution)
    assert (depth2.params, depth2.macs) == (count.params, count.macs)
    assert depth2.macs_ratio == count.macs / points[0].macs


def _records(point: int, accuracy: float | list[float], images: int = 400, repeats: int = 2) -> list[Record]:
    """`repeats` runs of one point, repeat r right on a random share accuracy[r] of the images."""
    rng = np.random.default_rng(point)
    shares = accuracy if isinstance(accuracy, list) else [accuracy] * repeats
    out = []
    for r, share in enumerate(shares):
        correct = rng.random(images) < share
        attrs = {"top1": float(correct.mean()), "val_correct": pack_correct(correct), "val_images": images}
        out.append(Record(WorkItem.of(point=point, repeat=r), State.COMPLETE, "", attrs))
    return out


def test_verdicts_follow_the_paired_test():
    strong, weak = _records(1, 0.8), _records(2, 0.3)
    assert verdict(strong, weak)[1] == "better"
    assert verdict(weak, strong)[1] == "worse"
    p, word = verdict(strong, strong)
    assert word == "tied" and p == 1.0
    assert verdict(strong, []) == (None, "")  # nothing finished yet: no verdict
    assert verdict(strong, weak, skip=True) == (None, "")


def test_a_verdict_reads_the_repeats_both_sides_finished():
    # a trails b by 6 points on repeats 0 and 1; its repeat 2, which b lacks (failed), is far
    # ahead: the verdict must not let it turn "worse" into "better"
    a = _records(1, [0.50, 0.52, 0.80], images=2000)
    b = _records(2, [0.56, 0.58], images=2000) + [Record(WorkItem.of(point=2, repeat=2), State.FAILED, "boom", {})]
    p, word = verdict(a, b)
    assert word in ("worse", "tied") and verdict(b, a)[1] in ("better", "tied")
    assert word == "worse" and p < 0.05  # the same 6-point gap on both seeds and 2,000 images


def test_seed_noise_makes_a_verdict_tied_where_the_images_alone_would_not():
    # b is 5 points below a's mean, but a's three seeds spread over 30-70%: another seed could
    # undo the gap, though on the validation images alone it is clear
    a, b = _records(1, [0.3, 0.7, 0.5], images=2000), _records(2, [0.45, 0.45, 0.45], images=2000)
    p, word = verdict(a, b)
    assert word == "tied" and p > 0.3
    per_image = [np.mean(correctness(side), axis=0) for side in (a, b)]
    assert stats.ttest_rel(*per_image).pvalue < 1e-4  # the images alone (the old test) would call it
    difference, _ = difference_test(correctness(a), correctness(b))
    assert difference == pytest.approx(np.mean([float(r.attrs["top1"]) for r in a]) - np.mean([float(r.attrs["top1"]) for r in b]))


def test_a_comparison_restored_where_its_factory_builds_other_networks_is_refused(net):
    """As a search is (test_workers): the file edited since, the comparison's networks are not
    the ones it counted; the check rebuilds its smallest and its largest."""
    config = CompareConfig(base=ProxyBase(net, 32, 1.0, 10), max_phi=1)
    attrs = json.loads(json.dumps(Comparison.plan(config, repeats=1).study_attrs()))
    assert len(Comparison.restore(config, attrs).points) == 5  # the same file: restored
    path = Path(net.rpartition(":")[0])
    path.write_text(path.read_text().replace("(40, 2, 2)", "(64, 2, 2)"))
    load_factory.cache_clear()  # as a new process would import it
    with pytest.raises(UsageError, match=f"factory '{re.escape(net)}' builds [\\d,]+ parameters when called with width=1, depth=1, ") as refused:
        Comparison.restore(config, attrs)  # the base, the smallest, is checked first
    assert refused.value.param == "base"
    # an edit that leaves the base as it was is found in the largest network
    path.write_text(TINY_NET.replace("    layers = [conv(3, cin, 2)]\n", "    layers = [conv(3, cin, 2)] + [conv(cin, cin, 1)] * (width * depth > 1)\n"))
    load_factory.cache_clear()
    largest = max(attrs[ATTR_POINTS], key=lambda point: point["params"])
    with pytest.raises(UsageError, match=f"when called with width={largest['width_mult']:g}, depth={largest['depth_mult']:g}, "):
        Comparison.restore(config, attrs)


def test_the_table_reads_each_verdict_from_the_right_side(net):
    """vs base: does this point beat the unscaled base? vs compound: does compound beat this
    point? A swapped pair of arguments would turn every 'better' into 'worse'."""
    config = CompareConfig(base=ProxyBase(net, 32, 1.0, 10), max_phi=1)
    comparison = Comparison(config, build_points(config), repeats=2)
    assert comparison.describe() == "5 networks (base + 4 strategies x phi 1) x 2 repeats"  # the start line's words
    assert Comparison(config, build_points(config), repeats=1).describe() == "5 networks (base + 4 strategies x phi 1) x 1 repeat"
    index = {p.strategy: p.index for p in comparison.points}
    shares = {"base": 0.5, "compound": 0.8, "width": 0.3, "depth": 0.8, "resolution": 0.95}
    records = [r for strategy, share in shares.items() for r in _records(index[strategy], share, images=2000)]
    frame = comparison.table(records).set_index("strategy")
    assert frame.loc["base", "vs_base"] == "" and frame.loc["base", "compound_vs_it"] == ""
    assert dict(frame["vs_base"].drop("base")) == {"compound": "better", "width": "worse", "depth": "better", "resolution": "better"}
    assert dict(frame["compound_vs_it"].drop(["base", "compound"])) == {"width": "better", "depth": "tied", "resolution": "worse"}
    summary = comparison.summary(frame.reset_index(), records)
    assert summary["tally"] == {"better": 1, "tied": 1, "worse": 1}
    equal = {d["strategy"]: d["verdict"] for d in summary["compound_vs_single"] if d["equal_macs"]}
    assert summary["tally_equal_macs"] == dict(Counter(equal.values())) and summary["unequal_macs"] == 3 - len(equal)


def test_the_tally_at_equal_macs_counts_only_duels_within_10_percent(net):
    config = CompareConfig(base=ProxyBase(net, 32, 1.0, 10), max_phi=1)
    comparison = Comparison(config, build_points(config), repeats=1)
    frame = pd.DataFrame({  # compound at 100 M MACs; width at 95 (1.05x: equal), depth at 80 (1.25x), resolution at 100
        "strategy": ["base", "compound", "width", "depth", "resolution"], "phi": [0, 1, 1, 1, 1],
        "macs": [50, 100, 95, 80, 100], "top1": [0.5, 0.7, 0.7, 0.6, 0.6],
        "compound_vs_it_p": [None, None, 0.9, 0.01, 0.02], "compound_vs_it": ["", "", "tied", "better", "better"],
    })  # fmt: skip
    frame = frame.assign(resolution=[32, 44, 32, 32, 44], params=[10, 10, 20, 20, 10])
    summary = comparison.summary(frame, [])
    assert summary["tally"] == {"tied": 1, "better": 2} and summary["unequal_macs"] == 1
    assert summary["tally_equal_macs"] == {"tied": 1, "better": 1}  # depth's win is at 1.25x its MACs: not counted


@pytest.mark.parametrize("compound", [(1.0, 1.0, 1.4), (1.0, 1.02, 1.38)])
def test_a_duel_of_compound_with_its_own_network_is_said(net, compound):
    """Compound (1, 1, 1.4) and resolution-only (1, 1, 1.41) both round 32 px to 44 px; so does
    (1, 1.02, 1.38), whose width rounds to the same channels: one network, trained with the same
    seeds, whose tie says nothing of compound. Said also where no single dimension is tallied."""
    line = ("compound builds the very network of resolution at phi 1 (the same resolution, parameters and MACs, as rounding made "
            "them): such a duel compares a network with itself, trained with the same seeds, and its tie says nothing of compound")
    for chosen, single in (("width,resolution", True), ("mine=1:1:1.41", False)):
        config = CompareConfig(base=ProxyBase(net, 32, 0.5, 10), max_phi=1, strategies=strategies(chosen, 2.0, compound))
        comparison = Comparison(config, build_points(config), repeats=1)
        summary = comparison.summary(comparison.table([]), [])
        same = {d["strategy"]: d["same_network"] for d in summary["compound_vs_single"]}
        assert same == ({"width": False, "resolution": True} if single else {"mine": True})
        assert tally_lines(summary)[-1] == (line if single else line.replace("of resolution", "of mine"))
    assert not any("very network" in line for line in tally_lines({**summary, "compound_vs_single": []}))


def test_compare_writes_tables_csv_json_and_plot_and_resumes(cli, net, tmp_path, monkeypatch):
    result = cli(*compare_args(net, tmp_path, "--repeats", "2"))
    assert result.code == 0, result.err
    folder = tmp_path / "cmp"
    frame = pd.read_csv(folder / "results.csv")
    assert len(frame) == 1 + 4 * 2 and (frame["state"] == "complete").all() and (frame["repeats"] == 2).all()
    assert list(frame["strategy"][:5]) == ["base", "compound", "width", "depth", "resolution"]
    scaled = frame[frame["phi"] > 0]
    assert scaled["vs_base"].isin(["better", "tied", "worse"]).all()
    singles = frame[frame["strategy"].isin(["width", "depth", "resolution"])]
    assert singles["compound_vs_it"].isin(["better", "tied", "worse"]).all()
    info = json.loads((folder / "compare.json").read_text())
    assert info["kind"] == "compare" and info["repeats"] == 2 and len(info["compound_vs_single"]) == 6
    assert info["compound_from"] is None  # the paper's coefficients, from no search
    assert sum(info["tally"].values()) == 6 and "pending" not in info["tally"]
    duel = info["compound_vs_single"][0]
    row = frame[(frame["strategy"] == duel["strategy"]) & (frame["phi"] == duel["phi"])].iloc[0]
    compound = frame[(frame["strategy"] == "compound") & (frame["phi"] == duel["phi"])].iloc[0]
    assert duel["compound_macs_ratio"] == pytest.approx(compound["macs"] / row["macs"])
    assert row["compound_macs_ratio"] == pytest.approx(duel["compound_macs_ratio"])  # one perspective in CSV and JSON
    assert frame.loc[frame["strategy"].isin(["base", "compound"]), "compound_macs_ratio"].isna().all()  # no duel: blank, as the table
    assert f" {duel['compound_macs_ratio']:.2f}x " in result.out  # the table's ratio as calibrate's cost reads, '1.23x'

    assert info["unequal_macs"] == sum(max(r, 1 / r) > 1.1 for r in (d["compound_macs_ratio"] for d in info["compound_vs_single"]))
    equal = [d["verdict"] for d in info["compound_vs_single"] if max(d["compound_macs_ratio"], 1 / d["compound_macs_ratio"]) <= 1.1]
    assert info["tally_equal_macs"] == dict(Counter(equal))  # the duels at equal compute, counted apart
    flat = " ".join(result.out.split())
    if info["unequal_macs"] and equal:
        assert f"at equal MACs ({len(equal)} duel{'' if len(equal) == 1 else 's'}): " + ", ".join(f"{w} in {n}" for w, n in Counter(equal).items()) in flat
    elif info["unequal_macs"]:
        assert "no duel is at equal MACs" in flat
    else:
        assert "not at equal measured MACs" not in flat
    assert (folder / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert "phi = 1" in result.out and "phi = 2" in result.out
    again = cli(*compare_args(net, tmp_path, "--repeats", "2"))
    assert again.code == 0 and "18 already finished, 0 to train" in again.err
    with monkeypatch.context() as full:  # a plot that cannot be written: the tables still shown, the plot not named
        full.setattr("scaler.plots.atomic_write_bytes", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        unplotted = cli(*compare_args(net, tmp_path, "--repeats", "2"))
    assert unplotted.code == 1 and unplotted.err.endswith(f"error: cannot write plot {folder / 'compare.png'}: No space left on device\n")
    assert "phi = 1" in unplotted.out and "results.csv" in unplotted.out and "compare.png" not in unplotted.out
    assert "compare.png" in again.out
    csv = cli(*compare_args(net, tmp_path, "--repeats", "2", "--format", "csv"))
    assert pd.read_csv(pd.io.common.StringIO(csv.out)).equals(frame)
    assert "compound against a single dimension, 6 duels" in csv.err  # the tally beside the document, on stderr
    assert ("compound_macs_ratio in CSV and JSON" in csv.err) == bool(info["unequal_macs"])  # the column the document has
    markdown = cli(*compare_args(net, tmp_path, "--repeats", "2", "--format", "markdown"))
    tokens = MarkdownIt().enable("table").parse(markdown.out)  # as a renderer reads it (rich's parser)
    tables = [i for i, t in enumerate(tokens) if t.type in ("table_open", "table_close")]
    # one table per phi: the header, the base and the 4 strategies, nothing after them run into it
    assert [sum(t.type == "tr_open" for t in tokens[a:b]) for a, b in zip(tables[::2], tables[1::2])] == [6, 6]
    paragraphs = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "paragraph_open"]
    assert any(p.startswith("compound against a single dimension, 6 duels") for p in paragraphs)

    # `scaler report` renders the folder as compare does, from its files, training nothing
    for format in ("csv", "json"):
        shown = cli("report", folder, "--format", format)
        resumed = cli(*compare_args(net, tmp_path, "--repeats", "2", "--format", format))
        assert shown.code == 0 and shown.out == resumed.out and "compound against a single dimension, 6 duels" in shown.err
    reported = cli("report", folder, "--format", "markdown", "--plot", tmp_path / "again.png")
    assert reported.code == 0 and "training" not in reported.err and (tmp_path / "again.png").read_bytes()[:4] == b"\x89PNG"
    # the tables and the tally as compare printed them; the last paragraph names the files
    paragraphs, printed = reported.out.rstrip("\n").split("\n\n"), markdown.out.rstrip("\n").split("\n\n")
    assert paragraphs[:-1] == printed[:-1] and len(paragraphs) == len(printed)
    assert paragraphs[-1].endswith("again.png") and "this run" not in reported.out

    # on an 80-column terminal, columns give way (the coefficients together) and the caption
    # names them; strategy, r, MACs, top-1 and both verdicts stay
    import scaler.cli.compare as compare_command

    screen = io.StringIO()
    monkeypatch.setattr(compare_command, "console", Console(file=screen, force_terminal=True, width=80, markup=False, color_system=None))
    assert cli("report", folder).code == 0
    lines = screen.getvalue().splitlines()
    headers = [line.split() for line in lines if line.split()[:1] == ["strategy"]]
    rows = [line for line in lines if line.startswith(" ") and line.split()[:1] in (["strategy"], ["base"], ["compound"], ["width"], ["depth"], ["resolution"])]
    assert len(rows) == 2 * 6 and max(map(len, rows)) <= 80 and len(headers) == 2
    assert all(h[:6] == ["strategy", "r", "MACs", "M", "top-1", "vs"] and " ".join(h).count("vs") == 2 for h in headers)
    assert ("left out to fit 80 columns: s, n, params, MACs ratio, alpha, beta, gamma, compound MACs, 95% interval, state "
            "(a wider terminal") in " ".join(" ".join(lines).split())


def test_a_verdict_no_test_reached_is_explained_under_the_tables(cli, net, tmp_path):
    result = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--epochs", "2", "--max-seconds", "0.001"))
    frame = pd.read_csv(tmp_path / "cmp" / "results.csv")
    assert set(frame["state"]) == {"timeout"} and set(frame["vs_base"].dropna()) == {"unknown"}
    assert result.code == 1 and "no network completed" in result.err  # nothing to rank: a runtime failure
    note = "unknown: a network of the pair stopped at --max-seconds, after fewer epochs than planned"
    assert note in " ".join(result.out.split()) and "no result:" not in result.out
    assert note in cli("report", tmp_path / "cmp", "--format", "csv").err  # beside the document, on stderr


def test_the_best_of_several_accuracies_is_judged_against_chance():
    """The highest top-1 (unmeasured ones left out) decides, its interval's low end against one
    in as many as the classes: the rule a comparison and a calibration's reference share."""
    reached = "its top-1 interval reaches 10.0% (one of 10 classes)"
    assert best_reaches_chance([0.2, float("nan"), 0.3], [0.15, 0.5, 0.09], 10) == reached  # 0.3 is the best
    assert best_reaches_chance([0.3, 0.2], [0.11, 0.05], 10) is None
    assert best_reaches_chance([float("nan")], [0.01], 10) is None and best_reaches_chance([], [], 10) is None


def test_a_comparison_whose_best_network_is_at_chance_says_so(cli, net, tmp_path):
    """Every network within a guess reads 'tied' in each duel: like a search at chance, the
    comparison says its ties tell nothing (it said nothing, and the tally read as a finding)."""
    from scaler.cli.compare import chance_lines

    frame = pd.DataFrame({"state": ["complete", "complete", "failed"], "top1": [0.12, 0.094, None],
                          "top1_low": [0.08, 0.03, None]})  # fmt: skip
    info = {"config": {"base": {"num_classes": 10}, "train": {"epochs": 1}}}
    assert chance_lines(frame, info) == [
        "the best network is not above chance: its top-1 interval reaches 10.0% (one of 10 classes), so its ties tell "
        "nothing of the strategies; train longer (--epochs), on more images or at a larger --base-resolution"]
    assert chance_lines(frame.assign(top1_low=[0.11, 0.03, None]), info) == []  # the best's interval is above 10%
    assert chance_lines(frame, {"config": {"base": {}}}) == []  # classes unknown
    result = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1"))  # a micro comparison: at chance
    table = pd.read_csv(tmp_path / "cmp" / "results.csv")
    assert chance_lines(table, json.loads((tmp_path / "cmp" / "compare.json").read_text()))
    assert result.code == 0 and "the best network is not above chance" in " ".join(result.out.split())
    assert "the best network is not above chance" in cli("report", tmp_path / "cmp", "--format", "csv").err


def test_report_of_an_interrupted_comparison_says_it_is_unfinished_and_keeps_its_names(cli, net, tmp_path, monkeypatch):
    trained = Comparison.run

    def stopped_at_the_fourth(self, item, *args):  # Ctrl-C during the fourth network
        if item["point"] == 3:
            raise KeyboardInterrupt
        return trained(self, item, *args)

    monkeypatch.setattr(Comparison, "run", stopped_at_the_fourth)
    # a strategy may be called NA: a name, not a missing value, when read back
    args = compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--strategies", "width,NA=1:1.2:1.18,depth")
    assert cli(*args).code == 130 and (tmp_path / "cmp" / "compare.png").stat().st_size > 0  # what finished, drawn
    rows = json.loads((shown := cli("report", tmp_path / "cmp", "--format", "json")).out)
    assert shown.code == 0 and [r["strategy"] for r in rows] == ["base", "compound", "width", "NA", "depth"]
    assert [r["state"] for r in rows] == ["complete"] * 3 + ["interrupted", "queued"]
    assert [r["epochs"] for r in rows] == [1, 1, 1, None, None]
    assert '"epochs": 1,' in shown.out and '"epochs": 1.0' not in shown.out  # counts stay whole numbers beside blanks
    assert shown.err.splitlines()[-1] == ("warning: unfinished: 2 of 5 networks still to train (1 interrupted, 1 queued); "
                                          "the figures are partial, and the command that made the folder finishes it")
    monkeypatch.undo()
    finished = cli(*args, "--format", "json")
    assert finished.code == 0 and cli("report", tmp_path / "cmp", "--format", "json").out == finished.out


def test_a_comparison_without_a_single_dimension_says_it_has_no_duel(cli, net, tmp_path):
    result = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--strategies", "compound,mine=1.2:1.1:1.15"))
    assert result.code == 0, result.err
    flat = " ".join(result.out.split())
    assert "compound against a single dimension: no duel (this comparison has no width-, depth- or resolution-only strategy)" in flat
    assert "duels (" not in flat


def test_same_name_with_another_configuration_is_refused(cli, net, tmp_path):
    assert cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1")).code == 0
    clash = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--strategies", "width"))
    assert clash.code == 2 and "(--strategies depth: (2, 1, 1) -> unset; --strategies resolution: (1, 1, 1.41421) -> unset)" in clash.err
    compound = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--compound", "1.3,1.1,1.1"))
    assert compound.code == 2 and "(--compound/--from: (1.2, 1.1, 1.15) -> (1.3, 1.1, 1.1))" in compound.err
    target = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--target", "2.2", "--compound", "1.2,1.1,1.2"))
    assert target.code == 2 and "(--target: 2 -> 2.2; --compound/--from: " in target.err  # what was typed comes first
    # only what differs is named, by its option: the strategies (a tuple here, a list as recorded) are the same
    other = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--epochs", "2"))
    assert other.code == 2 and "(--epochs: 1 -> 2)" in other.err and "strategies" not in other.err
    phis = cli(*compare_args(net, tmp_path, "--phis", "2", "--repeats", "1"))
    assert phis.code == 2 and "(--phis: 1 -> 2)" in phis.err


def test_zero_repeats_is_refused_before_any_folder_exists(cli, net, tmp_path):
    result = cli(*compare_args(net, tmp_path, "--repeats", "0"))
    assert result.code == 2 and "--repeats 0 is not allowed" in result.err
    assert not (tmp_path / "cmp").exists()


def test_a_search_folder_says_where_other_data_than_its_own_is_given(tmp_path):
    """`compare --from` with --data: the files the search kept (data-files.json) against those
    given now, a few named (a note only where just their times differ, as after a copy); for a
    search that kept none, the synthetic set against another source. Nothing to say where they
    agree, or where it cannot be told."""
    def folder(root: Path, size: int) -> Path:
        for c in "ab":
            for i in range(3):
                (root / c).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (size, size), (size, 40 * i, 0 if c == "a" else 255)).save(root / c / f"{i}.png")
        return root

    mine, theirs = folder(tmp_path / "mine", 8), folder(tmp_path / "theirs", 40)  # 76- and 104-byte files
    (study := tmp_path / "s").mkdir()
    keep_files(study, load_dataset(str(mine), storage_resolution=8))
    search = SearchFolder(study, pd.DataFrame(), {"config": SearchConfig(data=DataOptions(source=str(mine))).identity()})
    chosen = "; the coefficients were chosen on the search's data"
    assert search.data_notice(str(mine), 0.2) is None
    assert search.data_notice(str(theirs), 0.2) == (f"warning: {theirs} is not the data {study} searched on: in {theirs}, 6 file(s) "
                                                    f"of another size (a/0.png, a/1.png, a/2.png and 3 more){chosen}")
    shutil.copytree(mine, copied := tmp_path / "copied, again", copy_function=shutil.copyfile)  # new times, same names and sizes
    assert search.data_notice(str(copied), 0.2) == (
        f"note: {copied} holds the files {study} searched on by name and size, but 6 file(s) with only a new modification time "
        "(a/0.png, a/1.png, a/2.png and 3 more), as a copy that did not keep the times leaves them (cp -p and rsync -a keep "
        "them): the same data where it was copied, other data where those files were replaced")
    Image.new("RGB", (8, 8)).save(mine / "b" / "new.png")
    assert search.data_notice(str(mine), 0.2) == f"warning: {mine} is not the data {study} searched on: in {mine}, 1 file(s) added (b/new.png){chosen}"
    assert search.data_notice("synthetic", 0.2) == f"warning: {study} searched on 6 image files, not on the synthetic data{chosen}"
    (synthetic := tmp_path / "t").mkdir()  # a search on the synthetic set keeps no files
    on_synthetic = SearchFolder(synthetic, pd.DataFrame(), {"config": SearchConfig().identity()})
    assert on_synthetic.data_notice("synthetic", 0.2) is None
    assert on_synthetic.data_notice(str(mine), 0.2) == f"warning: {synthetic} searched on the built-in synthetic data, not on {mine}{chosen}"
    assert SearchFolder(synthetic, pd.DataFrame(), {}).data_notice(str(mine), 0.2) is None  # nothing recorded: nothing said
    (older := tmp_path / "u").mkdir()  # a folder search made before searches kept their files
    on_folder = SearchFolder(older, pd.DataFrame(), {"config": SearchConfig(data=DataOptions(source="imgs")).identity()})
    assert on_folder.data_notice("synthetic", 0.2) == f"warning: {older} searched on imgs, not on synthetic{chosen}"
    assert on_folder.data_notice(str(theirs), 0.2) is None  # a path relative to where it ran: cannot be told


def test_compound_coefficients_from_a_finished_search(cli, console_script, net, tmp_path, monkeypatch):
    unfinished = Path(__file__).parent / "data" / "legacy-search"  # 2 candidates still queued
    refused = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--from", str(unfinished)))
    assert refused.code == 2 and "is not finished (2 queued)" in refused.err and not (tmp_path / "cmp").exists()
    scaled = cli("scale", "--from", unfinished, "--phi", "1")  # the same refusal: the best so far is not the search's
    assert scaled.code == 2 and "is not finished (2 queued)" in scaled.err and scaled.out == ""
    assert refused.err.startswith(f"error: --from: search {unfinished} is not finished") and scaled.err == refused.err
    grid = ["--alpha-range", "1:2:1", "--beta-range", "1", "--gamma-range", "1:1.42:0.41"]  # (2, 1, 1) and (1, 1, 1.41)
    micro = [a for a in MICRO if a not in ("--phis", "2")]
    assert cli("search", "--base", net, *grid, *micro, "--root", tmp_path, "--name", "s").code == 0
    best = json.loads((tmp_path / "s" / "search.json").read_text())["best"]
    other_t = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--from", str(tmp_path / "s"), "--target", "3"))
    assert other_t.code == 2 and "more than 10% from T = 3" in other_t.err
    result = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--from", str(tmp_path / "s")))
    assert result.code == 0, result.err
    info = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert info["strategies"]["compound"] == [best["alpha"], best["beta"], best["gamma"]]
    # where compound came from stays with the comparison (it kept the coefficients alone), and its report says it
    assert info["compound_from"] == str((tmp_path / "s").resolve())
    said = f"compound ({best['alpha']:g}, {best['beta']:g}, {best['gamma']:g}) is the best candidate of search {(tmp_path / 's').resolve()}"
    assert said in " ".join(cli("report", tmp_path / "cmp").out.split()) and said in result.out.replace("\n", " ")
    both = cli(*compare_args(net, tmp_path, "--from", str(tmp_path / "s"), "--compound", "1.2,1.1,1.15"))
    assert both.code == 2 and "give one" in both.err
    # another base is warned of, and only where the comparison runs: refused, it says why alone
    refused = cli(*compare_args("B0", tmp_path, "--phis", "1", "--repeats", "1", "--from", str(tmp_path / "s"), "--target", "3"))
    assert refused.code == 2 and refused.err.count("\n") == 1 and "more than 10% from T = 3" in refused.err
    on_b0 = cli(*compare_args("B0", tmp_path, "--phis", "1", "--repeats", "1", "--from", str(tmp_path / "s"), name="b0"))
    assert on_b0.code == 0, on_b0.err
    assert f"warning: {tmp_path / 's'} searched base {net}, this comparison scales B0" in on_b0.err
    assert "this comparison scales" not in result.err  # the search's own base: no warning
    images = tmp_path / "images"  # other data than the search's: said (it went unsaid)
    for c in range(10):
        for i in range(6):
            (images / f"c{c}").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (25 * c, 40 * i, 0)).save(images / f"c{c}" / f"{i}.png")
    elsewhere = cli(*compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", "--from", str(tmp_path / "s"), "--data", images,
                                  name="elsewhere"))
    assert elsewhere.code == 0, elsewhere.err
    assert (f"warning: {tmp_path / 's'} searched on the built-in synthetic data, not on {images}; the coefficients were "
            "chosen on the search's data") in elsewhere.err.splitlines()
    # without --base, --from takes the base the search scaled (as scale --from does), not B0
    taken = cli(*[a for a in compare_args(net, tmp_path, "--phis", "1", "--repeats", "1", name="taken") if a not in ("--base", net)],
                "--from", str(tmp_path / "s"))
    assert taken.code == 0, taken.err  # no warning but the tiny net's own: it has no block to start at zero
    assert [line for line in taken.err.splitlines() if "warning" in line] == [f"warning: {no_zero_init_note(net)}"], taken.err
    assert f"compound coefficients from {tmp_path / 's'}: ({best['alpha']:g}, {best['beta']:g}, {best['gamma']:g}) and its base {net}" in taken.err
    assert json.loads((tmp_path / "taken" / "compare.json").read_text())["config"]["base"]["variant"] == net
    # scale --from lays out the searched base's family, at its own size (not the proxy's base width or resolution)
    family = cli("scale", "--from", tmp_path / "s", "--phi", "0-1", "--format", "json")
    assert family.code == 0 and "warning" not in family.err, family.err
    rows = json.loads(family.out)
    scaled = count_model(network_spec(net, width=best["beta"], depth=best["alpha"]), 4 * round(224 * best["gamma"] / 4))
    assert (rows[0]["resolution"], rows[1]["params"], rows[1]["macs"]) == (224, scaled.params, scaled.macs)
    on_b0_family = cli("scale", "--from", tmp_path / "s", "--base", "B0", "--phi", "1")
    assert on_b0_family.code == 0 and "Compound family of b0" in on_b0_family.out
    assert f"warning: {tmp_path / 's'} searched base {net}; this table scales b0" in on_b0_family.err
    # the same file spelled from here is the same base (a search records its --base as typed)
    monkeypatch.chdir(tmp_path)
    here = cli("scale", "--from", "s", "--base", "./tinynet.py:make", "--phi", "1", "--format", "csv")
    assert here.code == 0 and "warning" not in here.err, here.err
    assert not [line for line in _from_search(SearchFolder.read(Path("s")), "tinynet.py:make")[1] if line.startswith("warning")]
    # a recorded base that is no longer where it was (moved, or typed relative to another folder) is --from's fault
    (tmp_path / "tinynet.py").rename(tmp_path / "moved.py")
    moved = console_script("scale", "--from", "s", "--phi", "1", cwd=tmp_path)  # a new process: no factory imported yet
    assert moved.code == 2 and moved.out == "" and moved.err.count("\n") == 1, moved.err
    assert moved.err.startswith(f"error: --from: the base s scaled, {net}, is not here as it was searched: factory '{net}': no file "), moved.err
    assert moved.err.endswith("; give --base to use that network (or another)\n")
    again = console_script("scale", "--from", "s", "--base", "moved.py:make", "--phi", "1", cwd=tmp_path)
    assert again.code == 0 and f"warning: s searched base {net}; this table scales moved.py:make" in again.err
    compared = console_script("compare", "--from", "s", *MICRO, "--phis", "1", cwd=tmp_path)  # compare --from takes it alike
    assert compared.code == 2 and compared.err.startswith(f"error: --from: the base s scaled, {net}, is not here as it was searched: "), compared.err
    # another network under the recorded name (the search's relative path read from another
    # folder, or the file edited since) is refused alike: its best candidate's parameters differ
    (tmp_path / "tinynet.py").write_text(TINY_NET.replace("(40, 2, 2)", "(64, 2, 2)"))
    other = runpy.run_path(str(tmp_path / "tinynet.py"))["make"](0.5 * best["width_mult"], best["depth_mult"], 10)
    built = sum(p.numel() for p in other.parameters())
    for command in (["scale", "--phi", "1"], ["compare", *MICRO, "--phis", "1"]):
        swapped = console_script(command[0], "--from", "s", *command[1:], cwd=tmp_path)
        assert swapped.code == 2 and swapped.err.count("\n") == 1, swapped.err
        assert (f"is not here as it was searched: factory '{net}' builds {built:,} parameters when called with "
                f"width={0.5 * best['width_mult']:g}, depth={best['depth_mult']:g}, num_classes=10, where the study counted "
                f"{best['params']:,}: it is not the network") in swapped.err, swapped.err
    assert console_script("scale", "--from", "s", "--base", net, "--phi", "1", cwd=tmp_path).code == 0  # --base: taken as given
    assert not (tmp_path / "searches").exists()


def test_compare_from_trains_on_the_search_s_proxy_unless_told_otherwise(cli, tmp_path, monkeypatch):
    """`compare --from` took the search's coefficients and base, then trained them on its own
    defaults (the built-in data at 64 px, width 0.5, 5 epochs of AdamW) whatever the search
    had trained on, saying nothing: a verdict on a proxy that did not choose compound."""
    images = make_folder(tmp_path / "images", classes=3, per_class=12, size=24)
    proxy = ["--data", str(images), "--base-resolution", "32", "--base-width", "0.25", "--standard-init", "--epochs", "1",
             "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05", "--val-fraction", "0.3", "--seed", "3"]  # fmt: skip
    run = ["--threads", "1", "--device", "cpu", "--quiet", "--root", tmp_path]
    grid = ["--alpha-range", "1:2:1", "--beta-range", "1", "--gamma-range", "1"]
    assert cli("search", *grid, "--target", "2", "--tolerance", "0.1", *proxy, *run, "--name", "s").code == 0
    searched = json.loads((tmp_path / "s" / "search.json").read_text())["config"]
    compared = cli("compare", "--from", tmp_path / "s", "--phis", "1", "--repeats", "1", "--strategies", "depth", "--seed", "4",
                   *run, "--name", "c")  # fmt: skip
    assert compared.code == 0, compared.err
    config = json.loads((tmp_path / "c" / "compare.json").read_text())["config"]
    assert (config["base"], config["data"]) == (searched["base"], searched["data"])
    assert config["train"] == {**searched["train"], "seed": 4}  # an option given here wins
    assert (f"proxy from {tmp_path / 's'}, as it trained (options given here win): --base-resolution 32 --base-width 0.25 "
            f"--standard-init --data {images} --val-fraction 0.3 --epochs 1 --batch-size 8 --lr 0.05 --optimizer sgd\n") in compared.err
    # options that go together: --steps given here takes not the search's --epochs, --optimizer
    # not its --lr, --data not its --val-fraction
    paired = cli("compare", "--from", tmp_path / "s", "--phis", "1", "--repeats", "1", "--strategies", "depth", "--steps", "2",
                 "--optimizer", "adamw", "--data", images, *run, "--name", "c2")  # fmt: skip
    assert paired.code == 0, paired.err
    config = json.loads((tmp_path / "c2" / "compare.json").read_text())["config"]
    assert (config["train"]["steps"], config["train"]["lr"], config["data"]["val_fraction"]) == (2, None, 0.2)
    assert config["train"]["epochs"] != 1 and config["train"]["batch_size"] == 8  # the others still the search's
    # data named by a relative path: where the search ran is not recorded, so it is not taken
    monkeypatch.chdir(tmp_path)
    assert cli("search", *grid, "--target", "2", "--tolerance", "0.1", *proxy[2:], "--data", "images", *run, "--name", "rel").code == 0
    relative = cli("compare", "--from", tmp_path / "rel", "--phis", "1", "--repeats", "1", *run, "--name", "c4")
    assert relative.code == 2 and relative.err == (f"error: --from: {tmp_path / 'rel'} trained on --data images, a path relative "
                                                   "to the folder it ran in, which is not recorded: give --data (its path from here)\n")
    # data that is no longer where the search read it is --from's fault, not a --data nobody typed
    images.rename(tmp_path / "moved")
    moved = cli("compare", "--from", tmp_path / "s", "--phis", "1", "--repeats", "1", *run, "--name", "c3")
    assert moved.code == 2 and moved.err.startswith(f"error: --from: the data {tmp_path / 's'} trained on, {images}, cannot be read here: "), moved.err
    assert moved.err.rstrip().endswith("give --data to train on it where it is (or on other data)")


FIXED_SIZE_NET = """
from torch import nn


def make(width, depth, num_classes):  # 32 px only: a flatten before the linear layer
    return nn.Sequential(nn.Conv2d(3, 8, 3, 4, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, num_classes))
"""


def test_scale_from_a_network_that_cannot_take_the_size_blames_the_size_not_the_search(cli, tmp_path):
    """A searched network found here but unable to run at a size `scale` asks for is refused
    for that size, as `--base` would be; only a recorded base not found here is `--from`'s."""
    path = tmp_path / "fixed.py"
    path.write_text(FIXED_SIZE_NET)
    micro = [a for a in MICRO if a not in ("--phis", "2")]
    grid = ["--alpha-range", "1:2:1", "--beta-range", "1", "--gamma-range", "1"]  # (2, 1, 1) alone: never resized
    assert cli("search", "--base", f"{path}:make", *grid, *micro, "--root", tmp_path, "--name", "s").code == 0
    native = cli("scale", "--from", tmp_path / "s", "--phi", "0")  # the factory at 224 px
    assert native.code == 2 and native.err.count("\n") == 1 and not native.err.startswith(("error: --from", "error: --base")), native.err
    assert f"factory '{path}:make'" in native.err and "224" in native.err
    fits = cli("scale", "--from", tmp_path / "s", "--phi", "0", "--base-resolution", "32", "--format", "json")
    assert fits.code == 0 and json.loads(fits.out)[0]["resolution"] == 32, fits.err


def test_sigkill_then_resume_trains_every_network_and_repeat_once(net, tmp_path):
    args = compare_args(net, tmp_path, "--repeats", "2", "--epochs", "2", name="killed")
    folder = tmp_path / "killed"
    process = subprocess.Popen([SCALER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if (folder / "study.journal").exists() and 2 <= sum(complete_trials(folder).values()) < 12:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = sum(complete_trials(folder).values())
    assert 2 <= before < 18
    result = subprocess.run([SCALER, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert complete_trials(folder) == {(p, r): 1 for p in range(9) for r in range(2)}


def test_equal_macs_is_ten_percent_either_way():
    """Compound with 11% more MACs than a strategy, or 11% fewer, is not at equal MACs."""
    assert at_equal_macs(1.0) and at_equal_macs(1.09) and at_equal_macs(1 / 1.09)
    assert not at_equal_macs(1.11) and not at_equal_macs(1 / 1.11)


def test_a_verdict_shows_its_p_value_and_never_p_0():
    assert verdict_text(0.0004, "better") == "better (p < 0.001)"
    assert verdict_text(0.0372, "tied") == "tied (p = 0.037)"
    assert verdict_text(math.nan, "tied") == "tied" and verdict_text(0.5, "") == ""
