"""What the study engine runs: an experiment that names its work items, runs one, and turns
finished items into a ranked table. The engine never knows what the work is.

A new kind of study (a calibration, a comparison) is a subclass of `Experiment` registered
with `register_experiment`; the engine gives it exactly-once work items, resume, stale-worker
recovery, local and remote workers, heartbeats and atomic result files.
"""

from __future__ import annotations

import abc
import hashlib
import importlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import optuna
import pandas as pd

from scaler.errors import UsageError
from scaler.runtime import Runtime
from scaler.states import State


class ExperimentConfig(Protocol):
    """The configuration that identifies a study: two runs with equal identities share results."""

    def validate(self) -> None: ...

    def identity(self) -> dict: ...


def fingerprint(config: ExperimentConfig) -> str:
    """A short hash of the configuration's identity: what must match to resume a study."""
    return identity_digest(config.identity())


def identity_digest(identity: dict) -> str:
    """The short hash of an identity (see `fingerprint`)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class WorkItem:
    """One unit of work, named by integer parameters (e.g. candidate=3, repeat=1)."""

    params: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, **params: int) -> WorkItem:
        return cls(tuple(sorted((k, int(v)) for k, v in params.items())))

    def as_dict(self) -> dict[str, int]:
        return dict(self.params)

    def __getitem__(self, name: str) -> int:
        return self.as_dict()[name]


@dataclass(frozen=True)
class Outcome:
    """How running an item ended: its state, why (one line), the objective (higher is better;
    COMPLETE and TIMEOUT need one) and the metrics to store with it."""

    state: State
    reason: str = ""
    value: float | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """What the study knows of one item: the state and stored metrics of the trial that
    speaks for it (QUEUED with no metrics when no trial exists yet)."""

    item: WorkItem
    state: State
    reason: str = ""
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Events:
    """Callbacks a worker calls so a front end can show progress (all optional): an item
    starts (its label and epochs), a training step, an epoch (the trainer's metrics), an item
    ends, and the worker, with no item left to take, waits on items other processes run (their
    labels, each time that set changes)."""

    on_start: Callable[[str, int], None] | None = None
    on_step: Callable[[int, int, float, float], None] | None = None
    on_epoch: Callable[[Any], None] | None = None
    on_finish: Callable[[str, State, str], None] | None = None
    on_wait: Callable[[list[str]], None] | None = None


class Reporter(Protocol):
    """What the engine hands to `Experiment.run`: pruning reports and progress."""

    def report(self, value: float, step: int) -> bool:
        """Record an intermediate objective; True when the study's pruner says stop."""
        ...

    def step(self, step: int, total: int, loss: float, images_per_s: float) -> None: ...

    def epoch(self, metrics: Any) -> None: ...


class Experiment(abc.ABC):
    """A kind of study. Subclasses set the class attributes and implement the methods below;
    an instance holds the configuration and the planned items (e.g. counted candidates)."""

    kind: ClassVar[str]  # registry name, stored with the study
    noun: ClassVar[str] = "item"  # what users call a work item, for messages
    summary_name: ClassVar[str]  # the JSON summary beside results.csv
    # Other files its study writes in its folder, before its first summary (`keep_context`'s):
    # a worker given the folder takes them for the study's, not for another tool's.
    folder_files: ClassVar[tuple[str, ...]] = ()
    # The option that sets each part of the identity, by its key or a key above it
    # ("space.alpha" -> "--alpha-range"), so that a message names what the user can change.
    options: ClassVar[Mapping[str, str]] = {}

    config: ExperimentConfig

    # -- identity and storage -------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def plan(cls, config: ExperimentConfig, **settings: Any) -> Experiment:
        """A new study's experiment: enumerate and measure its items (may be slow). `settings`
        are plan options outside the identity (e.g. repeats)."""

    @classmethod
    @abc.abstractmethod
    def config_from_identity(cls, identity: dict) -> ExperimentConfig:
        """Rebuild the configuration a study stored (for workers that join it)."""

    @classmethod
    def earlier_fingerprints(cls, config: ExperimentConfig) -> set[str]:
        """Fingerprints an earlier scaler gave `config`: a study stored under one of them opens
        as if it had this one (none by default)."""
        return set()

    @classmethod
    @abc.abstractmethod
    def restore(cls, config: ExperimentConfig, attrs: Mapping[str, Any], **settings: Any) -> Experiment:
        """The experiment of an existing study, from the attributes `study_attrs` stored (and
        the settings of this run, e.g. more repeats)."""

    @abc.abstractmethod
    def study_attrs(self) -> dict[str, Any]:
        """What to store with a new study (JSON-ready) so `restore` needs no re-measuring."""

    def refresh(self, attrs: Mapping[str, Any]) -> None:
        """Take up what another process changed in the stored attributes since this one opened
        the study (e.g. more repeats); called each time a worker has taken a work item (or found
        none), before it runs it."""

    # -- the work -------------------------------------------------------------------------
    @abc.abstractmethod
    def items(self) -> list[WorkItem]:
        """Every work item, in table order."""

    def item_of(self, params: Mapping[str, int]) -> WorkItem | None:
        """The item a trial's parameters stand for (None: no parameters). Override to fill
        parameters that older trials lack; the engine ignores items not in `items()`."""
        return WorkItem.of(**params) if params else None

    @abc.abstractmethod
    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions of the item parameters (what dashboards show)."""

    def describe(self) -> str:
        """What the study holds, for its first log line (e.g. '19 candidates x 3 repeats')."""
        return f"{len(self.items())} {self.noun}s"

    def label(self, item: WorkItem) -> str:
        """A short name of the item for progress lines."""
        return ", ".join(f"{k}={v}" for k, v in item.params)

    def pruner(self) -> optuna.pruners.BasePruner:
        """The pruner that judges `Reporter.report` values (default: never prune)."""
        return optuna.pruners.NopPruner()

    @abc.abstractmethod
    def prepare(self, runtime: Runtime, check: Callable[[Any], None] | None = None) -> Any:
        """Per worker, once: load what running items needs (data); returns that context.
        `check`, where given, is called before the loading with what stands for the context
        until then (an object `context_fingerprint` and `context_change` read, such as the
        data's identity before its images are decoded), where the experiment can tell it: the
        engine refuses changed data there, before the work of loading it."""

    def context_fingerprint(self, context: Any) -> str | None:
        """A fingerprint of what `prepare` loaded (the data), or of what stands for it before
        (see `prepare`): the engine refuses to go on with different data than the study
        started with. None: nothing to compare."""
        return None

    def keep_context(self, context: Any, folder: Path) -> None:
        """Keep in the study's folder what `context_change` will need to say how a later
        context differs (the data's files); called while the context matches the study's."""

    def context_change(self, context: Any, folder: Path | None) -> str | None:
        """How `context` differs from the one the study started with (which files changed), for
        the refusal; None where that is not known."""
        return None

    def epochs(self, context: Any, item: WorkItem) -> int:
        """How many epochs `item` trains, for its progress bar."""
        return 1

    @abc.abstractmethod
    def run(self, item: WorkItem, context: Any, runtime: Runtime, reporter: Reporter) -> Outcome:
        """Do one item's work. Exceptions become FAILED outcomes; Ctrl-C propagates."""

    def estimate_seconds(
        self, context: Any, runtime: Runtime, items: list[WorkItem], *, in_process: bool = True
    ) -> tuple[dict[WorkItem, float], str]:
        """Estimated seconds of each of `items` in one worker (NaN: unknown), and how they
        were measured. Their sum is the estimate for one worker; several workers take the
        longest first (`runner.parallel_seconds`). `in_process`: the items will run in this
        process (what the estimate warmed stays warm), not in worker processes."""
        return dict.fromkeys(items, math.nan), "no estimate"

    # -- results --------------------------------------------------------------------------
    @abc.abstractmethod
    def table(self, records: list[Record]) -> pd.DataFrame:
        """The ranked results table (results.csv) from every item's record."""

    @abc.abstractmethod
    def summary(self, frame: pd.DataFrame, records: list[Record]) -> dict[str, Any]:
        """Experiment-specific fields of the JSON summary (best row, counts, seeds), from the
        table and the records it was made of."""


_KINDS: dict[str, type[Experiment]] = {}
# The modules whose import registers the built-in kinds
BUILT_IN_KINDS = ("scaler.experiments.search", "scaler.experiments.calibration", "scaler.experiments.comparison")


def _register_built_in_kinds() -> None:
    for module in BUILT_IN_KINDS:
        importlib.import_module(module)


def register_experiment(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: make a kind of experiment known by its `kind` name."""
    _KINDS[cls.kind] = cls
    return cls


def kind_name(cls: type[Experiment]) -> str:
    """How a study records its kind: the registered name, or 'module:Class' for others."""
    return cls.kind if _KINDS.get(cls.kind) is cls else f"{cls.__module__}:{cls.__qualname__}"


def other_kind_in(folder: Path, summary_name: str) -> str | None:
    """What `folder` is when it holds another registered kind's summary in place of
    `summary_name` ("a compare folder (compare.json), not a search folder (search.json)"), so
    that a command handed the wrong kind of study names it; None otherwise."""
    _register_built_in_kinds()
    wanted = next((kind for kind, cls in _KINDS.items() if cls.summary_name == summary_name), "study")
    for kind, cls in _KINDS.items():
        if cls.summary_name != summary_name and (folder / cls.summary_name).exists():
            return f"a {kind} folder ({cls.summary_name}), not a {wanted} folder ({summary_name})"
    return None


def summary_names() -> list[str]:
    """The summary file of every registered kind: the built-in kinds' in BUILT_IN_KINDS order
    (search.json, calibration.json, compare.json), then the others' as registered, whichever
    module a process happened to import first."""
    _register_built_in_kinds()
    place = {module: i for i, module in enumerate(BUILT_IN_KINDS)}
    kinds = sorted(_KINDS.values(), key=lambda cls: place.get(cls.__module__, len(place)))
    return [cls.summary_name for cls in kinds]


def kind_in(folder: Path) -> str | None:
    """The registered kind whose summary `folder` holds (None when it holds none), so that a
    command that reads any kind of study folder knows which one it was given."""
    _register_built_in_kinds()
    return next((kind for kind, cls in _KINDS.items() if (folder / cls.summary_name).is_file()), None)


def experiment_class(kind: str) -> type[Experiment]:
    """The experiment class a stored kind names (a registered name or 'module:Class')."""
    _register_built_in_kinds()
    if kind in _KINDS:
        return _KINDS[kind]
    if ":" in kind:
        module, _, qualname = kind.partition(":")
        try:
            cls = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part)
        except (ImportError, AttributeError):
            raise UsageError(f"study kind {kind!r} cannot be imported here") from None
        return cls  # type: ignore[return-value]
    raise UsageError(f"unknown study kind {kind!r}; known: {', '.join(_KINDS)}")
