"""Running a study: this process as the only worker, or N local worker processes; and
`scaler worker`, which joins a study kept in a database from any machine.

The engine pieces (reconcile, work, write_outputs) live in `engine`, `results`; this module
drives them and reports progress to a `Display` the caller gives (the command line's rich bars,
`scaler.cli.progress`), or as log lines without one.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from scaler.errors import DEBUG_ENV, ScalerError, interrupted_by_user
from scaler.runtime import Runtime, check_workers, concurrent_workers, oversubscription
from scaler.states import State
from scaler.study.create import join_study
from scaler.study.engine import Plan, prepare, reconcile, set_queue_order, work, worker_id
from scaler.study.handle import StudyHandle
from scaler.study.results import write_outputs
from scaler.study.signals import answer_as_ctrl_c, interrupt_once
from scaler.study.spawned import worker_entry
from scaler.study.storage import heartbeat_timing
from scaler.study.trials import MAX_DEATHS, count_finished, mark_interrupted, records, requeue_lost, trial_label
from scaler.study.experiment import Events, WorkItem


# Rounds of local workers in a row in which killed workers took no item: a round after the
# first reruns the items of dead workers (each item at most trials.MAX_DEATHS times).
MAX_IDLE_ROUNDS = 3
ATTR_TIMING = "scaler_timing_networks"  # a study's attribute: set while a run times networks for its estimate


class StudyProgress(Protocol):
    """What a front end shows while a study runs: the `Events` of items trained in this
    process, and for worker processes the study's counts."""

    def on_start(self, label: str, epochs: int) -> None: ...

    def on_step(self, step: int, total: int, loss: float, images_per_s: float) -> None: ...

    def on_epoch(self, metrics: Any) -> None: ...

    def on_finish(self, label: str, state: State, reason: str) -> None: ...

    def set_counts(self, done: int, running: str) -> None:
        """Items finished so far, and what the worker processes are running."""
        ...


# Opens a study's progress display for (items in all, items already finished, the items' noun);
# a run without one reports through its log lines.
Display = Callable[[int, int, str], AbstractContextManager[StudyProgress]]


@dataclass(frozen=True)
class RunOutcome:
    """How a run of a study ended: its table, wall time, items finished, whether Ctrl-C."""

    frame: pd.DataFrame
    seconds: float
    finished: int  # work items that need no more work
    total: int  # work items in the study
    interrupted: bool


def _threads_per_worker(workers: int, threads: int | None, log: Callable[[str], None]) -> int | None:
    cores = os.cpu_count() or 1
    per_worker = threads if threads is not None else (None if workers == 1 else max(1, cores // workers))
    warning = oversubscription(workers, per_worker)
    if warning:
        log(warning)
    return per_worker


@contextlib.contextmanager
def _opened(display: Display | None, total: int, done: int, noun: str) -> Iterator[StudyProgress | None]:
    if display is None:
        yield None
    else:
        with display(total, done, noun) as shown:
            yield shown


def duration(seconds: float) -> str:
    """A span of time a reader takes in at once: '48 s' under 5 minutes, else '12.5 min';
    'unknown' when it could not be measured (NaN). For estimates, whose rounding says they
    are approximate."""
    if math.isnan(seconds):
        return "unknown"
    return f"{seconds:.0f} s" if seconds < 300 else f"{seconds / 60:.1f} min"


def _events(bars: StudyProgress | None, log: Callable[[str], None]) -> Events:
    def waiting(labels: list[str]) -> None:  # else a stall of up to the grace, unexplained
        grace = heartbeat_timing()[1]
        log(f"waiting for {', '.join(labels)}, run by another process; an item whose worker stopped is taken back "
            f"{grace} s after its last heartbeat (SCALER_GRACE_SECONDS) and trained here")

    if bars is not None:
        return Events(bars.on_start, bars.on_step, bars.on_epoch, bars.on_finish, waiting)

    def finished(label: str, state: State, reason: str) -> None:
        log(f"{label}: {state}{' (' + reason + ')' if reason else ''}")

    return Events(on_start=lambda label, epochs: log(f"{label}: training"), on_finish=finished, on_wait=waiting)


def _prepare(handle: StudyHandle, runtime: Runtime, log: Callable[[str], None]) -> Any:
    for note in handle.notes:
        log(f"note: {note}")
    context = prepare(handle, runtime)
    for warning in getattr(context, "warnings", ()):
        log(f"warning: {warning}")
    return context


def run_study(
    handle: StudyHandle,
    *,
    workers: int,
    runtime: Runtime,
    retry_failed: bool,
    log: Callable[[str], None],
    display: Display | None = None,
    fresh_process: bool = False,
) -> RunOutcome:
    """Reconcile, estimate, run what is left (in-process or in worker processes), write.
    `log` takes the run's messages; `display`, if given, shows its progress (else `log` does).

    `fresh_process`: this process was started for this run (the command line), so its age when
    the estimate is made is what each worker process repeats (interpreter, imports, study,
    data) and the estimate for workers counts it; a long-lived caller (a notebook, a test)
    leaves it False, and no start-up is counted."""
    check_workers(workers)
    start = time.perf_counter()
    noun = handle.experiment.noun
    plan = reconcile(handle, retry_failed=retry_failed)
    interrupted, prepared = False, False
    try:  # Ctrl-C while the data loads or the networks are timed ends as one during training does
        context = _prepare(handle, runtime, log)
        prepared = True
        write_outputs(handle)
        in_process = workers == 1  # asked for workers, a study keeps them to its last item: one it kills leaves the command standing
        workers, runtime = _announce(handle, plan, context, workers, runtime, log, fresh_process, in_process)
        if plan.queued and in_process:
            with _opened(display, plan.total, plan.total - len(plan.queued), noun) as bars:
                work(handle, context, runtime, _events(bars, log))
        elif plan.queued:
            _run_processes(handle, workers, runtime, log, display)
    except BaseException as exc:
        if not interrupted_by_user(exc):
            raise
        interrupted = True
    finally:  # this run ended, not killed: the next one may time again
        if handle.exclusive and handle.study.user_attrs.get(ATTR_TIMING):
            handle.study.set_user_attr(ATTR_TIMING, False)
    # unprepared (stopped while the data loaded), the experiment lacks what its summary records
    # (the data's fingerprint): the files stay as the last run wrote them
    frame = write_outputs(handle) if prepared else handle.experiment.table(records(handle))
    return RunOutcome(frame, time.perf_counter() - start, count_finished(handle), plan.total, interrupted)


def _announce(handle: StudyHandle, plan: Plan, context: Any, workers: int, runtime: Runtime,
              log: Callable[[str], None], fresh_process: bool, in_process: bool) -> tuple[int, Runtime]:
    """Log what is left and the estimate of its wall time; the workers it takes (no more than
    the items) and their runtime (threads shared out). `in_process`: the items run in this
    process, not in worker processes."""
    experiment, noun = handle.experiment, handle.experiment.noun
    if plan.interrupted:
        log(f"{plan.interrupted} {noun}(s) interrupted last time will be trained again")
    if plan.failed:
        log(f"{len(plan.failed)} failed {noun}(s) stay failed (--retry-failed trains them again)")
    startup = process_age() if fresh_process else None  # what each worker process repeats
    if 0 < len(plan.queued) < workers:  # a worker without an item would only start and stop
        log(f"{len(plan.queued)} {noun}(s) to train: {len(plan.queued)} worker(s), not {workers}")
        workers = len(plan.queued)
    runtime = runtime.with_threads(_threads_per_worker(workers, runtime.threads, log))
    each, how = _estimate(handle, context, runtime, plan.queued, in_process, log)
    seconds = sum(each.values())
    order = longest_first(each) if _side_by_side(handle, workers) else plan.queued
    if plan.queued:  # a finished study shown again writes nothing to its storage
        set_queue_order(handle, order)
    if not in_process and plan.queued:
        at_once = concurrent_workers(workers, runtime.threads, runtime.device)
        # workers that start together share the cores as their trainings do
        seconds = parallel_seconds([each[item] for item in order], at_once,
                                   None if startup is None else startup * workers / at_once)
        if at_once < workers:
            how += f"; the cores train {at_once} of the {workers} workers' items at a time"
        if startup is not None:
            how += f"; each worker starts in ~{startup:.0f} s, as this process did"
    log(
        f"{experiment.kind} {handle.name}: {experiment.describe()}, {plan.finished} already finished, "
        f"{len(plan.queued)} to train on {_data_size(context)}; estimated {duration(seconds)} ({how})"
    )
    return workers, runtime


def _estimate(handle: StudyHandle, context: Any, runtime: Runtime, items: list[WorkItem], in_process: bool,
              log: Callable[[str], None]) -> tuple[dict[WorkItem, float], str]:
    """The experiment's estimate of `items` (`Experiment.estimate_seconds`), which times
    networks in this process, unless a run of this study was killed while it timed them (a
    network too large for the memory, say) and none has ended since: then none, rather than
    die the same way before any training. (`ATTR_TIMING` stays set from a kill to the end of
    the next run, however it ends, when `run_study` clears it.) Studies in a folder's journal
    only, which one command runs at a time."""
    if not items or not handle.exclusive:  # times nothing; a database study may have several commands at once
        return handle.experiment.estimate_seconds(context, runtime, items, in_process=in_process)
    if handle.study.user_attrs.get(ATTR_TIMING):
        log(f"warning: a run was killed while it timed the networks for its estimate; {len(items)} "
            f"{handle.experiment.noun}(s) to train without one")
        return dict.fromkeys(items, math.nan), "no estimate: a run was killed while it timed the networks"
    log(f"timing the networks for the estimate of the {len(items)} {handle.experiment.noun}(s) left")  # seconds on a GPU
    handle.study.set_user_attr(ATTR_TIMING, True)
    try:
        return handle.experiment.estimate_seconds(context, runtime, items, in_process=in_process)
    finally:  # timed, failed or stopped by Ctrl-C: not killed
        handle.study.set_user_attr(ATTR_TIMING, False)


def _side_by_side(handle: StudyHandle, workers: int) -> bool:
    """Whether the items are taken longest first: where several workers train them side by
    side (local worker processes, or a database study that `scaler worker` joins from other
    machines), so that no long item starts last while the others stand idle; and no pruner
    judges an item against those finished before it (successive halving lets the first few at
    each rung through, so the order would decide what is pruned). Otherwise table order: the
    table fills in the order a reader expects."""
    shared = workers > 1 or handle.uses_heartbeat
    return shared and isinstance(handle.experiment.pruner(), optuna.pruners.NopPruner)


def longest_first(seconds: dict[WorkItem, float]) -> list[WorkItem]:
    """The items by their estimated seconds, longest first (unknown ones last; ties in the
    given order)."""
    return sorted(seconds, key=lambda item: -seconds[item] if math.isfinite(seconds[item]) else math.inf)


def parallel_seconds(seconds: list[float], workers: int, startup: float | None) -> float:
    """Wall time of work items of `seconds` each, taken in that order by `workers` worker
    processes that each start in `startup` seconds: each item goes to the worker that is free
    first, and the last to finish ends the run. (Dividing the total by the worker count read
    54% short on one H200: 6 items on 4 workers leave two workers with two each, and each
    worker first imports torch and loads the data; taking the busiest worker's share of items
    of the mean length read at least 4% short for items of unequal length, the longest of which
    table order started last.) NaN when any item's time is unknown."""
    if not seconds:
        return startup or 0.0
    if not all(math.isfinite(s) for s in seconds):
        return math.nan
    free_at = [0.0] * min(workers, len(seconds))
    for item in seconds:
        heapq.heapreplace(free_at, free_at[0] + item)
    return (startup or 0.0) + max(free_at)


def process_age() -> float | None:
    """Seconds since this process started (Linux; None elsewhere)."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started = int(stat.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
            return max(0.0, float(uptime.read().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return None


def _data_size(context: Any) -> str:
    train, val = getattr(context, "train", None), getattr(context, "val", None)
    return f"{len(train)} + {len(val)} images" if train is not None and val is not None else "its data"


def _running(handle: StudyHandle, trials: list[FrozenTrial] | None = None) -> list[str]:
    """What the study's RUNNING `trials` (by default, read now) are doing: item label and 'in
    epoch 1', or 'after epoch N' once N epochs are reported (the next may not exist: 'in epoch
    N+1' named an epoch 2 of 1 while the last was evaluated)."""
    out = []
    for trial in handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if trials is None else trials:
        label = trial_label(handle, trial)
        reported = max(trial.intermediate_values, default=0)
        out.append(f"{label} after epoch {reported}" if reported else f"{label} in epoch 1")
    return out


def worker_process(storage_url: str, name: str, folder: Path | None, runtime: Runtime) -> None:
    """Body of one local worker process (entered through `spawned.worker_entry`): join the
    study and work until the queue is empty.
    SIGTERM (sent by the parent, or to every process by a scheduler) is answered as Ctrl-C,
    once: the item in flight is marked interrupted."""
    interrupt = interrupt_once()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # an ignored Ctrl-C (`nohup`, a background job) stays ignored, as in the parent
        signal.signal(signal.SIGINT, interrupt)
    answer_as_ctrl_c(interrupt)
    try:
        handle = join_study(storage_url, name, folder)
        work(handle, prepare(handle, runtime), runtime, write_results=False)  # the parent writes them
    except BaseException as exc:  # the parent reports an interruption; no traceback per worker
        if interrupted_by_user(exc):
            raise SystemExit(130) from None
        if isinstance(exc, SystemExit):
            raise
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        reason = str(exc) if isinstance(exc, ScalerError) else f"{type(exc).__name__}: {exc}"
        print(f"error: {multiprocessing.current_process().name}: {reason}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code if isinstance(exc, ScalerError) else 1) from None


def _release_items_of_dead(handle: StudyHandle, processes: list[multiprocessing.process.BaseProcess], dead: set[int],
                           log: Callable[[str], None]) -> None:
    """Queue again, and mark interrupted, the item each worker process in `processes` was
    running when a signal ended it (killed, out of memory) and is not yet in `dead`, as soon as
    it is seen dead, and say so: the progress line and the tables stop showing it running, and
    a live worker (or the next round) trains it again. Queued before it is marked, so that a
    live worker never finds nothing to wait for and leaves. A worker that exited with an error
    code said why itself; its item is left to the next round, as before."""
    for process in processes:
        if process.exitcode is None or process.exitcode >= 0 or process.pid in dead:
            continue
        dead.add(process.pid)
        for trial in handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("worker") != worker_id(process.pid):
                continue
            if handle.storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
                continue  # a heartbeat (RDB) released it meanwhile
            requeue_lost(handle.study, trial)
            reason = f"its worker process {process.name} ended (killed by signal {-process.exitcode})"
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                mark_interrupted(handle.storage, trial._trial_id, reason, died=True)
            log(f"warning: {trial_label(handle, trial)}: {reason}; it goes back to the queue and is trained again")


def _run_processes(
    handle: StudyHandle,
    workers: int,
    runtime: Runtime,
    log: Callable[[str], None],
    display: Display | None,
) -> None:
    context = multiprocessing.get_context("spawn")
    total, noun = len(handle.experiment.items()), handle.experiment.noun
    announced = {record.item for record in records(handle) if record.state.is_finished}
    with _opened(display, total, len(announced), noun) as bars:
        finished = _events(bars, log).on_finish
        round_number, idle_rounds, busy_rounds = 1, 0, 0
        while True:
            taken = _taken(handle)
            processes = [
                context.Process(
                    target=worker_entry,  # plain data in, the imports held from Ctrl-C
                    args=(handle.storage_url, handle.name, handle.folder, asdict(runtime.for_worker(i)), os.getpid()),
                    name=f"scaler-worker-{i}",
                )
                for i in range(workers)
            ]
            dead: set[int] = set()
            try:
                for process in processes:
                    process.start()
                last, shown = -1, None
                while any(p.is_alive() for p in processes):
                    _release_items_of_dead(handle, processes, dead, log)
                    handle.experiment.refresh(handle.study.user_attrs)  # e.g. tries another process added
                    done = _say_finished(handle, announced, finished)
                    trials = handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                    running = _running(handle, trials)
                    # The one writer of the folder's files: as items finish, start, or stop with
                    # their worker (a killed worker's item showed running until another finished);
                    # not at every epoch, each a read of the whole study.
                    if (done, [t.number for t in trials]) != shown and handle.folder is not None:
                        write_outputs(handle)
                    if bars is not None:
                        bars.set_counts(done, "running: " + ", ".join(running) if running else "")
                    elif done != last:
                        log(f"{done}/{total} {noun}s finished; running: {', '.join(running) or 'none'}")
                    last, shown = done, (done, [t.number for t in trials])
                    time.sleep(1.0)
                for process in processes:
                    process.join()
            except BaseException:
                _stop(processes)
                raise
            _release_items_of_dead(handle, processes, dead, log)  # those that died after the last look
            done = _say_finished(handle, announced, finished)  # the workers may all have ended between two looks
            if bars is not None:
                bars.set_counts(done, "")
            elif done != last:
                log(f"{done}/{total} {noun}s finished")
            lost = [p.name for p in processes if p.exitcode != 0]
            if lost:
                log(f"warning: worker(s) {', '.join(lost)} ended abnormally")
            if not handle.exclusive:
                return
            plan = reconcile(handle)  # items of dead workers go back in the queue
            if not plan.queued:
                return
            killed = [p for p in processes if p.exitcode < 0]
            if not killed:
                stopped = [p.name for p in processes if p.exitcode == 130]  # SIGTERM, SIGHUP or SIGINT sent to a worker alone
                why = (f"worker(s) {', '.join(stopped)} were stopped by a signal (SIGTERM, SIGHUP or SIGINT); "
                       "the same command trains them" if stopped else "the workers stopped on the error above, "
                       "which another round would meet again")
                log(f"{len(plan.queued)} {noun}(s) left untrained: {why}")
                return
            busy = _taken(handle) > taken
            idle_rounds, busy_rounds = (0, busy_rounds + 1) if busy else (idle_rounds + 1, busy_rounds)
            # the second: a guard; each busy round adds a death to an item, or it would have ended
            if idle_rounds == MAX_IDLE_ROUNDS or busy_rounds > MAX_DEATHS * total:
                idle = f", the last {idle_rounds} before they took any" if idle_rounds else ""
                log(f"{len(plan.queued)} {noun}(s) left untrained after {round_number} rounds of workers that were killed{idle}")
                return
            round_number += 1
            log(f"round {round_number}: {len(killed)} worker(s) killed; new workers for the {len(plan.queued)} {noun}(s) left")


def _say_finished(handle: StudyHandle, announced: set[WorkItem], finished: Callable[[str, State, str], None]) -> int:
    """Say each item that finished since the last look, as a run in this process says it (its
    state, and why where it did not complete), and add it to `announced`; the number of
    items finished. Worker processes draw nothing: without this, a log file (no bars drawn)
    heard nothing of them until the table."""
    now = records(handle)
    for record in now:
        if record.state.is_finished and record.item not in announced:
            announced.add(record.item)
            finished(handle.experiment.label(record.item), record.state, record.reason)
    return sum(record.state.is_finished for record in now)


def _taken(handle: StudyHandle) -> int:
    """How many trials workers have taken from the queue so far (every state but WAITING)."""
    return len(handle.study.get_trials(deepcopy=False, states=tuple(s for s in TrialState if s != TrialState.WAITING)))


def _stop(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """End the worker processes before the Ctrl-C or error that ended the parent's watch goes
    on: the folder's lock is released after this, and no worker may outlive it. Each is sent
    SIGTERM at once, which it answers as Ctrl-C, once (`interrupt_once`: a terminal's Ctrl-C
    may have reached it already, and a Ctrl-C sent to this process alone would otherwise have
    left them training), marking its item interrupted; one still alive after 30 s, or when a
    second Ctrl-C cuts the wait short, is sent SIGKILL."""
    started = [p for p in processes if p.pid is not None]
    try:
        for process in started:
            if process.is_alive():
                process.terminate()
        for process in started:
            process.join(timeout=30)
    finally:
        for process in started:
            if process.is_alive():
                process.kill()
                process.join()


def run_worker(
    handle: StudyHandle,
    *,
    runtime: Runtime,
    log: Callable[[str], None],
    display: Display | None = None,
) -> int:
    """`scaler worker`: run items of a joined study until none are left (progress as in
    `run_study`)."""
    experiment = handle.experiment
    context = _prepare(handle, runtime, log)
    fingerprint = getattr(context, "fingerprint", None) or ""
    log(f"joined {handle.experiment.kind} {handle.name}: {len(experiment.items())} {experiment.noun}s; data {fingerprint[:12]}")
    try:
        with _opened(display, len(experiment.items()), count_finished(handle), experiment.noun) as bars:
            ran = work(handle, context, runtime, _events(bars, log), write_results=handle.folder is not None)
    finally:  # after Ctrl-C too: the folder shows the item interrupted, not running
        if handle.folder is not None:
            write_outputs(handle)
    return ran
