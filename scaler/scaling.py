"""The compound-scaling arithmetic: rounding rules, official presets, compound coefficients.

Every integer rounding the project applies is stated here once:

* channels: the official ``round_filters`` (multiple of 8, never more than 10% below the
  exact product), applied to every stage and to the stem and head;
* repeats: ``ceil(repeats * depth)`` per stage;
* resolution of a compound candidate: ``base * gamma**phi`` rounded to the nearest multiple
  of 4 (as pycls does); the official presets keep their published resolutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaler.errors import UsageError

CHANNEL_DIVISOR = 8
RESOLUTION_DIVISOR = 4
MAX_RESOLUTION = 4096
# The paper's phi = 1 grid-search result for EfficientNet-B0.
PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA = 1.2, 1.1, 1.15


def round_filters(channels: int, width: float) -> int:
    """Channels after width scaling, as the official implementation rounds them."""
    x = channels * width
    n = max(CHANNEL_DIVISOR, int(x + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    if n < 0.9 * x:
        n += CHANNEL_DIVISOR
    return int(n)


def round_repeats(repeats: int, depth: float) -> int:
    """Blocks in a stage after depth scaling: always rounded up."""
    return int(math.ceil(repeats * depth))


def round_resolution(resolution: float) -> int:
    """Input side length of a compound candidate: nearest multiple of RESOLUTION_DIVISOR."""
    return max(RESOLUTION_DIVISOR, int(round(resolution / RESOLUTION_DIVISOR)) * RESOLUTION_DIVISOR)


@dataclass(frozen=True)
class Preset:
    """An official EfficientNet variant: multipliers of B0, input resolution and dropout.

    `paper_params` and `paper_macs` are the figures printed in the paper's Table 2 (rounded,
    and for B4/B5 below what the architecture gives): shown beside measured values, never
    used as measurements.
    """

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float
    paper_params: float | None = None
    paper_macs: float | None = None


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (  # name, width, depth, resolution, dropout, paper's params, paper's "FLOPS" (MACs)
        Preset("b0", 1.0, 1.0, 224, 0.2, 5.3e6, 0.39e9),
        Preset("b1", 1.0, 1.1, 240, 0.2, 7.8e6, 0.70e9),
        Preset("b2", 1.1, 1.2, 260, 0.3, 9.2e6, 1.0e9),
        Preset("b3", 1.2, 1.4, 300, 0.3, 12e6, 1.8e9),
        Preset("b4", 1.4, 1.8, 380, 0.4, 19e6, 4.2e9),
        Preset("b5", 1.6, 2.2, 456, 0.4, 30e6, 9.9e9),
        Preset("b6", 1.8, 2.6, 528, 0.5, 43e6, 19e9),
        Preset("b7", 2.0, 3.1, 600, 0.5, 66e6, 37e9),
        Preset("b8", 2.2, 3.6, 672, 0.5),
        Preset("l2", 4.3, 5.3, 800, 0.5),
    )
}


def get_preset(name: str) -> Preset:
    """Look a preset up by name (case-insensitive, 'efficientnet-b4' and 'b4' both work)."""
    key = name.lower().removeprefix("efficientnet-").removeprefix("efficientnet_")
    if key not in PRESETS:
        raise UsageError(f"unknown variant {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[key]


@dataclass(frozen=True)
class CompoundScale:
    """Multipliers for one phi of a compound family: d = alpha^phi, w = beta^phi, r = gamma^phi."""

    alpha: float
    beta: float
    gamma: float
    phi: float
    depth: float
    width: float
    resolution: int

    @property
    def product(self) -> float:
        """alpha * beta^2 * gamma^2: the FLOPs growth per step of phi."""
        return self.alpha * self.beta**2 * self.gamma**2

    @property
    def nominal_flops_ratio(self) -> float:
        """(alpha * beta^2 * gamma^2)^phi: how much the FLOPs should grow before rounding."""
        return self.product**self.phi


def validate_coefficients(alpha: float, beta: float, gamma: float) -> None:
    """Raise UsageError unless each coefficient is a finite number >= 1."""
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not math.isfinite(value) or value < 1.0:
            raise UsageError(f"{name} = {value} is not allowed; it must be a number >= 1")


def compound_scale(
    alpha: float, beta: float, gamma: float, phi: float, base_resolution: int = 224
) -> CompoundScale:
    """The depth, width and (rounded) resolution multipliers of one compound step."""
    validate_coefficients(alpha, beta, gamma)
    if not math.isfinite(phi) or phi < 0:
        raise UsageError(f"phi = {phi} is not allowed; it must be >= 0")
    validate_resolution(base_resolution, what="base resolution")
    return CompoundScale(
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        phi=phi,
        depth=alpha**phi,
        width=beta**phi,
        resolution=round_resolution(base_resolution * gamma**phi),
    )


def validate_resolution(resolution: int, what: str = "resolution") -> None:
    """Raise UsageError for a side length outside 1..MAX_RESOLUTION."""
    if not 1 <= resolution <= MAX_RESOLUTION:
        raise UsageError(f"{what} {resolution} is not allowed; it must be 1..{MAX_RESOLUTION} pixels")


def validate_multiplier(name: str, value: float) -> None:
    """Raise UsageError for a width or depth multiplier that is not a positive finite number."""
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name} = {value} is not allowed; it must be a number > 0")


def parse_phi_list(spec: str) -> list[int]:
    """Parse '0-7', '1,3,5' or '2' into a sorted list of distinct integer phis >= 0."""
    values: set[int] = set()
    try:
        for part in spec.replace(" ", "").split(","):
            if "-" in part[1:]:
                lo_text, hi_text = part.split("-", 1)
                lo, hi = int(lo_text), int(hi_text)
                if lo > hi:
                    raise ValueError
                values.update(range(lo, hi + 1))
            else:
                values.add(int(part))
    except ValueError:
        raise UsageError(
            f"phi {spec!r} is malformed; use an integer, a range like 0-7 or a list like 1,3,5"
        ) from None
    if min(values) < 0:
        raise UsageError(f"phi {spec!r} is not allowed; every phi must be >= 0")
    return sorted(values)
