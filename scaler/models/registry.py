"""The registry of network families and the name lookup every command uses.

`register_family` adds a family; `resolve_variant("b4")` finds the family and preset a name
stands for; `network_spec` / `build_model` work for any family. A name with a ':' is a factory
reference ('net.py:make', 'package.module:make'; see `scaler.models.factory`), accepted
wherever a preset name is.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from torch import nn

from scaler.errors import UsageError
from scaler.files import tidy_path
from scaler.models.family import Family, Preset

_FAMILIES: dict[str, Family] = {}
REFERENCE_FAMILY = "factory"  # the family a factory reference belongs to
REFERENCE_RESOLUTION = 224  # the resolution a reference stands for, as a preset's native one


def is_reference(name: str) -> bool:
    """Whether a variant name is a factory reference rather than a preset name."""
    return ":" in name


def is_file_location(location: str) -> bool:
    """Whether a reference's part before ':' names a file (it ends in .py or has a path
    separator) rather than a module."""
    return location.endswith(".py") or "/" in location or "\\" in location


def register_family(family: Family) -> Family:
    """Add `family` (its name and its presets' names must be new); returns it."""
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} is already registered")
    taken = {p for f in _FAMILIES.values() for p in f.presets}
    clash = taken & set(family.presets)
    if clash:
        raise ValueError(f"preset name(s) {sorted(clash)} already belong to another family")
    _FAMILIES[family.name] = family
    return family


def families() -> list[Family]:
    """Registered families, in registration order."""
    return list(_FAMILIES.values())


def get_family(name: str) -> Family:
    """The family called `name`; UsageError naming the registered ones otherwise."""
    if name not in _FAMILIES:
        raise UsageError(f"unknown network family {name!r}; registered: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def family_of(spec: Hashable) -> Family:
    """The family a spec belongs to (every spec names it in its `family` attribute); a
    UsageError for anything else (a preset's name, a built model), saying how to make one."""
    family = getattr(spec, "family", None)
    if not isinstance(family, str):
        raise UsageError(f"an object of type {type(spec).__name__} is not a network spec; make one with "
                         "scaler.network_spec('b0', width=..., depth=...) (or network_spec('path/to/file.py:make'))")
    return get_family(family)


def check_network(spec: Hashable, resolution: int) -> None:
    """UsageError where the network `spec` describes cannot run at `resolution` x
    `resolution` (its family's `check`): asked before counting or training it, so that a
    network that cannot take its input is one line, never a failed count or training."""
    family = family_of(spec)
    if family.check is not None:
        family.check(spec, resolution)


def variant_names() -> list[str]:
    """Every preset name of every family, for help texts and errors."""
    return [p for f in _FAMILIES.values() for p in f.presets]


def presets_by_family() -> str:
    """The presets of each family that has any, for help texts: 'efficientnet: b0, b1, ...;
    resnet: resnet50; ...'. A new family's presets appear in every command's help."""
    return "; ".join(f"{f.name}: {', '.join(f.presets)}" for f in _FAMILIES.values() if f.presets)


def resolve_variant(name: str) -> tuple[Family, Preset]:
    """The family and preset a variant name ('b4', 'efficientnet-b4', 'resnet50') stands for;
    a factory reference ('net.py:make') stands for a preset of width 1, depth 1 at 224 px."""
    if is_reference(name):
        reference = name.strip()
        return get_family(REFERENCE_FAMILY), Preset(reference, 1.0, 1.0, REFERENCE_RESOLUTION)
    for family in _FAMILIES.values():
        key = name.strip().lower()
        key = family.aliases(key) if family.aliases else key
        if key in family.presets:
            return family, family.presets[key]
    raise UsageError(
        f"unknown variant {name!r}; allowed: {', '.join(variant_names())}, or a factory "
        "package.module:make or path/to/file.py:make"
    )


def canonical_variant(name: str) -> str:
    """One spelling of a variant, so a study is found by the network, not by how it was typed:
    a preset by its own name ('B0', 'efficientnet-b0' -> 'b0'); a factory reference with its
    file's path tidied (`tidy_path`: './net.py:make' -> 'net.py:make'; a module path unchanged)."""
    if not is_reference(name):
        return resolve_variant(name)[1].name
    location, _, attribute = name.strip().rpartition(":")
    if is_file_location(location):  # tidied, and still a file ('./net:make' must not become module 'net')
        tidy = tidy_path(location)
        location = tidy if is_file_location(tidy) else "./" + tidy
    return f"{location}:{attribute}"


def same_variant(a: str, b: str) -> bool:
    """Whether two spellings name one network: the same `canonical_variant`, or factory
    references to the same attribute of one file, read from the current folder (a search
    records its --base as typed: 'net.py:make' there is '/abs/net.py:make' here)."""
    def spelled(name: str) -> str:
        try:
            return canonical_variant(name)
        except UsageError:  # a preset that no longer exists: as written
            return name.strip()

    if spelled(a) == spelled(b):
        return True
    if not (is_reference(a) and is_reference(b)):
        return False
    (place_a, _, name_a), (place_b, _, name_b) = (x.strip().rpartition(":") for x in (a, b))
    if name_a != name_b or not (is_file_location(place_a) and is_file_location(place_b)):
        return False
    try:
        return Path(place_a).resolve() == Path(place_b).resolve()
    except (OSError, ValueError):  # a path no file can have (a NUL in a hand-edited summary)
        return False


def get_preset(name: str) -> Preset:
    """The preset a variant name stands for, in whichever family has it."""
    return resolve_variant(name)[1]


def network_spec(
    variant: str | None = None,
    *,
    width: float | None = None,
    depth: float | None = None,
    num_classes: int = 1000,
    dropout: float | None = None,
) -> Hashable:
    """The spec of a preset ('b4') or factory reference ('net.py:make'), of custom multipliers
    of B0, or of either with overrides."""
    family, preset = resolve_variant("b0" if variant is None else variant)
    return family.spec(preset, width=width, depth=depth, num_classes=num_classes, dropout=dropout)


def build_model(
    variant: str | None = None,
    *,
    width: float | None = None,
    depth: float | None = None,
    num_classes: int = 1000,
    dropout: float | None = None,
) -> nn.Module:
    """Build a network: `build_model("b4")`, `build_model(width=1.2, depth=1.4)` (of B0),
    `build_model("net.py:make", width=0.5, num_classes=10)` (a factory's)."""
    spec = network_spec(variant, width=width, depth=depth, num_classes=num_classes, dropout=dropout)
    return family_of(spec).build(spec)
