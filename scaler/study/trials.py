"""Trial bookkeeping: which item a trial ran, the state it stands in, which trial speaks for
an item, the records the results are made of, and the deaths of the processes that ran it
(an item is queued again after one, failed after MAX_DEATHS)."""

from __future__ import annotations

import contextlib

import optuna
from optuna.trial import FrozenTrial, TrialState

from scaler.states import State
from scaler.study.experiment import Record, WorkItem
from scaler.study.handle import StudyHandle

# Which trial speaks for an item: complete > pruned > running > queued > failed.
_PREFERENCE = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.WAITING: 3, TrialState.FAIL: 4}


def item_params(trial: FrozenTrial) -> dict:
    """The work item a trial stands for: the parameters it was enqueued (or suggested) with."""
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


def trial_label(handle: StudyHandle, trial: FrozenTrial) -> str:
    """The label of the item a trial runs, for progress lines ('trial N' where it has none)."""
    item = handle.experiment.item_of(item_params(trial))
    return handle.experiment.label(item) if item is not None else f"trial {trial.number}"


REQUEUED_FROM = "requeued_from"  # a trial's attribute: the number of the trial whose process died
DIED = "process_died"  # a trial's attribute: its process died mid-item (killed), not stopped by Ctrl-C
MAX_DEATHS = 3  # an item whose process died this many times is failed, not queued again


def process_died(trial: FrozenTrial) -> bool:
    """Whether the process running `trial` died mid-item (killed: out of memory, SIGKILL, a
    machine gone), as `mark_interrupted(..., died=True)` records it; a trial an RDB storage
    failed for its stale heartbeat counts too: it carries no state of ours, or the ranked one
    its worker wrote as it recorded the outcome too late."""
    if trial.user_attrs.get(DIED):
        return True
    recorded = trial.user_attrs.get("state")
    return trial.state == TrialState.FAIL and (recorded is None or recorded in State._value2member_map_ and State(recorded).is_scored)


def deaths(trials: list[FrozenTrial]) -> int:
    """How many of an item's trials ended with their process dead."""
    return sum(process_died(t) for t in trials)


def requeue_lost(study: optuna.Study, trial: FrozenTrial) -> None:
    """A process died mid-item (the heartbeat callback of RDB storages, and what a parent does
    for a local worker process it sees dead, or a command for the trials a dead run left
    running): put the item back in the queue, behind the items not yet tried
    (`REQUEUED_FROM`). After MAX_DEATHS deaths on it the item is left failed instead: one
    that kills whatever process trains it (a network too large for the memory) would
    otherwise be retried without end (`--retry-failed` tries it once more)."""
    params = item_params(trial)
    if not params:
        return
    earlier = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number != trial.number and item_params(t) == params]
    if 1 + deaths(earlier) < MAX_DEATHS:
        study.enqueue_trial(params, user_attrs={**params, REQUEUED_FROM: trial.number})


def trial_state(trial: FrozenTrial | None) -> State:
    """The state a trial stands in (QUEUED for no trial)."""
    if trial is None or trial.state == TrialState.WAITING:
        return State.QUEUED
    if trial.state == TrialState.RUNNING:
        return State.RUNNING
    if trial.state == TrialState.PRUNED:
        return State.PRUNED
    default = State.COMPLETE if trial.state == TrialState.COMPLETE else State.INTERRUPTED
    recorded = State(trial.user_attrs.get("state", default))
    # A failed trial whose attributes say it ranks was closed by another process (stale) as
    # its worker recorded the outcome: interrupted, as its item is queued again.
    return recorded if recorded.is_scored == (trial.state == TrialState.COMPLETE) else default


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
    """The trial that speaks for an item: complete > pruned > running > queued > failed >
    dropped as a duplicate (its twin speaks: interrupted, it is queued again), the latest
    among equals."""
    if not trials:
        return None
    return min(trials, key=lambda t: (_PREFERENCE.get(t.state, 9), t.user_attrs.get("state") == State.DUPLICATE.value, -t.number))


def item_state(trials: list[FrozenTrial]) -> tuple[State, str]:
    """The state an item stands in, and why, from its trials: its representative's, except
    that an item whose process died MAX_DEATHS times, the last time included (a Ctrl-C'd
    `--retry-failed` try is resumed), has failed (`requeue_lost`)."""
    trial = representative(trials)
    state = trial_state(trial)
    reason = trial.user_attrs.get("reason", "") if trial is not None and state is not State.RUNNING else ""
    if state is State.INTERRUPTED and process_died(trial) and (died := deaths(trials)) >= MAX_DEATHS:  # type: ignore[arg-type]
        return State.FAILED, (f"the process training it ended without a word {died} times (killed, by the out-of-memory "
                              "killer perhaps: `dmesg` tells; or its machine lost); --retry-failed tries it once more")
    return state, reason


def records(handle: StudyHandle) -> list[Record]:
    """One record per item, in the experiment's order; metrics only from scored trials."""
    groups = trials_by_item(handle)
    out = []
    for item in handle.experiment.items():
        trials = groups.get(item, [])
        trial = representative(trials)
        state, reason = item_state(trials)
        attrs = dict(trial.user_attrs) if trial is not None and state.is_scored else {}
        out.append(Record(item, state, reason, attrs))
    return out


def count_finished(handle: StudyHandle) -> int:
    """Items that need no more work (failed ones included)."""
    return sum(record.state.is_finished for record in records(handle))


def mark_interrupted(storage: optuna.storages.BaseStorage, trial_id: int, reason: str, *, died: bool = False) -> None:
    """Record a trial as interrupted (with `reason`) and end it as FAIL, so that the next run
    trains its item again; `died`: its process died (killed), which MAX_DEATHS bounds, rather
    than stopped on a Ctrl-C."""
    storage.set_trial_user_attr(trial_id, "state", State.INTERRUPTED.value)
    storage.set_trial_user_attr(trial_id, "reason", reason)
    if died:
        storage.set_trial_user_attr(trial_id, DIED, True)
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
