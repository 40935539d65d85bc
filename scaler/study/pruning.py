"""What a study's pruner judges an item against: one value per item at each rung.

Optuna's successive halving (and Hyperband, built on it) ranks a trial's value at a rung
against the value of every trial that ever reached that rung. An item interrupted after a rung
and trained again stood there twice (the same network, the same seed), so a resumed search
pruned what the same search never stopped would have kept. Here each item counts once at a
rung, with its latest attempt that reached it: an interrupted attempt speaks for its item
until the item is trained again (as the item would have, never stopped), and the item being
judged speaks only through the value it reports now. Hyperband's brackets are apart: it puts a
trial in a bracket by its number, so an item trained again may join another bracket, and its
interrupted attempt stays in its own (where a rung is another epoch).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Container, Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from scaler.study.experiment import WorkItem
from scaler.study.trials import item_params

RUNG_KEY = "completed_rung_"  # a trial's value at a rung, as Optuna's successive halving records it

ItemOf = Callable[[Mapping[str, Any]], "WorkItem | None"]


def one_value_per_item(trials: list[FrozenTrial], judged: FrozenTrial, item_of: ItemOf,
                       bracket: Callable[[FrozenTrial], int] = lambda trial: 0) -> list[FrozenTrial]:
    """`trials` with the rung values that do not speak for their item removed: in each
    `bracket`, those of every attempt of an item but its latest to reach the rung, and those of
    the other attempts of the judged trial's item. Trials of no known item are kept as they are."""
    items = {trial.number: item_of(item_params(trial)) for trial in trials}
    brackets = {trial.number: bracket(trial) for trial in trials}
    judged_item = item_of(item_params(judged))
    latest: dict[tuple[WorkItem, str, int], int] = {}
    for trial in trials:
        for key in trial.system_attrs:
            if key.startswith(RUNG_KEY) and items[trial.number] is not None:
                where = (items[trial.number], key, brackets[trial.number])
                latest[where] = max(latest.get(where, -1), trial.number)
    out = []
    for trial in trials:
        item, within = items[trial.number], brackets[trial.number]
        if item is not None and trial.number != judged.number:
            stale = {key for key in trial.system_attrs if key.startswith(RUNG_KEY)
                     and (item == judged_item or latest[(item, key, within)] != trial.number)}
            if stale:
                trial = copy.copy(trial)
                trial.system_attrs = {key: value for key, value in trial.system_attrs.items() if key not in stale}
        out.append(trial)
    return out


class _SeenFor:
    """A storage whose trials, read, are `one_value_per_item` for `judged`; every other call
    goes to the storage."""

    def __init__(self, storage: optuna.storages.BaseStorage, judged: FrozenTrial, item_of: ItemOf,
                 bracket: Callable[[FrozenTrial], int]) -> None:
        self._storage, self._judged, self._item_of, self._bracket = storage, judged, item_of, bracket

    def __getattr__(self, name: str) -> Any:
        if name == "_storage":  # not set yet (a copy being made): no endless lookup
            raise AttributeError(name)
        return getattr(self._storage, name)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        trials = self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        return one_value_per_item(trials, self._judged, self._item_of, self._bracket)


class OneValuePerItem(optuna.pruners.BasePruner):
    """`pruner`, shown each rung with one value per item (see the module's docstring);
    `item_of` names the item a trial's parameters stand for."""

    def __init__(self, pruner: optuna.pruners.BasePruner, item_of: ItemOf) -> None:
        self.pruner, self._item_of = pruner, item_of

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        view = copy.copy(study)  # the same study (name, id, direction), its trials read through the filter
        view._storage = _SeenFor(study._storage, trial, self._item_of, self._bracket(study))
        return self.pruner.prune(view, trial)

    def _bracket(self, study: optuna.Study) -> Callable[[FrozenTrial], int]:
        """The Hyperband bracket of a trial (its own rule, from the study's name and the trial's
        number); one bracket for any other pruner."""
        if isinstance(self.pruner, optuna.pruners.HyperbandPruner):
            pruner = self.pruner
            return lambda trial: pruner._get_bracket_id(study, trial)
        return lambda trial: 0
