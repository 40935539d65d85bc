"""The study engine: one Optuna study per experiment, one trial per run of a work item.

How a study stays exactly-once and resumable, whatever its experiment:

* Every work item is enqueued as a WAITING trial with the item's parameters, and workers pop
  WAITING trials with the storage's atomic WAITING -> RUNNING transition; no sampler ever
  chooses. (Optuna's grid sampler alone can hand the same point to two workers near the end of
  a study; the queue cannot.) They take them in the order the runner set (`set_queue_order`:
  the longest first where several workers share them, else table order; `runner._side_by_side`),
  an item whose worker died after those not yet tried.
* Before workers start, `reconcile` looks at every item's trials: finished items are left
  alone; a trial left RUNNING by a process that died (journal file: on restart, since the
  folder lock proves nobody else runs it; RDB: by heartbeat) or stopped by Ctrl-C is marked
  INTERRUPTED and its item enqueued again (one whose process died: behind the items not yet
  tried, and after `trials.MAX_DEATHS` deaths failed instead); failed items are enqueued
  again only on request.
* A trial popped for an item that is already finished, or that an earlier trial runs or waits
  to run (an item enqueued twice: two reconcilers at once), is dropped as a DUPLICATE without
  running (`_twin`).
* The results are derived from the trials, one record per item, and written atomically
  as every item starts and after it finishes (`results.py`).

Creating and joining a study is `create.py`; trial bookkeeping `trials.py`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from scaler.errors import RunError, UsageError, interrupted_by_user
from scaler.runtime import Runtime
from scaler.states import State
from scaler.study.experiment import Events, Experiment, Outcome, WorkItem
from scaler.study.handle import StudyHandle
from scaler.study.results import write_outputs
from scaler.study.signals import signals_held
from scaler.study.storage import heartbeat_timing
from scaler.study.trials import REQUEUED_FROM, count_finished, item_params, item_state, mark_interrupted, process_died, representative, trial_label, trials_by_item

# How an outcome is told to Optuna: scored outcomes carry the objective.
_OPTUNA_STATE = {State.COMPLETE: TrialState.COMPLETE, State.TIMEOUT: TrialState.COMPLETE, State.PRUNED: TrialState.PRUNED}


ATTR_CONTEXT = "scaler_context_fingerprint"
ATTR_ORDER = "scaler_queue_order"  # the items in the order workers take them


def prepare(handle: StudyHandle, runtime: Runtime) -> Any:
    """The experiment's context for this worker (its data), checked against the data the study
    started with: a changed data set is a changed configuration, so it is refused, saying what
    changed where the study kept it (`Experiment.keep_context`). Checked before it is loaded
    where the experiment can tell its fingerprint then (an image folder is refused before its
    images are decoded), and in any case once it is."""

    def check(context: Any, record: bool = True) -> None:
        current = handle.experiment.context_fingerprint(context)
        if current is None:
            return
        recorded = handle.study.user_attrs.get(ATTR_CONTEXT) or _summary_data_fingerprint(handle)
        if handle.study.user_attrs.get(ATTR_CONTEXT) is None and recorded in (None, current):
            if record:  # only data that loaded: fixing data that failed to decode is no change
                handle.study.set_user_attr(ATTR_CONTEXT, current)
        elif recorded != current:
            change = handle.experiment.context_change(context, handle.folder) or "files added, removed or modified"
            raise UsageError(
                f"the data of study {handle.name!r} changed since it started (fingerprint {recorded[:12]} -> "
                f"{current[:12]}: {change}); results on different data cannot be ranked together: restore the "
                "data (or the scaler it was rendered with), or pick a new --name"
            )

    ahead = functools.partial(check, record=False)
    takes_check = "check" in inspect.signature(handle.experiment.prepare).parameters  # an experiment of before may not
    context = handle.experiment.prepare(runtime, check=ahead) if takes_check else handle.experiment.prepare(runtime)
    check(context)
    if handle.folder is not None and handle.experiment.context_fingerprint(context) is not None:
        handle.experiment.keep_context(context, handle.folder)
    return context


def _summary_data_fingerprint(handle: StudyHandle) -> str | None:
    """The data fingerprint a study's summary file recorded, for studies begun before the
    study kept it (scaler 0.1 searches): without it such a folder would resume on whatever
    data there is now, e.g. the synthetic set of a newer format."""
    if handle.folder is None:
        return None
    try:
        data = json.loads((handle.folder / handle.experiment.summary_name).read_text())
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    value = data.get("dataset_fingerprint") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------------------------
# The queue


def _enqueue(handle: StudyHandle, item: WorkItem, after: FrozenTrial | None = None) -> None:
    """Queue `item`; one whose trial `after` died with its process goes behind the items not
    yet tried (`_queue_position`)."""
    params = item.as_dict()
    died = {REQUEUED_FROM: after.number} if after is not None and process_died(after) else {}
    handle.study.enqueue_trial(params, user_attrs={**params, **died})


def set_queue_order(handle: StudyHandle, items: list[WorkItem]) -> None:
    """The order in which workers take the items (`pop_trial`), for every worker of the study,
    those that join from other machines included; items not named come after them."""
    handle.study.set_user_attr(ATTR_ORDER, [item.as_dict() for item in items])


def _queue_position(handle: StudyHandle) -> Callable[[FrozenTrial], tuple[bool, int]]:
    """A WAITING trial's place in the queue order (`set_queue_order`), an item queued again
    because its worker died (`requeue_lost`) after every item not yet tried: an item that
    kills whoever trains it (out of memory) would otherwise take each worker in turn, round
    after round, while the items behind it never ran."""
    order = {WorkItem.of(**params): i for i, params in enumerate(handle.study.user_attrs.get(ATTR_ORDER) or [])}
    return lambda trial: (REQUEUED_FROM in trial.user_attrs, order.get(handle.experiment.item_of(item_params(trial)), len(order)))


@dataclass(frozen=True)
class Plan:
    """What a run of the study will do: items finished, queued, failed (not retried)."""

    total: int
    finished: int
    queued: list[WorkItem]
    failed: list[WorkItem]
    interrupted: int


def reconcile(handle: StudyHandle, *, retry_failed: bool = False) -> Plan:
    """Mark stale trials interrupted and enqueue every item that still needs work."""
    storage, study = handle.storage, handle.study
    stale = []
    if handle.exclusive:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            mark_interrupted(storage, trial._trial_id, f"the process running it ended mid-{handle.experiment.noun}", died=True)
            stale.append(handle.experiment.item_of(item_params(trial)))
    elif handle.uses_heartbeat:
        fail_stale_trials(study)
    groups = trials_by_item(handle)
    items = handle.experiment.items()
    finished, queued, failed, interrupted = 0, [], [], set(stale)  # stale: counted only where queued again below
    for item in items:
        trials = groups.get(item, [])
        states = {t.state for t in trials}
        if states & {TrialState.COMPLETE, TrialState.PRUNED}:
            finished += 1
            continue
        if states & {TrialState.RUNNING, TrialState.WAITING}:
            queued.append(item)
            continue
        last = representative(trials)
        again = last is not None and item_state(trials)[0] is State.INTERRUPTED  # by a death, Ctrl-C, SIGTERM or SIGHUP
        if again:
            interrupted.add(item)
        if last is None or again or retry_failed:
            _enqueue(handle, item, after=last)
            queued.append(item)
        else:
            failed.append(item)
    return Plan(len(items), finished, queued, failed, sum(item in interrupted for item in queued))


def fail_stale_trials(study: optuna.Study) -> None:
    """RDB storages: fail the trials of workers whose heartbeat stopped (and requeue them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def pop_trial(handle: StudyHandle) -> optuna.trial.Trial | None:
    """Take one WAITING trial for this worker (atomic WAITING -> RUNNING), or None.

    On an RDB storage a heartbeat is recorded before the trial is taken, and again once it is:
    Optuna never judges a RUNNING trial without a heartbeat stale, so a worker killed between
    the switch and its first heartbeat left a trial RUNNING forever, and every worker waiting
    on it; and a switch that waited long for the database's lock must not start out stale.
    (A heartbeat on a trial another worker takes is that worker's first: it goes stale as the
    other's would.)
    """
    storage = handle.storage
    waiting = storage.get_all_trials(handle.study_id, deepcopy=False, states=(TrialState.WAITING,))
    for frozen in sorted(waiting, key=_queue_position(handle)):  # stable: ties in enqueue order
        try:
            if handle.uses_heartbeat:
                storage.record_heartbeat(frozen._trial_id)
            if storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                if handle.uses_heartbeat:
                    storage.record_heartbeat(frozen._trial_id)
                return optuna.trial.Trial(handle.study, frozen._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


# ---------------------------------------------------------------------------------------------
# Running one item


def worker_id(pid: int | None = None) -> str:
    """What a trial records as its worker: host and process id (this process's by default)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


class _Heartbeat:
    """Records a trial's heartbeat on an RDB storage from a background thread."""

    def __init__(self, handle: StudyHandle, trial_id: int) -> None:
        self._storage, self._trial_id = handle.storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True) if handle.uses_heartbeat else None
        self._seconds = heartbeat_timing()[0] if handle.uses_heartbeat else 0

    def _beat(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self._storage.record_heartbeat(self._trial_id)
            self._stop.wait(self._seconds)

    def __enter__(self) -> _Heartbeat:
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


class _TrialReporter:
    """The `Reporter` a running item gets: intermediate values to the pruner, progress out."""

    def __init__(self, trial: optuna.trial.Trial, events: Events, label: str) -> None:
        self._trial, self._events, self._label = trial, events, label

    def report(self, value: float, step: int) -> bool:
        try:
            self._trial.report(value, step)
            return self._trial.should_prune()
        except Exception as exc:
            if not _is_storage_error(exc):
                raise
            raise StorageFailed(f"the study's storage failed as {self._label} reported its epoch {step} ({_error_text(exc)}); "
                                "it goes back to the queue: run the same command again") from exc

    def step(self, step: int, total: int, loss: float, images_per_s: float) -> None:
        if self._events.on_step:
            with _not_the_items():
                self._events.on_step(step, total, loss, images_per_s)

    def epoch(self, metrics: Any) -> None:
        if self._events.on_epoch:
            with _not_the_items():
                self._events.on_epoch(metrics)


class _DisplayFailed(Exception):
    """The display failed inside an item's run (a closed pipe, for a caller without entry's
    reader-safe streams): carried out of the experiment's code, which would record it as the
    item's failure, and raised again as itself."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def _not_the_items() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise _DisplayFailed(exc) from exc


class StorageFailed(RunError):
    """The storage failed while a running item reported to it: not the item's failure (which
    stays failed until --retry-failed), so the worker stops and the item is interrupted."""


def _is_storage_error(exc: Exception) -> bool:
    """Whether `exc` came from the study's storage: a database (a lock not granted in time, a
    dropped connection) or the journal's file."""
    if isinstance(exc, (optuna.exceptions.StorageInternalError, OSError)):
        return True
    database_errors = sys.modules.get("sqlalchemy.exc")  # imported with any database storage
    return database_errors is not None and isinstance(exc, database_errors.SQLAlchemyError)


def _suggest_item(trial: optuna.trial.Trial, fixed: dict, experiment: Experiment) -> None:
    """Record the item's parameters (`fixed` by the enqueue) as the trial's params."""
    for name, dist in experiment.distributions().items():
        if name not in fixed:
            continue
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, optuna.distributions.IntDistribution):
            trial.suggest_int(name, dist.low, dist.high)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is an allocation failure (CPU allocator, CUDA, MPS). torch is read
    where the work imported it: the engine does not need it."""
    torch = sys.modules.get("torch")
    if isinstance(exc, MemoryError) or torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "can't allocate memory", "cannot allocate memory"))


def run_trial(
    handle: StudyHandle,
    trial: optuna.trial.Trial,
    context: Any,
    runtime: Runtime,
    events: Events,
    refresh_files: Callable[[], None] | None = None,
) -> State:
    """Run the item a popped trial stands for and record the outcome; returns its state.
    `refresh_files` (which writes the result files) runs once the item has started, so that
    the files show it running, and once its outcome is stored, before the display hears of it
    (a line that says 'complete' is never ahead of the files)."""
    study, storage, experiment = handle.study, handle.storage, handle.experiment
    popped = storage.get_trial(trial._trial_id)
    params = item_params(popped)
    item = experiment.item_of(params)
    assert item is not None, "a popped trial always carries its item's parameters"
    _suggest_item(trial, params, experiment)
    if twin := _twin(trials_by_item(handle).get(item, []), popped):
        trial.set_user_attr("state", State.DUPLICATE.value)
        trial.set_user_attr("reason", twin)
        study.tell(trial, state=TrialState.FAIL)
        if refresh_files:
            refresh_files()
        return State.DUPLICATE
    label = experiment.label(item)
    try:  # from here on, a Ctrl-C anywhere leaves the trial marked interrupted
        trial.set_user_attr("worker", worker_id())
        for key, value in item.params:
            trial.set_user_attr(key, value)
        if refresh_files:
            refresh_files()
        with _Heartbeat(handle, trial._trial_id):
            try:  # the experiment's code, its epoch count included: an error fails the item alone
                epochs = experiment.epochs(context, item)
            except Exception as exc:
                outcome = _failed(exc)
            else:
                if events.on_start:  # the display's code: an error there is not the item's
                    events.on_start(label, epochs)
                try:
                    outcome = experiment.run(item, context, runtime, _TrialReporter(trial, events, label))
                except StorageFailed:
                    raise
                except _DisplayFailed as failed:
                    raise failed.error from None
                except Exception as exc:
                    outcome = _failed(exc)
    except BaseException as exc:
        if not interrupted_by_user(exc):
            raise
        _stopped(handle, trial._trial_id, item)
        if events.on_finish:
            events.on_finish(label, State.INTERRUPTED, "Ctrl-C, SIGTERM or SIGHUP")
        raise KeyboardInterrupt from exc
    outcome = _checked(outcome)
    try:
        with signals_held():  # a finished training is kept: a Ctrl-C between the writes lost it (interrupted)
            _record(study, storage, trial, outcome)
        state, reason = outcome.state, outcome.reason
    except optuna.exceptions.UpdateFinishedTrialError:
        # Someone else closed this trial meanwhile (a heartbeat judged it stale): the item is
        # someone else's now, this result is dropped.
        state, reason = State.LOST, "the trial was closed by another process"
    if refresh_files:
        refresh_files()
    if events.on_finish:
        events.on_finish(label, state, reason)
    return state


def _twin(trials: list[FrozenTrial], popped: FrozenTrial) -> str | None:
    """Why the item of a trial just popped must not run, or None. An item enqueued twice (two
    reconcilers at once; a dead worker's trial requeued by its parent and by a heartbeat
    check) is run by its earliest trial alone: one already finished, or an earlier one running
    or waiting (it runs, or will). The trial this one was requeued from (`REQUEUED_FROM`,
    still running until its dead worker is marked) is no twin. Deterministic, so that two
    workers popping twins at once never both drop the item."""
    others = [t for t in trials if t.number != popped.number]
    if done := [t for t in others if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]:
        return f"already finished in trial {done[0].number}"
    lost = popped.user_attrs.get(REQUEUED_FROM)
    earlier = [t for t in others if t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < popped.number and t.number != lost]
    if earlier:
        return f"queued twice: trial {earlier[0].number} {'runs' if earlier[0].state == TrialState.RUNNING else 'waits to run'} it"
    return None


def _failed(exc: Exception) -> Outcome:
    """An item's exception as its FAILED outcome (the study goes on); an interrupt propagates."""
    if interrupted_by_user(exc):
        raise exc
    return Outcome(State.FAILED, "out of memory" if is_out_of_memory(exc) else _error_text(exc))


def _error_text(exc: BaseException) -> str:
    """An exception as a reason: its type and the first line of its message, cut at 300."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


INTERRUPTED_REASON = "interrupted (Ctrl-C, SIGTERM or SIGHUP)"


def _stopped(handle: StudyHandle, trial_id: int, item: WorkItem | None, reason: str = INTERRUPTED_REASON) -> None:
    """Mark a trial stopped by Ctrl-C, SIGTERM or SIGHUP (or `reason`) interrupted. In a shared study (a database)
    its item goes back to the queue for the workers still running; a folder's own journal is
    resumed by its command. With signals held: the marking is several writes, and a second
    Ctrl-C between them left the trial RUNNING, which the next run counts as a death."""
    with signals_held():
        mark_interrupted(handle.storage, trial_id, reason)
        if handle.uses_heartbeat and item is not None:
            with contextlib.suppress(Exception):
                _enqueue(handle, item)


def _checked(outcome: Outcome) -> Outcome:
    """`outcome`, or a failure where a state that ranks (complete, timeout) came without a
    finite objective: Optuna would store such a trial as failed under a 'complete' label, and
    the table and the queue would disagree about it."""
    value = outcome.value
    if outcome.state not in _OPTUNA_STATE or outcome.state is State.PRUNED:
        return outcome
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return outcome
    reason = f"the experiment reported {outcome.state.value} without a finite objective value ({value!r})"
    return Outcome(State.FAILED, reason, None, outcome.attrs)


def _record(study: optuna.Study, storage: optuna.storages.BaseStorage, trial: optuna.trial.Trial, outcome: Outcome) -> None:
    """Store an item's outcome on its trial: the attributes, then Optuna's state. A trial that
    another process closed meanwhile (its heartbeat judged stale) raises
    UpdateFinishedTrialError, however far the writes got."""
    for key, value in outcome.attrs.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("state", outcome.state.value)
    trial.set_user_attr("reason", outcome.reason)
    state = _OPTUNA_STATE.get(outcome.state, TrialState.FAIL)
    try:
        if state == TrialState.COMPLETE:
            study.tell(trial, outcome.value)
        else:
            study.tell(trial, state=state)
    except ValueError:  # Optuna's "Cannot tell a FAIL trial": closed (stale) after the last attribute
        if storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
            raise
        raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial.number} was closed by another process") from None


def work(
    handle: StudyHandle,
    context: Any,
    runtime: Runtime,
    events: Events | None = None,
    *,
    write_results: bool = True,
    poll_seconds: float = 2.0,
) -> int:
    """Run items until none is left; returns how many this worker ran.

    On an RDB storage a worker also waits while other workers' items run, so that an item
    whose worker dies (no heartbeat) is picked up again.
    """
    events = events or Events()
    ran, seen, waited_on = 0, None, None
    writes = write_results and handle.folder is not None
    while True:
        if handle.uses_heartbeat:
            fail_stale_trials(handle.study)
        trial = None
        try:
            with signals_held():  # the pop and `trial` as one step: a signal waits for it
                trial = pop_trial(handle)
            # After the pop, not before: the item may be one another process added (a calibration's
            # try, more repeats) since this worker last looked; its attributes are set before its
            # trials are enqueued, so the refreshed experiment knows it.
            handle.experiment.refresh(handle.study.user_attrs)
            if trial is None:
                running = handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if handle.uses_heartbeat and running:
                    finished = count_finished(handle)
                    if writes and finished != seen:
                        write_outputs(handle)  # other machines' items finished meanwhile
                    seen = finished
                    if events.on_wait and waited_on != (numbers := [t.number for t in running]):
                        events.on_wait([trial_label(handle, t) for t in running])  # a dead worker's item waits out its grace
                        waited_on = numbers
                    time.sleep(poll_seconds)
                    continue
                return ran
            state = run_trial(handle, trial, context, runtime, events, refresh_files=(lambda: write_outputs(handle)) if writes else None)
        except optuna.exceptions.UpdateFinishedTrialError:
            if trial is None:
                raise
            continue  # closed by another process (judged stale) before this one ran it: queued again there
        except BaseException as exc:
            by_user = interrupted_by_user(exc)
            if trial is not None:
                with contextlib.suppress(Exception):  # the exception goes on; `reconcile` finds what this left
                    frozen = handle.storage.get_trial(trial._trial_id)
                    # Stopped before run_trial's guard, or by an error that is not the item's (the
                    # display, the storage, a refresh): interrupted, not a death of its process,
                    # which MAX_DEATHS counts against the item.
                    if frozen.state == TrialState.RUNNING:
                        reason = INTERRUPTED_REASON if by_user else f"stopped by an error of its worker ({_error_text(exc)})"
                        _stopped(handle, frozen._trial_id, handle.experiment.item_of(item_params(frozen)), reason)
            if writes and isinstance(exc, Exception) and not by_user:
                # The display failing while an item runs (a closed pipe, for a caller without
                # entry's reader-safe streams): the files still show what the journal holds. A
                # Ctrl-C or SIGTERM (whatever clean-up error it surfaces as) is left to its own
                # paths, which write the files.
                with contextlib.suppress(Exception):
                    write_outputs(handle)
            raise
        ran += state is not State.DUPLICATE
