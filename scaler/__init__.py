"""scaler: compound scaling of ConvNets, from the rounding rules to a ranked grid search.

The names below are loaded on first use, so that starting the `scaler` command (and a Ctrl-C
during its start) does not wait for torch to import.
"""

from __future__ import annotations

from scaler.lazy import lazy_exports

_EXPORTS = {
    "RunError": "scaler.errors",
    "ScalerError": "scaler.errors",
    "UsageError": "scaler.errors",
    "Preset": "scaler.models",
    "build_model": "scaler.models",
    "families": "scaler.models",
    "get_family": "scaler.models",
    "get_preset": "scaler.models",
    "network_spec": "scaler.models",
    "PRESETS": "scaler.models.efficientnet",
    "EfficientNet": "scaler.models.efficientnet",
    "NetworkSpec": "scaler.models.efficientnet",
    "StageSpec": "scaler.models.efficientnet",
    "CompoundScale": "scaler.scaling",
    "compound_scale": "scaler.scaling",
    "round_filters": "scaler.scaling",
    "round_repeats": "scaler.scaling",
    "round_resolution": "scaler.scaling",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
