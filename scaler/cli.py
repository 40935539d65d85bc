"""The `scaler` command line: parses options, calls the library, renders the results.

Run as the console script `scaler`, or `python cli.py` from a checkout.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.console import Console

from scaler import build_model, reports
from scaler.candidates import CandidateSpace, ProxyBase, build_candidates, parse_range
from scaler.data import load_dataset
from scaler.errors import RunError, ScalerError, UsageError
from scaler.progress import StepBar, make_progress
from scaler.plots import plot_search
from scaler.search import (
    DataOptions,
    SearchConfig,
    FINISHED_STATES,
    best_coefficients,
    create_search,
    is_url,
    is_paper_point,
    join_search,
    read_results,
    search_lock,
    worker_id,
)
from scaler.workers import run_search, run_worker
from scaler.training import TrainConfig, seed_everything, train as train_model
from scaler.render import Column, emit, fixed, giga, integer, percent, published, share, text
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, parse_phi_list, validate_resolution

app = typer.Typer(
    help="Compound scaling of EfficientNet: count FLOPs, scale families, search (alpha, beta, gamma).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Examples:  scaler search --phi 1 · scaler flops b4 · scaler report searches/NAME --plot search.png",
)
console = Console()


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Compound scaling of EfficientNet, from rounding rules to a ranked grid search."""


FLOPS_COLUMNS = [
    Column("model", "model"),
    Column("resolution", "res", integer),
    Column("params", "params", integer),
    Column("macs", "MACs G", giga),
    Column("flops", "FLOPs G", giga),
    Column("fvcore_total", "fvcore G", giga),
    Column("paper_macs", "paper†", published("B")),
    Column("macs_deviation", "Δ", percent),
    Column("paper_params", "paper†", published("M")),
    Column("params_deviation", "Δ", percent),
]
STAGE_COLUMNS = [
    Column("model", "model"),
    Column("part", "part"),
    Column("output_resolution", "out res", integer),
    Column("params", "params", integer),
    Column("macs", "MACs (G)", giga),
    Column("macs_share", "share", share),
]


@app.command(
    epilog="Examples:  scaler flops b4 · scaler flops all · "
    "scaler flops --width 1.2 --depth 1.4 --resolution 300 --by-stage · scaler flops b0 --format json"
)
def flops(
    variant: Annotated[
        Optional[str], typer.Argument(help="b0..b8, l2, or 'all' (B0-B7); omit for custom multipliers.")
    ] = None,
    width: Annotated[Optional[float], typer.Option(help="Width multiplier (overrides a preset's).")] = None,
    depth: Annotated[Optional[float], typer.Option(help="Depth multiplier (overrides a preset's).")] = None,
    resolution: Annotated[Optional[int], typer.Option(help="Input side in pixels (overrides a preset's).")] = None,
    classes: Annotated[int, typer.Option(help="Number of classes of the classifier.")] = 1000,
    by_stage: Annotated[bool, typer.Option("--by-stage", help="Also break params and MACs down by stem, stage and head.")] = False,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """Count params and MACs of a variant with fvcore, beside the paper's published figures.

    MACs follow the paper's convention (multiply-adds of convolutions and the final linear
    layer); FLOPs = 2 x MACs; the fvcore total also counts BatchNorm and pooling.
    """
    models = reports.choose_models(
        variant, width=width, depth=depth, resolution=resolution, num_classes=classes
    )
    frame = reports.flops_table(models)
    missing = reports.unsupported_ops(models)
    caption = (
        "MACs: conv + linear multiply-adds, measured with fvcore (the paper's convention).\n"
        "FLOPs = 2 x MACs. fvcore G: fvcore's full total (adds BatchNorm and pooling).\n"
        "† as printed in Tan & Le 2019, Table 2 (FLOPS there are MACs); Δ = measured vs printed."
    )
    if missing:
        caption += "\nfvcore counts 0 for: " + ", ".join(
            f"{op.removeprefix('aten::')} x{n}" for op, n in sorted(missing.items())
        )
    emit(frame, FLOPS_COLUMNS, format.value, console, title="EfficientNet params and MACs", caption=caption)
    if by_stage:
        if format is Format.table:
            console.print()
        emit(reports.stage_table(models), STAGE_COLUMNS, format.value, console, title="By stage")


FAMILY_COLUMNS = [
    Column("phi", "phi", integer),
    Column("depth_mult", "d", fixed(3)),
    Column("width_mult", "w", fixed(3)),
    Column("resolution", "r", integer),
    Column("params", "params", integer),
    Column("macs", "MACs (G)", giga),
    Column("macs_ratio", "MACs ratio", fixed(2)),
    Column("nominal_ratio", "nominal", fixed(2)),
    Column("preset", "official", text),
    Column("preset_depth", "d", fixed(1)),
    Column("preset_width", "w", fixed(1)),
    Column("preset_resolution", "r", integer),
    Column("preset_params", "params", integer),
    Column("preset_macs", "MACs (G)", giga),
]


@app.command(
    epilog="Examples:  scaler scale · scaler scale --phi 1,3,5 · "
    "scaler scale --alpha 1.3 --beta 1.05 --gamma 1.2 --phi 0-4 --format csv · scaler scale --from searches/NAME --phi 1-7"
)
def scale(
    alpha: Annotated[float, typer.Option(help="Depth coefficient (>= 1).")] = PAPER_ALPHA,
    beta: Annotated[float, typer.Option(help="Width coefficient (>= 1).")] = PAPER_BETA,
    gamma: Annotated[float, typer.Option(help="Resolution coefficient (>= 1).")] = PAPER_GAMMA,
    phi: Annotated[str, typer.Option(help="Compound coefficients: 0-7, 1,3,5 or 2.")] = "0-7",
    base_resolution: Annotated[int, typer.Option(help="Resolution at phi = 0.")] = 224,
    from_search: Annotated[Optional[Path], typer.Option("--from", help="Take alpha, beta, gamma from a search folder's best candidate.")] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """The compound family of B0: d = alpha^phi, w = beta^phi, r = gamma^phi, beside B<phi>.

    Measured MACs ratios to phi = 0 sit next to the nominal (alpha*beta^2*gamma^2)^phi:
    channel, repeat and resolution rounding move them apart. The official presets were
    hand-rounded and are not exactly this family.
    """
    phis = parse_phi_list(phi)
    if from_search is not None:
        alpha, beta, gamma = best_coefficients(from_search)
    frame = reports.family_table(alpha, beta, gamma, phis, base_resolution=base_resolution)
    title = f"Compound family: alpha={alpha:g}, beta={beta:g}, gamma={gamma:g} (product {alpha * beta**2 * gamma**2:.4f})"
    caption = (
        f"resolution = {base_resolution} x gamma^phi rounded to a multiple of 4; "
        "'official' = the released preset of the same index (measured, native resolution)."
    )
    emit(frame, FAMILY_COLUMNS, format.value, console, title=title, caption=caption)



# --------------------------------------------------------------------------------------------
# Options shared by `train`, `candidates` and `search`

Mode = Annotated[str, typer.Option(help="grid: every coefficient on its range, keep |product - target| <= tolerance; surface: gamma solved exactly.")]
AlphaRange = Annotated[str, typer.Option(help="alpha (depth) range start:stop:step, inclusive.")]
BetaRange = Annotated[str, typer.Option(help="beta (width) range start:stop:step, inclusive.")]
GammaRange = Annotated[str, typer.Option(help="gamma (resolution) range start:stop:step; in surface mode it bounds the solved gamma.")]
Target = Annotated[float, typer.Option(help="T in alpha*beta^2*gamma^2 ~= T.")]
Tolerance = Annotated[float, typer.Option(help="Grid mode: keep |alpha*beta^2*gamma^2 - T| <= tolerance.")]
FlopsTolerance = Annotated[Optional[float], typer.Option(help="Drop candidates whose measured MACs ratio strays from T^phi by more than this fraction.")]
PhiOption = Annotated[float, typer.Option("--phi", help="Compound coefficient of the search (the paper uses 1).")]
Base = Annotated[str, typer.Option(help="Preset the proxy is built from.")]
BaseResolution = Annotated[int, typer.Option(help="Resolution of the proxy base (gamma scales it).")]
BaseWidth = Annotated[float, typer.Option(help="The proxy base's own width multiplier, applied before beta^phi.")]
Data = Annotated[str, typer.Option(help="'synthetic' (built in), a folder in ImageFolder layout, or cifar10:PATH.")]
TrainImages = Annotated[Optional[int], typer.Option(help="Training images (synthetic: how many; others: a cap).")]
ValImages = Annotated[Optional[int], typer.Option(help="Validation images (synthetic: how many; others: a cap).")]
ValFraction = Annotated[float, typer.Option(help="Validation share when a folder has no train/ and val/.")]
Epochs = Annotated[int, typer.Option(help="Training epochs per candidate.")]
Steps = Annotated[Optional[int], typer.Option(help="Total optimizer steps instead of epochs.")]
MaxSeconds = Annotated[Optional[float], typer.Option(help="Wall-clock cap per training.")]
BatchSize = Annotated[int, typer.Option(help="Training batch size.")]
Lr = Annotated[Optional[float], typer.Option(help="Peak learning rate (default: the optimizer's).")]
OptimizerOption = Annotated[str, typer.Option("--optimizer", help="sgd (Nesterov), rmsprop (TensorFlow style) or adamw.")]
WeightDecay = Annotated[float, typer.Option(help="Weight decay of conv and linear weights.")]
LabelSmoothing = Annotated[float, typer.Option(help="Label smoothing.")]
Seed = Annotated[int, typer.Option(help="Seed of data, initialisation and augmentation.")]
Device = Annotated[str, typer.Option(help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps.")]
Threads = Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores, split between workers).")]
CacheDir = Annotated[Optional[Path], typer.Option(help="Where decoded image tensors are cached.")]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


def _train_config(epochs: int, steps: Optional[int], max_seconds: Optional[float], batch_size: int, lr: Optional[float], optimizer: str, weight_decay: float, label_smoothing: float, seed: int, device: str, threads: Optional[int]) -> TrainConfig:
    config = TrainConfig(
        epochs=epochs, steps=steps, max_seconds=max_seconds, batch_size=batch_size, lr=lr,
        optimizer=optimizer, weight_decay=weight_decay, label_smoothing=label_smoothing,
        seed=seed, device=device, threads=threads,
    )  # fmt: skip
    config.validate()
    return config


def _space(mode: str, alpha_range: str, beta_range: str, gamma_range: str, target: float, tolerance: float, phi: float) -> CandidateSpace:
    space = CandidateSpace(
        mode=mode,
        alpha=parse_range(alpha_range, "alpha"),
        beta=parse_range(beta_range, "beta"),
        gamma=parse_range(gamma_range, "gamma"),
        target=target,
        tolerance=tolerance,
        phi=phi,
    )
    space.validate()
    return space


def _load_data(source: str, storage_resolution: int, train_images: Optional[int], val_images: Optional[int], val_fraction: float, seed: int, cache_dir: Optional[Path]):
    with console.status(f"loading data '{source}'..."):
        dataset = load_dataset(
            source, storage_resolution=storage_resolution, train_images=train_images,
            val_images=val_images, val_fraction=val_fraction, seed=seed, cache_dir=cache_dir,
        )  # fmt: skip
    if dataset.skipped:
        print(f"warning: skipped {dataset.skipped} unreadable image file(s) in {source}", file=sys.stderr)
    return dataset


DEFAULT_SPACE = CandidateSpace()
DEFAULT_BASE = ProxyBase()
DEFAULT_TRAIN = TrainConfig()
SEARCH_DEFAULTS = SearchConfig()

# --------------------------------------------------------------------------------------------
# scaler train

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
    config = _train_config(epochs, steps, max_seconds, batch_size, lr, optimizer, weight_decay, label_smoothing, seed, device, threads)
    validate_resolution(resolution)
    dataset = _load_data(data, resolution, train_images, val_images, val_fraction, seed, cache_dir)
    seed_everything(seed)
    model = build_model(variant, width=width, depth=depth, num_classes=dataset.num_classes)
    with make_progress(console, disable=format is not Format.table) as progress:
        bar = StepBar(progress, variant, config.epochs)
        result = train_model(model, dataset, resolution, config, on_step=bar.on_step, on_epoch=bar.on_epoch)
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
    if result.status == "diverged":
        print(f"error: training diverged: {result.reason}", file=sys.stderr)
        raise typer.Exit(1)


# --------------------------------------------------------------------------------------------
# scaler candidates / search

CANDIDATE_COLUMNS = [
    Column("index", "#", integer),
    Column("alpha", "alpha", fixed(2)),
    Column("beta", "beta", fixed(2)),
    Column("gamma", "gamma", fixed(4)),
    Column("product", "a*b^2*g^2", fixed(4)),
    Column("depth_mult", "d", fixed(3)),
    Column("width_mult", "w", fixed(3)),
    Column("resolution", "r", integer),
    Column("params", "params", integer),
    Column("macs", "MACs (M)", lambda v: f"{v / 1e6:.2f}"),
    Column("macs_ratio", "MACs ratio", fixed(3)),
    Column("nominal_ratio", "nominal", fixed(3)),
]


@app.command(
    epilog="Examples:  scaler candidates · scaler candidates --mode surface --alpha-range 1:1.6:0.1 --beta-range 1:1.3:0.05 · "
    "scaler candidates --format csv > candidates.csv"
)
def candidates(
    mode: Mode = DEFAULT_SPACE.mode,
    alpha_range: AlphaRange = str(DEFAULT_SPACE.alpha),
    beta_range: BetaRange = str(DEFAULT_SPACE.beta),
    gamma_range: GammaRange = str(DEFAULT_SPACE.gamma),
    target: Target = DEFAULT_SPACE.target,
    tolerance: Tolerance = DEFAULT_SPACE.tolerance,
    phi: PhiOption = DEFAULT_SPACE.phi,
    flops_tolerance: FlopsTolerance = None,
    base: Base = DEFAULT_BASE.variant,
    base_resolution: BaseResolution = DEFAULT_BASE.resolution,
    base_width: BaseWidth = DEFAULT_BASE.width,
    classes: Annotated[int, typer.Option(help="Classes of the proxy's classifier.")] = DEFAULT_BASE.num_classes,
    format: FormatOption = Format.table,
) -> None:
    """List the candidates a search would train, with params and MACs, without training."""
    space = _space(mode, alpha_range, beta_range, gamma_range, target, tolerance, phi)
    proxy = ProxyBase(base, base_resolution, base_width, classes)
    with console.status("counting candidates with fvcore..."):
        found = build_candidates(space, proxy, flops_tolerance)
    frame = pd.DataFrame([c.to_dict() for c in found])
    title = f"{len(found)} candidates ({space.mode}, T={space.target:g}, phi={space.phi:g}) on {base} w{base_width:g} at {base_resolution}px"
    emit(frame, CANDIDATE_COLUMNS, format.value, console, title=title)



SEARCH_COLUMNS = [
    Column("rank", "rank", integer),
    Column("mark", ""),
    Column("alpha", "alpha", fixed(2)),
    Column("beta", "beta", fixed(2)),
    Column("gamma", "gamma", fixed(3)),
    Column("product", "a*b²*g²", fixed(3)),
    Column("resolution", "r", integer),
    Column("params", "params", integer),
    Column("macs", "MACs M", lambda v: f"{v / 1e6:.1f}"),
    Column("macs_ratio", "ratio", fixed(2)),
    Column("top1", "top-1", share),
    Column("top5", "top-5", share),
    Column("val_loss", "val loss", fixed(3)),
    Column("train_seconds", "s", fixed(0)),
    Column("images_per_s", "img/s", fixed(0)),
    Column("state", "state", text),
    Column("reason", "reason", text),
]


def _marked(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a display-only 'mark' column: ★ the best complete row, ◆ the paper's point."""
    shown = frame.copy()
    best = shown.index[shown["state"] == "complete"]
    marks = ["◆ paper" if is_paper_point(row) else "" for _, row in shown.iterrows()]
    if len(best):
        marks[best[0]] = ("★ best " + marks[best[0]]).strip()
    shown.insert(1, "mark", marks)
    return shown


def _show_results(frame: pd.DataFrame, fmt: Format, title: str, caption: str | None = None) -> None:
    if fmt in (Format.csv, Format.json):
        emit(frame, SEARCH_COLUMNS, fmt.value, console)
        return
    emit(
        _marked(frame), SEARCH_COLUMNS, fmt.value, console, title=title, caption=caption,
        highlight=lambda row: "bold green" if row["mark"].startswith("★") else ("yellow" if row["mark"] else None),
    )  # fmt: skip


def _logger(quiet: bool):
    """(log, status) for long commands: plain lines on stderr when quiet (or when stdout
    carries csv/json), rich lines and a spinner on the terminal otherwise."""
    if quiet:
        return (lambda message: print(message, file=sys.stderr, flush=True)), (lambda _: nullcontext())
    return (lambda message: console.print(message, highlight=False)), (lambda text: console.status(text))


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


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
    storage: Annotated[Optional[str], typer.Option(help="Database URL for the study, e.g. postgresql+psycopg2://... (default: a journal file in the search folder).")] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
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
    config = SearchConfig(
        space=_space(mode, alpha_range, beta_range, gamma_range, target, tolerance, phi),
        base=ProxyBase(base, base_resolution, base_width, SEARCH_DEFAULTS.base.num_classes),
        data=DataOptions(data, train_images, val_images, val_fraction),
        train=_train_config(epochs, steps, max_seconds, batch_size, lr, optimizer, weight_decay, label_smoothing, seed, device, threads),
        pruner=pruner,
        flops_tolerance=flops_tolerance,
    )
    config.validate()  # before the search folder is created
    if workers < 1:
        raise UsageError(f"workers = {workers} is not allowed; it must be >= 1")
    name = name or config.default_name()
    folder = root / name
    quiet = quiet or format in (Format.csv, Format.json)
    log, status = _logger(quiet)
    with search_lock(folder):
        with status("counting candidates with fvcore..."):
            handle = create_search(config, folder=folder, storage_url=storage, name=name)
        outcome = run_search(
            handle, workers=workers, device=device, threads=threads,
            cache_dir=cache_dir or root / ".cache", retry_failed=retry_failed, quiet=quiet, log=log,
            progress_console=console,
        )  # fmt: skip
    frame = outcome.frame
    if outcome.interrupted:
        print(
            f"interrupted: {outcome.finished} of {len(frame)} candidates finished; "
            f"resume with the same command (results so far in {folder})",
            file=sys.stderr,
        )
        raise typer.Exit(130)
    caption = (
        f"{folder}/results.csv · {len(frame)} candidates · wall time {_duration(outcome.seconds)} · "
        f"★ best · ◆ the paper's ({PAPER_ALPHA:g}, {PAPER_BETA:g}, {PAPER_GAMMA:g}) · top-1 on the proxy's validation split"
    )
    _show_results(frame, format, f"Search {name}: phi={config.space.phi:g}, T={config.space.target:g}", caption)
    unfinished = frame[~frame["state"].isin(FINISHED_STATES)]
    if len(unfinished):
        raise RunError(
            f"{len(unfinished)} candidate(s) still {', '.join(sorted(set(unfinished['state'])))}; "
            "run the same command again to finish them"
        )


@app.command(
    epilog="Examples:  scaler worker --storage postgresql+psycopg2://user:pw@db/scaler --study b0-phi1 --device cuda:0 · "
    "scaler worker --storage $URL --study NAME --folder searches/NAME"
)
def worker(
    storage: Annotated[str, typer.Option(help="The study's database URL (as given to `scaler search --storage`).")],
    study: Annotated[str, typer.Option(help="Name of the search's study.")],
    device: Device = "auto",
    threads: Threads = None,
    cache_dir: CacheDir = None,
    folder: Annotated[Optional[Path], typer.Option(help="Also refresh results.csv / search.json in this folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines instead of progress bars.")] = False,
) -> None:
    """Join an existing search from any machine and train candidates until none are left.

    The configuration comes from the storage, so no other flags are needed.
    """
    if not is_url(storage):
        raise UsageError(
            f"storage {storage!r} is not a database URL: a search folder's journal belongs to its "
            "`scaler search` (use --workers N there); share a study between machines through PostgreSQL"
        )
    handle = join_search(storage, study, folder)
    log, _ = _logger(quiet)
    trained = run_worker(handle, device=device, threads=threads, cache_dir=cache_dir, quiet=quiet, log=log, progress_console=console)
    log(f"worker {worker_id()}: trained {trained} candidate(s); none left")


@app.command(
    epilog="Examples:  scaler report searches/NAME · scaler report searches/NAME --pareto --format markdown · "
    "scaler report searches/NAME --plot search.png"
)
def report(
    folder: Annotated[Path, typer.Argument(help="A search folder (holds results.csv and search.json).")],
    pareto: Annotated[bool, typer.Option("--pareto", help="Keep only rows no other beats on both top-1 and MACs.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Write a picture: top-1 against MACs with the Pareto front, and a heat map over (alpha, beta).")] = None,
    format: FormatOption = Format.table,
) -> None:
    """Re-render a search's results from its folder."""
    frame, info = read_results(folder)
    shown = reports.pareto_front(frame) if pareto else frame
    if plot is not None:
        try:
            plot_search(frame, plot, title=f"{info['name']}")
        except (OSError, ValueError) as exc:
            raise RunError(f"cannot write plot {plot}: {exc}") from None
        if format is Format.table:
            console.print(f"plot written to {plot}", highlight=False)
    states = ", ".join(f"{n} {s}" for s, n in info.get("states", {}).items())
    caption = f"{folder}/results.csv · {states} · ★ best · ◆ the paper's point" + (" · Pareto front of finished candidates" if pareto else "")
    _show_results(shown.reset_index(drop=True), format, f"Search {info['name']}", caption)


def main(argv: list[str] | None = None) -> int:
    """Run the app; map errors to one line and an exit code (2 usage, 1 runtime)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="scaler", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except ScalerError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            # The parser's own errors (unknown option, wrong type): one line, exit 2.
            print(f"error: {exc.format_message()}", file=sys.stderr)
            return int(exc.exit_code)
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
