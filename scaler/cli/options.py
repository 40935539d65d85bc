"""Options shared by several commands (typer aliases), and the helpers that turn flags into
library objects or set up logging."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from scaler.candidates import MODES, CandidateSpace, ProxyBase, parse_range
from scaler.cli.app import Format, progress_console
from scaler.data.options import DataOptions
from scaler.errors import UsageError
from scaler.runtime import Runtime, check_workers, select_device
from scaler.train_config import OPTIMIZERS, TrainConfig, check_repeats

# The library's defaults, shown in --help; their modules import no torch, so that --help and a
# refused flag answer at once.
DEFAULT_SPACE = CandidateSpace()
DEFAULT_BASE = ProxyBase()
DEFAULT_DATA = DataOptions()
DEFAULT_TRAIN = TrainConfig()

Mode = Annotated[str, typer.Option(metavar="|".join(MODES), help="grid: every coefficient on its range, keep |product - target| <= tolerance; surface: gamma solved exactly.")]
AlphaRange = Annotated[str, typer.Option(metavar="START:STOP:STEP", help="alpha (depth) range start:stop:step, inclusive.")]
BetaRange = Annotated[str, typer.Option(metavar="START:STOP:STEP", help="beta (width) range start:stop:step, inclusive.")]
GammaRange = Annotated[str, typer.Option(metavar="START:STOP:STEP", help="gamma (resolution) range start:stop:step; in surface mode it bounds the solved gamma.")]
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
Epochs = Annotated[Optional[int], typer.Option(help=f"Training epochs of each network (default: {DEFAULT_TRAIN.epochs}).")]
Steps = Annotated[Optional[int], typer.Option(help="Total optimizer steps of each network, instead of --epochs (not both).")]
MaxSeconds = Annotated[Optional[float], typer.Option(help="Wall-clock cap per training.")]
BatchSize = Annotated[int, typer.Option(help="Training batch size.")]
Lr = Annotated[Optional[float], typer.Option(help="Peak learning rate (default: the optimizer's).")]
OptimizerOption = Annotated[str, typer.Option("--optimizer", metavar="|".join(OPTIMIZERS), help="sgd (Nesterov), rmsprop (TensorFlow style) or adamw.")]
WeightDecay = Annotated[float, typer.Option(help="Weight decay of conv and linear weights.")]
LabelSmoothing = Annotated[float, typer.Option(help="Label smoothing.")]
ClipGradNorm = Annotated[float, typer.Option(help="Clip the gradient's global L2 norm to this before each step (0: no clipping).")]
Seed = Annotated[int, typer.Option(help="Seed of data, initialisation and augmentation.")]
Device = Annotated[str, typer.Option(help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps. With --workers N, cuda (or auto) gives worker i GPU i mod the visible count; cuda:N pins every worker to GPU N.")]
Threads = Annotated[Optional[int], typer.Option(help="CPU threads of each worker process (default: all cores with one worker; with --workers N, cores / N each).")]
# The same two options for the commands that train in their own process alone (train, worker): no --workers there.
ProcessDevice = Annotated[str, typer.Option(help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps.")]
ProcessThreads = Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores).")]
CacheDir = Annotated[Optional[Path], typer.Option(help="Where decoded image tensors are cached (default: none; decoded every run).")]
StudyCacheDir = Annotated[Optional[Path], typer.Option(help="Decoded-image cache (default: <root>/.cache).")]
FormatOption = Annotated[Format, typer.Option("--format", "-f", metavar="|".join(f.value for f in Format), help="Output format; csv, json and markdown print the document alone on stdout (progress, if any, goes to stderr).")]


# Notes on options accepted but not used, kept until the command has accepted all its options,
# so that a refused command prints its error line alone.
_NOTES: list[str] = []


def note(text: str) -> None:
    """Keep 'note: text' for stderr until `say_notes`."""
    _NOTES.append(f"note: {text}")


def say_notes() -> None:
    """Print the notes kept so far, once: where a command has accepted its options."""
    for line in _NOTES:
        print(line, file=sys.stderr)
    _NOTES.clear()


def drop_notes() -> None:
    """Forget kept notes: a command starts (an earlier one in this process was refused)."""
    _NOTES.clear()


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


# The option groups of the commands that train proxies, each declared once: `search` and
# `calibrate` take all four, `compare` the last three (its --phis and --target replace the
# space), `train` data and training, `candidates` the space. `with_options` gives a command
# its groups.
SPACE_OPTIONS = (
    _keyword("phi", PhiOption, DEFAULT_SPACE.phi),
    _keyword("mode", Mode, DEFAULT_SPACE.mode),
    _keyword("alpha_range", AlphaRange, str(DEFAULT_SPACE.alpha)),
    _keyword("beta_range", BetaRange, str(DEFAULT_SPACE.beta)),
    _keyword("gamma_range", GammaRange, str(DEFAULT_SPACE.gamma)),
    _keyword("target", Target, DEFAULT_SPACE.target),
    _keyword("tolerance", Tolerance, DEFAULT_SPACE.tolerance),
    _keyword("flops_tolerance", FlopsTolerance, None),
)
BASE_OPTIONS = (
    _keyword("base", Base, DEFAULT_BASE.variant),
    _keyword("base_resolution", BaseResolution, DEFAULT_BASE.resolution),
    _keyword("base_width", BaseWidth, DEFAULT_BASE.width),
    _keyword("zero_init", ZeroInit, DEFAULT_BASE.zero_init),
)
DATA_OPTIONS = (
    _keyword("data", Data, DEFAULT_DATA.source),
    _keyword("train_images", TrainImages, DEFAULT_DATA.train_images),
    _keyword("val_images", ValImages, DEFAULT_DATA.val_images),
    _keyword("val_fraction", ValFraction, DEFAULT_DATA.val_fraction),
)
TRAIN_OPTIONS = (
    _keyword("epochs", Epochs, None),
    _keyword("steps", Steps, None),
    _keyword("max_seconds", MaxSeconds, None),
    _keyword("batch_size", BatchSize, DEFAULT_TRAIN.batch_size),
    _keyword("lr", Lr, None),
    _keyword("optimizer", OptimizerOption, DEFAULT_TRAIN.optimizer),
    _keyword("weight_decay", WeightDecay, DEFAULT_TRAIN.weight_decay),
    _keyword("label_smoothing", LabelSmoothing, DEFAULT_TRAIN.label_smoothing),
    _keyword("clip_grad_norm", ClipGradNorm, DEFAULT_TRAIN.clip_grad_norm or 0.0),
    _keyword("seed", Seed, DEFAULT_TRAIN.seed),
)
# A calibration compares settings by their epochs, every training run to its end.
EPOCH_TRAIN_OPTIONS = tuple(p for p in TRAIN_OPTIONS if p.name not in ("steps", "max_seconds"))


def with_options(*groups: tuple[inspect.Parameter, ...], after: Optional[str] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the options of `groups`: they join its signature, which typer reads,
    right after its parameter `after` (or first), and reach it through its `**` parameter.
    Goes below `@app.command` (typer must see the joined signature)."""
    shared = [parameter for group in groups for parameter in group]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        parameters = inspect.signature(command, eval_str=True).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            raise TypeError(f"{command.__name__} needs a ** parameter to receive the options of with_options")
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD]
        at = 0 if after is None else [p.name for p in own].index(after) + 1

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            return command(**kwargs)

        run.__signature__ = inspect.Signature([*own[:at], *shared, *own[at:]], return_annotation=None)  # type: ignore[attr-defined]
        return run

    return decorate


def proxy_parts(
    *, base: str, base_resolution: int, base_width: float, zero_init: bool, data: str, train_images: Optional[int],
    val_images: Optional[int], val_fraction: float, canonical: bool = True, **training: Any,
) -> tuple[ProxyBase, DataOptions, TrainConfig]:
    """The base, data and training flags as the library's objects, validated and spelled one
    way (the same study whichever way a path, preset or default was typed; `canonical=False`:
    as typed, the spelling a study begun before scaler spelled them one way recorded); the
    base classifies as many classes as the data has; a note where --val-fraction is given to
    data that does not use it (once: not when read again as typed)."""
    data_options = DataOptions(data, train_images, val_images, val_fraction)
    if canonical:
        note_unused_val_fraction(data, val_fraction)
        data_options = data_options.canonical()
    proxy = ProxyBase(base, base_resolution, base_width, data_options.classes(), zero_init)
    train = train_config(**training)
    return (proxy.canonical(), data_options, train.canonical()) if canonical else (proxy, data_options, train)


def note_unused_val_fraction(source: str, val_fraction: float) -> None:
    """A note (`note`) where a --val-fraction of its own is given to data that brings its own
    validation images (synthetic, CIFAR-10's test batch, a folder with train/ and val/), which
    does not use it."""
    from scaler.data.dataset import CIFAR_PREFIX, SYNTHETIC_SOURCE, has_own_split

    if val_fraction != DEFAULT_DATA.val_fraction and 0 < val_fraction < 1 and has_own_split(source):  # a bad one is refused alone
        built_in = source == SYNTHETIC_SOURCE or source.startswith(CIFAR_PREFIX)
        what = f"{source.partition(':')[0]} brings its own validation images" if built_in else f"{source} has them"
        note(f"--val-fraction splits an image folder without train/ and val/; {what} and does not use it")


def train_config(*, epochs: Optional[int], steps: Optional[int], max_seconds: Optional[float], batch_size: int, lr: Optional[float], optimizer: str, weight_decay: float, label_smoothing: float, clip_grad_norm: float, seed: int) -> TrainConfig:
    """The training flags as a validated TrainConfig (--epochs left out: the default's;
    --clip-grad-norm 0: no clipping); --epochs and --steps together are refused, since
    --steps would silently win."""
    if steps is not None and epochs is not None:
        raise UsageError(f"--epochs {epochs} and --steps {steps} both set how long to train; give one")
    config = TrainConfig(
        epochs=DEFAULT_TRAIN.epochs if epochs is None else epochs, steps=steps, max_seconds=max_seconds, batch_size=batch_size, lr=lr,
        optimizer=optimizer, weight_decay=weight_decay, label_smoothing=label_smoothing,
        clip_grad_norm=None if clip_grad_norm == 0 else clip_grad_norm, seed=seed,
    )  # fmt: skip
    config.validate()
    return config


def runtime(device: str, threads: Optional[int], cache_dir: Optional[Path]) -> Runtime:
    """The run-time flags as a validated Runtime whose device exists here."""
    result = Runtime(device=device, threads=threads, cache_dir=cache_dir)
    result.validate()
    select_device(device)
    return result


def space(*, mode: str, alpha_range: str, beta_range: str, gamma_range: str, target: float, tolerance: float, phi: float,
          with_note: bool = True) -> CandidateSpace:
    """The candidate-space flags as a validated CandidateSpace; a note (`note`) where surface
    mode is given a --tolerance of its own, which it does not use (not `with_note`: the same
    flags read again, in another spelling)."""
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
    if with_note and mode == "surface" and tolerance != DEFAULT_SPACE.tolerance:
        note("--tolerance is grid mode's; surface mode solves gamma exactly and does not use it")
    return result


def refuse_early(params: dict[str, Any]) -> None:
    """Refuse a bad value of the candidate space, of training, of the device's form, of
    --workers or of --repeats before the library loads (`app.LibraryCommand`): their checks
    import no torch, so that `--phi 0` or `--batch-size 1` answers in a fraction of a second,
    not after torch's 1-2 s. The command checks them again
    as it runs, in its own order, and gives its notes then."""
    if all(p.name in params for p in SPACE_OPTIONS):
        space(**{p.name: params[p.name] for p in SPACE_OPTIONS if p.name != "flops_tolerance"}, with_note=False)
    if all(p.name in params for p in EPOCH_TRAIN_OPTIONS):  # calibrate's group has no --steps or --max-seconds
        train_config(**{"steps": None, "max_seconds": None, **{p.name: params[p.name] for p in TRAIN_OPTIONS if p.name in params}})
    if "device" in params:  # its form here; whether it exists, once torch is loaded
        Runtime(device=params["device"], threads=params.get("threads"), cache_dir=params.get("cache_dir")).validate()
    if "workers" in params:
        check_workers(params["workers"])
    if "repeats" in params:
        check_repeats(params["repeats"])


def given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given (typed, or through its environment variable), not left
    at its default."""
    return getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def as_flags(ctx: typer.Context, values: dict[str, Any]) -> list[str]:
    """Option values (by parameter name, in order) as the arguments of `ctx`'s command that
    give them: an on/off flag as its on or off spelling ('--zero-init', '--standard-init')."""
    params = {p.name: p for p in ctx.command.params if p.opts}
    args: list[str] = []
    for name, value in values.items():
        param = params[name]
        if isinstance(value, bool):
            args.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            args += [param.opts[0], str(value.value if isinstance(value, Enum) else value)]
    return args


@contextmanager
def recorded_inputs(folder: Optional[Path], *, base: Optional[str] = None, data: Optional[str] = None) -> Iterator[None]:
    """A base or data a search recorded that is not found here (a preset gone, a factory or
    folder moved, a path typed relative to another folder), which `scale --from` and `compare
    --from` take where no `--base` or `--data` is given, is that `--from`'s fault, not an
    option nobody typed. (A found network that cannot take a size asked for stays that size's
    fault.) `base` and `data`: the ones taken from `folder` (None: given, or no --from)."""
    try:
        yield
    except UsageError as exc:
        if exc.param == "base" and base is not None:
            raise UsageError(f"the base {folder} scaled, {base}, is not here as it was searched: {exc}; "
                             "give --base to use that network (or another)", param="from") from None
        if exc.param == "data" and data is not None:
            raise UsageError(f"the data {folder} trained on, {data}, cannot be read here: {exc}; "
                             "give --data to train on it where it is (or on other data)", param="from") from None
        raise


def logger(quiet: bool) -> tuple[Callable[[str], None], Callable[[str], AbstractContextManager]]:
    """(log, status) for long commands, both on stderr: plain lines when quiet (or when stdout
    carries csv/json), rich lines and a spinner otherwise."""
    if quiet:
        return (lambda message: print(message, file=sys.stderr, flush=True)), (lambda _: nullcontext())
    # soft_wrap: one line per message in a pipe or a file too (a console there is 80 columns)
    return (lambda message: progress_console.print(message, highlight=False, soft_wrap=True)), (lambda text: progress_console.status(text))

