"""Options shared by several commands (typer aliases), and the helpers that turn flags into
library objects or set up logging."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaler.candidates import CandidateSpace, ProxyBase, parse_range
from scaler.cli.app import Format, console
from scaler.experiments.search import SearchConfig
from scaler.runtime import Runtime, select_device
from scaler.training import TrainConfig

DEFAULT_SPACE = CandidateSpace()
DEFAULT_BASE = ProxyBase()
DEFAULT_TRAIN = TrainConfig()
SEARCH_DEFAULTS = SearchConfig()

Mode = Annotated[str, typer.Option(help="grid: every coefficient on its range, keep |product - target| <= tolerance; surface: gamma solved exactly.")]
AlphaRange = Annotated[str, typer.Option(help="alpha (depth) range start:stop:step, inclusive.")]
BetaRange = Annotated[str, typer.Option(help="beta (width) range start:stop:step, inclusive.")]
GammaRange = Annotated[str, typer.Option(help="gamma (resolution) range start:stop:step; in surface mode it bounds the solved gamma.")]
Target = Annotated[float, typer.Option(help="T in alpha*beta^2*gamma^2 ~= T.")]
Tolerance = Annotated[float, typer.Option(help="Grid mode: keep |alpha*beta^2*gamma^2 - T| <= tolerance.")]
FlopsTolerance = Annotated[Optional[float], typer.Option(help="Drop candidates whose measured MACs ratio strays from T^phi by more than this fraction.")]
PhiOption = Annotated[float, typer.Option("--phi", help="Compound coefficient of the search (the paper uses 1).")]
Base = Annotated[str, typer.Option(help="Preset the proxy is built from, or a factory package.module:make or path/to/file.py:make.")]
BaseResolution = Annotated[int, typer.Option(help="Resolution of the proxy base (gamma scales it).")]
BaseWidth = Annotated[float, typer.Option(help="The proxy base's own width multiplier, applied before beta^phi.")]
ZeroInit = Annotated[bool, typer.Option("--zero-init/--standard-init", help="Start every residual branch of the proxy's networks at zero (far less seed noise in a short proxy), or as the network's own initialisation does.")]
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
Device = Annotated[str, typer.Option(help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps. With --workers N, cuda (or auto) gives worker i GPU i mod the visible count; cuda:N pins every worker to GPU N.")]
Threads = Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores, split between workers).")]
CacheDir = Annotated[Optional[Path], typer.Option(help="Where decoded image tensors are cached.")]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


def train_config(epochs: int, steps: Optional[int], max_seconds: Optional[float], batch_size: int, lr: Optional[float], optimizer: str, weight_decay: float, label_smoothing: float, seed: int) -> TrainConfig:
    """The training flags as a validated TrainConfig."""
    config = TrainConfig(
        epochs=epochs, steps=steps, max_seconds=max_seconds, batch_size=batch_size, lr=lr,
        optimizer=optimizer, weight_decay=weight_decay, label_smoothing=label_smoothing, seed=seed,
    )  # fmt: skip
    config.validate()
    return config


def runtime(device: str, threads: Optional[int], cache_dir: Optional[Path]) -> Runtime:
    """The run-time flags as a validated Runtime whose device exists here."""
    result = Runtime(device=device, threads=threads, cache_dir=cache_dir)
    result.validate()
    select_device(device)
    return result


def space(mode: str, alpha_range: str, beta_range: str, gamma_range: str, target: float, tolerance: float, phi: float) -> CandidateSpace:
    """The candidate-space flags as a validated CandidateSpace."""
    result = CandidateSpace(
        mode=mode,
        alpha=parse_range(alpha_range, "alpha"),
        beta=parse_range(beta_range, "beta"),
        gamma=parse_range(gamma_range, "gamma"),
        target=target,
        tolerance=tolerance,
        phi=phi,
    )
    result.validate()
    return result


def logger(quiet: bool):
    """(log, status) for long commands: plain lines on stderr when quiet (or when stdout
    carries csv/json), rich lines and a spinner on the terminal otherwise."""
    if quiet:
        return (lambda message: print(message, file=sys.stderr, flush=True)), (lambda _: nullcontext())
    return (lambda message: console.print(message, highlight=False)), (lambda text: console.status(text))


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
