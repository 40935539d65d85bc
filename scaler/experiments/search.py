"""The compound-scaling search as an experiment: one work item per (alpha, beta, gamma)
candidate, each a proxy training of the scaled base; results ranked by validation top-1."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from scaler.candidates import Candidate, CandidateSpace, ProxyBase, Range, build_candidates, left_out_text, point_name
from scaler.data import Dataset
from scaler.errors import UsageError, attributed_to
from scaler.experiments.choices import PRUNERS
from scaler.experiments.proxy import PROXY_OPTIONS, ProxyExperiment, check_stored, train_outcome
from scaler.data.options import DataOptions
from scaler.models import canonical_variant
from scaler.models.factory import short_name
from scaler.runtime import Runtime
from scaler.states import State, still_to_train
from scaler.experiments.repeats import (
    ATTR_REPEATS, aggregate, candidate_state, correctness, difference_of, group_by, per_repeat_top1, repeats_in,
)
from scaler.statistics import LEVEL, reaches_chance, split_half_reliability
from scaler.study.create import recorded_spelling
from scaler.study.results import read_outputs
from scaler.study.experiment import Outcome, Record, Reporter, WorkItem, fingerprint, register_experiment
from scaler.training import repeat_seed
from scaler.train_config import MAX_REPEATS, TrainConfig, check_repeats

SUMMARY_NAME = "search.json"
RESULT_COLUMNS = [
    "rank", "candidate", "alpha", "beta", "gamma", "product", "depth_mult", "width_mult",
    "resolution", "params", "macs", "macs_ratio", "top1", "top5", "val_loss", "epochs",
    "train_seconds", "images_per_s", "state", "reason",
    "top1_std", "top1_low", "top1_high", "repeats", "tied_with_best",
]  # fmt: skip
# Columns of results.csv before repeats existed: reports of such folders still read.
LEGACY_COLUMNS = RESULT_COLUMNS[:20]
# Checked where present: the repeat columns are missing from searches made before repeats.
NUMERIC_COLUMNS = (*(c for c in LEGACY_COLUMNS if c not in ("state", "reason")), "top1_std", "top1_low", "top1_high", "repeats")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search's results. Device, threads and workers do not (they
    are the `Runtime`)."""

    space: CandidateSpace = CandidateSpace()
    base: ProxyBase = ProxyBase()
    data: DataOptions = DataOptions()
    train: TrainConfig = TrainConfig()
    pruner: str = "none"
    flops_tolerance: float | None = None

    def validate(self) -> None:
        self.space.validate()
        self.base.validate()
        self.data.validate()
        self.train.validate()
        if self.pruner not in PRUNERS:
            raise UsageError(f"pruner {self.pruner!r} is not allowed; use one of {', '.join(PRUNERS)}", param="pruner")

    def identity(self) -> dict:
        """The configuration as plain data (what its fingerprint hashes)."""
        return {**asdict(self), "base": self.base.identity(), "train": self.train.identity()}

    def fingerprint(self) -> str:
        return fingerprint(self)

    def default_name(self) -> str:
        s, b = self.space, self.base
        return f"phi{s.phi:g}-{s.mode}-{short_name(b.variant)}-r{b.resolution}-w{b.width:g}-{self.fingerprint()}"

    def resumable(self, root: Path, name: str | None, *as_typed: SearchConfig) -> SearchConfig:
        """The configuration to run under `root`: this one, or the earlier spelling of the same
        options that the search folder records (`recorded_spelling`). Earlier spellings: the
        options `as_typed` (scaler recorded them so before it spelled paths, presets and
        default learning rates one way), and scaler 0.1's proxy of 10 classes, whatever the
        data had, so a search it began on data with fewer classes keeps that classifier."""
        # scaler before 2026-12-04 spelled paths, presets and lr one way but kept a surface
        # search's --tolerance as typed: that mix is a spelling of its own
        spellings = [self, *(replace(self, space=typed.space) for typed in as_typed), *as_typed]
        spellings += [replace(c, data=c.data.as_kept_before(typed.data.val_fraction)) for typed in as_typed for c in spellings]
        legacy = [replace(c, base=replace(c.base, num_classes=10)) for c in spellings]
        return recorded_spelling([*spellings, *legacy], root=root, name=name, summary_name=SUMMARY_NAME)

    @classmethod
    def from_identity(cls, data: dict) -> SearchConfig:
        space = dict(data["space"])
        for key in ("alpha", "beta", "gamma"):
            space[key] = Range(**space[key])
        return cls(
            space=CandidateSpace(**space),
            base=ProxyBase.from_dict(data["base"]),
            data=DataOptions(**data["data"]),
            train=TrainConfig.from_identity(data["train"]),
            pruner=data.get("pruner", "none"),  # the summaries of the first searches lack the two: neither existed
            flops_tolerance=data.get("flops_tolerance"),
        )


def candidate_label(candidate: Candidate) -> str:
    """A candidate in a progress line: its index, coefficients and resolution."""
    return (
        f"#{candidate.index} a={candidate.alpha:g} b={candidate.beta:g} g={candidate.gamma:.3g} "
        f"r={candidate.resolution}"
    )


SEARCH_OPTIONS = {
    **PROXY_OPTIONS, "space.mode": "--mode", "space.alpha": "--alpha-range", "space.beta": "--beta-range", "space.gamma": "--gamma-range",
    "space.target": "--target", "space.tolerance": "--tolerance", "space.phi": "--phi", "pruner": "--pruner", "flops_tolerance": "--flops-tolerance",
}  # fmt: skip


@register_experiment
class CompoundSearch(ProxyExperiment):
    """Step 1 of compound scaling: train every (alpha, beta, gamma) candidate on the proxy,
    `repeats` times with independent seeds; each (candidate, repeat) is one work item."""

    kind = "search"
    summary_name = SUMMARY_NAME
    options = SEARCH_OPTIONS

    def __init__(self, config: SearchConfig, candidates: list[Candidate], repeats: int = 1) -> None:
        check_repeats(repeats)
        self.config = config
        self.candidates = candidates
        self.repeats = repeats

    @classmethod
    def plan(cls, config: SearchConfig, repeats: int = 1) -> CompoundSearch:
        return cls(config, build_candidates(config.space, config.base, config.flops_tolerance), repeats)

    @classmethod
    def config_from_identity(cls, identity: dict) -> SearchConfig:
        return SearchConfig.from_identity(identity)

    @classmethod
    def restore(cls, config: SearchConfig, attrs: Mapping[str, Any], repeats: int | None = None) -> CompoundSearch:
        """Repeats never shrink (`repeats_in`). The base imported here must build the stored
        candidates (`check_stored`)."""
        candidates = [Candidate(**c) for c in attrs["scaler_candidates"]]
        check_stored(config.base, candidates)
        return cls(config, candidates, repeats_in(attrs, repeats))

    def study_attrs(self) -> dict[str, Any]:
        return {"scaler_candidates": [c.to_dict() for c in self.candidates], ATTR_REPEATS: self.repeats}

    def refresh(self, attrs: Mapping[str, Any]) -> None:
        """A search raised to more repeats while this worker ran: work on those too."""
        self.repeats = repeats_in(attrs, self.repeats)

    # -- the work -------------------------------------------------------------------------
    @property
    def noun(self) -> str:  # type: ignore[override]
        """A work item is a candidate, or with repeats one training of a candidate."""
        return "candidate" if self.repeats == 1 else "training"

    def describe(self) -> str:
        left = left_out_text(self.config.space, self.candidates, self.config.flops_tolerance)
        left_out = f" ({left}: see `scaler candidates`)" if left else ""
        candidates = "1 candidate (alone: nothing to rank it against)" if len(self.candidates) == 1 else f"{len(self.candidates)} candidates"
        if self.repeats == 1:
            return f"{candidates}{left_out}"
        return f"{candidates} x {self.repeats} repeats = {len(self.candidates) * self.repeats} trainings{left_out}"

    def items(self) -> list[WorkItem]:
        return [WorkItem.of(candidate=c.index, repeat=r) for c in self.candidates for r in range(self.repeats)]

    def item_of(self, params: Mapping[str, int]) -> WorkItem | None:
        """Trials written before repeats existed ran repeat 0."""
        return WorkItem.of(**{"repeat": 0, **params}) if "candidate" in params else None

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {
            "candidate": optuna.distributions.CategoricalDistribution(list(range(len(self.candidates)))),
            "repeat": optuna.distributions.IntDistribution(0, MAX_REPEATS - 1),
        }

    def label(self, item: WorkItem) -> str:
        text = candidate_label(self.candidates[item["candidate"]])
        return f"{text} rep {item['repeat'] + 1}/{self.repeats}" if self.repeats > 1 else text

    def pruner(self) -> optuna.pruners.BasePruner:
        """Val top-1 per epoch; with a budget in steps Hyperband finds its maximum resource
        from finished trials. Each repeat is judged like any trial, against all trials'
        values at the same epoch (one per item: `study.pruning`)."""
        if self.config.pruner == "halving":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        if self.config.pruner == "hyperband":
            epochs = "auto" if self.config.train.steps else self.config.train.epochs
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
        return optuna.pruners.NopPruner()

    def networks(self) -> list[Candidate]:
        return self.candidates

    def network(self, item: WorkItem) -> Candidate:
        return self.candidates[item["candidate"]]

    def run(self, item: WorkItem, context: Dataset, runtime: Runtime, reporter: Reporter) -> Outcome:
        candidate = self.candidates[item["candidate"]]
        seed = repeat_seed(self.config.train.seed, candidate.index, item["repeat"])
        config = replace(self.config.train, seed=seed)
        outcome = train_outcome(self.model(candidate, seed), context, candidate.resolution, config, runtime, reporter)
        return replace(outcome, attrs={**outcome.attrs, "seed": seed})

    # -- results --------------------------------------------------------------------------
    def table(self, records: list[Record]) -> pd.DataFrame:
        """One row per candidate, its repeats aggregated (see `aggregate`), ranked: complete
        by mean top-1 (ties: fewer MACs), then timed-out, then pruned, then the rest; and
        which candidates the data cannot tell from the best."""
        groups = group_by(records, "candidate")
        rows = []
        for candidate in self.candidates:
            row = {"candidate": candidate.index, **{key: getattr(candidate, key) for key in RESULT_COLUMNS[2:12]}}
            row.update(aggregate(groups.get(candidate.index, [])))
            rows.append(row)
        frame = rank(pd.DataFrame(rows))
        frame["tied_with_best"] = _tied_with_best(frame, groups)
        return frame

    def summary(self, frame: pd.DataFrame, records: list[Record]) -> dict[str, Any]:
        done = frame[frame["state"] == State.COMPLETE.value]
        complete = {c: g for c, g in group_by(records, "candidate").items() if candidate_state(g) is State.COMPLETE}
        scores = per_repeat_top1(list(complete.values()))  # a pruned candidate's partial top-1 would rank fewer epochs
        reliability = split_half_reliability(scores, seed=self.config.train.seed)
        # complete on the repeats the pruner let finish: see survivors_note
        pruned_repeats = [int(c) for c, g in complete.items() if any(r.state is State.PRUNED for r in g)]
        return {
            "seed": self.config.train.seed,
            "dataset_fingerprint": self.dataset_fingerprint,
            "candidates": len(self.candidates),
            "repeats": self.repeats,
            "pruned_repeats": sorted(pruned_repeats),
            "best": self._best(done),
            "tied_best": [int(c) for c in frame.loc[frame["tied_with_best"] == True, "candidate"]],  # noqa: E712
            "reliability": None if reliability is None else dict(zip(("spearman", "low", "high"), reliability)),
        }

    def _best(self, done: pd.DataFrame) -> dict[str, Any] | None:
        """The best complete row, with the points of the ranges that built its network too
        (`Candidate.same_network`) where there are any: a command that scales the best's
        coefficients to another phi says they would scale apart there."""
        if not len(done):
            return None
        best = done.iloc[0].to_dict()
        if same := next((c.same_network for c in self.candidates if c.index == int(best["candidate"])), ""):
            best["same_network"] = same
        return best


def _tied_with_best(frame: pd.DataFrame, groups: dict[int, list[Record]]) -> list[bool | None]:
    """Per row: whether the data cannot tell it from the best complete row (`difference_test`,
    unpaired: only repeat 0 of every candidate has the search's seed, the others seeds of
    their own, and one shared seed pairs little between networks that differ). True for the best itself; None
    for rows not complete (a pruned or timed-out accuracy comes from fewer epochs) and where
    per-image results were not stored."""
    complete = frame.index[frame["state"] == State.COMPLETE.value]
    if not len(complete):
        return [None] * len(frame)
    best_candidate = int(frame.loc[complete[0], "candidate"])
    best = groups.get(best_candidate, [])
    out: list[bool | None] = []
    for _, row in frame.iterrows():
        candidate = int(row["candidate"])
        if candidate == best_candidate:
            out.append(None if correctness(best) is None else True)  # unknown when nothing can be compared
            continue
        tested = difference_of(best, groups.get(candidate, [])) if row["state"] == State.COMPLETE.value else None
        out.append(None if tested is None else tested[1] >= 1 - LEVEL)
    return out


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort rows (complete by top-1 desc, ties fewer MACs; then timed out; then pruned; then
    the rest) and number them."""
    frame = frame.copy()
    frame["_group"] = [State(s).rank_group for s in frame["state"]]
    frame["_top1"] = pd.to_numeric(frame["top1"], errors="coerce").fillna(-1.0)
    frame = frame.sort_values(["_group", "_top1", "macs", "candidate"], ascending=[True, False, True, True])
    frame = frame.drop(columns=["_group", "_top1"]).reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame[[c for c in RESULT_COLUMNS if c in frame.columns]]


def read_results(folder: Path) -> tuple[pd.DataFrame, dict]:
    """A search folder's results.csv and search.json."""
    frame, info = read_outputs(folder, SUMMARY_NAME, LEGACY_COLUMNS, numeric=NUMERIC_COLUMNS)
    for column in ("top1_std", "top1_low", "top1_high", "repeats"):
        if column not in frame.columns:  # written before repeats: one run each
            frame[column] = 1 if column == "repeats" else np.nan
    if "tied_with_best" not in frame.columns:
        frame["tied_with_best"] = None
    return frame[RESULT_COLUMNS], info


def at_chance(info: dict) -> str | None:
    """Where a search's best candidate is not above chance (its top-1 interval reaches one in
    as many as the classes, as if they were equally frequent): the words for it, since no
    candidate is then told from a guess, and the ranking tells little (among equal top-1s the
    fewest MACs rank first). None otherwise, or where the summary does not say."""
    classes = ((info.get("config") or {}).get("base") or {}).get("num_classes")
    if (reached := reaches_chance((info.get("best") or {}).get("top1_low"), classes)) is None:
        return None
    return (f"the best candidate is not above chance: {reached}, so the ranking tells little; "
            f"train longer ({length_option(info)}), on more images or at a larger --base-resolution")


def length_option(info: dict) -> str:
    """The option that sets how long a search's trainings are: --steps where it was given."""
    return "--steps" if (((info.get("config") or {}).get("train") or {}).get("steps")) is not None else "--epochs"


def survivors_note(info: dict, best_only: bool = False) -> str | None:
    """Where complete candidates of a search with a pruner and repeats had repeats pruned (with
    `best_only`, where the best did): the words for it. Such a candidate's mean is over the
    repeats that passed every cut (a pruned repeat's partial top-1 is not comparable), so it
    leaves out a seed that fell below one and may read high. None otherwise, or where the
    summary does not say. Named by number within the search's own table only."""
    survivors = info.get("pruned_repeats") or []
    best = (info.get("best") or {}).get("candidate")
    among = best is not None and int(best) in survivors
    why = "over the repeats that passed every cut, leaving out a seed that fell below one, so it may read high"
    if best_only:
        return f"its best candidate had repeats pruned: its mean is {why}; a search without --pruner trains every repeat to its end" if among else None
    if not survivors:
        return None
    return (f"{len(survivors)} complete candidate(s) ({', '.join(f'#{c}' for c in survivors)}) had repeats pruned: their mean "
            f"is {why}{'; the best is one of them' if among else ''}; a search without --pruner trains every repeat to its end")


@dataclass(frozen=True, eq=False)
class SearchFolder:
    """A search folder's results, read once (`read_results`): what `scale --from` and `compare
    --from` take from it, every answer from the same reading (a `scaler worker --folder` may
    rewrite the files meanwhile)."""

    folder: Path
    frame: pd.DataFrame
    info: dict

    @classmethod
    def read(cls, folder: Path) -> SearchFolder:
        return cls(folder, *read_results(folder))

    def best_coefficients(self) -> tuple[float, float, float]:
        """(alpha, beta, gamma) of the finished search's best candidate; a usage error while any
        candidate is still to train (the best so far may not be the search's)."""
        folder, info = self.folder, self.info
        states = info.get("states", {})
        waiting = {s: states[s] for s in still_to_train(states)}
        if waiting:
            raise UsageError(f"search {folder} is not finished ({', '.join(f'{n} {s}' for s, n in waiting.items())}); "
                             "finish it with its own command first")
        best = info.get("best")
        if not best:
            states = ", ".join(f"{n} {s}" for s, n in info.get("states", {}).items())
            what = ("its candidates hit --max-seconds: give it more room under a new --name" if State.TIMEOUT.value in info.get("states", {})
                    else "fix the cause, then rerun it with --retry-failed")
            raise UsageError(f"search {folder} has no complete candidate ({states}); {what}")
        return float(best["alpha"]), float(best["beta"]), float(best["gamma"])

    def best_notes(self) -> list[str]:
        """Notes for a command that takes the best coefficients: when the best is not above
        chance (`at_chance`) or ranks on the repeats a pruner let finish (`survivors_note`),
        when the data cannot single it out (how many other complete candidates are tied with
        it), and when other points of the ranges built its network at the search's phi (they
        scale to other networks at another phi). Empty when none holds, or the search did not
        store it."""
        folder, frame, info = self.folder, self.frame, self.info
        best = info.get("best") or {}
        notes = [f"search {folder}: {chance}"] if (chance := at_chance(info)) else []
        if survivors := survivors_note(info, best_only=True):
            notes.append(f"search {folder}: {survivors}")
        tied = [c for c in info.get("tied_best") or [] if best and c != int(best["candidate"])]
        if tied:
            others = int((frame["state"] == State.COMPLETE.value).sum()) - 1
            # named by their points, as every table shows them (another command's table has no # of this search's)
            points = {int(r["candidate"]): point_name(r["alpha"], r["beta"], r["gamma"]) for _, r in frame.iterrows()}
            notes.append(f"the best candidate of {folder} is tied with {len(tied)} of the {others} other complete candidate(s) "
                         f"{', '.join(points.get(c, f'#{c}') for c in tied)}: the data cannot tell them apart, and the first "
                         "of the ranking (the highest mean top-1, then the fewest MACs) is taken")
        if same := best.get("same_network"):
            space = info.get("config", {}).get("space", {})  # a summary that stores same_network stores the space
            notes.append(f"at phi {space['phi']:g} the best's network was also built by {same}; at another phi those points "
                         f"scale to other networks: the coefficients taken are the best's, the one of them nearest "
                         f"alpha*beta^2*gamma^2 = {space['target']:g}")
        return notes

    def config(self) -> SearchConfig | None:
        """The configuration the study ran, from its summary (None where the summary does not
        hold it): the proxy `compare --from` trains where not told otherwise."""
        identity = self.info.get("config")
        return SearchConfig.from_identity(identity) if identity else None

    def check_base(self) -> None:
        """UsageError (param 'base') where the factory the study scaled, imported here, does not
        build its best candidate with the parameters the search counted
        (`ProxyBase.check_builds`): the network `scale --from` and `compare --from` take must be
        the one searched. Presets, and summaries that hold no configuration or best, are taken."""
        from scaler.models.registry import is_reference

        best, identity = self.info.get("best") or {}, self.info.get("config")
        if not identity or not is_reference(str(identity.get("base", {}).get("variant", ""))):
            return
        if all(key in best for key in ("width_mult", "depth_mult", "resolution", "params")):
            base = SearchConfig.from_identity(identity).base
            base.check_builds(float(best["width_mult"]), float(best["depth_mult"]), int(best["resolution"]), int(best["params"]))

    def data_notice(self, source: str, val_fraction: float) -> str | None:
        """Where the data `source` names may not be the data the search trained on, the line
        that says so: a warning where the files the search kept (`manifest`) and those `source`
        holds now differ in names or sizes, a note where only their modification times differ
        (most often a copy that did not keep them: the same data); where the search kept none
        (the synthetic set, or a search made before they were kept), a warning where one of the
        two is the synthetic set and the other is not. None where they agree, or where that
        cannot be told."""
        from scaler.data.dataset import SYNTHETIC_SOURCE, source_files
        from scaler.data.manifest import file_changes, kept_files

        chosen = "the coefficients were chosen on the search's data"
        kept = kept_files(self.folder)
        config = self.config()
        if kept is None:
            searched = config.data.source if config is not None else None
            if searched is not None and (searched == SYNTHETIC_SOURCE) != (source == SYNTHETIC_SOURCE):
                searched_on = "the built-in synthetic data" if searched == SYNTHETIC_SOURCE else searched
                return f"warning: {self.folder} searched on {searched_on}, not on {source}; {chosen}"
            return None
        with attributed_to("data"):
            files = source_files(source, val_fraction)
        if not files:
            return f"warning: {self.folder} searched on {len(kept)} image files, not on the {source} data; {chosen}"
        if change := file_changes(kept, source, files, times=False):
            return f"warning: {source} is not the data {self.folder} searched on: {change}; {chosen}"
        if retimed := file_changes(kept, source, files):
            return (f"note: {source} holds the files {self.folder} searched on by name and size, but {retimed[len(f'in {source}, '):]}: "
                    "the same data where it was copied, other data where those files were replaced")
        return None

    def variant(self) -> str | None:
        """The base network the study scaled, spelled as `canonical_variant` spells it (as
        recorded where no preset has that name any more; None where the summary does not say):
        the base `scale --from` lays out, and what `compare --from` warns about when it scales
        another."""
        variant = self.info.get("config", {}).get("base", {}).get("variant")
        if variant is None:
            return None
        try:
            return canonical_variant(str(variant))
        except UsageError:
            return str(variant)
