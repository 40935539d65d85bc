"""The study engine: one Optuna study per experiment, one trial per run of a work item.

How a study stays exactly-once and resumable, whatever its experiment:

* Every work item is enqueued as a WAITING trial with the item's parameters, and workers pop
  WAITING trials with the storage's atomic WAITING -> RUNNING transition; no sampler ever
  chooses. (Optuna's grid sampler alone can hand the same point to two workers near the end of
  a study; the queue cannot.)
* Before workers start, `reconcile` looks at every item's trials: finished items are left
  alone; a trial left RUNNING by a process that died (journal file: on restart, since the
  folder lock proves nobody else runs it; RDB: by heartbeat) or stopped by Ctrl-C is marked
  INTERRUPTED and its item enqueued again; failed items are enqueued again only on request.
* A trial popped for an item that is already finished (two reconcilers at once) is dropped
  as a DUPLICATE without running.
* The results are derived from the trials, one record per item, and written atomically
  after every finished item.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
import warnings
import re
from dataclasses import dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch
from optuna.trial import FrozenTrial, TrialState

from scaler.errors import RunError, UsageError
from scaler.files import atomic_write_text, environment_summary
from scaler.runtime import Runtime
from scaler.states import State
from scaler.study.experiment import (
    Events,
    Experiment,
    ExperimentConfig,
    Outcome,
    Record,
    WorkItem,
    experiment_class,
    fingerprint,
    kind_name,
)
from scaler.study.storage import (
    HEARTBEAT_SECONDS,
    JOURNAL_NAME,
    is_url,
    item_params,
    mask_url,
    open_storage,
)

RESULTS_NAME = "results.csv"
# A study name is one path component: it names the folder under --root and the stored study.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
ATTR_KIND, ATTR_CONFIG, ATTR_FINGERPRINT = "scaler_kind", "scaler_config", "scaler_fingerprint"
# Studies written before kinds were recorded are all compound searches.
LEGACY_KIND = "search"

optuna.logging.set_verbosity(optuna.logging.WARNING)

# How an outcome is told to Optuna: scored outcomes carry the objective.
_OPTUNA_STATE = {State.COMPLETE: TrialState.COMPLETE, State.TIMEOUT: TrialState.COMPLETE, State.PRUNED: TrialState.PRUNED}
# Which trial speaks for an item: complete > pruned > running > queued > failed.
_PREFERENCE = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.WAITING: 3, TrialState.FAIL: 4}


@dataclass
class StudyHandle:
    """An open study: its Optuna study, experiment, name and (locally) its folder. `notes`
    are lines for the user about what opening it found (e.g. a summary rebuilt)."""

    study: optuna.Study
    experiment: Experiment
    name: str
    folder: Path | None
    storage_url: str
    exclusive: bool = False  # a journal we hold the folder lock for: RUNNING trials are stale
    notes: list[str] = field(default_factory=list)

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        """The study's own storage object. Optuna wraps an RDB storage in a cache; popping
        and updating trials through any other object would bypass (and confuse) it."""
        return self.study._storage

    @property
    def study_id(self) -> int:
        return self.storage.get_study_id_from_name(self.name)

    @property
    def uses_heartbeat(self) -> bool:
        return is_url(self.storage_url)


# ---------------------------------------------------------------------------------------------
# Creating and joining


def _load(storage: optuna.storages.BaseStorage, name: str, experiment: Experiment) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(0), pruner=experiment.pruner())


def validate_name(name: str) -> None:
    """UsageError unless `name` is one safe path component (letters, digits, . _ + -)."""
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise UsageError(
            f"name {name!r} is not allowed; use 1-128 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit (one folder name, no path)",
            param="name",
        )


def storage_label(storage_url: str) -> str:
    """How a summary records where its study lives: the journal's file name, or the URL
    without its password."""
    return mask_url(storage_url) if is_url(storage_url) else JOURNAL_NAME


class _Damaged(Exception):
    """A summary file that exists but cannot be used; the message says why."""


def read_summary(path: Path) -> dict | None:
    """A study folder's JSON summary, None when absent; _Damaged when unreadable."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _Damaged(f"{path} is not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), str):
        raise _Damaged(f"{path} is not a scaler summary (no fingerprint)")
    return data


def open_study(
    kind: type[Experiment],
    config: ExperimentConfig,
    *,
    folder: Path,
    storage_url: str | None = None,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> StudyHandle:
    """Create a study of `kind`, or open the existing one of the same name and configuration.

    `settings` are plan options that are not part of the identity (a search's repeats): given
    to `plan` / `restore`, and the experiment's attributes are stored again when they change.

    Call it inside `folder_lock(folder)`. Refuses (UsageError) a name that exists with another
    configuration or another storage, and (RunError) a folder whose summary records a study
    its storage no longer holds: recorded results are never overwritten. Planning
    (`kind.plan`) runs only for a new study.
    """
    config.validate()
    if storage_url is not None and not is_url(storage_url):
        raise UsageError(
            f"storage {storage_url!r} is not a database URL; give one like "
            "postgresql+psycopg2://user:pw@host/db, or leave --storage out for the search folder's journal",
            param="storage",
        )
    name = name or folder.name
    validate_name(name)
    storage_url = storage_url or str(folder / JOURNAL_NAME)
    print_ = fingerprint(config)
    summary_path = folder / kind.summary_name
    notes: list[str] = []
    try:
        previous = read_summary(summary_path)
        damaged = None
    except _Damaged as exc:
        previous, damaged = None, str(exc)
    if previous is not None:
        if previous["fingerprint"] != print_:
            raise UsageError(_clash_message(name, previous.get("config", {}), config.identity()))
        recorded = previous.get("storage")
        if recorded is not None and recorded != storage_label(storage_url):
            raise UsageError(
                f"search {name!r} keeps its study in {recorded}, not {storage_label(storage_url)}; "
                "rerun with the same --storage (or none), or pick a new --name"
            )
    storage = open_storage(storage_url, exclusive=True)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    found = existing.get(name)
    if found is not None and ATTR_FINGERPRINT in found.user_attrs:
        attrs = found.user_attrs
        if attrs.get(ATTR_FINGERPRINT) != print_ or experiment_class(attrs.get(ATTR_KIND, LEGACY_KIND)) is not kind:
            raise UsageError(_clash_message(name, attrs.get(ATTR_CONFIG, {}), config.identity()))
        experiment = kind.restore(config, attrs, **(settings or {}))
        study = _load(storage, name, experiment)
        for key, value in experiment.study_attrs().items():
            if attrs.get(key) != value:
                study.set_user_attr(key, value)
        if damaged:
            notes.append(f"{damaged}; rebuilt from the study in {storage_label(storage_url)}")
    elif found is not None and found.n_trials:
        raise RunError(f"study {name!r} in {mask_url(storage_url)} has trials but no scaler configuration")
    elif previous is not None or damaged:
        what = f"{summary_path} records this search" if previous is not None else damaged
        raise RunError(
            f"{what}, but {storage_label(storage_url)} holds no study {name!r} (missing, emptied or "
            f"replaced); refusing to start over and overwrite recorded results: restore the study's "
            f"storage, or move {folder} away to start a new search"
        )
    else:  # new, or killed between create_study and recording its configuration
        experiment = kind.plan(config, **(settings or {}))
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(0),
            pruner=experiment.pruner(),
            load_if_exists=True,
        )
        study.set_user_attr(ATTR_KIND, kind_name(kind))
        study.set_user_attr(ATTR_CONFIG, config.identity())
        for key, value in experiment.study_attrs().items():
            study.set_user_attr(key, value)
        study.set_user_attr(ATTR_FINGERPRINT, print_)  # last: marks the study complete
    handle = StudyHandle(study, experiment, name, folder, storage_url, exclusive=not is_url(storage_url))
    handle.notes.extend(notes)
    return handle


def join_study(storage_url: str, name: str, folder: Path | None = None) -> StudyHandle:
    """Open an existing study from its database alone (what `scaler worker` does).

    Journal files are not shared this way: a study folder's journal belongs to the one process
    holding the folder's lock (and the worker processes it starts itself).
    """
    storage = open_storage(storage_url)
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name not in summaries:
        known = ", ".join(sorted(summaries)) or "none"
        raise UsageError(f"study {name!r} not found in {mask_url(storage_url)}; studies there: {known}")
    attrs = summaries[name].user_attrs
    if ATTR_FINGERPRINT not in attrs:
        raise UsageError(f"study {name!r} was not created by scaler (or its creation was cut short)")
    kind = experiment_class(attrs.get(ATTR_KIND, LEGACY_KIND))
    experiment = kind.restore(kind.config_from_identity(attrs[ATTR_CONFIG]), attrs)
    return StudyHandle(_load(storage, name, experiment), experiment, name, folder, storage_url)


def _clash_message(name: str, old: dict, new: dict) -> str:
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(old), flat(new)
    diffs = [f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    shown = "; ".join(diffs[:3]) + ("; ..." if len(diffs) > 3 else "")
    return (
        f"search {name!r} already exists with another configuration ({shown}); "
        "rerun with its original options, or pick a new --name"
    )


ATTR_CONTEXT = "scaler_context_fingerprint"


def prepare(handle: StudyHandle, runtime: Runtime) -> Any:
    """The experiment's context for this worker (its data), checked against the data the study
    started with: a changed data set is a changed configuration, so it is refused."""
    context = handle.experiment.prepare(runtime)
    current = handle.experiment.context_fingerprint(context)
    if current is None:
        return context
    recorded = handle.study.user_attrs.get(ATTR_CONTEXT)
    if recorded is None:
        handle.study.set_user_attr(ATTR_CONTEXT, current)
    elif recorded != current:
        raise UsageError(
            f"the data of search {handle.name!r} changed since it started (fingerprint "
            f"{recorded[:12]} -> {current[:12]}: files added, removed or modified); results on "
            "different data cannot be ranked together: restore the data, or pick a new --name"
        )
    return context


# ---------------------------------------------------------------------------------------------
# Trials, items and their states


def trial_state(trial: FrozenTrial | None) -> State:
    """The state a trial stands in (QUEUED for no trial)."""
    if trial is None or trial.state == TrialState.WAITING:
        return State.QUEUED
    if trial.state == TrialState.RUNNING:
        return State.RUNNING
    if trial.state == TrialState.PRUNED:
        return State.PRUNED
    default = State.COMPLETE if trial.state == TrialState.COMPLETE else State.INTERRUPTED
    return State(trial.user_attrs.get("state", default))


def trials_by_item(handle: StudyHandle) -> dict[WorkItem, list[FrozenTrial]]:
    """Every trial of the study grouped by the item it ran; trials of unknown items dropped."""
    known = set(handle.experiment.items())
    groups: dict[WorkItem, list[FrozenTrial]] = {}
    for trial in handle.study.get_trials(deepcopy=False):
        item = handle.experiment.item_of(item_params(trial))
        if item in known:
            groups.setdefault(item, []).append(trial)
    return groups


def representative(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The trial that speaks for an item: complete > pruned > running > queued > failed, the
    latest among equals."""
    if not trials:
        return None
    return min(trials, key=lambda t: (_PREFERENCE.get(t.state, 9), -t.number))


def records(handle: StudyHandle) -> list[Record]:
    """One record per item, in the experiment's order; metrics only from scored trials."""
    groups = trials_by_item(handle)
    out = []
    for item in handle.experiment.items():
        trial = representative(groups.get(item, []))
        state = trial_state(trial)
        attrs = dict(trial.user_attrs) if trial is not None and state.is_scored else {}
        reason = trial.user_attrs.get("reason", "") if trial is not None and state is not State.RUNNING else ""
        out.append(Record(item, state, reason, attrs))
    return out


def count_finished(handle: StudyHandle) -> int:
    """Items that need no more work (failed ones included)."""
    return sum(record.state.is_finished for record in records(handle))


def _mark_interrupted(storage: optuna.storages.BaseStorage, trial_id: int, reason: str) -> None:
    storage.set_trial_user_attr(trial_id, "state", State.INTERRUPTED.value)
    storage.set_trial_user_attr(trial_id, "reason", reason)
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _enqueue(handle: StudyHandle, item: WorkItem) -> None:
    params = item.as_dict()
    handle.study.enqueue_trial(params, user_attrs=params)


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
    interrupted = 0
    if handle.exclusive:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            _mark_interrupted(storage, trial._trial_id, f"the process running it ended mid-{handle.experiment.noun}")
            interrupted += 1
    elif handle.uses_heartbeat:
        fail_stale_trials(study)
    groups = trials_by_item(handle)
    items = handle.experiment.items()
    finished, queued, failed = 0, [], []
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
        if last is None or trial_state(last) is State.INTERRUPTED or retry_failed:
            _enqueue(handle, item)
            queued.append(item)
        else:
            failed.append(item)
    return Plan(len(items), finished, queued, failed, interrupted)


def fail_stale_trials(study: optuna.Study) -> None:
    """RDB storages: fail the trials of workers whose heartbeat stopped (and requeue them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def pop_trial(handle: StudyHandle) -> optuna.trial.Trial | None:
    """Take one WAITING trial for this worker (atomic WAITING -> RUNNING), or None.

    On an RDB storage the first heartbeat is recorded at once: a worker that dies right after
    taking a trial must still leave a trial that goes stale.
    """
    storage = handle.storage
    for frozen in storage.get_all_trials(handle.study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                if handle.uses_heartbeat:
                    storage.record_heartbeat(frozen._trial_id)
                return optuna.trial.Trial(handle.study, frozen._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


# ---------------------------------------------------------------------------------------------
# Running one item


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Heartbeat:
    """Records a trial's heartbeat on an RDB storage from a background thread."""

    def __init__(self, handle: StudyHandle, trial_id: int) -> None:
        self._storage, self._trial_id = handle.storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True) if handle.uses_heartbeat else None

    def _beat(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self._storage.record_heartbeat(self._trial_id)
            self._stop.wait(HEARTBEAT_SECONDS)

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

    def __init__(self, trial: optuna.trial.Trial, events: Events) -> None:
        self._trial, self._events = trial, events

    def report(self, value: float, step: int) -> bool:
        self._trial.report(value, step)
        return self._trial.should_prune()

    def step(self, step: int, total: int, loss: float, images_per_s: float) -> None:
        if self._events.on_step:
            self._events.on_step(step, total, loss, images_per_s)

    def epoch(self, metrics: Any) -> None:
        if self._events.on_epoch:
            self._events.on_epoch(metrics)


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
    """Whether an exception is an allocation failure (CPU allocator, CUDA, MPS)."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "can't allocate memory", "cannot allocate memory"))


def run_trial(handle: StudyHandle, trial: optuna.trial.Trial, context: Any, runtime: Runtime, events: Events) -> State:
    """Run the item a popped trial stands for and record the outcome; returns its state."""
    study, storage, experiment = handle.study, handle.storage, handle.experiment
    params = item_params(storage.get_trial(trial._trial_id))
    item = experiment.item_of(params)
    assert item is not None, "a popped trial always carries its item's parameters"
    _suggest_item(trial, params, experiment)
    done = [
        t for t in trials_by_item(handle).get(item, [])
        if t.number != trial.number and t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]  # fmt: skip
    if done:  # an item enqueued twice (two reconcilers at once): never run it again
        trial.set_user_attr("state", State.DUPLICATE.value)
        trial.set_user_attr("reason", f"already finished in trial {done[0].number}")
        study.tell(trial, state=TrialState.FAIL)
        return State.DUPLICATE
    label = experiment.label(item)
    trial.set_user_attr("worker", worker_id())
    for key, value in item.params:
        trial.set_user_attr(key, value)
    if events.on_start:
        events.on_start(label)
    with _Heartbeat(handle, trial._trial_id):
        try:
            outcome = experiment.run(item, context, runtime, _TrialReporter(trial, events))
        except KeyboardInterrupt:
            _mark_interrupted(storage, trial._trial_id, "interrupted by the user (Ctrl-C)")
            if events.on_finish:
                events.on_finish(label, State.INTERRUPTED, "Ctrl-C")
            raise
        except Exception as exc:  # the item fails; the study goes on
            reason = "out of memory" if is_out_of_memory(exc) else f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            outcome = Outcome(State.FAILED, reason)
    try:
        _record(study, trial, outcome)
        state, reason = outcome.state, outcome.reason
    except optuna.exceptions.UpdateFinishedTrialError:
        # Someone else closed this trial meanwhile (a heartbeat judged it stale): the item is
        # someone else's now, this result is dropped.
        state, reason = State.LOST, "the trial was closed by another process"
    if events.on_finish:
        events.on_finish(label, state, reason)
    return state


def _record(study: optuna.Study, trial: optuna.trial.Trial, outcome: Outcome) -> None:
    for key, value in outcome.attrs.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("state", outcome.state.value)
    trial.set_user_attr("reason", outcome.reason)
    state = _OPTUNA_STATE.get(outcome.state, TrialState.FAIL)
    if state == TrialState.COMPLETE:
        study.tell(trial, outcome.value)
    else:
        study.tell(trial, state=state)


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
    ran, seen = 0, None
    while True:
        if handle.uses_heartbeat:
            fail_stale_trials(handle.study)
        trial = pop_trial(handle)
        if trial is None:
            running = handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if handle.uses_heartbeat and running:
                finished = count_finished(handle)
                if write_results and handle.folder is not None and finished != seen:
                    write_outputs(handle)  # other machines' items finished meanwhile
                seen = finished
                time.sleep(poll_seconds)
                continue
            return ran
        state = run_trial(handle, trial, context, runtime, events)
        ran += state is not State.DUPLICATE
        if write_results and handle.folder is not None:
            write_outputs(handle)


# ---------------------------------------------------------------------------------------------
# Result files


def results_frame(handle: StudyHandle) -> pd.DataFrame:
    """The experiment's ranked table of the study as it stands."""
    return handle.experiment.table(records(handle))


def summary(handle: StudyHandle, frame: pd.DataFrame) -> dict:
    """The JSON summary: name, configuration, storage, environment, and the experiment's own
    fields (best row, counts, seeds)."""
    experiment = handle.experiment
    return {
        "name": handle.name,
        "kind": kind_name(type(experiment)),
        "fingerprint": fingerprint(experiment.config),
        "config": experiment.config.identity(),
        **experiment.summary(frame, records(handle)),
        "states": frame["state"].value_counts().to_dict(),
        "storage": storage_label(handle.storage_url),
        "environment": environment_summary(),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def plain(value: object) -> object:
    """JSON-ready: numpy scalars to Python, non-finite floats to None, recursively."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_outputs(handle: StudyHandle) -> pd.DataFrame:
    """Refresh results.csv and the JSON summary in the study folder, each atomically."""
    assert handle.folder is not None
    frame = results_frame(handle)
    atomic_write_text(handle.folder / RESULTS_NAME, frame.to_csv(index=False))
    text = json.dumps(plain(summary(handle, frame)), indent=2)
    atomic_write_text(handle.folder / handle.experiment.summary_name, text)
    return frame


def read_outputs(folder: Path, summary_name: str, columns: list[str], numeric: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """A study folder's results.csv and JSON summary, checked: expected columns, numbers where
    numbers belong, and a table that agrees with its summary (rows and states). UsageError
    naming the file and the fault otherwise."""
    results, info = folder / RESULTS_NAME, folder / summary_name
    if not results.exists() or not info.exists():
        raise UsageError(f"{folder} is not a search folder (no {RESULTS_NAME} / {summary_name})")
    rewrite = "rerun the study's command (same options) to rewrite it from the study"
    try:
        frame = pd.read_csv(results, converters={"state": str, "reason": str}, keep_default_na=True)
        data = json.loads(info.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{folder} is not a valid search folder: {str(exc).splitlines()[0]}; {rewrite}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{info} is not a scaler summary; {rewrite}")
    missing = [c for c in [*columns, "state"] if c not in frame.columns] + [k for k in ("name", "states") if k not in data]
    if missing:
        raise UsageError(f"{folder} is not a valid search folder: missing {', '.join(missing)}")
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column].notna() & values.isna()
        if bad.any():
            row = int(bad.idxmax())
            raise UsageError(
                f"{results} line {row + 2}, column {column}: {frame[column][row]!r} is not a number; {rewrite}"
            )
        frame[column] = values
    counts = {str(k): int(v) for k, v in frame["state"].value_counts().items()}
    recorded = {str(k): int(v) for k, v in dict(data["states"]).items()}
    if counts != recorded:
        raise UsageError(
            f"{results} disagrees with {info.name} (table: {_counts(counts)}; summary: {_counts(recorded)}): "
            f"cut short or edited; {rewrite}"
        )
    return frame, data


def _counts(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {s or '(blank)'}" for s, n in sorted(states.items())) or "no rows"
