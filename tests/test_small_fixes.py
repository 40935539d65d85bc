"""Small CLI defects: flops headers, the flag an error names, empty study names, integer
counts in results.csv, the --device / --threads help of each command, and options that would
be ignored."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import subprocess
import sys

import matplotlib.colors
import pandas as pd
import pytest
from rich.console import Console

from scaler.cli.calibrate import caption_lines, has_whole_set
from scaler.errors import UsageError
from scaler.files import git_commit, whole_numbers
from scaler.cli.render import Column, emit, giga, integer, mega, seconds, share, to_json
from scaler.study import results as study_results
from scaler.study.create import join_study
from scaler.study.storage import mask_url
from scaler.study.trials import records
from scaler.data import SYNTHETIC_CLASSES
from tests.conftest import TINY_BASE

EMPTY_NAME = (
    "the name is empty; use 1-128 letters, digits, '.', '_', '+' or '-', "
    "starting with a letter or digit (one folder name, no path)"
)
TINY = ["--base", TINY_BASE, "--train-images", "64", "--val-images", "32", "--epochs", "1", "--base-resolution", "32",
        "--threads", "1", "--quiet"]  # fmt: skip


# two networks of the tiny net (alpha 1.2 and 1.4 round to one network, and are one candidate)
TINY_SPACE = ["--alpha-range", "1.2:1.6:0.4", "--beta-range", "1", "--gamma-range", "1.1", "--tolerance", "0.75", "--base-width", "0.25"]


def flat(text: str) -> str:
    """Help text with rich's wrapping (and any box edges) undone."""
    return " ".join(text.replace("│", " ").split())


def column(text: str, name: str) -> list[str]:
    return [row[name] for row in csv.DictReader(io.StringIO(text))]


# 1. `scaler flops`: each paper figure and deviation says whether it is params or MACs.


def test_flops_headers_name_params_and_macs_apart(cli):
    result = cli("flops", "b0")
    assert result.code == 0, result.err
    header = next(line for line in result.out.splitlines() if " model " in line)
    cells = [c for c in header.strip().split("  ") if c.strip()]
    assert [c.strip() for c in cells] == [
        "model", "res", "params", "MACs G", "FLOPs G", "fvcore G", "MACs paper†", "Δ MACs", "params paper†", "Δ params",
    ]  # fmt: skip
    assert "† as printed in Tan & Le 2019" in result.out and "Δ = measured vs printed." in result.out
    markdown = cli("flops", "b0", "--format", "markdown")
    assert "| MACs paper† | Δ MACs | params paper† | Δ params |" in markdown.out
    machine = cli("flops", "b0", "--format", "csv")  # field names unchanged
    assert machine.out.splitlines()[0] == (
        "model,width,depth,resolution,classes,params,macs,flops,fvcore_total,"
        "paper_params,params_deviation,paper_macs,macs_deviation"
    )



def test_paper_figures_keep_the_digits_the_papers_printed(cli):
    result = cli("flops", "all", "--format", "markdown")
    assert result.code == 0, result.err
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in result.out.splitlines()
            if line.startswith("| b")}
    # Tan & Le 2019, Table 2: 0.70B and 1.0B, not 0.7B and 1B; 12M stays 12M.
    assert rows["b1"][6] == "0.70B" and rows["b2"][6] == "1.0B" and rows["b3"][8] == "12M"
    resnet = cli("flops", "resnet50", "--format", "markdown")
    assert "| 4.09B |" in resnet.out and "| 25.6M |" in resnet.out  # three digits where printed so

# 2. `scaler compare`: bad compound coefficients name --compound; --strategies is named once.


@pytest.mark.parametrize(
    "args, line",
    [
        (["--compound", "0.5,1.1,1.15"], "error: --compound: strategy compound: alpha = 0.5 is not allowed; it must be a number >= 1"),
        (["--compound", "3,3,3"], ("error: --compound: strategy compound (3, 3, 3) has alpha*beta^2*gamma^2 = 243.000, "
                                   "more than 10% from T = 2: it would not compare at equal FLOPs")),
        (["--strategies", ""], ("error: --strategies: '' leaves nothing to compare compound with; "
                                "name at least one of width, depth, resolution")),
        (["--strategies", "x=3:3:3"], ("error: --strategies: strategy x (3, 3, 3) has alpha*beta^2*gamma^2 = 243.000, "
                                       "more than 10% from T = 2: it would not compare at equal FLOPs")),
    ],
)  # fmt: skip
def test_compare_errors_name_the_flag_at_fault_once(cli, tmp_path, args, line):
    result = cli("compare", *args, "--root", tmp_path)
    assert (result.code, result.err) == (2, line + "\n")
    assert not any(tmp_path.iterdir())


# 3. An empty --name (or worker --study) is refused, not taken for "no name".


@pytest.mark.parametrize("command", ["search", "compare", "calibrate"])
def test_empty_name_is_refused(cli, tmp_path, command):
    result = cli(command, "--name", "", *TINY, "--root", tmp_path)
    assert (result.code, result.err) == (2, f"error: --name: {EMPTY_NAME}\n")
    assert not any(tmp_path.iterdir())


def test_worker_refuses_an_empty_study_name(cli, tmp_path):
    result = cli("worker", "--storage", f"sqlite:///{tmp_path}/studies.db", "--study", "")
    assert (result.code, result.err) == (2, f"error: --study: {EMPTY_NAME}\n")
    assert not any(tmp_path.iterdir())


# 4. results.csv writes epochs (and repeats) as integers, finished or not.


def test_results_csv_counts_are_integers_finished_or_not(cli, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/studies.db"
    result = cli("search", *TINY, "--root", tmp_path, "--name", "s", "--storage", url)
    assert result.code == 0, result.err
    text = (tmp_path / "s" / "results.csv").read_text()
    assert column(text, "epochs") == ["1"] * 6 and column(text, "repeats") == ["1"] * 6

    # The same writer while 4 of the 6 candidates are unfinished: blanks, and "1", never "1.0".
    (tmp_path / "partial").mkdir()  # a worker's --folder must exist
    handle = join_study(url, "s", tmp_path / "partial")
    found = records(handle)
    assert len(found) == 6
    monkeypatch.setattr(study_results, "records", lambda _: found[:2])
    study_results.write_outputs(handle)
    partial = (tmp_path / "partial" / "results.csv").read_text()
    assert sorted(column(partial, "epochs")) == ["", "", "", "", "1", "1"]
    assert sorted(column(partial, "repeats")) == ["0", "0", "0", "0", "1", "1"]

    # 2 again: coefficients taken from --from are blamed on --from, not --compound.
    other_t = cli("compare", "--from", tmp_path / "s", "--target", "3", "--root", tmp_path / "cmp")
    assert other_t.code == 2
    last = other_t.err.splitlines()[-1]
    assert last.startswith(f"error: --from: the best candidate of {tmp_path / 's'}: strategy compound (")
    assert last.endswith("more than 10% from T = 3: it would not compare at equal FLOPs")
    assert not (tmp_path / "cmp").exists()
    # the paper's default coefficients against another --target: the --target's fault, with what to give
    default = cli("compare", "--target", "3", "--root", tmp_path / "cmp")
    assert default.code == 2 and not (tmp_path / "cmp").exists()
    [line] = default.err.strip().splitlines()
    assert line.startswith("error: --target: strategy compound (1.2, 1.1, 1.15) has alpha*beta^2*gamma^2 = 1.920")
    assert line.endswith("; give --compound coefficients for T = 3 (or --from a search run with --target 3)")


# 5 and 6. --device and --threads help says what each command does.


@pytest.mark.parametrize("command", ["train", "worker"])
def test_single_process_commands_do_not_mention_workers(cli, command):
    result = cli(command, "--help")
    assert result.code == 0
    text = flat(result.out)
    assert "--workers" not in text
    assert "--device <str> auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps. [default: auto]" in text
    assert "--threads <int> CPU threads (default: all cores)." in text


@pytest.mark.parametrize("command", ["search", "compare", "calibrate"])
def test_study_commands_explain_workers_and_threads_per_worker(cli, command):
    result = cli(command, "--help")
    assert result.code == 0
    text = flat(result.out)
    assert "With --workers N, cuda (or auto) gives worker i GPU i mod the visible count" in text
    assert (
        "--threads <int> CPU threads of each worker process (default: all cores with one worker; "
        "with --workers N, cores / N each)." in text
    )
    assert "split between workers" not in text


# 7. Options that would be ignored are refused or said; closed choices show in help.


@pytest.mark.parametrize("given", [["--alpha", "1.3"], ["--beta", "1.1", "--gamma", "1.2"]])
def test_scale_from_refuses_coefficients_it_would_ignore(cli, tmp_path, given):
    result = cli("scale", "--from", tmp_path / "missing", *given)
    flags = ", ".join(g for g in given if g.startswith("--"))
    assert (result.code, result.err) == (2, f"error: --from takes alpha, beta and gamma from the search; drop {flags}\n")


def test_scale_defaults_to_the_papers_coefficients(cli):
    default = cli("scale", "--phi", "1", "--format", "csv")
    spelled = cli("scale", "--phi", "1", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15", "--format", "csv")
    assert default.code == spelled.code == 0 and default.out == spelled.out


def test_worker_on_a_missing_sqlite_file_creates_nothing(cli, tmp_path):
    result = cli("worker", "--storage", f"sqlite:///{tmp_path}/missing.db", "--study", "s")
    assert (result.code, result.err) == (2, f"error: --storage: sqlite:///{tmp_path}/missing.db: {tmp_path}/missing.db does not exist\n")
    assert not any(tmp_path.iterdir())
    # a SQLite URI filename is SQLite's to open: not read as a path, so not refused as missing
    uri = cli("worker", "--storage", f"sqlite:///file:{tmp_path}/u.db?uri=true", "--study", "s")
    assert uri.code == 2 and "study 's' not found" in uri.err


def test_calibration_caption_names_the_candidates_by_their_points_and_says_when_the_set_has_fewer_than_asked(tmp_path):
    table = pd.DataFrame({"setting": [0] * 3, "candidate": [0, 1, 2], "alpha": [1.2, 1.0, 1.0], "beta": [1.0, 1.1, 1.0],
                          "gamma": [1.0, 1.0, 1.2247448714]})  # fmt: skip
    info = {"candidates": [0, 1, 2], "config": {"k": 100}}
    lines = caption_lines(info, table, tmp_path, tmp_path / "c.png")
    assert lines[0] == (f"{tmp_path}/results.csv · candidates (1.2, 1, 1), (1, 1.1, 1), (1, 1, 1.225) all 3 of the search's set "
                        f"(--candidates 100 asked for more) · plot {tmp_path}/c.png")
    info["config"]["k"] = 3
    assert caption_lines(info, table, tmp_path, None)[0] == f"{tmp_path}/results.csv · candidates (1.2, 1, 1), (1, 1.1, 1), (1, 1, 1.225) of the search's set"
    # the set's size stored: --candidates 3 of a set of 3 is the whole set, and more cannot help
    assert caption_lines({**info, "set_size": 3}, table, tmp_path, None)[0].endswith("(1, 1, 1.225) all 3 of the search's set")
    assert has_whole_set({**info, "set_size": 3}) and not has_whole_set({**info, "set_size": 4}) and not has_whole_set(info)


def test_closed_choices_show_in_help(cli):
    text = flat(cli("search", "--help").out)
    for shown in ("--mode grid|surface", "--alpha-range START:STOP:STEP", "--optimizer sgd|rmsprop|adamw",
                  "--pruner none|halving|hyperband"):
        assert shown in text


def test_csv_on_stdout_writes_counts_as_integers_beside_blanks(capsys):
    frame = pd.DataFrame({"epochs": [5.0, math.nan], "top1": [0.5, math.nan], "phi": [0.5, 1.0]})
    columns = [Column("epochs", "epochs", integer), Column("top1", "top-1", share), Column("phi", "phi", integer)]
    emit(frame, columns, "csv", Console())
    assert capsys.readouterr().out == "epochs,top1,phi\n5,0.5,0.5\n,,1.0\n"  # a fractional column is left as it is


def test_the_search_plot_names_the_table_s_best_not_an_unfinished_row(monkeypatch, tmp_path):
    """A queued candidate with a partial top-1 above every complete one: the plot's "best" and
    its map are the complete rows' (the table's ★), and the queued row is still drawn."""
    from scaler import plots

    frame = pd.DataFrame({
        "alpha": [1.0, 1.2, 1.4], "beta": [1.0, 1.0, 1.1], "gamma": [1.1, 1.1, 1.0], "macs": [2e6, 3e6, 4e6],
        "top1": [0.40, 0.30, 0.90], "top1_low": [0.35, 0.25, 0.85], "top1_high": [0.45, 0.35, 0.95],
        "state": ["complete", "complete", "queued"],
    })  # fmt: skip
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    plots.plot_search(frame, tmp_path / "search.png")
    left, right = figures[0].axes[:2]
    assert [t.get_text() for t in left.texts] == ["best (1, 1, 1.1)"]
    assert sorted(t.get_text() for t in right.texts) == ["30.0", "40.0"]  # no cell from the queued row
    assert sum(len(c.get_offsets()) for c in left.collections if c.get_label() == "queued") == 1
    assert not [c for c in left.collections if "tied" in c.get_label()]  # no tie column, no rings
    # rings on the best and the complete rows tied with it, read back from CSV as strings; not on a queued row
    figures.clear()
    plots.plot_search(frame.assign(tied_with_best=["True", "true", "True"]), tmp_path / "search.png")
    [rings] = [c for c in figures[0].axes[0].collections if c.get_label() == "≈ the best and those tied with it (95%)"]
    assert sorted(map(tuple, rings.get_offsets().tolist())) == [(2.0, 40.0), (3.0, 30.0)]
    figures.clear()
    plots.plot_search(frame.assign(tied_with_best=[True, False, None]), tmp_path / "search.png")
    assert not [c for c in figures[0].axes[0].collections if "tied" in c.get_label()]  # the best alone: nothing to ring
    # nothing complete, nothing scored: the empty panels say so (they were blank axes)
    figures.clear()
    plots.plot_search(frame.assign(top1=math.nan, state=["failed", "failed", "timeout"]), tmp_path / "search.png")
    left, right = figures[0].axes[:2]
    assert [t.get_text() for t in left.texts] == ["no candidate has a top-1 yet"]
    assert [t.get_text() for t in right.texts] == ["no complete candidate\n(2 failed, 1 timeout)"]
    figures.clear()
    plots.plot_search(frame.assign(state="queued"), tmp_path / "search.png")  # partial top-1s drawn, no map
    assert [t.get_text() for t in figures[0].axes[1].texts] == ["no complete candidate\n(3 queued)"] and not figures[0].axes[0].texts
    assert "Pareto front" not in [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]  # a front of nothing
    # unfinished rows are not drawn in red, chance's and the paper's colour; the heat map's numbers read on light cells
    figures.clear()
    plots.plot_search(frame.assign(state=["complete", "complete", "interrupted"]), tmp_path / "search.png", classes=10)
    left, right = figures[0].axes[:2]
    [interrupted] = [c for c in left.collections if c.get_label() == "interrupted"]
    assert tuple(interrupted.get_facecolor()[0][:3]) != matplotlib.colors.to_rgb("tab:red")
    assert sorted((t.get_text(), t.get_color()) for t in right.texts) == [("30.0", "white"), ("40.0", "black")]  # 40: viridis yellow


def test_every_plot_draws_chance_where_the_classes_are_known_and_a_calibration_s_settings_stay_visible(monkeypatch, tmp_path):
    """A run that learned nothing reads as such: chance is a dotted line (both axes of the
    calibration's). Settings that agree were hidden under one another (one marker and size)."""
    from scaler import plots

    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    search = pd.DataFrame({
        "alpha": [1.0, 1.2], "beta": [1.0, 1.0], "gamma": [1.1, 1.1], "macs": [2e6, 3e6], "top1": [0.12, 0.2],
        "top1_low": [0.05, 0.1], "top1_high": [0.2, 0.3], "state": ["complete"] * 2,
    })  # fmt: skip
    compare = pd.DataFrame({"strategy": ["base", "compound"], "phi": [0, 1], "macs": [1e6, 2e6], "top1": [0.1, 0.2],
                            "top1_low": [0.05, 0.1], "top1_high": [0.2, 0.3]})
    calibration = pd.DataFrame({"setting": [0, 0, 1, 1, 2, 2], "candidate": [0, 1] * 3, "label": ["reference"] * 2 + ["proxy"] * 2 + ["try"] * 2,
                                "top1": [0.3, 0.5, 0.2, 0.4, 0.2, 0.4], "top1_low": [0.2, 0.4, 0.1, 0.3, 0.1, 0.3],
                                "top1_high": [0.4, 0.6, 0.3, 0.5, 0.3, 0.5]})
    for draw, frame in ((plots.plot_search, search), (plots.plot_comparison, compare), (plots.plot_calibration, calibration)):
        for classes in (10, None):
            figures.clear()
            draw(frame, tmp_path / "x.png", classes=classes)
            ax = figures[0].axes[0]
            chance = [line for line in ax.lines if line.get_label() == "chance (1 of 10 classes)"]
            assert [line.get_ydata()[0] for line in chance] == ([10.0] if classes else []), draw
    # far below the accuracies drawn: the legend says where, and their axis is not stretched down to it
    figures.clear()
    high = search.assign(top1=[0.86, 0.89], top1_low=[0.85, 0.88], top1_high=[0.87, 0.90])
    plots.plot_search(high, tmp_path / "x.png", title="Search s: phi=1, T=2 on /a/long/path/to/a/factory/" + "x" * 120 + ".py:make", classes=10)
    ax = figures[0].axes[0]
    assert ax.get_ylim()[0] > 80 and "chance (1 of 10 classes): 10%, below the axis" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert "\n" in figures[0].texts[0].get_text()  # a long title wrapped, not cut at both sides
    figures.clear()
    plots.plot_calibration(calibration, tmp_path / "x.png", classes=10)
    ax = figures[0].axes[0]
    assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":" and line.get_label().startswith("_")] == [10.0]
    proxy, tried = [c for c in ax.collections if c.get_label() in ("proxy", "try")]
    assert proxy.get_sizes()[0] > tried.get_sizes()[0]  # the later one on top, smaller
    assert proxy.get_paths()[0].vertices.shape != tried.get_paths()[0].vertices.shape  # and of another shape (circle, square)
    assert ax.get_xlim()[0] <= 10 and ax.get_ylim()[0] <= 10  # chance within view


def test_the_best_s_label_stays_inside_the_plot_when_the_best_is_the_costliest(monkeypatch, tmp_path):
    from scaler import plots

    frame = pd.DataFrame({
        "alpha": [1.0, 1.2, 1.4], "beta": [1.0, 1.0, 1.1], "gamma": [1.1, 1.1, 1.0], "macs": [2e6, 3e6, 4e6],
        "top1": [0.30, 0.40, 0.90], "top1_low": [0.25, 0.35, 0.85], "top1_high": [0.35, 0.45, 0.95], "state": ["complete"] * 3,
    })  # fmt: skip
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    for macs, side in (([2e6, 3e6, 4e6], "right"), ([4e6, 3e6, 2e6], "left")):  # the best, 90%, costliest / cheapest
        plots.plot_search(frame.assign(macs=macs), tmp_path / "search.png")
        left = figures[-1].axes[0]
        (label,) = left.texts
        figures[-1].canvas.draw()
        box, axes = label.get_window_extent(), left.get_window_extent()
        assert label.get_ha() == side and axes.x0 <= box.x0 and box.x1 <= axes.x1 and axes.y0 <= box.y0 and box.y1 <= axes.y1


def test_the_comparison_plot_labels_each_phi_once_and_keeps_a_long_title_inside(monkeypatch, tmp_path):
    """One φ label per phi, above its group (four strategies' labels at close MACs overlapped),
    and a long study name's title wrapped within the figure (it was cut off at both sides)."""
    from scaler import plots

    rows = [("base", 0, 30e6, 0.40)] + [
        (strategy, phi, 30e6 * 2**phi * k, 0.40 + 0.05 * phi * k)
        for strategy, k in (("compound", 1.0), ("width", 0.97), ("depth", 1.02), ("resolution", 1.05)) for phi in (1, 2)
    ]
    frame = pd.DataFrame(rows, columns=["strategy", "phi", "macs", "top1"])
    frame = frame.assign(top1_low=frame["top1"] - 0.03, top1_high=frame["top1"] + 0.03)
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    plots.plot_comparison(frame, tmp_path / "compare.png", "compare-b0-phi2-seed0-a-long-name-of-a-study: top-1 against MACs per strategy")
    (ax,) = figures[0].axes
    assert [t.get_text() for t in ax.texts] == ["φ=1", "φ=2"]
    figures[0].canvas.draw()
    title, whole = ax.title.get_window_extent(), figures[0].bbox
    assert whole.x0 <= title.x0 and title.x1 <= whole.x1 and title.y1 <= whole.y1


def test_a_postscript_plot_is_written_without_a_transparency_warning(tmp_path):
    """.eps has no transparency: the translucent marks are drawn opaque, and matplotlib's
    warning that says so is not passed on to the user (in a process of its own: pytest
    captures log records before they reach stderr)."""
    script = (
        "import sys, pandas as pd; from pathlib import Path; from scaler import plots; "
        "plots.plot_search(pd.DataFrame({'alpha': [1.0, 1.2], 'beta': [1.1, 1.0], 'gamma': [1.1, 1.2], "
        "'macs': [2e6, 3e6], 'top1': [0.4, 0.3], 'top1_low': [0.35, 0.25], 'top1_high': [0.45, 0.35], "
        "'state': ['complete', 'complete']}), Path(sys.argv[1]))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "search.eps")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert (tmp_path / "search.eps").read_bytes().startswith(b"%!PS-Adobe")


def test_markdown_output_is_the_document_alone(cli, tmp_path):
    """--format markdown, like csv and json, runs quietly: stdout holds the title, the table
    and its caption, and the progress goes to stderr, not into the document."""
    result = cli("search", *TINY_SPACE, *TINY[:-1], "--root", tmp_path, "--format", "markdown")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("**Search ") and lines[1] == "" and lines[2].startswith("| rank |") and lines[3].startswith("|---|")
    assert sum(line.startswith("| ") for line in lines) == 3  # the header and the two candidates
    assert "estimated" not in result.out and "training" not in result.out
    assert "estimated" in result.err and ": complete" in result.err


@pytest.mark.parametrize("args", [
    ["scale", "--beta", "1e200", "--phi", "0"],
    ["compare", "--compound", "2,1,1e200", "--phis", "1"],
    ["compare", "--strategies", "x=1:1:1e200", "--phis", "1"],
])  # fmt: skip
def test_a_coefficient_whose_square_overflows_is_input_not_a_crash(cli, tmp_path, args):
    """alpha * beta^2 * gamma^2 past float range: phi 0 is still B0 (product shown as inf);
    compare refuses it as a product far from T, exit 2, one line."""
    result = cli(*args, "--root", tmp_path) if args[0] == "compare" else cli(*args)
    if args[0] == "scale":
        assert result.code == 0, result.err
        assert "(product inf)" in flat(result.out) and "5,288,548" in result.out
    else:
        assert result.code == 2 and result.err.count("\n") == 1
        assert "alpha*beta^2*gamma^2 = inf, more than 10% from T = 2" in result.err


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_report_prints_counts_as_integers_beside_unfinished_rows(capsys, fmt):
    """`scaler report --format csv|json` of a search with an unfinished row: epochs and
    repeats read 1, as in results.csv, not 1.0."""
    from scaler.cli.app import Format
    from scaler.cli.results import show_results

    frame = pd.DataFrame({"rank": [1, 2], "top1": [0.5, math.nan], "epochs": [1.0, math.nan],
                          "repeats": [2.0, math.nan], "state": ["complete", "queued"]})  # fmt: skip
    show_results(frame, Format(fmt), "t")
    out = capsys.readouterr().out
    if fmt == "csv":
        assert out.splitlines() == ["rank,top1,epochs,repeats,state", "1,0.5,1,2,complete", "2,,,,queued"]
    else:
        import json

        rows = json.loads(out)
        assert rows[0]["epochs"] == 1 and isinstance(rows[0]["epochs"], int) and rows[0]["repeats"] == 2
        assert rows[1]["epochs"] is None and rows[1]["top1"] is None


def test_square_brackets_in_a_path_are_printed_not_read_as_styles(cli, tmp_path):
    """rich reads "[old]" as a style and "x[/y]" as a closing tag that fails; the console
    prints text as it is."""
    root = tmp_path / "[old]" / "x[/y]"
    result = cli("search", *TINY_SPACE, *TINY, "--root", root, "--name", "s1")
    assert result.code == 0, result.err
    assert f"{root}/s1/results.csv" in flat(result.out)
    report = cli("report", root / "s1")
    assert report.code == 0 and f"{root}/s1/results.csv" in flat(report.out), report.err


@pytest.fixture
def tiny_search(cli, tmp_path):
    """A finished two-candidate search folder."""
    assert cli("search", *TINY_SPACE, *TINY, "--root", tmp_path, "--name", "s").code == 0
    return tmp_path / "s"


def test_a_reader_between_a_study_s_two_renames_waits_for_the_pair(tiny_search):
    """A running study replaces results.csv, then search.json: a reader in between sees the
    new table beside the old summary. It reads again until they match, and gets the new pair."""
    import hashlib
    import json
    import threading
    import time

    from scaler.experiments.search import read_results

    table, summary = tiny_search / "results.csv", tiny_search / "search.json"
    newer = table.read_text().replace(",complete,", ",complete,newer", 1)  # the reason column of the first row
    info = json.loads(summary.read_text())
    table.write_text(newer)  # the first rename has happened, the second not yet
    renewed = {**info, "results_sha256": hashlib.sha256(newer.encode()).hexdigest()}
    renewed["summary_sha256"] = study_results.summary_digest(renewed)
    def rename() -> None:  # as a study writes it: a whole file renamed into place
        (tiny_search / "search.json.tmp").write_text(json.dumps(renewed))
        os.replace(tiny_search / "search.json.tmp", summary)

    writer = threading.Timer(0.05, rename)
    writer.start()
    started = time.monotonic()
    frame, _ = read_results(tiny_search)
    writer.join()
    assert frame["reason"].iloc[0] == "newer" and time.monotonic() - started < study_results.PAIR_READS * 0.1 + 1


def test_a_repeat_column_edited_to_a_word_is_named(cli, tiny_search):
    table = tiny_search / "results.csv"
    frame = pd.read_csv(table)
    assert len(frame) == 2  # the word goes into the second row: line 3
    frame["top1_low"] = ["abc" if row == 1 else value for row, value in enumerate(frame["top1_low"])]
    frame.to_csv(table, index=False)
    result = cli("report", tiny_search)
    assert result.code == 2
    assert result.err.startswith(f"error: {table} line 3, column top1_low: 'abc' is not a number; rerun the study's command")


@pytest.mark.parametrize("field, value", [("states", "x"), ("repeats", "3"), ("best", "x"), ("tied_best", 3), ("config", 5)])
def test_a_hand_edited_summary_field_is_one_line_and_the_search_rebuilds_it(cli, tiny_search, field, value):
    """Each of these used to end in a TypeError or ValueError (exit 1) in whichever command
    read the field first."""
    import json

    summary = tiny_search / "search.json"
    info = json.loads(summary.read_text())
    summary.write_text(json.dumps({**info, field: value}, indent=2))
    for command, flag in ((["report", tiny_search], ""), (["scale", "--from", tiny_search], "--from: ")):
        result = cli(*command)
        assert result.code == 2 and result.err.count("\n") == 1, result.err
        assert result.err.startswith(f"error: {flag}{summary} is not the summary the study wrote (its digest differs): edited or damaged; rerun")
    again = cli("search", *TINY_SPACE, *TINY, "--root", tiny_search.parent, "--name", "s")
    assert again.code == 0 and "rebuilt from the study" in again.err, again.err
    assert json.loads(summary.read_text())[field] == info[field] and cli("report", tiny_search).code == 0


def test_candidates_check_data_that_classes_overrides(cli, tmp_path):
    result = cli("candidates", "--data", tmp_path / "nope", "--classes", "4")
    assert result.code == 2 and result.err.startswith(f"error: --data: data source '{tmp_path / 'nope'}' does not exist")


def test_markdown_shows_symbols_as_written():
    """a*b^2*g^2 rendered as emphasis, and a | split a cell."""
    from scaler.cli.render import markdown_text

    frame = pd.DataFrame({"product": [1.96], "name": ["x|y_z"]})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        emit(frame, [Column("product", "a*b^2*g^2"), Column("name", "name")], "markdown", Console(), title="t_1")
    assert out.getvalue().splitlines() == ["**t\\_1**", "", "| a\\*b^2\\*g^2 | name |", "|---|---|", "| 1.96 | x\\|y\\_z |", ""]
    assert markdown_text("[a] <b> ~c~ `d` \\") == "\\[a\\] \\<b\\> \\~c\\~ \\`d\\` \\\\"


def test_a_worker_refuses_a_folder_that_is_not_its_study_s(cli, tiny_search, tmp_path):
    """`scaler worker --folder` wrote its study's results over another search's (which then
    could not resume), and a missing folder failed after an item had trained (exit 1)."""
    url = f"sqlite:///{tmp_path}/studies.db"
    assert cli("search", *TINY_SPACE, *TINY, "--root", tmp_path / "db", "--name", "shared", "--storage", url).code == 0
    before = (tiny_search / "results.csv").read_bytes()
    for folder, line in (
        (tiny_search, f"folder {tiny_search} holds the results of study 's' in study.journal, not of 'shared' in {mask_url(url)}: "
                      "they would be overwritten; give the folder of study 'shared', or a new one"),
        (tmp_path / "nope", f"folder {tmp_path / 'nope'} does not exist; give the study's results folder (or leave --folder out)"),
    ):
        result = cli("worker", "--storage", url, "--study", "shared", "--folder", folder, "--quiet")
        assert result.code == 2 and result.err == f"error: --folder: {line}\n"
    assert cli("search", *TINY_SPACE, *TINY, "--root", tmp_path / "db", "--name", "s", "--storage", url).code == 0
    same_name = cli("worker", "--storage", url, "--study", "s", "--folder", tiny_search, "--quiet")  # another storage's 's'
    assert same_name.code == 2 and f"holds the results of study 's' in study.journal, not of 's' in {mask_url(url)}" in same_name.err
    assert (tiny_search / "results.csv").read_bytes() == before and cli("report", tiny_search).code == 0
    own = cli("worker", "--storage", url, "--study", "shared", "--folder", tmp_path / "db" / "shared", "--quiet")
    assert own.code == 0, own.err
    older = tmp_path / "older"  # a summary from before scaler recorded the storage (and its digest)
    older.mkdir()
    summary = json.loads((tiny_search / "search.json").read_text())
    (older / "search.json").write_text(json.dumps({k: v for k, v in summary.items() if k not in ("storage", "summary_sha256")}))
    old_one = cli("worker", "--storage", url, "--study", "shared", "--folder", older, "--quiet")
    assert old_one.code == 2 and f"holds the results of study 's', not of 'shared' in {mask_url(url)}" in old_one.err


def test_a_worker_refuses_a_folder_of_other_files_and_knows_its_storage_however_spelled(cli, tmp_path, monkeypatch):
    """A worker given a folder of no study (another tool's results.csv, an image set) wrote its
    study's files into it; and the study's own folder was refused where its SQLite file was
    spelled another way ('sqlite:///studies.db' from its folder, for the recorded absolute path)."""
    url = f"sqlite:///{tmp_path}/studies.db"
    assert cli("search", *TINY_SPACE, *TINY, "--root", tmp_path / "db", "--name", "shared", "--storage", url).code == 0
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "results.csv").write_text("my,own,data\n")
    for name in ("a", "b", "c", "d"):  # an image set's class folders
        (tmp_path / "images" / name).mkdir(parents=True)
    for folder, shown in ((tmp_path / "foreign", "results.csv"), (tmp_path / "images", "a, b, c and 1 more")):
        result = cli("worker", "--storage", url, "--study", "shared", "--folder", folder, "--quiet")
        assert result.code == 2 and result.err == (f"error: --folder: folder {folder} holds {shown} and no study; give the "
                                                   "folder of study 'shared' (or an empty one)\n"), result.err
    assert (tmp_path / "foreign" / "results.csv").read_text() == "my,own,data\n"
    early = tmp_path / "early"  # the study's folder before its first summary: its lock and the data's file list
    early.mkdir()
    for name in (".lock", "data-files.json"):
        (early / name).write_text("")
    joined = cli("worker", "--storage", url, "--study", "shared", "--folder", early, "--quiet")
    assert joined.code == 0 and (early / "search.json").exists(), joined.err
    monkeypatch.chdir(tmp_path)
    relative = cli("worker", "--storage", "sqlite:///studies.db", "--study", "shared", "--folder", tmp_path / "db" / "shared", "--quiet")
    assert relative.code == 0, relative.err
    resumed = cli("search", *TINY_SPACE, *TINY, "--root", "db", "--name", "shared", "--storage", "sqlite:///./studies.db")
    assert resumed.code == 0, resumed.err


def test_the_tie_line_counts_only_the_candidates_a_tie_was_tested_on():
    """With the other rows timed out, '0 other candidate(s) the data cannot tell from it' read
    as if they had been compared; a search of one candidate has nothing to rank, and says so
    instead of tie and reliability lines."""
    from scaler.cli.results import reliability_lines

    info = {"tied_best": [3], "best": {"candidate": 3}, "repeats": 1, "candidates": 4, "states": {"complete": 1, "timeout": 3}}
    assert reliability_lines(info) == ["no other candidate completed, so no tie with the best could be tested"]
    info.update(tied_best=[3, 1], states={"complete": 4})
    assert reliability_lines(info)[0].startswith("≈ tied with the best: 1 of the 3 other complete candidate(s)")
    alone = {"tied_best": [0], "best": {"candidate": 0, "top1_low": 0.4}, "repeats": 3, "candidates": 1, "states": {"complete": 1}}
    assert reliability_lines(alone) == ["one candidate: the search has nothing to rank it against; widen the ranges or raise "
                                        "--tolerance (`scaler candidates` lists the candidates of a space)"]
    alone["config"] = {"space": {"mode": "surface"}}  # solves gamma: --tolerance is not used
    assert reliability_lines(alone)[0].startswith("one candidate: the search has nothing to rank it against; widen the alpha and beta ranges (")



def test_a_search_of_one_candidate_on_fewer_images_than_classes_says_both_before_training(cli, tmp_path):
    """Two set-ups whose table would look like any other: a space of one candidate (its '★ best'
    is alone) and fewer training images than classes (classes no network can learn, which
    cap top-1). Each is said once the options are accepted, before training, and the one
    candidate again under the table, in place of tie and reliability lines."""
    alone = ["--alpha-range", "1.2", "--beta-range", "1", "--gamma-range", "1.1", "--tolerance", "0.75", "--base-width", "0.25"]
    few = [*TINY[:2], "--train-images", "6", *TINY[4:]]
    result = cli("search", *alone, *few, "--root", tmp_path)
    assert result.code == 0, result.err
    left_out = ", ".join(SYNTHETIC_CLASSES[6:9])
    assert (f"warning: 4 of the 10 classes ({left_out} and 1 more) have no training image among the 6: no network can learn "
            "them, so top-1 cannot exceed 62.5%; more training images would cover them") in result.err.splitlines()
    assert ": 1 candidate (alone: nothing to rank it against), 0 already finished" in result.err
    said = flat(result.out).split("split ", 1)[1]
    assert "one candidate: the search has nothing to rank it against" in said and "tied" not in said and "reliability" not in said
    (folder,) = (p for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert flat(cli("report", folder).out).count("one candidate: the search has nothing to rank it against") == 1


def test_json_output_is_strict_json_even_with_infinite_values():
    frame = whole_numbers(pd.DataFrame({"ratio": [math.inf, 1.5, -math.inf], "count": [3.0, math.nan, 2.0]}), ["count"])
    strict = json.loads(to_json(frame), parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert strict == [{"ratio": None, "count": 3}, {"ratio": 1.5, "count": None}, {"ratio": None, "count": 2}]


def test_macs_in_millions_keep_three_digits_on_a_tiny_network():
    """One decimal read a tiny network's 45,600 MACs as '0.0', the same as one of 4,000."""
    assert [mega(v) for v in (45_600, 4_000, 999_600, 4_561_000, 9_996_000, 385_040_000, 0)] == [
        "0.0456", "0.00400", "1.00", "4.56", "10.0", "385.0", "0.0"]
    assert mega(None) == "" and mega(float("nan")) == ""


def test_macs_in_billions_keep_three_digits_below_a_tenth():
    """Four decimals read a proxy's stages as 0.0003 and 0.0004 G: one digit each."""
    assert [giga(v) for v in (442_000, 279_000, 9_900_000, 99_940_000, 99_960_000, 385_800_000, 0, 13_800, 9_996)] == [
        "0.000442", "0.000279", "0.00990", "0.0999", "0.1000", "0.3858", "0.0000", "0.0000138", "0.0000100"]  # never 1.38e-05
    assert giga(None) == ""


def test_training_seconds_show_tenths_where_whole_seconds_would_read_zero():
    assert [seconds(v) for v in (0.227, 1.04, 9.94, 9.96, 48.6, 612.0)] == ["0.2", "1.0", "9.9", "10", "49", "612"]
    assert seconds(None) == "" and seconds(float("nan")) == ""


def test_the_commit_recorded_is_the_checkout_s_that_tracks_the_code(tmp_path):
    """A scaler installed into a virtual environment inside another repository records no
    commit: that repository's HEAD says nothing about the code that ran."""
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "tracked.txt").write_text("x")
    subprocess.run([*git, "-C", str(tmp_path), "add", "tracked.txt"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / ".venv" / "scaler").mkdir(parents=True)
    assert git_commit(tmp_path) == head and git_commit(tmp_path / ".venv" / "scaler") is None


def test_the_library_refuses_a_wrong_kind_of_argument_with_its_own_error(tmp_path):
    """A researcher calling the library gets a UsageError saying what to pass, not a
    TypeError or AttributeError from deep inside torch or pathlib."""
    from scaler import build_model, compound_scale, network_spec
    from scaler.counting import count_model
    from scaler.data import load_dataset
    from scaler.errors import UsageError

    for resolution in (64.0, True, "64"):
        with pytest.raises(UsageError, match=r"^resolution .* is not allowed; it must be a whole number of pixels, 1\.\.4096$"):
            count_model(network_spec("b0"), resolution)
    with pytest.raises(UsageError, match="base resolution 224.5 is not allowed"):
        compound_scale(1.2, 1.1, 1.15, 1, base_resolution=224.5)
    assert count_model(network_spec("b0"), 224).params == 5_288_548  # an int still counts
    for wrong in ("b0", build_model("b0")):
        with pytest.raises(UsageError, match=r"is not a network spec; make one with scaler\.network_spec\('b0'"):
            count_model(wrong, 224)
    from PIL import Image

    folder = tmp_path / "images"
    for name, colour in (("a", (200, 0, 0)), ("b", (0, 0, 200))):
        (folder / name).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (40, 40), (colour[0], 20 * i, colour[2])).save(folder / name / f"{i}.png")
    as_path = load_dataset(folder, storage_resolution=32)  # a Path names the folder, as its string does
    assert as_path.fingerprint == load_dataset(str(folder), storage_resolution=32).fingerprint
    with pytest.raises(UsageError, match="data source None is not allowed"):
        load_dataset(None)


def test_a_refused_value_is_named_by_its_flag_only_where_the_flag_was_typed():
    from scaler.cli import user_message

    refused = UsageError("width = 0.0 is not allowed; it must be a number in (0, 16]", param="width")
    assert user_message(refused, ["flops", "--width", "0"]) == "--width 0 is not allowed; it must be a number in (0, 16]"
    assert user_message(refused, ["flops", "--width=0.00"]) == "--width 0.00 is not allowed; it must be a number in (0, 16]"
    # a value the user did not type (a default, a stored summary's): no flag is named for it
    assert user_message(refused, ["flops", "b0"]) == "width = 0.0 is not allowed; it must be a number in (0, 16]"
    # the library's spelling where the typed text is not the same number; other errors keep the flag as their lead
    named = UsageError("name '..' is not allowed; use 1-128 letters", param="name")
    assert user_message(named, ["search", "--name", ".."]) == "--name '..' is not allowed; use 1-128 letters"
    other = UsageError("no file x.py", param="width")
    assert user_message(other, ["flops", "--width", "2"]) == "--width: no file x.py"
    # a value derived from the typed one is the library's to name, behind the flag
    derived = UsageError("resolution 5000 is not allowed; it must be 8..4096 pixels", param="resolution")
    assert user_message(derived, ["train", "--resolution", "4000"]) == "--resolution: resolution 5000 is not allowed; it must be 8..4096 pixels"
    assert user_message(refused, ["flops", "--width", " 0"]) == "--width 0 is not allowed; it must be a number in (0, 16]"
    not_a_number = UsageError("width = nan is not allowed; it must be a number in (0, 16]", param="width")
    assert user_message(not_a_number, ["flops", "--width", "NaN"]) == "--width NaN is not allowed; it must be a number in (0, 16]"


def test_a_value_from_an_environment_variable_is_named_by_the_variable(cli, monkeypatch):
    monkeypatch.setenv("SCALER_STORAGE", "notaurl")
    result = cli("worker", "--study", "s")
    assert result.code == 2 and result.err.startswith("error: SCALER_STORAGE: storage 'notaurl' is not a database URL")


def test_scaler_alone_prints_its_help_not_an_error_line(cli):
    bare = cli()
    assert bare.code == 2 and bare.out == "" and bare.err.startswith("Usage: scaler [OPTIONS] COMMAND [ARGS]...")
    assert "error" not in bare.err.splitlines()[0] and "search" in bare.err


def test_a_device_that_is_not_here_is_named_by_its_flag_as_typed(cli):
    result = cli("train", "b0", "--device", "cuda:7")
    assert result.code == 2 and result.err.startswith("error: --device 'cuda:7' is not available here (")


def test_a_table_too_wide_for_the_terminal_leaves_columns_out_and_names_them(monkeypatch):
    """On a terminal narrower than a search's table, empty columns and then those that give way
    are left out until it fits, the caption naming the ones with values; piped, every column
    stays (a program reads it)."""
    from pathlib import Path

    import scaler.cli.results as shown
    from scaler.cli.app import Format
    from scaler.experiments.search import read_results

    frame, _ = read_results(Path(__file__).parent / "data" / "legacy-search")  # from before repeats: no intervals

    def printed(width: int, terminal: bool) -> list[str]:
        screen = io.StringIO()
        monkeypatch.setattr(shown, "console", Console(file=screen, force_terminal=terminal, width=width, markup=False, color_system=None))
        shown.show_results(frame, Format.table, "T", "the caption")
        return screen.getvalue().splitlines()

    lines = printed(100, terminal=True)
    assert max(map(len, lines)) <= 100
    assert lines[2].split() == ["rank", "#", "alpha", "beta", "gamma", "r", "params", "MACs", "M", "ratio", "top-1", "n", "state"]
    assert "left out to fit 100 columns: top-5, val loss, img/s, s, a*b²*g² (a wider terminal, or --format csv, shows them)" \
        in " ".join(" ".join(lines).split())  # not the empty 95% interval and reason
    assert printed(120, terminal=True)[2].split()[-3:] == ["n", "s", "state"]
    narrowest = printed(70, terminal=True)  # n and the state too
    assert narrowest[2].split() == ["rank", "alpha", "beta", "gamma", "r", "MACs", "M", "top-1"] and max(map(len, narrowest)) <= 70
    # where even the narrowest would not fit, nothing is left out: it wraps anyway
    whole = printed(50, terminal=True)
    assert all(h in whole[2] for h in ("a*b²*g²", "top-5", "val loss", "img/s", "state", "reason")) and "left out" not in "".join(whole)
    piped = printed(100, terminal=False)
    assert all(h in piped[2] for h in ("a*b²*g²", "top-5", "val loss", "img/s", "reason")) and "left out" not in "".join(piped)


def test_a_val_fraction_the_data_does_not_use_is_noted_once(cli, tmp_path):
    """Synthetic data brings its own validation images: a --val-fraction of its own is noted
    (once, though a search reads its flags twice, and only once every option is accepted), the
    default is not, and a bad one is refused alone."""
    note = ("note: --val-fraction splits an image folder without train/ and val/; synthetic brings its own validation "
            "images and does not use it\n")
    trained = cli("train", TINY_BASE, "--width", "0.25", "--resolution", "32", "--train-images", "64", "--val-images", "32",
                  "--epochs", "1", "--threads", "1", "--val-fraction", "0.5", "--format", "json")
    assert trained.code == 0 and trained.err.count(note) == 1, trained.err
    searched = cli("search", *TINY, *TINY_SPACE, "--val-fraction", "0.5", "--root", tmp_path)
    assert searched.code == 0 and searched.err.count(note) == 1, searched.err
    again = cli("search", *TINY, *TINY_SPACE, "--root", tmp_path)  # the same study: the fraction is not part of it
    assert again.code == 0 and note not in again.err and "0 to train" in again.err
    bad = cli("search", *TINY, *TINY_SPACE, "--val-fraction", "1.5", "--root", tmp_path)
    assert bad.code == 2 and bad.err.count("\n") == 1 and note not in bad.err
    # a command refused after the note was taken prints its error alone, and the next command no stale note
    later = cli("search", *TINY, *TINY_SPACE, "--val-fraction", "0.5", "--workers", "0", "--root", tmp_path)
    assert later.code == 2 and later.err == "error: --workers 0 is not allowed; it must be an integer >= 1\n"
    unknown = cli("train", "nosuch", "--val-fraction", "0.5", "--resolution", "32")
    assert unknown.code == 2 and unknown.err.count("\n") == 1 and note not in unknown.err
    plain = cli("train", TINY_BASE, "--width", "0.25", "--resolution", "32", "--train-images", "64", "--val-images", "32",
                "--epochs", "1", "--threads", "1", "--format", "json")
    assert plain.code == 0 and "note:" not in plain.err, plain.err


def test_a_folder_with_its_own_train_and_val_notes_an_unused_val_fraction_and_names_one_study(cli, tmp_path):
    """An image folder split by its own train/ and val/ does not use --val-fraction: it is
    noted, and the search is the one without it (before, the fraction named a study of its own
    and went unmentioned). A folder of class folders alone uses it: no note."""
    from PIL import Image

    split, flat_folder = tmp_path / "split", tmp_path / "flat"
    for root, parts in ((split, ("train", "val")), (flat_folder, ("",))):
        for part in parts:
            for c in range(3):
                folder = root / part / f"class{c}"
                folder.mkdir(parents=True)
                for i in range(24 if part != "val" else 8):
                    Image.new("RGB", (20, 20), ((80 * c) % 256, (37 * i) % 256, 128)).save(folder / f"{i}.png")
    args = ["search", *TINY, *TINY_SPACE, "--train-images", "48", "--val-images", "24", "--root", tmp_path / "studies"]
    note = f"note: --val-fraction splits an image folder without train/ and val/; {split} has them and does not use it\n"
    first = cli(*args, "--data", split, "--val-fraction", "0.5")
    assert first.code == 0 and first.err.count(note) == 1, first.err
    again = cli(*args, "--data", split)
    assert again.code == 0 and "0 to train" in again.err and "note:" not in again.err, again.err
    assert len([f for f in (tmp_path / "studies").iterdir() if not f.name.startswith(".")]) == 1
    plain = cli(*args, "--data", flat_folder, "--val-fraction", "0.5")
    assert plain.code == 0 and "note:" not in plain.err, plain.err


def test_columns_that_give_way_together_are_left_out_together():
    """Columns of one `gives_way` leave together (a point's alpha, beta and gamma), though
    leaving out one of them would have been enough to fit."""
    frame = pd.DataFrame({"name": ["compound"], "alpha": [1.2], "beta": [1.1], "top1": [0.5]})
    columns = [Column("name", "name"), Column("alpha", "alpha", str, gives_way=1), Column("beta", "beta", str, gives_way=1),
               Column("top1", "top-1", share)]
    screen = io.StringIO()
    full = Console(file=screen, force_terminal=True, width=200, markup=False, color_system=None)
    emit(frame, columns, "table", full)
    width = max(map(len, screen.getvalue().splitlines()))
    screen = io.StringIO()
    emit(frame, columns, "table", Console(file=screen, force_terminal=True, width=width - 1, markup=False, color_system=None))
    lines = screen.getvalue().splitlines()
    assert next(line.split() for line in lines if line.strip()) == ["name", "top-1"] and "left out to fit" in screen.getvalue() and "alpha, beta" in " ".join(" ".join(lines).split())


def test_a_study_that_kept_an_unused_val_fraction_is_resumed_however_the_folder_is_typed(cli, tmp_path, monkeypatch):
    """Until 2026-12-04 scaler kept a --val-fraction given to a folder with its own train/ and
    val/ in the study's configuration (paths, presets and lr tidied, the fraction as typed).
    The same command resumes such a search, comparison and calibration, with the folder typed
    as a user types it (a trailing slash), instead of starting over or refusing the name."""
    from PIL import Image

    import scaler.data.dataset
    from tests.test_calibration import micro
    from tests.test_compare import MICRO

    split = tmp_path / "split"
    for part in ("train", "val"):
        for c in range(3):
            folder = split / part / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(24 if part == "train" else 8):
                Image.new("RGB", (20, 20), ((80 * c) % 256, (37 * i) % 256, 128)).save(folder / f"{i}.png")
    data = ["--data", f"{split}/", "--val-fraction", "0.5", "--train-images", "48", "--val-images", "24"]
    commands = {
        "search": ["search", *TINY, *TINY_SPACE, *data],
        "compare": ["compare", "--base", TINY_BASE, "--base-width", "0.25", *MICRO, *data],
        "calibrate": [*micro(tmp_path), "--repeats", "1", *data],
    }
    old = lambda source: source == "synthetic" or source.startswith("cifar10:")  # noqa: E731  (the split as it was known then)
    for kind, args in commands.items():
        root = tmp_path / kind
        with monkeypatch.context() as before:
            before.setattr(scaler.data.dataset, "has_own_split", old)
            first = cli(*args, "--root", root)
        assert first.code == 0, first.err
        again = cli(*args, "--root", root)
        assert again.code == 0 and "0 to train" in again.err, (kind, again.err)
        assert len([f for f in root.iterdir() if not f.name.startswith(".")]) == 1, kind
