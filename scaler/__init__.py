"""scaler: compound scaling of EfficientNet, from the rounding rules to a ranked grid search."""

from scaler.errors import RunError, ScalerError, UsageError
from scaler.network import EfficientNet, NetworkSpec, StageSpec, build_model, network_spec
from scaler.scaling import (
    PRESETS,
    CompoundScale,
    Preset,
    compound_scale,
    get_preset,
    round_filters,
    round_repeats,
    round_resolution,
)

__all__ = [
    "PRESETS",
    "CompoundScale",
    "EfficientNet",
    "NetworkSpec",
    "Preset",
    "RunError",
    "ScalerError",
    "StageSpec",
    "UsageError",
    "build_model",
    "compound_scale",
    "get_preset",
    "network_spec",
    "round_filters",
    "round_repeats",
    "round_resolution",
]
