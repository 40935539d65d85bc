"""What a study's pruner judges an item against: the attempts that speak for items.

Optuna's successive halving (and Hyperband, built on it) ranks a trial's value at a rung
against every trial that ever reached that rung, whatever became of it. An item interrupted
after a rung and trained again stood there twice (the same network, the same seed), so a
resumed search pruned what the same search never stopped would have kept. Trials that ended
failed (interrupted, lost to a dead process, dropped as a duplicate, or failed) are hidden from
the pruner: each rung holds the items that finished or are training.
"""

from __future__ import annotations

import copy
from collections.abc import Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState


class _WithoutFailedTrials:
    """A storage read without its failed trials; every other call goes to the storage."""

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self._storage = storage

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        trials = self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        return [trial for trial in trials if trial.state != TrialState.FAIL]


class IgnoreFailedTrials(optuna.pruners.BasePruner):
    """`pruner`, shown the study without its failed trials (see the module's docstring)."""

    def __init__(self, pruner: optuna.pruners.BasePruner) -> None:
        self.pruner = pruner

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        view = copy.copy(study)  # the same study: name, id, direction; reads through the filter
        view._storage = _WithoutFailedTrials(study._storage)
        return self.pruner.prune(view, trial)
