"""The study engine through a fake experiment: exactly-once work, resume, failures, pruning,
stale workers and kills, over a journal file, SQLite and (where the suite starts it)
PostgreSQL. Nothing here trains a network."""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import pytest
from fake_experiment import FakeConfig, FakeExperiment, OtherFakeExperiment, log_lines, score

import scaler.study.engine as engine_module
import scaler.study.runner as runner
import scaler.study.storage as storage_module
from scaler.errors import RunError, UsageError
from scaler.runtime import Runtime
from scaler.states import State
from scaler.study.create import join_study, open_study
from scaler.study.engine import ATTR_ORDER, pop_trial, reconcile, run_trial, set_queue_order, work
from scaler.study.trials import count_finished, item_params, mark_interrupted, process_died, records, requeue_lost, trial_state
from scaler.study.experiment import Events, WorkItem
from scaler.study import lock, signals
from scaler.study.lock import folder_lock
from scaler.study.results import write_outputs
from scaler.study.runner import run_study

CPU = Runtime(device="cpu", threads=1)
TESTS = Path(__file__).resolve().parent


@pytest.fixture(params=["journal", "sqlite", "postgres"])
def storage_url(request, tmp_path):
    """None (the folder's journal file), a SQLite URL, or the suite's PostgreSQL server."""
    if request.param == "journal":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.db'}"
    return request.getfixturevalue("postgres_url")


def open_fake(folder: Path, config: FakeConfig, storage_url: str | None = None, name: str | None = None):
    return open_study(FakeExperiment, config, folder=folder, storage_url=storage_url, name=name or folder.name)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"  # PostgreSQL is shared by the whole suite


def states(handle) -> dict[int, State]:
    return {r.item["item"]: r.state for r in records(handle)}


def test_an_experiment_whose_prepare_takes_no_check_is_prepared_as_before(tmp_path, monkeypatch):
    """`Experiment.prepare` gained `check` (changed data refused before it is loaded); a custom
    experiment written before it, `prepare(self, runtime)`, is called as it was, and one that
    takes it is given the engine's check (here: the fake's context stands for itself)."""
    from scaler.study import engine

    folder = tmp_path / unique("old")
    monkeypatch.setattr(FakeExperiment, "prepare", lambda self, runtime: {"device": runtime.device})
    with folder_lock(folder):
        assert engine.prepare(open_fake(folder, FakeConfig(count=2)), CPU) == {"device": "cpu"}
    given = []
    monkeypatch.setattr(FakeExperiment, "prepare", lambda self, runtime, check=None: given.append(check) or {"device": "cpu"})
    with folder_lock(folder):
        engine.prepare(open_fake(folder, FakeConfig(count=2)), CPU)
    assert len(given) == 1 and callable(given[0])


def test_every_item_runs_once_and_results_are_ranked(tmp_path, storage_url):
    log = tmp_path / "runs.log"
    folder = tmp_path / unique("once")
    config = FakeConfig(count=5, log=str(log))
    with folder_lock(folder):
        handle = open_fake(folder, config, storage_url)
        assert handle.experiment.planned == 1
        plan = reconcile(handle)
        assert plan.total == 5 and len(plan.queued) == 5 and plan.finished == 0
        assert work(handle, handle.experiment.prepare(CPU), CPU) == 5
    finished = [item for event, item, _ in log_lines(log) if event == "finish"]
    assert sorted(finished) == [0, 1, 2, 3, 4]
    frame = pd.read_csv(folder / "results.csv")
    assert frame["item"].tolist() == [0, 1, 2, 3, 4]  # ranked by score, best first
    assert frame["value"].tolist() == pytest.approx([score(i) for i in range(5)])
    info = json.loads((folder / "fake.json").read_text())
    assert info["states"] == {"complete": 5} and info["name"] == folder.name
    assert info["kind"] == "fake_experiment:FakeExperiment"
    assert info["config"]["count"] == 5

    with folder_lock(folder):  # resumed: restored, not planned again; nothing left to run
        again = open_fake(folder, config, storage_url)
        assert again.experiment.planned == 0
        plan = reconcile(again)
        assert plan.finished == 5 and plan.queued == []
        assert work(again, {}, CPU) == 0
    assert len(log_lines(log)) == 10  # 5 starts, 5 finishes: nothing ran twice


def test_failures_keep_their_reason_and_are_retried_on_request(tmp_path, storage_url):
    folder = tmp_path / unique("fail")
    log = tmp_path / "runs.log"
    config = FakeConfig(count=4, fail=(1,), oom=(2,), log=str(log))
    with folder_lock(folder):
        handle = open_fake(folder, config, storage_url)
        reconcile(handle)
        work(handle, {}, CPU)
    frame = pd.read_csv(folder / "results.csv", keep_default_na=False)
    reasons = dict(zip(frame["item"], frame["reason"]))
    assert frame["state"].tolist() == ["complete", "complete", "failed", "failed"]  # failures last
    assert reasons[1] == "RuntimeError: boom: injected failure in item 1"
    assert reasons[2] == "out of memory"

    with folder_lock(folder):
        handle = open_fake(folder, config, storage_url)  # the same study: its failures are part of its configuration
        plan = reconcile(handle)  # without retry_failed they stay failed
        assert plan.failed == [WorkItem.of(item=1), WorkItem.of(item=2)] and plan.queued == []
        plan = reconcile(handle, retry_failed=True)
        assert plan.queued == [WorkItem.of(item=1), WorkItem.of(item=2)]
        work(handle, {}, CPU)
    assert states(handle) == {0: State.COMPLETE, 1: State.FAILED, 2: State.FAILED, 3: State.COMPLETE}
    assert count_finished(handle) == 4
    started = [item for event, item, _ in log_lines(log) if event == "start"]
    assert sorted(started) == [0, 1, 1, 2, 2, 3]  # the failed items ran again, the complete ones did not


def test_an_allocation_failure_is_told_by_its_type_or_words_without_the_engine_importing_torch():
    import torch

    assert engine_module.is_out_of_memory(torch.OutOfMemoryError()) and engine_module.is_out_of_memory(MemoryError())
    assert engine_module.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not engine_module.is_out_of_memory(RuntimeError("shapes cannot be multiplied"))
    imported = subprocess.run([sys.executable, "-c", "import sys, scaler.study.engine, scaler.study.runner; print('torch' in sys.modules)"],
                              capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "False"  # the engine does not know the work


def test_an_item_left_running_is_interrupted_and_run_again(tmp_path, storage_url, monkeypatch):
    """Journal: the folder lock proves a RUNNING trial's process is gone. RDB: its heartbeat
    stops and, after the grace period, the item is queued again."""
    monkeypatch.setenv("SCALER_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("SCALER_GRACE_SECONDS", "2")
    log = tmp_path / "runs.log"
    folder = tmp_path / unique("stale")
    config = FakeConfig(count=3, log=str(log))
    with folder_lock(folder):
        handle = open_fake(folder, config, storage_url)
        reconcile(handle)
        orphan = pop_trial(handle)  # taken by a "worker" that then dies without a word
        assert orphan is not None
        if storage_url is not None:
            time.sleep(2.5)  # heartbeat older than the grace period
        resumed = open_fake(folder, config, storage_url)
        plan = reconcile(resumed)
        assert len(plan.queued) == 3
        if storage_url is None:
            assert plan.interrupted == 1
        assert work(resumed, {}, CPU) == 3
    assert sorted(i for e, i, _ in log_lines(log) if e == "finish") == [0, 1, 2]
    assert set(states(resumed).values()) == {State.COMPLETE}
    orphan_state = resumed.study.trials[orphan.number]
    assert orphan_state.state == optuna.trial.TrialState.FAIL


def test_a_worker_waiting_on_another_process_s_item_says_so_then_takes_it_back(tmp_path, monkeypatch):
    """A database study rerun at once after a kill trained what it could, then waited out the
    dead trial's grace with no word (30 s by default, after an estimate that had not counted it)."""
    monkeypatch.setenv("SCALER_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("SCALER_GRACE_SECONDS", "2")
    folder, url = tmp_path / "waits", f"sqlite:///{tmp_path / 'studies.db'}"
    config = FakeConfig(count=2)
    with folder_lock(folder):
        handle = open_fake(folder, config, url)
        reconcile(handle)
        taken = pop_trial(handle)  # a worker that took an item and died: its heartbeat is fresh
        waits: list[list[str]] = []
        assert work(open_fake(folder, config, url), {}, CPU, Events(on_wait=waits.append), poll_seconds=0.2) == 2
    frozen = handle.storage.get_trial(taken._trial_id)
    assert waits == [[handle.experiment.label(handle.experiment.item_of(item_params(frozen)))]]
    said: list[str] = []
    runner._events(None, said.append).on_wait(["item=0"])
    assert said == ["waiting for item=0, run by another process; an item whose worker stopped is taken back 2 s after its "
                    "last heartbeat (SCALER_GRACE_SECONDS) and trained here"]  # once, until its heartbeat went stale and this worker trained it


def test_an_error_of_the_worker_after_it_took_an_item_leaves_it_interrupted_not_a_death(tmp_path, storage_url, monkeypatch):
    """An error that is not the item's, raised once its trial is taken (the display, a refresh
    of the experiment, the storage), left the trial RUNNING: the next run, or the heartbeat,
    counted it a death of its process, and three such runs failed an innocent item as
    'killed, by the out-of-memory killer perhaps'."""
    folder = tmp_path / unique("error")
    config = FakeConfig(count=1)

    def display_fails(*args):
        raise RuntimeError("the display broke")

    with folder_lock(folder):
        # as the item starts, or inside its run (a step or an epoch shown: it was recorded the item's failure)
        for events in (Events(on_start=display_fails), Events(on_step=display_fails), Events(on_epoch=display_fails)):
            handle = open_fake(folder, config, storage_url)
            reconcile(handle)
            with pytest.raises(RuntimeError, match="the display broke"):
                work(handle, {}, CPU, events=events)
            last = handle.study.get_trials(deepcopy=False)[-1 if storage_url is None else -2]
            assert last.user_attrs["state"] == State.INTERRUPTED.value and not process_died(last)
            assert last.user_attrs["reason"] == "stopped by an error of its worker (RuntimeError: the display broke)"
        handle = open_fake(folder, config, storage_url)
        reconcile(handle)
        assert work(handle, {}, CPU) == 1  # not failed after three 'deaths'
    assert states(handle) == {0: State.COMPLETE}


def test_a_storage_failure_as_an_item_reports_an_epoch_is_not_the_item_s_failure(tmp_path, storage_url, monkeypatch):
    """A database lock not granted in time, a dropped connection, a journal that cannot be
    written: the item was recorded failed (kept so until --retry-failed). Now the worker stops
    with the reason, and the item is interrupted, to be trained again."""
    folder = tmp_path / unique("lost")
    config = FakeConfig(count=1, epochs=2)
    with folder_lock(folder):
        handle = open_fake(folder, config, storage_url)
        reconcile(handle)
        monkeypatch.setattr(optuna.trial.Trial, "report", lambda *a: (_ for _ in ()).throw(
            optuna.exceptions.StorageInternalError("database is locked")))
        with pytest.raises(engine_module.StorageFailed, match=r"the study's storage failed as .* reported its epoch 1 "
                           r"\(StorageInternalError: database is locked\); it goes back to the queue"):
            work(handle, {}, CPU)
        monkeypatch.undo()
        assert states(handle) == {0: State.INTERRUPTED if storage_url is None else State.QUEUED}  # a database queues it at once
        handle = open_fake(folder, config, storage_url)
        reconcile(handle)
        assert work(handle, {}, CPU) == 1
    assert states(handle) == {0: State.COMPLETE}


def test_a_trial_closed_as_its_worker_records_the_outcome_is_lost_not_complete(tmp_path, monkeypatch):
    """Another worker judges the trial stale between its worker's last attribute and its tell:
    Optuna's ValueError ('Cannot tell a FAIL trial') ended the worker, and the failed trial
    read complete (its 'state' attribute), with its item queued again all the same."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    (tmp_path / "late").mkdir()
    handle = open_fake(tmp_path / "late", FakeConfig(count=1), url)
    reconcile(handle)
    other = join_study(url, "late")
    trial = pop_trial(handle)
    set_attr = optuna.trial.Trial.set_user_attr

    def judged_stale_meanwhile(self, key, value):
        set_attr(self, key, value)
        if key == "reason":  # the outcome's last attribute
            other.storage.set_trial_state_values(self._trial_id, optuna.trial.TrialState.FAIL)

    monkeypatch.setattr(optuna.trial.Trial, "set_user_attr", judged_stale_meanwhile)
    assert run_trial(handle, trial, {}, CPU, Events()) == State.LOST
    monkeypatch.undo()
    closed = handle.storage.get_trial(trial._trial_id)
    assert closed.user_attrs["state"] == State.COMPLETE.value  # as far as its worker got
    assert trial_state(closed) == State.INTERRUPTED and process_died(closed)


def test_a_ctrl_c_while_an_outcome_is_recorded_keeps_the_finished_item(tmp_path, monkeypatch):
    """The outcome is several writes (attributes, then the state): a Ctrl-C between them left
    the trial interrupted, and its finished training was done again."""
    folder = tmp_path / "kept"
    set_attr = optuna.trial.Trial.set_user_attr

    def interrupted_meanwhile(self, key, value):
        set_attr(self, key, value)
        if key == "value":  # the outcome's first attribute
            os.kill(os.getpid(), signal.SIGINT)

    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2))
        reconcile(handle)
        monkeypatch.setattr(optuna.trial.Trial, "set_user_attr", interrupted_meanwhile)
        with pytest.raises(KeyboardInterrupt):
            work(handle, {}, CPU)
    assert states(handle) == {0: State.COMPLETE, 1: State.QUEUED}  # answered once the outcome was stored


def test_an_item_enqueued_twice_runs_once(tmp_path, storage_url):
    log = tmp_path / "runs.log"
    folder = tmp_path / unique("dup")
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2, log=str(log)), storage_url)
        reconcile(handle)
        handle.study.enqueue_trial({"item": 0}, user_attrs={"item": 0})  # a second reconciler
        states_seen = []
        while (trial := pop_trial(handle)) is not None:
            states_seen.append(run_trial(handle, trial, {}, CPU, Events()))
    assert sorted(states_seen) == sorted([State.COMPLETE, State.COMPLETE, State.DUPLICATE])
    assert sorted(i for e, i, _ in log_lines(log) if e == "start") == [0, 1]


def test_twins_popped_at_once_run_the_item_once_and_the_earlier_runs_it(tmp_path, storage_url):
    """Two workers that popped both trials of an item enqueued twice before either ran: the
    later one is dropped (the earlier runs), whichever worker gets there first; a later twin
    popped while the earlier still waits is dropped too, and the earlier runs when popped."""
    log = tmp_path / "runs.log"
    folder = tmp_path / unique("twins")
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2, log=str(log)), storage_url)
        reconcile(handle)
        set_queue_order(handle, handle.experiment.items())  # as the runner does: item 0's twins first
        handle.study.enqueue_trial({"item": 0}, user_attrs={"item": 0})  # a second reconciler
        earlier, later = pop_trial(handle), pop_trial(handle)  # two workers at once: item 0's twins
        assert (earlier.number, later.number) == (0, 2)
        assert run_trial(handle, later, {}, CPU, Events()) is State.DUPLICATE  # before the earlier one trains
        assert handle.storage.get_trial(later._trial_id).user_attrs["reason"] == "queued twice: trial 0 runs it"
        assert run_trial(handle, earlier, {}, CPU, Events()) is State.COMPLETE
        # item 1 enqueued twice, the later twin taken first (the earlier waits)
        handle.study.enqueue_trial({"item": 1}, user_attrs={"item": 1})
        first, second = sorted(handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)), key=lambda t: t.number)
        assert handle.storage.set_trial_state_values(second._trial_id, state=optuna.trial.TrialState.RUNNING)
        taken = optuna.trial.Trial(handle.study, second._trial_id)
        assert run_trial(handle, taken, {}, CPU, Events()) is State.DUPLICATE
        assert handle.storage.get_trial(second._trial_id).user_attrs["reason"] == f"queued twice: trial {first.number} waits to run it"
        assert (trial := pop_trial(handle)).number == first.number and run_trial(handle, trial, {}, CPU, Events()) is State.COMPLETE
        assert pop_trial(handle) is None
    assert sorted(i for e, i, _ in log_lines(log) if e == "start") == [0, 1]
    assert states(handle) == {0: State.COMPLETE, 1: State.COMPLETE}


def test_a_twin_dropped_beside_one_interrupted_later_leaves_the_item_queued_again(tmp_path):
    """The dropped twin does not speak for the item: its earlier twin, interrupted, does, so the
    next run queues the item again (a duplicate read as the item's state left it unqueued);
    and a trial requeued from a dead worker's still-running trial is no twin of it."""
    folder = tmp_path / unique("twins")
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=1))
        reconcile(handle)
        handle.study.enqueue_trial({"item": 0}, user_attrs={"item": 0})
        earlier, later = pop_trial(handle), pop_trial(handle)
        assert run_trial(handle, later, {}, CPU, Events()) is State.DUPLICATE
        mark_interrupted(handle.storage, earlier._trial_id, "interrupted (Ctrl-C or SIGTERM)")
        assert states(handle) == {0: State.INTERRUPTED}
        assert [item.as_dict() for item in reconcile(handle).queued] == [{"item": 0}]
        running = pop_trial(handle)  # its worker dies: the parent requeues it before marking it
        requeue_lost(handle.study, handle.storage.get_trial(running._trial_id))
        assert run_trial(handle, pop_trial(handle), {}, CPU, Events()) is State.COMPLETE
    assert states(handle) == {0: State.COMPLETE}


def _pop_all(url: str, name: str, start, won) -> None:
    """A process that takes trials of study `name` until none waits, and puts their numbers."""
    handle = join_study(url, name)
    start.wait()
    numbers = []
    while (trial := pop_trial(handle)) is not None:
        numbers.append(trial.number)
    won.put(numbers)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_processes_racing_for_trials_never_take_one_twice(tmp_path, request, database):
    """Optuna's WAITING -> RUNNING reads the trial, then writes it; on SQLite, which ignores
    FOR UPDATE, four processes took 22 of 300 trials twice (items trained twice, workers
    crashed on telling a finished trial) before every transaction began IMMEDIATE."""
    url = f"sqlite:///{tmp_path / 'race.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    name = unique("race")
    (tmp_path / name).mkdir()
    handle = open_fake(tmp_path / name, FakeConfig(count=150), url, name=name)
    reconcile(handle)
    context = multiprocessing.get_context("spawn")
    start, won = context.Event(), context.Queue()
    processes = [context.Process(target=_pop_all, args=(url, name, start, won)) for _ in range(4)]
    for process in processes:
        process.start()
    start.set()
    numbers = [n for _ in processes for n in won.get(timeout=240)]
    for process in processes:
        process.join(timeout=60)
    assert sorted(numbers) == sorted(t.number for t in handle.study.trials)  # each trial taken once


def _quick_heartbeat_study(tmp_path: Path, name: str, count: int, monkeypatch) -> tuple[str, object]:
    """A reconciled fake study of `count` items on SQLite, with a 1 s heartbeat and 2 s grace."""
    monkeypatch.setenv("SCALER_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("SCALER_GRACE_SECONDS", "2")
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    (tmp_path / name).mkdir()
    handle = open_fake(tmp_path / name, FakeConfig(count=count), url)
    reconcile(handle)
    return url, handle


def test_a_worker_killed_as_it_takes_a_trial_leaves_one_that_goes_stale(tmp_path, monkeypatch):
    """Optuna never judges a RUNNING trial without a heartbeat stale: a worker killed between
    taking a trial and its first heartbeat left it RUNNING forever, and every worker waiting."""
    url, handle = _quick_heartbeat_study(tmp_path, "taken", 2, monkeypatch)
    take = handle.storage.set_trial_state_values

    def taken_then_killed(trial_id, state, values=None):
        take(trial_id, state, values)
        raise SystemExit("killed")  # the process dies right after the switch to RUNNING

    monkeypatch.setattr(handle.storage, "set_trial_state_values", taken_then_killed)
    with pytest.raises(SystemExit):
        pop_trial(handle)
    time.sleep(3.5)  # past the grace period (SQLite stores the heartbeat to the second)
    other = join_study(url, "taken")
    engine_module.fail_stale_trials(other.study)
    trials = other.study.get_trials(deepcopy=False)
    # failed as stale, and its item queued again (behind the one not yet tried)
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING, optuna.trial.TrialState.WAITING]
    assert item_params(trials[2]) == item_params(trials[0])


def test_a_trial_taken_after_a_long_wait_for_the_database_is_not_judged_stale(tmp_path, monkeypatch):
    """A heartbeat recorded only before the switch to RUNNING was older than the grace period
    where the switch waited long for the lock: another worker failed the live trial, counted a
    death, and the worker crashed on its first write (UpdateFinishedTrialError)."""
    url, handle = _quick_heartbeat_study(tmp_path, "slow", 1, monkeypatch)
    take = handle.storage.set_trial_state_values

    def after_a_wait(trial_id, state, values=None):
        time.sleep(3.5)  # past the grace period (SQLite stores the heartbeat to the second)
        return take(trial_id, state, values)

    with monkeypatch.context() as waiting:
        waiting.setattr(handle.storage, "set_trial_state_values", after_a_wait)
        trial = pop_trial(handle)
    other = join_study(url, "slow")
    engine_module.fail_stale_trials(other.study)
    assert other.storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.RUNNING
    assert run_trial(handle, trial, {}, CPU, Events()) == State.COMPLETE


def test_a_trial_closed_by_another_process_before_it_runs_is_left_to_it(tmp_path):
    """Judged stale between the pop and the run: the worker's first write raised
    UpdateFinishedTrialError and the worker stopped; it now goes on to the next item."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    (tmp_path / "closed").mkdir()
    handle = open_fake(tmp_path / "closed", FakeConfig(count=2), url)
    reconcile(handle)
    taken = pop_trial(handle)
    handle.storage.set_trial_state_values(taken._trial_id, optuna.trial.TrialState.FAIL)  # as a heartbeat check does,
    requeue_lost(handle.study, handle.storage.get_trial(taken._trial_id))  # queuing it again
    original = engine_module.pop_trial
    popped = iter([taken])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_module, "pop_trial", lambda h: next(popped, None) or original(h))
        assert work(handle, {}, CPU) == 2  # the other item, and the closed one's new trial
    assert states(handle) == {0: State.COMPLETE, 1: State.COMPLETE}


def test_workers_take_items_in_the_queue_order_the_study_records(tmp_path, storage_url):
    """`set_queue_order` is kept in the study, so every worker (another process, another
    machine) takes WAITING trials in it; items it does not name come last, in enqueue order."""
    folder = tmp_path / unique("order")
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=5), storage_url)
        reconcile(handle)
        set_queue_order(handle, [WorkItem.of(item=3), WorkItem.of(item=1), WorkItem.of(item=4)])
        other = join_study(storage_url, handle.name) if storage_url else handle  # a second worker's view
        popped = [item_params(h.storage.get_trial(pop_trial(h)._trial_id))["item"] for h in (handle, other, handle, other, handle)]
        assert popped == [3, 1, 4, 0, 2] and pop_trial(handle) is None


def test_an_item_whose_worker_died_is_taken_again_after_the_items_not_yet_tried(tmp_path, storage_url):
    """An item that kills its worker (out of memory) went back to its place at the head of the
    queue: every worker took it in turn and died, round after round, while the items behind
    it never ran. Queued again, it now comes after them, in any worker's view."""
    folder = tmp_path / unique("poison")
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=3), storage_url)
        reconcile(handle)
        set_queue_order(handle, [WorkItem.of(item=2), WorkItem.of(item=0), WorkItem.of(item=1)])
        lost = pop_trial(handle)  # item 2, whose worker is then killed
        requeue_lost(handle.study, handle.storage.get_trial(lost._trial_id))
        other = join_study(storage_url, handle.name) if storage_url else handle
        popped = [item_params(h.storage.get_trial(pop_trial(h)._trial_id))["item"] for h in (other, handle, other)]
        assert popped == [0, 1, 2] and pop_trial(handle) is None


@pytest.mark.parametrize("workers, database, halving, order", [
    (1, False, False, [0, 1, 2, 3]),  # one worker: table order
    (2, False, False, [3, 1, 2, 0]),  # several: the longest first
    (1, True, False, [3, 1, 2, 0]),  # a database study, which `scaler worker` joins from elsewhere
    (2, False, True, [0, 1, 2, 3]),  # a pruner judges each item against those before it
])
def test_items_are_taken_longest_first_where_several_workers_share_them(tmp_path, monkeypatch, workers, database,
                                                                        halving, order):
    seconds = {0: 1.0, 1: 4.0, 2: 2.0, 3: 8.0}
    monkeypatch.setattr(FakeExperiment, "estimate_seconds", lambda self, context, runtime, items, *, in_process=True:
                        ({item: seconds[item["item"]] for item in items}, "measured"))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # two workers train at once
    log, messages = tmp_path / "runs.log", []
    folder = tmp_path / unique("longest")
    url = f"sqlite:///{tmp_path / 'studies.db'}" if database else None
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=4, seconds=0.0, log=str(log), halving=halving), url)
        run_study(handle, workers=workers, runtime=CPU, retry_failed=False, log=messages.append)
        stored = [params["item"] for params in handle.study.user_attrs[ATTR_ORDER]]
        journal = None if database else (folder / "study.journal").read_bytes()
        run_study(handle, workers=workers, runtime=CPU, retry_failed=False, log=print)  # finished: shown again
        assert database or (folder / "study.journal").read_bytes() == journal  # nothing written to its storage
    assert stored == order
    started = [i for e, i, _ in log_lines(log) if e == "start"]
    assert sorted(started) == [0, 1, 2, 3]
    if workers == 1:
        assert started == order
        assert "estimated 15 s (measured)" in next(m for m in messages if "estimated" in m)
    else:  # longest first: 8 s on one worker, 4 + 2 + 1 on the other; in table order 1 + 2 + 8
        assert f"estimated {11 if halving else 8} s (measured)" in next(m for m in messages if "estimated" in m)


def test_the_result_files_are_written_before_the_display_says_an_item_finished(tmp_path):
    """A kill right after the line 'complete' finds the item in results.csv too; and with
    `scaler search | head`, where the line fails on the closed pipe, the files are current.
    While an item runs, the files show it running (one worker wrote them only as items ended)."""
    folder = tmp_path / unique("pipe")
    seen = []

    def started(label, epochs):
        seen.append(sorted(pd.read_csv(folder / "results.csv")["state"]))

    def closed_pipe(label, state, reason):
        seen.append(sorted(pd.read_csv(folder / "results.csv")["state"]))
        raise BrokenPipeError(32, "Broken pipe")

    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=3))
        reconcile(handle)
        with pytest.raises(BrokenPipeError):
            work(handle, {}, CPU, events=Events(on_start=started, on_finish=closed_pipe))
    assert seen == [["queued", "queued", "running"], ["complete", "queued", "queued"]]
    frame = pd.read_csv(folder / "results.csv")
    assert sorted(frame["state"]) == ["complete", "queued", "queued"]


def test_pruned_items_stop_early_and_rank_after_complete(tmp_path, storage_url):
    folder = tmp_path / unique("halving")
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=4, epochs=3, halving=True), storage_url)
        reconcile(handle)
        work(handle, {}, CPU)
    frame = pd.read_csv(folder / "results.csv")
    # Item 0 is best and promoted; each later (worse) one stops after epoch 1.
    assert frame["state"].tolist() == ["complete", "pruned", "pruned", "pruned"]
    assert frame["epochs"].tolist() == [3, 1, 1, 1]
    assert frame["value"].notna().all()


@pytest.mark.parametrize("resumed", [
    (0, 5, 4, 3, 2, 1),  # the interrupted item trained again first: it stood in rung 0 twice
    (5, 4, 3, 2, 1, 0),  # ... or last: until then its interrupted attempt speaks for it, as it would have
])
def test_a_resumed_halving_study_prunes_as_the_same_study_never_stopped(tmp_path, storage_url, resumed):
    """Successive halving ranks a trial's value at a rung against every trial that reached
    it: the best item, interrupted after its first epoch and trained again, stood there twice,
    and item 1, judged against both, was pruned where the study never stopped completes it.
    Each item now counts once at a rung, with its latest attempt that reached it."""
    config = FakeConfig(count=6, epochs=3, halving=True)
    outcomes = []
    for stopped in (False, True):
        folder = tmp_path / unique("resumed-halving")
        with folder_lock(folder):
            handle = open_fake(folder, config, storage_url)
            reconcile(handle)
            set_queue_order(handle, [WorkItem.of(item=i) for i in (0, 5, 4, 3, 2, 1)])
            if stopped:
                trial = pop_trial(handle)
                trial.report(score(0) / 3, 1)
                assert not trial.should_prune()  # item 0 led its rung, then a Ctrl-C stopped it
                mark_interrupted(handle.storage, trial._trial_id, "interrupted (Ctrl-C or SIGTERM)")
                set_queue_order(handle, [WorkItem.of(item=i) for i in resumed])
                reconcile(handle)
            work(handle, {}, CPU)
        outcomes.append(pd.read_csv(folder / "results.csv")[["item", "state", "epochs"]])
    never, resumed_run = outcomes
    assert never.values.tolist() == [[0, "complete", 3], [1, "complete", 3], *([i, "pruned", 1] for i in range(2, 6))]
    pd.testing.assert_frame_equal(resumed_run, never)


def test_another_configuration_under_the_same_name_is_refused(tmp_path, storage_url):
    folder = tmp_path / unique("clash")
    with folder_lock(folder):
        open_fake(folder, FakeConfig(count=2), storage_url)
        with pytest.raises(UsageError, match="already exists with another configuration.*count: 2 -> 3"):
            open_fake(folder, FakeConfig(count=3), storage_url)


def test_the_folder_lock_admits_one_holder_and_leaves_a_folder_it_wrote_nothing_to_as_found(tmp_path):
    """The lock file is the study's: a second holder is refused by name, and a run that wrote
    nothing (a refused study, an error before the first write) removes the lock again, and the
    folder and the folders above it too when the run created them."""
    fresh = tmp_path / "fresh"
    with folder_lock(fresh):
        assert (fresh / ".lock").read_text().startswith(f"pid {os.getpid()} on ")
        with pytest.raises(RunError, match=f"{fresh} is already running \\(pid {os.getpid()} on "):
            with folder_lock(fresh):
                pass
    assert not fresh.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("a,b\n")
    with pytest.raises(UsageError):
        with folder_lock(foreign):
            raise UsageError("refused")
    assert sorted(p.name for p in foreign.iterdir()) == ["data.csv"]
    written = tmp_path / "written"
    with folder_lock(written):
        (written / "results.csv").write_text("item\n")
    assert sorted(p.name for p in written.iterdir()) == [".lock", "results.csv"]
    with folder_lock(written):  # a later run finds the lock it keeps
        pass
    assert sorted(p.name for p in written.iterdir()) == [".lock", "results.csv"]
    nested = tmp_path / "root" / "more" / "study"  # the folders above it that it made go too
    with pytest.raises(UsageError):
        with folder_lock(nested):
            raise UsageError("refused")
    assert not (tmp_path / "root").exists()
    with folder_lock(nested):  # another study appears beside it meanwhile: the folders above stay
        (tmp_path / "root" / "more" / "other").mkdir()
    assert sorted(p.name for p in (tmp_path / "root" / "more").iterdir()) == ["other"]
    (tmp_path / "empty").mkdir()  # an existing folder reached through one that is not there yet
    with pytest.raises(UsageError):
        with folder_lock(tmp_path / "new" / ".." / "empty"):
            raise UsageError("refused")
    assert (tmp_path / "empty").is_dir()


def test_a_lock_taken_on_a_removed_lock_file_is_taken_again_on_the_file_in_its_place(tmp_path, monkeypatch):
    """A process that opened .lock just before its holder removed it (nothing written) locks
    a file no longer there: it must lock the file at the path instead, or two runs would
    hold the folder at once."""
    folder = tmp_path / "raced"
    folder.mkdir()
    stale = open(folder / ".lock", "a+")
    (folder / ".lock").unlink()  # the holder left, removing the file this process had opened
    handles = iter([stale])
    monkeypatch.setattr(lock, "open", lambda path, mode: next(handles, None) or builtins.open(path, mode), raising=False)
    with folder_lock(folder):
        other = open(folder / ".lock", "a+")
        with pytest.raises(BlockingIOError):  # the file at the path is the one held
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other.close()
    assert stale.closed


def test_workers_join_from_the_stored_configuration(tmp_path, storage_url):
    if storage_url is None:
        pytest.skip("a folder's journal is not joined from elsewhere")
    name = unique("join")
    with folder_lock(tmp_path / name):
        created = open_fake(tmp_path / name, FakeConfig(count=3, epochs=2), storage_url)
        reconcile(created)
    joined = join_study(storage_url, name)
    assert isinstance(joined.experiment, FakeExperiment)
    assert joined.experiment.config == FakeConfig(count=3, epochs=2)
    assert work(joined, {}, CPU, write_results=False) == 3
    with pytest.raises(UsageError, match="not found"):
        join_study(storage_url, "no-such-study")


def test_local_worker_processes_share_the_items(tmp_path):
    log = tmp_path / "runs.log"
    folder = tmp_path / "processes"
    config = FakeConfig(count=6, seconds=0.3, log=str(log), peers=2)  # a worker ready seconds before the other took every item
    messages: list[str] = []
    with folder_lock(folder):
        handle = open_fake(folder, config)
        outcome = run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=messages.append)
    assert outcome.finished == 6 and not outcome.interrupted
    finishes = [(i, pid) for e, i, pid in log_lines(log) if e == "finish"]
    assert sorted(i for i, _ in finishes) == list(range(6))  # each item exactly once
    assert len({pid for _, pid in finishes}) == 2 and os.getpid() not in {pid for _, pid in finishes}


def test_worker_processes_items_show_running_in_the_files_as_they_start(tmp_path):
    """The parent, the one writer of the folder's files, wrote them only as items finished: an
    item its worker had begun read queued, and one whose worker was killed read running."""
    folder = tmp_path / "shown"
    seen: list[tuple[list[str], int]] = []

    class Watching(RecordingDisplay):
        def set_counts(self, done, running):
            if running:
                seen.append((running, int((pd.read_csv(folder / "results.csv")["state"] == "running").sum())))

    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2, seconds=3.0))
        outcome = run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=lambda _: None, display=Watching())
    assert outcome.finished == 2 and seen
    assert seen[0][1] >= 1, seen  # the first look that found an item running found it in the files too


class RecordingDisplay:
    """A front end's study display that writes down what it is shown (runner.Display)."""

    def __init__(self) -> None:
        self.opened: list[tuple] = []
        self.seen: list[tuple] = []

    @contextlib.contextmanager
    def __call__(self, total: int, done: int, noun: str):
        self.opened.append((total, done, noun))
        yield self

    def on_start(self, label, epochs):
        self.seen.append(("start", label, epochs))

    def on_step(self, step, total, loss, images_per_s):
        self.seen.append(("step", step, total))

    def on_epoch(self, metrics):
        self.seen.append(("epoch",))

    def on_finish(self, label, state, reason):
        self.seen.append(("finish", label, state))

    def set_counts(self, done, running):
        self.seen.append(("counts", done))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_shows_its_progress_on_the_display_it_is_given_and_logs_it_without_one(tmp_path, workers):
    display, messages = RecordingDisplay(), []
    config = FakeConfig(count=2, seconds=0.0, epochs=2, log=str(tmp_path / "runs.log"))
    with folder_lock(tmp_path / "shown"):
        handle = open_fake(tmp_path / "shown", config)
        run_study(handle, workers=workers, runtime=CPU, retry_failed=False, log=messages.append, display=display)
    assert display.opened == [(2, 0, "item")]
    labels = [handle.experiment.label(item) for item in handle.experiment.items()]
    if workers == 1:  # every item's start, steps, epochs and end, in order
        assert display.seen == [e for label in labels for e in (("start", label, 2), ("step", 1, 2), ("epoch",), ("step", 2, 2),
                                                                 ("epoch",), ("finish", label, State.COMPLETE))]
    else:  # worker processes: the study's counts, ending with both items done, and each item's end once
        # (a log file, where no bar is drawn, heard nothing of them until the table)
        assert display.seen and {e[0] for e in display.seen} == {"counts", "finish"} and display.seen[-1] == ("counts", 2)
        assert sorted(e[1:] for e in display.seen if e[0] == "finish") == [(label, State.COMPLETE) for label in labels]
    assert not any(": training" in m or "finished; running" in m or ": complete" in m for m in messages)  # the display showed it
    with folder_lock(tmp_path / "logged"):
        handle = open_fake(tmp_path / "logged", config)
        run_study(handle, workers=workers, runtime=CPU, retry_failed=False, log=messages.append)
    assert any(m.endswith(": training") for m in messages) if workers == 1 else any("2/2 items finished" in m for m in messages)
    assert sorted(m for m in messages if m.endswith(": complete")) == [f"{label}: complete" for label in labels]


def test_an_experiment_error_in_the_display_s_epoch_count_fails_that_item_alone(tmp_path):
    display = RecordingDisplay()
    config = FakeConfig(count=3, no_epochs=(1,))
    with folder_lock(tmp_path / "counted"):
        handle = open_fake(tmp_path / "counted", config)
        run_study(handle, workers=1, runtime=CPU, retry_failed=False, log=lambda _: None, display=display)
    assert states(handle) == {0: State.COMPLETE, 1: State.FAILED, 2: State.COMPLETE}
    frame = pd.read_csv(tmp_path / "counted" / "results.csv", keep_default_na=False)
    assert dict(zip(frame["item"], frame["reason"]))[1] == "RuntimeError: injected: no epoch count for item 1"
    label = handle.experiment.label(WorkItem.of(item=1))
    assert ("finish", label, State.FAILED) in display.seen and not any(e[:2] == ("start", label) for e in display.seen)

    class BrokenDisplay(RecordingDisplay):
        def on_start(self, label, epochs):
            raise BrokenPipeError("the display's own fault")

    # An error of the display's own is not the item's: the run stops, nothing is stored as failed.
    with folder_lock(tmp_path / "shown"):
        handle = open_fake(tmp_path / "shown", FakeConfig(count=2))
        with pytest.raises(BrokenPipeError):
            run_study(handle, workers=1, runtime=CPU, retry_failed=False, log=lambda _: None, display=BrokenDisplay())
    assert State.FAILED not in states(handle).values()


class GrowingExperiment(FakeExperiment):
    """Knows only the items its study's attributes count, as a calibration knows only the tries
    stored when it last read them: its label of any other item raises, as a calibration's does."""

    kind = "growing-fake"

    def refresh(self, attrs):
        self.config = replace(self.config, count=attrs["fake_items"])

    def label(self, item):
        if item["item"] >= self.config.count:
            raise IndexError(f"item {item['item']} is not among this process's {self.config.count}")
        return super().label(item)


def test_an_item_another_process_adds_between_the_refresh_and_the_pop_runs(tmp_path, monkeypatch):
    """Another process may store a new item (its attributes first, then its trial) after this
    worker refreshed its experiment and before it pops the next trial: the worker runs it.
    It crashed in `label` before the engine refreshed again after the pop."""
    import scaler.study.engine as engine

    popped = engine.pop_trial
    added = []

    def add_then_pop(handle):
        if handle.study.user_attrs["fake_items"] == 2 and count_finished(handle) == 2:
            handle.study.set_user_attr("fake_items", 3)  # what the other process does, in its order
            handle.study.enqueue_trial({"item": 2}, user_attrs={"item": 2})
            added.append(2)
        return popped(handle)

    monkeypatch.setattr(engine, "pop_trial", add_then_pop)
    with folder_lock(tmp_path / "grown"):
        handle = open_study(GrowingExperiment, FakeConfig(count=2), folder=tmp_path / "grown", name="grown")
        reconcile(handle)
        assert work(handle, handle.experiment.prepare(CPU), CPU) == 3
    assert added == [2] and states(handle) == {0: State.COMPLETE, 1: State.COMPLETE, 2: State.COMPLETE}


def test_the_library_refuses_a_run_with_no_worker_before_touching_the_study(tmp_path):
    folder = tmp_path / "none"
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2))
        with pytest.raises(UsageError, match=r"workers = 0 is not allowed; it must be an integer >= 1"):
            run_study(handle, workers=0, runtime=CPU, retry_failed=False, log=print)
    assert not (folder / "results.csv").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_estimate_knows_whether_the_work_runs_in_this_process(tmp_path, monkeypatch, workers):
    asked = []

    def estimate(self, context, runtime, items, *, in_process=True):
        asked.append(in_process)
        return dict.fromkeys(items, 21.0), "measured by the test"

    monkeypatch.setattr(FakeExperiment, "estimate_seconds", estimate)
    messages: list[str] = []
    folder = tmp_path / "estimated"
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2, seconds=0.0, log=str(tmp_path / "runs.log")))
        run_study(handle, workers=workers, runtime=CPU, retry_failed=False, log=messages.append)
    assert asked == [workers == 1]  # in this process the shapes the estimate timed stay warm
    timing = next(i for i, m in enumerate(messages) if m == "timing the networks for the estimate of the 2 item(s) left")
    assert "estimated" in messages[timing + 1] and "measured by the test" in messages[timing + 1]


def estimated_run(tmp_path: Path, monkeypatch, *, seconds: float, items: int, workers: int, cores: int) -> list[str]:
    """The messages of a study of `items` items that the experiment estimates at `seconds` in
    all, run by `workers` one-thread worker processes on `cores` cores, each process taking
    5 s to start."""
    monkeypatch.setattr(FakeExperiment, "estimate_seconds", lambda self, context, runtime, queued, *, in_process=True: (dict.fromkeys(queued, seconds / len(queued)), "measured"))
    monkeypatch.setattr(runner, "process_age", lambda: 5.0)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    messages: list[str] = []
    folder = tmp_path / "estimated"
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=items, seconds=0.0, log=str(tmp_path / "runs.log")))
        run_study(handle, workers=workers, runtime=CPU, retry_failed=False, log=messages.append, fresh_process=True)
    return messages


def test_worker_processes_are_estimated_by_the_worker_that_ends_last_plus_its_start_up(tmp_path, monkeypatch):
    messages = estimated_run(tmp_path, monkeypatch, seconds=42.0, items=3, workers=2, cores=8)
    # 3 items of 14 s on 2 workers: one trains two (28 s), after starting as this process did (5 s).
    line = next(m for m in messages if "estimated" in m)
    assert "estimated 33 s (measured; each worker starts in ~5 s, as this process did)" in line
    assert runner.parallel_seconds([14.0] * 3, 8, None) == 14.0  # more workers than items: one each
    # unequal items, each to the worker free first: longest first 30 | 20, then 20 and 10 on
    # the second and 10 on the first, ends at 50 s; in table order 10 | 10, then 20 | 20, then
    # 30 ends at 60 s (ceil(5 / 2) items of the mean 18 s read 54 s)
    assert runner.parallel_seconds([30.0, 20.0, 20.0, 10.0, 10.0], 2, None) == 50.0
    assert runner.parallel_seconds([10.0, 10.0, 20.0, 20.0, 30.0], 2, None) == 60.0
    assert math.isnan(runner.parallel_seconds([10.0, math.nan], 2, None))  # one unknown: the whole unknown


def test_workers_beyond_the_cores_are_estimated_as_sharing_them(tmp_path, monkeypatch):
    """4 one-thread workers on 2 cores train 2 items at a time, not 4: the estimate says so."""
    messages = estimated_run(tmp_path, monkeypatch, seconds=40.0, items=4, workers=4, cores=2)
    # 4 items of 10 s, 2 at a time: 20 s, after 4 start-ups of 5 s two at a time (10 s);
    # 4 workers counted as free would read 15 s
    line = next(m for m in messages if "estimated" in m)
    assert "estimated 30 s (measured; the cores train 2 of the 4 workers' items at a time; each worker starts in ~5 s" in line
    assert any(m.startswith("warning: 4 worker(s) x 1 thread(s) on 2 cores") for m in messages)


def test_a_long_lived_caller_counts_no_worker_start_up(tmp_path, monkeypatch):
    monkeypatch.setattr(FakeExperiment, "estimate_seconds", lambda self, context, runtime, items, *, in_process=True: (dict.fromkeys(items, 14.0), "measured"))
    monkeypatch.setattr(runner, "process_age", lambda: 3600.0)  # a notebook open for an hour
    messages: list[str] = []
    folder = tmp_path / "notebook"
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=3, seconds=0.0, log=str(tmp_path / "runs.log")))
        run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=messages.append)
    line = next(m for m in messages if "estimated" in m)
    assert "estimated 28 s (measured)" in line


def test_process_age_counts_from_this_process_start():
    age = runner.process_age()
    assert age is not None and 0.0 < age < 24 * 3600


KILLABLE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fake_experiment import FakeConfig, FakeExperiment
    from scaler.runtime import Runtime
    from scaler.study.create import open_study
    from scaler.study.lock import folder_lock
    from scaler.study.runner import run_study

    folder, log = Path(sys.argv[1]), sys.argv[2]
    config = FakeConfig(count=4, seconds=2.0, log=log)  # 0.5 s: a stall between the look and the kill let the item finish
    with folder_lock(folder):
        handle = open_study(FakeExperiment, config, folder=folder)
        run_study(handle, workers=1, runtime=Runtime(device="cpu", threads=1), retry_failed=False,
                  log=print)
    """
)


def test_sigkill_mid_item_then_resume_runs_every_item_exactly_once(tmp_path):
    log = tmp_path / "runs.log"
    folder = tmp_path / "killed"
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, str(script), str(folder), str(log)], env=env, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        events = log_lines(log)
        if any(e == "finish" for e, _, _ in events) and events[-1][0] == "start":
            break  # one item finished, the next one is mid-work
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = log_lines(log)
    killed_item = before[-1][1]
    assert before[-1][0] == "start"

    subprocess.run([sys.executable, str(script), str(folder), str(log)], env=env, check=True, capture_output=True, timeout=120)
    events = log_lines(log)
    finishes = sorted(i for e, i, _ in events if e == "finish")
    assert finishes == [0, 1, 2, 3]  # every item finished exactly once
    assert [i for e, i, _ in events if e == "start"].count(killed_item) == 2  # the killed one ran again
    frame = pd.read_csv(folder / "results.csv")
    assert set(frame["state"]) == {"complete"} and len(frame) == 4


def test_a_plain_postgresql_url_uses_the_installed_driver(tmp_path, postgres_url):
    """The URL a database shows (postgresql://...) works as it is: SQLAlchemy 2.1 would pick
    psycopg 3, which this project does not install; scaler picks whichever driver is there."""
    plain_url = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    name = unique("plain")
    with folder_lock(tmp_path / name):
        handle = open_fake(tmp_path / name, FakeConfig(count=2), plain_url)
        reconcile(handle)
        assert work(handle, {}, CPU) == 2
    assert set(states(handle).values()) == {State.COMPLETE}


def test_an_error_in_the_parent_stops_its_worker_processes_before_the_lock_is_released(tmp_path, monkeypatch):
    calls = []

    def refresh(self, attrs):
        calls.append(1)
        if len(calls) == 3:  # the parent's watch fails while the workers train
            raise RuntimeError("injected: the parent's watch failed")

    monkeypatch.setattr(FakeExperiment, "refresh", refresh)  # this process only: workers are spawned fresh
    folder = tmp_path / "orphans"
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="injected"):
        with folder_lock(folder):
            handle = open_fake(folder, FakeConfig(count=4, seconds=60.0, log=str(tmp_path / "runs.log")))
            run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=print)
    assert multiprocessing.active_children() == []  # none outlives the lock, nor trains on
    assert time.monotonic() - start < 45  # stopped, not waited for (each item takes 60 s)
    assert all(s is not State.COMPLETE for s in states(handle).values())
    assert not handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))


def test_a_ctrl_c_that_reaches_the_parent_alone_stops_its_workers_at_once(tmp_path, monkeypatch):
    """`kill -INT` of the command's process (not its group): its workers heard nothing, and
    were left training for 30 s before they were sent SIGTERM. Now they are sent it at once,
    and each marks its item interrupted, not dead."""
    log = tmp_path / "runs.log"

    def refresh(self, attrs):
        if len({pid for e, _, pid in log_lines(log) if e == "start"}) == 2:  # both workers train
            raise KeyboardInterrupt

    monkeypatch.setattr(FakeExperiment, "refresh", refresh)  # this process only: workers are spawned fresh
    folder = tmp_path / "stopped"
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=4, seconds=60.0, log=str(log)))
        start = time.monotonic()
        outcome = run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=print)
    assert outcome.interrupted and multiprocessing.active_children() == []
    assert time.monotonic() - start < 20  # stopped at once: not left training for 30 s first, nor waited for (60 s an item)
    trials = handle.study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state is optuna.trial.TrialState.RUNNING]
    stopped = [t for t in trials if t.user_attrs.get("state") == State.INTERRUPTED.value]
    assert len(stopped) == 2 and not [t for t in trials if process_died(t)]  # marked by the workers


def test_a_worker_answers_ctrl_c_and_sigterm_once():
    """The second of a group's Ctrl-C and the parent's SIGTERM would cut short the marking of
    the item the first one stopped."""
    interrupt = signals.interrupt_once()
    with pytest.raises(KeyboardInterrupt):
        interrupt(signal.SIGINT, None)
    assert interrupt(signal.SIGTERM, None) is None and interrupt(signal.SIGINT, None) is None
    with pytest.raises(KeyboardInterrupt):  # each worker its own
        signals.interrupt_once()(signal.SIGTERM, None)


def test_an_item_that_kills_every_worker_fails_after_three_deaths_and_the_rest_train(tmp_path):
    """Local workers killed on one item: it goes behind the others, which train, and after
    MAX_DEATHS deaths it fails with the reason (a round cap once left it, and with three such
    items the healthy ones behind them, untrained on every run)."""
    messages: list[str] = []
    log = tmp_path / "runs.log"
    with folder_lock(tmp_path / "killed"):
        handle = open_fake(tmp_path / "killed", FakeConfig(count=4, kill=(0, 1), log=str(log)))
        run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=messages.append)
        assert states(handle) == {0: State.FAILED, 1: State.FAILED, 2: State.COMPLETE, 3: State.COMPLETE}
        reasons = {r.item["item"]: r.reason for r in records(handle)}
        assert reasons[0] == reasons[1] == ("the process training it ended without a word 3 times (killed, by the out-of-memory "
                                            "killer perhaps: `dmesg` tells; or its machine lost); --retry-failed tries it once more")
        assert sorted(i for e, i, _ in log_lines(log) if e == "start") == [0, 0, 0, 1, 1, 1, 2, 3]
        rounds = [m for m in messages if m.startswith("round ")]
        assert rounds and all(" worker(s) killed; new workers for the " in m for m in rounds), messages
        again: list[str] = []
        run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=again.append)
        assert "2 failed item(s) stay failed (--retry-failed trains them again)" in again
        assert sorted(i for e, i, _ in log_lines(log) if e == "start") == [0, 0, 0, 1, 1, 1, 2, 3]  # nothing ran


def test_an_item_left_running_by_a_dead_command_goes_behind_the_rest_and_fails_at_its_third_death(tmp_path):
    """A whole command killed mid-item (in-process training, the OOM killer): the next run
    takes the items not yet tried first, and an item that killed three runs is failed, not
    tried a fourth time unless --retry-failed."""
    folder = tmp_path / "dead"

    def resumed():
        handle = open_fake(folder, FakeConfig(count=3))
        plan = reconcile(handle)
        set_queue_order(handle, [WorkItem.of(item=i) for i in range(3)])  # table order, as one worker takes them
        return handle, plan

    def popped(handle):
        return item_params(handle.storage.get_trial((trial := pop_trial(handle))._trial_id))["item"], trial

    with folder_lock(folder):
        handle, plan = resumed()
        assert popped(handle)[0] == 0  # its command then dies
    with folder_lock(folder):
        handle, plan = resumed()
        assert plan.interrupted == 1 and len(plan.queued) == 3
        for expected in (1, 2):  # the items not yet tried first
            item, trial = popped(handle)
            assert item == expected and run_trial(handle, trial, {}, CPU, Events()) is State.COMPLETE
        assert popped(handle)[0] == 0  # and its command dies again
    with folder_lock(folder):
        handle, plan = resumed()
        assert plan.queued == [WorkItem.of(item=0)] and popped(handle)[0] == 0  # a third death
    with folder_lock(folder):
        handle, plan = resumed()
        assert (plan.failed, plan.queued, plan.interrupted) == ([WorkItem.of(item=0)], [], 0)
        assert states(handle) == {0: State.FAILED, 1: State.COMPLETE, 2: State.COMPLETE}
        assert reconcile(handle, retry_failed=True).queued == [WorkItem.of(item=0)]
        retried = pop_trial(handle)  # the one more try, stopped by Ctrl-C: resumed by the next run, not failed
        mark_interrupted(handle.storage, retried._trial_id, "interrupted (Ctrl-C or SIGTERM)")
    with folder_lock(folder):
        handle, plan = resumed()
        assert (plan.queued, plan.failed) == ([WorkItem.of(item=0)], []) and states(handle)[0] is State.QUEUED


def test_a_run_killed_while_it_timed_the_networks_leaves_the_next_without_an_estimate(tmp_path, monkeypatch):
    """Timing runs in the command's own process, before any training: a network that kills it
    there (out of memory) would kill every run. A run after such a kill trains without an
    estimate, and one that ends clears the mark."""
    seen = []
    monkeypatch.setattr(FakeExperiment, "estimate_seconds", lambda self, *a, **k: (seen.append(self), ({}, "timed"))[1])
    with folder_lock(tmp_path / "timing"):
        handle = open_fake(tmp_path / "timing", FakeConfig(count=2))
        handle.study.set_user_attr(runner.ATTR_TIMING, True)  # what a run killed while timing leaves
        messages: list[str] = []
        run_study(handle, workers=1, runtime=CPU, retry_failed=False, log=messages.append)
        assert not seen and states(handle) == {0: State.COMPLETE, 1: State.COMPLETE}
        assert "warning: a run was killed while it timed the networks for its estimate; 2 item(s) to train without one" in messages
        assert any(m.endswith("estimated unknown (no estimate: a run was killed while it timed the networks)") for m in messages), messages
        assert handle.study.user_attrs[runner.ATTR_TIMING] is False
    marks = []
    monkeypatch.setattr(FakeExperiment, "estimate_seconds", lambda self, ctx, rt, items, **k: (marks.append(handle.study.user_attrs[runner.ATTR_TIMING]), (dict.fromkeys(items, 1.0), "timed"))[1])
    with folder_lock(tmp_path / "fresh"):
        handle = open_fake(tmp_path / "fresh", FakeConfig(count=1))
        run_study(handle, workers=1, runtime=CPU, retry_failed=False, log=lambda m: None)
        assert marks == [True] and handle.study.user_attrs[runner.ATTR_TIMING] is False  # set while timing, cleared after


def test_rounds_of_workers_killed_before_they_take_an_item_end_after_three(tmp_path):
    """Workers killed as they start (before taking any item) make no progress: three such
    rounds in a row end the run and say so, the items still queued."""
    messages: list[str] = []
    with folder_lock(tmp_path / "doomed"):
        handle = open_fake(tmp_path / "doomed", FakeConfig(count=2, killed_worker=True))
        run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=messages.append)
        assert states(handle) == {0: State.QUEUED, 1: State.QUEUED}
    assert [m.split(":")[0] for m in messages if m.startswith("round ")] == ["round 2", "round 3"]
    assert messages[-1] == "2 item(s) left untrained after 3 rounds of workers that were killed, the last 3 before they took any"


def test_a_worker_stopped_alone_by_sigterm_is_named_not_blamed_on_an_error(tmp_path):
    """A scheduler or an admin that SIGTERMs one worker: the worker marks its item interrupted
    and exits 130. No error was printed, so 'stopped on the error above' was false."""
    messages: list[str] = []
    with folder_lock(tmp_path / "term"):
        handle = open_fake(tmp_path / "term", FakeConfig(count=2, term=(0,)))
        run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=messages.append)
        assert states(handle) == {0: State.QUEUED, 1: State.COMPLETE}  # queued again for the next run
    assert messages[-1].startswith("1 item(s) left untrained: worker(s) scaler-worker-")
    assert messages[-1].endswith(" were stopped by a signal (SIGTERM, SIGHUP or SIGINT); the same command trains them")


def test_workers_that_stop_on_an_error_are_not_started_again(tmp_path, capfd):
    messages: list[str] = []
    with folder_lock(tmp_path / "broken"):
        handle = open_fake(tmp_path / "broken", FakeConfig(count=2, broken_worker=True))
        run_study(handle, workers=2, runtime=CPU, retry_failed=False, log=messages.append)
    assert not any(m.startswith("round ") for m in messages)
    assert messages[-1] == "2 item(s) left untrained: the workers stopped on the error above, which another round would meet again"
    assert capfd.readouterr().err.count("injected: this worker cannot prepare") == 2  # once per worker, one round


def test_a_complete_outcome_without_a_value_is_recorded_as_a_failure(tmp_path):
    with folder_lock(tmp_path / "nan"):
        handle = open_fake(tmp_path / "nan", FakeConfig(count=2, nan=(1,)))
        reconcile(handle)
        work(handle, {}, CPU)
    assert states(handle) == {0: State.COMPLETE, 1: State.FAILED}
    failed = next(t for t in handle.study.trials if t.user_attrs["item"] == 1)
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["reason"] == "the experiment reported complete without a finite objective value (nan)"
    assert reconcile(handle).failed and not reconcile(handle).queued  # the queue agrees with the table


def test_a_name_opened_as_another_kind_of_study_says_so(tmp_path):
    folder = tmp_path / "kinds"
    with folder_lock(folder):
        open_fake(folder, FakeConfig(count=2))
    with folder_lock(folder), pytest.raises(UsageError) as refused:
        open_study(OtherFakeExperiment, FakeConfig(count=2), folder=folder, name="kinds")
    assert str(refused.value) == ("study 'kinds' in study.journal is of kind 'fake', not 'other-fake'; "
                                  "pick a new --name (or resume it with the command that made it)")


@pytest.mark.parametrize(("env", "message"), [
    ({}, None),
    ({"SCALER_HEARTBEAT_SECONDS": "2", "SCALER_GRACE_SECONDS": "5"}, None),
    ({"SCALER_GRACE_SECONDS": "30s"}, "SCALER_GRACE_SECONDS='30s' is not allowed; it must be a whole number of seconds >= 1"),
    ({"SCALER_HEARTBEAT_SECONDS": "0"}, "SCALER_HEARTBEAT_SECONDS='0' is not allowed"),
    ({"SCALER_HEARTBEAT_SECONDS": "10", "SCALER_GRACE_SECONDS": "15"},
     "SCALER_GRACE_SECONDS=15 is not allowed with SCALER_HEARTBEAT_SECONDS=10; the grace must be at least twice the heartbeat"),
])
def test_heartbeat_timing_is_read_when_a_database_is_opened_and_checked(monkeypatch, tmp_path, env, message):
    for name in ("SCALER_HEARTBEAT_SECONDS", "SCALER_GRACE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = f"sqlite:///{tmp_path / 'beats.db'}"
    if message is None:
        storage = storage_module.open_storage(url, create=True)
        expected = (int(env.get("SCALER_HEARTBEAT_SECONDS", 10)), int(env.get("SCALER_GRACE_SECONDS", 30)))
        assert (storage.heartbeat_interval, storage.grace_period) == expected
    else:
        with pytest.raises(UsageError) as refused:
            storage_module.open_storage(url, create=True)
        assert message in str(refused.value)


def test_result_files_are_written_by_one_process_at_a_time(tmp_path, monkeypatch):
    """A search and a worker given its folder each rewrite results.csv and the summary; written
    in turn without a lock, the pair could end as one's table beside the other's summary (a
    mismatch readers report) or an older state after a newer. Each write holds the folder locked
    from reading the study to the summary's rename."""
    from scaler.study import results as study_results

    folder = tmp_path / "s"
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2), f"sqlite:///{tmp_path / 'studies.db'}", name="s")
        reconcile(handle)
        write_outputs(handle)
    held = []
    write = study_results.atomic_write_text

    def checked_write(path, text):
        other = os.open(folder, os.O_RDONLY)  # another open of the folder, as another process has
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(False)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(other)
        write(path, text)

    monkeypatch.setattr(study_results, "atomic_write_text", checked_write)
    write_outputs(handle)
    assert held == [True, True]  # results.csv, then the summary
    other = os.open(folder, os.O_RDONLY)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and released after
    os.close(other)


def test_a_worker_stopped_by_ctrl_c_puts_its_item_back_for_the_workers_still_running(tmp_path, monkeypatch):
    """On a shared storage a worker stopped by Ctrl-C or SIGTERM (a batch scheduler's
    preemption) marks its trial interrupted and enqueues the item again: another worker, or
    the same one run again, trains it (it was left for the search's own command alone)."""
    url, folder = f"sqlite:///{tmp_path / 'studies.db'}", tmp_path / "shared"
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2), url, name="shared")
        reconcile(handle)
        write_outputs(handle)
    assert list(pd.read_csv(folder / "results.csv")["state"]) == ["queued", "queued"]

    def ctrl_c(self, item, context, runtime, reporter):
        raise KeyboardInterrupt

    monkeypatch.setattr(FakeExperiment, "run", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        runner.run_worker(join_study(url, "shared", folder), runtime=CPU, log=print)
    assert list(pd.read_csv(folder / "results.csv")["state"]) == ["queued", "queued"]  # not left running
    handle = join_study(url, "shared", folder)
    failed = handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    assert [t.user_attrs.get("state") for t in failed] == ["interrupted"]  # the interrupted run stays on record
    monkeypatch.undo()
    assert runner.run_worker(join_study(url, "shared", folder), runtime=CPU, log=print) == 2  # a worker run again trains both
    assert list(pd.read_csv(folder / "results.csv")["state"]) == ["complete", "complete"]


def test_a_running_item_is_shown_with_the_epochs_it_has_done(tmp_path):
    """The workers' status line names where an item is: 'in epoch 1' before any epoch is
    reported (it read 'epoch 0'), 'after epoch 2' after two (it read 'in epoch 3', an epoch 3
    of 2 while the last one was evaluated)."""
    folder = tmp_path / "running"
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2))
        reconcile(handle)
        trial = pop_trial(handle)
        frozen = handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))[0]
        label = handle.experiment.label(handle.experiment.item_of(item_params(frozen)))
        assert runner._running(handle) == [f"{label} in epoch 1"]
        for epoch in (1, 2):
            trial.report(0.5, epoch)
        assert runner._running(handle) == [f"{label} after epoch 2"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("when", ["in the pop", "after the pop"])
def test_a_signal_just_as_a_trial_is_taken_leaves_it_interrupted_not_running(tmp_path, monkeypatch, signum, when):
    """A Ctrl-C or SIGTERM that lands between the WAITING -> RUNNING transition and run_trial's
    guard left the trial RUNNING (seen once in CI: a worker stopped by its parent's error as it
    took its first item). The next run then counted it as a death of its item (MAX_DEATHS)."""
    import scaler.study.engine as engine

    popped, refreshed = engine.pop_trial, FakeExperiment.refresh
    sent = []

    def send() -> None:
        if not sent:
            sent.append(signum)
            signal.raise_signal(signum)

    def pop_then_signal(handle):
        trial = popped(handle)
        send()  # the storage holds it RUNNING now
        return trial

    def refresh_then_signal(self, attrs):
        refreshed(self, attrs)
        send()

    if when == "in the pop":
        monkeypatch.setattr(engine, "pop_trial", pop_then_signal)
    else:
        monkeypatch.setattr(FakeExperiment, "refresh", refresh_then_signal)
    previous = signal.signal(signal.SIGTERM, interrupt := signals.interrupt_once())  # as a worker process answers it
    try:
        with folder_lock(tmp_path / "taken"):
            handle = open_fake(tmp_path / "taken", FakeConfig(count=2))
            reconcile(handle)
            with pytest.raises(KeyboardInterrupt):
                work(handle, {}, CPU)
        handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert handlers == (signal.default_int_handler, interrupt)  # held for the pop only, then put back
    assert sent == [signum]
    assert not handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    taken = handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    assert [t.user_attrs["state"] for t in taken] == [State.INTERRUPTED.value]
    assert not process_died(taken[0])  # a stop, not a death


def test_a_signal_inside_the_journal_s_file_lock_waits_for_the_write(tmp_path, monkeypatch):
    """A Ctrl-C that landed in Optuna's lock acquisition, after the lock file was made and
    before the write began, left the lock behind: every later write of the study (the marking
    of the interrupted item too) waited out Optuna's 30 s grace. Held back, it is answered
    once the write is done and the lock released."""
    from optuna.storages.journal._file import JournalFileSymlinkLock

    acquire = JournalFileSymlinkLock.acquire

    def acquire_then_signal(self):
        taken = acquire(self)
        signal.raise_signal(signal.SIGINT)
        return taken

    folder = tmp_path / "locked"
    with folder_lock(folder):
        handle = open_fake(folder, FakeConfig(count=2))
        monkeypatch.setattr(JournalFileSymlinkLock, "acquire", acquire_then_signal)
        with pytest.raises(KeyboardInterrupt):
            handle.study.set_user_attr("written", True)
        monkeypatch.undo()
    assert not (folder / "study.journal.lock").exists()  # Optuna's lock, not left behind
    assert storage_module.open_storage(str(folder / "study.journal")).get_study_user_attrs(handle.study._study_id)["written"] is True
