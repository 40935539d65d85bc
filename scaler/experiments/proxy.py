"""Proxy training as a study's work: which data, one training turned into an `Outcome`, and
the measured estimate of what a set of trainings will cost. Shared by every experiment that
trains scaled networks briefly."""

from __future__ import annotations

import abc
import math
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

from torch import nn

from scaler.candidates import ProxyBase
from scaler.data import Dataset, ImageSplit
from scaler.data.dataset import DataIdentity
from scaler.data.manifest import MANIFEST_NAME, keep_files, what_changed
from scaler.data.options import DataOptions
from scaler.errors import Interrupted, UsageError
from scaler.graphed_step import EAGER_STEPS
from scaler.runtime import Runtime
from scaler.states import State
from scaler.study.experiment import Experiment, Outcome, Reporter, WorkItem
from scaler.training import EpochMetrics, TrainResult, seed_everything, train
from scaler.train_config import TrainConfig

_K = TypeVar("_K", bound=Hashable)


def load_checked(data: DataOptions, seed: int, num_classes: int, storage_resolution: int, runtime: Runtime,
                 before_decoding: Callable[[DataIdentity], None] | None = None) -> Dataset:
    """`data` loaded for a study whose networks classify `num_classes`; refused when it has
    more classes (one was added since the study started). `before_decoding` as `load_dataset`
    takes it."""
    dataset = data.load(storage_resolution, seed, runtime, before_decoding)
    if dataset.num_classes > num_classes:
        raise UsageError(
            f"data {data.source} has {dataset.num_classes} classes but the study's networks classify "
            f"{num_classes}: a class was added since the study started; restore the data or pick a new --name"
        )
    return dataset


def train_outcome(
    model: nn.Module,
    dataset: Dataset,
    resolution: int,
    config: TrainConfig,
    runtime: Runtime,
    reporter: Reporter,
) -> Outcome:
    """Train `model` and turn the result into an Outcome: val top-1 after each epoch goes to
    the study's pruner (never stopping the last epoch); the objective is the final top-1."""
    last_epoch = config.planned_epochs(len(dataset.train))

    def on_epoch(metrics: EpochMetrics) -> bool:
        reporter.epoch(metrics)
        stop = reporter.report(metrics.top1, metrics.epoch)
        return stop and metrics.epoch < last_epoch

    result = train(model, dataset, resolution, config, runtime, on_step=reporter.step, on_epoch=on_epoch)
    state, reason = _outcome_state(result)
    value = result.top1 if state in (State.COMPLETE, State.TIMEOUT) else None
    return Outcome(state, reason, value, _metrics(result, len(dataset.val)))


def _outcome_state(result: TrainResult) -> tuple[State, str]:
    if result.state is State.DIVERGED:
        return State.FAILED, f"diverged: {result.reason}"
    if result.state is State.PRUNED:
        return State.PRUNED, f"pruned after epoch {len(result.epochs)}"
    if result.state is State.TIMEOUT:  # fewer epochs than planned: ranked after complete ones
        return State.TIMEOUT, result.reason or "time cap reached"
    return State.COMPLETE, ""


def _metrics(result: TrainResult, val_images: int) -> dict:
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
        "val_correct": result.val_correct,
        "val_images": val_images,
    }


@dataclass(frozen=True)
class Timing:
    """What one network's training costs on a device: `seconds` for a full training with its
    evaluations once its shapes are warm, `first_use` the extra seconds its first steps took
    (paid once per network and process: kernel selection, cuDNN or oneDNN set-up and
    compilation for its shapes; seconds on a GPU, little on a CPU), the warm training
    `images_per_s` and the seconds of one `evaluation` of the validation split. A training
    that replays its step as a CUDA graph (scaler.graphed_step) first runs `setup_steps`
    steps eagerly and captures the graph, `setup` seconds paid by every training; the rate is
    then the replayed steps'."""

    seconds: float
    first_use: float
    images_per_s: float
    evaluation: float = 0.0
    measured: bool = True  # False: read off another network's timing (`scaled`)
    spent: float = 0.0  # seconds the measurement itself took, first use included
    # `seconds` before a --max-seconds cap, and the cap: a costlier network is scaled from
    # the uncapped time, then capped again (scaling the capped time overshot the cap)
    uncapped: float | None = None
    max_seconds: float | None = None
    setup: float = 0.0
    setup_steps: int = 0

    def steps_seconds(self, steps: int, batch: int) -> float:
        """`steps` warm training steps of `batch` images, a graph's setup included."""
        return self.setup + max(0, steps - self.setup_steps) * batch / self.images_per_s

    def training_seconds(self, config: TrainConfig, train_images: int) -> float:
        """A warm training under `config` on `train_images`: the images its steps take (each
        epoch drops its last partial batch, `--steps` may end mid-epoch) at the training rate,
        and one evaluation per epoch begun; one stopped by `max_seconds` evaluates once more
        after it."""
        steps = config.steps if config.steps is not None else config.epochs * config.steps_per_epoch(train_images)
        seconds = self.steps_seconds(steps, min(config.batch_size, train_images)) \
            + config.planned_epochs(train_images) * self.evaluation
        return seconds if config.max_seconds is None else min(seconds, config.max_seconds + self.evaluation)

    def scaled(self, factor: float) -> Timing:
        """The timing of a network `factor` times as costly (same first use), not measured."""
        uncapped = (self.seconds if self.uncapped is None else self.uncapped) * factor
        evaluation = self.evaluation * factor
        seconds = uncapped if self.max_seconds is None else min(uncapped, self.max_seconds + evaluation)
        return Timing(seconds, self.first_use, self.images_per_s / factor, evaluation, measured=False,
                      uncapped=uncapped, max_seconds=self.max_seconds, setup=self.setup * factor,
                      setup_steps=self.setup_steps)


# The estimate's two short runs of the training loop. Both take more steps than a replayed
# training runs eagerly (graphed_step.EAGER_STEPS), so that each captures its graph as a
# training does.
WARM_STEPS, TIMED_STEPS = 3, 10
TIMED_NETWORKS = 12  # at most this many distinct networks are timed before a study
TIMING_SHARE = 0.1  # and only while timing them costs less than this share of their work


def estimate_seconds(
    build: Callable[[], nn.Module],
    resolution: int,
    dataset: Dataset,
    config: TrainConfig,
    runtime: Runtime,
) -> Timing:
    """Measure one training of the network `build` makes by running the training loop itself.

    `train` runs WARM_STEPS steps and one evaluation batch on the study's own images, which
    pays the network's first use, then TIMED_STEPS more steps and the batch again on the same
    module: the warm training and evaluation rates. The first run's excess over what the warm
    rates predict for it is the first-use cost. (Timing bare steps on random tensors outside
    the loop read 15-25% slower than the loop runs on 2 CPU cores, which made every estimate
    too high.) Where the loop replays its step as a CUDA graph, the warm run's setup (its
    eager steps and the capture, `TrainResult.setup_seconds`) is kept apart: every training
    pays it once, and the rate is the replayed steps'. A training of EAGER_STEPS steps or
    fewer never captures, and is estimated with the whole setup anyway (a capture's worth
    too long).
    """
    began = time.perf_counter()
    model = build()
    eval_batch = min(config.eval_batch_size, len(dataset.val))
    probe = replace(dataset, val=ImageSplit(dataset.val.images[:eval_batch], dataset.val.labels[:eval_batch]))

    def run(steps: int) -> tuple[float, TrainResult]:
        start = time.perf_counter()
        result = train(model, probe, resolution, replace(config, steps=steps, max_seconds=None), runtime)
        return time.perf_counter() - start, result

    cold_wall, _ = run(WARM_STEPS)
    _, warm = run(TIMED_STEPS)
    batch = min(config.batch_size, len(dataset.train))
    # An epoch's seconds hold its steps and its evaluation; the steps took TIMED_STEPS batches
    # at the training rate. (TrainResult.train_seconds holds both, so it cannot tell them apart.)
    steps_seconds = TIMED_STEPS * batch / warm.images_per_s
    # A graphed training's rate is its replayed steps': the eager steps and the capture before
    # them are its setup, paid once per training, not per step.
    setup, setup_steps, train_ips = 0.0, 0, warm.images_per_s
    if warm.setup_seconds > 0:  # within the epoch's training time, before its replayed steps
        setup, setup_steps = warm.setup_seconds, EAGER_STEPS
        train_ips = (TIMED_STEPS - EAGER_STEPS) * batch / (steps_seconds - setup)
    eval_seconds = max(0.0, sum(e.seconds for e in warm.epochs) - steps_seconds) / max(1, len(warm.epochs))
    per_eval_image = eval_seconds / eval_batch if eval_batch else 0.0
    timing = Timing(0.0, 0.0, train_ips, evaluation=len(dataset.val) * per_eval_image,
                    spent=time.perf_counter() - began, max_seconds=config.max_seconds,
                    setup=setup, setup_steps=setup_steps)
    first_use = max(0.0, cold_wall - timing.steps_seconds(WARM_STEPS, batch) - eval_seconds)
    timing = replace(timing, first_use=first_use)
    return replace(timing, seconds=timing.training_seconds(config, len(dataset.train)),
                   uncapped=timing.training_seconds(replace(config, max_seconds=None), len(dataset.train)))


def time_networks(
    macs: dict[_K, int],
    measure: Callable[[_K], Timing],
    *,
    work: Callable[[_K, Timing], float] | None = None,
    in_process: bool = True,
    limit: int = TIMED_NETWORKS,
    share: float = TIMING_SHARE,
) -> dict[_K, Timing]:
    """The timing of every distinct network: `macs` maps a key per network to its MACs,
    `measure` times the network of a key, `work` gives the seconds of all the trainings a
    network will run from its timing (default: one training, `Timing.seconds`).

    A network's time is far from proportional to its MACs on a small proxy (on 2 CPU cores,
    a ResNet-50 at base width 0.125 made 4x deeper took 2.5x the base's time per image for
    3.1x its MACs, 2x wider 1.3x for 3.6x; timing only the median network and scaling by
    MACs read 24% short for a comparison of such networks), so networks are measured one by
    one, spread over the MACs range: the cheapest, the costliest, then each time the one
    farthest in log MACs from those measured. A network whose timing run fails (out of memory,
    an error in a factory's network) is left unmeasured: its own training records the failure,
    and one failing network must not stop the others. Measuring stops after `limit` networks, or once
    the measurements have cost more than `share` of the work they estimate (at least one is
    measured: for a few seconds of work, timing a second network could cost more than the
    work itself). A first use that the work would pay anyway does not count as a cost: with
    `in_process`, the measured networks' shapes stay warm for the training. On a GPU whose
    first use takes seconds per network, worker processes (which pay it again) thus get few
    networks timed, and a search in this process all of them. Every network not measured
    takes the timing of the nearest measured one in log MACs, scaled by MACs.
    """
    keys = sorted(macs, key=lambda k: macs[k])
    work = work or (lambda key, timing: timing.seconds)
    size = {k: math.log(max(macs[k], 1)) for k in keys}  # a network of no MACs counts as one
    measured: dict[_K, Timing] = {}

    def timing_of(key: _K) -> Timing:
        if key in measured:
            return measured[key]
        near = min(measured, key=lambda c: abs(size[c] - size[key]))
        return measured[near].scaled(math.exp(size[key] - size[near]))

    spent = 0.0
    left = list(keys)
    while left and len(measured) < max(1, limit):
        if measured and spent > share * sum(work(k, timing_of(k)) for k in keys):
            break
        if len(measured) < 2:
            key = left[0] if not measured else left[-1]  # the cheapest, then the costliest
        else:
            key = max(left, key=lambda k: min(abs(size[k] - size[c]) for c in measured))
        left.remove(key)
        try:
            timing = measure(key)
        except (UsageError, Interrupted):  # bad input fails every network: say so now
            raise
        except Exception:  # noqa: BLE001 (any other error of the network's training)
            continue
        measured[key] = timing
        spent += max(0.0, timing.spent - (timing.first_use if in_process else 0.0))
    if not measured:  # every timing run failed: no rate to estimate from
        return {k: Timing(math.nan, 0.0, math.nan, math.nan, measured=False) for k in keys}
    return {k: timing_of(k) for k in keys}


def first_use_left(timing: Timing, in_process: bool) -> float:
    """The first-use seconds the work will still pay for a network: all of it, except for a
    network the estimate itself ran when the work runs in this same process (its shapes stay
    warm; on a GPU that is seconds per network, on a CPU little)."""
    return 0.0 if in_process and timing.measured else timing.first_use


def describe_timings(timings: Iterable[Timing]) -> str:
    """How an estimate was measured: the timed networks' training rates and first-use times."""
    timings = list(timings)
    timed = [t for t in timings if t.measured]
    if not timed:
        return "no network could be timed: each timing run failed, and each training will record why"
    count = f"{len(timed)} of {len(timings)}" if len(timed) < len(timings) else f"{len(timed)}"
    rates = span([t.images_per_s for t in timed], "{:.0f}")
    first = span([t.first_use for t in timed], "{:.1f}")
    return f"timed {count} network{'s' if len(timings) > 1 else ''}: {rates} img/s, first use {first} s per network"


def span(values: list[float], form: str) -> str:
    """`low-high` of `values` in `form`, or the one value when they all print the same."""
    low, high = form.format(min(values)), form.format(max(values))
    return low if low == high else f"{low}-{high}"


class ScaledNetwork(Protocol):
    """What a proxy study knows of one network it trains (a candidate, a comparison point)."""

    depth_mult: float
    width_mult: float
    resolution: int
    params: int
    macs: int


def shape(network: ScaledNetwork) -> tuple[int, float, float]:
    """What makes two networks the same network to train: resolution, width, depth."""
    return network.resolution, network.width_mult, network.depth_mult


def check_stored(base: ProxyBase, networks: Sequence[ScaledNetwork]) -> None:
    """That `base`, imported here, builds the smallest and the largest of the networks a study
    stored as they were counted (`ProxyBase.check_builds`; a preset always does): checked
    where a study is restored, before this run stores anything with it."""
    by_size = sorted(networks, key=lambda network: network.params)
    for network in dict.fromkeys(by_size[:1] + by_size[-1:]):
        base.check_builds(network.width_mult, network.depth_mult, network.resolution, network.params)


class ProxyConfig(Protocol):
    """The parts of a proxy study's configuration that say what it trains and on what."""

    base: ProxyBase
    data: DataOptions
    train: TrainConfig

    def validate(self) -> None: ...

    def identity(self) -> dict: ...


# The options that set a proxy's base, data and training (see `Experiment.options`).
PROXY_OPTIONS = {
    "base.variant": "--base", "base.resolution": "--base-resolution", "base.width": "--base-width", "base.zero_init": "--zero-init/--standard-init",
    "data.source": "--data", "data.train_images": "--train-images", "data.val_images": "--val-images", "data.val_fraction": "--val-fraction",
    **{f"train.{key}": "--" + key.replace("_", "-") for key in (
        "epochs", "steps", "max_seconds", "batch_size", "lr", "optimizer", "weight_decay", "label_smoothing", "clip_grad_norm", "seed")},
}  # fmt: skip


def option_values(config: ProxyConfig) -> dict[str, object]:
    """The values of the options in PROXY_OPTIONS, by their keyword names ('base_resolution',
    'zero_init'), that give `config`'s base, data and training: what `compare --from` takes
    from a search for the options it is not given. --epochs is left unset where the training
    is set in steps (the two are refused together), --clip-grad-norm is 0 where it never clips."""
    values: dict[str, object] = {}
    for key, flag in PROXY_OPTIONS.items():
        part, field = key.split(".")
        values[flag.split("/")[0].removeprefix("--").replace("-", "_")] = getattr(getattr(config, part), field)
    if config.train.steps is not None:
        values["epochs"] = None
    values["clip_grad_norm"] = values["clip_grad_norm"] or 0.0
    return values


class DatasetContext:
    """What the engine asks of an experiment whose context is a `Dataset` (every one here), or,
    before it is decoded, its `DataIdentity`: its fingerprint, and its files kept in the
    study's folder (`manifest`), so that a resume on other files names them."""

    folder_files = (MANIFEST_NAME,)

    def context_fingerprint(self, context: Dataset | DataIdentity) -> str:
        return context.fingerprint

    def keep_context(self, context: Dataset, folder: Path) -> None:
        keep_files(folder, context)

    def context_change(self, context: Dataset | DataIdentity, folder: Path | None) -> str | None:
        return what_changed(folder, context)


class ProxyExperiment(DatasetContext, Experiment):
    """An experiment whose every item trains one scaled network of `config.base` on
    `config.data` with `config.train` (the search and the comparison; a calibration varies
    them per item and does its own): loading the data, building a network and estimating the
    cost are the same for all of them, and live here."""

    config: ProxyConfig
    dataset_fingerprint: str | None = None

    @abc.abstractmethod
    def networks(self) -> list[ScaledNetwork]:
        """Every network the study trains."""

    @abc.abstractmethod
    def network(self, item: WorkItem) -> ScaledNetwork:
        """The network one item trains."""

    def prepare(self, runtime: Runtime, check: Callable[[DataIdentity], None] | None = None) -> Dataset:
        """The study's data at a storage resolution that serves its largest network, with a
        warning where the batch is larger than its training set (`TrainConfig.batch_note`) and
        where --zero-init changes nothing in a factory base (`ProxyBase.zero_init_note`);
        `check`ed before it is decoded."""
        config = self.config
        storage_resolution = max(n.resolution for n in self.networks())
        dataset = load_checked(config.data, config.train.seed, config.base.num_classes, storage_resolution, runtime, check)
        self.dataset_fingerprint = dataset.fingerprint
        notes = (config.train.batch_note(len(dataset.train)), config.base.zero_init_note())
        return replace(dataset, warnings=(*dataset.warnings, *filter(None, notes)))

    def epochs(self, context: Dataset, item: WorkItem) -> int:
        return self.config.train.planned_epochs(len(context.train))

    def model(self, network: ScaledNetwork, seed: int) -> nn.Module:
        """The module of one network, its initial weights fixed by `seed`."""
        seed_everything(seed)
        return self.config.base.build(network.width_mult, network.depth_mult)

    def estimate_seconds(
        self, context: Dataset, runtime: Runtime, items: list[WorkItem], *, in_process: bool = True
    ) -> tuple[dict[WorkItem, float], str]:
        """Times each distinct network of `items` (see `time_networks`): each item's warm
        training, plus its share of its network's first use still to pay (see `first_use_left`;
        repeats reuse warm shapes)."""
        if not items:
            return {}, "nothing left to train"
        config = self.config
        networks = {item: shape(self.network(item)) for item in items}
        distinct = {key: self.network(item) for item, key in networks.items()}
        trainings = Counter(networks.values())  # repeats train the same network

        def work(key: tuple, timing: Timing) -> float:
            return trainings[key] * timing.seconds

        timings = time_networks(
            {key: n.macs for key, n in distinct.items()},
            lambda key: estimate_seconds(
                lambda: self.model(distinct[key], config.train.seed), distinct[key].resolution, context, config.train, runtime,
            ),
            work=work, in_process=in_process,
        )  # fmt: skip
        return {
            item: timings[key].seconds + first_use_left(timings[key], in_process) / trainings[key]
            for item, key in networks.items()
        }, describe_timings(timings.values())
