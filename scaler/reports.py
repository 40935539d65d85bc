"""Tables of measured figures, as pandas frames: what the CLI renders and what users analyse.

Each function returns one row per item with exact integers (params, MACs) and plain floats;
formatting numbers for people happens in `scaler.cli.render` (the sentences that compare two
searches, `SearchComparison.best_lines`, are built here: a library user gets them too).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from collections.abc import Hashable

from scaler.errors import UsageError, attributed_to
from scaler.candidates import ProxyBase, point_name
from scaler.counting import check_countable, count_model
from scaler.states import State
from scaler.statistics import agreement_p_value, bootstrap_agreement
from scaler.models import Preset, canonical_variant, check_network, get_family, get_preset, network_spec, resolve_variant
from scaler.models.factory import load_factory
from scaler.models.registry import is_reference
from scaler.scaling import ScaleLimitError, compound_scale, validate_resolution

# `scaler flops all`: the EfficientNet presets the paper prints figures for (B0-B7).
PUBLISHED_FAMILY = "efficientnet"


@dataclass(frozen=True)
class ModelChoice:
    """A network to count: a preset or custom multipliers, at a resolution."""

    label: str
    spec: Hashable
    resolution: int
    preset: Preset | None = None


def choose_models(
    variant: str | None,
    *,
    width: float | None = None,
    depth: float | None = None,
    resolution: int | None = None,
    num_classes: int = 1000,
) -> list[ModelChoice]:
    """Resolve 'b4', 'all' or custom multipliers (with optional overrides) to models to count."""
    if resolution is not None:
        validate_resolution(resolution)
    if variant is not None and variant.lower() == "all":
        presets = [p for p in get_family(PUBLISHED_FAMILY).presets.values() if p.paper_macs]
    elif variant is not None:
        presets = [resolve_variant(variant)[1]]
    else:
        spec = network_spec(width=width, depth=depth, num_classes=num_classes)
        label = f"w{spec.width:g}-d{spec.depth:g}"
        return [ModelChoice(label, spec, resolution or 224)]
    choices = []
    for preset in presets:
        name = preset.name
        spec = network_spec(name, width=width, depth=depth, num_classes=num_classes)
        # Published figures only apply to the preset as published (`--width 1.0` on b0 is b0).
        # Other classes are custom before the spec of 1000 is built: a factory made for 10
        # classes fails its check at 1000.
        custom = (num_classes != 1000 or (resolution is not None and resolution != preset.resolution)
                  or (spec.width, spec.depth) != (preset.width, preset.depth))  # no second build (a factory's at w1 d1)
        choices.append(ModelChoice(_label(name, spec, preset, num_classes), spec, resolution or preset.resolution, None if custom else preset))
    return choices


def _label(name: str, spec: Hashable, preset: Preset, num_classes: int) -> str:
    """A preset's name, with what an override changed ('b4 (w1 d1)', 'b4 (10 classes)'): the
    network it names is no longer the preset (the resolution has its own column)."""
    width, depth = getattr(spec, "width"), getattr(spec, "depth")
    changed = [f"w{_exact(width)}"] if width != preset.width else []
    changed += [f"d{_exact(depth)}"] if depth != preset.depth else []
    changed += [f"{num_classes} class{'' if num_classes == 1 else 'es'}"] if num_classes != 1000 else []
    return f"{name} ({' '.join(changed)})" if changed else name


def _exact(value: float) -> str:
    """A multiplier short where that is exact (1.2), in full where short would read as another
    (1.0000001, not 1)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _deviation(measured: float, published: float | None) -> float | None:
    return None if published is None else (measured - published) / published


def flops_table(models: list[ModelChoice]) -> pd.DataFrame:
    """One row per model: params, MACs (paper convention), FLOPs, fvcore total, paper figures."""
    rows = []
    for choice in models:
        count = count_model(choice.spec, choice.resolution)
        preset = choice.preset
        rows.append(
            {
                "model": choice.label,
                "width": choice.spec.width,
                "depth": choice.spec.depth,
                "resolution": choice.resolution,
                "classes": choice.spec.num_classes,
                "params": count.params,
                "macs": count.macs,
                "flops": count.flops,
                "fvcore_total": count.fvcore_total,
                "paper_params": preset.paper_params if preset else None,
                "params_deviation": _deviation(count.params, preset and preset.paper_params),
                "paper_macs": preset.paper_macs if preset else None,
                "macs_deviation": _deviation(count.macs, preset and preset.paper_macs),
            }
        )
    return pd.DataFrame(rows)


def stage_table(models: list[ModelChoice]) -> pd.DataFrame:
    """One row per (model, part): stem, stage1..7, head with params, MACs and output size; a
    usage error for a network whose parts scaler does not know (a factory's)."""
    rows = []
    for choice in models:
        count = count_model(choice.spec, choice.resolution)
        if not count.parts:
            raise UsageError(f"{choice.label} is counted as a whole (scaler does not know its stem, stages "
                             "and head); drop --by-stage for its totals", param="by_stage")
        for part in count.parts:
            rows.append(
                {
                    "model": choice.label,
                    "part": part.name,
                    "output_resolution": part.output_resolution,
                    "params": part.params,
                    "macs": part.macs,
                    "macs_share": part.macs / count.macs,
                    "fvcore_total": part.fvcore_total,
                }
            )
    return pd.DataFrame(rows)


def unsupported_ops(models: list[ModelChoice]) -> dict[str, int]:
    """Ops fvcore counted as zero (activations, gates, adds) over all models, with occurrences."""
    total: dict[str, int] = {}
    for choice in models:
        for op, n in count_model(choice.spec, choice.resolution).unsupported_ops.items():
            total[op] = total.get(op, 0) + n
    return total


FAMILY_BASE = "b0"  # the base `family_table` scales by default: the one whose family has official presets


def family_base(base: str, base_resolution: int | None = None) -> tuple[str, int]:
    """The base of a compound family as `family_table` reads it: its variant spelled one way
    (`canonical_variant`) and its resolution at phi = 0, the base's own unless given. A
    UsageError where it names no preset or no factory that imports here."""
    with attributed_to("base"):
        variant = canonical_variant(base)
        if is_reference(variant):
            load_factory(variant)
        return variant, get_preset(variant).resolution if base_resolution is None else base_resolution


def phis_that_fit(alpha: float, beta: float, gamma: float, phis: list[int], base_resolution: int) -> tuple[list[int], str | None]:
    """The phis, in order, up to the first at which the family cannot be built (a depth, width
    or resolution past scaler's limits), and what that one would give; all of them and None
    where each can. A coefficient past the limit at phi 1 stays an error: no phi but 0 fits."""
    for index, phi in enumerate(phis):
        try:
            compound_scale(alpha, beta, gamma, phi, base_resolution)
        except ScaleLimitError as exc:
            if exc.param != "phi":
                raise
            return phis[:index], exc.fault
    return phis, None


def family_table(
    alpha: float,
    beta: float,
    gamma: float,
    phis: list[int],
    *,
    base: str = FAMILY_BASE,
    base_resolution: int | None = None,
    num_classes: int = 1000,
) -> pd.DataFrame:
    """The compound family of `base` (a preset or a factory reference, at its own width and
    depth): one row per phi (each naming the base and the coefficients), d = alpha^phi, w = beta^phi, r = base resolution x gamma^phi,
    each network counted with fvcore. The base resolution defaults to the base's own (B0 224,
    B4 380, a factory 224). B0's rows stand beside the official preset B<phi> (the `preset*`
    columns, which no other base has: no other family was released as a compound family)."""
    variant, resolution = family_base(base, base_resolution)
    network = ProxyBase(variant=variant, resolution=resolution, width=1.0, num_classes=num_classes, zero_init=False)
    # Every phi is checked before any is counted: a bad one refuses at once, not after minutes.
    scales = [compound_scale(alpha, beta, gamma, phi, resolution) for phi in phis]
    specs = [network.spec(s.width, s.depth) for s in scales]
    for spec, scale in zip(specs, scales):
        with attributed_to("base"):  # a factory whose network cannot take the size is the --base's
            check_network(spec, scale.resolution)
        check_countable(spec, scale.resolution)
    base_count = count_model(network.spec(), compound_scale(alpha, beta, gamma, 0, resolution).resolution)
    rows = []
    for phi, scale, spec in zip(phis, scales, specs):
        count = count_model(spec, scale.resolution)
        row = {
            "base": variant,  # what the rows scale, so that a CSV or JSON of them says it alone
            "alpha": alpha,
            "beta": beta,
            "gamma": gamma,
            "phi": phi,
            # to 12 places, as a candidate's product: 1.1 ** 2 is 1.2100000000000002 in floats
            "depth_mult": round(scale.depth, 12),
            "width_mult": round(scale.width, 12),
            "resolution": scale.resolution,
            "params": count.params,
            "macs": count.macs,
            "macs_ratio": count.macs / base_count.macs,
            "nominal_ratio": scale.nominal_flops_ratio,
        }
        if network.variant == FAMILY_BASE:
            row.update(_official(f"b{phi}", num_classes))
        rows.append(row)
    return pd.DataFrame(rows)


def _official(name: str, num_classes: int) -> dict:
    """The `preset*` columns of a B0 family row: the released preset `name` (B<phi>) as
    published and measured at its native resolution; empty where none was released."""
    preset = get_family(PUBLISHED_FAMILY).presets.get(name)
    official = count_model(network_spec(preset.name, num_classes=num_classes), preset.resolution) if preset else None
    return {
        "preset": preset.name if preset else None,
        "preset_depth": preset.depth if preset else None,
        "preset_width": preset.width if preset else None,
        "preset_resolution": preset.resolution if preset else None,
        "preset_params": official.params if official else None,
        "preset_macs": official.macs if official else None,
    }


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """The finished rows (state complete) no other finished row beats on both top-1 (higher)
    and MACs (lower). Order and columns are kept."""
    scored = frame[(frame["state"] == State.COMPLETE.value) & pd.to_numeric(frame["top1"], errors="coerce").notna()]
    keep = []
    for i, row in scored.iterrows():
        dominated = (
            (scored["top1"] >= row["top1"])
            & (scored["macs"] <= row["macs"])
            & ((scored["top1"] > row["top1"]) | (scored["macs"] < row["macs"]))
        ).any()
        if not dominated:
            keep.append(i)
    return frame.loc[keep]


@dataclass(frozen=True)
class SearchComparison:
    """Two searches over the same candidates: rows side by side (`_a`, `_b` suffixes), rank
    agreement over the candidates complete in both, and what each best is in the other."""

    frame: pd.DataFrame
    shared: int
    scored: int
    spearman: tuple[float, float, float] | None  # (rho, 95% low, 95% high), bootstrap over candidates
    kendall: tuple[float, float, float] | None  # (tau-b, low, high), the same resamples
    spearman_p: float | None  # one-sided permutation p-value: could unrelated rankings agree as well?
    best_lines: list[str]
    other_networks: int = 0  # points both searched with another network there (another proxy): not matched


POINT_KEYS = ["alpha", "beta", "gamma"]
# What makes a point's network: two searches of other proxies (base resolution, base width or
# variant, phi, classes) train other networks at one (alpha, beta, gamma).
NETWORK_KEYS = ["resolution", "depth_mult", "width_mult", "params"]
COMPARE_KEYS = POINT_KEYS + NETWORK_KEYS


def compare_searches(a: pd.DataFrame, b: pd.DataFrame) -> SearchComparison:
    """Join two ranked search tables on the candidate: its point (alpha, beta, gamma) and its
    network (resolution, depth and width multipliers, params). A point trained as another
    network (another proxy: base resolution, width or variant, phi, classes; or the gamma-1
    rounding of searches before 2026-12-02) is counted in `other_networks` and named where it
    is a best."""
    keep = ["rank", "top1", "top1_low", "top1_high", "state", "tied_with_best"]
    frame = a[COMPARE_KEYS + keep].merge(b[COMPARE_KEYS + keep], on=COMPARE_KEYS, suffixes=("_a", "_b"), how="inner")
    points = a[COMPARE_KEYS].merge(b[COMPARE_KEYS], on=POINT_KEYS, suffixes=("_a", "_b"))
    other_networks = int(sum((points[f"{key}_a"] != points[f"{key}_b"]) for key in NETWORK_KEYS).astype(bool).sum())
    frame = frame.sort_values("rank_a").reset_index(drop=True)
    complete = (frame["state_a"] == State.COMPLETE.value) & (frame["state_b"] == State.COMPLETE.value)
    # a timed-out or pruned row's top-1 is of a shorter training: no difference with a full one
    frame["difference"] = (pd.to_numeric(frame["top1_b"], errors="coerce") - pd.to_numeric(frame["top1_a"], errors="coerce")).where(complete)
    both = frame[complete]
    scores_a, scores_b = both["top1_a"].astype(float), both["top1_b"].astype(float)
    agreement = bootstrap_agreement(scores_a, scores_b)
    spearman, kendall = agreement if agreement is not None else (None, None)
    spearman_p = agreement_p_value(scores_a, scores_b) if agreement is not None else None
    lines = []
    for name, table, other in (("A", a, "b"), ("B", b, "a")):
        own = table[table["state"] == State.COMPLETE.value].sort_values("rank")  # its own best, shared or not
        if not len(own):
            continue
        there = "B" if other == "b" else "A"
        candidate = point_name(own.iloc[0]["alpha"], own.iloc[0]["beta"], own.iloc[0]["gamma"])
        joined = frame.merge(own.iloc[:1][COMPARE_KEYS], on=COMPARE_KEYS)
        if not len(joined):
            other_table = b if other == "b" else a
            at = other_table.merge(own.iloc[:1][POINT_KEYS], on=POINT_KEYS)
            lines.append(f"best of {name}: {candidate} is not among {there}'s candidates"
                         + (_another_network(own.iloc[0], at.iloc[0], there) if len(at) else ""))
            continue
        best = joined.iloc[0]
        state = best[f"state_{other}"]
        if state != State.COMPLETE.value:  # its rank there would place it among unfinished work
            lines.append(f"best of {name}: {candidate} {_not_complete(state, there)}")
            continue
        rank = int(best[f"rank_{other}"])
        if rank == 1:  # a best is "tied with itself" in its own table: say what that means
            verdict = "its best there too"
        else:
            verdict = {True: "tied with its best there", False: "not tied with its best there"}.get(truth(best[f"tied_with_best_{other}"]), "tie unknown there")
        lines.append(f"best of {name}: {candidate} is rank {rank} in {there}, {verdict}")
    return SearchComparison(frame, len(frame), len(both), spearman, kendall, spearman_p, lines, other_networks)


def _another_network(mine: pd.Series, theirs: pd.Series, there: str) -> str:
    """How the other search's network at a point differs from this one's: its resolution
    where that differs, else its multipliers and size."""
    if mine["resolution"] != theirs["resolution"]:
        return f" at {int(mine['resolution'])} px ({there} trained it at {int(theirs['resolution'])} px)"
    differences = [f"{key} {theirs[key]:g} instead of {mine[key]:g}" for key in ("depth_mult", "width_mult") if mine[key] != theirs[key]]
    differences.append(f"params {int(theirs['params']):,} instead of {int(mine['params']):,}")
    return f" ({there} trained another network there: {', '.join(differences)})"


def _not_complete(state: object, there: str) -> str:
    """Where a candidate stands in the other search when it is not complete there: no rank,
    its state instead ("is not finished in B (state queued)")."""
    known = State._value2member_map_.get(state) if isinstance(state, str) else None
    shown = state if isinstance(state, str) and state else "unknown"
    if isinstance(known, State) and known.is_finished:  # failed, diverged, timed out, pruned
        return f"did not complete in {there} (state {shown})"
    return f"is not finished in {there} (state {shown})"


def truth(value: object) -> bool | None:
    """A tied_with_best cell as read back from CSV: True, False or unknown."""
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return bool(value)
