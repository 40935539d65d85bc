"""The kinds of study scaler runs on its engine, one module each; importing a module registers
its kind (`scaler.study.experiment.BUILT_IN_KINDS` names them):

* `search`: the compound-scaling grid search (`scaler search`);
* `comparison`: compound against single-dimension scaling at equal FLOPs (`scaler compare`);
* `calibration`: how well the search's proxy ranking predicts longer training (`scaler calibrate`).

`choices` holds their options' choices and defaults, which the command line reads without
importing the kinds.
"""
