"""The pruner a study judges with sees one value per item at each rung (`scaler.study.pruning`)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from scaler.study.experiment import WorkItem
from scaler.study.pruning import OneValuePerItem, one_value_per_item

PRUNERS = {
    "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    # one bracket (max_resource < reduction_factor): every trial competes in it
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=2, reduction_factor=3),
    # a search's --steps budget: the maximum resource read from the first complete trials
    # (last step 1 here: 2, so the same one bracket), through the view as every other read
    "hyperband-auto": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3),
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


def test_an_item_counts_at_a_rung_with_its_latest_attempt():
    """Attempts of one item may differ (a GPU's nondeterminism): the latest to reach a rung
    speaks there for its item, an earlier one's value is gone from that rung alone."""
    study = _study(optuna.pruners.NopPruner())
    study.add_trial(create_trial(
        state=TrialState.FAIL, params={"item": 0}, distributions={"item": IntDistribution(0, 5)},
        intermediate_values={1: 0.3, 3: 0.4}, system_attrs={"completed_rung_0": 0.3, "completed_rung_1": 0.4},
    ))  # item 0 once more, interrupted after rung 1, the first to reach it
    judged = study.ask()
    seen = one_value_per_item(study.get_trials(deepcopy=False), study.trials[-1], lambda params: WorkItem.of(**params) if params else None)
    rung_0 = {t.number: t.system_attrs.get("completed_rung_0") for t in seen if t.params.get("item") == 0}
    rung_1 = {t.number: t.system_attrs.get("completed_rung_1") for t in seen if t.params.get("item") == 0}
    assert rung_0 == {0: None, 1: None, 6: 0.3} and rung_1 == {0: None, 1: None, 6: 0.4}
    assert judged.number == 7 and study.trials[1].system_attrs["completed_rung_0"] == 0.9  # the storage keeps every value


def test_an_interrupted_attempt_stays_in_its_own_hyperband_bracket():
    """Hyperband puts a trial in a bracket by its number: item 0 interrupted in one bracket and
    trained again in another. Its interrupted attempt keeps speaking for it in its own bracket
    (it was dropped there, the retry being later, and 0.5 then led a rung it trails)."""
    def hyperband():
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)

    def brackets(study):  # Hyperband's own rule, from the study's name and a trial's number
        pruner = hyperband()
        pruner._try_initialization(study)  # noqa: SLF001 - its bracket rule, for the test's layout
        return lambda number: pruner._get_bracket_id(study, SimpleNamespace(number=number))  # noqa: SLF001

    study = optuna.create_study(study_name="brackets", direction="maximize", pruner=OneValuePerItem(hyperband(), lambda p: WorkItem.of(**p) if p else None))
    bracket = brackets(study)
    numbers = iter(range(1000))
    first = next(n for n in numbers if bracket(n) == 0)
    retry = next(n for n in numbers if bracket(n) != 0)
    judged = next(n for n in numbers if bracket(n) == 0)
    for number in range(judged):
        item, state, value = 9, TrialState.FAIL, None  # a filler: no rung reached
        if number in (first, retry):
            item, state, value = 0, (TrialState.FAIL if number == first else TrialState.COMPLETE), 0.9
        study.add_trial(create_trial(
            state=state, value=value if state == TrialState.COMPLETE else None, params={"item": item},
            distributions={"item": IntDistribution(0, 9)}, intermediate_values={1: value} if value else {},
            system_attrs={"completed_rung_0": value} if value else {},
        ))
    study.enqueue_trial({"item": 3})
    trial = study.ask()
    trial.suggest_int("item", 0, 9)
    assert trial.number == judged
    trial.report(0.5, 1)
    assert trial.should_prune()  # against item 0's 0.9 in bracket 0, as the study never stopped would judge it
