"""The kinds of study scaler runs on its engine; importing this package registers them.

* `search`: the compound-scaling grid search (`scaler search`);
* `compare`: compound against single-dimension scaling at equal FLOPs (`scaler compare`);
* `calibration`: how well the search's proxy ranking predicts longer training (`scaler calibrate`).
"""

from scaler.experiments import calibration, comparison, search  # noqa: F401  (registers the kinds)
