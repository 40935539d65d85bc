"""Network families: EfficientNet (and any family registered beside it), found by name, and
any user network through a factory reference ('net.py:make').

Importing this package registers the built-in families.
"""

from scaler.models import efficientnet  # noqa: F401  (registers the family)
from scaler.models import resnet  # noqa: F401  (registers the family)
from scaler.models import mobilenetv2  # noqa: F401  (registers the family)
from scaler.models import factory  # noqa: F401  (registers the family of factory references)
from scaler.models.family import Family, Piece, Preset
from scaler.models.registry import (
    build_model,
    canonical_variant,
    check_network,
    families,
    family_of,
    get_family,
    get_preset,
    network_spec,
    presets_by_family,
    register_family,
    resolve_variant,
    same_variant,
    variant_names,
)

__all__ = [
    "Family",
    "Piece",
    "Preset",
    "build_model",
    "canonical_variant",
    "check_network",
    "families",
    "family_of",
    "get_family",
    "get_preset",
    "network_spec",
    "presets_by_family",
    "register_family",
    "resolve_variant",
    "same_variant",
    "variant_names",
]
