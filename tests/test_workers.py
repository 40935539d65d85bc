"""Many workers on one study (PostgreSQL and journal file), kills at several points, Ctrl-C,
and the remaining bad-input cases. Every candidate must end in the results exactly once."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from PIL import Image

from scaler.experiments.proxy import ProxyExperiment
from scaler.experiments.repeats import ATTR_REPEATS
from scaler.study.storage import mask_url
from tests.conftest import TINY_BASE, sigint_default

SCALER = str(Path(sys.executable).parent / "scaler")
# 8 candidates on a tiny proxy: the space (shared with `scaler candidates`), then training.
GRID8_SPACE = [
    "--alpha-range", "1:1.6:0.3", "--beta-range", "1:1.1:0.1", "--gamma-range", "1:1.1:0.1",
    "--tolerance", "0.6", "--base-resolution", "32", "--base-width", "1", "--base", TINY_BASE,
]  # fmt: skip
GRID8 = [
    *GRID8_SPACE, "--train-images", "64", "--val-images", "32", "--batch-size", "16", "--epochs", "2",
    "--threads", "1", "--device", "cpu", "--quiet",
]  # fmt: skip
# Two candidates on the same proxy, for one process's interrupts and refusals: no sharing.
GRID2_SPACE = ["--alpha-range", "1.2:1.6:0.4", "--beta-range", "1", "--gamma-range", "1.1", *GRID8_SPACE[6:]]
GRID2 = [*GRID2_SPACE, *GRID8[len(GRID8_SPACE) :]]
FAST_HEARTBEAT = {"SCALER_HEARTBEAT_SECONDS": "1", "SCALER_GRACE_SECONDS": "4"}


def env(**extra: str) -> dict:
    return {**os.environ, **FAST_HEARTBEAT, **extra}


def load(storage_url: str, name: str) -> optuna.Study:
    if "://" in storage_url:
        storage = optuna.storages.RDBStorage(storage_url)
    else:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage_url))
    return optuna.load_study(study_name=name, storage=storage)


def assert_exactly_once(study: optuna.Study, count: int) -> None:
    """Each candidate has exactly one COMPLETE trial, and no candidate was trained to the end
    twice."""
    complete: dict[int, int] = {}
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        complete[trial.params["candidate"]] = complete.get(trial.params["candidate"], 0) + 1
    assert complete == {i: 1 for i in range(count)}


def wait_for(predicate, timeout: float = 300, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def study_exists(url: str, name: str) -> bool:
    try:
        summaries = optuna.get_all_study_summaries(optuna.storages.RDBStorage(url), include_best_trial=False)
    except Exception:
        return False
    return any(s.study_name == name and "scaler_candidates" in s.user_attrs for s in summaries)


def results(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "results.csv", converters={"state": str, "reason": str})


def test_grids_have_eight_and_two_candidates(cli):
    result = cli("candidates", *GRID8_SPACE, "--format", "csv")
    assert result.code == 0, result.err
    assert len(result.out.strip().splitlines()) - 1 == 8
    two = cli("candidates", *GRID2_SPACE, "--format", "csv")
    assert two.code == 0 and len(two.out.strip().splitlines()) - 1 == 2, two.err


def start_three_workers(url: str, name: str, root: Path, args: list[str]) -> tuple[subprocess.Popen, list[subprocess.Popen]]:
    """`scaler search` on a PostgreSQL study (one worker) and two `scaler worker` joining it."""
    search = subprocess.Popen(
        [SCALER, "search", *args, "--storage", url, "--name", name, "--root", str(root)],
        env=env(), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: study_exists(url, name), what="the study")
    workers = [
        subprocess.Popen([SCALER, "worker", "--storage", url, "--study", name, "--threads", "1", "--device", "cpu", "--quiet"],
                         env=env(), stderr=subprocess.PIPE, text=True)  # fmt: skip
        for _ in range(2)
    ]
    return search, workers


def test_three_workers_on_postgres_train_each_candidate_once(postgres_url, tmp_path):
    name = f"pg-three-{uuid.uuid4().hex[:8]}"
    args = list(GRID8)
    args[args.index("--epochs") + 1] = "40"  # 1-2 s a candidate: the workers start before the search is done
    search, workers = start_three_workers(postgres_url, name, tmp_path, args)
    for process in [search, *workers]:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    study = load(postgres_url, name)
    assert_exactly_once(study, 8)
    trained = [t for t in study.trials if "worker" in t.user_attrs]
    assert len(trained) == 8  # no candidate was even started twice
    assert len({t.user_attrs["worker"] for t in trained}) >= 2  # the work was shared
    frame = results(tmp_path / name)
    assert len(frame) == 8 and set(frame["state"]) == {"complete"}
    assert json.loads((tmp_path / name / "search.json").read_text())["storage"] == mask_url(postgres_url)


def test_killed_postgres_worker_is_replaced(postgres_url, tmp_path):
    name = f"pg-kill-{uuid.uuid4().hex[:8]}"
    args = list(GRID8)
    args[args.index("--epochs") + 1] = "40"  # 1-2 s a candidate: the victim gets one and is killed in it
    search, workers = start_three_workers(postgres_url, name, tmp_path, args)
    victim = workers[0]

    def victim_running() -> bool:
        running = load(postgres_url, name).get_trials(states=(optuna.trial.TrialState.RUNNING,))
        return any(t.user_attrs.get("worker", "").endswith(f":{victim.pid}") for t in running)

    wait_for(victim_running, what="a candidate on the victim worker")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for process in [search, workers[1]]:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    study = load(postgres_url, name)
    assert_exactly_once(study, 8)
    lost = [t for t in study.trials if t.user_attrs.get("worker", "").endswith(f":{victim.pid}") and t.state == optuna.trial.TrialState.FAIL]
    assert len(lost) == 1  # the killed candidate was failed by heartbeat and trained again elsewhere
    frame = results(tmp_path / name)
    assert len(frame) == 8 and set(frame["state"]) == {"complete"}


def test_local_worker_processes_on_a_journal(cli, tmp_path):
    result = cli("search", *GRID8, "--workers", "3", "--root", tmp_path, "--name", "local2")
    assert result.code == 0, result.err
    oversubscribed = 3 > (os.cpu_count() or 1)  # 3 workers x 1 thread
    assert ("warning: 3 worker(s) x 1 thread(s) on" in result.err) == oversubscribed
    folder = tmp_path / "local2"
    assert_exactly_once(load(str(folder / "study.journal"), "local2"), 8)
    assert set(results(folder)["state"]) == {"complete"}
    # Called in this long-lived process, the estimate counts no worker start-up (this
    # process's age is pytest's, not what a worker repeats).
    assert "estimated" in result.err and "each worker starts in" not in result.err


def test_the_command_line_counts_each_worker_start_up_in_its_estimate(tmp_path):
    proc = subprocess.run([SCALER, "search", *GRID2, "--workers", "2", "--root", str(tmp_path), "--name", "startup"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stderr.splitlines() if "estimated" in line)
    assert "each worker starts in ~" in line and "as this process did" in line


# A wrapper that runs the CLI but holds every results.csv write between the temporary file
# and the rename for a moment, so a kill can land in the middle of a write.
SLOW_WRITES = textwrap.dedent(
    """
    import os, sys, time
    import scaler.files
    real_replace = os.replace
    def slow_replace(src, dst):
        if str(dst).endswith("results.csv"):
            open(os.environ["WRITE_MARKER"], "w").close()
            time.sleep(0.5)
        real_replace(src, dst)
    scaler.files.os.replace = slow_replace
    from scaler.entry import run
    sys.argv = ["scaler", *sys.argv[1:]]
    run()
    """
)


def test_sigkill_at_many_points_resumes_to_a_complete_table(tmp_path):
    wrapper = tmp_path / "slow_writes.py"
    wrapper.write_text(SLOW_WRITES)
    marker = tmp_path / "writing"
    root = tmp_path / "root"
    folder = root / "crash"
    args = [sys.executable, str(wrapper), "search", *GRID8, "--root", str(root), "--name", "crash"]
    args[args.index("--epochs") + 1] = "20"  # about a second a candidate: "mid-candidate" lands mid-candidate

    def journal_has(text: str) -> bool:
        path = folder / "study.journal"
        return path.exists() and text in path.read_text(errors="ignore")

    finished: dict[int, float] = {}  # candidate -> train_seconds, once complete before a kill

    def finished_now() -> dict[int, float]:
        if not (folder / "results.csv").exists():
            return {}
        frame = results(folder)  # parses completely: never truncated or half-written
        assert len(frame) == 8 and frame["candidate"].nunique() == 8
        done = frame[frame["state"] == "complete"]
        return dict(zip(done["candidate"], done["train_seconds"]))

    def check_results_intact() -> None:
        for candidate, seconds in finished_now().items():
            assert finished.setdefault(candidate, seconds) == seconds  # never trained again

    kill_points = [
        ("while counting candidates", lambda: folder.exists()),
        ("after the study is created", lambda: journal_has("scaler_candidates")),
        ("during a results.csv write", lambda: marker.exists()),
        ("mid-candidate", lambda: journal_has('"worker"')),  # the first trial to start: none has before
        ("after a candidate completed", lambda: bool(finished_now())),
        ("during a later results.csv write", lambda: marker.exists()),
    ]
    tried = []
    for label, ready in kill_points:
        marker.unlink(missing_ok=True)
        process = subprocess.Popen(args, env=env(WRITE_MARKER=str(marker)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: ready() or process.poll() is not None, timeout=300, what=label)
            if process.poll() is None:  # killed at that point, not after the search ended
                tried.append(label)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        check_results_intact()
    final = subprocess.run(args, env=env(WRITE_MARKER=str(marker)), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert len(tried) >= 5
    frame = results(folder)
    assert len(frame) == 8 and set(frame["state"]) == {"complete"}
    assert_exactly_once(load(str(folder / "study.journal"), "crash"), 8)
    assert finished and len(finished) < 8  # some candidates were finished before the last kill
    after = dict(zip(frame["candidate"], frame["train_seconds"]))
    assert all(after[c] == seconds for c, seconds in finished.items())  # and none was trained again


def test_journal_with_a_torn_last_line_is_repaired(cli, tmp_path):
    assert cli("search", *GRID2, "--root", tmp_path, "--name", "torn").code == 0
    journal = tmp_path / "torn" / "study.journal"
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id"')  # a write cut short by a kill
    assert cli("search", *GRID2, "--root", tmp_path, "--name", "torn").code == 0
    assert_exactly_once(load(str(journal), "torn"), 2)


def test_ctrl_c_marks_the_candidate_interrupted_and_says_how_to_resume(tmp_path):
    args = [SCALER, "search", *GRID2, "--root", str(tmp_path), "--name", "ctrlc"]
    args[args.index("--epochs") + 1] = "40"  # seconds per candidate
    folder = tmp_path / "ctrlc"
    process = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    wait_for(lambda: (folder / "study.journal").exists() and '"worker"' in (folder / "study.journal").read_text(), what="a running candidate")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "resume with the same command" in err
    assert "interrupted" in set(results(folder)["state"])
    final = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert "1 candidate(s) interrupted last time will be trained again" in final.stderr  # it was said after a kill only
    assert set(results(folder)["state"]) == {"complete"}


def test_unwritable_output_folder(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = cli("search", *GRID8, "--root", blocker / "under")  # a root that cannot be made (a file is in the way): bad input
    assert (result.code, result.err) == (2, f"error: --root: root {blocker / 'under'} lies under a file, {blocker}; give a folder "
                                            "(it is created if missing)\n")
    # a file system that takes no folders: a run-time failure, said at once (the lock's retries
    # read its ENOENT as a folder removed meanwhile, and ended with "lock file kept being replaced")
    virtual = cli("search", *GRID8, "--root", "/proc/scaler-test")
    assert virtual.code == 1 and virtual.err.startswith("error: cannot create study folder /proc/scaler-test/")
    assert virtual.err.endswith(": No such file or directory\n") and len(virtual.err.splitlines()) == 1


def test_unreachable_storage(cli, tmp_path):
    result = cli("search", *GRID8, "--root", tmp_path, "--storage", "postgresql+psycopg2://nobody:secret@127.0.0.1:9/none")
    assert result.code == 1
    assert "cannot open storage" in result.err and "secret" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    worker = cli("worker", "--storage", "postgresql+psycopg2://127.0.0.1:9/none", "--study", "x")
    assert worker.code == 1
    # A journal file is not a shared storage: refused with the reason.
    journal = cli("worker", "--storage", tmp_path / "study.journal", "--study", "x")
    assert journal.code == 2 and "not a database URL" in journal.err
    path = cli("search", *GRID8, "--root", tmp_path, "--storage", tmp_path / "other.journal")
    assert path.code == 2 and "not a database URL" in path.err


def test_data_errors_leave_results_untouched(cli, tmp_path):
    assert cli("search", *GRID2, "--root", tmp_path, "--name", "kept").code == 0
    before = (tmp_path / "kept" / "results.csv").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "oneclass" / "cat").mkdir(parents=True)
    (tmp_path / "noimages" / "cat").mkdir(parents=True)
    (tmp_path / "noimages" / "dog").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "oneclass" / "cat" / "a.png")
    for source in [tmp_path / "missing", empty, tmp_path / "noimages", tmp_path / "oneclass"]:
        result = cli("search", *GRID2, "--root", tmp_path, "--name", "kept", "--data", source)
        assert result.code == 2, (source, result.err)
        assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    # The same name with other data is refused before anything is touched.
    assert (tmp_path / "kept" / "results.csv").read_text() == before
    fresh = cli("search", *GRID2, "--root", tmp_path, "--name", "fresh", "--data", tmp_path / "missing")
    assert fresh.code == 2 and not (tmp_path / "fresh").exists()  # checked before a study exists


def test_a_worker_elsewhere_is_told_the_studys_relative_data_path_is_read_from_its_own_folder(cli, tmp_path, monkeypatch):
    made = tmp_path / "made"
    for label, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (made / "imgs" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (16, 16), colour).save(made / "imgs" / label / f"{i}.png")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    monkeypatch.chdir(made)
    search = cli("search", *GRID2, "--root", "r", "--name", "rel", "--data", "imgs", "--storage", url)
    assert search.code == 0, search.err
    monkeypatch.chdir(tmp_path)  # another machine's working folder: no imgs/ here
    worker = cli("worker", "--storage", url, "--study", "rel", "--quiet")
    assert worker.code == 2 and worker.err == (
        f"error: the study's --data, as its command was given it: data source 'imgs' does not exist (a relative path, read "
        f"from {tmp_path}); use 'synthetic', 'cifar10:PATH' or a folder with one sub-folder per class\n")
    monkeypatch.chdir(made)
    assert cli("worker", "--storage", url, "--study", "rel", "--quiet").code == 0  # from the study's own folder it runs


def queued_search(cli, monkeypatch, folder: Path, url: str, root: str) -> list[str]:
    """The arguments of search 'relnet' on GRID2's proxy with `--base net.py:make` (relative),
    kept in `url`, made from `folder` and stopped (Ctrl-C) before any training: every candidate
    still queued."""
    monkeypatch.chdir(folder)
    args = [*GRID2, "--root", root, "--name", "relnet", "--storage", url]
    args[args.index(TINY_BASE)] = "net.py:make"

    def stopped(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ProxyExperiment, "estimate_seconds", stopped)
        assert cli("search", *args).code == 130
    return args


def test_a_worker_elsewhere_is_refused_the_studys_relative_factory_before_it_takes_any_item(cli, tmp_path, monkeypatch):
    """A factory file named relative to the search's folder is not there for a worker started
    in another: refused in one line, and no candidate is recorded as failed for it."""
    made = tmp_path / "made"
    made.mkdir()
    (made / "net.py").write_text(Path(TINY_BASE.rpartition(":")[0]).read_text())
    url = f"sqlite:///{tmp_path / 'study.db'}"
    queued_search(cli, monkeypatch, made, url, "r")
    # another machine's working folder, no net.py there (a process of its own: this one has the factory imported)
    worker = [SCALER, "worker", "--storage", url, "--study", "relnet", "--quiet"]
    elsewhere = subprocess.run(worker, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert elsewhere.returncode == 2 and elsewhere.stderr == (
        "error: the study's --base, as its command was given it: factory 'net.py:make': no file net.py (a relative path, "
        f"read from {tmp_path})\n")
    waiting = optuna.trial.TrialState.WAITING  # the queued items: nothing taken, nothing failed
    assert {t.state for t in optuna.load_study(study_name="relnet", storage=url).trials} == {waiting}
    at_home = subprocess.run(worker, cwd=made, capture_output=True, text=True, timeout=300)
    assert at_home.returncode == 0, at_home.stderr  # from the study's own folder it runs
    assert [t.state.name for t in optuna.load_study(study_name="relnet", storage=url).trials] == ["COMPLETE"] * 2


def test_another_network_under_the_studys_factory_name_is_refused_before_anything_is_stored(cli, tmp_path, monkeypatch):
    """The same, where the other folder holds another net.py (or the file was edited since):
    its networks are not the ones the study counted. A worker there, and the search resumed
    there with more repeats, are refused in one line, before they store anything with the
    study (the repeats asked for included), instead of training under the counted names."""
    made, other = tmp_path / "made", tmp_path / "other"
    text = Path(TINY_BASE.rpartition(":")[0]).read_text()
    for folder, source in ((made, text), (other, text.replace("(40, 2, 2)", "(64, 2, 2)"))):
        folder.mkdir()
        (folder / "net.py").write_text(source)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = queued_search(cli, monkeypatch, made, url, str(tmp_path / "r"))
    smallest = min(load(url, "relnet").user_attrs["scaler_candidates"], key=lambda c: c["params"])  # checked first
    built = runpy.run_path(str(other / "net.py"))["make"](1.0, smallest["depth_mult"], 10)
    said = (f"factory 'net.py:make' (a relative path, read from {other}) builds {sum(p.numel() for p in built.parameters()):,} "
            f"parameters when called with width=1, depth={smallest['depth_mult']:g}, num_classes=10, where the study counted "
            f"{smallest['params']:,}: it is not the network the study counted (another file or module of that name, or one "
            "edited since)\n")
    worker = [SCALER, "worker", "--storage", url, "--study", "relnet", "--quiet"]
    elsewhere = subprocess.run(worker, cwd=other, capture_output=True, text=True, timeout=300)
    assert elsewhere.returncode == 2 and elsewhere.stderr == f"error: the study's --base, as its command was given it: {said}"
    resumed = subprocess.run([SCALER, "search", *map(str, args), "--repeats", "2"], cwd=other, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 2 and resumed.stderr == f"error: --base: {said}"
    study = load(url, "relnet")
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.WAITING} and study.user_attrs.get(ATTR_REPEATS, 1) == 1
    at_home = subprocess.run(worker, cwd=made, capture_output=True, text=True, timeout=300)
    assert at_home.returncode == 0, at_home.stderr  # from the study's own folder it runs, one repeat each
    assert [t.state.name for t in load(url, "relnet").trials] == ["COMPLETE"] * 2


def test_a_worker_that_finishes_a_study_whose_every_item_failed_exits_1_as_its_command_does(cli, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = [*GRID2, "--lr", "1e30", "--root", tmp_path, "--name", "diverges", "--storage", url]

    def stopped(*_args, **_kwargs):  # Ctrl-C before any training: every candidate still queued
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ProxyExperiment, "estimate_seconds", stopped)
        assert cli("search", *args).code == 130
    worker = cli("worker", "--storage", url, "--study", "diverges", "--quiet")
    assert worker.code == 1 and worker.err.splitlines()[-1].startswith("error: no candidate finished: all 2 failed (first: diverged")
    assert cli("search", *args).code == 1  # the search's own verdict on the same study


def test_passwords_are_masked():
    assert mask_url("postgresql+psycopg2://me:secret@db:5432/x") == "postgresql+psycopg2://me:***@db:5432/x"
    assert mask_url("postgresql+psycopg2://me@db/x") == "postgresql+psycopg2://me@db/x"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_is_answered_as_ctrl_c_is_with_the_shells_exit_code(tmp_path, signum):
    # `kill`, `timeout`, `docker stop` and batch schedulers send SIGTERM; a terminal that closes
    # (an ssh connection dropped) sends SIGHUP, which ended a search with its candidate left
    # running, counted as a death of its item by the next run.
    args = [SCALER, "search", *GRID2, "--root", str(tmp_path), "--name", "term"]
    args[args.index("--epochs") + 1] = "40"  # seconds per candidate
    folder = tmp_path / "term"
    process = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (folder / "study.journal").exists() and '"worker"' in (folder / "study.journal").read_text(), what="a running candidate")
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    assert err.strip().splitlines()[-1].startswith("interrupted: ") and "resume with the same command" in err
    assert "interrupted" in set(results(folder)["state"])
    final = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert "1 candidate(s) interrupted last time will be trained again" in final.stderr  # it was said after a kill only
    assert set(results(folder)["state"]) == {"complete"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_reaches_local_workers_and_their_items_are_marked_interrupted(tmp_path, signum):
    """SIGTERM to the search alone (its workers get it from it); SIGHUP to every process of the
    session, as a terminal that closes sends it: each worker marks its own item interrupted."""
    args = [SCALER, "search", *GRID2, "--root", str(tmp_path), "--name", "termw", "--workers", "2"]
    args[args.index("--epochs") + 1] = "60"
    folder = tmp_path / "termw"
    process = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: (folder / "study.journal").exists() and (folder / "study.journal").read_text().count('"worker"') >= 2,
             what="two running candidates")
    if signum == signal.SIGHUP:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    states = set(results(folder)["state"])
    assert "running" not in states and "interrupted" in states, states  # marked by the workers themselves
    final = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert set(results(folder)["state"]) == {"complete"}


def test_a_killed_local_worker_s_item_is_released_at_once_and_trained_again(tmp_path):
    args = [SCALER, "search", *GRID8, "--root", str(tmp_path), "--name", "killw", "--workers", "2"]
    args[args.index("--epochs") + 1] = "60"  # seconds per candidate: the kill lands mid-candidate
    args[args.index("--beta-range") + 1] = "1"  # three candidates: one more than the workers
    journal = tmp_path / "killw" / "study.journal"
    process = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def running() -> list[optuna.trial.FrozenTrial]:
        if '"worker"' not in (journal.read_text() if journal.exists() else ""):  # no study yet, or no item started
            return []
        return load(str(journal), "killw").get_trials(states=(optuna.trial.TrialState.RUNNING,))

    wait_for(lambda: any("worker" in t.user_attrs for t in running()), what="a running candidate")
    pid = int(next(t for t in running() if "worker" in t.user_attrs).user_attrs["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "ended abnormally" in err
    study = load(str(journal), "killw")
    # marked by the parent as soon as it saw the worker dead (not by the next round's
    # reconcile, whose reason differs), and queued again at once
    released = [t for t in study.trials if t.user_attrs.get("reason", "").startswith("its worker process scaler-worker-")]
    assert len(released) == 1 and released[0].user_attrs["worker"].endswith(f":{pid}")
    assert released[0].user_attrs["state"] == "interrupted" and "(killed by signal 9)" in released[0].user_attrs["reason"]
    assert [t.user_attrs.get("requeued_from") for t in study.trials].count(released[0].number) == 1
    said = f"warning: #{released[0].params['candidate']} "  # said when seen, the candidate named, as the table names it
    assert f": {released[0].user_attrs['reason']}; it goes back to the queue and is trained again\n" in err
    assert any(line.startswith(said) and "it goes back to the queue" in line for line in err.splitlines()), err
    assert_exactly_once(study, 3)
    assert set(results(tmp_path / "killw")["state"]) == {"complete"}


def test_a_journal_record_optuna_cannot_replay_is_named(cli, tmp_path):
    assert cli("search", *GRID2, "--root", tmp_path, "--name", "odd").code == 0
    journal = tmp_path / "odd" / "study.journal"
    before = (tmp_path / "odd" / "results.csv").read_text()
    with open(journal, "a") as f:
        f.write('{"op_code": 6, "worker_id": "x"}\n')  # valid JSON, not a record Optuna can replay
    result = cli("search", *GRID2, "--root", tmp_path, "--name", "odd")
    assert result.code == 1
    assert result.err == (f"error: {journal} holds a record Optuna cannot replay (KeyError: 'trial_id'); the journal is "
                          "the study's record: restore it from a backup, or move the search folder away to start again\n")
    assert (tmp_path / "odd" / "results.csv").read_text() == before
