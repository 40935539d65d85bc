"""The choices and defaults of the study kinds' own options, as data: what `scaler search`,
`scaler compare` and `scaler calibrate` show in their help. Kept apart from the kinds (which
import torch, pandas and optuna), so that the command line shows its help without them."""

# search: how a search stops unpromising trainings early (none, or Optuna's pruners)
PRUNERS = ("none", "halving", "hyperband")

# compare: compound scaling against scaling one dimension alone
COMPOUND = "compound"
SINGLE_DIMENSIONS = ("width", "depth", "resolution")
DEFAULT_STRATEGIES = (COMPOUND, *SINGLE_DIMENSIONS)

# calibrate: how many candidates are trained, and how much longer the reference trains
DEFAULT_K = 6
DEFAULT_FACTOR = 4.0  # the reference trains this many times the proxy's epochs
