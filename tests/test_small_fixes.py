"""Small CLI defects: flops headers, the flag an error names, empty study names, integer
counts in results.csv, the --device / --threads help of each command, and options that would
be ignored."""

from __future__ import annotations

import csv
import io
import math

import pandas as pd
import pytest
from rich.console import Console

from scaler.cli.calibrate import caption_lines
from scaler.render import Column, emit, integer, share
from scaler.study import results as study_results
from scaler.study.create import join_study
from scaler.study.trials import records

EMPTY_NAME = (
    "the name is empty; use 1-128 letters, digits, '.', '_', '+' or '-', "
    "starting with a letter or digit (one folder name, no path)"
)
TINY = ["--train-images", "64", "--val-images", "32", "--epochs", "1", "--base-resolution", "32", "--threads", "1", "--quiet"]


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
    handle = join_study(url, "s", tmp_path / "partial")
    (tmp_path / "partial").mkdir()
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


def test_calibration_caption_says_when_the_set_has_fewer_candidates_than_asked(tmp_path):
    info = {"candidates": [0, 1, 2]}
    lines = caption_lines(info, tmp_path, tmp_path / "c.png", asked=100)
    assert lines[0] == f"{tmp_path}/results.csv · candidates 0, 1, 2 all 3 of the search's set (--candidates 100 asked for more) · plot {tmp_path}/c.png"
    assert "asked for more" not in caption_lines(info, tmp_path, tmp_path / "c.png", asked=3)[0]


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
