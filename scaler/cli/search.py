"""`scaler search`: the compound-scaling grid search (a study of the `search` experiment)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaler.candidates import ProxyBase
from scaler.cli import options
from scaler.cli.app import Format, app
from scaler.cli.options import (
    DEFAULT_BASE, DEFAULT_SPACE, DEFAULT_TRAIN, SEARCH_DEFAULTS, AlphaRange, Base, BaseResolution,
    BaseWidth, BatchSize, BetaRange, Data, Device, Epochs, FlopsTolerance, FormatOption, GammaRange, LabelSmoothing,
    Lr, MaxSeconds, Mode, OptimizerOption, PhiOption, Seed, Steps, Target, Threads, Tolerance,
    TrainImages, ValFraction, ValImages, WeightDecay, ZeroInit,
)  # fmt: skip
from scaler.cli.results import reliability_lines, show_results
from scaler.cli.study import check_finished, run_command_study
from scaler.experiments.proxy import DataOptions
from scaler.experiments.search import SUMMARY_NAME, CompoundSearch, SearchConfig
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA


@app.command(
    epilog="Examples:  scaler search --phi 1 · scaler search --pruner halving --epochs 6 · "
    "scaler search --data ./images --base-resolution 96 --workers 2 · "
    "scaler search --storage postgresql+psycopg2://user:pw@host/db --name b0-phi1 (then `scaler worker` elsewhere)"
)
def search(
    phi: PhiOption = DEFAULT_SPACE.phi,
    mode: Mode = DEFAULT_SPACE.mode,
    alpha_range: AlphaRange = str(DEFAULT_SPACE.alpha),
    beta_range: BetaRange = str(DEFAULT_SPACE.beta),
    gamma_range: GammaRange = str(DEFAULT_SPACE.gamma),
    target: Target = DEFAULT_SPACE.target,
    tolerance: Tolerance = DEFAULT_SPACE.tolerance,
    flops_tolerance: FlopsTolerance = None,
    base: Base = DEFAULT_BASE.variant,
    base_resolution: BaseResolution = DEFAULT_BASE.resolution,
    base_width: BaseWidth = DEFAULT_BASE.width,
    zero_init: ZeroInit = DEFAULT_BASE.zero_init,
    data: Data = SEARCH_DEFAULTS.data.source,
    train_images: TrainImages = SEARCH_DEFAULTS.data.train_images,
    val_images: ValImages = SEARCH_DEFAULTS.data.val_images,
    val_fraction: ValFraction = SEARCH_DEFAULTS.data.val_fraction,
    epochs: Epochs = DEFAULT_TRAIN.epochs,
    steps: Steps = None,
    max_seconds: MaxSeconds = None,
    batch_size: BatchSize = DEFAULT_TRAIN.batch_size,
    lr: Lr = None,
    optimizer: OptimizerOption = DEFAULT_TRAIN.optimizer,
    weight_decay: WeightDecay = DEFAULT_TRAIN.weight_decay,
    label_smoothing: LabelSmoothing = DEFAULT_TRAIN.label_smoothing,
    seed: Seed = DEFAULT_TRAIN.seed,
    pruner: Annotated[str, typer.Option(help="none, halving (successive halving) or hyperband, on val top-1 per epoch.")] = "none",
    name: Annotated[Optional[str], typer.Option(help="Search name (default: derived from the configuration).")] = None,
    root: Annotated[Path, typer.Option("--root", help="Folder that holds the search folders.")] = Path("searches"),
    storage: Annotated[Optional[str], typer.Option(help="Database URL for the study, e.g. postgresql://user@host/db (password in ~/.pgpass, or --storage \"$SCALER_STORAGE\"; default: a journal file in the search folder).")] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
    repeats: Annotated[int, typer.Option(help="Trainings per candidate with independent seeds; raising it on an existing search trains only the missing repeats.")] = 1,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Train failed candidates again.")] = False,
    device: Device = "auto",
    threads: Threads = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Decoded-image cache (default: <root>/.cache).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines instead of progress bars.")] = False,
    format: FormatOption = Format.table,
) -> None:
    """Grid-search (alpha, beta, gamma) under alpha*beta^2*gamma^2 ~= T with proxy trainings.

    Writes <root>/<name>/results.csv (ranked) and search.json after every candidate. Running
    the same command again resumes: finished candidates are kept, interrupted ones retrained.
    """
    config = build_search_config(
        phi=phi, mode=mode, alpha_range=alpha_range, beta_range=beta_range, gamma_range=gamma_range, target=target,
        tolerance=tolerance, flops_tolerance=flops_tolerance, base=base, base_resolution=base_resolution,
        base_width=base_width, zero_init=zero_init, data=data, train_images=train_images, val_images=val_images, val_fraction=val_fraction,
        epochs=epochs, steps=steps, max_seconds=max_seconds, batch_size=batch_size, lr=lr, optimizer=optimizer,
        weight_decay=weight_decay, label_smoothing=label_smoothing, seed=seed, pruner=pruner,
    ).resumable(root, name)  # fmt: skip
    outcome, handle = run_command_study(
        CompoundSearch, config, name=name or config.default_name(), root=root, storage=storage, workers=workers,
        settings={"repeats": repeats}, retry_failed=retry_failed, device=device, threads=threads, cache_dir=cache_dir,
        quiet=quiet or format in (Format.csv, Format.json), counting="counting candidates with fvcore...",
    )  # fmt: skip
    frame, folder, name = outcome.frame, handle.folder, handle.name
    info = json.loads((folder / SUMMARY_NAME).read_text())
    caption = "\n".join([
        f"{folder}/results.csv · {len(frame)} candidates x {info['repeats']} repeat(s) · wall time {options.duration(outcome.seconds)} · "
        f"★ best · ≈ tied with it · ◆ the paper's ({PAPER_ALPHA:g}, {PAPER_BETA:g}, {PAPER_GAMMA:g}) · top-1 (mean over repeats) on the proxy's validation split",
        *reliability_lines(info),
    ])
    show_results(frame, format, f"Search {name}: phi={config.space.phi:g}, T={config.space.target:g}", caption)
    check_finished(frame, "candidate")


def build_search_config(
    *, phi: float, mode: str, alpha_range: str, beta_range: str, gamma_range: str, target: float, tolerance: float,
    flops_tolerance: Optional[float], base: str, base_resolution: int, base_width: float, zero_init: bool, data: str,
    train_images: Optional[int], val_images: Optional[int], val_fraction: float, epochs: int, steps: Optional[int],
    max_seconds: Optional[float], batch_size: int, lr: Optional[float], optimizer: str, weight_decay: float,
    label_smoothing: float, seed: int, pruner: str = "none",
) -> SearchConfig:
    """The search's flags as a SearchConfig (its proxy classifies as many classes as the data
    has); what `scaler search` and `scaler calibrate` share."""
    data_options = DataOptions(data, train_images, val_images, val_fraction)
    return SearchConfig(
        space=options.space(mode, alpha_range, beta_range, gamma_range, target, tolerance, phi),
        base=ProxyBase(base, base_resolution, base_width, data_options.classes(), zero_init),  # the data's classes
        data=data_options,
        train=options.train_config(epochs, steps, max_seconds, batch_size, lr, optimizer, weight_decay, label_smoothing, seed),
        pruner=pruner,
        flops_tolerance=flops_tolerance,
    )
