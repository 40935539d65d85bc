"""What a network family is: how a spec is made from multipliers, how it becomes a module, and
(optionally) which distinct pieces the fast counter may trace once and multiply.

A family is data plus two functions, so a new family is a new module that registers one
`Family` object (see `scaler.models.registry`), not a change anywhere else.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from scaler.errors import UsageError
from scaler.scaling import conv_output_size, validate_multiplier


@dataclass(frozen=True)
class Preset:
    """A published variant of a family: its multipliers, native resolution and dropout.

    `paper_params` and `paper_macs` are figures as printed in a paper (rounded, sometimes
    wrong): shown beside measured values, never used as measurements.
    """

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float | None = None
    paper_params: float | None = None
    paper_macs: float | None = None
    paper: str | None = None  # where the printed figures come from


def spec_maker(spec_type: Callable[..., Hashable]) -> Callable[..., Hashable]:
    """The `spec` function of a family whose spec takes width, depth, num_classes and dropout:
    a preset's values, overridden where given, validated."""

    def spec(
        preset: Preset,
        *,
        width: float | None = None,
        depth: float | None = None,
        num_classes: int = 1000,
        dropout: float | None = None,
    ) -> Hashable:
        width, depth = checked_multipliers(preset, width, depth, num_classes)
        dropout = (preset.dropout or 0.0) if dropout is None else dropout
        if not 0.0 <= dropout < 1.0:  # torch's own refusal comes later, as a traceback
            raise UsageError(f"dropout = {dropout} is not allowed; it must be a number in [0, 1)", param="dropout")
        return spec_type(width=width, depth=depth, num_classes=num_classes, dropout=dropout)

    spec.__doc__ = f"The {spec_type.__name__} of a preset with optional overrides of its multipliers, classes and dropout."
    return spec


def staged_pieces(
    resolution: int,
    stem: Callable[[], nn.Module],
    stem_size: int,
    stages: list[list[Any]],
    block: Callable[[Any], nn.Module],
    head: Callable[[], nn.Module],
    head_channels: int,
) -> list[Piece]:
    """The pieces of a stem / stages of blocks / head network, built on the meta device: the
    stem, the first and one repeated block of every stage (blocks after a stage's first are
    identical in configuration and input shape), and the head. Each block spec has `cin` and
    `stride`; `stem_size` is the stem's output side."""
    size = stem_size
    with torch.device("meta"):
        pieces = [Piece("stem", stem(), (1, 3, resolution, resolution), 1, size)]
        for number, blocks in enumerate(stages, start=1):
            out = conv_output_size(size, blocks[0].stride)
            first, rest = blocks[0], blocks[1:]
            pieces.append(Piece(f"stage{number}", block(first), (1, first.cin, size, size), 1, out))
            if rest:
                pieces.append(Piece(f"stage{number}", block(rest[0]), (1, rest[0].cin, out, out), len(rest), out))
            size = out
        pieces.append(Piece("head", head(), (1, head_channels, size, size), 1, 1))
    return pieces


# The largest class count a classifier is built for: 4.6x ImageNet-21k's 21,841, and a B7 head of
# about 1 GB; beyond it a typo would ask for terabytes.
MAX_CLASSES = 100_000


def checked_multipliers(preset: Preset, width: float | None, depth: float | None, num_classes: int) -> tuple[float, float]:
    """The width and depth a spec gets (the preset's unless overridden), validated with the
    class count: what every family's `spec` function starts with."""
    width = preset.width if width is None else width
    depth = preset.depth if depth is None else depth
    validate_multiplier("width", width)
    validate_multiplier("depth", depth)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or not 1 <= num_classes <= MAX_CLASSES:
        raise UsageError(f"classes = {num_classes} is not allowed; it must be 1..{MAX_CLASSES:,}", param="num_classes")
    return width, depth


@dataclass(frozen=True)
class Piece:
    """A distinct piece of a network for the piecewise counter: a module (built on the meta
    device), the input shape it sees, how many identical copies the network has, and the
    part (stem, stage3, head) it belongs to with that part's output side length."""

    part: str
    module: nn.Module = field(compare=False)
    input_shape: tuple[int, ...]
    times: int
    output_resolution: int


@dataclass(frozen=True)
class Family:
    """A registered network family. Its specs are hashable (frozen dataclasses) and carry
    `family`, `width`, `depth` and `num_classes`.

    * `spec(preset, width, depth, num_classes)`: the spec of a preset with optional multiplier
      overrides; validates its arguments.
    * `build(spec)`: the `nn.Module` (resolution is the input's size, never the module's).
    * `pieces(spec, resolution)`: the distinct pieces for the fast counter, or None to count a
      whole-model fvcore pass instead.
    * `check(spec, resolution)`: a UsageError where the spec's network cannot run at that
      resolution, or None where every network of the family runs at any resolution the
      scaling rules allow (a factory's network is run to find out).
    """

    name: str
    presets: Mapping[str, Preset]
    spec: Callable[..., Hashable]
    build: Callable[[Hashable], nn.Module]
    pieces: Callable[[Hashable, int], list[Piece]] | None = None
    aliases: Callable[[str], str] | None = None  # maps accepted spellings to a preset name
    check: Callable[[Hashable, int], None] | None = None
