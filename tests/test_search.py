"""End-to-end micro searches: ranked results, resume from a folder written before the engine
split, clashes, pruned trainings, reports and plots. (Failures, pruners and exactly-once are
the engine's: tests/test_engine.py; kills at many points, tests/test_workers.py.)"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import replace
import shutil
import signal
from pathlib import Path

import optuna
import pandas as pd
import pytest
from PIL import Image

from scaler.candidates import CandidateSpace, ProxyBase
from scaler.cli.results import legend
from scaler.data import SYNTHETIC_TRAIN, load_dataset
from scaler.errors import RunError, UsageError
from scaler.models import canonical_variant
from scaler.experiments import proxy
from scaler.experiments.proxy import ProxyExperiment, train_outcome
from scaler.data.options import DataOptions
from scaler.experiments.search import RESULT_COLUMNS, CompoundSearch, SearchConfig, at_chance
from scaler.runtime import Runtime
from scaler.states import State
from scaler.study.trials import item_params
from scaler.train_config import TrainConfig
from tests.conftest import TINY_BASE

# 4 candidates: (1, 1.1, 1.2), (1.2, 1, 1.2), (1.2, 1.1, 1.1), (1.2, 1.1, 1.2) on a tiny proxy.
MICRO = [
    "--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1", "--gamma-range", "1:1.2:0.1",
    "--tolerance", "0.5", "--base-resolution", "32", "--base-width", "0.25",
    "--train-images", "96", "--val-images", "48", "--batch-size", "16", "--epochs", "1",
    "--threads", "1", "--device", "cpu", "--quiet",
]  # fmt: skip


def search_args(root: Path, *extra: str, name: str = "micro") -> list[str]:
    return ["search", *MICRO, "--root", str(root), "--name", name, *extra]


def completed_trials(folder: Path) -> dict[int, int]:
    """How many COMPLETE trials each candidate has in the search's journal."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "study.journal")))
    study = optuna.load_study(study_name=folder.name, storage=storage)
    counts: dict[int, int] = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        counts[t.params["candidate"]] = counts.get(t.params["candidate"], 0) + 1
    return counts


def test_micro_search_writes_ranked_results(cli, tmp_path):
    result = cli(*search_args(tmp_path), "--format", "json")
    assert result.code == 0, result.err
    folder = tmp_path / "micro"
    # the document alone on stdout; the caption's lines (the folder, ties, reliability) on stderr
    assert len(json.loads(result.out)) == 4 and f"{folder}/results.csv · 4 candidates" in result.err
    assert "one run per candidate: intervals and ties come from the validation sample only" in result.err
    assert "★" not in result.err  # no marks beside a document that has none
    frame = pd.read_csv(folder / "results.csv")
    assert list(frame.columns) == RESULT_COLUMNS
    assert len(frame) == 4 and set(frame["state"]) == {"complete"}
    assert list(frame["rank"]) == [1, 2, 3, 4]
    # Ranked by top-1, ties broken by fewer MACs.
    keys = list(zip(-frame["top1"], frame["macs"]))
    assert keys == sorted(keys)
    assert frame["params"].min() > 0 and (frame["macs_ratio"] > 1).all()
    assert (frame["train_seconds"] > 0).all() and (frame["images_per_s"] > 0).all()
    info = json.loads((folder / "search.json").read_text())
    assert info["seed"] == 0 and info["candidates"] == 4
    assert info["best"]["alpha"] == frame.iloc[0]["alpha"]
    assert len(info["dataset_fingerprint"]) >= 16
    assert info["environment"]["packages"]["torch"]
    assert info["config"]["train"]["epochs"] == 1
    assert json.loads(result.out)[0]["rank"] == 1
    assert completed_trials(folder) == {0: 1, 1: 1, 2: 1, 3: 1}

    again = cli(*search_args(tmp_path))  # everything finished: nothing is trained again
    assert again.code == 0
    assert completed_trials(folder) == {0: 1, 1: 1, 2: 1, 3: 1}
    assert pd.read_csv(folder / "results.csv")["train_seconds"].tolist() == frame["train_seconds"].tolist()


def test_configuration_clash_is_refused(cli, tmp_path):
    assert cli(*search_args(tmp_path)).code == 0
    before = (tmp_path / "micro" / "results.csv").read_text()
    clash = cli(*search_args(tmp_path, "--lr", "0.05"))
    assert clash.code == 2
    assert "already exists with another configuration (--lr: default -> 0.05)" in clash.err  # named by its option
    assert len(clash.err.strip().splitlines()) == 1
    ranges = cli(*search_args(tmp_path, "--alpha-range", "1:1.4:0.2"))
    assert ranges.code == 2 and "(--alpha-range stop: 1.2 -> 1.4)" in ranges.err
    close = cli(*search_args(tmp_path, "--lr", "0.05000001", name="lr"))
    assert close.code == 0, close.err
    near = cli(*search_args(tmp_path, "--lr", "0.05", name="lr"))  # 6 digits read '0.05 -> 0.05'
    assert near.code == 2 and "(--lr: 0.05000001 -> 0.05)" in near.err, near.err
    assert (tmp_path / "micro" / "results.csv").read_text() == before


def test_another_spelling_of_the_same_configuration_resumes_the_study(cli, tmp_path):
    """A preset's case, AdamW's default lr typed out and a validation fraction the synthetic
    data ignores change nothing the search does: the same study (its default name included)
    is found, and nothing is trained again."""
    assert cli(*search_args(tmp_path)[:-2]).code == 0  # the default name
    (folder,) = [f for f in tmp_path.iterdir() if f.is_dir() and not f.name.startswith(".")]
    before = (folder / "results.csv").read_text()
    again = cli(*search_args(tmp_path)[:-2], "--base", "EfficientNet-B0", "--lr", "0.004", "--val-fraction", "0.5")
    assert again.code == 0, again.err
    assert [f for f in tmp_path.iterdir() if f.is_dir() and not f.name.startswith(".")] == [folder]
    assert (folder / "results.csv").read_text() == before
    assert completed_trials(folder) == {0: 1, 1: 1, 2: 1, 3: 1}


def test_a_surface_search_with_a_tolerance_of_its_own_is_the_search_without_it(cli, tmp_path, monkeypatch):
    """Surface mode does not use --tolerance: typed or not, one configuration, one study (its
    default name too), the note said once; a study an earlier scaler recorded with the value as
    typed still resumes by its command."""
    surface = search_args(tmp_path)[:-2]  # the default name
    i = surface.index("--tolerance")
    surface[i : i + 2] = ["--mode", "surface", "--gamma-range", "1:1.4:0.2"]
    note = "note: --tolerance is grid mode's; surface mode solves gamma exactly and does not use it\n"
    first = cli(*surface)
    assert first.code == 0 and note not in first.err, first.err
    studies = sorted(f for f in tmp_path.iterdir() if not f.name.startswith("."))
    loose = cli(*surface, "--tolerance", "0.5")
    assert loose.code == 0 and loose.err.startswith(note) and loose.err.count(note) == 1 and "0 to train" in loose.err
    assert sorted(f for f in tmp_path.iterdir() if not f.name.startswith(".")) == studies
    # recorded as typed by an earlier scaler, which spelled every other option one way (the
    # preset below as b0): the same command resumes it, not begins it again
    monkeypatch.setattr(CandidateSpace, "canonical", lambda self: self)
    earlier = cli(*surface, "--tolerance", "0.5", "--base", "EfficientNet-B0", "--root", tmp_path / "earlier")
    monkeypatch.undo()
    resumed = cli(*surface, "--tolerance", "0.5", "--base", "EfficientNet-B0", "--root", tmp_path / "earlier")
    assert earlier.code == resumed.code == 0 and "0 to train" in resumed.err
    (recorded,) = [f for f in (tmp_path / "earlier").iterdir() if not f.name.startswith(".")]
    assert json.loads((recorded / "search.json").read_text())["config"]["space"]["tolerance"] == 0.5


def test_ctrl_c_before_a_database_study_wrote_its_folder_promises_no_results_there(cli, tmp_path, monkeypatch):
    """A database study holds nothing in its folder until it writes its outputs: stopped
    while its data loads, it leaves no folder, and said 'results so far in' one."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ProxyExperiment, "prepare", interrupted)
    result = cli(*search_args(tmp_path), "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert result.code == 130 and not (tmp_path / "micro").exists()
    assert result.err.strip().splitlines()[-1] == (
        "interrupted: 0 of 4 candidates finished; resume with the same command (nothing written to its folder yet)"
    )


def test_a_worker_stopped_by_ctrl_c_says_what_finished_and_puts_its_candidate_back(cli, tmp_path, monkeypatch):
    """`scaler worker` said a bare 'interrupted': nothing of what finished, of the candidate it
    was training (queued again for the study's other workers), or of how to join again."""
    url = f"sqlite:///{tmp_path / 's.db'}"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ProxyExperiment, "prepare", interrupted)
        assert cli(*search_args(tmp_path), "--storage", url).code == 130  # the study is made, nothing trained
    train = CompoundSearch.run
    runs = []

    def second_interrupted(self, *args, **kwargs):
        runs.append(args[0]["candidate"])
        return train(self, *args, **kwargs) if len(runs) == 1 else interrupted()

    monkeypatch.setattr(CompoundSearch, "run", second_interrupted)
    result = cli("worker", "--storage", url, "--study", "micro", "--device", "cpu", "--threads", "1", "--quiet")
    assert result.code == 130, result.err
    assert result.err.strip().splitlines()[-1] == (
        "interrupted: 1 of 4 candidates of study 'micro' finished; any candidate this worker had begun goes back "
        "to the study's queue; the same command joins it again"
    )
    trials = optuna.load_study(study_name="micro", storage=url).get_trials()
    stopped = [t for t in trials if item_params(t).get("candidate") == runs[1]]
    assert [t.state for t in stopped] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]


def test_ctrl_c_while_the_networks_are_timed_says_how_to_resume(cli, tmp_path, monkeypatch):
    """Before any training (data loading, the estimate's timing) a Ctrl-C is answered as one
    during training: what finished, and that the same command resumes."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ProxyExperiment, "estimate_seconds", interrupted)
    result = cli(*search_args(tmp_path))
    assert result.code == 130
    assert result.err.strip().splitlines()[-1] == (
        f"interrupted: 0 of 4 candidates finished; resume with the same command (results so far in {tmp_path / 'micro'})"
    )
    assert set(pd.read_csv(tmp_path / "micro" / "results.csv")["state"]) == {"queued"}
    # stopped while the data loads: the same line, and the summary keeps what the last run recorded
    monkeypatch.undo()
    assert cli(*search_args(tmp_path)).code == 0
    summary = (tmp_path / "micro" / "search.json").read_text()
    monkeypatch.setattr(proxy, "load_checked", interrupted)
    loading = cli(*search_args(tmp_path))
    assert loading.code == 130  # nothing is left to resume: the line says so
    assert loading.err.strip().splitlines()[-1] == f"interrupted: all 4 candidates had finished; the same command shows the results (in {tmp_path / 'micro'})"
    assert (tmp_path / "micro" / "search.json").read_text() == summary
    assert json.loads(summary)["dataset_fingerprint"]


def test_ctrl_c_while_the_finished_search_is_shown_says_nothing_is_left_to_resume(cli, tmp_path, monkeypatch):
    """A Ctrl-C once every training has finished (the table being printed) says so and where
    the files are, not a bare 'interrupted'; the files it names are whole."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["scaler.cli.search"], "show_results", interrupted)
    result = cli(*search_args(tmp_path))
    assert result.code == 130
    assert result.err.strip().splitlines()[-1] == (
        f"interrupted: all 4 candidates had finished; the same command shows the results (in {tmp_path / 'micro'})")
    assert set(pd.read_csv(tmp_path / "micro" / "results.csv")["state"]) == {"complete"}
    monkeypatch.undo()
    again = cli(*search_args(tmp_path))
    assert again.code == 0 and "0 to train" in again.err


def test_a_ctrl_c_while_scipy_stats_is_imported_is_held_and_answered_before_the_study(cli, tmp_path, monkeypatch):
    """scipy.stats (about 1 s to import) is imported with Ctrl-C held back: cut short, it left
    scipy half made, and the table written on the way out failed with a NameError (exit 1)."""
    from scaler.cli import study

    @contextlib.contextmanager
    def pressed_meanwhile():
        yield [signal.SIGINT]

    monkeypatch.setattr(study.process, "interrupts_held", pressed_meanwhile)
    result = cli(*search_args(tmp_path))
    assert result.code == 130 and result.err.strip().splitlines()[-1].startswith("interrupted")
    assert not (tmp_path / "micro").exists()


def test_a_study_begun_with_another_spelling_before_canonical_spellings_still_resumes(cli, tmp_path, monkeypatch):
    """A study recorded under the options as typed (as scaler recorded every study before it
    spelled them one way) is resumed by the command that began it, by its default name too."""
    for part in (TrainConfig, ProxyBase):
        monkeypatch.setattr(part, "canonical", lambda self: self)  # scaler before canonical spellings
    typed = [*search_args(tmp_path)[:-2], "--lr", "0.004", "--base", "B0"]
    assert cli(*typed).code == 0
    (folder,) = [f for f in tmp_path.iterdir() if f.is_dir() and not f.name.startswith(".")]
    assert "-B0-" in folder.name and json.loads((folder / "search.json").read_text())["config"]["train"]["lr"] == 0.004
    before = (folder / "results.csv").read_text()
    monkeypatch.undo()
    again = cli(*typed)
    assert again.code == 0, again.err
    assert [f for f in tmp_path.iterdir() if f.is_dir() and not f.name.startswith(".")] == [folder]
    assert (folder / "results.csv").read_text() == before and completed_trials(folder) == {0: 1, 1: 1, 2: 1, 3: 1}
    plain = cli(*search_args(tmp_path)[:-2])  # the plain spelling names the canonical study, a new one
    assert plain.code == 0 and len([f for f in tmp_path.iterdir() if f.is_dir() and not f.name.startswith(".")]) == 2


def presplit_folder(root: Path) -> Path:
    """An image folder with its own train/ and val/: 2 classes, 10 and 4 images each."""
    for part, count in (("train", 10), ("val", 4)):
        for c in range(2):
            (root / part / f"c{c}").mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (20, 20), (200 * c, 23 * i, 90)).save(root / part / f"c{c}" / f"{i}.png")
    return root


def test_canonical_spellings():
    assert DataOptions("imgs/").canonical().source == "imgs"
    assert DataOptions("./a//imgs", val_fraction=0.3).canonical() == DataOptions("a/imgs", val_fraction=0.3)
    assert DataOptions("cifar10:./c/").canonical().source == "cifar10:c"
    assert DataOptions("cifar10:").canonical().source == "cifar10:"  # refused later, as typed
    # folders whose names read as the other sources stay folders
    assert DataOptions("synthetic/").canonical().source == DataOptions("./synthetic").canonical().source == "./synthetic"
    assert DataOptions("./cifar10:x/").canonical().source == "./cifar10:x"
    assert DataOptions("synthetic", val_fraction=0.5).canonical() == DataOptions()
    with pytest.raises(UsageError, match="val fraction = 1.5 is not allowed"):  # refused, not reset to the default
        DataOptions("synthetic", val_fraction=1.5).canonical()
    assert canonical_variant("B0") == canonical_variant("efficientnet-b0") == "b0"
    assert canonical_variant("ResNet50") == "resnet50"
    assert canonical_variant("./nets//tiny.py:make") == "nets/tiny.py:make"
    assert canonical_variant("pkg.nets:make") == "pkg.nets:make"
    assert canonical_variant("./mynet:make") == "./mynet:make"  # a file still, never module 'mynet'
    # '..' stays: past a symbolic link it leads elsewhere than dropping it would
    assert DataOptions("link/../imgs/").canonical().source == "link/../imgs"
    assert canonical_variant("link/../net.py:make") == "link/../net.py:make"
    assert TrainConfig(lr=0.004).canonical() == TrainConfig()
    assert TrainConfig(optimizer="sgd", lr=0.004).canonical().lr == 0.004  # not SGD's default
    assert TrainConfig(optimizer="sgd", lr=0.02).canonical().lr is None


class ScriptedReporter:
    """A study's reporter whose pruner says stop after the first epoch."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> bool:
        self.reports.append((value, step))
        return True

    def step(self, *args) -> None:
        pass

    def epoch(self, metrics) -> None:
        pass


def test_a_pruned_training_is_a_pruned_outcome():
    """The search's work item reports each epoch's top-1 to the pruner, and a stop request
    ends a real training after that epoch (the pruner itself is tested in test_engine.py)."""
    dataset = load_dataset("synthetic", storage_resolution=32, train_images=32, val_images=16, native_resolution=48)
    config = TrainConfig(epochs=3, batch_size=16)
    reporter = ScriptedReporter()
    outcome = train_outcome(ProxyBase(resolution=32, width=0.25).build(), dataset, 32, config, Runtime("cpu", 1), reporter)
    assert outcome.state is State.PRUNED and outcome.reason == "pruned after epoch 1"
    assert outcome.attrs["epochs"] == 1 and reporter.reports == [(outcome.attrs["top1"], 1)]
    assert outcome.value is None


def test_search_folder_written_before_the_engine_split_is_not_resumed_on_new_data(cli, tmp_path):
    """tests/data/legacy-search was written by scaler 0.1 (the search before the study engine,
    SGD, synthetic data of format 2): 2 of its 4 candidates finished. Its study never recorded
    the data's fingerprint, its search.json did: with today's defaults the configuration
    differs (the optimizer), and with its own options the data does (format 3), so it is
    refused either way rather than ranked across two data sets."""
    folder = tmp_path / "micro"
    shutil.copytree(Path(__file__).parent / "data" / "legacy-search", folder)
    before = (folder / "results.csv").read_text()
    result = cli(*search_args(tmp_path))
    assert result.code == 2 and "--optimizer: sgd -> adamw" in result.err
    result = cli(*search_args(tmp_path, "--optimizer", "sgd"))
    assert result.code == 2 and "(--zero-init/--standard-init: --standard-init -> --zero-init)" in result.err  # it trained from the standard start
    result = cli(*search_args(tmp_path, "--optimizer", "sgd", "--standard-init"))
    assert result.code == 2 and "changed since it started" in result.err
    assert "redrawn by a newer scaler" in result.err
    assert (folder / "results.csv").read_text() == before
    assert json.loads((folder / "search.json").read_text())["fingerprint"] == "cc39d6d56a"


def test_default_configuration_keeps_its_fingerprint():
    """Search folders are named and matched by the configuration's fingerprint: only a change
    of the defaults may move it (8bf70e0972 until the default proxy became six candidates, 5
    epochs of AdamW; 7a95989f82 until residual branches started at zero: an old default
    folder is then left alone, not resumed)."""
    config = SearchConfig()
    assert config.default_name() == "phi1-grid-b0-r64-w0.5-30bd7322b2"
    # --standard-init is the configuration as it was before: the same fingerprint.
    standard = replace(config, base=replace(config.base, zero_init=False))
    assert standard.default_name() == "phi1-grid-b0-r64-w0.5-7a95989f82"
    assert SearchConfig.from_identity(standard.identity()) == standard
    # Clipping came later: unclipped, a configuration keeps the fingerprint it had before it,
    # and an identity recorded then reads back as unclipped.
    unclipped = replace(config, train=replace(config.train, clip_grad_norm=None))
    assert "clip_grad_norm" not in unclipped.identity()["train"]
    assert SearchConfig.from_identity(unclipped.identity()) == unclipped
    clipped = replace(config, train=replace(config.train, clip_grad_norm=5.0))
    assert SearchConfig.from_identity(clipped.identity()) == clipped
    assert clipped.fingerprint() != unclipped.fingerprint()


def test_report_formats_pareto_and_plot(cli, tmp_path):
    searched = cli(*search_args(tmp_path), "--format", "json")
    assert searched.code == 0, searched.err
    folder = tmp_path / "micro"
    # the table read back from the folder is the one the search printed, cell for cell (an empty
    # reason is "", not null)
    assert json.loads(cli("report", folder, "--format", "json").out) == json.loads(searched.out)
    table = cli("report", folder)
    assert table.code == 0 and "★ best" in table.out
    phi = json.loads((folder / "search.json").read_text())["config"]["space"]["phi"]
    base = json.loads((folder / "search.json").read_text())["config"]["base"]
    title = f"Search micro: phi={phi:g}, T=2 on {base['variant']} w{base['width']:g} at {base['resolution']}px"  # the base searched
    assert table.out.lstrip().startswith(title) and searched.code == 0  # titled as the search titled it
    assert cli(*search_args(tmp_path)).out.lstrip().startswith(title)
    frame = pd.read_csv(folder / "results.csv")
    csv_out = cli("report", folder, "--format", "csv")
    assert csv_out.out.splitlines()[0] == ",".join(RESULT_COLUMNS)
    rows = json.loads(cli("report", folder, "--format", "json").out)
    assert [r["candidate"] for r in rows] == frame["candidate"].tolist()
    best_row = next(line.split() for line in table.out.splitlines() if "★ best" in line)
    number = best_row[3]  # rank, ★ best, then the number the search's progress lines gave it
    assert next(line.split() for line in table.out.splitlines() if " rank " in line)[:3] == ["rank", "#", "alpha"]
    assert int(number) == frame["candidate"][0] and f"#{number} a=" in searched.err
    markdown = cli("report", folder, "--format", "markdown").out
    assert markdown.count("\n| ") == len(frame) + 1
    pareto = json.loads(cli("report", folder, "--pareto", "--format", "json").out)
    expected = [
        r["candidate"] for r in rows
        if not any(o["top1"] >= r["top1"] and o["macs"] <= r["macs"] and (o["top1"], o["macs"]) != (r["top1"], r["macs"]) for o in rows)
    ]  # fmt: skip
    assert [r["candidate"] for r in pareto] == expected
    assert pareto[0]["rank"] == 1  # the best is never dominated
    # the footer's ties are the whole search's; the front's table says how many of them it shows
    tied = sum(r["tied_with_best"] is True for r in rows) - 1
    front = cli("report", folder, "--pareto").out
    if tied:  # a micro search near chance ties most candidates (3 of 3 here)
        shown = sum(r["tied_with_best"] is True for r in pareto) - 1
        assert f"≈ tied with the best: {tied} of the {len(rows) - 1} other complete candidate(s)" in front
        assert f"; {shown} of them shown here" in front and "shown here" not in table.out
    else:  # no tie: nothing to count on the front
        assert "shown here" not in front
    plot = tmp_path / "search.png"
    plotted = cli("report", folder, "--plot", plot)
    assert plotted.code == 0 and plotted.err == f"plot written to {plot}\n" and "plot written" not in plotted.out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    missing = cli("report", tmp_path / "nowhere")
    assert missing.code == 2 and f"{tmp_path / 'nowhere'} does not exist; give a study folder" in missing.err
    table_file = cli("report", folder / "results.csv")  # the table for its folder: said so (it "held no results.csv")
    assert table_file.code == 2 and table_file.err == f"error: {folder / 'results.csv'} is a file; give the study folder that holds it ({folder})\n"


def test_scale_from_search(cli, tmp_path):
    assert cli(*search_args(tmp_path)).code == 0
    best = pd.read_csv(tmp_path / "micro" / "results.csv").iloc[0]
    result = cli("scale", "--from", tmp_path / "micro", "--phi", "1-2", "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert rows[0]["depth_mult"] == pytest.approx(best["alpha"])
    assert rows[0]["width_mult"] == pytest.approx(best["beta"])
    assert rows[0]["resolution"] == 4 * round(224 * best["gamma"] / 4)
    assert rows[1]["preset"] == "b2"
    # a best the data cannot single out is taken with a note saying so (on stderr: stdout is the document)
    frame = pd.read_csv(tmp_path / "micro" / "results.csv")
    tied = [f"({r.alpha:g}, {r.beta:g}, {r.gamma:.4g})" for r in frame.iloc[1:].itertuples() if r.tied_with_best is True or r.tied_with_best == "True"]
    notes = [line for line in result.err.splitlines() if line.startswith("note: ")]
    # a micro search learns next to nothing: where its best is not above chance, the first note says so
    chance = at_chance(json.loads((tmp_path / "micro" / "search.json").read_text()))
    if chance:
        assert notes[0] == f"note: search {tmp_path / 'micro'}: {chance}"
        notes = notes[1:]
    if tied:
        assert notes == [f"note: the best candidate of {tmp_path / 'micro'} is tied with {len(tied)} of the "
                         f"{(frame['state'] == 'complete').sum() - 1} other complete candidate(s) {', '.join(tied)}: "
                         "the data cannot tell them apart, and the first of the ranking (the highest mean top-1, then the fewest MACs) is taken"]
    else:
        assert notes == []
    assert "warning" not in result.err  # the search's own base (B0): no warning


CHANCE = ("the best candidate is not above chance: its top-1 interval reaches 10.0% (one of 10 classes), so the ranking "
          "tells little; train longer (--epochs), on more images or at a larger --base-resolution")


def test_a_best_not_above_chance_is_said_wherever_the_search_is_read(cli, tmp_path):
    """One epoch on 96 images learns nothing: the search's table, `report`, `report A B` and
    `scale --from` say that its best is no better than a guess, so its ranking says nothing."""
    searched = cli(*search_args(tmp_path))
    folder = tmp_path / "micro"
    assert searched.code == 0 and json.loads((folder / "search.json").read_text())["best"]["top1_low"] <= 0.1  # the premise
    assert CHANCE in " ".join(searched.out.split())
    assert CHANCE in " ".join(cli("report", folder).out.split())
    assert CHANCE in cli("report", folder, "--format", "csv").err  # beside the document
    twice = " ".join(cli("report", folder, folder).out.split())
    assert f"A: {CHANCE}" in twice and f"B: {CHANCE}" in twice
    assert f"note: search {folder}: {CHANCE}" in cli("scale", "--from", folder, "--phi", "1").err.splitlines()
    base = {"config": {"base": {"num_classes": 10}}}
    assert at_chance({**base, "best": {"top1_low": 0.1}}) == CHANCE and at_chance({**base, "best": {"top1_low": 0.03}}) == CHANCE
    assert at_chance({**base, "best": {"top1_low": 0.1001}}) is None  # above chance, however little
    assert at_chance({**base, "best": {"top1_low": None}}) is None and at_chance({"best": {"top1_low": 0.05}}) is None  # not known
    assert at_chance({**base, "best": {"top1_low": float("nan")}}) is None and at_chance({"config": None, "best": {"top1_low": 0.05}}) is None
    assert "reaches 1.0% (one of 100 classes)" in at_chance({"config": {"base": {"num_classes": 100}}, "best": {"top1_low": 0.01}})
    in_steps = {"config": {**base["config"], "train": {"epochs": 5, "steps": 40}}, "best": {"top1_low": 0.05}}
    assert at_chance(in_steps) == CHANCE.replace("--epochs", "--steps")  # the option the search was set in


def test_a_ranking_that_is_mostly_noise_is_said_with_the_option_that_lengthens_it():
    from scaler.cli.results import reliability_lines

    noisy = {"repeats": 4, "reliability": {"spearman": 0.3, "low": -0.2, "high": 0.7}, "best": {"candidate": 1, "top1_low": 0.4},
             "tied_best": [1], "states": {"complete": 5}, "config": {"base": {"num_classes": 10}, "train": {"epochs": 5, "steps": None}}}
    advice = "more --repeats, more --epochs or more --train-images would help"
    assert ("ranking reliability (split-half Spearman over 4 repeats): 0.30 [-0.20, 0.70]; two searches of 4 repeats would "
            "agree at about 0.46 (Spearman-Brown)") in reliability_lines(noisy)  # 2 x 0.3 / 1.3
    assert any(line.endswith(advice) for line in reliability_lines(noisy))
    in_steps = {**noisy, "config": {"train": {"epochs": 5, "steps": 40}}}
    assert any(line.endswith(advice.replace("--epochs", "--steps")) for line in reliability_lines(in_steps))
    # a half of the repeats ranks less reliably than all of them: 0.4 between halves is 0.57 between whole rankings
    assert not any("mostly noise" in line for line in reliability_lines({**noisy, "reliability": {"spearman": 0.4, "low": 0.1, "high": 0.8}}))
    three = reliability_lines({**noisy, "repeats": 3, "reliability": {"spearman": 0.2, "low": -0.4, "high": 0.8}})
    assert [line for line in three if line.startswith("ranking reliability")][0].endswith(
        "two searches of 3 repeats would agree at about 0.43 (Spearman-Brown)")  # halves of one run: 3 x 0.2 / 1.4
    assert any("mostly noise" in line for line in three)
    unrelated = reliability_lines({**noisy, "reliability": {"spearman": -0.1, "low": -0.5, "high": 0.4}})
    assert [line for line in unrelated if line.startswith("ranking reliability")][0].endswith("-0.10 [-0.50, 0.40]")
    assert any("mostly noise" in line for line in unrelated)


def test_scale_from_a_best_whose_network_other_points_built_too_says_they_scale_apart(cli, tmp_path):
    """At phi 1e-9 every point of the ranges builds the base: one candidate, the others named
    in search.json's best, and `scale --from` says that at another phi they differ."""
    assert cli(*search_args(tmp_path, "--phi", "1e-9", name="flat")).code == 0
    best = json.loads((tmp_path / "flat" / "search.json").read_text())["best"]
    candidates = cli("candidates", *MICRO[:12], "--phi", "1e-9", "--format", "json")  # the ranges, tolerance and base
    (only,) = json.loads(candidates.out)
    assert best["same_network"] == only["same_network"] and len(only["same_network"].split("; ")) >= 2
    result = cli("scale", "--from", tmp_path / "flat", "--phi", "1-2", "--format", "json")
    assert result.code == 0, result.err
    note = (f"note: at phi 1e-09 the best's network was also built by {best['same_network']}; at another phi those points "
            "scale to other networks: the coefficients taken are the best's, the one of them nearest alpha*beta^2*gamma^2 = 2")
    assert note in result.err.splitlines()
    assert json.loads(result.out)[0]["depth_mult"] == pytest.approx(best["alpha"])  # the kept point's coefficients
    refused = cli("scale", "--from", tmp_path / "flat", "--base-resolution", "0")  # refused by the table: its error alone
    assert refused.code == 2 and refused.err == "error: --base-resolution 0 is not allowed; it must be 1..4096 pixels\n"
    from scaler.cli.compare import _from_search  # compare --from takes the same coefficients, with the same note
    from scaler.experiments.search import SearchFolder

    coefficients, said, _ = _from_search(SearchFolder.read(tmp_path / "flat"), "b0")
    assert coefficients == (best["alpha"], best["beta"], best["gamma"]) and note in said
    # a comparison refused for another reason says that alone, in one line
    refused = cli("compare", "--from", tmp_path / "flat", "--target", "3", "--root", tmp_path)
    assert refused.code == 2 and refused.err.count("\n") == 1 and refused.err.startswith("error: --from: the best candidate of "), refused.err


def test_bad_search_input(cli, tmp_path):
    for args, words in [
        (["--alpha-range", "0.5:1:0.1"], "alpha must be >= 1"),
        (["--tolerance", "-1"], "tolerance"),
        (["--pruner", "random"], "pruner"),
        (["--workers", "0"], "workers"),
        (["--epochs", "0"], "epochs"),
        (["--epochs", "5", "--steps", "10"], "--epochs 5 and --steps 10 both set how long to train; give one"),
        (["--base", "b12"], "error: --base: unknown variant 'b12'; allowed: b0,"),  # named by its flag
        (["--train-images", "1"], "error: --train-images 1 is not allowed; it must be an integer from 2 to "),  # training needs a batch of 2
        (["--val-images", "0"], "error: --val-images 0 is not allowed; it must be an integer from 1 to "),
    ]:
        result = cli(*search_args(tmp_path), *args)
        assert result.code == 2, args
        assert words in result.err and len(result.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # each refused before a study folder was made


def test_a_pruner_that_cannot_stop_a_one_epoch_training_says_so(cli, tmp_path, monkeypatch):
    """Pruners judge a training between its epochs: with --epochs 1 there is no such point. The
    note comes once every option is accepted: a refused command prints its error alone."""
    note = "note: --pruner halving stops a training between its epochs: with --epochs 1 it stops none\n"
    refused = cli(*search_args(tmp_path, "--pruner", "halving", "--workers", "0"))
    assert refused.code == 2 and refused.err == "error: --workers 0 is not allowed; it must be an integer >= 1\n"
    import scaler.study.runner

    def stop(*args, **kwargs):  # the study is open and its notes said: train nothing
        raise RunError("stopped before training")

    monkeypatch.setattr(scaler.study.runner, "run_study", stop)  # as `scaler.cli.study` calls it
    one = cli(*search_args(tmp_path, "--pruner", "halving", name="one"))
    assert one.code == 1 and one.err.startswith(note) and one.err.count(note) == 1, one.err
    args = search_args(tmp_path, "--pruner", "halving", name="two")
    args[args.index("--epochs") + 1] = "2"
    assert note not in cli(*args).err and note not in cli(*search_args(tmp_path, name="plain")).err
    # --steps that fit in one epoch (MICRO: 6 steps to an epoch) are one epoch too; 7 are two
    for steps, said in (("6", True), ("7", False)):
        args = search_args(tmp_path, "--pruner", "halving", "--steps", steps, name=f"steps{steps}")
        del args[args.index("--epochs") : args.index("--epochs") + 2]
        result = cli(*args)
        assert result.code == 1 and said == result.err.startswith(
            f"note: --pruner halving stops a training between its epochs: with --steps {steps} (an epoch of 96 images is 6 "
            "steps) it stops none\n"), (steps, result.err)
    # the built-in synthetic data, uncapped: its SYNTHETIC_TRAIN images count
    per_epoch = SYNTHETIC_TRAIN // TrainConfig().batch_size
    synthetic = cli("search", "--pruner", "halving", "--steps", str(per_epoch), "--root", tmp_path, "--quiet")
    assert synthetic.code == 1 and synthetic.err.startswith(
        f"note: --pruner halving stops a training between its epochs: with --steps {per_epoch} (an epoch of {SYNTHETIC_TRAIN} "
        f"images is {per_epoch} steps) it stops none\n"), synthetic.err


def test_budget_in_steps_and_time_cap(cli, tmp_path):
    args = search_args(tmp_path, "--steps", "5", name="steps")
    del args[args.index("--epochs") : args.index("--epochs") + 2]  # --steps replaces MICRO's --epochs (both: refused)
    assert cli(*args).code == 0
    frame = pd.read_csv(tmp_path / "steps" / "results.csv")
    assert set(frame["state"]) == {"complete"} and set(frame["epochs"]) == {1}  # 5 steps < 6 per epoch

    args = search_args(tmp_path, "--max-seconds", "0.001", name="capped")
    args[args.index("--epochs") + 1] = "3"
    result = cli(*args)
    assert result.code == 1  # nothing complete to rank: a failure, with the way out
    last = result.err.splitlines()[-1]
    assert last.startswith("error: no candidate completed (") and "timeout): a ranking needs complete" in last
    assert "run again under a new --name" in result.err
    frame = pd.read_csv(tmp_path / "capped" / "results.csv", converters={"reason": str})
    assert set(frame["state"]) == {"timeout"} and (frame["epochs"] < 3).all()
    assert frame["top1"].notna().all()
    assert json.loads((tmp_path / "capped" / "search.json").read_text())["best"] is None  # none complete
    refused = cli("scale", "--from", tmp_path / "capped")
    assert refused.code == 2 and "hit --max-seconds: give it more room under a new --name" in refused.err


def test_the_legend_names_only_the_marks_the_table_shows():
    frame = pd.DataFrame({
        "alpha": [1.2, 2.0, 1.0], "beta": [1.1, 1.0, 1.41], "gamma": [1.15, 1.0, 1.0],
        "state": ["complete", "complete", "complete"], "tied_with_best": [True, True, True],
    })
    assert legend(frame) == "★ best · ≈ tied with it · ◆ the paper's (1.2, 1.1, 1.15)"
    assert legend(frame.iloc[1:]) == "★ best · ≈ tied with it"  # the default grid has no paper point
    assert legend(frame.iloc[1:].assign(tied_with_best=False)) == "★ best"  # nothing tied with it: no ≈
    timed_out = frame.iloc[1:].assign(state="timeout", tied_with_best=False)
    assert legend(timed_out) == ""  # no complete row: no ★ either


def test_log_lines_stay_whole_in_a_pipe(cli, tmp_path):
    """Captured output is not a terminal (rich then lays out 80 columns): each epoch's line and
    the estimate stay one line each, as a log file or `grep` needs them. They go to stderr,
    beside no bar (bars are drawn on a terminal only); stdout holds the table alone."""
    args = [a for a in search_args(tmp_path, "--base", TINY_BASE, "--base-width", "1") if a != "--quiet"]  # 4 distinct networks
    result = cli(*args)
    assert result.code == 0, result.err
    assert " epoch 1: " not in result.out and "estimated" not in result.out and "━" not in result.out + result.err
    assert result.out.lstrip().startswith("Search micro: ")  # the table's title first
    lines = result.err.splitlines()
    epochs = [line for line in lines if " epoch 1: " in line]
    assert len(epochs) == 4 and all(len(line) > 80 and line.endswith(" s") and "val loss" in line for line in epochs)
    [estimate] = [line for line in lines if line.startswith("search micro: ")]
    assert "estimated" in estimate and estimate.endswith(")")


def test_a_summary_of_the_first_searches_reads_without_pruner_or_flops_tolerance():
    """`compare --from` reads the search's configuration from its summary; the first searches'
    lack the two (neither existed), and it failed with KeyError: 'pruner'."""
    identity = json.loads(json.dumps(SearchConfig().identity()))
    del identity["pruner"], identity["flops_tolerance"]
    config = SearchConfig.from_identity(identity)
    assert (config.pruner, config.flops_tolerance) == ("none", None) and config.base == SearchConfig().base
