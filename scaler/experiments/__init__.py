"""The kinds of study scaler runs on its engine; importing this package registers them.

* `search`: the compound-scaling grid search (`scaler search`).
"""

from scaler.experiments import search  # noqa: F401  (registers the kind)
