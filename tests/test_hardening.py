"""Bad input a QA pass found handled poorly (session 13): each case checks the exit code, the
one line on stderr, and that nothing was created or overwritten."""

from __future__ import annotations

import csv
import inspect
import shlex
import io
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scaler.errors import DEBUG_ENV
from scaler.files import atomic_write_text
from scaler.models.family import MAX_CLASSES
from scaler.scaling import round_repeats
from scaler.runtime import Runtime
from scaler.study import runner
from tests.test_hostile import one_line, search_args


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared&uri=true"])
def test_an_in_memory_database_is_refused_up_front(cli, tmp_path, url):
    # Each worker process would open its own empty database, and the study would end with the
    # run, leaving a folder whose summary names a study nobody can find.
    result = cli(*search_args(tmp_path / "root"), "--storage", url)
    assert result.code == 2
    assert one_line(result.err).startswith(f"error: --storage: storage {url!r} is an in-memory database")
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("command", ["search", "worker"])
def test_a_sqlite_url_with_two_slashes_is_refused_with_the_three_slash_form(cli, tmp_path, command):
    """'sqlite://runs/s.db' reads 'runs' as a host: search failed at run time (exit 1), worker
    named another file ('.../s.db does not exist', runs/ dropped)."""
    args = search_args(tmp_path / "root") if command == "search" else ["worker", "--study", "s"]
    result = cli(*args, "--storage", "sqlite://runs/s.db")
    assert (result.code, result.err) == (2, "error: --storage: storage 'sqlite://runs/s.db' names a host ('runs'), and SQLite "
                                            "has none: a file here is sqlite:///runs/s.db (three slashes; four before an absolute path)\n")
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("command", ["search", "worker"])
def test_a_sqlite_url_naming_a_folder_or_another_file_is_refused_as_such(cli, tmp_path, command):
    """A folder read 'does not exist' (worker) or failed at run time (search), and a file that
    is not a database (an image, a journal) gave the driver's error with exit 1."""
    args = search_args(tmp_path / "root") if command == "search" else ["worker", "--study", "s"]
    (tmp_path / "runs").mkdir()
    folder = cli(*args, "--storage", f"sqlite:///{tmp_path}/runs")
    assert (folder.code, folder.err) == (2, f"error: --storage: sqlite:///{tmp_path}/runs: {tmp_path}/runs is a folder; give a SQLite "
                                            f"database file in it (sqlite:///{tmp_path}/runs/studies.db)\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    other = cli(*args, "--storage", f"sqlite:///{tmp_path}/image.png")
    assert (other.code, other.err) == (2, f"error: --storage: sqlite:///{tmp_path}/image.png: {tmp_path}/image.png is not a SQLite database\n")
    assert (tmp_path / "image.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "root").exists()
    if command == "search":  # a worker's file must exist: 'does not exist' names the file
        missing = cli(*args, "--storage", f"sqlite:///{tmp_path}/nowhere/s.db")  # SQLite's 'unable to open database file', exit 1
        assert (missing.code, missing.err) == (2, f"error: --storage: sqlite:///{tmp_path}/nowhere/s.db: the folder "
                                                  f"{tmp_path}/nowhere does not exist; create it first\n")
        under_a_file = cli(*args, "--storage", f"sqlite:///{tmp_path}/image.png/s.db")
        assert under_a_file.err == f"error: --storage: sqlite:///{tmp_path}/image.png/s.db: the folder {tmp_path}/image.png is a file, not a folder\n"


def test_a_missing_mysql_driver_is_named_with_its_pypi_package(cli, tmp_path):
    result = cli(*search_args(tmp_path), "--storage", "mysql://u@127.0.0.1:9/db")
    assert result.code == 1
    assert "its driver 'mysqldb' is not installed (pip install mysqlclient)" in one_line(result.err)


@pytest.mark.parametrize(
    "args, line",
    [
        (["search", "--root", ""], "error: --root: the value is empty; give one (`scaler search --help` says what it takes) or leave --root out"),
        (["search", "--root="], "error: --root: the value is empty; give one (`scaler search --help` says what it takes) or leave --root out"),
        (["train", ""], "error: an argument is empty; `scaler train --help` says what it takes"),
        (["report", ""], "error: an argument is empty; `scaler report --help` says what it takes"),
        (["report", "x", "--plot", ""], "error: --plot: the value is empty; give one (`scaler report --help` says what it takes) or leave --plot out"),
        (["compare", "--compound", ""], "error: --compound: the value is empty; give one (`scaler compare --help` says what it takes) or leave --compound out"),
        (["flops", "b0", "-f", ""], "error: -f: the value is empty; give one (`scaler flops --help` says what it takes) or leave -f out"),
        (["report", "--pareto", ""], "error: an argument is empty; `scaler report --help` says what it takes"),  # a flag takes no value
        # a required option can be left out only with its environment variable set
        (["worker", "--storage", "", "--study", "s"],
         "error: --storage: the value is empty; give one (`scaler worker --help` says what it takes) or leave --storage out and set SCALER_STORAGE"),
        (["search", "--name", "report", "--root", ""], "error: --root: the value is empty; give one (`scaler search --help` says what it takes) or leave --root out"),
    ],
)
def test_an_empty_value_is_refused_not_read_as_a_default(cli, tmp_path, monkeypatch, args, line):
    # A path option would read '' as '.', a preset or coefficients as their default.
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert (result.code, result.err) == (2, line + "\n")
    assert not any(tmp_path.iterdir())


def test_a_value_that_ends_in_an_equals_sign_is_not_empty(cli, tmp_path):
    result = cli("report", "nowhere", f"--plot={tmp_path}/a=")
    assert result.code == 2
    assert one_line(result.err).startswith(f"error: --plot: plot '{tmp_path}/a=' has no picture format matplotlib writes")


def test_options_with_their_own_empty_check_keep_it(cli):
    result = cli("search", "--data=")
    assert result.code == 2 and one_line(result.err).startswith("error: --data: data source '' is empty; use 'synthetic'")


def test_an_empty_variant_is_unknown_to_the_library_too():
    from scaler.errors import UsageError
    from scaler.models.registry import network_spec

    with pytest.raises(UsageError, match="unknown variant ''"):
        network_spec("")


def test_debug_adds_the_traceback_and_keeps_the_exit_code(cli, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    plain, debug = cli("flops", "b9"), cli("--debug", "flops", "b9")
    assert plain.code == debug.code == 2
    assert "Traceback" in debug.err and debug.err.strip().splitlines()[-1] == plain.err.strip()
    appended = cli("flops", "b9", "--debug")  # where a user adds it on seeing the hint
    assert appended.code == 2 and "Traceback" in appended.err and appended.err.strip().splitlines()[-1] == plain.err.strip()
    assert DEBUG_ENV not in os.environ  # set for the command's worker processes only


def test_unknown_commands_and_options_say_what_is_allowed(cli):
    command = cli("nosuchcmd")
    assert command.code == 2
    assert one_line(command.err) == (
        "error: No such command 'nosuchcmd'. Commands: calibrate, candidates, compare, flops, report, scale, search, train, worker."
    )
    for args, line in [
        (["compare", "--phis", "1-3"], "error: Invalid value for '--phis': '1-3' is not a whole number; see `scaler compare --help`"),
        (["search", "--seed=1e3"], "error: Invalid value for '--seed': '1e3' is not a whole number; see `scaler search --help`"),
        (["flops", "b0", "--width", "abc"], "error: Invalid value for '--width': 'abc' is not a number; see `scaler flops --help`"),
    ]:
        not_a_number = cli(*args)
        assert (not_a_number.code, one_line(not_a_number.err)) == (2, line)
    option = cli("flops", "b0", "--bogus")
    assert (option.code, one_line(option.err)) == (2, "error: No such option: --bogus. See `scaler flops --help`.")


@pytest.mark.parametrize("classes", ["0", str(MAX_CLASSES + 1), "99999999999"])
def test_a_class_count_out_of_range_is_refused_before_allocating(cli, classes):
    result = cli("flops", "b0", "--classes", classes)
    assert (result.code, one_line(result.err)) == (2, f"error: --classes {classes} is not allowed; it must be 1..100,000")


def test_float_noise_and_a_hair_above_one_add_no_block():
    assert 5 * (1.6 * 1.5) > 12 and round_repeats(5, 1.6 * 1.5) == 12  # a base depth 1.6 scaled by 1.5: 12.000000000000002
    assert round_repeats(4, 2 ** 1e-9) == 4
    assert round_repeats(4, 1.0001) == 5  # a real excess still rounds up
    assert round_repeats(3, 1.1) == 4  # 3.3000000000000003, as the official code rounds it


def test_tiny_phi_gives_the_base_network_everywhere(cli):
    """At phi 1e-9 every point builds the base: one candidate, naming the other five."""
    result = cli("candidates", "--phi", "1e-9", "--format", "csv")
    assert result.code == 0
    (row,) = list(csv.DictReader(io.StringIO(result.out)))
    table = cli("candidates", "--phi", "1e-9").out
    assert table.split("(")[0].split() == ["1", "candidate"]  # one, not '1 candidates'
    assert "T^phi" in table and " nominal" not in table  # what the ratio column aims at (scale's nominal is product^phi)
    assert (row["alpha"], row["beta"], row["gamma"]) == ("2.0", "1.0", "1.0")  # its product is T exactly
    assert len(row["same_network"].split("; ")) == 5, result.out


def test_an_unwritable_plot_is_named_by_its_own_path(tmp_path):
    target = tmp_path / "missing" / "x.png"
    with pytest.raises(OSError) as error:
        atomic_write_text(target, "x")
    assert error.value.filename == str(target)
    assert not (tmp_path / "missing").exists()


def test_a_factory_that_calls_sys_exit_is_an_error_line(cli, tmp_path):
    (tmp_path / "at_call.py").write_text("import sys\ndef make(width, depth, num_classes):\n    sys.exit(5)\n")
    (tmp_path / "at_import.py").write_text("import sys\nsys.exit(5)\ndef make(width, depth, num_classes): pass\n")
    call = cli("flops", f"{tmp_path}/at_call.py:make")
    assert (call.code, one_line(call.err)) == (
        2, f"error: factory '{tmp_path}/at_call.py:make' raised SystemExit: 5 when called with width=1, depth=1, num_classes=1000"
    )
    load = cli("flops", f"{tmp_path}/at_import.py:make")
    assert (load.code, one_line(load.err)) == (2, f"error: factory '{tmp_path}/at_import.py:make' cannot be imported: SystemExit: 5")


def test_a_worker_that_cannot_join_prints_one_line_and_its_exit_code(tmp_path, capsys, monkeypatch):
    # What each worker process prints instead of a traceback (shown only with --debug).
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)  # pytest keeps its SIGTERM
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    url = f"sqlite:///{tmp_path}/none.db"
    with pytest.raises(SystemExit) as exited:
        runner.worker_process(url, "nothing", None, Runtime(device="cpu"))
    assert exited.value.code == 2
    name = multiprocessing.current_process().name
    assert capsys.readouterr().err == f"error: {name}: {url}: {tmp_path}/none.db does not exist\n"
    assert not (tmp_path / "none.db").exists()


def test_a_ctrl_c_during_a_worker_process_s_imports_ends_it_without_a_traceback(tmp_path):
    """A terminal's Ctrl-C reaches every local worker process; one that lands while a worker
    still imports torch ended it with a traceback of its own. The spawn entry imports nothing
    heavy before it holds Ctrl-C back, and a held one ends the worker quietly with code 130."""
    light = subprocess.run([sys.executable, "-c", "import sys, scaler.study.spawned; print(sorted(m for m in ('torch', 'optuna', 'pandas') if m in sys.modules))"],
                           capture_output=True, text=True, timeout=120)
    assert light.stdout.strip() == "[]", light.stderr
    script = textwrap.dedent("""
        import os, signal, sys

        class CtrlC:  # two Ctrl-Cs land while the worker imports the engine (users press it twice)
            def find_spec(self, name, path=None, target=None):
                if name in ("scaler.runtime", "scaler.study.runner"):
                    os.kill(os.getpid(), signal.SIGINT)
                return None

        sys.meta_path.insert(0, CtrlC())
        from scaler.study.spawned import worker_entry
        worker_entry("sqlite:///nowhere.db", "x", None, {"device": "cpu"}, os.getppid())
    """)
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (ended.returncode, ended.stderr) == (130, "")
    assert "target=worker_entry," in inspect.getsource(runner._run_processes)  # the target the parent spawns


def test_a_worker_process_whose_stderr_reader_went_away_exits_with_its_own_code(tmp_path):
    """A worker process writes its error line to the stderr it inherited; where that pipe's
    reader is gone (`scaler search ... 2>&1 | head`), the line goes nowhere and the process ends
    with the error's code (`scaler.process.guard_streams`), not with a BrokenPipeError of its own."""
    script = ("import os; from scaler.study.spawned import worker_entry; "
              "worker_entry('sqlite:///nowhere.db', 'x', None, {'device': 'cpu'}, os.getppid())")
    alone = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert alone.returncode == 2 and alone.stderr.startswith("error: MainProcess: ") and alone.stderr.count("\n") == 1, alone.stderr
    # the reader (`true`) is gone long before the worker has imported torch and failed
    gone = subprocess.run(f"set -o pipefail; {shlex.quote(sys.executable)} -c {shlex.quote(script)} 2>&1 >/dev/null | true",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert gone.returncode == 2, gone


def test_a_signal_after_the_output_is_written_does_not_turn_a_finished_command_into_a_killed_one():
    """SIGTERM while the interpreter tears down (up to a second with torch loaded) killed the
    process with no line: exit 143 after a complete document, which a batch scheduler reads as
    a killed job. A command that is done ignores it; a non-zero exit always comes with a line."""
    scaler = str(Path(sys.executable).parent / "scaler")
    for delay in (0.05, 0.3):
        process = subprocess.Popen([scaler, "flops", "b0", "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        while (line := process.stdout.readline()) and line != "]\n":  # the document's last line
            lines.append(line)
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        rest, err = process.communicate(timeout=120)
        assert line == "]\n" and rest == ""
        assert process.returncode == 0 or (process.returncode == 143 and err.strip().endswith("interrupted")), (delay, process.returncode, err)
