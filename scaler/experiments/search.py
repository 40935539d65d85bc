"""The compound-scaling search as an experiment: one work item per (alpha, beta, gamma)
candidate, each a proxy training of the scaled base; results ranked by validation top-1."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from torch import nn

from scaler.candidates import Candidate, CandidateSpace, ProxyBase, Range, build_candidates
from scaler.data import Dataset
from scaler.errors import UsageError
from scaler.experiments.proxy import DataOptions, estimate_seconds, train_outcome
from scaler.runtime import Runtime
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA
from scaler.states import State
from scaler.study.engine import read_outputs
from scaler.study.experiment import Experiment, Outcome, Record, Reporter, WorkItem, fingerprint, register_experiment
from scaler.training import TrainConfig, seed_everything

PRUNERS = ("none", "halving", "hyperband")
SUMMARY_NAME = "search.json"
RESULT_COLUMNS = [
    "rank", "candidate", "alpha", "beta", "gamma", "product", "depth_mult", "width_mult",
    "resolution", "params", "macs", "macs_ratio", "top1", "top5", "val_loss", "epochs",
    "train_seconds", "images_per_s", "state", "reason",
]  # fmt: skip
_METRICS = ("top1", "top5", "val_loss", "epochs", "train_seconds", "images_per_s")
NUMERIC_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in ("state", "reason"))


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
        return asdict(self)

    def fingerprint(self) -> str:
        return fingerprint(self)

    def default_name(self) -> str:
        s, b = self.space, self.base
        return f"phi{s.phi:g}-{s.mode}-{b.variant}-r{b.resolution}-w{b.width:g}-{self.fingerprint()}"

    @classmethod
    def from_identity(cls, data: dict) -> SearchConfig:
        space = dict(data["space"])
        for key in ("alpha", "beta", "gamma"):
            space[key] = Range(**space[key])
        return cls(
            space=CandidateSpace(**space),
            base=ProxyBase(**data["base"]),
            data=DataOptions(**data["data"]),
            train=TrainConfig(**data["train"]),
            pruner=data["pruner"],
            flops_tolerance=data["flops_tolerance"],
        )


def describe(candidate: Candidate) -> str:
    """A candidate in a progress line: its index, coefficients and resolution."""
    return (
        f"#{candidate.index} a={candidate.alpha:g} b={candidate.beta:g} g={candidate.gamma:.3g} "
        f"r={candidate.resolution}"
    )


@register_experiment
class CompoundSearch(Experiment):
    """Step 1 of compound scaling: train every (alpha, beta, gamma) candidate on the proxy."""

    kind = "search"
    noun = "candidate"
    summary_name = SUMMARY_NAME

    def __init__(self, config: SearchConfig, candidates: list[Candidate]) -> None:
        self.config = config
        self.candidates = candidates
        self.dataset_fingerprint: str | None = None

    @classmethod
    def plan(cls, config: SearchConfig) -> CompoundSearch:
        return cls(config, build_candidates(config.space, config.base, config.flops_tolerance))

    @classmethod
    def config_from_identity(cls, identity: dict) -> SearchConfig:
        return SearchConfig.from_identity(identity)

    @classmethod
    def restore(cls, config: SearchConfig, attrs: Mapping[str, Any]) -> CompoundSearch:
        return cls(config, [Candidate(**c) for c in attrs["scaler_candidates"]])

    def study_attrs(self) -> dict[str, Any]:
        return {"scaler_candidates": [c.to_dict() for c in self.candidates]}

    # -- the work -------------------------------------------------------------------------
    def items(self) -> list[WorkItem]:
        return [WorkItem.of(candidate=c.index) for c in self.candidates]

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {"candidate": optuna.distributions.CategoricalDistribution(list(range(len(self.candidates))))}

    def label(self, item: WorkItem) -> str:
        return describe(self.candidates[item["candidate"]])

    def pruner(self) -> optuna.pruners.BasePruner:
        """Val top-1 per epoch; with a budget in steps Hyperband finds its maximum resource
        from finished trials."""
        if self.config.pruner == "halving":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        if self.config.pruner == "hyperband":
            epochs = "auto" if self.config.train.steps else self.config.train.epochs
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
        return optuna.pruners.NopPruner()

    def prepare(self, runtime: Runtime) -> Dataset:
        """The search's data at a storage resolution that serves its largest candidate."""
        storage_resolution = max(c.resolution for c in self.candidates)
        dataset = self.config.data.load(storage_resolution, self.config.train.seed, runtime)
        if dataset.num_classes != self.config.base.num_classes:
            raise UsageError(
                f"data {self.config.data.source} has {dataset.num_classes} classes, the search's proxy "
                f"{self.config.base.num_classes}: the data changed since the search started; restore it or pick a new --name"
            )
        self.dataset_fingerprint = dataset.fingerprint
        return dataset

    def context_fingerprint(self, context: Dataset) -> str:
        return context.fingerprint

    def epochs(self, context: Dataset) -> int:
        return self.config.train.planned_epochs(len(context.train))

    def model(self, candidate: Candidate) -> nn.Module:
        """The proxy network of one candidate, seeded so every candidate starts alike."""
        seed_everything(self.config.train.seed)
        return self.config.base.build(candidate.width_mult, candidate.depth_mult)

    def run(self, item: WorkItem, context: Dataset, runtime: Runtime, reporter: Reporter) -> Outcome:
        candidate = self.candidates[item["candidate"]]
        return train_outcome(self.model(candidate), context, candidate.resolution, self.config.train, runtime, reporter)

    def estimate_seconds(self, context: Dataset, runtime: Runtime, items: list[WorkItem]) -> tuple[float, str]:
        """Times the median-MACs candidate of `items`, then scales by each one's MACs."""
        if not items:
            return 0.0, "nothing left to train"
        chosen = sorted((self.candidates[i["candidate"]] for i in items), key=lambda c: c.macs)[len(items) // 2]
        seconds, images_per_s = estimate_seconds(
            lambda: self.model(chosen), chosen.resolution, self.config.base.num_classes, context, self.config.train, runtime
        )
        total = sum(seconds * self.candidates[i["candidate"]].macs / chosen.macs for i in items)
        return total, f"measured {images_per_s:.0f} img/s on the median candidate"

    # -- results --------------------------------------------------------------------------
    def table(self, records: list[Record]) -> pd.DataFrame:
        """One row per candidate, ranked: complete by top-1 (ties: fewer MACs), then
        timed-out, then pruned, then the rest (whose partial metrics are not shown)."""
        rows = []
        for record in records:
            candidate = self.candidates[record.item["candidate"]]
            row = {"candidate": candidate.index, **{key: getattr(candidate, key) for key in RESULT_COLUMNS[2:12]}}
            row.update({key: record.attrs.get(key) for key in _METRICS})
            row.update(state=record.state.value, reason=record.reason)
            rows.append(row)
        return rank(pd.DataFrame(rows))

    def summary(self, frame: pd.DataFrame) -> dict[str, Any]:
        done = frame[frame["state"] == State.COMPLETE.value]
        return {
            "seed": self.config.train.seed,
            "dataset_fingerprint": self.dataset_fingerprint,
            "candidates": len(self.candidates),
            "best": done.iloc[0].to_dict() if len(done) else None,
        }


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort rows (complete by top-1 desc, ties fewer MACs; then timed out; then pruned; then
    the rest) and number them."""
    frame = frame.copy()
    frame["_group"] = [State(s).rank_group for s in frame["state"]]
    frame["_top1"] = pd.to_numeric(frame["top1"], errors="coerce").fillna(-1.0)
    frame = frame.sort_values(["_group", "_top1", "macs", "candidate"], ascending=[True, False, True, True])
    frame = frame.drop(columns=["_group", "_top1"]).reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame[RESULT_COLUMNS]


def is_paper_point(row: pd.Series | dict) -> bool:
    return all(
        math.isclose(float(row[k]), v, abs_tol=1e-9)
        for k, v in (("alpha", PAPER_ALPHA), ("beta", PAPER_BETA), ("gamma", PAPER_GAMMA))
    )


def read_results(folder: Path) -> tuple[pd.DataFrame, dict]:
    """A search folder's results.csv and search.json."""
    return read_outputs(folder, SUMMARY_NAME, RESULT_COLUMNS, numeric=NUMERIC_COLUMNS)


def best_coefficients(folder: Path) -> tuple[float, float, float]:
    """(alpha, beta, gamma) of a search's best finished candidate."""
    _, info = read_results(folder)
    best = info.get("best")
    if not best:
        states = ", ".join(f"{n} {s}" for s, n in info.get("states", {}).items())
        unfinished = any(not State(s).is_finished for s in info.get("states", {}) if s in State._value2member_map_)
        what = "run or resume it first" if unfinished else "fix the cause, then rerun it with --retry-failed"
        raise UsageError(f"search {folder} has no complete candidate ({states}); {what}")
    return float(best["alpha"]), float(best["beta"]), float(best["gamma"])
