"""`scaler train`: train one network briefly and report per-epoch validation metrics."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer

from scaler import build_model
from scaler.cli import options
from scaler.cli.app import Format, app, console
from scaler.cli.options import (
    DEFAULT_TRAIN, BatchSize, CacheDir, Data, Device, Epochs, FormatOption, LabelSmoothing, Lr,
    MaxSeconds, OptimizerOption, Seed, Steps, Threads, TrainImages, ValFraction, ValImages, WeightDecay,
)  # fmt: skip
from scaler.data import Dataset, load_dataset
from scaler.progress import StepBar, make_progress
from scaler.render import Column, emit, fixed, integer, share
from scaler.scaling import validate_resolution
from scaler.states import State
from scaler.training import seed_everything
from scaler.training import train as train_model


def _load_data(source: str, storage_resolution: int, train_images: Optional[int], val_images: Optional[int], val_fraction: float, seed: int, cache_dir: Optional[Path]) -> Dataset:
    with console.status(f"loading data '{source}'..."):
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
    Column("images_per_s", "img/s", fixed(1)),
    Column("seconds", "seconds", fixed(1)),
    Column("peak_memory_mb", "peak MB", fixed(0)),
]


@app.command(
    epilog="Examples:  scaler train b0 --data synthetic --epochs 3 --resolution 128 · "
    "scaler train b0 --data ./images --width 0.5 --format json · scaler train b0 --data cifar10:./cifar-10-batches-py"
)
def train(
    variant: Annotated[str, typer.Argument(help="Preset to train: b0..b8, l2.")] = "b0",
    width: Annotated[Optional[float], typer.Option(help="Width multiplier (overrides the preset's).")] = None,
    depth: Annotated[Optional[float], typer.Option(help="Depth multiplier (overrides the preset's).")] = None,
    resolution: Annotated[int, typer.Option(help="Training resolution in pixels.")] = 128,
    data: Data = "synthetic",
    train_images: TrainImages = None,
    val_images: ValImages = None,
    val_fraction: ValFraction = 0.2,
    epochs: Epochs = DEFAULT_TRAIN.epochs,
    steps: Steps = None,
    max_seconds: MaxSeconds = None,
    batch_size: BatchSize = DEFAULT_TRAIN.batch_size,
    lr: Lr = None,
    optimizer: OptimizerOption = DEFAULT_TRAIN.optimizer,
    weight_decay: WeightDecay = DEFAULT_TRAIN.weight_decay,
    label_smoothing: LabelSmoothing = DEFAULT_TRAIN.label_smoothing,
    seed: Seed = 0,
    device: Device = "auto",
    threads: Threads = None,
    cache_dir: CacheDir = None,
    format: FormatOption = Format.table,
) -> None:
    """Train one network briefly and report per-epoch validation metrics."""
    config = options.train_config(epochs, steps, max_seconds, batch_size, lr, optimizer, weight_decay, label_smoothing, seed)
    run_on = options.runtime(device, threads, cache_dir)
    validate_resolution(resolution)
    dataset = _load_data(data, resolution, train_images, val_images, val_fraction, seed, cache_dir)
    seed_everything(seed)
    model = build_model(variant, width=width, depth=depth, num_classes=dataset.num_classes)
    with make_progress(console, disable=format is not Format.table) as progress:
        bar = StepBar(progress, variant, config.epochs)
        result = train_model(model, dataset, resolution, config, run_on, on_step=bar.on_step, on_epoch=bar.on_epoch)
    if format is Format.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        frame = pd.DataFrame([asdict(e) for e in result.epochs], columns=[c.key for c in METRIC_COLUMNS])
        title = f"{variant} (w={model.spec.width:g}, d={model.spec.depth:g}) at {resolution}px on {data}: {result.status}"
        caption = (
            f"{len(dataset.train)} train / {len(dataset.val)} val images, {dataset.num_classes} classes, "
            f"device {result.device}, {result.train_seconds:.1f} s"
        )
        if result.reason:
            caption += f"\n{result.status}: {result.reason}"
        emit(frame, METRIC_COLUMNS, format.value, console, title=title, caption=caption)
    if result.status is State.DIVERGED:
        print(f"error: training diverged: {result.reason}", file=sys.stderr)
        raise typer.Exit(1)
