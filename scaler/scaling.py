"""The compound-scaling arithmetic: rounding rules and compound coefficients, for any family.

Every integer rounding the project applies is stated here once:

* channels: the official ``round_filters`` (multiple of 8, never more than 10% below the
  exact product), applied to every stage and to the stem and head;
* repeats: ``ceil(repeats * depth)`` per stage;
* resolution of a compound candidate: ``base * gamma**phi`` rounded to the nearest multiple
  of 4 (as pycls does); the official presets keep their published resolutions.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

from scaler.errors import UsageError

CHANNEL_DIVISOR = 8
RESOLUTION_DIVISOR = 4
MAX_RESOLUTION = 4096
# Largest width or depth multiplier accepted (EfficientNet-L2 is 4.3 / 5.3): beyond it a
# network cannot be built, counted or trained on the machines this runs on.
MAX_MULTIPLIER = 16.0
MAX_PHI = 64  # and at most this many phis in one list
REPEATS_DIGITS = 6  # decimals a stage's scaled block count is rounded to before rounding up
# The paper's phi = 1 grid-search result for EfficientNet-B0.
PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA = 1.2, 1.1, 1.15


def is_paper_point(alpha: float, beta: float, gamma: float) -> bool:
    """Whether (alpha, beta, gamma) is the paper's (1.2, 1.1, 1.15), which tables and plots mark."""
    return all(math.isclose(float(x), v, abs_tol=1e-9) for x, v in ((alpha, PAPER_ALPHA), (beta, PAPER_BETA), (gamma, PAPER_GAMMA)))


def round_filters(channels: int, width: float) -> int:
    """Channels after width scaling, as the official implementation rounds them."""
    _check_positive("width", width)
    x = channels * width
    n = max(CHANNEL_DIVISOR, int(x + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    if n < 0.9 * x:
        n += CHANNEL_DIVISOR
    return int(n)


def round_repeats(repeats: int, depth: float) -> int:
    """Blocks in a stage after depth scaling: always rounded up, from the product rounded to
    REPEATS_DIGITS decimals first, so that float noise (5 x (1.6 x 1.5) = 12.000000000000002) or a
    multiplier a hair above 1 (alpha ** 1e-9) does not add a whole block. No official
    coefficient's product lies that close above a whole number. At least one block, as the
    official ceil of any positive product gives (a depth of 1e-7 rounds to 0 first)."""
    _check_positive("depth", depth)
    return max(1, int(math.ceil(round(repeats * depth, REPEATS_DIGITS))))


def conv_output_size(size: int, stride: int) -> int:
    """Spatial size after a conv with odd kernel k, padding k // 2 and the given stride."""
    return (size - 1) // stride + 1


def round_resolution(resolution: float) -> int:
    """Input side length of a compound candidate: nearest multiple of RESOLUTION_DIVISOR, a
    half-way value rounded up (226 -> 228, as 230 -> 232; Python's round() would go to even)."""
    _check_positive("resolution", resolution)
    # to 9 decimals first: 200 x 1.15 is 229.99999999999997 in floats, a half-way 230 that must go up
    quarter = round(resolution / RESOLUTION_DIVISOR, 9)
    return max(RESOLUTION_DIVISOR, math.floor(quarter + 0.5) * RESOLUTION_DIVISOR)


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
        """alpha * beta^2 * gamma^2: the FLOPs growth per step of phi (inf past float range)."""
        return compound_product(self.alpha, self.beta, self.gamma)

    @property
    def nominal_flops_ratio(self) -> float:
        """(alpha * beta^2 * gamma^2)^phi: how much the FLOPs should grow before rounding (inf
        past float range; phi 0 of any coefficients is 1), to 12 places: sqrt(2)**2 is
        2.0000000000000004 in floats, and tables and CSVs show it."""
        return 1.0 if self.phi == 0 else round(_or_inf(lambda: self.product**self.phi), 12)


def compound_product(alpha: float, beta: float, gamma: float) -> float:
    """alpha * beta^2 * gamma^2, the FLOPs growth per step of phi; inf past float range."""
    return _or_inf(lambda: alpha * beta**2 * gamma**2)


def _or_inf(compute: Callable[[], float]) -> float:
    """compute(), or inf where a power overflows floats (huge coefficients, which the checks
    of `compound_scale` refuse for any phi > 0)."""
    try:
        return compute()
    except OverflowError:
        return math.inf


def validate_coefficients(alpha: float, beta: float, gamma: float) -> None:
    """Raise UsageError unless each coefficient is a finite number >= 1."""
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not math.isfinite(value) or value < 1.0:
            raise UsageError(f"{name} = {value} is not allowed; it must be a number >= 1", param=name)


class ScaleLimitError(UsageError):
    """phi takes a multiplier past what a network can be built with: `fault` says which and by
    how much, `advice` what to lower, so a caller that knows better (a point of the search's
    ranges, not phi alone) can give its own advice. `param` is phi, or the coefficient where
    one step of it (phi 1) already overshoots: then it is at fault itself, whatever phi."""

    def __init__(self, fault: str, advice: str, param: str = "phi") -> None:
        super().__init__(f"{fault}; {advice}", param=param)
        self.fault, self.advice = fault, advice

    def __reduce__(self) -> tuple:
        return type(self), (self.fault, self.advice, self.param)  # picklable, as any error a worker may raise


def compound_scale(
    alpha: float, beta: float, gamma: float, phi: float, base_resolution: int = 224
) -> CompoundScale:
    """The depth, width and (rounded) resolution multipliers of one compound step."""
    validate_coefficients(alpha, beta, gamma)
    if not math.isfinite(phi) or phi < 0:
        raise UsageError(f"phi = {phi} is not allowed; it must be >= 0", param="phi")
    validate_resolution(base_resolution, what="base resolution")
    # Each multiplier checked in the user's terms before anything is built from it.
    for what, name, coefficient, limit in (("depth", "alpha", alpha, MAX_MULTIPLIER), ("width", "beta", beta, MAX_MULTIPLIER)):
        if math.log(coefficient) * phi > math.log(limit):
            raise ScaleLimitError(
                f"phi {phi:g} gives {what} {coefficient:g}^{phi:g} = {_power(math.log10(coefficient) * phi)}, more than {limit:g}",
                f"lower phi or {name}", param=name if coefficient > limit else "phi",
            )
    resolution = _rounded_resolution(base_resolution, gamma, phi)
    if _past_limit(resolution):
        rounded = "" if resolution is None else f", rounded to {resolution}"
        log10 = math.log10(base_resolution) + math.log10(gamma) * phi
        raise ScaleLimitError(
            f"phi {phi:g} gives resolution {base_resolution} x {gamma:g}^{phi:g} = {_power(log10)} px{rounded}, more than "
            f"{MAX_RESOLUTION}",
            # gamma alone (phi 1) past the limit: gamma is at fault, not phi
            "lower phi or gamma", param="gamma" if _past_limit(_rounded_resolution(base_resolution, gamma, 1)) else "phi",
        )
    return CompoundScale(alpha=alpha, beta=beta, gamma=gamma, phi=phi, depth=alpha**phi, width=beta**phi, resolution=resolution)


def _rounded_resolution(base_resolution: int, gamma: float, phi: float) -> int | None:
    """base x gamma^phi, rounded; None where it is far past MAX_RESOLUTION (checked in logs
    first: gamma^phi can overflow floats)."""
    if math.log10(base_resolution) + math.log10(gamma) * phi > math.log10(MAX_RESOLUTION + 2):
        return None
    return scaled_resolution(base_resolution, gamma**phi)


def _past_limit(resolution: int | None) -> bool:
    """Whether a rounded resolution (None: far past) is more than MAX_RESOLUTION: 4098 px
    passes the check in logs but rounds to 4100."""
    return resolution is None or resolution > MAX_RESOLUTION


def scaled_resolution(base_resolution: int, factor: float) -> int:
    """The base resolution times `factor`, rounded (`round_resolution`); the base itself where
    the factor is 1 (phi 0, or gamma 1): a base of 226 px stays 226, as the base is counted."""
    return base_resolution if factor == 1 else round_resolution(base_resolution * factor)


def _power(log10: float) -> str:
    """10**log10 written without overflowing: 38.34, or 1.5e+79 for huge values."""
    if log10 < 15:
        return f"{10**log10:.4g}"
    return f"{10 ** (log10 % 1):.2f}e+{int(log10)}"


MIN_TRAIN_RESOLUTION = 8  # images are stored for training at 8 px or more


def validate_resolution(resolution: int, what: str = "resolution", low: int = 1) -> None:
    """Raise UsageError for a side length that is not a whole number (224.0 and True are not)
    in low..MAX_RESOLUTION (counting takes 1 px; training, MIN_TRAIN_RESOLUTION)."""
    if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral):
        raise UsageError(f"{what} {resolution!r} is not allowed; it must be a whole number of pixels, {low}..{MAX_RESOLUTION}", param=what)
    if not low <= resolution <= MAX_RESOLUTION:
        raise UsageError(f"{what} {resolution} is not allowed; it must be {low}..{MAX_RESOLUTION} pixels", param=what)


def validate_multiplier(name: str, value: float) -> None:
    """Raise UsageError for a width or depth multiplier outside (0, MAX_MULTIPLIER]."""
    if not _is_number(value) or not 0 < value <= MAX_MULTIPLIER:
        raise UsageError(f"{name} = {_shown(value)} is not allowed; it must be a number in (0, {MAX_MULTIPLIER:g}]", param=name)


def _check_positive(name: str, value: object) -> None:
    """UsageError unless `value` is a finite number above 0: what the rounding rules take (the
    library validates before it rounds; this answers a direct call)."""
    if not _is_number(value) or not value > 0:
        raise UsageError(f"{name} = {_shown(value)} is not allowed; it must be a number > 0", param=name)


def _is_number(value: object) -> bool:
    """A finite real number, not a bool (True is 1 to Python) and not a numeric string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: object) -> str:
    """`value` in an error: a number as it is, anything else quoted ('1', not 1)."""
    return str(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else repr(value)


def parse_phi_list(spec: str) -> list[int]:
    """Parse '0-7', '1,3,5' or '2' into a sorted list of distinct integer phis in 0..MAX_PHI."""
    bounds: list[tuple[int, int]] = []
    try:
        for part in spec.replace(" ", "").split(","):
            lo_text, dash, hi_text = part[1:].partition("-") if part.startswith("-") else part.partition("-")
            lo = int(("-" + lo_text) if part.startswith("-") else lo_text)
            hi = int(hi_text) if dash else lo
            bounds.append((lo, hi))
    except ValueError:
        raise UsageError(
            f"phi {spec!r} is malformed; use an integer, a range like 0-7 or a list like 1,3,5", param="phi"
        ) from None
    if min(min(b) for b in bounds) < 0 or max(max(b) for b in bounds) > MAX_PHI:
        raise UsageError(f"phi {spec!r} is not allowed; every phi must be in 0..{MAX_PHI}", param="phi")
    for lo, hi in bounds:  # in bounds: the range written the other way round is allowed
        if lo > hi:
            raise UsageError(f"phi range {lo}-{hi} runs backwards; write it low to high, as {hi}-{lo}", param="phi")
    return sorted({phi for lo, hi in bounds for phi in range(lo, hi + 1)})
