"""Candidate coefficients (alpha, beta, gamma) under alpha * beta^2 * gamma^2 ~= T.

Two ways to enumerate:

* `grid`: each coefficient on its own inclusive range; keep the points whose product is within
  `tolerance` of the target, bounds included (NNI's example keeps a strict < 0.1);
* `surface`: alpha and beta on their ranges, gamma solved exactly from the constraint; a point
  is dropped when the solved gamma falls outside gamma's range (in particular below 1); gamma's
  step is not used.

Each candidate is then a concrete network: the proxy base scaled by d = alpha^phi,
w = beta^phi, r = round(base_resolution * gamma^phi), with params and MACs counted by fvcore.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from scaler.errors import UsageError, attributed_to
from scaler.scaling import MAX_MULTIPLIER, MAX_PHI, MIN_TRAIN_RESOLUTION, CompoundScale, ScaleLimitError, compound_product, compound_scale, validate_multiplier, validate_resolution

MODES = ("grid", "surface")
MAX_TARGET = 64.0  # FLOPs growth per step of phi (the paper's is 2)
MAX_GRID_POINTS = 1_000_000  # points enumerated before the constraint filters them
_DECIMALS = 6  # grid values are rounded so 1.1 stays 1.1, not 1.1000000000000001

if TYPE_CHECKING:  # networks and their counting (torch, fvcore) are imported where a network is made
    from torch import nn

    from scaler.models import Preset

    from scaler.counting import ModelCount


@dataclass(frozen=True)
class Range:
    """An inclusive range start:stop:step of one coefficient."""

    start: float
    stop: float
    step: float

    def count(self) -> int:
        """How many values the range holds."""
        return int(math.floor((self.stop - self.start) / self.step + 1e-9)) + 1

    def values(self) -> list[float]:
        return [round(self.start + i * self.step, _DECIMALS) for i in range(self.count())]

    def __str__(self) -> str:
        return f"{self.start:g}:{self.stop:g}:{self.step:g}"


def parse_range(text: str, name: str) -> Range:
    """Parse 'start:stop:step' (or a single value) for coefficient `name`; each value >= 1."""
    parts = text.split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1:
        numbers = [numbers[0], numbers[0], 1.0]
    if len(numbers) != 3 or not all(math.isfinite(n) for n in numbers):
        raise UsageError(f"--{name}-range {text!r} is malformed; use start:stop:step, e.g. 1.0:2.0:0.1")
    start, stop, step = numbers
    if start < 1.0:
        raise UsageError(f"--{name}-range {text!r} is not allowed: {name} must be >= 1")
    if stop < start or step <= 0:
        raise UsageError(f"--{name}-range {text!r} is not allowed: need stop >= start and step > 0")
    if stop > start and step < 10**-_DECIMALS:  # values are kept to _DECIMALS places: finer steps repeat them
        raise UsageError(f"--{name}-range {text!r} is not allowed: the step must be >= {10**-_DECIMALS:g}")
    if any(abs(v - round(v, _DECIMALS)) > 1e-12 for v in (start, step)):  # rounded values would repeat or skip
        raise UsageError(f"--{name}-range {text!r} is not allowed: give start and step to at most {_DECIMALS} decimals")
    if (stop - start) / step > 10_000:
        raise UsageError(f"--{name}-range {text!r} has too many points (at most 10,000)")
    return Range(start, stop, step)


@dataclass(frozen=True)
class CandidateSpace:
    """Which (alpha, beta, gamma) to consider and the constraint they must satisfy."""

    mode: str = "grid"
    # A coarse default grid: the three single-dimension points (2, 1, 1), (1, 1.4, 1),
    # (1, 1, 1.4) and the three pairs (1.4, 1.2, 1), (1.4, 1, 1.2), (1, 1.2, 1.2). Six networks
    # that differ by more than a short proxy's noise, where 19 on a finer grid did not.
    alpha: Range = Range(1.0, 2.0, 0.2)
    beta: Range = Range(1.0, 1.4, 0.2)
    gamma: Range = Range(1.0, 1.4, 0.2)
    target: float = 2.0
    tolerance: float = 0.1
    phi: float = 1.0

    def validate(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"mode {self.mode!r} is not allowed; use one of {', '.join(MODES)}", param="mode")
        if not math.isfinite(self.target) or not 1.0 <= self.target <= MAX_TARGET:
            raise UsageError(f"target = {self.target:g} is not allowed; it must be in [1, {MAX_TARGET:g}]", param="target")
        if not math.isfinite(self.tolerance) or self.tolerance <= 0:
            raise UsageError(f"tolerance = {self.tolerance:g} is not allowed; it must be > 0", param="tolerance")
        if not math.isfinite(self.phi) or not 0 < self.phi <= MAX_PHI:
            raise UsageError(f"phi = {self.phi:g} is not allowed; a search needs 0 < phi <= {MAX_PHI}", param="phi")
        points = self.alpha.count() * self.beta.count() * (self.gamma.count() if self.mode == "grid" else 1)
        if points > MAX_GRID_POINTS:
            raise UsageError(
                f"the ranges span {points:,} grid points, more than {MAX_GRID_POINTS:,}; use coarser steps or narrower ranges"
            )

    def canonical(self) -> CandidateSpace:
        """The same space spelled one way: surface mode does not use the tolerance, so it is
        left at its default there (one study, whichever tolerance was typed)."""
        return replace(self, tolerance=CandidateSpace.tolerance) if self.mode == "surface" else self

    def coefficients(self) -> list[tuple[float, float, float]]:
        """The (alpha, beta, gamma) points that satisfy the constraint, in enumeration order."""
        self.validate()
        points = []
        if self.mode == "grid":
            for a in self.alpha.values():
                for b in self.beta.values():
                    for g in self.gamma.values():
                        if abs(compound_product(a, b, g) - self.target) <= self.tolerance + 1e-12:
                            points.append((a, b, g))
        else:
            for a in self.alpha.values():
                for b in self.beta.values():
                    g = math.sqrt(self.target / (a * b * b))
                    if self.gamma.start - 1e-12 <= g <= self.gamma.stop + 1e-12:
                        # within the slack of the bounds: onto them (1.1 ** 2 is 1.2100000000000002, so
                        # T = 1.21 solves gamma = 0.9999999999999999, which compound_scale refuses)
                        points.append((a, b, min(max(g, self.gamma.start), self.gamma.stop)))
        if not points:
            raise UsageError(self._why_empty())
        return points

    def _why_empty(self) -> str:
        if self.mode == "grid":
            grid = [
                compound_product(a, b, g)
                for a in self.alpha.values()
                for b in self.beta.values()
                for g in self.gamma.values()
            ]
            closest = min(grid, key=lambda p: abs(p - self.target))
            return (
                f"no candidate: none of the {len(grid)} grid points has |alpha*beta^2*gamma^2 - "
                f"{self.target:g}| <= {self.tolerance:g} (closest product {closest:.4f}); "
                "widen the ranges or raise --tolerance"
            )
        return (
            f"no candidate: for every (alpha, beta) on the grid the solved gamma = "
            f"sqrt({self.target:g} / (alpha*beta^2)) falls outside --gamma-range {self.gamma} "
            "(gamma must be >= 1); lower the alpha/beta ranges or raise --target"
        )


@dataclass(frozen=True)
class ProxyBase:
    """The network a search scales: a preset, its own width multiplier and its resolution, and
    how its networks start: `zero_init` sets every residual branch to zero first
    (`scaler.models.init`), which makes a short proxy's result depend far less on the seed.
    Configurations stored without it (before it existed) trained with the standard start."""

    variant: str = "b0"
    resolution: int = 64
    width: float = 0.5
    num_classes: int = 10
    zero_init: bool = True

    @classmethod
    def from_dict(cls, data: dict) -> ProxyBase:
        """A stored base; one stored before `zero_init` existed trained without it."""
        return cls(**{"zero_init": False, **data})

    def identity(self) -> dict:
        """The base as plain data; `zero_init` is left out when off, so a study stored before
        it existed keeps its fingerprint under `--standard-init`."""
        data = asdict(self)
        if not self.zero_init:
            del data["zero_init"]
        return data

    def canonical(self) -> ProxyBase:
        """The same base with its variant spelled one way (`canonical_variant`): 'B0' and
        'efficientnet-b0' name the study of 'b0'."""
        from scaler.models import canonical_variant

        with attributed_to("base"):
            return replace(self, variant=canonical_variant(self.variant))

    def validate(self) -> None:
        from scaler.models import check_network

        validate_resolution(self.resolution, what="base resolution", low=MIN_TRAIN_RESOLUTION)
        validate_multiplier("base width", self.width)
        with attributed_to("base"):  # a factory's fault is the --base that names it
            check_network(self.spec(), self.resolution)

    def spec(self, width: float = 1.0, depth: float = 1.0) -> Hashable:
        """The base scaled by extra width and depth multipliers (base width applied first)."""
        from scaler.models import network_spec

        base = self._preset()
        with attributed_to("base"):  # a factory's fault is the --base that names it
            return network_spec(
                self.variant,
                width=base.width * self.width * width,
                depth=base.depth * depth,
                num_classes=self.num_classes,
            )

    def check_builds(self, width: float, depth: float, resolution: int, params: int) -> None:
        """UsageError (param 'base') unless a factory base, imported here, builds at the extra
        `width` and `depth` a network of the `params` a study counted for it (at `resolution`,
        where a lazy module's parameters take their shape). A factory file read from another
        folder than the study's (a relative path), or edited since, would otherwise be trained
        or scaled under the counted network's name. Presets are scaler's own networks and are
        not rebuilt."""
        import torch

        from scaler.models import check_network
        from scaler.models.factory import read_where
        from scaler.models.registry import is_reference
        from scaler.random_state import generators_kept
        from scaler.training import shape_lazy_parameters

        if not is_reference(self.variant):
            return
        spec = self.spec(width, depth)
        with generators_kept(), torch.device("cpu"):
            model = self.build(width, depth)
            if any(torch.nn.parameter.is_lazy(p) for p in model.parameters()):  # shaped by a forward pass
                with attributed_to("base"):  # one that fails at this size is refused in one line, as everywhere
                    check_network(spec, resolution)
                shape_lazy_parameters(model, resolution)
            built = sum(p.numel() for p in model.parameters())
        if built != params:
            raise UsageError(
                f"factory {self.variant!r}{read_where(self.variant)} builds {built:,} parameters when called with "
                f"width={spec.width:g}, depth={spec.depth:g}, num_classes={spec.num_classes}, where the study counted "
                f"{params:,}: it is not the network the study counted (another file or module of that name, or one "
                "edited since)", param="base")

    def zero_init_note(self) -> str | None:
        """Where `zero_init` is asked of a factory base none of whose modules can start at zero,
        the words for it (`scaler.models.init.zero_init_note`); None otherwise."""
        from scaler.models.init import zero_init_note

        return zero_init_note(self.variant, self.spec()) if self.zero_init else None

    def scaled(self, alpha: float, beta: float, gamma: float, phi: float) -> tuple[CompoundScale, ModelCount]:
        """The compound step (alpha, beta, gamma) at `phi` from this base, and its network
        counted with fvcore (cached): how every study sizes a scaled network."""
        from scaler.counting import count_model
        from scaler.models import check_network

        scale = compound_scale(alpha, beta, gamma, phi, self.resolution)
        self._check_within_limits(scale)
        spec = self.spec(scale.width, scale.depth)
        with attributed_to("base"):  # a network that cannot take its size is the --base's
            check_network(spec, scale.resolution)
        return scale, count_model(spec, scale.resolution)

    def _preset(self) -> Preset:
        """The base variant's own width and depth (before --base-width and scaling), from its
        preset: a factory is not built (nor checked) at width 1, depth 1, which no candidate uses."""
        from scaler.models import resolve_variant

        with attributed_to("base"):  # an unknown preset is the --base's fault
            return resolve_variant(self.variant)[1]

    def _check_within_limits(self, scale: CompoundScale) -> None:
        """ScaleLimitError where the base's own width (--base-width included) or depth times
        beta^phi or alpha^phi passes MAX_MULTIPLIER (compound_scale checks the powers alone):
        the network's check read 'width = 16.799999999999997 is not allowed', naming no option."""
        own = self._preset()
        for what, name, start, coefficient, grown, param in (
            ("width", "beta", own.width * self.width, scale.beta, scale.width, "base_width"),
            ("depth", "alpha", own.depth, scale.alpha, scale.depth, "phi"),
        ):
            if start * grown > MAX_MULTIPLIER:  # as the network's own check
                raise ScaleLimitError(
                    f"phi {scale.phi:g} gives {what} {start:g} (the base's) x {coefficient:g}^{scale.phi:g} = {start * grown:.4g}, "
                    f"more than {MAX_MULTIPLIER:g}",
                    f"lower phi or {name}" + (", or give a smaller --base-width" if param == "base_width" else ""), param=param)

    def build(self, width: float = 1.0, depth: float = 1.0) -> nn.Module:
        """The module of `spec(width, depth)`, from its family, residual branches at zero
        when `zero_init`."""
        from scaler.models import family_of
        from scaler.models.init import zero_init_residuals

        spec = self.spec(width, depth)
        model = family_of(spec).build(spec)
        if self.zero_init:
            zero_init_residuals(model)
        return model


@dataclass(frozen=True)
class Candidate:
    """One point of the search with its concrete network and measured size."""

    index: int
    alpha: float
    beta: float
    gamma: float
    product: float
    depth_mult: float
    width_mult: float
    resolution: int
    params: int
    macs: int
    macs_ratio: float  # measured MACs / the base's MACs
    # T ** phi, the MACs ratio every candidate of the search aims at (`scaler candidates`' target_ratio;
    # not the point's own product ** phi, which `scale` and `compare` call nominal_ratio)
    nominal_ratio: float
    # Other points of the ranges whose rounding builds this very network, left out of the
    # search ("(1.8, 1, 1.054)", "; "-separated); empty for none, and for studies stored before.
    same_network: str = ""

    def to_dict(self) -> dict:
        """The candidate as stored in a study; an empty `same_network` is left out, so a study
        stores its candidates as scalers before it did (which cannot read the field)."""
        data = asdict(self)
        if not self.same_network:
            del data["same_network"]
        return data


def point_name(alpha: float, beta: float, gamma: float) -> str:
    """A candidate named by its point, as the tables show it: '(1.2, 1.1, 1.15)' (what the
    messages, notes and plots name it by: a study's own number means nothing beside another's)."""
    return f"({alpha:g}, {beta:g}, {gamma:.4g})"


def network_key(count: ModelCount) -> tuple:
    """What tells two counted networks apart: resolution, and params and MACs of every part.
    Points whose rounded depth, width and resolution coincide have equal keys."""
    return (count.resolution, count.params, count.macs, tuple((p.name, p.params, p.macs) for p in count.parts))


def merged_points(candidates: list[Candidate]) -> int:
    """How many points of the ranges were left out for building a candidate's network."""
    return sum(len(c.same_network.split("; ")) for c in candidates if c.same_network)


def dropped_points(space: CandidateSpace, candidates: list[Candidate]) -> int:
    """How many points of the ranges `build_candidates` dropped for --flops-tolerance: those
    neither a candidate nor merged into one (`merged_points`)."""
    return len(space.coefficients()) - len(candidates) - merged_points(candidates)


def left_out_text(space: CandidateSpace, candidates: list[Candidate], tolerance: float | None) -> str:
    """What of the ranges is not among `candidates`, for a title or a log line ('' if nothing):
    points that build a kept candidate's network, and points --flops-tolerance dropped."""
    merged = merged_points(candidates)
    dropped = dropped_points(space, candidates) if tolerance is not None else 0  # nothing else drops points
    parts = [f"{merged} more point(s) of the ranges build one of their networks"] if merged else []
    if dropped > 0:  # never negative, unless an older scaler enumerated the ranges otherwise
        parts.append(f"{dropped} point(s) dropped by --flops-tolerance {tolerance:g} (measured MACs ratio off "
                     f"{space.target ** space.phi:.3f} by more)")
    return "; ".join(parts)


def build_candidates(
    space: CandidateSpace, base: ProxyBase, flops_tolerance: float | None = None,
    on_counted: Callable[[int, int], None] | None = None,
) -> list[Candidate]:
    """Enumerate the space and count each candidate; optionally drop those whose measured MACs
    ratio strays from target^phi by more than `flops_tolerance` (relative). Points that build
    the same network (depth rounded up per stage, width to channels, resolution to a multiple
    of 4) are one candidate: the point nearest the constraint (then the first), naming the
    others in `same_network`; training them apart would rank one network against itself.
    `on_counted(done, total)` follows the counting, point by point (a large grid takes minutes)."""
    from scaler.counting import count_model

    base.validate()
    if flops_tolerance is not None and not flops_tolerance > 0:
        raise UsageError(f"flops tolerance = {flops_tolerance:g} is not allowed; it must be > 0", param="flops_tolerance")
    base_macs = count_model(base.spec(), base.resolution).macs
    nominal = space.target**space.phi
    networks: dict[tuple, list[Candidate]] = {}
    points = space.coefficients()
    for position, (alpha, beta, gamma) in enumerate(points):
        if on_counted is not None:
            on_counted(position, len(points))
        try:
            scale, count = base.scaled(alpha, beta, gamma, space.phi)
        except ScaleLimitError as exc:  # a point of the ranges, not --phi alone, is at fault
            smaller = ", or give a smaller --base-width" if exc.param == "base_width" else ""
            raise UsageError(f"candidate {point_name(alpha, beta, gamma)} of the ranges: {exc.fault}; narrow the ranges or lower phi{smaller}") from None
        ratio = count.macs / base_macs
        if flops_tolerance is not None and abs(ratio / nominal - 1) > flops_tolerance:
            continue
        networks.setdefault(network_key(count), []).append(
            Candidate(
                index=position,  # renumbered below, over the points kept
                alpha=alpha,
                beta=beta,
                gamma=gamma,
                # to 12 places: 1.4**2 is 1.9599999999999997 in floats, and tables and CSVs show it
                product=round(compound_product(alpha, beta, gamma), 12),
                depth_mult=scale.depth,
                width_mult=scale.width,
                resolution=scale.resolution,
                params=count.params,
                macs=count.macs,
                macs_ratio=ratio,
                nominal_ratio=nominal,
            )
        )
    kept = []
    for points in networks.values():
        best = min(points, key=lambda c: abs(c.product - space.target))  # the first of equals
        others = "; ".join(point_name(c.alpha, c.beta, c.gamma) for c in points if c is not best)
        kept.append(replace(best, same_network=others))
    candidates = [replace(c, index=i) for i, c in enumerate(sorted(kept, key=lambda c: c.index))]
    if not candidates:
        raise UsageError(
            f"no candidate: every point's measured MACs ratio strays from {nominal:.3f} by more "
            f"than --flops-tolerance {flops_tolerance:g}; raise it or drop the flag"
        )
    return candidates
