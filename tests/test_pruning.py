"""The pruner a study judges with sees no failed attempts (`scaler.study.pruning`)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from scaler.study.pruning import IgnoreFailedTrials

PRUNERS = {
    "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    # one bracket (max_resource < reduction_factor): every trial competes in it
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=2, reduction_factor=3),
}


def _study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Two attempts of a strong item, failed after their first epoch, and one weak item that
    finished its two epochs."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for value, state in ((0.9, TrialState.FAIL), (0.9, TrialState.FAIL), (0.2, TrialState.COMPLETE)):
        study.add_trial(create_trial(
            state=state, value=0.4 if state == TrialState.COMPLETE else None, params={"item": 0},
            distributions={"item": IntDistribution(0, 3)}, intermediate_values={1: value},
            system_attrs={"completed_rung_0": value},
        ))
    return study


@pytest.mark.parametrize("name", PRUNERS)
def test_a_rung_holds_no_failed_attempt(name):
    """A value of 0.5 after epoch 1 leads the finished item's 0.2; against the failed
    attempts' 0.9 as well, it would be pruned."""
    for pruner, pruned in ((PRUNERS[name](), True), (IgnoreFailedTrials(PRUNERS[name]()), False)):
        study = _study(pruner)
        trial = study.ask()
        trial.report(0.5, 1)
        assert trial.should_prune() is pruned
        assert study.trials[-1].system_attrs["completed_rung_0"] == 0.5  # the rung is written through the view
