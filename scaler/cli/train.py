"""`scaler train`: train one network briefly and report per-epoch validation metrics."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from scaler.cli import options
from scaler.cli.app import PRESETS, Format, app, console, progress_console
from scaler.cli.options import DATA_OPTIONS, TRAIN_OPTIONS, CacheDir, FormatOption, ProcessDevice, ProcessThreads
from scaler.cli.progress import StepBar, make_progress
from scaler.cli.render import Column, emit, fixed, integer, interval, share, text
from scaler.errors import RunError, ScalerError, interrupted_by_user
from scaler.files import json_ready
from scaler.runtime import oversubscription
from scaler.scaling import MIN_TRAIN_RESOLUTION, validate_resolution
from scaler.states import State

if TYPE_CHECKING:
    from scaler.data import Dataset
    from scaler.training import EpochCallback, StepCallback, TrainResult
    from torch import nn


def _load_data(source: str, storage_resolution: int, train_images: Optional[int], val_images: Optional[int], val_fraction: float, seed: int,
               cache_dir: Optional[Path], quiet: bool) -> Dataset:
    from scaler.data import load_dataset

    with nullcontext() if quiet else progress_console.status(f"loading data '{source}'..."):
        dataset = load_dataset(
            source, storage_resolution=storage_resolution, train_images=train_images,
            val_images=val_images, val_fraction=val_fraction, seed=seed, cache_dir=cache_dir,
        )  # fmt: skip
    for warning in dataset.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return dataset


METRIC_COLUMNS = [
    Column("epoch", "epoch", integer),
    Column("train_loss", "train loss", fixed(4)),
    Column("top1", "val top-1", share),
    Column("top5", "val top-5", share),
    Column("val_loss", "val loss", fixed(4)),
    Column("images_per_s", "train img/s", fixed(1)),  # over the training steps alone
    Column("seconds", "epoch s", fixed(1)),  # the whole epoch: its evaluation included
    Column("peak_memory_mb", "peak MB", fixed(0)),
]


@app.command(
    epilog="Examples:  scaler train b0 --data synthetic --epochs 3 --resolution 128 · "
    "scaler train b0 --data ./images --width 0.5 --format json · scaler train b0 --data cifar10:./cifar-10-batches-py · "
    "scaler train net.py:make --width 0.5 --resolution 64 · "
    "scaler train b0 --width 0.5 --resolution 64 --zero-init   # the default search's unscaled base"
)
@options.with_options(DATA_OPTIONS, TRAIN_OPTIONS, after="resolution")
def train(
    variant: Annotated[str, typer.Argument(help=f"Preset to train ({PRESETS}), or a factory package.module:make or path/to/file.py:make.")] = "b0",
    width: Annotated[Optional[float], typer.Option(help="Width multiplier (overrides the preset's).")] = None,
    depth: Annotated[Optional[float], typer.Option(help="Depth multiplier (overrides the preset's).")] = None,
    resolution: Annotated[int, typer.Option(help="Training resolution in pixels.")] = 128,
    repeats: Annotated[int, typer.Option(help="Trainings with independent seeds (initialisation, batch order, augmentation); reports mean and spread.")] = 1,
    zero_init: Annotated[bool, typer.Option("--zero-init/--standard-init", help="Start every residual branch at zero, as a search's proxy does by default, or as the network's own initialisation does.")] = False,
    device: ProcessDevice = "auto",
    threads: ProcessThreads = None,
    cache_dir: CacheDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Epoch lines only, no progress bar or spinner.")] = False,
    format: FormatOption = Format.table,
    **flags: Any,
) -> None:
    """Train one network briefly and report per-epoch validation metrics (with --repeats, the
    final metrics of each seed and their mean with a 95% interval)."""
    from scaler.train_config import check_repeats
    from scaler.models import check_network, family_of, network_spec
    from scaler.models.init import zero_init_note, zero_init_residuals
    from scaler.training import check_trainable, train_repeats

    data, train_images, val_images, val_fraction = (flags.pop(k) for k in ("data", "train_images", "val_images", "val_fraction"))
    config = options.train_config(**flags)
    seed = config.seed
    run_on = options.runtime(device, threads, cache_dir)
    if threads is not None and (warning := oversubscription(1, threads)):
        print(warning, file=sys.stderr)
    validate_resolution(resolution, low=MIN_TRAIN_RESOLUTION)
    check_repeats(repeats)
    options.note_unused_val_fraction(data, val_fraction)
    dataset = _load_data(data, resolution, train_images, val_images, val_fraction, seed, cache_dir, quiet)
    spec = network_spec(variant, width=width, depth=depth, num_classes=dataset.num_classes)
    check_network(spec, resolution)

    def build() -> nn.Module:
        model = family_of(spec).build(spec)
        if zero_init:
            zero_init_residuals(model)
        return model

    check_trainable(dataset, resolution, config)  # refused before any progress display is drawn
    if note := config.batch_note(len(dataset.train)):
        print(f"warning: {note}", file=sys.stderr)
    if zero_init and (start_note := zero_init_note(variant, spec)):
        print(f"warning: {start_note}", file=sys.stderr)
    options.say_notes()  # every option accepted: what they do not use
    with make_progress(progress_console, quiet) as progress:

        def watch(run_seed: int) -> tuple[StepCallback, EpochCallback]:
            bar = StepBar(progress, variant if repeats == 1 else f"{variant} seed {run_seed}", config.planned_epochs(len(dataset.train)))
            return bar.on_step, bar.on_epoch

        try:
            runs = train_repeats(build, dataset, resolution, config, run_on, repeats=repeats, watch=watch)
        except ScalerError:
            raise
        except Exception as exc:  # the network's own code (a factory's forward): named, and --debug shows where
            if interrupted_by_user(exc):  # a clean-up that failed while Ctrl-C was handled
                raise
            raise RunError(f"training {variant} at {resolution} px failed: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    seeds, results = [s for s, _ in runs], [r for _, r in runs]
    title = f"{variant} (w={spec.width:g}, d={spec.depth:g}) at {resolution}px on {data}"
    caption = f"{len(dataset.train)} train / {len(dataset.val)} val images, {dataset.num_classes} classes, device {results[0].device}"
    if repeats > 1:
        _show_repeats(results, seeds, len(dataset.val), format, title, caption)
    else:
        _show_run(results[0], len(dataset.val), format, f"{title}: {results[0].state}", caption)
    diverged = [r for r in results if r.state is State.DIVERGED]
    if diverged:
        print(f"error: training diverged: {diverged[0].reason}", file=sys.stderr)
        raise typer.Exit(1)
    if repeats > 1 and not any(r.state is State.COMPLETE for r in results):  # the mean over seeds asked for: none
        counts = ", ".join(f"{n} {s}" for s, n in Counter(r.state.value for r in results).items())
        print(f"error: no run completed ({counts}): a mean over seeds needs complete trainings; "
              "give --max-seconds more room (or drop it)", file=sys.stderr)
        raise typer.Exit(1)


REPEAT_COLUMNS = [
    Column("repeat", "repeat", integer),
    Column("seed", "seed", text),
    Column("state", "state", text),
    Column("top1", "val top-1", share),
    Column("top5", "val top-5", share),
    Column("val_loss", "val loss", fixed(4)),
    Column("train_seconds", "seconds", fixed(1)),
]


def _show_repeats(results: list[TrainResult], seeds: list[int], val_images: int, format: Format, title: str, caption: str) -> None:
    """One row per seed, then the mean top-1 of the runs that completed, with its spread and
    95% interval (diverged or timed-out runs are listed, not averaged)."""
    import pandas as pd
    from scaler.statistics import mean_interval

    top1 = [r.top1 for r in results if r.state is State.COMPLETE]
    mean, std, low, high = mean_interval(top1, images=val_images)
    if format is Format.json:
        runs = [{**r.to_dict(), "seed": s} for r, s in zip(results, seeds)]
        summary = {"top1_mean": mean, "top1_std": std, "top1_low": low, "top1_high": high, "repeats": len(top1)}  # completed runs
        print(json.dumps(json_ready({"runs": runs, **summary}), indent=2))
        return
    frame = pd.DataFrame(
        [{"repeat": i + 1, "seed": s, "state": r.state.value, "top1": r.top1, "top5": r.top5, "val_loss": r.val_loss,
          "train_seconds": r.train_seconds} for i, (r, s) in enumerate(zip(results, seeds))]
    )  # fmt: skip
    # CSV has no place for a summary row: every row carries the summary of the completed runs
    frame = frame.assign(top1_mean=mean, top1_std=std, top1_low=low, top1_high=high, repeats=len(top1))
    if len(top1) >= 2:
        caption += f"\ntop-1 over {len(top1)} seeds: mean {mean:.1%}, std {std * 100:.1f} points, 95% interval {interval(low, high)}"
    else:  # a spread needs two completed runs
        caption += f"\n{len(top1)} of {len(results)} runs completed" + (
            f" (top-1 {mean:.1%}, 95% interval {interval(low, high)} over its {val_images} validation images): no spread over seeds"
            if top1 else "")
    emit(frame, REPEAT_COLUMNS, format.value, console, title=title, caption=caption)


def _show_run(result: TrainResult, val_images: int, format: Format, title: str, caption: str) -> None:
    """Per-epoch metrics of one training, and its final top-1's 95% interval over the
    validation images (the only noise one run can measure). A run that ends unscored (diverged)
    has no final top-1, in the caption or the JSON: its network broke; the epochs' rows stay, as
    they were measured."""
    import pandas as pd

    from scaler.statistics import mean_interval

    frame = pd.DataFrame([asdict(e) for e in result.epochs], columns=[c.key for c in METRIC_COLUMNS])
    bounds = [mean_interval([top1], images=val_images)[2:] for top1 in frame["top1"]]
    frame["top1_low"], frame["top1_high"] = [b[0] for b in bounds], [b[1] for b in bounds]  # for CSV
    frame["state"] = result.state.value  # the run's, on every epoch's row, as the title says it
    frame["reason"] = result.reason  # and why it stopped, as the caption says it ("" when complete)
    scored = bool(result.epochs) and result.state.is_scored
    low, high = mean_interval([result.top1], images=val_images)[2:] if scored else (math.nan, math.nan)
    if format is Format.json:  # the final top-1's bounds, and each epoch's, as CSV has them
        data = result.to_dict()
        if not scored:  # the final network's accuracy is not known: not the last epoch's figure
            data.update(top1=None, top5=None)
        for epoch, (epoch_low, epoch_high) in zip(data["epochs"], bounds):
            epoch.update(top1_low=epoch_low, top1_high=epoch_high)
        print(json.dumps(json_ready({**data, "top1_low": low, "top1_high": high}), indent=2))
        return
    caption += f", {result.train_seconds:.1f} s"
    caption += ("\npeak MB: the most memory torch allocated on the GPU" if result.device.startswith("cuda") else
                "\npeak MB: the process's largest resident memory so far (torch's own included)")
    if scored and val_images:
        caption += (f"\nfinal val top-1 {result.top1:.1%}, 95% interval {interval(low, high)} over the {val_images} validation "
                    "images; --repeats 3 adds the seed's noise")
    elif result.epochs:
        caption += f"\nno final top-1: a {result.state} training's network is broken, so it is not scored"
    if result.reason:
        caption += f"\n{result.state}: {result.reason}"
    emit(frame, METRIC_COLUMNS, format.value, console, title=title, caption=caption)
