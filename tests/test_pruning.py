"""The pruner a study judges with sees one value per item at each rung (`scaler.study.pruning`)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from scaler.study.experiment import WorkItem
from scaler.study.pruning import OneValuePerItem

PRUNERS = {
    "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    # one bracket (max_resource < reduction_factor): every trial competes in it
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=2, reduction_factor=3),
}
# (item, state, value after epoch 1), in trial order: item 0 interrupted, then trained again;
# item 2 interrupted and not yet trained again
ATTEMPTS = [(0, TrialState.FAIL, 0.9), (0, TrialState.COMPLETE, 0.9), (1, TrialState.COMPLETE, 0.2),
            (2, TrialState.FAIL, 0.1), (4, TrialState.COMPLETE, 0.15), (5, TrialState.COMPLETE, 0.12)]


def _study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for item, state, value in ATTEMPTS:
        study.add_trial(create_trial(
            state=state, value=value if state == TrialState.COMPLETE else None, params={"item": item},
            distributions={"item": IntDistribution(0, 5)}, intermediate_values={1: value},
            system_attrs={"completed_rung_0": value},
        ))
    return study


@pytest.mark.parametrize("name", PRUNERS)
@pytest.mark.parametrize("item, kept", [
    # rung 0 holds 0.9, 0.2, 0.1, 0.15, 0.12 and 0.5: six values, so the second best goes on;
    # with item 0's two attempts it held seven, 0.9 twice, and 0.5 was pruned
    (3, True),
    # item 2 trained again: its interrupted attempt no longer speaks for it (five values, the
    # best alone goes on), where counted it made six, and 0.5 second best went on
    (2, False),
])
def test_each_item_counts_once_at_a_rung(name, item, kept):
    for pruner, pruned in ((PRUNERS[name](), True), (OneValuePerItem(PRUNERS[name](), lambda params: WorkItem.of(**params) if params else None), not kept)):
        study = _study(pruner)
        study.enqueue_trial({"item": item})
        trial = study.ask()
        trial.suggest_int("item", 0, 5)
        trial.report(0.5, 1)
        assert trial.should_prune() is pruned
        assert study.trials[-1].system_attrs["completed_rung_0"] == 0.5  # the rung is written through the view
        assert study.trials[0].system_attrs["completed_rung_0"] == 0.9  # and nothing else changed in the storage
