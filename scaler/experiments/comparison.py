"""Compound scaling against single-dimension scaling at equal FLOPs, as an experiment: the
base scaled by each strategy's (alpha, beta, gamma) at phi = 1..K (nominal FLOPs growth T^phi),
plus the unscaled base, each trained with the search's proxy; one work item per (point,
repeat). The paper's Table 3 and Figures 3 and 8 in a study folder.

Strategies: `compound` (given coefficients, or a finished search's best), `width` (beta =
T^(1/2)), `depth` (alpha = T), `resolution` (gamma = T^(1/2)), and any named (alpha, beta,
gamma) whose product alpha*beta^2*gamma^2 is within 10% of T.

Verdicts (`scaler.statistics.difference_test`): the difference of mean top-1 against the
validation sample's noise (per image, paired on the shared validation images) plus, with 2 or
more repeats both sides finished, the seed's (the spread of the per-repeat differences, repeat
r of every network sharing its seed; with unequal counts, each side's spread; with one run on
a side, the other side's spread for both); exact McNemar for one run each. Rounding (channels to multiples of 8,
repeats rounded up) makes measured MACs stray from the nominal T^phi; each duel records the
ratio of measured MACs, and one more than 10% apart is flagged as not at equal MACs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from scaler.candidates import MAX_TARGET, ProxyBase, point_name
from scaler.counting import count_model
from scaler.data import Dataset
from scaler.errors import UsageError
from scaler.files import whole_numbers
from scaler.experiments.choices import COMPOUND, DEFAULT_STRATEGIES, SINGLE_DIMENSIONS
from scaler.experiments.proxy import PROXY_OPTIONS, ProxyExperiment, check_stored, train_outcome
from scaler.data.options import DataOptions
from scaler.experiments.repeats import ATTR_REPEATS, aggregate, candidate_state, counted_repeats, difference_of, group_by, repeats_in
from scaler.models.factory import short_name
from scaler.runtime import Runtime
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, compound_product, compound_scale, validate_coefficients
from scaler.states import State
from scaler.statistics import LEVEL
from scaler.study.experiment import Outcome, Record, Reporter, WorkItem, fingerprint, register_experiment
from scaler.study.results import read_outputs
from scaler.training import repeat_seed
from scaler.train_config import MAX_REPEATS, TrainConfig, check_repeats

SUMMARY_NAME = "compare.json"
BASE = "base"
MAX_COMPARE_PHI = 8
PRODUCT_TOLERANCE = 0.1  # a named strategy's alpha*beta^2*gamma^2 within 10% of T
MACS_TOLERANCE = 0.1  # a duel is at equal measured MACs when they differ by at most 10%
ATTR_FROM = "scaler_compound_from"  # the search folder whose best compound is (`compare --from`), absolute
ATTR_POINTS = "scaler_points"
RESULT_COLUMNS = [
    "point", "strategy", "phi", "alpha", "beta", "gamma", "depth_mult", "width_mult", "resolution",
    "params", "macs", "macs_ratio", "nominal_ratio", "top1", "top1_low", "top1_high", "top1_std", "repeats",
    "top5", "val_loss", "epochs", "train_seconds", "images_per_s", "state", "reason",
    "vs_base_p", "vs_base", "compound_vs_it_p", "compound_vs_it", "compound_macs_ratio",
]  # fmt: skip
TEXT_COLUMNS = ("strategy", "vs_base", "compound_vs_it")
NUMERIC_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in ("state", "reason", *TEXT_COLUMNS))
COUNT_COLUMNS = ("point", "phi", "resolution", "params", "macs", "repeats", "epochs")
# The verdicts that are not a test's outcome (see `verdict`).
UNKNOWN, NO_RESULT = "unknown", "no result"
# vs_base: this row against the unscaled base; compound_vs_it: compound at this row's phi
# against this row, and compound_macs_ratio compound's MACs over this row's, as the table's
# "compound vs it" and "compound MACs" columns and compare.json's duels read them.


@dataclass(frozen=True)
class Strategy:
    """One way to spend a step of FLOPs growth: (alpha, beta, gamma), applied phi times."""

    name: str
    alpha: float
    beta: float
    gamma: float

    @property
    def product(self) -> float:
        return compound_product(self.alpha, self.beta, self.gamma)


def strategies(text: str, target: float, compound: tuple[float, float, float]) -> tuple[Strategy, ...]:
    """Parse `--strategies`: comma-separated built-in names (compound, width, depth,
    resolution) and `name=alpha:beta:gamma` entries; compound is always included, first."""
    check_target(target)
    built_in = {
        COMPOUND: Strategy(COMPOUND, *compound),
        "width": Strategy("width", 1.0, math.sqrt(target), 1.0),
        "depth": Strategy("depth", target, 1.0, 1.0),
        "resolution": Strategy("resolution", 1.0, 1.0, math.sqrt(target)),
    }
    chosen: dict[str, Strategy] = {COMPOUND: built_in[COMPOUND]}
    named: set[str] = set()  # as given (compound is chosen without being named)
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, value = entry.partition("=")
        name = name.strip()
        if name in named:
            raise UsageError(f"strategy {name!r} is given twice; give each strategy once", param="strategies")
        named.add(name)
        if not sep:
            if name not in built_in:
                raise UsageError(
                    f"strategy {name!r} is unknown; use {', '.join(built_in)} or name=alpha:beta:gamma (e.g. fast=1.07:1.32:1.035)",
                    param="strategies",
                )
            chosen[name] = built_in[name]
            continue
        if not name.replace("-", "").replace("_", "").isalnum() or name in (*built_in, BASE):
            raise UsageError(f"strategy name {name!r} is not allowed; use letters, digits, - or _, not a built-in name", param="strategies")
        try:
            alpha, beta, gamma = (float(v) for v in value.split(":"))
        except ValueError:
            raise UsageError(f"strategy {entry!r} is malformed; use name=alpha:beta:gamma, e.g. fast=1.07:1.32:1.035", param="strategies") from None
        chosen[name] = Strategy(name, alpha, beta, gamma)
    if len(chosen) < 2:
        raise UsageError(f"{text!r} leaves nothing to compare compound with; name at least one of width, depth, resolution", param="strategies")
    seen: dict[tuple[float, float, float], str] = {}
    for strategy in list(chosen.values())[1:]:  # compound may equal one: the duel is then its own control
        point = (strategy.alpha, strategy.beta, strategy.gamma)
        if point in seen:
            raise UsageError(f"strategies {seen[point]} and {strategy.name} are both {point_name(*point)}: they would train "
                             "the same networks twice; keep one", param="strategies")
        seen[point] = strategy.name
    for strategy in chosen.values():
        # compound's coefficients come from the `compound` argument, the others from `text`
        check_strategy(strategy, target, param="compound" if strategy.name == COMPOUND else "strategies")
    return tuple(chosen.values())


def check_target(target: float) -> None:
    """UsageError unless the FLOPs growth per step of phi is in (1, MAX_TARGET]: at 1 no
    strategy would grow, and the single-dimension multipliers are undefined."""
    if not math.isfinite(target) or not 1 < target <= MAX_TARGET:
        raise UsageError(f"target = {target:g} is not allowed; it must be in (1, {MAX_TARGET:g}]", param="target")


def check_strategy(strategy: Strategy, target: float, *, param: str = "strategies") -> None:
    """UsageError (naming `param`) unless the coefficients are valid and spend T's FLOPs (within 10%)."""
    try:
        validate_coefficients(strategy.alpha, strategy.beta, strategy.gamma)
    except UsageError as exc:
        raise UsageError(f"strategy {strategy.name}: {exc}", param=param) from None
    if abs(strategy.product / target - 1) > PRODUCT_TOLERANCE:
        raise UsageError(
            f"strategy {strategy.name} ({strategy.alpha:g}, {strategy.beta:g}, {strategy.gamma:g}) has "
            f"alpha*beta^2*gamma^2 = {strategy.product:.3f}, more than {PRODUCT_TOLERANCE:.0%} from T = {target:g}: "
            "it would not compare at equal FLOPs",
            param=param,
        )


@dataclass(frozen=True)
class CompareConfig:
    """Everything that defines a comparison's results (the `Runtime` does not)."""

    base: ProxyBase = ProxyBase()
    data: DataOptions = DataOptions()
    train: TrainConfig = TrainConfig()
    target: float = 2.0
    max_phi: int = 3
    strategies: tuple[Strategy, ...] = strategies(",".join(DEFAULT_STRATEGIES), 2.0, (PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA))

    def validate(self) -> None:
        self.base.validate()
        self.data.validate()
        self.train.validate()
        check_target(self.target)
        if isinstance(self.max_phi, bool) or not isinstance(self.max_phi, int) or not 1 <= self.max_phi <= MAX_COMPARE_PHI:
            raise UsageError(f"phis = {self.max_phi!r} is not allowed; compare phi = 1..K with K an integer in 1..{MAX_COMPARE_PHI}", param="phis")
        if not self.strategies or self.strategies[0].name != COMPOUND:
            raise UsageError("a comparison needs the compound strategy", param="strategies")
        for strategy in self.strategies:
            check_strategy(strategy, self.target)
            try:  # the largest phi bounds every multiplier: refuse before anything is created
                compound_scale(strategy.alpha, strategy.beta, strategy.gamma, self.max_phi, self.base.resolution)
            except UsageError as exc:
                raise UsageError(f"strategy {strategy.name} at phi {self.max_phi}: {exc}", param="phis") from None

    def identity(self) -> dict:
        return {**asdict(self), "base": self.base.identity(), "train": self.train.identity()}

    def fingerprint(self) -> str:
        return fingerprint(self)

    def default_name(self) -> str:
        b = self.base
        return f"compare-{short_name(b.variant)}-r{b.resolution}-w{b.width:g}-phi1-{self.max_phi}-{self.fingerprint()}"

    @classmethod
    def from_identity(cls, data: dict) -> CompareConfig:
        return cls(
            base=ProxyBase.from_dict(data["base"]),
            data=DataOptions(**data["data"]),
            train=TrainConfig.from_identity(data["train"]),
            target=data["target"],
            max_phi=data["max_phi"],
            strategies=tuple(Strategy(**s) for s in data["strategies"]),
        )


@dataclass(frozen=True)
class Point:
    """One network of the comparison: a strategy at one phi (the base: strategy 'base', phi 0),
    with its multipliers and measured size."""

    index: int
    strategy: str
    phi: int
    alpha: float
    beta: float
    gamma: float
    depth_mult: float
    width_mult: float
    resolution: int
    params: int
    macs: int
    macs_ratio: float  # measured MACs / the base's
    nominal_ratio: float  # the strategy's alpha*beta^2*gamma^2, to the power phi


def build_points(config: CompareConfig) -> list[Point]:
    """The unscaled base, then for each phi every strategy's network, counted with fvcore."""
    config.validate()
    base = config.base
    base_count = count_model(base.spec(), base.resolution)
    points = [Point(0, BASE, 0, 1.0, 1.0, 1.0, 1.0, 1.0, base.resolution, base_count.params, base_count.macs, 1.0, 1.0)]
    for phi in range(1, config.max_phi + 1):
        for s in config.strategies:
            scale, count = base.scaled(s.alpha, s.beta, s.gamma, phi)
            points.append(
                Point(
                    len(points), s.name, phi, s.alpha, s.beta, s.gamma, scale.depth, scale.width, scale.resolution,
                    count.params, count.macs, count.macs / base_count.macs, scale.nominal_flops_ratio,
                )  # fmt: skip
            )
    return points


@register_experiment
class Comparison(ProxyExperiment):
    """Every strategy at phi = 1..K and the unscaled base, `repeats` trainings each. All points
    of one repeat share its seed (batch order, augmentation): paired differences between
    strategies are not blurred by different data orders."""

    kind = "compare"
    summary_name = SUMMARY_NAME
    options = {**PROXY_OPTIONS, "target": "--target", "max_phi": "--phis", "strategies": "--strategies",
               f"strategies.{COMPOUND}": "--compound/--from"}
    noun = "training"

    def __init__(self, config: CompareConfig, points: list[Point], repeats: int = 3, compound_from: str | None = None) -> None:
        check_repeats(repeats)
        self.config = config
        self.points = points
        self.repeats = repeats
        self.compound_from = compound_from  # the search folder compound's coefficients came from (`compare --from`)

    @classmethod
    def plan(cls, config: CompareConfig, repeats: int = 3, compound_from: str | None = None) -> Comparison:
        return cls(config, build_points(config), repeats, compound_from)

    @classmethod
    def config_from_identity(cls, identity: dict) -> CompareConfig:
        return CompareConfig.from_identity(identity)

    @classmethod
    def restore(cls, config: CompareConfig, attrs: Mapping[str, Any], repeats: int | None = None,
                compound_from: str | None = None) -> Comparison:
        """Repeats never shrink (`repeats_in`). The base imported here must build the stored
        networks (`check_stored`). The search compound came from is the one first recorded
        (a comparison begun before it was recorded takes it now)."""
        points = [Point(**p) for p in attrs[ATTR_POINTS]]
        check_stored(config.base, points)
        return cls(config, points, repeats_in(attrs, repeats), attrs.get(ATTR_FROM) or compound_from)

    def study_attrs(self) -> dict[str, Any]:
        return {ATTR_POINTS: [asdict(p) for p in self.points], ATTR_REPEATS: self.repeats,
                **({ATTR_FROM: self.compound_from} if self.compound_from else {})}

    def refresh(self, attrs: Mapping[str, Any]) -> None:
        self.repeats = repeats_in(attrs, self.repeats)

    # -- the work -------------------------------------------------------------------------
    def describe(self) -> str:
        phis = "phi 1" if self.config.max_phi == 1 else f"phi 1..{self.config.max_phi}"
        strategies = f"{len(self.config.strategies)} strateg{'y' if len(self.config.strategies) == 1 else 'ies'}"
        return f"{len(self.points)} networks (base + {strategies} x {phis}) x {self.repeats} repeat{'' if self.repeats == 1 else 's'}"

    def items(self) -> list[WorkItem]:
        return [WorkItem.of(point=p.index, repeat=r) for p in self.points for r in range(self.repeats)]

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {
            "point": optuna.distributions.CategoricalDistribution(list(range(len(self.points)))),
            "repeat": optuna.distributions.IntDistribution(0, MAX_REPEATS - 1),
        }

    def label(self, item: WorkItem) -> str:
        p = self.points[item["point"]]
        what = "base" if p.strategy == BASE else f"{p.strategy} phi={p.phi}"
        return f"{what} r={p.resolution} rep {item['repeat'] + 1}/{self.repeats}"

    def networks(self) -> list[Point]:
        return self.points

    def network(self, item: WorkItem) -> Point:
        return self.points[item["point"]]

    def run(self, item: WorkItem, context: Dataset, runtime: Runtime, reporter: Reporter) -> Outcome:
        point = self.points[item["point"]]
        seed = repeat_seed(self.config.train.seed, 0, item["repeat"])  # shared by all points of a repeat
        outcome = train_outcome(self.model(point, seed), context, point.resolution, replace(self.config.train, seed=seed), runtime, reporter)
        return replace(outcome, attrs={**outcome.attrs, "seed": seed})

    # -- results --------------------------------------------------------------------------
    def table(self, records: list[Record]) -> pd.DataFrame:
        """One row per point in plan order (base, then phi by phi): its repeats aggregated,
        the paired tests against the unscaled base and against compound at its phi, and its
        measured MACs over compound's at that phi."""
        groups = group_by(records, "point")
        compound_at = {p.phi: p for p in self.points if p.strategy == COMPOUND}
        rows = []
        for p in self.points:
            mine = groups.get(p.index, [])
            row = {**asdict(p), "point": p.index, **aggregate(mine)}
            row.pop("index")
            row["vs_base_p"], row["vs_base"] = verdict(mine, groups.get(0, []), p.strategy == BASE)
            compound = compound_at.get(p.phi)
            versus = p.strategy in (BASE, COMPOUND) or compound is None
            row["compound_vs_it_p"], row["compound_vs_it"] = verdict(groups.get(compound.index, []) if compound else [], mine, versus)
            row["compound_macs_ratio"] = None if versus else compound.macs / p.macs  # compound against itself: none
            rows.append(row)
        return pd.DataFrame(rows)[RESULT_COLUMNS]

    def summary(self, frame: pd.DataFrame, records: list[Record]) -> dict[str, Any]:
        """Per phi and strategy: compound's verdict against it, their measured MACs and whether
        they are one network; the tally of verdicts against the single dimensions, and those not
        at equal MACs."""
        duels = []
        for _, row in frame[~frame["strategy"].isin((BASE, COMPOUND))].iterrows():
            compound = frame[(frame["strategy"] == COMPOUND) & (frame["phi"] == row["phi"])].iloc[0]
            ratio = float(compound["macs"]) / float(row["macs"])
            duels.append({
                "phi": int(row["phi"]), "strategy": row["strategy"], "compound_top1": compound["top1"],
                "top1": row["top1"], "p": row["compound_vs_it_p"], "verdict": row["compound_vs_it"] or "pending",
                "compound_macs_ratio": ratio, "equal_macs": at_equal_macs(ratio),
                # rounding may build compound's very network (a resolution-only 1.41 and compound's 1.4 at 32 px;
                # channels rounded to multiples of 8): the same resolution, parameters and MACs, as a search tells them
                "same_network": all(compound[key] == row[key] for key in ("resolution", "params", "macs")),
            })  # fmt: skip
        single = [d for d in duels if d["strategy"] in SINGLE_DIMENSIONS]
        equal = [d for d in single if d["equal_macs"]]
        return {
            "seed": self.config.train.seed,
            "dataset_fingerprint": self.dataset_fingerprint,
            "points": len(self.points),
            "repeats": self.repeats,
            "strategies": {s.name: [s.alpha, s.beta, s.gamma] for s in self.config.strategies},
            "compound_from": self.compound_from,
            "compound_vs_single": duels,
            "tally": _tally(single),
            "tally_equal_macs": _tally(equal),  # the duels the paper's claim is about: same compute
            "unequal_macs": len(single) - len(equal),
        }


def _tally(duels: list[dict[str, Any]]) -> dict[str, int]:
    """How many duels got each verdict, in the order verdicts first appear."""
    return {word: sum(d["verdict"] == word for d in duels) for word in dict.fromkeys(d["verdict"] for d in duels)}


def at_equal_macs(ratio: float) -> bool:
    """Whether two networks whose MACs are in `ratio` count as equal: the larger is at most
    MACS_TOLERANCE above the smaller, whichever of the two it is."""
    return max(ratio, 1 / ratio) <= 1 + MACS_TOLERANCE


def verdict(a: list[Record], b: list[Record], skip: bool = False) -> tuple[float | None, str]:
    """(p, word) for 'a against b': 'better' or 'worse' where the test rejects equal top-1 at
    95%, else 'tied'. With 2 or more repeats finished on both sides, those common repeats,
    paired by seed; otherwise every counted repeat, unpaired (see `difference_test`). 'no
    result' where either finished without a score, 'unknown' where either hit the time cap or
    lacks per-image results; (None, '') while either is unfinished, or when `skip`."""
    states = candidate_state(a), candidate_state(b)
    if skip or not all(s.is_finished for s in states):
        return None, ""
    mine, theirs = counted_repeats(a), counted_repeats(b)
    if not mine or not theirs:
        return None, NO_RESULT
    if State.TIMEOUT in states:  # fewer epochs than planned: not comparable head-on
        return None, UNKNOWN
    common = {r.item["repeat"] for r in mine} & {r.item["repeat"] for r in theirs}
    paired = len(common) >= 2
    if paired:
        mine, theirs = (sorted((r for r in side if r.item["repeat"] in common), key=lambda r: r.item["repeat"]) for side in (mine, theirs))
    tested = difference_of(mine, theirs, paired=paired)
    if tested is None:
        return None, UNKNOWN
    difference, p = tested
    if p >= 1 - LEVEL:
        return p, "tied"
    return p, "better" if difference > 0 else "worse"


def read_comparison(folder: Path) -> tuple[pd.DataFrame, dict]:
    """A compare folder's results.csv and compare.json, checked as `read_outputs` checks them;
    a verdict not reached (an empty cell) reads as "", as the study's own table has it."""
    frame, info = read_outputs(folder, SUMMARY_NAME, RESULT_COLUMNS, numeric=NUMERIC_COLUMNS, text=TEXT_COLUMNS)
    return whole_numbers(frame[RESULT_COLUMNS], COUNT_COLUMNS), info
