"""`scaler report A B`: two searches compared. Options that take one folder are refused, the
JSON is one object with the figures and the rows, a best that is not finished in the other
search gets its state rather than a rank, and non-search study folders are named as such."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import scaler.experiments.search
from scaler.cli import main
from scaler.experiments.search import read_results
from scaler.reports import compare_searches
from tests.conftest import TINY_BASE

TWO_FOLDERS = "error: --plot and --pareto show one study folder; to compare two searches, drop them\n"
KEYS = ["alpha", "beta", "gamma", "resolution"]
# 3 candidates on a tiny proxy, 1 epoch each: a few seconds per search.
TINY = [
    "--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1", "--gamma-range", "1.1", "--tolerance", "0.56",
    "--base-resolution", "32", "--base-width", "1", "--base", TINY_BASE, "--train-images", "64", "--val-images", "40",
    "--batch-size", "16", "--epochs", "1", "--threads", "1", "--device", "cpu", "--quiet",
]  # fmt: skip


def ranked(top1: list[float], states: list[str], tied: list[bool] | None = None) -> pd.DataFrame:
    """A search table over 4 fixed candidates as read_results returns it: complete rows first
    by top-1, then the rest, ranked 1..n."""
    rows = pd.DataFrame({"alpha": [1.0, 1.2, 1.4, 1.6], "beta": 1.0, "gamma": 1.1, "resolution": 36,
                         "depth_mult": [1.0, 1.2, 1.4, 1.6], "width_mult": 0.5, "params": [1000, 1100, 1200, 1300], "top1": top1,
                         "top1_low": [t - 0.05 for t in top1], "top1_high": [t + 0.05 for t in top1], "state": states,
                         "tied_with_best": tied if tied is not None else [False] * 4})  # fmt: skip
    rows["_done"] = rows["state"] != "complete"
    rows = rows.sort_values(["_done", "top1"], ascending=[True, False]).drop(columns="_done").reset_index(drop=True)
    rows.insert(0, "rank", range(1, len(rows) + 1))
    return rows


def constructed(monkeypatch, tables: dict[str, pd.DataFrame]) -> None:
    """Make `scaler report` read `tables[folder name]` in place of the folder's files."""
    monkeypatch.setattr(scaler.experiments.search, "read_results", lambda folder: (tables[Path(folder).name].copy(), {"name": Path(folder).name}))


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("extra", [["--plot", "x.png"], ["--pareto"], ["--pareto", "--plot", "x.png"]])
def test_plot_and_pareto_are_refused_with_two_folders_before_anything_is_read(cli, tmp_path, extra):
    plot = tmp_path / "x.png"
    extra = [str(plot) if e == "x.png" else e for e in extra]
    # the folders do not exist: the refusal comes first, not a missing-folder error
    result = cli("report", tmp_path / "a", tmp_path / "b", *extra)
    assert result.code == 2 and result.err == TWO_FOLDERS and result.out == ""
    assert not plot.exists()


def test_the_summary_names_come_in_one_order_whichever_kind_a_process_imported_first():
    """The list in 'holds a study but no summary (search.json / ...)' followed import order:
    a process that had imported the comparison first named compare.json first."""
    code = ("import scaler.experiments.comparison, scaler.experiments.calibration\n"
            "from scaler.study.experiment import summary_names; print(summary_names())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout == "['search.json', 'calibration.json', 'compare.json']\n", proc.stderr


def test_a_summary_that_is_not_json_is_named(cli, tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "results.csv").write_text("rank,state\n1,complete\n")
    (folder / "search.json").write_text("{oops")
    result = cli("report", folder)
    assert (result.code, result.err) == (2, f"error: {folder / 'search.json'} is not valid JSON: Expecting property name enclosed "
                                            "in double quotes: line 1 column 2 (char 1); rerun the study's command (same options) "
                                            "to rewrite it from the study\n")


@pytest.mark.parametrize(("summary", "kind"), [("compare.json", "compare"), ("calibration.json", "calibration")])
def test_comparison_and_calibration_folders_are_read_as_their_kind_and_named_where_a_search_is_wanted(cli, tmp_path, summary, kind):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "results.csv").write_text("rank,state\n1,complete\n")
    (folder / summary).write_text("{}")
    expected = (f"error: {folder} is a {kind} folder ({summary}), not a search folder (search.json); "
                f"`scaler report {folder}` shows its results\n")  # fmt: skip
    # report reads it as the kind it is, and checks it as such
    alone = cli("report", folder)
    assert alone.code == 2 and alone.out == ""
    assert alone.err.startswith(f"error: {folder} is not a valid study folder: results.csv lacks the column(s) ")
    paired = cli("report", folder, folder, "--format", "json")
    assert paired.code == 2 and paired.err == expected and paired.out == ""
    # every command that takes a search's best reads the folder the same way, and names its flag
    for command in (["scale", "--from", folder], ["compare", "--from", folder, "--phis", "1"]):
        taken = cli(*command)
        assert taken.code == 2 and taken.err == expected.replace("error: ", "error: --from: ", 1) and taken.out == "", command
    # a summary without its table: the kind is named, no table that is not there
    (folder / "results.csv").unlink()
    paired = cli("report", folder, folder)
    assert paired.code == 2 and paired.err == f"error: {folder} is a {kind} folder ({summary}), not a search folder (search.json)\n"
    # a folder with no summary of any kind: report names every kind's (it named a search's alone)
    empty = tmp_path / "empty"
    empty.mkdir()
    kinds = "one of search.json / calibration.json / compare.json, as a search, a calibration or a comparison writes them"
    missing = cli("report", empty)
    assert (missing.code, missing.err) == (2, f"error: {empty} is not a study folder: it holds no results.csv or summary "
                                              f"(a study folder holds results.csv and {kinds})\n")
    # one file of the pair: the missing one is named (it said 'no results.csv / search.json' beside a results.csv)
    (empty / "results.csv").write_text("candidate\n")
    half = cli("report", empty)
    assert half.code == 2 and half.err == (f"error: {empty} is not a study folder: it holds no summary "
                                           f"(a study folder holds results.csv and {kinds})\n"), half.err


# ---------------------------------------------------------------------------------------------
# The JSON object, on constructed searches whose figures are known


def test_compare_json_is_one_object_with_figures_best_lines_and_rows(cli, monkeypatch, tmp_path):
    a = ranked([0.5, 0.4, 0.3, 0.2], ["complete"] * 4, [True, False, False, False])
    b = ranked([0.3, 0.45, 0.35, 0.1], ["complete"] * 4, [False, True, True, False])
    constructed(monkeypatch, {"A": a, "B": b})
    result = cli("report", tmp_path / "A", tmp_path / "B", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert list(data) == ["a", "b", "shared", "scored", "other_networks", "spearman_p", "spearman", "spearman_low", "spearman_high",
                          "kendall", "kendall_low", "kendall_high", "best", "unfinished", "candidates"]  # fmt: skip
    assert data["a"] == str(tmp_path / "A") and data["b"] == str(tmp_path / "B") and data["unfinished"] == {"a": 0, "b": 0}
    assert data["shared"] == 4 and data["scored"] == 4
    # top-1 by candidate (alpha 1.0, 1.2, 1.4, 1.6): A 0.5 0.4 0.3 0.2, B 0.3 0.45 0.35 0.1
    assert data["spearman"] == pytest.approx(stats.spearmanr([0.5, 0.4, 0.3, 0.2], [0.3, 0.45, 0.35, 0.1]).statistic)
    assert data["spearman"] == pytest.approx(0.4) and data["kendall"] == pytest.approx(1 / 3)
    # 9 of the 24 pairings of 4 candidates reach rho 0.4; resampling 4 candidates spans [-1, 1]
    assert data["spearman_p"] == pytest.approx(9 / 24)
    assert (data["spearman_low"], data["spearman_high"]) == (-1, 1) and (data["kendall_low"], data["kendall_high"]) == (-1, 1)
    table = cli("report", tmp_path / "A", tmp_path / "B")
    assert "rank agreement over 4 candidates: Spearman 0.40 [-1.00, 1.00], Kendall 0.33 [-1.00, 1.00] (95% bootstrap over " \
           "candidates); unrelated rankings agree as well with p = 0.375" in " ".join(table.out.split())  # fmt: skip
    same = cli("report", tmp_path / "A", tmp_path / "A")  # 4 in the same order: one pairing in 24
    flat = " ".join(same.out.split())
    assert "Spearman 1.00 [1.00, 1.00], Kendall 1.00 [1.00, 1.00]" in flat and "agree as well with p = 0.042" in flat
    assert data["best"] == [
        "best of A: (1, 1, 1.1) is rank 3 in B, not tied with its best there",
        "best of B: (1.2, 1, 1.1) is rank 2 in A, not tied with its best there",
    ]
    rows = data["candidates"]
    assert [r["alpha"] for r in rows] == [1.0, 1.2, 1.4, 1.6] and [r["rank_a"] for r in rows] == [1, 2, 3, 4]
    assert [r["rank_b"] for r in rows] == [3, 1, 2, 4] and [r["top1_b"] for r in rows] == [0.3, 0.45, 0.35, 0.1]
    assert rows[0]["difference"] == pytest.approx(-0.2) and rows[0]["tied_with_best_a"] is True
    # the rows are the ones --format csv prints (the CSV is the rows alone)
    csv = cli("report", tmp_path / "A", tmp_path / "B", "--format", "csv")
    assert csv.code == 0, csv.err
    assert "rank agreement over 4 candidates: Spearman 0.40" in csv.err and "best of A: (1, 1, 1.1) is rank 3 in B" in csv.err
    table = pd.read_csv(io.StringIO(csv.out))
    assert list(table.columns) == list(rows[0])
    assert len(table) == len(rows)
    for row, line in zip(rows, table.to_dict(orient="records")):
        assert row == {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in line.items()}


def test_compare_json_writes_null_figures_and_not_finished_bests(cli, monkeypatch, tmp_path):
    a = ranked([0.5, 0.4, 0.3, 0.2], ["complete"] * 4, [True, False, False, False])
    b = ranked([np.nan, 0.45, 0.35, np.nan], ["queued", "complete", "complete", "failed"], [False, True, False, False])
    constructed(monkeypatch, {"A": a, "B": b})
    result = cli("report", tmp_path / "A", tmp_path / "B", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)  # NaN is no JSON: a strict parser would fail on it
    assert data["shared"] == 4 and data["scored"] == 2 and data["unfinished"] == {"a": 0, "b": 1}  # failed is finished
    assert all(data[k] is None for k in ("spearman", "spearman_low", "spearman_high", "kendall", "kendall_low", "kendall_high", "spearman_p"))
    assert data["best"] == [
        "best of A: (1, 1, 1.1) is not finished in B (state queued)",
        "best of B: (1.2, 1, 1.1) is rank 2 in A, not tied with its best there",
    ]
    queued = next(r for r in data["candidates"] if r["alpha"] == 1.0)
    assert queued["top1_b"] is None and queued["difference"] is None and queued["state_b"] == "queued"
    table = cli("report", tmp_path / "A", tmp_path / "B")
    assert table.code == 0, table.err
    flat = " ".join(table.out.split())
    assert "best of A: (1, 1, 1.1) is not finished in B (state queued)" in flat and "is rank 1 in B" not in flat


# ---------------------------------------------------------------------------------------------
# compare_searches: a best that is not complete in the other search


@pytest.mark.parametrize(("state", "words"), [
    ("queued", "is not finished in B (state queued)"),
    ("running", "is not finished in B (state running)"),
    ("interrupted", "is not finished in B (state interrupted)"),
    ("failed", "did not complete in B (state failed)"),
    ("diverged", "did not complete in B (state diverged)"),
    ("timeout", "did not complete in B (state timeout)"),
])  # fmt: skip
def test_best_of_a_unfinished_in_b_gets_its_state_not_a_rank(state, words):
    a = ranked([0.5, 0.4, 0.3, 0.2], ["complete"] * 4, [True, False, False, False])
    b = ranked([0.6, 0.45, 0.35, 0.1], [state, "complete", "complete", "complete"], [False, True, False, False])
    assert b.loc[b["alpha"] == 1.0, "rank"].item() == 4  # ranked after the complete ones: a rank, but no standing
    comparison = compare_searches(a, b)
    assert comparison.best_lines == [f"best of A: (1, 1, 1.1) {words}", "best of B: (1.2, 1, 1.1) is rank 2 in A, not tied with its best there"]
    assert comparison.scored == 3


def test_best_of_b_unfinished_in_a_and_complete_bests_keep_their_rank():
    a = ranked([0.5, 0.4, 0.3, 0.2], ["complete", "running", "complete", "complete"], [True, False, False, False])
    b = ranked([0.2, 0.45, 0.35, 0.1], ["complete"] * 4, [False, True, False, False])
    assert compare_searches(a, b).best_lines == [
        "best of A: (1, 1, 1.1) is rank 3 in B, not tied with its best there",
        "best of B: (1.2, 1, 1.1) is not finished in A (state running)",
    ]
    same = compare_searches(b, b).best_lines
    assert same == ["best of A: (1.2, 1, 1.1) is rank 1 in B, its best there too",
                    "best of B: (1.2, 1, 1.1) is rank 1 in A, its best there too"]  # fmt: skip


def test_each_best_is_its_own_search_s_even_when_the_other_lacks_it():
    """A's best is a candidate B never had: A's line says so, and B's best is B's own rank 1,
    not the best of the candidates both share."""
    a = ranked([0.5, 0.4, 0.3, 0.2], ["complete"] * 4, [True, False, False, False])
    b = ranked([0.3, 0.45, 0.35, 0.1], ["complete"] * 4, [False, True, True, False])
    b.loc[b["alpha"] == 1.2, ["alpha", "resolution"]] = [1.8, 40]  # B's best is not among A's candidates
    comparison = compare_searches(a, b)
    assert comparison.shared == 3
    assert comparison.best_lines == [
        "best of A: (1, 1, 1.1) is rank 3 in B, not tied with its best there",
        "best of B: (1.8, 1, 1.1) is not among A's candidates",
    ]
    assert compare_searches(b, a).best_lines[0] == "best of A: (1.8, 1, 1.1) is not among B's candidates"


def test_points_trained_at_another_resolution_are_other_networks_and_said_to_be(cli, monkeypatch, tmp_path):
    """Two proxies at other base resolutions train each point at another resolution: nothing
    is compared, and the lines say why instead of calling A's best absent from B."""
    a = ranked([0.5, 0.4, 0.3, 0.2], ["complete"] * 4, [True, False, False, False])
    b = ranked([0.3, 0.45, 0.35, 0.1], ["complete"] * 4).assign(resolution=44)
    comparison = compare_searches(a, b)
    assert (comparison.shared, comparison.other_networks) == (0, 4)
    assert comparison.best_lines == [
        "best of A: (1, 1, 1.1) is not among B's candidates at 36 px (B trained it at 44 px)",
        "best of B: (1.2, 1, 1.1) is not among A's candidates at 44 px (A trained it at 36 px)",
    ]
    assert compare_searches(a, a).other_networks == 0
    constructed(monkeypatch, {"A": a, "B": b})
    table = cli("report", tmp_path / "A", tmp_path / "B")
    assert table.code == 0, table.err
    assert ("0 candidates in both, 0 complete in both; 4 point(s) of both were trained as other networks (another "
            "resolution, width, depth or size), so are not compared (report compares searches of one proxy; `scaler "
            "calibrate` compares proxies)") in " ".join(table.out.split())
    assert json.loads(cli("report", tmp_path / "A", tmp_path / "B", "--format", "json").out)["other_networks"] == 4
    # searches of two families: the bases their summaries record are named
    bases = {"A": {"variant": "resnet50", "width": 0.25, "resolution": 32}, "B": {"variant": "mobilenetv2", "width": 0.5, "resolution": 32}}
    monkeypatch.setattr(scaler.experiments.search, "read_results", lambda folder: (
        {"A": a, "B": b}[Path(folder).name].copy(), {"name": Path(folder).name, "config": {"base": bases[Path(folder).name]}}))
    families = " ".join(cli("report", tmp_path / "A", tmp_path / "B").out.split())
    assert ("(another resolution, width, depth or size: A's base is resnet50 w0.25 at 32px, B's mobilenetv2 w0.5 at 32px), "
            "so are not compared") in families


def test_points_of_another_proxy_at_the_same_resolution_are_other_networks(cli, monkeypatch, tmp_path):
    """A search of another base width (or phi) trains other networks at the same points and
    resolutions: none is compared, and each best's line says how the networks differ."""
    a = ranked([0.5, 0.4, 0.3, 0.2], ["complete"] * 4, [True, False, False, False])
    b = ranked([0.3, 0.45, 0.35, 0.1], ["complete"] * 4)
    b = b.assign(width_mult=1.0, params=b["params"] * 3)  # --base-width 1 against 0.5
    comparison = compare_searches(a, b)
    assert (comparison.shared, comparison.scored, comparison.other_networks) == (0, 0, 4)
    assert comparison.spearman is None
    assert comparison.best_lines == [
        "best of A: (1, 1, 1.1) is not among B's candidates (B trained another network there: width_mult 1 instead of 0.5, "
        "params 3,000 instead of 1,000)",
        "best of B: (1.2, 1, 1.1) is not among A's candidates (A trained another network there: width_mult 0.5 instead of 1, "
        "params 1,100 instead of 3,300)",
    ]
    more_classes = a.assign(params=a["params"] + 1)  # the same multipliers, another classifier
    assert compare_searches(a, more_classes).other_networks == 4
    constructed(monkeypatch, {"A": a, "B": b})
    assert json.loads(cli("report", tmp_path / "A", tmp_path / "B", "--format", "json").out)["other_networks"] == 4


# ---------------------------------------------------------------------------------------------
# Two real (tiny) searches


@pytest.fixture(scope="module")
def two_searches(tmp_path_factory) -> tuple[Path, Path]:
    """Two searches of the same candidates, seeds 0 and 1, 2 repeats each."""
    root = tmp_path_factory.mktemp("searches")
    for seed in ("0", "1"):
        assert main(["search", *TINY, "--root", str(root), "--name", f"s{seed}", "--seed", seed, "--repeats", "2"]) == 0
    return root / "s0", root / "s1"


@pytest.mark.parametrize(("scored", "why"), [(2, "only 2 candidate(s) complete in both, and it takes 3"), (4, "one search scores them all alike")])
def test_an_undefined_rank_agreement_names_its_one_cause(tmp_path, scored, why):
    from scaler.cli.report import _compare_lines
    from scaler.reports import SearchComparison

    comparison = SearchComparison(pd.DataFrame(), shared=4, scored=scored, spearman=None, kendall=None, spearman_p=None, best_lines=[])
    done = pd.DataFrame({"state": ["complete"] * 4})
    lines = _compare_lines(comparison, tmp_path / "a", tmp_path / "b", {"name": "a"}, {"name": "b"}, done, done)
    assert lines[1] == f"rank agreement: undefined ({why})"


def test_two_real_searches_compare_as_one_json_object(cli, two_searches, tmp_path):
    first, second = two_searches
    result = cli("report", first, second, "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    a, b = pd.read_csv(first / "results.csv"), pd.read_csv(second / "results.csv")
    both = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    done = both[(both["state_a"] == "complete") & (both["state_b"] == "complete")]
    assert data["a"] == str(first) and data["b"] == str(second)
    assert data["shared"] == len(both) == 3 and data["scored"] == len(done)
    x, y = done["top1_a"].to_numpy(float), done["top1_b"].to_numpy(float)
    if len(done) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:  # one search scores them all alike
        assert data["spearman"] is None and data["kendall"] is None and data["spearman_p"] is None
    else:
        assert data["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
        assert data["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic)
    best_a = a[a["state"] == "complete"].sort_values("rank").iloc[0]
    in_b = b[(b[KEYS] == best_a[KEYS]).all(axis=1)].iloc[0]
    tie = ("its best there too" if in_b["rank"] == 1 else
           "tied with its best there" if in_b["tied_with_best"] else "not tied with its best there")
    assert data["best"][0] == f"best of A: ({best_a['alpha']:g}, {best_a['beta']:g}, {best_a['gamma']:.4g}) is rank {in_b['rank']} in B, {tie}"
    assert len(data["best"]) == 2 and data["best"][1].startswith("best of B: ")
    assert {"top1_a", "top1_b", "rank_a", "rank_b", "difference"} <= set(data["candidates"][0])
    assert [r["rank_a"] for r in data["candidates"]] == [1, 2, 3]
    assert [r["top1_a"] for r in data["candidates"]] == a.sort_values("rank")["top1"].tolist()
    # the caption of the table shows the same lines
    table = cli("report", first, second)
    assert table.code == 0 and all(line in " ".join(table.out.split()) for line in data["best"])
    flat = " ".join(table.out.split())
    assert f"A = {first}, B = {second}; 3 candidates in both" in flat and "unfinished" not in flat  # a name only where it differs
    # a search with candidates still to train says so beside its best, alone and against another
    legacy = Path(__file__).parent / "data" / "legacy-search"  # 2 of 4 candidates still queued
    warning = ("unfinished: 2 of 4 candidates still to train (2 queued); its best is the best so far, which they may "
               "change; the search's own command finishes it")
    assert warning in " ".join(cli("report", legacy).out.split())
    assert f"A {warning}" in " ".join(cli("report", legacy, first).out.split())
    assert json.loads(cli("report", legacy, first, "--format", "json").out)["unfinished"] == {"a": 2, "b": 0}
    assert data["unfinished"] == {"a": 0, "b": 0}
    # a folder renamed from its study: the caption names the study beside it
    renamed = tmp_path / "renamed"
    shutil.copytree(first, renamed)
    assert f"A = {renamed} ({first.name}), B = {second};" in " ".join(cli("report", renamed, second).out.split())
    # --plot and --pareto are refused with two real folders too, and still work with one
    plot = tmp_path / "x.png"
    refused = cli("report", first, second, "--plot", plot)
    assert refused.code == 2 and refused.err == TWO_FOLDERS and not plot.exists()
    alone = cli("report", first, "--pareto", "--plot", plot, "--format", "json")
    assert alone.code == 0 and plot.exists() and len(json.loads(alone.out)) >= 1
    # stderr: the plot's line, then the caption's (the Pareto front named, as the table's caption names it)
    assert alone.err.startswith(f"plot written to {plot}\n{first}/results.csv") and "Pareto front of finished candidates" in alone.err
    frame, _ = read_results(first)
    assert len(json.loads(alone.out)) <= len(frame)
    # a search against itself: full agreement, its best is rank 1 there too; three folders are refused
    itself = cli("report", first, first)
    assert itself.code == 0 and "rank agreement" in itself.out
    assert "is rank 1 in B, its best there too" in " ".join(itself.out.split())
    assert "3 complete in both; A and B are one folder, so they agree by construction" in " ".join(itself.out.split())
    other = first.parent / ".." / first.parent.name / first.name  # the same folder however spelled
    assert "are one folder" in " ".join(cli("report", first, other).out.split())
    assert "are one folder" not in " ".join(cli("report", first, second).out.split())
    assert cli("report", first, second, tmp_path).code == 2


def test_a_study_without_its_summary_says_so_and_its_command_writes_it(cli, two_searches, tmp_path):
    """A folder killed before its first training finished (or whose summary was deleted) holds
    the study's journal alone: report says what it is and how to finish it, and that works."""
    first, _ = two_searches
    folder = tmp_path / first.name
    shutil.copytree(first, folder)
    (folder / "search.json").unlink()
    (folder / "results.csv").unlink()
    for command in (["report", folder], ["report", folder, first], ["scale", "--from", folder]):
        result = cli(*command)
        prefix = "error: --from: " if command[0] == "scale" else "error: "
        assert result.code == 2 and result.out == "" and result.err == (
            f"{prefix}{folder} holds a study (study.journal) but no summary (search.json / calibration.json / compare.json): "
            "one is written as each training finishes; rerun the study's command (same options) to train and write it\n"), command
    rerun = cli("search", *TINY, "--root", tmp_path, "--name", first.name, "--seed", "0", "--repeats", "2")
    assert rerun.code == 0 and "6 already finished, 0 to train" in rerun.err, rerun.err  # from the journal, nothing retrained
    assert pd.read_csv(folder / "results.csv").equals(pd.read_csv(first / "results.csv"))
