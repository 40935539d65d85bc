"""The compound-scaling search: one Optuna study, one trial per candidate, ranked results.

How a search stays exactly-once and resumable:

* The study's sampler is a grid over candidate indices (`CandidateGrid`), but the engine never
  lets it pick: every candidate is enqueued once as a WAITING trial, and workers pop WAITING
  trials with the storage's atomic WAITING -> RUNNING transition. (The grid sampler alone can
  hand the same point to two workers near the end of a study; the queue cannot.)
* Before workers start, `reconcile` looks at every candidate's trials: finished candidates
  are left alone; a trial left RUNNING by a process that died (journal file: on restart; RDB:
  by heartbeat) or stopped by Ctrl-C is marked interrupted and its candidate enqueued again;
  failed candidates are enqueued again only with `retry_failed`.
* The results are derived from the trials, one row per candidate, and written atomically
  after every finished candidate.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import optuna
import pandas as pd
import torch
from optuna.trial import FrozenTrial, TrialState

from scaler.candidates import Candidate, CandidateSpace, ProxyBase, Range, build_candidates
from scaler.data import Dataset, load_dataset
from scaler.errors import RunError, UsageError
from scaler.files import atomic_write_text, environment_summary
from scaler.network import EfficientNet
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA
from scaler.training import EpochMetrics, TrainConfig, TrainResult, seed_everything, select_device, train

PRUNERS = ("none", "halving", "hyperband")
JOURNAL_NAME = "study.journal"
RESULTS_NAME = "results.csv"
SUMMARY_NAME = "search.json"
# RDB storages: a running trial records a heartbeat every HEARTBEAT_SECONDS; one silent for
# GRACE_SECONDS belongs to a dead worker. Both can be set from the environment (tests use 1/4).
HEARTBEAT_SECONDS = int(os.environ.get("SCALER_HEARTBEAT_SECONDS", "10"))
GRACE_SECONDS = int(os.environ.get("SCALER_GRACE_SECONDS", "30"))
RESULT_COLUMNS = [
    "rank", "candidate", "alpha", "beta", "gamma", "product", "depth_mult", "width_mult",
    "resolution", "params", "macs", "macs_ratio", "top1", "top5", "val_loss", "epochs",
    "train_seconds", "images_per_s", "state", "reason",
]  # fmt: skip

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class DataOptions:
    """Which data a search trains on (the storage resolution follows from the candidates)."""

    source: str = "synthetic"
    train_images: int | None = None
    val_images: int | None = None
    val_fraction: float = 0.2
    native_resolution: int = 256

    def validate(self) -> None:
        """Catch what can be checked before a study exists: counts, fraction, the source."""
        for name, value in (("train images", self.train_images), ("val images", self.val_images)):
            if value is not None and value < 1:
                raise UsageError(f"{name} = {value} is not allowed; it must be >= 1")
        if not 0 < self.val_fraction < 1:
            raise UsageError(f"val fraction = {self.val_fraction} is not allowed; it must be in (0, 1)")
        if self.source == "synthetic":
            return
        path = Path(self.source.removeprefix("cifar10:")).expanduser()
        if not path.is_dir():
            raise UsageError(
                f"data source '{self.source}' is not a folder; use 'synthetic', 'cifar10:PATH' "
                "or a folder with one sub-folder per class"
            )


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search's results. Device, threads and workers do not."""

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
            raise UsageError(f"pruner {self.pruner!r} is not allowed; use one of {', '.join(PRUNERS)}")

    def identity(self) -> dict:
        """The configuration as plain data, without the run-time-only fields."""
        data = asdict(self)
        for key in ("device", "threads"):
            data["train"].pop(key, None)
        return data

    def fingerprint(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

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


class CandidateGrid(optuna.samplers.GridSampler):
    """A grid over candidate indices whose points are handed out by the engine's queue.

    GridSampler's own bookkeeping (picking unvisited points, stopping an `optimize` loop when
    the grid is exhausted) assumes it chose each trial; here the queue does, so it is off.
    """

    def __init__(self, count: int, seed: int) -> None:
        super().__init__({"candidate": list(range(count))}, seed=seed)

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
        return None


def _make_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    """The search's pruner, on val top-1 per epoch. With a budget in steps Hyperband finds its
    maximum resource from finished trials."""
    if config.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if config.pruner == "hyperband":
        epochs = "auto" if config.train.steps else config.train.epochs
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def is_url(storage: str) -> bool:
    return "://" in storage


def _requeue_lost(study: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat callback (RDB): a worker died mid-candidate; put the candidate back."""
    index = _candidate_of(trial)
    if index is not None:
        study.enqueue_trial({"candidate": index}, user_attrs={"candidate": index, "requeued_from": trial.number})


def open_storage(storage: str, *, exclusive: bool = False) -> optuna.storages.BaseStorage:
    """An RDB storage for a URL (with heartbeats), a journal file for a path.

    `exclusive` (the caller holds the search's lock, so no other process writes the journal):
    first repair what a killed process may have left in the journal.
    """
    if is_url(storage):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    storage,
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=_requeue_lost,
                    engine_kwargs={"pool_pre_ping": True},
                )
        except Exception as exc:  # sqlalchemy / driver errors: one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunError(f"cannot open storage {mask_url(storage)}: {first}") from None
    path = Path(storage)
    if exclusive:
        _repair_journal(path)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def _repair_journal(path: Path) -> None:
    """Drop a last line cut short by a kill, so the journal stays readable and appendable,
    and a journal lock left by a killed writer, which would stall the next one for 30 s."""
    Path(f"{path}.lock").unlink(missing_ok=True)
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data = path.read_bytes()
        f.truncate(data.rfind(b"\n") + 1)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


@dataclass
class SearchHandle:
    """An open search: its study, configuration, candidates and (locally) its folder."""

    study: optuna.Study
    config: SearchConfig
    candidates: list[Candidate]
    name: str
    folder: Path | None
    storage_url: str
    exclusive: bool = False  # a journal we hold the lock for: RUNNING trials are stale
    dataset_fingerprint: str | None = None

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        """The study's own storage object. Optuna wraps an RDB storage in a cache; popping
        and updating trials through any other object would bypass (and confuse) it."""
        return self.study._storage

    @property
    def study_id(self) -> int:
        return self.storage.get_study_id_from_name(self.name)

    @property
    def uses_heartbeat(self) -> bool:
        return is_url(self.storage_url)


def _load_study(storage: optuna.storages.BaseStorage, name: str, config: SearchConfig, count: int) -> optuna.Study:
    return optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=CandidateGrid(count, config.train.seed),
        pruner=_make_pruner(config),
    )


def create_search(
    config: SearchConfig,
    *,
    folder: Path,
    storage_url: str | None = None,
    name: str | None = None,
) -> SearchHandle:
    """Create a search, or open the existing one of the same name and configuration.

    Call it inside `search_lock(folder)`. Refuses (UsageError) a name that exists with another
    configuration.
    """
    config.validate()
    if storage_url is not None and not is_url(storage_url):
        raise UsageError(
            f"storage {storage_url!r} is not a database URL; give one like "
            "postgresql+psycopg2://user:pw@host/db, or leave --storage out for the search folder's journal"
        )
    storage_url = storage_url or str(folder / JOURNAL_NAME)
    name = name or folder.name
    summary = folder / SUMMARY_NAME
    if summary.exists():
        previous = json.loads(summary.read_text())
        if previous.get("fingerprint") != config.fingerprint():
            raise UsageError(_clash_message(name, previous.get("config", {}), config.identity()))
    storage = open_storage(storage_url, exclusive=True)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name in existing and _half_created(existing[name]):
        existing.pop(name)  # killed between create_study and recording its configuration
    if name in existing:
        attrs = existing[name].user_attrs
        if attrs.get("scaler_fingerprint") != config.fingerprint():
            raise UsageError(_clash_message(name, attrs.get("scaler_config", {}), config.identity()))
        candidates = [Candidate(**c) for c in attrs["scaler_candidates"]]
        study = _load_study(storage, name, config, len(candidates))
    else:
        candidates = build_candidates(config.space, config.base, config.flops_tolerance)
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize",
            sampler=CandidateGrid(len(candidates), config.train.seed),
            pruner=_make_pruner(config),
            load_if_exists=True,
        )
        study.set_user_attr("scaler_config", config.identity())
        study.set_user_attr("scaler_fingerprint", config.fingerprint())
        study.set_user_attr("scaler_candidates", [c.to_dict() for c in candidates])
    return SearchHandle(study, config, candidates, name, folder, storage_url, exclusive=not is_url(storage_url))


def _half_created(summary: optuna.study.StudySummary) -> bool:
    return "scaler_candidates" not in summary.user_attrs and summary.n_trials == 0


def join_search(storage_url: str, name: str, folder: Path | None = None) -> SearchHandle:
    """Open an existing study from its database alone (what `scaler worker` does).

    Journal files are not shared this way: the search folder's journal belongs to the one
    `scaler search` holding the folder's lock (and the worker processes it starts itself).
    """
    storage = open_storage(storage_url)
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name not in summaries:
        known = ", ".join(sorted(summaries)) or "none"
        raise UsageError(f"study {name!r} not found in {mask_url(storage_url)}; studies there: {known}")
    attrs = summaries[name].user_attrs
    if "scaler_config" not in attrs:
        raise UsageError(f"study {name!r} was not created by scaler search")
    config = SearchConfig.from_identity(attrs["scaler_config"])
    candidates = [Candidate(**c) for c in attrs["scaler_candidates"]]
    study = _load_study(storage, name, config, len(candidates))
    return SearchHandle(study, config, candidates, name, folder, storage_url)


def _clash_message(name: str, old: dict, new: dict) -> str:
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(old), flat(new)
    diffs = [f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    shown = "; ".join(diffs[:3]) + ("; ..." if len(diffs) > 3 else "")
    return (
        f"search {name!r} already exists with another configuration ({shown}); "
        "rerun with its original options, or pick a new --name"
    )


@contextlib.contextmanager
def search_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the duration of a search: one `scaler search` at a time.

    Creates the folder; RunError when it cannot be written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / ".lock", "a+")
    except OSError as exc:
        raise RunError(f"cannot write to search folder {folder}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunError(f"search {folder} is already running ({holder}); wait for it to finish") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    try:
        yield
    finally:
        handle.close()


# ---------------------------------------------------------------------------------------------
# Trials and their states

def _candidate_of(trial: FrozenTrial) -> int | None:
    if "candidate" in trial.params:
        return int(trial.params["candidate"])
    fixed = trial.system_attrs.get("fixed_params", {})
    return int(fixed["candidate"]) if "candidate" in fixed else None


_PREFERENCE = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.WAITING: 3, TrialState.FAIL: 4}


def _state_label(trial: FrozenTrial | None) -> str:
    if trial is None:
        return "queued"
    if trial.state == TrialState.FAIL:
        return trial.user_attrs.get("state", "interrupted")
    return {
        TrialState.COMPLETE: trial.user_attrs.get("state", "complete"),
        TrialState.PRUNED: "pruned",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "queued",
    }[trial.state]


def trials_by_candidate(study: optuna.Study) -> dict[int, list[FrozenTrial]]:
    groups: dict[int, list[FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False):
        index = _candidate_of(trial)
        if index is not None:
            groups.setdefault(index, []).append(trial)
    return groups


FINISHED_STATES = ("complete", "timeout", "pruned", "failed")


def count_finished(handle: SearchHandle) -> int:
    """Candidates that need no more training (failed ones included)."""
    groups = trials_by_candidate(handle.study)
    return sum(
        _state_label(representative(groups.get(i, []))) in FINISHED_STATES for i in range(len(handle.candidates))
    )


def representative(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The trial that speaks for a candidate: complete > pruned > running > queued > failed,
    the latest among equals."""
    if not trials:
        return None
    return min(trials, key=lambda t: (_PREFERENCE.get(t.state, 9), -t.number))


def _mark_interrupted(storage: optuna.storages.BaseStorage, trial_id: int, reason: str) -> None:
    storage.set_trial_user_attr(trial_id, "state", "interrupted")
    storage.set_trial_user_attr(trial_id, "reason", reason)
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial_id, TrialState.FAIL)


@dataclass(frozen=True)
class Plan:
    """What a run of the search will do: candidates finished, queued, failed (not retried)."""

    total: int
    finished: int
    queued: list[int]
    failed: list[int]
    interrupted: int


def reconcile(handle: SearchHandle, *, retry_failed: bool = False) -> Plan:
    """Mark stale trials interrupted and enqueue every candidate that still needs training."""
    storage, study = handle.storage, handle.study
    interrupted = 0
    if handle.exclusive:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            _mark_interrupted(storage, trial._trial_id, "the process running it ended mid-candidate")
            interrupted += 1
    elif handle.uses_heartbeat:
        fail_stale_trials(study)
    groups = trials_by_candidate(study)
    finished, queued, failed = 0, [], []
    for index in range(len(handle.candidates)):
        trials = groups.get(index, [])
        states = {t.state for t in trials}
        if states & {TrialState.COMPLETE, TrialState.PRUNED}:
            finished += 1
            continue
        if states & {TrialState.RUNNING, TrialState.WAITING}:
            queued.append(index)
            continue
        last = representative(trials)
        if last is None or _state_label(last) == "interrupted" or retry_failed:
            study.enqueue_trial({"candidate": index}, user_attrs={"candidate": index})
            queued.append(index)
        else:
            failed.append(index)
    return Plan(len(handle.candidates), finished, queued, failed, interrupted)


def fail_stale_trials(study: optuna.Study) -> None:
    """RDB storages: fail the trials of workers whose heartbeat stopped (and requeue them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def pop_trial(handle: SearchHandle) -> optuna.trial.Trial | None:
    """Take one WAITING trial for this worker (atomic WAITING -> RUNNING), or None.

    On an RDB storage the first heartbeat is recorded at once: a worker that dies right after
    taking a trial must still leave a trial that goes stale.
    """
    storage = handle.storage
    for frozen in storage.get_all_trials(handle.study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                if handle.uses_heartbeat:
                    storage.record_heartbeat(frozen._trial_id)
                return optuna.trial.Trial(handle.study, frozen._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


# ---------------------------------------------------------------------------------------------
# Training one candidate

def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def dataset_for(handle: SearchHandle, cache_dir: Path | None) -> Dataset:
    """Load the search's data at a storage resolution that serves its largest candidate, and
    record its fingerprint on the handle (for search.json)."""
    options = handle.config.data
    storage_resolution = max(c.resolution for c in handle.candidates)
    dataset = load_dataset(
        options.source,
        storage_resolution=storage_resolution,
        train_images=options.train_images,
        val_images=options.val_images,
        val_fraction=options.val_fraction,
        seed=handle.config.train.seed,
        native_resolution=options.native_resolution,
        cache_dir=cache_dir,
    )
    handle.dataset_fingerprint = dataset.fingerprint
    return dataset


def candidate_model(config: SearchConfig, candidate: Candidate) -> EfficientNet:
    """The proxy network of one candidate, seeded so every candidate starts alike."""
    seed_everything(config.train.seed)
    return EfficientNet(config.base.spec(candidate.width_mult, candidate.depth_mult))


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "can't allocate memory", "cannot allocate memory"))


class _Heartbeat:
    """Records a trial's heartbeat on an RDB storage from a background thread."""

    def __init__(self, handle: SearchHandle, trial_id: int) -> None:
        self._storage, self._trial_id = handle.storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True) if handle.uses_heartbeat else None

    def _beat(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self._storage.record_heartbeat(self._trial_id)
            self._stop.wait(HEARTBEAT_SECONDS)

    def __enter__(self) -> _Heartbeat:
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


@dataclass
class WorkerEvents:
    """Callbacks a worker calls so a front end can show progress (all optional)."""

    on_start: Callable[[Candidate], None] | None = None
    on_step: Callable[[int, int, float, float], None] | None = None
    on_epoch: Callable[[Candidate, EpochMetrics], None] | None = None
    on_finish: Callable[[Candidate, str, str], None] | None = None  # candidate, state, reason


def run_trial(
    handle: SearchHandle,
    trial: optuna.trial.Trial,
    dataset: Dataset,
    train_config: TrainConfig,
    events: WorkerEvents,
) -> str:
    """Train the candidate a popped trial stands for and record the outcome; returns its state."""
    study, storage = handle.study, handle.storage
    index = trial.suggest_categorical("candidate", list(range(len(handle.candidates))))
    candidate = handle.candidates[index]
    done = [
        t for t in trials_by_candidate(study).get(index, [])
        if t.number != trial.number and t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]  # fmt: skip
    if done:  # a candidate enqueued twice (two reconcilers at once): never train it again
        trial.set_user_attr("state", "duplicate")
        trial.set_user_attr("reason", f"already finished in trial {done[0].number}")
        study.tell(trial, state=TrialState.FAIL)
        return "duplicate"
    trial.set_user_attr("worker", worker_id())
    trial.set_user_attr("candidate", index)
    if events.on_start:
        events.on_start(candidate)
    pruning = handle.config.pruner != "none"
    last_epoch = train_config.planned_epochs(len(dataset.train))

    def on_epoch(metrics: EpochMetrics) -> bool:
        trial.report(metrics.top1, metrics.epoch)
        if events.on_epoch:
            events.on_epoch(candidate, metrics)
        return pruning and metrics.epoch < last_epoch and trial.should_prune()

    result: TrainResult | None = None
    with _Heartbeat(handle, trial._trial_id):
        try:
            model = candidate_model(handle.config, candidate)
            result = train(model, dataset, candidate.resolution, train_config, on_step=events.on_step, on_epoch=on_epoch)
            state, reason = _outcome(result)
        except KeyboardInterrupt:
            _mark_interrupted(storage, trial._trial_id, "interrupted by the user (Ctrl-C)")
            if events.on_finish:
                events.on_finish(candidate, "interrupted", "Ctrl-C")
            raise
        except Exception as exc:  # the candidate fails; the search goes on
            state = "failed"
            reason = "out of memory" if _is_out_of_memory(exc) else f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    try:
        _record(study, trial, state, reason, result)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Someone else closed this trial meanwhile (a heartbeat judged it stale): the
        # candidate is someone else's now, this result is dropped.
        state, reason = "lost", "the trial was closed by another process"
    if events.on_finish:
        events.on_finish(candidate, state, reason)
    return state


def _record(study: optuna.Study, trial: optuna.trial.Trial, state: str, reason: str, result: TrainResult | None) -> None:
    if result is not None:
        for key, value in _metrics(result).items():
            trial.set_user_attr(key, value)
    trial.set_user_attr("state", state)
    trial.set_user_attr("reason", reason)
    if state in ("complete", "timeout"):
        study.tell(trial, result.top1)
    elif state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


def _outcome(result: TrainResult) -> tuple[str, str]:
    if result.status == "diverged":
        return "failed", f"diverged: {result.reason}"
    if result.status == "stopped":
        return "pruned", f"pruned after epoch {len(result.epochs)}"
    if result.status == "timeout":  # fewer epochs than planned: ranked after complete ones
        return "timeout", result.reason or "time cap reached"
    return "complete", ""


def _metrics(result: TrainResult) -> dict:
    def finite(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else float(x)

    return {
        "top1": finite(result.top1),
        "top5": finite(result.top5),
        "val_loss": finite(result.val_loss),
        "epochs": len(result.epochs),
        "train_seconds": result.train_seconds,
        "images_per_s": result.images_per_s,
        "device": result.device,
    }


def work(
    handle: SearchHandle,
    dataset: Dataset,
    train_config: TrainConfig,
    events: WorkerEvents | None = None,
    *,
    write_results: bool = True,
    poll_seconds: float = 2.0,
) -> int:
    """Train candidates until none is left; returns how many this worker trained.

    On an RDB storage a worker also waits while other workers' candidates run, so that a
    candidate whose worker dies (no heartbeat) is picked up again.
    """
    events = events or WorkerEvents()
    trained, seen = 0, None
    while True:
        if handle.uses_heartbeat:
            fail_stale_trials(handle.study)
        trial = pop_trial(handle)
        if trial is None:
            running = handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if handle.uses_heartbeat and running:
                finished = count_finished(handle)
                if write_results and handle.folder is not None and finished != seen:
                    write_outputs(handle)  # other machines' candidates finished meanwhile
                seen = finished
                time.sleep(poll_seconds)
                continue
            return trained
        state = run_trial(handle, trial, dataset, train_config, events)
        trained += state != "duplicate"
        if write_results and handle.folder is not None:
            write_outputs(handle)


# ---------------------------------------------------------------------------------------------
# Results

def results_frame(handle: SearchHandle) -> pd.DataFrame:
    """One row per candidate, ranked: complete by top-1 (ties: fewer MACs), then timed-out,
    then pruned, then the rest (whose partial metrics are not shown)."""
    groups = trials_by_candidate(handle.study)
    rows = []
    for candidate in handle.candidates:
        trial = representative(groups.get(candidate.index, []))
        state = _state_label(trial)
        attrs = trial.user_attrs if trial is not None and state in SCORED_STATES else {}
        rows.append(
            {
                "candidate": candidate.index,
                "alpha": candidate.alpha,
                "beta": candidate.beta,
                "gamma": candidate.gamma,
                "product": candidate.product,
                "depth_mult": candidate.depth_mult,
                "width_mult": candidate.width_mult,
                "resolution": candidate.resolution,
                "params": candidate.params,
                "macs": candidate.macs,
                "macs_ratio": candidate.macs_ratio,
                "top1": attrs.get("top1"),
                "top5": attrs.get("top5"),
                "val_loss": attrs.get("val_loss"),
                "epochs": attrs.get("epochs"),
                "train_seconds": attrs.get("train_seconds"),
                "images_per_s": attrs.get("images_per_s"),
                "state": state,
                "reason": trial.user_attrs.get("reason", "") if trial is not None and state != "running" else "",
            }
        )
    return rank(pd.DataFrame(rows))


_STATE_ORDER = {"complete": 0, "timeout": 1, "pruned": 2}
SCORED_STATES = tuple(_STATE_ORDER)  # states whose top-1 is a finished evaluation


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort rows (complete by top-1 desc, ties fewer MACs; then pruned; then the rest) and
    number them."""
    frame = frame.copy()
    frame["_group"] = frame["state"].map(_STATE_ORDER).fillna(len(_STATE_ORDER))
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


def summary(handle: SearchHandle, frame: pd.DataFrame) -> dict:
    """search.json: configuration, seed, data fingerprint, versions, commit, best candidate."""
    done = frame[frame["state"] == "complete"]
    best = done.iloc[0].to_dict() if len(done) else None
    return {
        "name": handle.name,
        "fingerprint": handle.config.fingerprint(),
        "config": handle.config.identity(),
        "seed": handle.config.train.seed,
        "storage": mask_url(handle.storage_url) if is_url(handle.storage_url) else JOURNAL_NAME,
        "dataset_fingerprint": handle.dataset_fingerprint,
        "candidates": len(handle.candidates),
        "states": frame["state"].value_counts().to_dict(),
        "best": _plain(best),
        "environment": environment_summary(),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_outputs(handle: SearchHandle) -> pd.DataFrame:
    """Refresh results.csv and search.json in the search folder, each atomically."""
    assert handle.folder is not None
    frame = results_frame(handle)
    atomic_write_text(handle.folder / RESULTS_NAME, frame.to_csv(index=False))
    atomic_write_text(handle.folder / SUMMARY_NAME, json.dumps(summary(handle, frame), indent=2))
    return frame


def read_results(folder: Path) -> tuple[pd.DataFrame, dict]:
    """A search folder's results.csv and search.json, as written by `write_outputs`."""
    results, info = folder / RESULTS_NAME, folder / SUMMARY_NAME
    if not results.exists() or not info.exists():
        raise UsageError(f"{folder} is not a search folder (no {RESULTS_NAME} / {SUMMARY_NAME})")
    try:
        frame = pd.read_csv(results, converters={"state": str, "reason": str})
        summary = json.loads(info.read_text())
        missing = [c for c in RESULT_COLUMNS if c not in frame.columns] + [k for k in ("name", "states") if k not in summary]
    except (OSError, ValueError) as exc:
        raise UsageError(f"{folder} is not a valid search folder: {exc}") from None
    if missing:
        raise UsageError(f"{folder} is not a valid search folder: missing {', '.join(missing)}")
    return frame, summary


def best_coefficients(folder: Path) -> tuple[float, float, float]:
    """(alpha, beta, gamma) of a search's best finished candidate."""
    _, info = read_results(folder)
    best = info.get("best")
    if not best:
        raise UsageError(f"search {folder} has no finished candidate yet; run or resume it first")
    return float(best["alpha"]), float(best["beta"]), float(best["gamma"])


def with_runtime(config: TrainConfig, device: str | None, threads: int | None) -> TrainConfig:
    """The search's training configuration with this worker's device and threads."""
    return replace(config, device=device or config.device, threads=threads if threads is not None else config.threads)



def estimate_seconds(handle: SearchHandle, dataset: Dataset, train_config: TrainConfig, indices: list[int]) -> tuple[float, float]:
    """Estimate the training time of `indices` from a short measured run.

    On the training device, times two SGD steps (after a warm-up) and one evaluation batch
    of the median-MACs candidate at its resolution, then scales by each candidate's MACs.
    Returns (seconds, the measured training images/s of that candidate).
    """
    if not indices:
        return 0.0, math.nan
    chosen = sorted((handle.candidates[i] for i in indices), key=lambda c: c.macs)[len(indices) // 2]
    device = select_device(train_config.device)
    threads = torch.get_num_threads()
    if train_config.threads:
        torch.set_num_threads(train_config.threads)

    def timed(step: Callable[[], object]) -> float:
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    try:
        model = candidate_model(handle.config, chosen).to(device=device, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        batch, side = train_config.batch_size, chosen.resolution
        x = torch.randn(batch, 3, side, side, device=device).to(memory_format=torch.channels_last)
        y = torch.randint(0, handle.config.base.num_classes, (batch,), device=device)

        def train_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model.train()(x), y).backward()
            optimizer.step()

        def eval_step() -> None:
            with torch.no_grad():
                model.eval()(x)

        train_seconds = [timed(train_step) for _ in range(3)][1:]
        eval_seconds = [timed(eval_step) for _ in range(2)][1:]
    finally:
        torch.set_num_threads(threads)
    train_ips = batch / (sum(train_seconds) / len(train_seconds))
    eval_ips = batch / eval_seconds[0]
    epochs = train_config.planned_epochs(len(dataset.train))
    per_candidate = epochs * (len(dataset.train) / train_ips + len(dataset.val) / eval_ips)
    if train_config.max_seconds is not None:
        per_candidate = min(per_candidate, train_config.max_seconds + len(dataset.val) / eval_ips)
    total = sum(per_candidate * handle.candidates[i].macs / chosen.macs for i in indices)
    return total, train_ips
