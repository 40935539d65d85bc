"""The kinds of study scaler runs on its engine; importing this package registers them.

* `search`: the compound-scaling grid search (`scaler search`);
* `compare`: compound against single-dimension scaling at equal FLOPs (`scaler compare`).
"""

from scaler.experiments import comparison, search  # noqa: F401  (registers the kinds)
